"""Real PostgreSQL and Redis servers for the tests, started on loopback ports of their own
(the machine's packages: postgresql, redis-server; scripts/install.sh installs them).

PostgreSQL runs as the ``postgres`` system user (initdb refuses root) with three roles, one
per authentication method kpy must pass through: ``kpy`` (scram-sha-256), ``kpy_md5``
(md5) and ``kpy_trust`` (trust). Redis runs with a password (``AUTH``) when asked.
Either can serve TLS with a certificate from tests/tls_certs.py, as a managed database does
with its provider's CA.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.tls_certs import Issued

PG_PASSWORD = "pg-secret-K3y-for-tests"
REDIS_PASSWORD = "redis-secret-K3y-for-tests"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def loopback_pair(kind: int = socket.SOCK_STREAM) -> tuple[socket.socket, socket.socket]:
    """Sockets bound on 127.0.0.1 and ::1 to one free port (TCP ones listening): a server a
    client reaches however ``localhost`` resolves (a Debian /etc/hosts names ::1 too)."""
    for _ in range(50):
        v4 = socket.socket(socket.AF_INET, kind)
        v4.bind(("127.0.0.1", 0))
        v6 = socket.socket(socket.AF_INET6, kind)
        try:
            v6.bind(("::1", v4.getsockname()[1]))
        except OSError:
            v4.close()
            v6.close()
            continue
        if kind == socket.SOCK_STREAM:
            v4.listen(64)
            v6.listen(64)
        return v4, v6
    raise OSError("no port free on both 127.0.0.1 and ::1")


def wait_for_port(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


@dataclass(frozen=True)
class Postgres:
    port: int
    host: str = "127.0.0.1"
    database: str = "kpy"

    def dsn(self, user: str = "kpy", password: str | None = PG_PASSWORD) -> str:
        secret = f":{password}" if password else ""
        return f"postgresql://{user}{secret}@{self.host}:{self.port}/{self.database}"

    def env(self, user: str = "kpy", password: str | None = PG_PASSWORD) -> dict[str, str]:
        """libpq's variables, for psql and pgbench."""
        env = {"PGHOST": self.host, "PGPORT": str(self.port), "PGDATABASE": self.database}
        env["PGUSER"] = user
        if password:
            env["PGPASSWORD"] = password
        return env


def pg_bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if not found:
        raise FileNotFoundError(f"{name}: PostgreSQL server is not installed (apt: postgresql)")
    return found[-1]


def _as_postgres(*argv: str) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *argv]


