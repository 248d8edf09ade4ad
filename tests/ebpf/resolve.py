"""Run inside a session by the tests: resolve names the way services do, and print JSON.

gai NAME                  getaddrinfo() through glibc (a connected UDP socket)
raw NAME SERVER FAMILY    one query with sendto()/recvfrom() on an unconnected socket;
                          prints the answer and the address recvfrom() said it came from
"""

import json
import socket
import sys

import dns.message

what = sys.argv[1]
if what == "gai":
    infos = socket.getaddrinfo(sys.argv[2], 443, socket.AF_INET, socket.SOCK_STREAM)
    print(json.dumps({"addresses": sorted({i[4][0] for i in infos})}))
else:
    name, server, family = sys.argv[2], sys.argv[3], sys.argv[4]
    sock = socket.socket(socket.AF_INET6 if family == "6" else socket.AF_INET, socket.SOCK_DGRAM)
    sock.settimeout(5)
    sock.sendto(dns.message.make_query(name, "A").to_wire(), (server, 53))
    data, source = sock.recvfrom(4096)
    answer = [r.to_text() for rrset in dns.message.from_wire(data).answer for r in rrset]
    print(json.dumps({"answer": answer, "from": list(source[:2])}))
