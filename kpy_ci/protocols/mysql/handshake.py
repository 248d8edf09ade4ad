"""The connection phase: the server's greeting (Initial Handshake, protocol version 10),
the client's HandshakeResponse41, and the authentication packets between them and the
final OK or ERR (auth switch 0xFE, auth more data 0x01). Sans-I/O.

What the client sends to authenticate (its scramble, a cleartext or RSA-encrypted
password, an ed25519 signature) is never kept: ``auth_response`` is REDACTED. The user,
database, plugin, capabilities and connection attributes are kept."""

from __future__ import annotations

import struct

from kpy_ci.protocols.base import REDACTED, Doc, ProtocolError, from_text_or_base64, text_or_base64
from kpy_ci.protocols.mysql import flags
from kpy_ci.protocols.mysql.packets import Reader, encode_packet, lenenc_str
from kpy_ci.protocols.mysql.results import b64

PROTOCOL_VERSION = 10
CLEARED = flags.SSL | flags.COMPRESS | flags.ZSTD
"""Capabilities kpy takes out of the greeting: clients then go on in plain text,
uncompressed, which kpy can record."""


def decode_greeting(data: bytes) -> Doc:
    r = Reader(data)
    if r.uint(1) != PROTOCOL_VERSION:
        raise ProtocolError("MySQL greeting of another protocol version")
    doc: Doc = {"protocol_version": PROTOCOL_VERSION}
    doc["server_version"] = r.nul().decode("utf-8")
    doc["connection_id"] = r.uint(4)
    part1 = r.take(8)
    if r.take(1) != b"\0":
        raise ProtocolError("MySQL greeting filler is not zero")
    capabilities = r.uint(2)
    charset, status, high, data_len = struct.unpack("<BHHB", r.take(6))
    capabilities |= high << 16
    reserved = r.take(6)
    extended = r.uint(4)
    if reserved != bytes(6):
        raise ProtocolError("MySQL greeting reserved bytes are not zero")
    part2 = b""
    if capabilities & flags.SECURE_CONNECTION:
        part2 = r.take(max(13, data_len - 8))
    doc["capabilities"] = flags.names(capabilities, flags.CAPABILITIES, 32)
    if extended:
        doc["mariadb_capabilities"] = flags.names(extended, flags.MARIADB_CAPABILITIES, 32)
    doc["charset"] = charset
    doc["status"] = flags.names(status, flags.STATUS, 16)
    doc["auth_data"] = {"base64": b64(part1 + part2)}
    doc["auth_data_length"] = data_len
    if capabilities & flags.PLUGIN_AUTH:
        doc["auth_plugin"] = r.nul().decode("utf-8")
    if r.left:
        raise ProtocolError("MySQL greeting longer than its fields")
    return doc


def encode_greeting(doc: Doc) -> bytes:
    auth = from_text_or_base64(doc["auth_data"])
    capabilities = flags.value(doc["capabilities"], flags.CAPABILITIES)
    extended = flags.value(doc.get("mariadb_capabilities", []), flags.MARIADB_CAPABILITIES)
    out = bytearray([doc["protocol_version"]])
    out += doc["server_version"].encode("utf-8") + b"\0"
    out += struct.pack("<I", doc["connection_id"]) + auth[:8] + b"\0"
    out += struct.pack(
        "<HBHHB",
        capabilities & 0xFFFF,
        doc["charset"],
        flags.value(doc["status"], flags.STATUS),
        capabilities >> 16,
        doc["auth_data_length"],
    )
    out += bytes(6) + struct.pack("<I", extended) + auth[8:]
    if "auth_plugin" in doc:
        out += doc["auth_plugin"].encode("utf-8") + b"\0"
    return bytes(out)


def server_capabilities(greeting: Doc) -> tuple[int, int]:
    """(capabilities, MariaDB's extended capabilities) of a decoded greeting."""
    if "base64" in greeting:
        payload = from_text_or_base64(greeting)
        r = Reader(payload, 1)
        r.nul()
        r.take(13)
        low = r.uint(2)
        r.take(3)
        high = r.uint(2)
        r.take(7)
        return low | high << 16, r.uint(4)
    return (
        flags.value(greeting["capabilities"], flags.CAPABILITIES),
        flags.value(greeting.get("mariadb_capabilities", []), flags.MARIADB_CAPABILITIES),
    )


