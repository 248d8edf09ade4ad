"""kpy's sample service: a small shop API over PostgreSQL, Redis and an exchange-rate service.

kpy's end-to-end tests and demo record its traffic and replay it with none of the three
present, so it uses each dependency the way real services do: PostgreSQL through plain,
parameterized and prepared queries and a transaction; Redis for a cache (GET, SET EX),
counters (INCR) and pipelines (MULTI/EXEC and plain); HTTP with a bearer token. Responses
depend only on the seeded data (seed.sql) and the order of requests, so replays are stable.

Environment: DATABASE_URL, REDIS_URL, RATES_URL, RATES_TOKEN (required); PORT (8080).
Run: ``python3 app.py`` (or ``flask --app app.py run``). Logs go to stderr, without secrets.
"""

from __future__ import annotations

import functools
import http.client
import json
import logging
import os
import re
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

import psycopg
import redis
from flask import Flask, Response, jsonify, request
from psycopg.rows import dict_row
from werkzeug.exceptions import HTTPException
from werkzeug.serving import WSGIRequestHandler, make_server

REQUIRED = ("DATABASE_URL", "REDIS_URL", "RATES_URL", "RATES_TOKEN")
BASE_CURRENCY = "USD"
CENT = Decimal("0.01")
MAX_AMOUNT = Decimal("1000000")
PRODUCTS_KEY = "shop:products"  # the cached product list, as JSON
PRODUCTS_TTL = 60
ORDERS_KEY, UNITS_KEY, VIEWS_KEY = "shop:orders", "shop:units", "shop:views:products"
PRODUCT_COLUMNS = "SELECT id, sku, name, price, stock FROM products"

log = logging.getLogger("shop")
app = Flask(__name__, static_folder=None)  # a JSON API: no /static route

Row = dict[str, Any]


class ApiError(Exception):
    """A failure the client should see: answered as ``{"error": message}`` with its status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def setting(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        raise RuntimeError(f"{name} is not set")
    return value


def without_secret(url: str) -> str:
    """The URL with its user and password removed, for logs."""
    parts = urlsplit(url)
    host = f"[{parts.hostname}]" if ":" in (parts.hostname or "") else parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit(parts._replace(netloc=netloc, query="", fragment=""))


@contextmanager
def database() -> Iterator[psycopg.Connection[Row]]:
    """A connection per request: simple, and every request then carries a full handshake
    that kpy must replay. Autocommit, so only the order's transaction sends BEGIN/COMMIT."""
    with psycopg.connect(setting("DATABASE_URL"), autocommit=True, row_factory=dict_row) as conn:
        yield conn


@functools.cache
def cache() -> redis.Redis:
    """One client for the process: redis-py's pool is thread-safe."""
    return redis.Redis.from_url(setting("REDIS_URL"), decode_responses=True)


def product_json(row: Row) -> Row:
    return {**row, "price": str(row["price"])}


def exchange_rate(currency: str) -> Decimal:
    """USD -> currency, from the rates service (which needs the bearer token)."""
    if currency == BASE_CURRENCY:
        return Decimal(1)
    url = urlsplit(setting("RATES_URL"))
    path = f"{url.path.rstrip('/')}/rates?{urlencode({'from': BASE_CURRENCY, 'to': currency})}"
    headers = {"Authorization": f"Bearer {setting('RATES_TOKEN')}", "Accept": "application/json"}
    # https: the runtime's default trust (SSL_CERT_FILE), as most services have it
    https = url.scheme == "https"
    connection = http.client.HTTPSConnection if https else http.client.HTTPConnection
    conn = connection(url.hostname or "127.0.0.1", url.port or 80, timeout=5)
    try:
        conn.request("GET", path, headers=headers)
        response = conn.getresponse()
        status, data = response.status, response.read()
    except OSError as e:
        log.warning("rates service unreachable: %s", e)
        raise ApiError(502, "rates service unavailable") from e
    finally:
        conn.close()
    if status == 404:
        raise ApiError(400, f"unknown currency {currency}")
    if status != 200:
        log.warning("rates service answered %d", status)
        raise ApiError(502, "rates service unavailable")
    return Decimal(json.loads(data, parse_float=Decimal)["rate"])


def currency_arg(value: object) -> str:
    if not isinstance(value, str) or not re.fullmatch(r"[A-Z]{3}", value):
        raise ApiError(400, "currency must be three capital letters, like EUR")
    return value


def positive_int(body: Row, field: str) -> int:
    value = body.get(field)
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ApiError(400, f"{field} must be a positive integer")
    return value


@app.get("/health")
def health() -> Response:
    return jsonify({"status": "ok"})


@app.get("/products")
def list_products() -> Response:
    """Cached in Redis for PRODUCTS_TTL seconds; X-Cache says whether the cache answered."""
    r = cache()
    r.incr(VIEWS_KEY)
    cached = r.get(PRODUCTS_KEY)
    if cached is not None:
        products = json.loads(cached)
    else:
        with database() as conn:
            # no parameters: psycopg sends it with the simple query protocol
            products = [product_json(row) for row in conn.execute(f"{PRODUCT_COLUMNS} ORDER BY id")]
        r.set(PRODUCTS_KEY, json.dumps(products), ex=PRODUCTS_TTL)  # SET ... EX: SETEX's successor
    response = jsonify(products)
    response.headers["X-Cache"] = "miss" if cached is None else "hit"
    return response


