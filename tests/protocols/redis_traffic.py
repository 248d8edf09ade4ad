"""Real Redis conversations for the protocol tests: each scenario drives real clients
(redis-py, redis-cli, redis-benchmark, or a plain socket for what libraries never send)
through a CaptureRelay in front of the real server, and keeps the bytes both ways."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time
from collections.abc import Callable

import redis as redis_py

from tests.capture import CaptureRelay, Connection
from tests.servers import REDIS_PASSWORD, Redis

PW = REDIS_PASSWORD
BINARY = bytes(range(256)) * 400  # 100 KiB, not UTF-8
BIG_TEXT = "kpy" * 70_000  # 210 KB of text


def resp(*words: str | bytes) -> bytes:
    """A command as a client library writes it."""
    args = [w.encode() if isinstance(w, str) else w for w in words]
    return b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args)


class Raw:
    """A client on a bare socket: sends bytes, reads until the reply ends as expected."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)

    def send(self, data: bytes, until: bytes) -> bytes:
        self.sock.sendall(data)
        return self.read(until)

    def read(self, until: bytes) -> bytes:
        got = b""
        while not got.endswith(until):
            chunk = self.sock.recv(65536)
            if not chunk:
                raise AssertionError(f"server closed; got {got[-200:]!r}, wanted {until!r}")
            got += chunk
        return got

    def close(self) -> None:
        self.sock.close()


def client(port: int, protocol: int = 2) -> redis_py.Redis:
    return redis_py.Redis(port=port, password=PW, protocol=protocol)


def data_types(port: int, protocol: int) -> None:
    """Strings (text, binary, big), lists, hashes, sets, sorted sets, nulls, errors,
    pipelines, MULTI/EXEC and an aborted one, Lua replies of every RESP3 type."""
    r = client(port, protocol)
    p = f"kpy:{protocol}:"
    r.set(p + "k", "v")
    r.get(p + "k")
    r.get(p + "missing")
    r.set(p + "bin", BINARY)
    r.get(p + "bin")
    r.set(p + "big", BIG_TEXT)
    r.get(p + "big")
    r.incr(p + "n")
    r.rpush(p + "list", "a", "b", "c")
    r.lrange(p + "list", 0, -1)
    r.hset(p + "hash", mapping={"f1": "1", "f2": "two"})
    r.hgetall(p + "hash")
    r.sadd(p + "set", "m")
    r.smembers(p + "set")
    r.zadd(p + "z", {"m": 1.5})
    r.zscore(p + "z", "m")
    r.blpop([p + "empty"], timeout=0.01)
    with contextlib.suppress(redis_py.ResponseError):
        r.lpush(p + "k", "x")  # WRONGTYPE
    with r.pipeline(transaction=False) as pipe:
        for i in range(40):
            pipe.set(f"{p}pipe{i}", i)
            pipe.get(f"{p}pipe{i}")
        pipe.execute()
    with r.pipeline() as pipe:  # MULTI ... EXEC
        pipe.set(p + "tx", "1")
        pipe.incr(p + "tx")
        pipe.get(p + "tx")
        pipe.execute()
    with r.pipeline() as pipe:  # WATCH, a write from elsewhere, EXEC aborted: a null
        pipe.watch(p + "watched")
        client(port).set(p + "watched", "changed")
        pipe.multi()
        pipe.set(p + "watched", "mine")
        with contextlib.suppress(redis_py.WatchError):
            pipe.execute()
    script = (
        "redis.setresp(3); return {true, false, {double=3.5}, {big_number='1234567890123456"
        "7890'}, {map={a=1}}, {set={x=true}}, {verbatim_string={format='txt', string='hi'}}}"
    )
    r.eval(script, 0)
    r.execute_command("INFO", "keyspace")  # RESP3: a verbatim string
    r.ping()
    r.close()


def pubsub(port: int, protocol: int) -> None:
    """SUBSCRIBE to two channels and a pattern; messages come unasked; unsubscribe all."""
    r = client(port, protocol)
    sub = r.pubsub()
    sub.subscribe(f"news{protocol}", f"sport{protocol}")
    sub.psubscribe(f"weather{protocol}.*")
    for _ in range(3):
        sub.get_message(timeout=5)
    r.publish(f"news{protocol}", "hello")
    r.publish(f"weather{protocol}.paris", b"\xffrain")
    for _ in range(2):
        assert sub.get_message(timeout=5) is not None
    sub.unsubscribe()
    sub.punsubscribe()
    for _ in range(3):
        sub.get_message(timeout=5)
    sub.close()
    r.close()