def made_up_greeting(connection_id: int = 1) -> Doc:
    """A valid greeting from no recording: MariaDB-like capabilities, no TLS, no
    compression, mysql_native_password."""
    capabilities = [
        name
        for name in flags.CAPABILITIES
        if name
        not in (
            "LONG_PASSWORD",
            "SSL",
            "COMPRESS",
            "ZSTD_COMPRESSION_ALGORITHM",
            "OPTIONAL_RESULTSET_METADATA",
            "QUERY_ATTRIBUTES",
            "MULTI_FACTOR_AUTHENTICATION",
            "CAPABILITY_EXTENSION",
            "SSL_VERIFY_SERVER_CERT",
            "NO_SCHEMA",
        )
    ]
    return {
        "protocol_version": PROTOCOL_VERSION,
        "server_version": "5.5.5-10.11.0-MariaDB-kpy",
        "connection_id": connection_id,
        "capabilities": capabilities,
        "charset": 45,
        "status": ["AUTOCOMMIT"],
        "auth_data": "kpy-kpy-kpy-kpy-kpy-\0",
        "auth_data_length": 21,
        "auth_plugin": "mysql_native_password",
    }


def _whole_packet(data: bytes) -> tuple[int, int] | None:
    """(payload size, sequence id) of the first packet if all of it is there."""
    if len(data) < 4:
        return None
    size = int.from_bytes(data[:3], "little")
    return (size, data[3]) if len(data) >= 4 + size else None


def edit_greeting(data: bytes) -> bytes | None:
    """The server's first bytes with TLS and compression (CLIENT_SSL, CLIENT_COMPRESS,
    CLIENT_ZSTD_COMPRESSION_ALGORITHM) cleared from its greeting's capabilities; None while
    the greeting is not whole. Bytes after the greeting, and a first packet that is no
    greeting (an ERR: "Too many connections"), go as they came."""
    whole = _whole_packet(data)
    if whole is None:
        return None
    size, seq = whole
    payload = data[4 : 4 + size]
    if seq != 0 or not payload or payload[0] != PROTOCOL_VERSION:
        return data
    end = payload.find(b"\0", 1)
    low = end + 1 + 4 + 8 + 1  # version, NUL, connection id, scramble part 1, filler
    if end < 0 or len(payload) < low + 2:
        return data
    edited = bytearray(payload)
    capabilities = int.from_bytes(edited[low : low + 2], "little") & ~CLEARED & 0xFFFF
    edited[low : low + 2] = capabilities.to_bytes(2, "little")
    high = low + 2 + 1 + 2
    if len(edited) >= high + 2:
        upper = int.from_bytes(edited[high : high + 2], "little") & ~(CLEARED >> 16) & 0xFFFF
        edited[high : high + 2] = upper.to_bytes(2, "little")
    return data[:4] + bytes(edited) + data[4 + size :]


def greets(data: bytes, port: int) -> bool:
    """Whether a server's first bytes are a MySQL greeting: a packet of sequence id 0 and a
    plausible size, protocol version 10, a printable NUL-terminated version string, then
    (when there) a zero filler after the connection id and scramble. On port 3306 an ERR
    packet in place of the greeting (the server refusing the connection) counts too."""
    if len(data) < 5:
        return False
    size, seq, payload = int.from_bytes(data[:3], "little"), data[3], data[4:]
    if seq != 0 or not 1 <= size <= 1024:
        return False
    if payload[0] == 0xFF and port == 3306:
        return len(payload) < 3 or 1000 <= int.from_bytes(payload[1:3], "little") < 10000
    if payload[0] != PROTOCOL_VERSION or size < 30:
        return False
    end = payload.find(b"\0", 1)
    version = payload[1 : end if end >= 0 else len(payload)]
    if not version[:1].isdigit() or not all(0x20 <= b < 0x7F for b in version):
        return False
    if end < 0:
        return len(version) < 64
    filler = end + 1 + 4 + 8
    return len(payload) <= filler or payload[filler] == 0


# the client's side -------------------------------------------------------------------


def _attributes(r: Reader) -> dict[str, object]:
    block = Reader(r.lenenc_required())
    out: dict[str, object] = {}
    while block.left:
        key, value = block.lenenc_required(), block.lenenc_required()
        out[key.decode("utf-8", "replace")] = text_or_base64(value)
    return out


