"""The mocks of one test-set at replay: which mock answers a call, which were used, and
what went unanswered.

A call is matched exactly, on its protocol's key (``Matcher.key``), in three tiers:

1. the running test's own mocks that are still unused (the test file lists them);
2. any unused mock of the set (attribution by time may have put it in another test);
3. a reusable mock, used or not (connection set-up, names resolved, idempotent reads:
   what the recording marked reusable, and what the protocol's ``Matcher.setup`` says).

A call that matches nothing is a ``Miss``: the mock server answers a protocol-level error
and the running test fails, with the nearest recorded candidates and how they differ.
Nothing fuzzy ever answers a call.

Memory stays bounded however big mocks.yaml is: the index keeps, per mock, a 16-byte
digest of its key, a one-line summary and where its document is; the document itself is
read from the file when it is served. Lookups are dictionary hits, flat in the set's size.
"""

from __future__ import annotations

import bisect
import copy
import difflib
import hashlib
import json
import re
import threading
import time
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kpy_ci import generated
from kpy_ci.ledger import LedgerKeeper
from kpy_ci.protocols.base import Doc
from kpy_ci.protocols.registry import MATCHERS
from kpy_ci.report.model import Candidate, Miss
from kpy_ci.store.reader import MocksFile, Span
from kpy_ci.store.serializer import dump

CANDIDATES = 3
SUMMARY_CHARS = 200
NEAREST_SCAN = 2000  # mocks a miss compares itself with: those recorded nearest the test's
GENERATED_TRIED = 50  # candidates a call with generated values is compared with, per tier
REUSABLE_CACHED = 1024  # reusable documents kept parsed (a start-up is served every connection)
Key = tuple[str, bytes]


@dataclass(slots=True)
class Entry:
    name: str
    protocol: str
    destination: str
    connection: int
    order: int
    reusable: bool
    expected: bool
    unasked: bool  # what the server sent of its own accord (a pub/sub message)
    key: Key
    partial_keys: tuple[Key, ...]  # the request cut where its client waited (Matcher.partials)
    shape: Key | None  # the key with UUIDs and times masked, when it holds any (generated.py)
    summary: str
    span: Span


def digest(protocol: str, key: Hashable) -> Key:
    text = json.dumps(key, default=repr, separators=(",", ":"))
    return protocol, hashlib.blake2b(text.encode(), digest_size=16).digest()


def _entry(span: Span, doc: dict[str, Any], token: re.Pattern[str] = generated.TOKEN) -> Entry:
    protocol = doc["protocol"]
    matcher = MATCHERS[protocol]
    request = doc["request"]
    reusable = bool(doc["reusable"]) or matcher.setup(request)
    key = matcher.key(request)
    return Entry(
        name=doc["name"],
        protocol=protocol,
        destination=doc["destination"],
        connection=doc["connection"],
        order=doc["order"],
        reusable=reusable,
        expected=matcher.expected(request) and not reusable,
        unasked=request.get("push") is True,
        key=digest(protocol, key),
        partial_keys=tuple(digest(protocol, k) for k in matcher.partials(request)),
        shape=_shape(protocol, _readable_key(protocol, request, key), token),
        summary=matcher.describe(request)[:SUMMARY_CHARS],
        span=span,
    )


def _readable_key(protocol: str, request: Doc, key: Hashable | None = None) -> Hashable:
    """The match key of the request with its binary values given as text (``key``: its
    plain key, which serves when the protocol has none to give)."""
    matcher = MATCHERS[protocol]
    readable = matcher.readable(request)
    if readable is request and key is not None:
        return key
    return matcher.key(readable)


def _shape(
    protocol: str, readable_key: Hashable, token: re.Pattern[str] = generated.TOKEN
) -> Key | None:
    """The key with its UUIDs and times (and learned made-up values) masked, if it holds
    any."""
    masked = generated.masked(readable_key, token)
    return digest(protocol, masked) if masked != readable_key else None


