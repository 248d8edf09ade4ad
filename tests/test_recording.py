"""The recorder's plumbing: chunks reach it bounded in bytes; exchanges are spooled to disk
and read back in order; a decoder that fails does not lose the connection."""

from __future__ import annotations

import dataclasses

from kpy_ci.address import Address
from kpy_ci.protocols import generic
from kpy_ci.protocols.base import Exchange
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
    broken = dataclasses.replace(generic.PROTOCOL, name="broken", recorder=_Broken)
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
