"""Run inside a session by the tests: dial each HOST PORT [FAMILY] given, send the dialled
address, and print what getpeername() said as JSON lines. Exits 3 on a refused connect."""

import json
import socket
import sys

for spec in sys.argv[1:]:
    host, port, family = [*spec.split(","), "4"][:3]
    sock = socket.socket(socket.AF_INET6 if family == "6" else socket.AF_INET)
    sock.settimeout(10)
    try:
        sock.connect((host, int(port)))
    except ConnectionRefusedError:
        print(json.dumps({"dialled": [host, int(port)], "refused": True}), flush=True)
        sys.exit(3)
    sock.sendall(f"{host} {port}\n".encode())
    peer = sock.getpeername()
    print(json.dumps({"dialled": [host, int(port)], "peer": [peer[0], peer[1]]}), flush=True)
    sock.recv(1)  # wait for the listener to take the connection
    sock.close()
