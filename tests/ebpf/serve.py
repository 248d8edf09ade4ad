"""Run inside a session by the tests: listen on HOST PORT, print what getsockname() says,
then answer each connection with the listening and the accepted socket's getsockname()."""

import json
import socket
import sys

host, port = sys.argv[1], int(sys.argv[2])
sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
sock.bind((host, port))
sock.listen()
print(json.dumps({"listening": list(sock.getsockname()[:2])}), flush=True)
while True:
    conn, _ = sock.accept()
    with conn:
        conn.recv(100)
        reply = {
            "listening": list(sock.getsockname()[:2]),
            "accepted": list(conn.getsockname()[:2]),
        }
        conn.sendall(json.dumps(reply).encode())
