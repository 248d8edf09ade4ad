// A service whose upstream client is Node's global fetch (undici), default trust: Node's
// bundled Mozilla roots plus NODE_EXTRA_CA_CERTS. fetch's own message is only
// "fetch failed": the error sent back is its cause's, the TLS verdict.
'use strict'
const { serve } = require('./serve.js')

async function call(url, body) {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body,
    signal: AbortSignal.timeout(10000),
  })
  return [response.status, Buffer.from(await response.arrayBuffer())]
}

function describe(e) {
  const cause = e.cause ? `: ${e.cause.message || e.cause}${e.cause.code ? ` (${e.cause.code})` : ''}` : ''
  return String(e.message || e) + cause
}

serve(call, describe)
