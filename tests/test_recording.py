"""The recorder's plumbing: chunks reach it bounded in bytes; exchanges are spooled to disk
and read back in order; a decoder that fails does not lose the connection."""

from __future__ import annotations

from kpy_ci.ebpf.maps import Address
from kpy_ci.protocols import generic
from kpy_ci.protocols.base import Exchange, Protocol
from kpy_ci.recording import Recording


def test_chunks_are_captured_now_and_decoded_at_the_end() -> None:
    recording = Recording()
    tap = recording.open(generic.PROTOCOL, "outbound", Address("127.0.0.1", 5))
    tap.client(b"x" * 100_000)
    tap.server(b"y")
    tap.close()
    assert recording.outbound_started == []  # nothing decoded while the relay works
    recording.finish()
    [r] = list(recording.outbound())
    assert r.exchange.request == {"data": "x" * 100_000}
    recording.close()


def test_exchanges_are_spooled_and_read_back_in_order() -> None:
    recording = Recording()
    destination = Address("127.0.0.1", 5)
    tap = recording.open(generic.PROTOCOL, "outbound", destination)
    for n in range(50):
        tap.client(b"ask %d" % n)
        tap.server(b"answer %d" % n)
    tap.close()
    recording.finish()
    out = list(recording.outbound())
    assert [r.exchange.request["data"] for r in out] == [f"ask {n}" for n in range(50)]
    assert [r.order for r in out] == list(range(1, 51))
    assert len(recording.outbound_started) == 50 and recording.inbound == []
    recording.close()


class _Broken:
    def client_data(self, data: bytes, at: int) -> list[Exchange]:
        raise ValueError("a bug in a decoder")

    def server_data(self, data: bytes, at: int) -> list[Exchange]:
        return []

    def close(self, at: int) -> list[Exchange]:
        return []


def test_a_failing_decoder_falls_back_to_generic_with_a_warning() -> None:
    broken = Protocol("broken", lambda first: True, _Broken, generic.encode_response)
    recording = Recording()
    tap = recording.open(broken, "outbound", Address("127.0.0.1", 5))
    tap.client(b"hello")
    tap.server(b"world")
    tap.close()
    recording.finish()
    [r] = list(recording.outbound())
    assert r.exchange.protocol == "generic"
    assert (r.exchange.request, r.exchange.response) == ({"data": "hello"}, {"data": "world"})
    assert "a bug in a decoder" in recording.warnings[0]
    recording.close()


def test_a_silent_client_s_protocol_comes_from_the_first_chunk() -> None:
    """The proxy opens a tap with no protocol when the client said nothing in time: its first
    bytes decide when decoded (Redis here), or generic if the server spoke first."""
    recording = Recording()
    slow = recording.open(None, "outbound", Address("127.0.0.1", 6379))
    slow.client(b"*2\r\n$3\r\nGET\r\n$1\r\na\r\n")
    slow.server(b"$1\r\n1\r\n")
    slow.close()
    greeter = recording.open(None, "outbound", Address("127.0.0.1", 25))
    greeter.server(b"220 ready\r\n")
    greeter.client(b"QUIT\r\n")
    greeter.server(b"221 bye\r\n")
    greeter.close()
    recording.finish()
    redis, *smtp = list(recording.outbound())
    assert (redis.exchange.protocol, redis.exchange.request) == ("redis", {"command": ["GET", "a"]})
    assert [r.exchange.protocol for r in smtp] == ["generic", "generic"]
    assert smtp[0].exchange.request == {"data": ""} and smtp[1].exchange.request == {
        "data": "QUIT\r\n"
    }
    recording.close()
