// What both Node.js client services share: the inbound server (GET /health, POST /call)
// around the one function that differs, the upstream call. CALL_EXTRA (a JSON object), when
// set, is merged into the body sent upstream: how a test changes what the service sends.
'use strict'
const http = require('http')

function outgoing(body) {
  const extra = process.env.CALL_EXTRA
  if (!extra) return body
  return Buffer.from(JSON.stringify({ ...JSON.parse(body), ...JSON.parse(extra) }))
}

function send(res, status, data, upstream) {
  const headers = { 'Content-Type': 'application/json', 'Content-Length': data.length }
  if (upstream !== undefined) headers['X-Upstream-Status'] = String(upstream)
  res.writeHead(status, headers)
  res.end(data)
}

// call(url, body) -> Promise of [status, body]; describe(error) -> the error's text for the test
function serve(call, describe) {
  http.createServer((req, res) => {
    const chunks = []
    req.on('data', (c) => chunks.push(c))
    req.on('end', async () => {
      if (req.method === 'GET' && req.url === '/health') return send(res, 200, Buffer.from('{"ok": true}'))
      if (req.method !== 'POST' || req.url !== '/call') return send(res, 404, Buffer.from('{}'))
      try {
        const url = req.headers['x-upstream-url'] || process.env.UPSTREAM_URL
        const [status, data] = await call(url, outgoing(Buffer.concat(chunks)))
        send(res, 200, data, status)
      } catch (e) {
        send(res, 502, Buffer.from(JSON.stringify({ error: describe(e) })))
      }
    })
  }).listen(Number(process.env.PORT), '127.0.0.1')
}

module.exports = { serve }
