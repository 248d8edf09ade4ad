"""The ClientHello as real clients send it (OpenSSL's, made through Python's ssl over memory
buffers): its SNI and ALPN are read, an address gives no SNI, and bytes that are not a
whole ClientHello are refused."""

from __future__ import annotations

import ssl
import struct

import pytest

from kpy_ci.protocols import tls


def client_hello(server_hostname: str | None, alpn: list[str] | None = None) -> bytes:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if alpn:
        context.set_alpn_protocols(alpn)
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    client = context.wrap_bio(incoming, outgoing, server_hostname=server_hostname)
    with pytest.raises(ssl.SSLWantReadError):
        client.do_handshake()
    return outgoing.read()


def test_sni_and_alpn_of_a_real_client_hello() -> None:
    data = client_hello("API.Example.test", ["h2", "http/1.1"])
    assert tls.sniff(data) and tls.sniff(data[:1])
    assert tls.hello_size(data) == len(data)
    hello = tls.parse_client_hello(data)
    assert hello == tls.ClientHello("api.example.test", ("h2", "http/1.1"))


def test_an_address_gives_no_server_name() -> None:
    assert tls.parse_client_hello(client_hello("127.0.0.1")) == tls.ClientHello(None, ())


@pytest.mark.parametrize(
    "first",
    [
        struct.pack(">II", 8, 80877103),  # PostgreSQL's SSLRequest
        b"*1\r\n$4\r\nPING\r\n",
        b"GET / HTTP/1.1\r\n",
        b"\x16\x01\x00",  # 0x16, but not TLS 1.x's version byte
    ],
)
def test_other_protocols_are_not_tls(first: bytes) -> None:
    assert not tls.sniff(first)


def test_what_is_not_a_whole_client_hello_is_refused() -> None:
    data = client_hello("api.test", ["http/1.1"])
    assert tls.hello_size(data[:4]) is None
    with pytest.raises(tls.NotClientHello):
        tls.parse_client_hello(data[:-1])
    with pytest.raises(tls.NotClientHello):  # a ServerHello's type where ClientHello stands
        tls.parse_client_hello(data[:5] + b"\x02" + data[6:])
    short = data[:3] + struct.pack(">H", 50) + data[5:55]  # a record that ends mid-hello
    with pytest.raises(tls.NotClientHello):
        tls.parse_client_hello(short)
