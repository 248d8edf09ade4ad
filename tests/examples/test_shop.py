"""The sample shop on its real stack, without kpy: what the end-to-end tests record must
first pass on its own, and pass the same way twice, or recordings could never be stable."""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.examples.shop import (
    RATES_TOKEN,
    SHOP,
    TRAFFIC_LINES,
    Shop,
    reset,
    run_traffic,
    start_shop,
)
from tests.servers import PG_PASSWORD, REDIS_PASSWORD, Postgres, Redis


@pytest.fixture(scope="module")
def shop(
    postgres: Postgres, redis: Redis, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Shop]:
    reset(postgres, redis)
    with start_shop(postgres, redis, log_dir=tmp_path_factory.mktemp("shop")) as running:
        yield running


def test_traffic_passes_and_is_deterministic(shop: Shop, postgres: Postgres, redis: Redis) -> None:
    reset(postgres, redis)
    first = run_traffic(shop.base_url)
    assert first.returncode == 0, first.stdout + first.stderr + shop.logs()
    assert len(first.stdout.splitlines()) == TRAFFIC_LINES

    reset(postgres, redis)
    second = run_traffic(shop.base_url)
    assert second.returncode == 0, second.stdout + second.stderr + shop.logs()
    assert second.stdout == first.stdout


def test_traffic_fails_on_a_shop_that_was_not_reset(
    shop: Shop, postgres: Postgres, redis: Redis
) -> None:
    """traffic.py checks answers, not only statuses: a second run without reset must fail."""
    reset(postgres, redis)
    assert run_traffic(shop.base_url).returncode == 0
    again = run_traffic(shop.base_url)
    assert again.returncode == 1
    # the first difference: the cached list still shows the stock the last run left
    assert again.stderr.startswith("traffic: GET /products: body ")
    assert '"stock":8' in again.stderr


def rates_status(shop: Shop, token: str | None) -> int:
    request = urllib.request.Request(f"http://127.0.0.1:{shop.rates_port}/rates?from=USD&to=EUR")
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as e:
        return e.code


def test_rates_service_demands_the_token(shop: Shop) -> None:
    assert rates_status(shop, RATES_TOKEN) == 200
    assert rates_status(shop, None) == 401
    assert rates_status(shop, "wrong") == 401


def test_no_secret_reaches_the_logs(shop: Shop, postgres: Postgres, redis: Redis) -> None:
    reset(postgres, redis)
    assert run_traffic(shop.base_url).returncode == 0
    logs = shop.logs()
    assert "listening on 127.0.0.1" in logs
    assert "GET /products" in logs  # the request log is there, so the check means something
    for secret in (PG_PASSWORD, REDIS_PASSWORD, RATES_TOKEN):
        assert secret not in logs


@pytest.mark.parametrize("script", ["app.py", "rates.py"])
def test_services_refuse_to_start_without_their_environment(script: str) -> None:
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "RATES_TOKEN"}}
    done = subprocess.run(
        [sys.executable, str(Path(SHOP, script))], env=env, capture_output=True, text=True
    )
    assert done.returncode == 2
    assert "RATES_TOKEN" in done.stderr