def tracking(port: int) -> None:
    """RESP3 client-side caching: invalidation pushes arrive between replies, unasked."""
    c = Raw(port)
    c.send(resp("HELLO", "3", "AUTH", "default", PW), b"modules\r\n*0\r\n")
    c.send(resp("CLIENT", "TRACKING", "on"), b"+OK\r\n")
    c.send(resp("GET", "kpy:tracked"), b"_\r\n")
    client(port).set("kpy:tracked", "elsewhere")
    c.read(b"kpy:tracked\r\n")  # the invalidation, alone
    pipeline = [resp("GET", "kpy:tracked"), resp("SET", "kpy:tracked", "mine"), resp("PING")]
    c.send(b"".join(pipeline), b"+PONG\r\n")
    c.close()


def inline(port: int) -> None:
    """Inline commands as typed into telnet: AUTH too; an empty line; quoting; last, a line
    with unbalanced quotes, which the server answers with an error and a close."""
    c = Raw(port)
    c.send(f"AUTH {PW}\r\n".encode(), b"+OK\r\n")
    c.send(b"PING\r\n", b"+PONG\r\n")
    c.send(b'\r\nSET kpy:inline "hello world\\x21"\r\nget kpy:inline\r\nping\r\n', b"+PONG\r\n")
    c.send(b'SET kpy:inline "unbalanced\r\n', b"unbalanced quotes in request\r\n")
    c.close()


def monitor(port: int) -> None:
    """MONITOR streams other clients' commands; RESET ends it (and logs the connection out)."""
    c = Raw(port)
    c.send(resp("AUTH", PW), b"+OK\r\n")
    c.send(resp("MONITOR"), b"+OK\r\n")
    other = client(port)
    other.set("kpy:monitored", "1")
    c.read(b'"kpy:monitored" "1"\r\n')
    c.send(resp("RESET"), b"+RESET\r\n")
    c.send(resp("AUTH", PW) + resp("PING"), b"+OK\r\n+PONG\r\n")
    c.close()
    other.close()


def client_reply(port: int) -> None:
    """CLIENT REPLY SKIP and OFF: commands the server does not answer."""
    c = Raw(port)
    c.send(resp("AUTH", "default", PW), b"+OK\r\n")
    commands = [
        resp("CLIENT", "REPLY", "SKIP"),
        resp("SET", "kpy:quiet", "1"),
        resp("CLIENT", "REPLY", "OFF"),
        resp("SET", "kpy:quiet", "2"),
        resp("CLIENT", "REPLY", "ON"),
        resp("GET", "kpy:quiet"),
    ]
    c.send(b"".join(commands), b"+OK\r\n$1\r\n2\r\n")
    c.close()


def unanswered(port: int) -> None:
    """A blocking command the connection closes on, before any reply."""
    c = Raw(port)
    c.send(resp("AUTH", PW), b"+OK\r\n")
    c.sock.sendall(resp("BLPOP", "kpy:never", "0"))
    time.sleep(0.1)
    c.close()


def cli(port: int) -> None:
    base = ["redis-cli", "-h", "127.0.0.1", "-p", str(port), "-a", PW, "--no-auth-warning"]
    for args in (
        ["SET", "kpy:cli", "from cli"],
        ["GET", "kpy:cli"],
        ["RPUSH", "kpy:cli:list", "x", "y"],
        ["-3", "LRANGE", "kpy:cli:list", "0", "-1"],
        ["-3", "HGETALL", "kpy:3:hash"],
        ["-n", "1", "PING"],
        ["-3", "CONFIG", "SET", "masterauth", PW],
        ["CONFIG", "SET", "masterauth", ""],
    ):
        subprocess.run([*base, *args], check=True, capture_output=True, timeout=30)


def benchmark(port: int) -> None:
    argv = ["redis-benchmark", "-h", "127.0.0.1", "-p", str(port), "-a", PW, "-q"]
    command = [*argv, "-t", "get,set", "-n", "200", "-P", "16"]
    subprocess.run(command, check=True, capture_output=True, timeout=60)


SCENARIOS: dict[str, Callable[[int], None]] = {
    "resp2": lambda port: data_types(port, 2),
    "resp3": lambda port: data_types(port, 3),
    "pubsub2": lambda port: pubsub(port, 2),
    "pubsub3": lambda port: pubsub(port, 3),
    "tracking": tracking,
    "inline": inline,
    "monitor": monitor,
    "client_reply": client_reply,
    "unanswered": unanswered,
    "cli": cli,
    "benchmark": benchmark,
}


def capture(server: Redis, scenario: Callable[[int], None]) -> list[Connection]:
    """The connections a scenario made through a capturing relay, each once both of its
    sides had closed."""
    with CaptureRelay(server.port) as relay:
        scenario(relay.port)
        time.sleep(0.2)  # let the relay see the last closes
    return [c for c in relay.connections if c.chunks]
