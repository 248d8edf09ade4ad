"""Where a connection goes: an IP address and port, as the socket API and kpy's files
show it. Shared by the eBPF session, the proxy and the files; it belongs to none."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass


@dataclass(frozen=True)
class Address:
    """An IP address and port, as a socket API shows it (``::ffff:…`` stays mapped)."""

    host: str
    port: int

    @classmethod
    def parse(cls, text: str) -> Address:
        """``127.0.0.1:8080``, ``[::1]:8080``; ValueError with the reason otherwise."""
        host, sep, port = text.rpartition(":")
        if not sep or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"{text!r} is not HOST:PORT with a port from 1 to 65535")
        host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
        try:
            ipaddress.ip_address(host)
        except ValueError:
            raise ValueError(f"{host!r} in {text!r} is not an IP address") from None
        return cls(host, int(port))

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def plain_ip(text: str) -> str:
    """An address as a client wrote it: a mapped IPv6 (a dual-stack socket's
    ``::ffff:127.0.0.1``) as its IPv4; a name as it is."""
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return text
    mapped = ip.ipv4_mapped if isinstance(ip, ipaddress.IPv6Address) else None
    return str(mapped or ip)


def host_of(destination: str) -> str:
    """The address of ``127.0.0.1:80`` or ``[::1]:80``, plain (:func:`plain_ip`)."""
    return plain_ip(destination.rpartition(":")[0].strip("[]"))
