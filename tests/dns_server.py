"""A real DNS server on loopback for the tests (dnspython for the messages): answers A and
AAAA from a table, NXDOMAIN otherwise, and remembers every question it was asked."""

from __future__ import annotations

import socket
import threading
from types import TracebackType

import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset

from tests.servers import loopback_pair


class DnsServer:
    """Listens on 127.0.0.1 and ::1 on one port, as kpy's DNS port does."""

    def __init__(self, records: dict[str, str]) -> None:
        self.records = {name.rstrip(".") + ".": ip for name, ip in records.items()}
        self.questions: list[tuple[str, str, tuple[str, int]]] = []
        self.socks = loopback_pair(socket.SOCK_DGRAM)
        self.port = self.socks[0].getsockname()[1]
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._serve, args=(s,), daemon=True) for s in self.socks
        ]

    def __enter__(self) -> DnsServer:
        for t in self._threads:
            t.start()
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(5)
        for s in self.socks:
            s.close()

    def _serve(self, sock: socket.socket) -> None:
        sock.settimeout(0.05)  # so __exit__ can stop the thread: close() does not wake it
        while not self._stop.is_set():
            try:
                data, peer = sock.recvfrom(4096)
            except TimeoutError:
                continue
            query = dns.message.from_wire(data)
            reply = dns.message.make_response(query)
            question = query.question[0]
            name, rdtype = question.name.to_text(), dns.rdatatype.to_text(question.rdtype)
            self.questions.append((name, rdtype, peer[:2]))
            ip = self.records.get(name)
            if ip is None:
                reply.set_rcode(dns.rcode.NXDOMAIN)
            elif (rdtype == "A") == ("." in ip):
                reply.answer.append(dns.rrset.from_text(name, 60, "IN", rdtype, ip))
            sock.sendto(reply.to_wire(), peer)
