"""MySQL through kpy end to end: a service whose routes run the mysql CLI (also as a user
who authenticates with ed25519, after an auth switch), mysqlslap, PyMySQL,
mysql-connector-python (prepared statements, its caching_sha2_password switched to
mysql_native_password), SQLAlchemy over PyMySQL and Node.js mysql2 (text and prepared)
against a real MariaDB, recorded by ``kpy record`` through eBPF
and the real proxy. Every connection is recorded as MySQL, byte-exact (no reply kept as
``raw``), with no password or auth scramble in any byte written; then replayed by
``kpy test`` with nothing listening where MariaDB was.

A capturing relay stands between kpy and MariaDB, outside the service's cgroup: it sees the
very bytes the clients sent, so the test knows each scramble it must not find.
"""

from __future__ import annotations

import base64
import shlex
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.capture import CaptureRelay, Connection
from tests.conftest import child_env, free_port, record_with_kpy, replay_with_kpy
from tests.protocols.mysql.clients import client_secrets
from tests.servers import MariaDB
from tests.test_record import load_set

REPO = Path(__file__).resolve().parent.parent
NODE_MODULES = REPO / "examples" / "mysql" / "node" / "node_modules"

SERVICE = r"""
import json, os, subprocess, sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
sys.path.insert(0, os.environ["REPO"])
from tests.protocols.mysql import clients
from tests.servers import MariaDB
from tests.test_record import load_set

port, password = int(os.environ["MYSQL_PORT"]), os.environ["MYSQL_PASSWORD"]
server = MariaDB(port=port, socket="/nonexistent")
ROUTES = {
    "/pymysql": lambda: clients.pymysql_session(port, password, Path(os.environ["INFILE"])),
    "/connector": lambda: clients.connector_session(port, password),
    "/sqlalchemy": lambda: clients.sqlalchemy_session(port, password),
    "/cli": lambda: clients.cli_session(server, port),
    "/ed25519": lambda: clients.cli_session(
        MariaDB(port=port, socket="/nonexistent", user="ed", password=os.environ["ED_PASSWORD"]),
        port,
    ),
    "/slap": lambda: len(clients.slap_session(server, port)) > 0,
    "/node": lambda: subprocess.run(
        ["node", os.environ["NODE_SCRIPT"]], capture_output=True, text=True, check=True
    ).stdout,
}

class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        body = json.dumps(ROUTES[self.path](), default=str).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler).serve_forever()
"""

NODE = """
const mysql = require(process.env.NODE_MODULES + '/mysql2/promise');
(async () => {
  const conn = await mysql.createConnection({host: '127.0.0.1', port: +process.env.MYSQL_PORT,
    user: 'app', password: process.env.MYSQL_PASSWORD, database: 'app'});
  await conn.query('CREATE TABLE IF NOT EXISTS node_pets (id INT PRIMARY KEY, name TEXT)');
  await conn.query('DELETE FROM node_pets');
  await conn.execute('INSERT INTO node_pets VALUES (?, ?)', [1, 'Rex']);
  await conn.execute('INSERT INTO node_pets VALUES (?, ?)', [2, 'Tom']);
  const [text] = await conn.query('SELECT id, name FROM node_pets ORDER BY id');
  const [prepared] = await conn.execute('SELECT name FROM node_pets WHERE id = ?', [2]);
  console.log(JSON.stringify({text, prepared}));
  await conn.end();
})().catch((e) => { console.error(e); process.exit(1); });
"""

CLIENTS = ["/pymysql", "/connector", "/sqlalchemy", "/cli", "/ed25519", "/node"]
ED_PASSWORD = "ed-25519-s3cret-pw"


def ed25519_user(db: MariaDB) -> None:
    """A user of MariaDB's ed25519 plugin: the server greets with mysql_native_password,
    then switches the client to client_ed25519 (a signature of the nonce)."""
    sql = (
        "INSTALL SONAME 'auth_ed25519'; "
        "CREATE USER IF NOT EXISTS 'ed'@'%' IDENTIFIED VIA ed25519 "
        f"USING PASSWORD('{ED_PASSWORD}'); "
        "GRANT ALL ON app.* TO 'ed'@'%'"
    )
    root = ["mysql", "--no-defaults", f"--socket={db.socket}", "-uroot", "--force", "-e", sql]
    subprocess.run(root, capture_output=True, timeout=30)  # installed already: the rest goes on
    check = db.cli("-e", "SELECT 1")
    check = [
        a.replace(f"--user={db.user}", "--user=ed").replace(db.password, ED_PASSWORD) for a in check
    ]
    subprocess.run(check, check=True, capture_output=True, timeout=30)


