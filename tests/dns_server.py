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
    """Listens on 127.0.0.1 and ::1 on one port, as kpy's DNS port does, and over TCP on
    127.0.0.1 at ``tcp_port`` (RFC 1035 4.2.2: each message after its two-byte length)."""

    def __init__(self, records: dict[str, str]) -> None:
        self.records = {name.rstrip(".") + ".": ip for name, ip in records.items()}
        self.questions: list[tuple[str, str, tuple[str, int]]] = []
        self.socks = loopback_pair(socket.SOCK_DGRAM)
        self.port = self.socks[0].getsockname()[1]
        self._stop = threading.Event()
        self.tcp = socket.create_server(("127.0.0.1", 0))
        self.tcp.settimeout(0.05)
        self.tcp_port = self.tcp.getsockname()[1]
        self._threads = [
            threading.Thread(target=self._serve, args=(s,), daemon=True) for s in self.socks
        ] + [threading.Thread(target=self._serve_tcp, daemon=True)]

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
        self.tcp.close()

    def _serve(self, sock: socket.socket) -> None:
        sock.settimeout(0.05)  # so __exit__ can stop the thread: close() does not wake it
        while not self._stop.is_set():
            try:
                data, peer = sock.recvfrom(4096)
            except TimeoutError:
                continue
            sock.sendto(self._reply(data, peer), peer)

    def _reply(self, data: bytes, peer: tuple[str, int]) -> bytes:
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
        return bytes(reply.to_wire())

    def _serve_tcp(self) -> None:
        while not self._stop.is_set():
            try:
                conn, peer = self.tcp.accept()
            except (TimeoutError, OSError):
                continue
            with conn:
                conn.settimeout(5)
                pending = b""
                while data := conn.recv(65536):
                    pending += data
                    while len(pending) >= 2 and len(pending) >= 2 + (
                        n := (pending[0] << 8) | pending[1]
                    ):
                        query, pending = pending[2 : 2 + n], pending[2 + n :]
                        answer = self._reply(query, peer)
                        conn.sendall(len(answer).to_bytes(2, "big") + answer)
