"""The layouts of bpf/kpy.h as ctypes structures, and pure conversions to and from them.

Addresses are 16 bytes in network order, IPv4 as mapped IPv6 (``::ffff:a.b.c.d``); ports
are host order except ``PassKey.port``.
"""

from __future__ import annotations

import ctypes
import ipaddress
import socket
import sys

from kpy_ci.address import Address

_U32x4: type[ctypes.Array[ctypes.c_uint32]] = ctypes.c_uint32 * 4


class Config(ctypes.Structure):
    _fields_ = [
        ("proxy_ip4", ctypes.c_uint32),
        ("proxy_ip6", _U32x4),
        ("dns_ip4", ctypes.c_uint32),
        ("dns_ip6", _U32x4),
        ("proxy_port", ctypes.c_uint16),
        ("dns_port", ctypes.c_uint16),
    ]


class Endpoint(ctypes.Structure):
    _fields_ = [("ip6", _U32x4), ("port", ctypes.c_uint16), ("family", ctypes.c_uint16)]


class PassKey(ctypes.Structure):
    _fields_ = [
        ("prefixlen", ctypes.c_uint32),
        ("ip6", _U32x4),
        ("port", ctypes.c_uint16),
        ("pad", ctypes.c_uint16),
    ]


_MAPPED_PREFIX = bytes(10) + b"\xff\xff"


def ip16(host: str) -> bytes:
    """16 bytes for any address; IPv4 becomes mapped IPv6. (inet_pton: this is on the
    proxy's per-connection path, and ipaddress is several times slower.)"""
    try:
        return _MAPPED_PREFIX + socket.inet_pton(socket.AF_INET, host)
    except OSError:
        try:
            return socket.inet_pton(socket.AF_INET6, host)
        except OSError:
            raise ValueError(f"{host!r} is not an IP address") from None


def words(ip: bytes) -> ctypes.Array[ctypes.c_uint32]:
    """16 network-order bytes as the four ``__u32`` the kernel stores them in."""
    return _U32x4.from_buffer_copy(ip)


def ip4_word(host: str) -> int:
    """An IPv4 address as the ``__u32`` whose memory is its network-order bytes."""
    return int.from_bytes(socket.inet_aton(host), sys.byteorder)


def make_config(
    proxy: Address | None,
    dns: Address | None,
    proxy6: str | None = None,
    dns6: str | None = None,
) -> Config:
    """IPv6 sockets go to ``proxy6`` / ``dns6``, or to the IPv4 address mapped when none
    is given (then a query to a native IPv6 resolver on an unconnected socket fails: the
    kernel cannot send it to a mapped address, and kpy will not let it out)."""
    cfg = Config()
    if proxy is not None:
        cfg.proxy_ip4 = ip4_word(proxy.host)
        cfg.proxy_ip6 = words(ip16(proxy6 or proxy.host))
        cfg.proxy_port = proxy.port
    if dns is not None:
        cfg.dns_ip4 = ip4_word(dns.host)
        cfg.dns_ip6 = words(ip16(dns6 or dns.host))
        cfg.dns_port = dns.port
    return cfg


def endpoint_key(host: str, port: int) -> Endpoint:
    """The kpy_origin key for a peer the proxy accepted."""
    return Endpoint(words(ip16(host)), port, 0)


def endpoint_address(ep: Endpoint) -> Address:
    return Address(show_ip(bytes(ep.ip6), ep.family), ep.port)


def show_ip(ip: bytes, family: int) -> str:
    """As the socket API shows it: IPv4 for AF_INET, ``::ffff:a.b.c.d`` when mapped."""
    v6 = ipaddress.IPv6Address(ip)
    if v6.ipv4_mapped is None:
        return str(v6)
    return str(v6.ipv4_mapped) if family == socket.AF_INET else f"::ffff:{v6.ipv4_mapped}"


def pass_key(network: str, port: int = 0) -> PassKey:
    """A passthrough rule: ``network`` (an address or CIDR), on ``port`` or any port (0)."""
    net = ipaddress.ip_network(network, strict=False)
    bits = net.prefixlen + (96 if net.version == 4 else 0)
    if port:
        if bits != 128:
            raise ValueError(f"passthrough {network}:{port}: a port needs a single address")
        bits += 16
    return PassKey(bits, words(ip16(str(net.network_address))), socket.htons(port), 0)