@contextmanager
def postgres_server(tls: bool = False, cert: Issued | None = None) -> Iterator[Postgres]:
    """initdb, configure the three auth methods, start; stop and remove on exit. Its files
    live in a directory of its own that the postgres user can reach. With ``tls``, the
    server offers TLS (a self-signed certificate), as most real ones do; with ``cert``, it
    offers TLS with that certificate, so a client can verify it (``sslmode=verify-full``
    with ``sslrootcert=cert.ca_path``)."""
    workdir = Path(tempfile.mkdtemp(prefix="kpy-test-pg-"))
    data = workdir / "pgdata"
    shutil.chown(workdir, "postgres")
    port = free_port()
    subprocess.run(
        # UTF8 whatever the machine's locale (a bare one gives SQL_ASCII)
        _as_postgres(
            pg_bin("initdb"),
            "-D",
            str(data),
            "-U",
            "postgres",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--locale=C",
        ),
        check=True,
        capture_output=True,
    )
    (data / "pg_hba.conf").write_text(
        "local all all trust\n"
        "host all postgres 127.0.0.1/32 trust\n"
        "host all kpy_trust 127.0.0.1/32 trust\n"
        "host all kpy_md5 127.0.0.1/32 md5\n"
        "host all all 127.0.0.1/32 scram-sha-256\n"
    )
    options = f"-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={workdir}"
    if cert is not None:
        shutil.copyfile(cert.cert_path, data / "server.crt")
        shutil.copyfile(cert.key_path, data / "server.key")
    elif tls:
        subprocess.run(
            [
                "openssl",
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "1",
                "-subj",
                "/CN=127.0.0.1",
                "-keyout",
                str(data / "server.key"),
                "-out",
                str(data / "server.crt"),
            ],
            check=True,
            capture_output=True,
        )
    if tls or cert is not None:
        for name in ("server.key", "server.crt"):
            shutil.chown(data / name, "postgres")
            (data / name).chmod(0o600)
        options += " -c ssl=on"
    subprocess.run(
        _as_postgres(
            pg_bin("pg_ctl"),
            "-D",
            str(data),
            "-o",
            options,
            "-l",
            str(workdir / "pg.log"),
            "-w",
            "start",
        ),
        check=True,
        capture_output=True,
    )
    try:
        # each statement in its own psql -c would lose the SET: one session each
        statements = [
            f"SET password_encryption = 'scram-sha-256'; "
            f"CREATE ROLE kpy LOGIN SUPERUSER PASSWORD '{PG_PASSWORD}'",
            f"SET password_encryption = 'md5'; "
            f"CREATE ROLE kpy_md5 LOGIN SUPERUSER PASSWORD '{PG_PASSWORD}'",
            "CREATE ROLE kpy_trust LOGIN SUPERUSER",
            "CREATE DATABASE kpy OWNER kpy",
        ]
        for statement in statements:
            subprocess.run(
                [
                    pg_bin("psql"),
                    "-h",
                    str(workdir),
                    "-p",
                    str(port),
                    "-U",
                    "postgres",
                    "-d",
                    "postgres",
                    "-v",
                    "ON_ERROR_STOP=1",
                    "-qc",
                    statement,
                ],
                check=True,
                capture_output=True,
            )
        yield Postgres(port)
    finally:
        subprocess.run(
            _as_postgres(pg_bin("pg_ctl"), "-D", str(data), "-m", "immediate", "stop"),
            capture_output=True,
        )
        shutil.rmtree(workdir, ignore_errors=True)


@dataclass(frozen=True)
class Redis:
    port: int
    password: str | None
    host: str = "127.0.0.1"
    tls: bool = False

    def url(self) -> str:
        secret = f":{self.password}@" if self.password else ""
        return f"{'rediss' if self.tls else 'redis'}://{secret}{self.host}:{self.port}/0"


@contextmanager
def redis_server(
    workdir: Path, password: str | None = REDIS_PASSWORD, tls: Issued | None = None
) -> Iterator[Redis]:
    """A Redis on a port of its own. With ``tls``, it speaks TLS only, with that
    certificate (no plain port: a client that forgets TLS gets nothing), and asks clients
    for no certificate of theirs."""
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    if tls is None:
        listen = ["--port", str(port)]
    else:
        listen = [
            "--port",
            "0",
            "--tls-port",
            str(port),
            "--tls-cert-file",
            str(tls.cert_path),
            "--tls-key-file",
            str(tls.key_path),
            "--tls-ca-cert-file",
            str(tls.ca_path),
            "--tls-auth-clients",
            "no",
        ]
    argv = [
        "redis-server",
        *listen,
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        str(workdir),
        "--daemonize",
        "no",
    ]
    if password:
        argv += ["--requirepass", password]
    proc = subprocess.Popen(
        argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=os.setpgrp
    )
    try:
        wait_for_port(port)
        yield Redis(port, password, tls=tls is not None)
    finally:
        proc.kill()
        proc.wait(10)


MARIADB_PASSWORD = "s3cret-mysql-pw"


@dataclass(frozen=True)
class MariaDB:
    """A MariaDB server on a loopback port: database ``app``, user ``app`` (password
    ``s3cret-mysql-pw``, mysql_native_password) with every privilege on it (and on
    ``mysqlslap``, the schema mysqlslap makes and drops); ``root`` logs in through
    ``socket`` only (no password)."""

    port: int
    socket: str
    host: str = "127.0.0.1"
    user: str = "app"
    password: str = MARIADB_PASSWORD
    database: str = "app"

    def url(self, driver: str = "mysql+pymysql", password: str | None = None) -> str:
        secret = self.password if password is None else password
        return f"{driver}://{self.user}:{secret}@{self.host}:{self.port}/{self.database}"

    def connect_args(self) -> dict[str, object]:
        """Keyword arguments for pymysql.connect / mysql.connector.connect."""
        return {
            "host": self.host,
            "port": self.port,
            "user": self.user,
            "password": self.password,
            "database": self.database,
        }

    def cli(self, *argv: str) -> list[str]:
        """The ``mysql`` client (or ``mysqlslap`` with ``argv[0]``) over TCP as ``app``."""
        return [
            "mysql",
            "--no-defaults",
            "--protocol=TCP",
            f"--host={self.host}",
            f"--port={self.port}",
            f"--user={self.user}",
            f"--password={self.password}",
            self.database,
            *argv,
        ]