@app.get("/products/<int:product_id>")
def get_product(product_id: int) -> Response:
    with database() as conn:
        sql = f"{PRODUCT_COLUMNS} WHERE id = %s"
        row = conn.execute(sql, (product_id,), prepare=True).fetchone()
    if row is None:
        raise ApiError(404, f"product {product_id} not found")
    return jsonify(product_json(row))


@app.post("/orders")
def create_order() -> tuple[Response, int, dict[str, str]]:
    """Insert the order and take its quantity off the stock in one transaction; the total is
    converted before it starts, so no row stays locked across an HTTP call."""
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise ApiError(400, "body must be a JSON object")
    product_id = positive_int(body, "product_id")
    quantity = positive_int(body, "quantity")
    currency = currency_arg(body.get("currency", BASE_CURRENCY))
    rate = exchange_rate(currency)
    with database() as conn, conn.transaction():
        product = conn.execute(
            "SELECT price, stock FROM products WHERE id = %s FOR UPDATE", (product_id,)
        ).fetchone()
        if product is None:
            raise ApiError(404, f"product {product_id} not found")
        if product["stock"] < quantity:
            raise ApiError(409, f"only {product['stock']} of product {product_id} in stock")
        total_usd = product["price"] * quantity
        total = (total_usd * rate).quantize(CENT, ROUND_HALF_EVEN)
        inserted = conn.execute(
            "INSERT INTO orders (product_id, quantity, total_usd, currency, total)"
            " VALUES (%s, %s, %s, %s, %s) RETURNING id",
            (product_id, quantity, total_usd, currency, total),
        ).fetchone()
        assert inserted is not None
        conn.execute("UPDATE products SET stock = stock - %s WHERE id = %s", (quantity, product_id))
    with cache().pipeline(transaction=True) as pipe:  # MULTI ... EXEC
        pipe.incr(ORDERS_KEY)
        pipe.incrby(UNITS_KEY, quantity)
        pipe.delete(PRODUCTS_KEY)
        pipe.execute()
    order = {
        "id": inserted["id"],
        "product_id": product_id,
        "quantity": quantity,
        "total_usd": str(total_usd),
        "currency": currency,
        "total": str(total),
    }
    return jsonify(order), 201, {"Location": f"/orders/{inserted['id']}"}


@app.get("/orders/<int:order_id>")
def get_order(order_id: int) -> Response:
    with database() as conn:
        row = conn.execute(
            "SELECT id, product_id, quantity, total_usd, currency, total FROM orders WHERE id = %s",
            (order_id,),
        ).fetchone()
    if row is None:
        raise ApiError(404, f"order {order_id} not found")
    return jsonify({**row, "total_usd": str(row["total_usd"]), "total": str(row["total"])})


@app.get("/stats")
def stats() -> Response:
    with cache().pipeline(transaction=False) as pipe:  # one round trip, no MULTI
        for key in (ORDERS_KEY, UNITS_KEY, VIEWS_KEY):
            pipe.get(key)
        orders, units, views = pipe.execute()
    return jsonify(
        {
            "orders": int(orders or 0),
            "units_sold": int(units or 0),
            "product_list_views": int(views or 0),
        }
    )


@app.get("/convert")
def convert() -> Response:
    """``?amount=12.50&to=EUR``: USD to another currency, at the rates service's rate."""
    try:
        amount = Decimal(request.args.get("amount", ""))
        if (
            not amount.is_finite()
            or not 0 <= amount < MAX_AMOUNT
            or amount != amount.quantize(CENT)
        ):
            raise InvalidOperation
    except InvalidOperation:
        raise ApiError(400, "amount must be a decimal number like 12.50") from None
    target = currency_arg(request.args.get("to"))
    rate = exchange_rate(target)
    converted = (amount * rate).quantize(CENT, ROUND_HALF_EVEN)
    return jsonify(
        {
            "amount": str(amount.quantize(CENT)),
            "from": BASE_CURRENCY,
            "to": target,
            "rate": str(rate),
            "converted": str(converted),
        }
    )


@app.errorhandler(ApiError)
def api_error(e: ApiError) -> tuple[Response, int]:
    return jsonify({"error": e.message}), e.status


@app.errorhandler(HTTPException)
def http_error(e: HTTPException) -> tuple[Response, int]:
    """Unknown routes and methods answer JSON too, not werkzeug's HTML page."""
    return jsonify({"error": (e.name or "error").lower()}), e.code or 500


@app.errorhandler(Exception)
def internal_error(e: Exception) -> tuple[Response, int]:
    log.exception("%s %s failed", request.method, request.path)
    return jsonify({"error": "internal error"}), 500


class RequestLog(WSGIRequestHandler):
    """One plain line per request through our logger (werkzeug's own adds ANSI colours)."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        log.info('"%s" %s', self.requestline, code)


def main() -> int:
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s %(message)s"
    )
    missing = [name for name in REQUIRED if not os.environ.get(name)]
    if missing:
        log.error("missing environment variables: %s", ", ".join(missing))
        return 2
    port = int(os.environ.get("PORT", "8080"))
    server = make_server("127.0.0.1", port, app, threaded=True, request_handler=RequestLog)
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # stop like ^C: close cleanly
    log.info(
        "listening on 127.0.0.1:%d (postgres %s, redis %s, rates %s)",
        port,
        without_secret(setting("DATABASE_URL")),
        without_secret(setting("REDIS_URL")),
        without_secret(setting("RATES_URL")),
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        log.info("stopping")
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