@dataclass
class Recorded:
    path: Path
    port: int
    env: dict[str, str]
    command: list[str]
    connections: list[Connection]
    stderr: str


@pytest.fixture(scope="module")
def recorded(mariadb: MariaDB, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Recorded]:
    tmp = tmp_path_factory.mktemp("mysql-kpy")
    (tmp / "service.py").write_text(SERVICE)
    (tmp / "pets.js").write_text(NODE)
    (tmp / "people.csv").write_text("Zed,3.5\nYan,4\n")
    port = free_port()
    command = [sys.executable, str(tmp / "service.py")]
    ed25519_user(mariadb)
    with CaptureRelay(mariadb.port) as relay:
        env = child_env() | {
            "REPO": str(REPO),
            "PORT": str(port),
            "MYSQL_PORT": str(relay.port),
            "MYSQL_PASSWORD": mariadb.password,
            "ED_PASSWORD": ED_PASSWORD,
            "INFILE": str(tmp / "people.csv"),
            "NODE_SCRIPT": str(tmp / "pets.js"),
            "NODE_MODULES": str(NODE_MODULES),
        }
        fetch = "import os, urllib.request as u; [u.urlopen(os.environ['BASE_URL'] + r).read() "
        traffic = shlex.join([sys.executable, "-c", fetch + f"for r in {CLIENTS}]"])
        done = record_with_kpy(command, port, tmp / "kpy", traffic, env, "--set", "clients")
        assert done.returncode == 0, done.stderr
        slap = "import os, urllib.request as u; u.urlopen(os.environ['BASE_URL'] + '/slap').read()"
        traffic = shlex.join([sys.executable, "-c", slap])
        again = record_with_kpy(command, port, tmp / "kpy", traffic, env, "--set", "slap")
        assert again.returncode == 0, again.stderr
        relay.wait_closed()
    yield Recorded(tmp / "kpy", port, env, command, relay.connections, done.stderr + again.stderr)


def mocks(path: Path) -> list[dict[str, Any]]:
    return load_set(path)[2]


def test_every_connection_is_recorded_as_mysql_byte_exact(recorded: Recorded) -> None:
    assert "did not re-encode" not in recorded.stderr
    assert "any more" not in recorded.stderr  # no connection fell back to generic
    for name in ("clients", "slap"):
        docs = [d for d in mocks(recorded.path / name) if d["protocol"] != "dns"]
        assert docs and {d["protocol"] for d in docs} == {"mysql"}
        assert not any("raw" in d["response"] for d in docs)  # recording.py's fallback
    connects = [
        d for d in mocks(recorded.path / "clients") if d["request"].get("command") == "connect"
    ]
    # PyMySQL, mysql-connector, SQLAlchemy, the CLI twice and mysql2: a connection each at least
    assert len({d["connection"] for d in connects}) >= 6
    plugins = {d["request"]["auth_plugin"] for d in connects}
    assert {"mysql_native_password", "caching_sha2_password"} <= plugins
    switched = [
        r["switch"]["plugin"] for d in connects for r in d["response"]["results"] if "switch" in r
    ]
    assert {"client_ed25519", "mysql_native_password"} <= set(switched)
    slapped = {d["connection"] for d in mocks(recorded.path / "slap")}
    assert len(slapped) >= 4  # mysqlslap's own connections, concurrency 2, 2 iterations


def test_no_password_or_scramble_in_any_byte(recorded: Recorded, mariadb: MariaDB) -> None:
    secrets = [s for conn in recorded.connections for s in client_secrets(conn.side("client"))]
    assert len(secrets) >= 5
    forbidden = [mariadb.password.encode(), ED_PASSWORD.encode()]
    for secret in secrets:
        forbidden += [secret, base64.b64encode(secret), secret.hex().encode()]
    files = [p for p in recorded.path.rglob("*") if p.is_file()]
    assert files
    for path in files:
        data = path.read_bytes()
        for form in forbidden:
            assert form not in data, f"{path} holds a secret"


def test_the_clients_replay_with_nothing_where_mariadb_was(
    recorded: Recorded, tmp_path: Path
) -> None:
    done = replay_with_kpy(
        recorded.command, recorded.path, tmp_path, recorded.env, "--set", "clients"
    )
    assert done.returncode == 0, done.stderr
    assert f"{len(CLIENTS)} passed, 0 failed" in done.stderr
    assert "unused" not in done.stderr