@contextmanager
def mariadb_server() -> Iterator[MariaDB]:
    """mariadb-install-db into a datadir of its own, mariadbd as the mysql user on
    127.0.0.1 and a free port (no name resolution, LOCAL INFILE allowed), the ``app``
    database and user; stopped and removed on exit."""
    workdir = Path(tempfile.mkdtemp(prefix="kpy-test-mariadb-"))
    data = workdir / "data"
    sock = workdir / "mysqld.sock"
    shutil.chown(workdir, "mysql", "mysql")
    port = free_port()
    install = shutil.which("mariadb-install-db") or "mysql_install_db"
    subprocess.run(
        [
            install,
            "--no-defaults",
            f"--datadir={data}",
            "--user=mysql",
            "--auth-root-authentication-method=socket",
            "--skip-test-db",
            "--skip-name-resolve",
        ],
        check=True,
        capture_output=True,
    )
    server = shutil.which("mariadbd") or "/usr/sbin/mariadbd"
    proc = subprocess.Popen(
        [
            server,
            "--no-defaults",
            f"--datadir={data}",
            "--user=mysql",
            "--bind-address=127.0.0.1",
            f"--port={port}",
            f"--socket={sock}",
            f"--pid-file={workdir / 'mysqld.pid'}",
            f"--log-error={workdir / 'error.log'}",
            "--skip-name-resolve",
            "--local-infile=1",
            "--skip-log-bin",
            "--innodb-buffer-pool-size=16M",
            "--innodb-log-file-size=8M",
            "--character-set-server=utf8mb4",
            "--collation-server=utf8mb4_general_ci",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=os.setpgrp,
    )
    try:
        deadline = time.monotonic() + 60
        root = ["mysql", "--no-defaults", f"--socket={sock}", "-uroot"]
        while subprocess.run([*root, "-e", "SELECT 1"], capture_output=True).returncode != 0:
            if proc.poll() is not None or time.monotonic() > deadline:
                log = (workdir / "error.log").read_text(errors="replace")
                raise RuntimeError(f"mariadbd did not start:\n{log[-3000:]}")
            time.sleep(0.1)
        subprocess.run(
            [
                *root,
                "-e",
                "CREATE DATABASE app CHARACTER SET utf8mb4; "
                f"CREATE USER 'app'@'%' IDENTIFIED VIA mysql_native_password "
                f"USING PASSWORD('{MARIADB_PASSWORD}'); "
                "GRANT ALL PRIVILEGES ON app.* TO 'app'@'%'; "
                "GRANT ALL PRIVILEGES ON mysqlslap.* TO 'app'@'%'; FLUSH PRIVILEGES;",
            ],
            check=True,
            capture_output=True,
        )
        wait_for_port(port)
        yield MariaDB(port, str(sock))
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        shutil.rmtree(workdir, ignore_errors=True)


@contextmanager
def line_server(greeting: bytes, tls: ssl.SSLContext | None = None) -> Iterator[int]:
    """A line protocol's server on loopback (inside TLS with ``tls``), one connection at a
    time: sends ``greeting`` (if any), then answers each line with ``ok LINE``."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def serve() -> None:
        while True:
            try:
                raw, _ = listener.accept()
                conn = tls.wrap_socket(raw, server_side=True) if tls else raw
            except OSError:
                return
            with conn:
                conn.sendall(greeting)
                for line in conn.makefile("rb"):
                    conn.sendall(b"ok " + line)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield port
    finally:
        listener.close()
