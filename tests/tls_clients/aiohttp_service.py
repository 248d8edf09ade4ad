"""A service on aiohttp.web whose upstream client is aiohttp's ClientSession, default trust:
``ssl.create_default_context()``, OpenSSL's default paths (SSL_CERT_FILE / SSL_CERT_DIR
replace them)."""

from __future__ import annotations

import os

import aiohttp
from aiohttp import web
from serving import outgoing, upstream_url


async def call(request: web.Request) -> web.Response:
    body = outgoing(await request.read())
    url = upstream_url(request.headers.get("X-Upstream-Url"))
    headers = {"Content-Type": "application/json"}
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session,
            session.post(url, data=body, headers=headers) as response,
        ):
            data = await response.read()
    except Exception as e:
        return web.json_response({"error": str(e)}, status=502)
    upstream = {"X-Upstream-Status": str(response.status)}
    return web.Response(body=data, content_type="application/json", headers=upstream)


async def health(request: web.Request) -> web.Response:
    return web.json_response({"ok": True})


app = web.Application()
app.add_routes([web.post("/call", call), web.get("/health", health)])
web.run_app(app, host="127.0.0.1", port=int(os.environ["PORT"]), print=None)
