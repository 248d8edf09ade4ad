"""``kpy test`` as a straight line, for each test-set: the mock servers up, the service up
in its session (every outbound connection lands on them), each test's request sent and
its response compared, the service down; a verdict per test, never a skip.

A test fails when its response differs (noise aside), when a call the service made during
it matched no mock, or when a write recorded for it (INSERT, SET, POST...) was not made.
Reads the service no longer makes are listed as unused mocks, and fail nothing.
"""

from __future__ import annotations

import contextlib
import hashlib
import time
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import httpx

from kpy_ci import clock, generated, redact, resend
from kpy_ci.address import Address
from kpy_ci.compare import Difference, compare_response, noise_between, render
from kpy_ci.config import Config
from kpy_ci.ebpf import cgroup
from kpy_ci.ebpf.session import Session
from kpy_ci.errors import EnvironmentProblem
from kpy_ci.ledger import LedgerKeeper
from kpy_ci.mock_store import Entry, MockStore, line_of
from kpy_ci.protocols.base import Doc
from kpy_ci.protocols.http import message as http
from kpy_ci.proxy.dns import MockDns
from kpy_ci.proxy.server import MockEgress
from kpy_ci.report import console
from kpy_ci.report.model import Miss, RunResult, SetResult, TestResult
from kpy_ci.service import listening_host
from kpy_ci.service_log import ServiceLog
from kpy_ci.store.atomic import write_file
from kpy_ci.store.reader import TestCase, TestSet, find_sets, load_set
from kpy_ci.store.serializer import dump
from kpy_ci.under_kpy import UnderKpy

QUIET_SECONDS = 0.015  # after a response, calls still coming belong to the same test
QUIET_MAX_SECONDS = 2.0
LEARNING_ROUNDS = 4  # a test learns made-up values at most this often (each takes 2 runs)


@dataclass
class TestOptions:
    command: str
    path: Path = Path("kpy")
    set_name: str | None = None
    port: int | None = None
    ready_url: str | None = None
    ready_timeout: float = 60.0
    request_timeout: float = 30.0
    shard: tuple[int, int] | None = None
    detect_noise: bool = False
    write_noise: bool = False
    passthrough: list[tuple[str, int]] = field(default_factory=list)
    config: Config = field(default_factory=Config)
    resolv_conf: Path | None = None
    headers: dict[str, str] = field(default_factory=dict)
    """--header: values for headers the recording redacted (Authorization...), by lower-case
    name; given to each request that recorded the header."""
    clock: str | None = None
    """--clock: ``recorded`` (the replay clock, clock.py), ``real``, or None: recorded
    where this machine can, else real with a warning."""