def decode_handshake_response(data: bytes, server_caps: int) -> Doc:
    """A HandshakeResponse41, its secret left out. A short one with CLIENT_SSL is an
    SSLRequest: the client wants TLS, which kpy took out of the greeting."""
    r = Reader(data)
    capabilities = r.uint(4)
    if not capabilities & flags.PROTOCOL_41:
        raise ProtocolError("MySQL client without CLIENT_PROTOCOL_41 (HandshakeResponse320)")
    if capabilities & flags.SSL and len(data) == 32:
        raise ProtocolError("MySQL client asks for TLS (SSLRequest)")
    if capabilities & flags.COMPRESS & server_caps:
        raise ProtocolError("MySQL client asks for the compressed protocol")
    doc: Doc = {"command": "connect"}
    max_packet, charset = r.uint(4), r.uint(1)
    r.take(19)
    extended = r.uint(4)
    doc["user"] = r.nul().decode("utf-8", "replace")
    if capabilities & flags.AUTH_LENENC:
        secret = r.lenenc_required()
    elif capabilities & flags.SECURE_CONNECTION:
        secret = r.take(r.uint(1))
    else:
        secret = r.nul()
    doc["auth_response"] = REDACTED if secret else ""
    if capabilities & flags.CONNECT_WITH_DB and r.left:
        doc["database"] = r.nul().decode("utf-8", "replace")
    if capabilities & flags.PLUGIN_AUTH and r.left:
        doc["auth_plugin"] = r.nul().decode("utf-8", "replace")
    doc["capabilities"] = flags.names(capabilities, flags.CAPABILITIES, 32)
    if extended and not capabilities & flags.CLIENT_MYSQL:
        doc["mariadb_capabilities"] = flags.names(extended, flags.MARIADB_CAPABILITIES, 32)
    doc["max_packet_size"] = max_packet
    doc["charset"] = charset
    if capabilities & flags.CONNECT_ATTRS and r.left:
        doc["attributes"] = _attributes(r)
    return doc


def client_capabilities(data: bytes) -> tuple[int, int]:
    if len(data) < 32:
        raise ProtocolError("MySQL HandshakeResponse too short")
    caps = int.from_bytes(data[:4], "little")
    extended = 0 if caps & flags.CLIENT_MYSQL else int.from_bytes(data[28:32], "little")
    return caps, extended


def decode_change_user(data: bytes, capabilities: int) -> Doc:
    """COM_CHANGE_USER (after its command byte), its secret left out."""
    r = Reader(data, 1)
    doc: Doc = {"command": "change_user", "user": r.nul().decode("utf-8", "replace")}
    secret = r.take(r.uint(1)) if capabilities & flags.SECURE_CONNECTION else r.nul()
    doc["auth_response"] = REDACTED if secret else ""
    doc["database"] = r.nul().decode("utf-8", "replace") if r.left else ""
    if r.left >= 2:
        doc["charset"] = r.uint(2)
    if capabilities & flags.PLUGIN_AUTH and r.left:
        doc["auth_plugin"] = r.nul().decode("utf-8", "replace")
    if capabilities & flags.CONNECT_ATTRS and r.left:
        doc["attributes"] = _attributes(r)
    return doc


# the server's authentication packets -------------------------------------------------


def decode_auth_packet(data: bytes) -> Doc:
    """What the server sends while authenticating, before the OK or ERR: an auth switch
    (0xFE: the plugin to use, its data) or more data for the plugin (0x01: for
    caching_sha2_password, 0x03 fast auth done, 0x04 full auth needed, or a public key)."""
    if data[:1] == b"\xfe":
        r = Reader(data, 1)
        if not r.left:
            return {"switch": {"plugin": "mysql_old_password"}}
        plugin = r.nul().decode("utf-8")
        return {"switch": {"plugin": plugin, "data": text_or_base64(r.rest())}}
    if data[:1] == b"\x01":
        return {"more": text_or_base64(data[1:])}
    return {"packet": text_or_base64(data)}


def encode_auth_packet(doc: Doc) -> bytes:
    if "switch" in doc:
        switch = doc["switch"]
        if "data" not in switch:
            return b"\xfe"
        plugin = str(switch["plugin"]).encode("utf-8")
        return b"\xfe" + plugin + b"\0" + from_text_or_base64(switch["data"])
    if "more" in doc:
        return b"\x01" + from_text_or_base64(doc["more"])
    return from_text_or_base64(doc["packet"])


def encode_handshake_response(doc: Doc, auth: bytes = b"") -> bytes:
    """A HandshakeResponse41 from a request doc (for tests and tools)."""
    capabilities = flags.value(doc["capabilities"], flags.CAPABILITIES)
    extended = flags.value(doc.get("mariadb_capabilities", []), flags.MARIADB_CAPABILITIES)
    out = bytearray(struct.pack("<IIB", capabilities, doc["max_packet_size"], doc["charset"]))
    out += bytes(19) + struct.pack("<I", extended)
    out += doc["user"].encode("utf-8") + b"\0"
    out += lenenc_str(auth) if capabilities & flags.AUTH_LENENC else bytes([len(auth)]) + auth
    if capabilities & flags.CONNECT_WITH_DB:
        out += doc.get("database", "").encode("utf-8") + b"\0"
    if capabilities & flags.PLUGIN_AUTH:
        out += doc.get("auth_plugin", "").encode("utf-8") + b"\0"
    if capabilities & flags.CONNECT_ATTRS:
        block = b"".join(
            lenenc_str(k.encode()) + lenenc_str(from_text_or_base64(v))
            for k, v in doc.get("attributes", {}).items()
        )
        out += lenenc_str(block)
    return encode_packet(bytes(out), 1)
