"""What a replay found, as plain data: every report (JUnit, GitHub, console) is made from
these, and nothing else, so a report never needs the replay's machinery."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Candidate:
    """A recorded mock near a call that matched none: its name, what it asked, and how the
    live call differs from it (a short unified diff)."""

    name: str
    summary: str
    diff: str


@dataclass(frozen=True)
class Miss:
    """An outbound call the service made that no mock answers."""

    protocol: str
    destination: str
    connection: int
    call: str
    """The call, one line: ``SELECT ... WHERE id = $1 ['2']``, ``GET shop:products``."""
    candidates: tuple[Candidate, ...] = ()

    def line(self) -> str:
        return f"{self.protocol} call to {self.destination} matched no mock: {self.call}"


@dataclass(frozen=True)
class ConnectionUse:
    """One TCP connection of the service that kpy's mock servers answered, as a test saw
    it: what was served on it and what was refused during the test."""

    connection: int
    """kpy's number for it, as miss reports show it."""
    destination: str
    """Where the service dialled: ``127.0.0.1:5432``."""
    protocol: str = ""
    """As sniffed (empty: it sent no call)."""
    name: str = ""
    """The host name the service resolved to that address through kpy, if it did."""
    opened_earlier: bool = False
    """Opened before the test began (a pool, a keep-alive connection) and used in it."""
    served: tuple[str, ...] = ()
    """The mocks that answered its calls, in order."""
    refused: tuple[str, ...] = ()
    """Its calls that matched no mock (answered with a protocol error), one line each."""
    closed_by_kpy: bool = False
    """kpy's mock server hung up on it after refusing a call."""


@dataclass(frozen=True)
class PassedThrough:
    """TCP connect()s a passthrough rule let go to their real destination (counted by
    eBPF: kpy's proxy never sees them)."""

    destination: str
    connections: int


@dataclass(frozen=True)
class LookupUse:
    """A DNS question the service asked kpy: ``A rates.example``."""

    question: str
    mock: str = ""
    """The mock that answered it; empty: none did (answered SERVFAIL)."""


@dataclass(frozen=True)
class Ledger:
    """Where a test's outbound traffic went: every connection the service opened or used
    since the test before it ended, every passthrough connect() and DNS lookup."""

    connections: tuple[ConnectionUse, ...] = ()
    passed: tuple[PassedThrough, ...] = ()
    lookups: tuple[LookupUse, ...] = ()


@dataclass(frozen=True)
class TestResult:
    set_name: str
    name: str
    file: Path
    """The test's YAML file, relative to the working directory when it is below it."""
    line: int
    request: str
    """``GET /products/2``"""
    passed: bool
    seconds: float
    message: str = ""
    """One line: why it failed (empty when it passed)."""
    details: str = ""
    """Everything about the failure, many lines: the response diff, the misses with their
    nearest candidates, the calls expected but not made."""
    log: str = ""
    """What the service printed while the test ran."""
    noise: tuple[str, ...] = ()
    """With --detect-noise: the fields proposed as noise."""
    made_up: tuple[str, ...] = ()
    """Patterns of the made-up values learned while it ran (generated.learned_pattern)."""
    first_sending: str = ""
    """Why its first sending failed, when it passed sent again with nothing learned: the
    service answers it differently from run to run (a flaky test, said, never hidden)."""
    failure_type: str = "kpy.regression"
    """JUnit's failure type: a regression, or ``schema-drift`` (re-record needed)."""
    ledger: Ledger | None = None
    """Where its outbound traffic went (None: the test never ran against the service)."""


@dataclass
class SetResult:
    name: str
    path: Path
    tests: list[TestResult] = field(default_factory=list)
    unused: list[str] = field(default_factory=list)
    """Mocks no call used, one line each (``mock-7 redis GET shop:products``): listed, not
    failed (reads the service no longer makes)."""
    seconds: float = 0.0
    error: str | None = None
    """Why the set could not be replayed at all (the service never became ready, ...):
    then every test in it has failed with this message."""
    log_tail: str = ""

    @property
    def failed(self) -> int:
        return sum(not t.passed for t in self.tests)

    @property
    def passed(self) -> int:
        return sum(t.passed for t in self.tests)


@dataclass
class RunResult:
    sets: list[SetResult] = field(default_factory=list)
    available: int = 0
    """Tests in the sets replayed from, before --shard chose among them."""

    @property
    def total(self) -> int:
        return sum(len(s.tests) for s in self.sets)

    @property
    def failed(self) -> int:
        return sum(s.failed for s in self.sets)

    @property
    def passed(self) -> int:
        return sum(s.passed for s in self.sets)


_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def printable(text: str) -> str:
    """The text with what XML 1.0 cannot hold (control characters other than tab and line
    breaks, lone surrogates, U+FFFE/U+FFFF) shown as ``\\x1b``-style escapes: a service's
    output may hold anything, and a report must still load."""
    return _NOT_XML.sub(
        lambda m: f"\\x{ord(m[0]):02x}" if ord(m[0]) < 256 else f"\\u{ord(m[0]):04x}", text
    )


def one_line(text: str) -> str:
    """The text as one printable line (line breaks become spaces): for messages and titles,
    which CI systems show on one line."""
    return " ".join(part.strip() for part in printable(text).splitlines() if part.strip())
