#!/usr/bin/env bash
# The demo: record the sample shop with kpy, then replay it with nothing behind it. Starts a
# throwaway PostgreSQL and Redis on free loopback ports (with passwords, which kpy must never
# write down), the rates API, seeds the database, then `kpy record` starts the shop in its
# own cgroup and runs traffic.py against it. Then PostgreSQL, Redis and the rates API are
# stopped (their ports closed) and `kpy test` replays the recorded tests against the shop,
# its calls answered from the mocks. The test-set and the JUnit report stay in $KPY_DEMO_OUT.
# Run as root from the project root, after scripts/install.sh (scripts/demo.sh does both).
set -euo pipefail
cd "$(dirname "$0")/../.."
kpy=.venv/bin/kpy
python=.venv/bin/python
out=${KPY_DEMO_OUT:-$PWD/build/demo/kpy}
work=$(mktemp -d /tmp/kpy-demo-XXXXXX)
chmod 755 "$work"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  [ -f "$work/pg/postmaster.pid" ] && runuser -u postgres -- "$pgbin/pg_ctl" -D "$work/pg" -m fast stop >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

# four distinct free ports, chosen at once: chosen one by one, the kernel may hand the same
# port out twice once the probing socket is closed
read -r pg_port redis_port rates_port app_port < <("$python" -c '
import socket
socks = [socket.socket() for _ in range(4)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in socks))')
pg_password=demo-pg-$RANDOM$RANDOM; redis_password=demo-redis-$RANDOM$RANDOM
rates_token=demo-token-$RANDOM$RANDOM

echo "demo: PostgreSQL on 127.0.0.1:$pg_port, Redis on :$redis_port, rates API on :$rates_port"
pgbin=$(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
chown postgres "$work"
# UTF8 whatever the machine's locale: a bare machine would give SQL_ASCII, whose text psycopg
# returns as bytes
runuser -u postgres -- "$pgbin/initdb" -D "$work/pg" -U postgres -A trust -E UTF8 --locale=C >/dev/null
echo "host all all 127.0.0.1/32 scram-sha-256" > "$work/pg/pg_hba.conf"
echo "local all postgres trust" >> "$work/pg/pg_hba.conf"
runuser -u postgres -- "$pgbin/pg_ctl" -D "$work/pg" -l "$work/pg.log" -w \
  -o "-c listen_addresses=127.0.0.1 -c port=$pg_port -c unix_socket_directories=$work" start >/dev/null
psql_admin=(psql -X -q -h "$work" -p "$pg_port" -U postgres -v ON_ERROR_STOP=1)
"${psql_admin[@]}" -c "CREATE ROLE shop LOGIN PASSWORD '$pg_password'" -c "CREATE DATABASE shop OWNER shop"
database_url="postgresql://shop:$pg_password@127.0.0.1:$pg_port/shop"
PGPASSWORD=$pg_password psql -X -q -h 127.0.0.1 -p "$pg_port" -U shop -d shop -v ON_ERROR_STOP=1 -f examples/shop/seed.sql

redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no \
  --requirepass "$redis_password" --dir "$work" >"$work/redis.log" 2>&1 &
pids+=($!)
PORT=$rates_port RATES_TOKEN=$rates_token "$python" examples/shop/rates.py 2>"$work/rates.log" &
pids+=($!)
for _ in $(seq 100); do
  redis-cli -p "$redis_port" --no-auth-warning -a "$redis_password" ping >/dev/null 2>&1 && break
  sleep 0.1
done

export DATABASE_URL=$database_url REDIS_URL="redis://:$redis_password@127.0.0.1:$redis_port/0"
export RATES_URL=http://127.0.0.1:$rates_port RATES_TOKEN=$rates_token PORT=$app_port
# the service gets its own resolv.conf naming a loopback resolver: the demo resolves nothing
echo "nameserver 127.0.0.53" > "$work/resolv.conf"
echo "demo: kpy record -c 'python examples/shop/app.py' --port $app_port --traffic 'python examples/shop/traffic.py'"
"$kpy" record -c "$python examples/shop/app.py" --port "$app_port" \
  --traffic "$python examples/shop/traffic.py" --path "$out" --set shop \
  --resolv-conf "$work/resolv.conf" --dns-upstream 127.0.0.1:53

echo "demo: the test-set, $out/shop:"
(cd "$out/shop" && find . -type f | sort | sed 's/^/  /')
"$python" - "$out/shop" <<'PY'
import sys, collections, pathlib, yaml
root = pathlib.Path(sys.argv[1])
mocks = list(yaml.safe_load_all((root / "mocks.yaml").read_text()))
print("  mocks by protocol:", dict(collections.Counter(m["protocol"] for m in mocks)))
PY
for secret in "$pg_password" "$redis_password" "$rates_token"; do
  if grep -rqF "$secret" "$out/shop"; then echo "demo: a secret reached the test-set" >&2; exit 1; fi
done
echo "demo: no password or token in any recorded file"

echo "demo: kpy validate (every file against schemas/, each mock against the schema lock)"
"$kpy" validate --path "$out" --set shop
migrations=$work/migrations
mkdir "$migrations"
cp examples/shop/seed.sql "$migrations/001_init.sql"
printf 'ALTER TABLE products RENAME COLUMN stock TO in_stock;\n' > "$migrations/002_rename_stock.sql"
echo "demo: kpy drift --migrations: which tests a migration renaming products.stock makes stale"
rc=0
"$kpy" drift --path "$out" --set shop --migrations "$migrations" || rc=$?
[ "$rc" = 3 ] || { echo "demo: kpy drift exited $rc, not 3 (re-record needed)" >&2; exit 1; }

echo "demo: stopping PostgreSQL, Redis and the rates API"
runuser -u postgres -- "$pgbin/pg_ctl" -D "$work/pg" -m fast -w stop >/dev/null
for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
pids=()
for port in "$pg_port" "$redis_port" "$rates_port"; do
  if "$python" -c "import socket,sys; socket.create_connection(('127.0.0.1', int(sys.argv[1])), 1)" "$port" 2>/dev/null; then
    echo "demo: port $port still answers" >&2; exit 1
  fi
done
echo "demo: kpy test -c 'python examples/shop/app.py' (no database, no Redis, no rates API)"
"$kpy" test -c "$python examples/shop/app.py" --path "$out" --set shop \
  --resolv-conf "$work/resolv.conf" --junit "$out/junit.xml"
echo "demo: JUnit report in $out/junit.xml"
