"""A live look at kpy's redirect: `kpy run` starts a client in its own cgroup; the client
dials 127.0.0.1 on a port where nothing listens, and lands on this script's listener, while
the client itself still sees the address it dialled."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
from pathlib import Path

KPY = str(Path(sys.executable).with_name("kpy"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> int:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    proxy_port = listener.getsockname()[1]
    nowhere = free_port()
    got: list[bytes] = []

    def serve() -> None:
        conn, _ = listener.accept()
        got.append(conn.recv(100))
        conn.sendall(b"answered by the demo listener on port %d" % proxy_port)
        conn.close()

    threading.Thread(target=serve, daemon=True).start()
    client = (
        f"import socket; c = socket.create_connection(('127.0.0.1', {nowhere}), timeout=10); "
        "c.sendall(b'hello'); print('client: getpeername() =', c.getpeername()); "
        "print('client: got', c.recv(100).decode())"
    )
    print(f"demo: the client dials 127.0.0.1:{nowhere} (closed); kpy's proxy is :{proxy_port}")
    rc = subprocess.call(
        [KPY, "run", "--proxy", f"127.0.0.1:{proxy_port}", "-c", f'{sys.executable} -c "{client}"']
    )
    print(f"demo: the listener received {got[0] if got else None!r}; kpy run exited {rc}")
    return rc if got == [b"hello"] else 1


if __name__ == "__main__":
    sys.exit(main())