class MockStore:
    """Thread-safe: the proxy's loop serves calls while the runner starts and ends tests."""

    def __init__(
        self,
        path: Path,
        redact: Callable[[Doc], Doc] = lambda request: request,
        substitutions: generated.Substitutions | None = None,
        ledger: LedgerKeeper | None = None,
    ) -> None:
        """``redact``: kpy.yml's redaction, applied to a call before a miss report shows it
        (the report is a file: no secret may reach it). ``substitutions``: where the
        generated values a call matched by are kept (none: every value must be equal).
        ``ledger``: told every call served and refused (ledger.py)."""
        self.ledger = ledger
        self._file = MocksFile(path)
        self._redact = redact
        self.substitutions = substitutions
        self._shapes: dict[Key, list[Entry]] = {}
        self._started = time.time()
        self.entries: dict[str, Entry] = {}
        self._index: dict[Key, list[Entry]] = {}
        self._reusable: dict[Key, list[Entry]] = {}
        self._cursor: dict[Key, int] = {}  # entries before it in _index[key] are all used
        self._places: dict[tuple[int, int], Entry] = {}
        self._by_protocol: dict[str, list[Entry]] = {}  # in file order
        self._protocols_at: dict[str, list[str]] = {}  # by destination, in file order
        self._parsed: dict[str, Doc] = {}
        self._last_offset = 0  # of the last mock served: where the replay is in the file
        self._used: set[str] = set()
        self._test: dict[Key, list[Entry]] = {}
        self._test_names: set[str] = set()
        self._misses: list[Miss] = []
        self._served: list[str] = []  # since the last end_test
        self._missed: list[tuple[str, Hashable]] = []  # the calls of the misses, readable
        self.last_call = 0.0  # time.monotonic() of the last call served or missed
        self._tls: dict[str, Doc] = {}  # by destination, and by the name the service asked for
        self.missed_calls: list[tuple[str, Hashable]] = []
        """The calls the last test ended missed, by protocol, readable (to learn from)."""
        self.origins: list[generated.Said] = []
        """The mocks' generated-looking values, for ``Substitutions.note_origins``."""
        self._lock = threading.Lock()
        try:
            for span, doc in self._file.scan():
                self._add(_entry(span, doc, self._token))
                if "tls" in doc:
                    self._note_tls(doc["destination"], doc["tls"])
                self._note_origin(doc)
        except BaseException:
            self._file.close()
            raise

    @property
    def _token(self) -> re.Pattern[str]:
        return self.substitutions.token if self.substitutions else generated.TOKEN

    def _note_origin(self, doc: Doc) -> None:
        if self.substitutions is not None:
            request = MATCHERS[doc["protocol"]].readable(doc["request"])
            started = float(doc.get("started", 0.0))
            ended = float(doc.get("ended", started))
            self.origins += generated.said_in(
                started, ended, request, doc["response"], True, self._token
            )

    def learn(self, patterns: list[str]) -> None:
        """Take these made-up values as generated from now on: the mocks' shapes and
        origins are made again with them (the file read once more)."""
        if self.substitutions is None:
            return
        with self._lock:
            self.substitutions.learn(patterns)
            self._shapes, self.origins = {}, []
            for _, doc in self._file.scan():
                e = self.entries[doc["name"]]
                e.shape = _shape(e.protocol, _readable_key(e.protocol, doc["request"]), self._token)
                if e.shape is not None:
                    self._shapes.setdefault(e.shape, []).append(e)
                self._note_origin(doc)

    def _add(self, e: Entry) -> None:
        self.entries[e.name] = e
        for key in (e.key, *e.partial_keys):
            self._index.setdefault(key, []).append(e)
        if e.reusable:
            self._reusable.setdefault(e.key, []).append(e)
        self._places[(e.connection, e.order)] = e
        if e.shape is not None:
            self._shapes.setdefault(e.shape, []).append(e)
        self._by_protocol.setdefault(e.protocol, []).append(e)
        at = self._protocols_at.setdefault(e.destination, [])
        if e.protocol not in at:
            at.append(e.protocol)

    def _note_tls(self, destination: str, tls: Doc) -> None:
        self._tls.setdefault(destination, tls)
        if tls.get("server_name"):
            self._tls.setdefault(tls["server_name"], tls)

    def recorded_tls(self, destination: str, server_name: str | None = None) -> Doc | None:
        """What the recording says of TLS to this server (``tls`` of its mocks): by the name
        the service asks for, else by where it connects; None when it was not TLS."""
        if server_name and server_name in self._tls:
            return self._tls[server_name]
        return self._tls.get(destination)

    def protocols_at(self, destination: str) -> list[str]:
        """The protocols of the mocks recorded for this destination, in file order."""
        return self._protocols_at.get(destination, [])

    def opened(self, connection: int, where: str) -> None:
        if self.ledger is not None:
            self.ledger.opened(connection, where)

    def closed(self, connection: int, by_kpy: bool) -> None:
        if self.ledger is not None:
            self.ledger.closed(connection, by_kpy=by_kpy)

    def close(self) -> None:
        self._file.close()

    # --- the runner's side -------------------------------------------------------------

    def begin_test(self, names: Iterable[str]) -> None:
        with self._lock:
            self._test_names = {n for n in names if n in self.entries}
            self._test = {}
            for name in sorted(self._test_names, key=lambda n: self.entries[n].span.offset):
                e = self.entries[name]
                for key in (e.key, *e.partial_keys):
                    self._test.setdefault(key, []).append(e)

    def end_test(self) -> tuple[list[Miss], list[str]]:
        """The misses, and the mocks served, since the last test ended; no test is
        running from here on."""
        with self._lock:
            misses, self._misses = self._misses, []
            served, self._served = self._served, []
            self.missed_calls, self._missed = self._missed, []
            self._test, self._test_names = {}, set()
            return misses, served

    def served_count(self) -> int:
        """How many mocks were served since the last test ended (a start-up's, before the
        first test, included)."""
        with self._lock:
            return len(self._served)

    def not_made(self, names: Iterable[str]) -> list[Entry]:
        """The writes among these mocks that no call used."""
        with self._lock:
            return [
                self.entries[n]
                for n in names
                if n in self.entries and self.entries[n].expected and n not in self._used
            ]

    def forget(self, names: Iterable[str]) -> None:
        """Make these mocks unused again (to replay a test a second time)."""
        with self._lock:
            for name in names:
                if name in self._used:
                    self._used.discard(name)
                    e = self.entries[name]
                    for key in (e.key, *e.partial_keys):
                        self._cursor[key] = 0

    def unused(self) -> list[Entry]:
        with self._lock:
            return [e for e in self.entries.values() if e.name not in self._used]

    # --- the mock servers' side ----------------------------------------------------------

    def miss(self, protocol: str, destination: str, connection: int, request: Doc) -> None:
        """A call a mock server found no mock for by itself."""
        with self._lock:
            miss = self._miss(protocol, destination, connection, request)
            self._missed.append((protocol, _readable_key(protocol, request)))
        self.add_miss(miss)

    def add_miss(self, miss: Miss) -> None:
        with self._lock:
            self.last_call = time.monotonic()
            self._misses.append(miss)
        if self.ledger is not None:
            self.ledger.refused(miss)

    def serve(
        self, protocol: str, destination: str, connection: int, request: Doc, optional: bool
    ) -> Doc | None:
        plain = MATCHERS[protocol].key(request)
        miss: Miss | None = None
        with self._lock:
            self.last_call = time.monotonic()
            entry = self._find(digest(protocol, plain), destination if optional else None)
            if entry is None and not optional:
                entry = self._generated_match(protocol, _readable_key(protocol, request, plain))
            if entry is None:
                if not optional:
                    miss = self._miss(protocol, destination, connection, request)
                    self._misses.append(miss)
                    self._missed.append((protocol, _readable_key(protocol, request)))
            else:
                self._used.add(entry.name)
                self._served.append(entry.name)
                self._last_offset = entry.span.offset
        if entry is None:
            if miss is not None and self.ledger is not None:
                self.ledger.refused(miss)
            return None
        doc = self._document(entry)
        if self.ledger is not None:
            self.ledger.served(connection, protocol, doc)
        return doc

    def _generated_match(self, protocol: str, live: Hashable) -> Entry | None:
        """An unused mock of the same call (``live``: its readable key) but for values the
        service generated (a new UUID, the current time), standing one to one for the live
        ones (generated.py): the running test's own first, then the others, the first
        GENERATED_TRIED of each."""
        subs = self.substitutions
        shape = _shape(protocol, live, subs.token) if subs is not None else None
        if subs is None or shape is None:
            return None
        now = self.live_window()
        entries = [e for e in self._shapes.get(shape, ()) if e.name not in self._used]
        own = [e for e in entries if e.name in self._test_names]
        for e in own[:GENERATED_TRIED] + [e for e in entries if e not in own][:GENERATED_TRIED]:
            recorded = _readable_key(protocol, self._file.read(e.span)["request"])
            pairs = subs.pairs(recorded, live, now)
            if pairs is not None:
                subs.commit(pairs)
                return e
        return None

    def live_window(self) -> generated.Window:
        """When the replay has run so far."""
        return generated.Window(self._started, time.time())

    def _document(self, entry: Entry) -> Doc:
        """The mock's document, read again from the file; reusable ones kept once read
        (a mock server reads what it is given, and changes none of it)."""
        doc = self._parsed.get(entry.name)
        if doc is None:
            doc = self._file.read(entry.span)
            if entry.reusable and len(self._parsed) < REUSABLE_CACHED:
                self._parsed[entry.name] = doc
        return doc

    def next_on_connection(self, mock: Doc) -> Doc | None:
        with self._lock:
            entry = self._places.get((mock["connection"], mock["order"] + 1))
            if entry is None or not entry.unasked:
                return None
            self._used.add(entry.name)
        return self._document(entry)

    def _find(self, key: Key, destination: str | None = None) -> Entry | None:
        """The tiers of the module docstring; with ``destination``, only mocks recorded for
        it (a greeting: another server's would not do)."""
        if destination is not None:
            entries = self._index.get(key, [])
            return next(
                (e for e in entries if e.destination == destination and e.name not in self._used),
                next((e for e in entries if e.destination == destination and e.reusable), None),
            )
        for e in self._test.get(key, ()):
            if e.name not in self._used:
                return e
        entries = self._index.get(key, [])
        i = self._cursor.get(key, 0)
        while i < len(entries) and entries[i].name in self._used:
            i += 1
        self._cursor[key] = i
        if i < len(entries):
            return entries[i]
        reusable = self._reusable.get(key)
        return reusable[0] if reusable else None

    def _miss(self, protocol: str, destination: str, connection: int, request: Doc) -> Miss:
        request = self._redact(copy.deepcopy(request))
        live = MATCHERS[protocol].describe(request)
        return Miss(
            protocol, destination, connection, live, tuple(self._nearest(protocol, live, request))
        )

    def _nearest(self, protocol: str, live: str, request: Doc) -> list[Candidate]:
        """The recorded mocks of this protocol most like the call: the running test's
        first, then by how alike their summaries are, unused ones before used ones. Only
        the NEAREST_SCAN recorded closest to the running test are compared, so a miss costs
        the same in a set of any size."""
        scored = []
        matcher = difflib.SequenceMatcher(b=live, autojunk=False)
        for e in self._near_the_test(protocol):
            matcher.set_seq1(e.summary)
            if matcher.real_quick_ratio() < 0.2:
                continue
            bonus = (e.name in self._test_names) + 0.1 * (e.name not in self._used)
            scored.append((matcher.ratio() + bonus, e))
        scored.sort(key=lambda pair: -pair[0])
        out = []
        for _, e in scored[:CANDIDATES]:
            recorded = self._file.read(e.span)["request"]
            diff = difflib.unified_diff(
                dump(recorded).splitlines(),
                dump(request).splitlines(),
                f"{e.name} (recorded)",
                "the call (now)",
                n=1,
                lineterm="",
            )
            out.append(Candidate(e.name, e.summary, "\n".join(diff)))
        return out

    def _near_the_test(self, protocol: str) -> list[Entry]:
        """The running test's mocks of this protocol, and those recorded around them."""
        entries = self._by_protocol.get(protocol, [])
        own = [self.entries[n] for n in self._test_names if self.entries[n].protocol == protocol]
        if len(entries) <= NEAREST_SCAN:
            return entries
        offsets = [e.span.offset for e in own] or [self._last_offset]
        middle = bisect.bisect_left(entries, min(offsets), key=lambda e: e.span.offset)
        start = max(0, min(middle - NEAREST_SCAN // 2, len(entries) - NEAREST_SCAN))
        return own + entries[start : start + NEAREST_SCAN]


def line_of(entry: Entry) -> str:
    """``mock-7 redis GET shop:products``: how reports list a mock."""
    return f"{entry.name} {entry.protocol} {entry.summary}"
