"""The Python mirrors of bpf/kpy.h match the compiled object's BTF, and the conversions
between addresses and map layouts are right."""

from __future__ import annotations

import ctypes
import re
import socket
import subprocess

import pytest

from kpy_ci.address import Address
from kpy_ci.ebpf import maps
from kpy_ci.ebpf.session import bpf_object_path


def btf_structs() -> dict[str, tuple[int, dict[str, int]]]:
    """struct name -> (size, {member: byte offset}) from the object's BTF."""
    raw = subprocess.run(
        ["bpftool", "btf", "dump", "file", str(bpf_object_path()), "format", "raw"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    structs: dict[str, tuple[int, dict[str, int]]] = {}
    current: dict[str, int] | None = None
    for line in raw.splitlines():
        head = re.match(r"\[\d+\] STRUCT '(\w+)' size=(\d+)", line)
        member = re.match(r"\s+'(\w+)' type_id=\d+ bits_offset=(\d+)", line)
        if head:
            current = {}
            structs[head.group(1)] = (int(head.group(2)), current)
        elif member and current is not None:
            current[member.group(1)] = int(member.group(2)) // 8
        else:
            current = None
    return structs


@pytest.mark.parametrize(
    ("name", "mirror"),
    [("kpy_config", maps.Config), ("kpy_endpoint", maps.Endpoint), ("kpy_pass_key", maps.PassKey)],
)
def test_layouts_match_the_compiled_object(name: str, mirror: type[ctypes.Structure]) -> None:
    size, members = btf_structs()[name]
    assert ctypes.sizeof(mirror) == size
    assert {f[0]: getattr(mirror, f[0]).offset for f in mirror._fields_} == members


def test_address_parse() -> None:
    assert Address.parse("127.0.0.1:5432") == Address("127.0.0.1", 5432)
    assert Address.parse("[::1]:80") == Address("::1", 80)
    assert str(Address("::1", 80)) == "[::1]:80"
    for bad in ("127.0.0.1", "localhost:80", "127.0.0.1:0", "127.0.0.1:70000", "[::1]:x"):
        with pytest.raises(ValueError, match="not"):
            Address.parse(bad)


def test_ipv4_is_stored_mapped_in_network_order() -> None:
    assert maps.ip16("127.0.0.2") == bytes(10) + b"\xff\xff\x7f\x00\x00\x02"
    assert bytes(maps.words(maps.ip16("::1"))) == bytes(15) + b"\x01"
    # the __u32 the kernel compares with ctx->user_ip4 has the address's bytes in memory
    assert bytes(ctypes.c_uint32(maps.ip4_word("127.0.0.2"))) == socket.inet_aton("127.0.0.2")


def test_config_ipv6_defaults_to_mapped_proxy() -> None:
    cfg = maps.make_config(Address("127.0.0.1", 9000), Address("127.0.0.1", 5353))
    assert bytes(cfg.proxy_ip6) == maps.ip16("127.0.0.1")
    assert (cfg.proxy_port, cfg.dns_port) == (9000, 5353)
    cfg6 = maps.make_config(Address("127.0.0.1", 9000), None, proxy6="::1")
    assert bytes(cfg6.proxy_ip6) == maps.ip16("::1") and cfg6.dns_port == 0


def test_endpoint_shows_addresses_as_the_socket_api_does() -> None:
    ep = maps.Endpoint(maps.words(maps.ip16("127.0.0.1")), 80, socket.AF_INET)
    assert maps.endpoint_address(ep) == Address("127.0.0.1", 80)
    ep.family = socket.AF_INET6
    assert maps.endpoint_address(ep) == Address("::ffff:127.0.0.1", 80)
    ep6 = maps.Endpoint(maps.words(maps.ip16("::1")), 80, socket.AF_INET6)
    assert maps.endpoint_address(ep6) == Address("::1", 80)


def test_pass_keys() -> None:
    net = maps.pass_key("10.1.0.0/16")
    assert net.prefixlen == 96 + 16 and net.port == 0
    host_port = maps.pass_key("127.0.0.5", 5432)
    assert host_port.prefixlen == 144 and host_port.port == socket.htons(5432)
    assert maps.pass_key("fd00::/8").prefixlen == 8
    with pytest.raises(ValueError, match="single address"):
        maps.pass_key("10.0.0.0/8", 80)
