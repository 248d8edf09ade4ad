// A real HTTP/2 API (Node's http2, over TLS with ALPN h2, HTTP/1.1 too): answers every
// request with JSON saying what it got. Prints its port once listening.
'use strict'
const fs = require('fs')
const http2 = require('http2')

const server = http2.createSecureServer(
  { key: fs.readFileSync(process.env.TLS_KEY), cert: fs.readFileSync(process.env.TLS_CERT), allowHTTP1: true },
  (req, res) => {
    const chunks = []
    req.on('data', (c) => chunks.push(c))
    req.on('end', () => {
      const text = Buffer.concat(chunks).toString()
      const data = JSON.stringify({ method: req.method, path: req.url, body: text ? JSON.parse(text) : null, http: req.httpVersion })
      res.writeHead(200, { 'content-type': 'application/json' })
      res.end(data)
    })
  },
)
server.listen(0, '127.0.0.1', () => console.log(server.address().port))
