"""``kpy record --from-set``: a test-set recorded again by its own requests, in place.

The service runs on its real dependencies as for ``kpy record``; the tests' recorded requests
are the traffic, sent one at a time in the set's order, as ``kpy test`` sends them
(resend.py). Then the set is rewritten whole through a temporary directory, or, if the
recording did not end normally, left untouched:

- every test keeps its name, noise and place. A re-recorded test gets its new response,
  times and mocks, and keeps the request it was sent (so no ``--header`` value is written);
  the others, and a test whose request got no answer, are copied byte for byte;
- the old mocks that only re-recorded tests list are dropped; the rest are kept as they were;
- the new mocks come after them: numbered past the highest ``mock-N``, on connections
  numbered past the highest, at times after the old set's last, so nothing collides. A new
  mock no re-recorded test lists is kept only if reusable (connection set-up);
- when every test is re-recorded, the set is rebuilt as a fresh recording of the same tests.
"""

from __future__ import annotations

import bisect
import contextlib
import datetime
import math
import os
import re
import subprocess
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import httpx

from kpy_ci import redact, resend
from kpy_ci.compare import compare_response
from kpy_ci.errors import UsageError
from kpy_ci.protocols.base import REDACTED, Doc
from kpy_ci.protocols.http import message as http
from kpy_ci.record import RecordingFailed, RecordOptions, RecordResult, run
from kpy_ci.recording import Recorded, Recording
from kpy_ci.schema import lock
from kpy_ci.store import testset
from kpy_ci.store.reader import MocksFile, TestCase, TestSet, load_set

_MOCK_NUMBER = re.compile(r"mock-(\d+)$")
SHOWN_DIFFERENCES = 5
EXIT_GRACE_SECONDS = 1.0


@dataclass(frozen=True)
class Again:
    """What ``--from-set`` adds to a recording's options."""

    path: Path
    """The set's directory."""
    tests: tuple[str, ...] = ()
    """--tests values as given (``test-3,test-7``, ``SET/test-3``); none: every test."""
    headers: dict[str, str] = field(default_factory=dict)
    """--header values, by lower-case name, for headers the recording redacted."""
    request_timeout: float = 30.0


@dataclass(frozen=True)
class Sent:
    """One test's request sent again: when (the recording's clock), and why it got no
    answer, if it did not."""

    test: str
    started: int
    ended: int
    error: str = ""


@dataclass(frozen=True)
class Shift:
    """Where the re-recording's mocks go after the old set's: added to their numbers,
    connection numbers and times."""

    numbers: int = 0
    connections: int = 0
    seconds: float = 0.0


# -- pure parts --------------------------------------------------------------------------


def selected(values: Sequence[str], set_name: str, names: Sequence[str]) -> list[str]:
    """The tests --tests names, in the set's order (all of them without --tests)."""
    if not values:
        return list(names)
    wanted = set()
    # commas or white space: `kpy drift`'s stale-tests output is space-separated
    for item in (part for value in values for part in re.split(r"[,\s]+", value)):
        if not item:
            continue
        where, slash, name = item.rstrip("/").rpartition("/")
        if slash and where.rpartition("/")[2] != set_name:
            raise UsageError(f"--tests {item!r}: not a test of the set {set_name}")
        if name not in names:
            raise UsageError(f"--tests {item!r}: the set {set_name} has no test {name!r}")
        wanted.add(name)
    if not wanted:
        raise UsageError("--tests: no test named (expected names like test-3,test-7)")
    return [n for n in names if n in wanted]


def shift_after(mocks: Iterable[Doc], tests: Iterable[Doc]) -> Shift:
    """A shift that puts new mocks past every number, connection and time of the old set
    (times from the next whole second, so they read apart). ``mocks`` is read once."""
    number = connection = 0
    last = 0.0
    for doc in mocks:
        m = _MOCK_NUMBER.match(str(doc["name"]))
        number = max(number, int(m.group(1)) if m else 0)
        connection = max(connection, int(doc["connection"]))
        last = max(last, float(doc["ended"]))
    last = max([last, *(float(t["ended"]) for t in tests)])
    return Shift(number, connection, float(math.floor(last) + 1))


