// A service whose upstream client is Node's https module (default agent), default trust:
// Node's bundled Mozilla roots plus NODE_EXTRA_CA_CERTS.
'use strict'
const https = require('https')
const { serve } = require('./serve.js')

function call(url, body) {
  return new Promise((resolve, reject) => {
    const headers = { 'Content-Type': 'application/json', 'Content-Length': body.length }
    const request = https.request(url, { method: 'POST', headers, timeout: 10000 }, (res) => {
      const chunks = []
      res.on('data', (c) => chunks.push(c))
      res.on('end', () => resolve([res.statusCode, Buffer.concat(chunks)]))
      res.on('error', reject)
    })
    request.on('timeout', () => request.destroy(new Error('timed out')))
    request.on('error', reject)
    request.end(body)
  })
}

serve(call, (e) => String(e.message || e) + (e.code ? ` (${e.code})` : ''))