def in_shard(set_name: str, test: str, shard: tuple[int, int] | None) -> bool:
    """A stable split by test: the same test lands in the same shard, whatever else the
    suite holds (a hash of its set and name, not its place in a list)."""
    if shard is None:
        return True
    index, count = shard
    digest = hashlib.sha256(f"{set_name}/{test}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % count == index - 1


def replay(opts: TestOptions, log: IO[str]) -> RunResult:
    """Replay every set (all read and checked first: a bad file stops it before anything
    runs); the results, whatever they are."""
    sets = [load_set(p) for p in find_sets(opts.path, opts.set_name)]
    result = RunResult(available=sum(len(s.tests) for s in sets))
    for test_set in sets:
        tests = [t for t in test_set.tests if in_shard(test_set.name, t.name, opts.shard)]
        if tests:
            result.sets.append(_replay_set(test_set, tests, opts, log))
    return result


def _replay_set(
    test_set: TestSet, tests: list[TestCase], opts: TestOptions, log: IO[str]
) -> SetResult:
    started = time.monotonic()
    result = SetResult(test_set.name, _shown(test_set.path))
    port = opts.port or int(test_set.meta["port"])
    if listening_host(port) is not None:  # kpy would test whatever that is, not the service
        raise EnvironmentProblem(
            f"port {port} is taken: something listens there already (a service left running?)"
        )
    service_log = ServiceLog(log)
    chain = redact.filters(opts.config)
    substitutions = generated.Substitutions(_recorded_window(test_set.meta))
    substitutions.learn(p for t in test_set.tests for p in t.made_up)
    ledger = LedgerKeeper()
    store = MockStore(
        test_set.mocks_file,
        lambda doc: redact.apply_to(doc, "request", chain),
        substitutions,
        ledger,
    )
    note_origins(substitutions, store, test_set)
    try:
        with contextlib.ExitStack() as undo:
            replay_clock = _replay_clock(opts, test_set, log)
            if replay_clock is not None:
                undo.enter_context(replay_clock)
            kpy = undo.enter_context(UnderKpy(opts.config.tls_ca_files, service_log))
            egress = kpy.loop.listen(
                Address("127.0.0.1", 0), MockEgress(store, kpy.lookup, kpy.termination).handle
            )
            dns_port = MockDns(kpy.loop, store).start()
            session = kpy.session(egress, Address("127.0.0.1", dns_port), None, opts.passthrough)
            env = kpy.trusted.env
            kpy.spawn(
                opts.command, opts.resolv_conf, replay_clock.env(env) if replay_clock else env
            )
            error = kpy.ready(port, opts.ready_url, opts.ready_timeout)
            if error is None and replay_clock is not None and session.cgroup is not None:
                unmoved = clock.unmoved(cgroup.pids_below(session.cgroup))
                for line in unmoved:
                    print(f"kpy: warning: {line}", file=log)
                substitutions.clock = not unmoved
            if error is None:
                print(f"kpy: replaying {test_set.name} ({len(tests)} tests)", file=log)
                if not test_set.meta.get("complete", True):
                    why = test_set.meta.get("interrupted")
                    print(f"kpy: {test_set.name} was recorded incompletely ({why})", file=log)
                runner = _Runner(test_set, tests, opts, store, service_log, port, chain, session)
                runner.clock = replay_clock
                result.tests = runner.run(log)
            else:
                result.error = error.splitlines()[0]
                result.tests = [_failed(test_set.name, t, result.error) for t in tests]
    finally:
        store.close()
    result.unused = [line_of(e) for e in store.unused()]
    result.log_tail = service_log.tail(40)
    result.seconds = time.monotonic() - started
    return result


def note_origins(
    substitutions: generated.Substitutions, store: MockStore, test_set: TestSet
) -> None:
    """Tell the substitutions which values came from outside the service, from the set's
    mocks and tests in the order they were recorded."""
    answered = [
        half
        for t in test_set.tests
        for half in generated.said_in(
            float(t.doc.get("started", 0.0)),
            float(t.doc.get("ended", t.doc.get("started", 0.0))),
            t.doc["request"],
            t.doc["response"],
            False,
            substitutions.token,
        )
    ]
    substitutions.seen = set()
    substitutions.note_origins([*store.origins, *answered])


def _replay_clock(opts: TestOptions, test_set: TestSet, log: IO[str]) -> clock.ReplayClock | None:
    """The replay clock for this set, or None: --clock real, or (with no --clock) a machine
    or a set that cannot have it, said once."""
    if opts.clock == "real":
        return None
    why = clock.unavailable()
    if why is None and _recorded_instant(test_set.meta, 0.0) is None:
        why = f"{test_set.name} does not say when it was recorded (test-set.yaml started_at)"
    start = _recorded_instant(test_set.meta, 0.0)
    if why is None and start is not None:
        replay_clock = clock.ReplayClock()
        replay_clock.set_instant(start)  # the service starts when its recording started
        return replay_clock
    if opts.clock == "recorded":
        raise EnvironmentProblem(f"--clock recorded: {why}")
    print(f"kpy: warning: the replay clock is off ({why}): tests run on today's clock", file=log)
    return None


def _recorded_instant(meta: dict[str, Any], started: float) -> float | None:
    """When something ``started`` seconds into the recording happened, epoch seconds."""
    start = generated.instant(str(meta.get("started_at", "")))
    return None if start is None else start + started


def _recorded_window(meta: dict[str, Any]) -> generated.Window | None:
    """When the set was recorded, if it says (sets from before ``started_at`` do not)."""
    start, end = (generated.instant(str(meta.get(k, ""))) for k in ("started_at", "recorded_at"))
    return generated.Window(start, end) if start is not None and end is not None else None


def _shown(path: Path) -> Path:
    """A path relative to the working directory when it is below it (as annotations want)."""
    try:
        return path.resolve().relative_to(Path.cwd())
    except ValueError:
        return path


def _request_line(test: TestCase) -> str:
    """``GET /products/2``"""
    return f"{test.doc['request']['method']} {test.doc['request']['url']}"


def _failed(set_name: str, test: TestCase, message: str) -> TestResult:
    request = _request_line(test)
    return TestResult(set_name, test.name, _shown(test.file), 1, request, False, 0.0, message)


class _Runner:
    def __init__(
        self,
        test_set: TestSet,
        tests: list[TestCase],
        opts: TestOptions,
        store: MockStore,
        service_log: ServiceLog,
        port: int,
        chain: list[redact.Filter],
        session: Session | None = None,
    ) -> None:
        self.test_set, self.tests, self.opts = test_set, tests, opts
        self.store, self.service_log, self.chain = store, service_log, chain
        host = listening_host(port) or "127.0.0.1"
        self.base_url = f"http://{host}:{port}" if ":" not in host else f"http://[{host}]:{port}"
        # a write is checked after the last test that lists it, since tests served at once
        # when recorded share mocks (attribution by time)
        self.last_owner = {m: t.name for t in tests for m in t.mocks}
        # eBPF's passthrough counts, read as each test ends
        self.passed_through: Callable[[], Mapping[Address, int]] = (
            session.passed_through if session is not None else dict
        )
        self.clock: clock.ReplayClock | None = None

    def run(self, log: IO[str]) -> list[TestResult]:
        results = []
        with resend.client(self.opts.request_timeout) as client:
            for test in self.tests:
                result = self._test(client, test)
                console.progress(result, log)
                written = " (written to its file)" if self.opts.write_noise else ""
                if result.noise:
                    shown = ", ".join(result.noise)
                    print(f"kpy: {result.name}: noise proposed: {shown}{written}", file=log)
                if result.made_up:
                    shown = ", ".join(result.made_up)
                    print(f"kpy: {result.name}: made-up values learned: {shown}{written}", file=log)
                if result.first_sending:
                    print(
                        f"kpy: {result.name}: passed when sent again, nothing learned (the "
                        f"service answers it differently from run to run); the first "
                        f"sending: {result.first_sending}",
                        file=log,
                    )
                results.append(result)
        return results

    def _test(self, client: httpx.Client, test: TestCase) -> TestResult:
        started = time.monotonic()
        lines = self.service_log.count
        ledger = self.store.ledger
        if ledger is not None:
            ledger.begin_test()
        noise = [*self.opts.config.noise, *test.noise]
        subs = self.store.substitutions
        saved = subs.snapshot() if subs is not None else None
        run = self._run(client, test, noise)
        first = run
        made_up: list[str] = []
        rounds = 0
        while subs is not None and saved is not None and (run.misses or run.differences):
            # once more on the same mocks: what differs between the two runs, the service
            # made up (a salt, a random token); learned, the test runs again, and may get
            # further (to a call the failed one never reached) and learn more
            if rounds == LEARNING_ROUNDS:
                break
            rounds += 1
            self._again(run, saved)
            again = self._run(client, test, noise)
            learned = _made_up(run, again, subs.learned)
            run = again
            if learned:
                # and a third time: a value made up differs every time; one read off the
                # clock (a token of the current second) differs only across a second's
                # edge, and each sending starts at the same recorded instant
                self._again(run, saved)
                third = self._run(client, test, noise)
                learned = [p for p in learned if p in _made_up(run, third, subs.learned)]
                run = third
            if not learned:
                break
            made_up += learned
            self._again(run, saved)
            self.store.learn(learned)
            note_origins(subs, self.store, self.test_set)
            run = self._run(client, test, noise)
        proposed: list[str] = []
        if self.opts.detect_noise and run.live is not None:
            self.store.forget(run.served)
            again = self._run(client, test, [])
            run.misses += again.misses
            if again.live is not None:
                between = noise_between(run.live, again.live, self._made_up_both)
                proposed = [p for p in between if p not in noise]
            if proposed and run.live is not None:  # judged with them
                run.differences = self._compare(run.recorded, run.live, [*noise, *proposed])
        if (proposed or made_up) and self.opts.write_noise:
            write_noise(test, proposed, made_up)
        first_sending = ""
        if run is not first and not made_up and not (run.misses or run.differences):
            first_sending = _verdict(first.error, first.misses, [], first.differences)[0]
        egress = ledger.end_test(self.passed_through()) if ledger is not None else None
        owned = [m for m in test.mocks if self.last_owner.get(m) == test.name]
        not_made = self.store.not_made(owned)
        live, misses, differences = run.live, run.misses, run.differences
        message, details = _verdict(run.error, misses, not_made, differences)
        if differences and live is not None:
            details = render(differences, run.recorded, live) + (
                "\n\n" + details if details else ""
            )
        if misses or not_made or run.error:
            line = test.line(["mocks"] if misses or not_made else ["response"])
        else:
            line = test.line(_place(differences[0].where) if differences else [])
        return TestResult(
            set_name=self.test_set.name,
            name=test.name,
            file=_shown(test.file),
            line=line,
            request=_request_line(test),
            passed=not message,
            seconds=time.monotonic() - started,
            message=message,
            details=details,
            log=self.service_log.since(lines),
            noise=tuple(proposed),
            made_up=tuple(made_up),
            first_sending=first_sending,
            ledger=egress,
        )

    def _again(self, run: _Run, saved: tuple[dict[str, str], dict[str, str]]) -> None:
        """Undo what ``run`` used and substituted, to send its test once more; its ledger
        tells of the last sending only."""
        self.store.forget(run.served)
        if self.store.substitutions is not None:
            self.store.substitutions.restore(saved)
        if self.store.ledger is not None:
            self.store.ledger.run_again(self.passed_through())

    def _run(self, client: httpx.Client, test: TestCase, noise: list[str]) -> _Run:
        """The test's request sent once, its calls served, its answer compared."""
        self.store.begin_test(test.mocks)
        before = self.store.served_count()  # a start-up's mocks are not this test's to undo
        subs = self.store.substitutions
        if subs is not None:  # the test's times, give or take its length
            length = float(test.doc.get("ended", 0.0)) - float(test.doc.get("started", 0.0))
            subs.slack = generated.CLOCK_SLACK_SECONDS + max(length, 0.0)
        live, error = self._send(client, test)
        misses, served = self._settle()
        missed = self.store.missed_calls
        # the recorded answer with the generated values the replay used in their place
        recorded = subs.apply(test.doc["response"]) if subs else test.doc["response"]
        differences = self._compare(recorded, live, noise) if live is not None else []
        return _Run(live, error, misses, served[before:], missed, recorded, differences)

    def _made_up_both(self, first: Any, second: Any) -> bool:
        """Whether two live values are made-up values of one kind (no noise, then)."""
        subs = self.store.substitutions
        return subs is not None and subs.pairs(first, second, self.store.live_window()) is not None

    def _compare(self, recorded: Doc, live: Doc, noise: list[str]) -> list[Difference]:
        subs = self.store.substitutions
        if subs is None:
            return compare_response(recorded, live, noise)
        window = self.store.live_window()
        return compare_response(recorded, live, noise, lambda a, b: subs.take(a, b, window))

    def _settle(self) -> tuple[list[Miss], list[str]]:
        """Wait until the service has made no call for a moment (work it does after it
        answers belongs to this test too), then end the test."""
        deadline = time.monotonic() + QUIET_MAX_SECONDS
        while time.monotonic() < deadline:
            quiet = time.monotonic() - self.store.last_call
            if quiet >= QUIET_SECONDS:
                break
            time.sleep(QUIET_SECONDS - quiet)
        return self.store.end_test()

    def _send(self, client: httpx.Client, test: TestCase) -> tuple[Doc | None, str]:
        request = test.doc["request"]
        if self.clock is not None:  # the service's clock at the instant the test was recorded
            at = _recorded_instant(self.test_set.meta, float(test.doc.get("started", 0.0)))
            if at is not None:
                self.clock.set_instant(at)
        try:
            response, raw = resend.send(client, self.base_url, request, self.opts.headers)
        except resend.NoAnswer as e:
            return None, str(e)
        return self._live(response, raw), ""

    def _live(self, response: httpx.Response, raw: bytes) -> Doc:
        """The response in the recorded shape, redacted as the recording was."""
        headers, body = resend.received(response, raw)
        doc: Doc = {
            "status": response.status_code,
            "reason": response.reason_phrase,
            "headers": http.redact_headers(headers),
        }
        if body is not None:
            doc["body"] = body
        return redact.apply_to(doc, "response", self.chain)


@dataclass
class _Run:
    """One sending of a test's request, and what came of it."""

    live: Doc | None
    error: str
    misses: list[Miss]
    served: list[str]
    """The mocks served since the request was sent."""
    missed: list[tuple[str, Hashable]]
    """The calls of the misses, by protocol, as their match keys (readable)."""
    recorded: Doc
    """The recorded response, with the generated values of this run in their place."""
    differences: list[Difference]


def _made_up(first: _Run, second: _Run, known: Sequence[str]) -> list[str]:
    """The patterns of the values that differ between two runs of a test on the same
    mocks, in the calls that missed and in the response's body (generated.py)."""
    pairs = [
        pair
        for (p1, k1), (p2, k2) in zip(first.missed, second.missed, strict=False)
        if p1 == p2
        for pair in generated.differing_texts(k1, k2)
    ]
    if first.live is not None and second.live is not None:
        pairs += generated.differing_texts(first.live.get("body"), second.live.get("body"))
    found: list[str] = []
    for a, b in pairs:
        pattern = generated.learned_pattern(a, b)
        if pattern is not None and pattern not in known and pattern not in found:
            found.append(pattern)
    return found


def _place(where: str) -> list[Any]:
    """Where a difference is in the test's file: ``body.items.0.price`` is at
    response.body.json.items[0].price; a header at response.headers."""
    head, _, rest = where.partition(".")
    if head == "header":
        return ["response", "headers"]
    if head == "body" and rest:
        return [
            "response",
            "body",
            "json",
            *(int(p) if p.isdigit() else p for p in rest.split(".")),
        ]
    return ["response", head]


def _verdict(
    error: str, misses: Sequence[Miss], not_made: Sequence[Entry], differences: Sequence[Any]
) -> tuple[str, str]:
    """The one-line message (empty: passed) and the details beyond the response diff."""
    sections = []
    if misses:
        parts = []
        for miss in misses:
            lines = [miss.line()]
            for c in miss.candidates:
                lines.append(f"  nearest: {c.name}: {c.summary}")
                lines += [f"    {d}" for d in c.diff.splitlines()]
            if not miss.candidates:
                lines.append("  nothing like it was recorded")
            parts.append("\n".join(lines))
        sections.append("\n".join(parts))
    if not_made:
        sections.append(
            "\n".join(
                f"expected call not made: {line_of(e)} (to {e.destination})" for e in not_made
            )
        )
    details = "\n\n".join(sections)
    if error:
        return error, details
    if misses:
        return misses[0].line() + _more(misses), details
    if not_made:
        return f"expected call not made: {line_of(not_made[0])}{_more(not_made)}", details
    if differences:
        return f"response changed: {differences[0].line()}{_more(differences)}", details
    return "", details


def _more(items: Sequence[Any]) -> str:
    return f" (and {len(items) - 1} more)" if len(items) > 1 else ""


def write_noise(test: TestCase, proposed: Iterable[str], made_up: Iterable[str] = ()) -> None:
    """Add the proposed noise and the learned made-up values to the test's file, whole or
    not at all."""
    doc = dict(test.doc)
    for name, values in (("noise", list(proposed)), ("made_up", list(made_up))):
        if values:
            doc[name] = sorted({*doc.get(name, ()), *values})
    write_file(test.file, dump(doc).encode())