def answers(
    sent: Sequence[Sent], inbound: Sequence[Recorded]
) -> tuple[dict[str, Recorded], dict[str, str]]:
    """Each answered test's new exchange (the first that started while its request was
    out: they were sent one at a time), and why each other test has none."""
    got: dict[str, Recorded] = {}
    failed: dict[str, str] = {}
    ordered = sorted(inbound, key=lambda r: r.exchange.started)
    starts = [r.exchange.started for r in ordered]
    for s in sent:
        i = bisect.bisect_left(starts, s.started)
        if not s.error and i < len(starts) and starts[i] <= s.ended:
            got[s.test] = ordered[i]
        else:
            failed[s.test] = s.error or "kpy recorded no exchange for its request"
    return got, failed


def dropped(tests: Sequence[TestCase], redone: set[str]) -> set[str]:
    """The old mocks the re-recorded tests list and no other test does."""
    others = {m for t in tests if t.name not in redone for m in t.mocks}
    return {m for t in tests if t.name in redone for m in t.mocks} - others


def kept_new(reusable: Sequence[bool], listed: set[str], whole: bool) -> list[int]:
    """Numbers (from 1) of the new mocks to keep: every one when the set is rebuilt whole;
    else those a re-recorded test lists, and the reusable ones (set-up that later tests
    may need on a connection opened then)."""
    return [n for n, r in enumerate(reusable, 1) if whole or r or f"mock-{n}" in listed]


def placed(doc: Doc, name: str, shift: Shift) -> Doc:
    """A new mock, renamed and moved past the old set."""
    return {
        **doc,
        "name": name,
        "connection": doc["connection"] + shift.connections,
        "started": round(doc["started"] + shift.seconds, 6),
        "ended": round(doc["ended"] + shift.seconds, 6),
    }


def merged_test(old: Doc, new: Doc, shift: Shift, names: dict[str, str]) -> Doc:
    """The old test (its name, request, noise, key order) with the new response, times and
    mocks; and the token it sends, if the service issued it anew (``redact.keep_issued``)."""
    sent = {
        str(n).lower(): v
        for n, v in new["request"].get("headers", [])
        if str(n).lower() in http.AUTHORIZATION and REDACTED not in str(v)
    }
    request = old["request"]
    if sent:
        headers = [[n, sent.get(str(n).lower(), v)] for n, v in request["headers"]]
        request = {**request, "headers": headers}
    return {
        **old,
        "request": request,
        "started": round(new["started"] + shift.seconds, 6),
        "ended": round(new["ended"] + shift.seconds, 6),
        "response": new["response"],
        "mocks": [names[m] for m in new["mocks"]],
    }


def change_line(name: str, old: Doc, new: Doc, noise: Sequence[str]) -> str:
    """``test-4: response changed: body.price: '12.50' -> '12.5' (mocks: 3 -> 3)``"""
    differences = compare_response(old["response"], new["response"], noise)
    what = "unchanged"
    if differences:
        shown = "; ".join(d.line() for d in differences[:SHOWN_DIFFERENCES])
        more = len(differences) - SHOWN_DIFFERENCES
        what = f"response changed: {shown}" + (f" (and {more} more)" if more > 0 else "")
    return f"{name}: {what} (mocks: {len(old.get('mocks', ()))} -> {len(new['mocks'])})"


def merged_meta(old: Doc, new: Doc, whole: bool) -> Doc:
    """test-set.yaml: a fresh recording's when rebuilt whole; else the old one with the
    new time, port, counts, and the new warnings added."""
    if whole:
        return {"name": old["name"], **new}
    warnings = list(dict.fromkeys([*old.get("warnings", ()), *new["warnings"]]))
    keys = ("recorded_at", "port", "tests", "mocks")
    return {**old, **{k: new[k] for k in keys}, "warnings": warnings}


# -- the re-recording --------------------------------------------------------------------


def rerecord(opts: RecordOptions, again: Again, log: IO[str]) -> RecordResult:
    """Re-record the selected tests of ``again.path`` and merge them in (the set is read
    and checked first; a bad file stops it before the service starts). Raises
    RecordingFailed (exit 1) when a test got no answer (it keeps its old version) or the
    recording failed (the set untouched)."""
    test_set = load_set(again.path)
    names = selected(again.tests, test_set.name, [t.name for t in test_set.tests])
    if not names:
        raise UsageError(f"{again.path}: no test to re-record")
    mocks_file = MocksFile(test_set.mocks_file)
    try:  # every mock checked now, before anything starts
        shift = shift_after((d for _, d in mocks_file.scan()), (t.doc for t in test_set.tests))
    finally:
        mocks_file.close()
    job = _Rerecording(test_set, names, again, opts, shift, log)
    result = run(opts, log, job.drive, job.write)
    if job.failed:
        raise RecordingFailed(
            f"{len(job.failed)} of {len(names)} tests got no answer and keep their old "
            f"version in {result.path}: {', '.join(job.failed)}"
        )
    return result


class _Rerecording:
    def __init__(
        self,
        test_set: TestSet,
        names: list[str],
        again: Again,
        opts: RecordOptions,
        shift: Shift,
        log: IO[str],
    ) -> None:
        self.test_set, self.again, self.opts, self.shift, self.log = (
            test_set, again, opts, shift, log,
        )  # fmt: skip
        self.tests = [t for t in test_set.tests if t.name in names]
        self.sent: list[Sent] = []
        self.failed: dict[str, str] = {}

    def drive(self, service: subprocess.Popen[Any], base_url: str, log: IO[str]) -> str | None:
        """Send each test's request, one at a time; a dead service ends it (as failed).
        Tokens an earlier test's response issued are sent as the service issues them now."""
        print(f"kpy: re-recording {len(self.tests)} tests of {self.test_set.path}", file=log)
        issued = resend.Issued()
        chosen = {t.name for t in self.tests}
        with resend.client(self.again.request_timeout) as client:
            for test in self.test_set.tests:
                live = None
                if test.name in chosen:
                    live = self._send(client, base_url, test, issued, service)
                issued.saw(test.name, test.doc["response"], live)
                if service.poll() is not None:
                    return f"the service exited with code {service.returncode} during the traffic"
        return None

    def _send(
        self,
        client: httpx.Client,
        base_url: str,
        test: TestCase,
        issued: resend.Issued,
        service: subprocess.Popen[Any],
    ) -> Doc | None:
        """One test's request sent again; the response's headers and body as a doc, or
        None (why is in ``self.sent``)."""
        request, given = test.doc["request"], self.again.headers
        missing = resend.redacted_missing(request, given)
        issuers = issued.missing(request)
        why = ""
        if missing:
            why = f"its {', '.join(missing)} was redacted when recorded: give it with "
            why += "--header 'NAME: VALUE'"
        elif issuers:
            why = f"it sends a token that {issuers[0]} issued: re-record {issuers[0]} too"
        if why:
            self.sent.append(Sent(test.name, 0, 0, why))
            return None
        started = time.monotonic_ns()
        try:
            response, raw = resend.send(client, base_url, request, given | issued.given(request))
        except resend.NoAnswer as e:
            # a service that dropped the connection may be exiting: give it a moment
            with contextlib.suppress(subprocess.TimeoutExpired):
                service.wait(EXIT_GRACE_SECONDS)
            self.sent.append(Sent(test.name, started, time.monotonic_ns(), str(e)))
            return None
        self.sent.append(Sent(test.name, started, time.monotonic_ns()))
        headers, body = resend.received(response, raw)
        return {"headers": headers, **({"body": body} if body is not None else {})}

    def write(self, recording: Recording, interrupted: str | None) -> RecordResult:
        path = self.test_set.path
        try:
            if interrupted is None:
                return self._merge(recording)
        finally:
            recording.close()
        print(f"kpy: {path} untouched: {interrupted}", file=self.log)
        return RecordResult(path, 0, 0, interrupted, recording.warnings, written=False)

    def _merge(self, recording: Recording) -> RecordResult:
        recording.finish()
        old = self.test_set
        inbound = [r for r in recording.inbound if r.exchange.protocol == "http"]
        got, self.failed = answers(self.sent, inbound)
        redone = [t for t in self.tests if t.name in got]
        if not redone:
            _report(old.path, [], self.failed, recording.warnings, self.log, written=False)
            return RecordResult(old.path, 0, 0, None, recording.warnings, written=False)
        whole = len(redone) == len(old.tests)
        shift = Shift() if whole else self.shift
        chain = redact.filters(self.opts.config)
        new = testset.test_documents(
            [got[t.name] for t in redone], recording.outbound_started, recording.started
        )
        new = list(redact.apply_all(new, chain))
        redact.keep_issued(
            new, [got[t.name].exchange.credentials for t in redone], self.opts.config
        )
        by_name = dict(zip((t.name for t in redone), new, strict=True))
        listed = {m for doc in by_name.values() for m in doc["mocks"]}
        keep = kept_new([r.exchange.reusable for r in recording.outbound()], listed, whole)
        names = {f"mock-{n}": f"mock-{shift.numbers + k}" for k, n in enumerate(keep, 1)}
        docs = [merged_test(t.doc, by_name[t.name], shift, names) for t in redone]  # set order
        lines = [
            change_line(t.name, t.doc, doc, [*self.opts.config.noise, *t.noise])
            for t, doc in zip(redone, docs, strict=True)
        ]
        drop = None if whole else dropped(old.tests, set(by_name))
        new_mocks = redact.apply_all(
            testset.mock_documents(recording.outbound(), recording.started), chain
        )
        locked = lock.LockBuilder(self.opts.openapi_docs)
        count = 0

        def mocks() -> Iterator[Doc | bytes]:
            nonlocal count
            for doc, text in _old_mocks(old.mocks_file, drop):
                locked.add(doc)
                count += 1
                yield text
            for doc in (
                placed(d, names[d["name"]], shift) for d in new_mocks if d["name"] in names
            ):
                locked.add(doc)
                count += 1
                yield doc

        warnings = recording.warnings
        fresh = _fresh_meta(recording, self.opts.port, len(old.tests))
        path = testset.write_test_set(
            old.path.parent,
            old.name,
            docs,
            mocks(),
            lambda: merged_meta(old.meta, {**fresh, "mocks": count}, whole),
            lambda: lock.lock_files(locked, self.opts.config, os.environ, warnings),
            copied=[t.file for t in old.tests if t.name not in by_name],
        )
        _report(path, lines, self.failed, warnings, self.log, count)
        return RecordResult(path, len(old.tests), count, None, warnings)


def _fresh_meta(recording: Recording, port: int, tests: int) -> Doc:
    """test-set.yaml of the re-recording itself (its mocks counted as they are written)."""
    utc = datetime.timezone.utc
    started = datetime.datetime.fromtimestamp(recording.started_wall, utc)
    return {
        "started_at": started.isoformat(timespec="milliseconds"),
        "recorded_at": datetime.datetime.now(utc).isoformat(timespec="seconds"),
        "port": port,
        "complete": True,
        "interrupted": None,
        "tests": tests,
        "mocks": 0,
        "warnings": recording.warnings,
    }


def _old_mocks(path: Path, drop: set[str] | None) -> Iterator[tuple[Doc, bytes]]:
    """The old set's mocks but the dropped ones (None: all dropped), each parsed (for the
    lock) and as its text was, one at a time."""
    if drop is None:
        return
    mocks = MocksFile(path)
    try:
        with open(path, "rb") as raw:
            for span, doc in mocks.scan():
                if doc["name"] in drop:
                    continue
                raw.seek(span.offset)
                text = raw.read(span.size)
                text = text if text.startswith(b"---") else b"---\n" + text
                yield doc, text if text.endswith(b"\n") else text + b"\n"
    finally:
        mocks.close()


def _report(
    path: Path,
    lines: list[str],
    failed: dict[str, str],
    warnings: list[str],
    log: IO[str],
    mocks: int = 0,
    written: bool = True,
) -> None:
    for line in lines:
        print(f"kpy: {line}", file=log)
    for name, why in failed.items():
        print(f"kpy: {name}: FAILED, its old version is kept: {why}", file=log)
    if written:
        print(
            f"kpy: rewrote {path}: {len(lines)} tests re-recorded, {len(failed)} failed; "
            f"{mocks} mocks",
            file=log,
        )
    else:
        print(f"kpy: {path} untouched: no test was re-recorded", file=log)
    for warning in warnings:
        print(f"kpy: warning: {warning}", file=log)
