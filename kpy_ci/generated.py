"""Values a service makes up as it runs: a new UUID, the current time. They differ on every
run, so a call that carries one can never equal its recording. Pure functions.

kpy matches such calls by consistent substitution, never by ignoring a value:

- a value counts as generated only if it looks like a UUID, or like a timestamp inside the
  run's own time window (the recording's for a recorded value, the replay's for a live
  one), and appears in no recorded reply and no test's request (then it came from
  outside the service, and must be equal);
- a recorded generated value may stand for a live one at the same place in the call, one
  to one: once ``r`` stood for ``l``, ``r`` stands for nothing else and nothing else for
  ``l``; a response that echoes ``l`` where the recording had ``r`` is then equal too.

Where a value may be is found in text (any string of a request or reply) by pattern; a
protocol that carries values in binary (PostgreSQL parameters) first gives them as text
(``Matcher.readable``).
"""

from __future__ import annotations

import base64
import datetime
import email.utils
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

UUID = re.compile(
    r"\b[0-9a-f]{8}-[0-9a-f]{4}-[1-8][0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}\b", re.I
)
ISO_TIME = re.compile(  # ISO 8601, SQL and MySQL DATETIME: a T or a space, any fraction and zone
    r"\b(?P<date>\d{4}-\d{2}-\d{2})[T ](?P<time>\d{2}:\d{2}:\d{2})(?:[.,](?P<fraction>\d{1,9}))?"
    r"(?P<zone> ?(?:Z|[+-]\d{2}(?::?\d{2})?)(?![\d:]))?(?!\d)"
)
HTTP_DATE = re.compile(  # RFC 1123, as HTTP's Date, Expires and cookies give it
    r"\b(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{2}[ -](?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct"
    r"|Nov|Dec)[ -]\d{4} \d{2}:\d{2}:\d{2} GMT\b"
)
EPOCH = re.compile(r"(?<![\d.])1[5-9]\d{8}(?:\d{3})?(?![\d.])")  # seconds or ms, 2017 to 2033
TIMESTAMP = re.compile(f"{ISO_TIME.pattern}|{HTTP_DATE.pattern}|{EPOCH.pattern}")
JWT = re.compile(r"\beyJ[\w-]{2,}\.eyJ[\w-]{2,}\.[\w-]*")  # header.payload.signature, JSON
RANDOMIZED_SIGNATURES = ("ES", "PS")  # ECDSA and RSA-PSS sign the same claims differently
TOKEN = re.compile(f"{JWT.pattern}|{UUID.pattern}|{TIMESTAMP.pattern}", re.I)
MASK = "\x00generated\x00"
SLACK_SECONDS = 120.0  # a time this far outside a run still belongs to it (clocks, queues)
CLOCK_SLACK_SECONDS = 2.0
"""Under the replay clock a time the service makes is the recorded one, give or take how
much longer or shorter the test runs (``Substitutions.slack`` adds the test's own length)."""


def _epoch(value: object) -> bool:
    """Whether a number in the data may be a Unix time (seconds or milliseconds)."""
    return type(value) is int and EPOCH.fullmatch(str(value)) is not None


def tokens(value: Any, token: re.Pattern[str] = TOKEN) -> Iterator[str]:
    """Every UUID- or time-like text in a value (YAML-ready data, or a match key of
    tuples), in order; a number that may be a Unix time as its digits. ``token``: what to
    look for (``Substitutions.token`` adds the learned made-up values)."""
    if isinstance(value, str):
        yield from (m.group(0) for m in token.finditer(value))
    elif _epoch(value):
        yield str(value)
    elif isinstance(value, dict):
        for item in value.values():
            yield from tokens(item, token)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from tokens(item, token)


def masked(value: Any, token: re.Pattern[str] = TOKEN) -> Any:
    """The value with every UUID- or time-like text (and Unix-time number) replaced by one
    mask: what stays equal between two runs of a call whose generated values differ."""
    if isinstance(value, str):
        return token.sub(MASK, value)
    if _epoch(value):
        return MASK
    if isinstance(value, dict):
        return {k: masked(v, token) for k, v in value.items()}
    if isinstance(value, list):
        return [masked(v, token) for v in value]
    if isinstance(value, tuple):
        return tuple(masked(v, token) for v in value)
    return value


def token_pattern(learned: Iterable[str] = ()) -> re.Pattern[str]:
    """What ``tokens`` looks for: the built-in kinds, then the learned made-up values."""
    return re.compile("|".join([TOKEN.pattern, *learned]), re.I) if learned else TOKEN


DELIMITERS = " \t\r\n'\"`,;()[]{}<>=&?:|"
"""What ends a value inside a text (SQL, a query string, a Redis key): a made-up value's
pattern starts and stops at one of them. Not ``/``, ``.``, ``$``, ``+`` or ``-``: base64,
bcrypt and JWTs hold them."""
MIN_MADE_UP = 8  # fewer characters that change are a counter or a choice, not randomness
_CLASSES = (
    ("0-9", str.isdigit),
    ("a-f", lambda c: c in "abcdef"),
    ("A-F", lambda c: c in "ABCDEF"),
)


DECIMAL = re.compile(r"[0-9]+\.[0-9]+")
RANDOM_SYMBOLS = "./+_-="
"""The symbols inside random values: base64 (``+/=``, URL-safe ``-_``) and bcrypt (``./``)."""


def _fixed(c: str) -> bool:
    """Whether a character can end a fixed end of a made-up value."""
    return not c.isalnum() and c not in RANDOM_SYMBOLS


def learned_pattern(first: str, second: str) -> str | None:
    """The pattern of a made-up value, from two runs of the same call or response that
    gave ``first`` and ``second`` at the same place: the characters both share at its ends
    stay as they are (``$2b$10$`` of a bcrypt hash: a changed cost is a changed value), the
    ones between become a character class of their length. None when what changed is too
    short to be made up, or is no value of its own (it spans a delimiter)."""
    if first == second:
        return None
    start = 0
    while start < min(len(first), len(second)) and first[start] == second[start]:
        start += 1
    end = 0
    while end < min(len(first), len(second)) - start and first[-1 - end] == second[-1 - end]:
        end += 1
    # widen to the whole value: back to a delimiter on each side
    begin = max(first.rfind(c, 0, start) for c in DELIMITERS) + 1
    after = [i for i in (first.find(c, len(first) - end) for c in DELIMITERS) if i != -1]
    stop_first = min(after, default=len(first))
    stop_second = len(second) - (len(first) - stop_first)
    value_a, value_b = first[begin:stop_first], second[begin:stop_second]
    # the fixed ends: what both share, cut back to a character no random run holds (not
    # alphanumeric, nor a symbol of base64 or bcrypt), as one may share its first or last
    # characters by chance (two bcrypt hashes both end in "." one time in 75)
    head = value_a[: start - begin]
    head = head[: max((i + 1 for i, c in enumerate(head) if _fixed(c)), default=0)]
    tail_length = max(0, stop_first - (len(first) - end))
    tail = value_a[len(value_a) - tail_length :] if tail_length else ""
    cut = next((i for i, c in enumerate(tail) if _fixed(c)), len(tail))
    tail = tail[cut:]
    middles = (
        value_a[len(head) : len(value_a) - len(tail)],
        value_b[len(head) : len(value_b) - len(tail)],
    )
    if min(len(m) for m in middles) < MIN_MADE_UP:
        return None
    if any(c in DELIMITERS for m in middles for c in m):
        return None
    if all(DECIMAL.fullmatch(m) for m in middles):
        return None  # a measure (a time, an amount), not a made-up value
    chars = set("".join(middles))
    if any(c.isalpha() and c not in "abcdefABCDEF" for c in chars):
        kinds = "A-Za-z0-9" + "".join(
            sorted(
                {re.escape(c) for c in chars if not c.isalnum()}
                | {r"\.", "/", r"\+", "_", r"\-", "="}
            )
        )
    else:
        kinds = "".join(name for name, holds in _CLASSES if any(holds(c) for c in chars))
        kinds += "".join(sorted(re.escape(c) for c in chars if not c.isalnum()))
    low, high = sorted(len(m) for m in middles)
    count = f"{{{low}}}" if low == high else f"{{{max(MIN_MADE_UP, low - 2)},{high + 2}}}"
    return rf"(?<![A-Za-z0-9]){re.escape(head)}[{kinds}]{count}{re.escape(tail)}(?![A-Za-z0-9])"


def differing_texts(first: Any, second: Any) -> Iterator[tuple[str, str]]:
    """The texts at the same place in two values of the same shape that differ."""
    if isinstance(first, str) and isinstance(second, str):
        if first != second:
            yield first, second
    elif isinstance(first, dict) and isinstance(second, dict) and first.keys() == second.keys():
        for key in first:
            yield from differing_texts(first[key], second[key])
    elif (
        isinstance(first, list | tuple)
        and isinstance(second, list | tuple)
        and len(first) == len(second)
    ):
        for a, b in zip(first, second, strict=True):
            yield from differing_texts(a, b)


def instant(text: str) -> float | None:
    """A time in any of the shapes above as epoch seconds (no zone: UTC), or None."""
    text = text.strip()
    if EPOCH.fullmatch(text):
        return int(text) / (1000 if len(text) == 13 else 1)
    if HTTP_DATE.fullmatch(text):
        return email.utils.parsedate_to_datetime(text.replace("-", " ")).timestamp()
    m = ISO_TIME.fullmatch(text)
    if m is None:
        return None
    zone = (m["zone"] or "").strip()
    if zone in ("", "Z"):
        zone = "+00:00"
    elif len(zone) == 3:
        zone += ":00"
    elif ":" not in zone:
        zone = f"{zone[:3]}:{zone[3:]}"
    fraction = (m["fraction"] or "0")[:6].ljust(6, "0")
    try:
        moment = datetime.datetime.fromisoformat(f"{m['date']}T{m['time']}.{fraction}{zone}")
    except ValueError:
        return None
    return moment.timestamp()


@dataclass(frozen=True)
class Window:
    """When a run happened, epoch seconds."""

    start: float
    end: float

    def holds(self, text: str) -> bool:
        t = instant(text)
        return t is not None and self.start - SLACK_SECONDS <= t <= self.end + SLACK_SECONDS


@dataclass(frozen=True)
class Said:
    """Half of an exchange: its generated-looking values, when it happened, and whether the
    service said it (a call it made, a response it gave) or was told it (a reply, a
    client's request). A set may hold millions: only these are kept."""

    at: float
    values: frozenset[str]
    by_service: bool


def said_in(
    started: float,
    ended: float,
    request: Any,
    response: Any,
    outbound: bool,
    token: re.Pattern[str] = TOKEN,
) -> list[Said]:
    """The halves of a call the service made (``outbound``: a mock) or of a request it
    answered (a test): the request at its start, the response at its end; those that hold
    any such value."""
    halves = ((started, request, outbound), (ended, response, not outbound))
    out = []
    for at, value, by_service in halves:
        found = frozenset(t.lower() for t in tokens(value, token))
        if found:
            out.append(Said(at, found, by_service))
    return out


@dataclass
class Substitutions:
    """Which recorded generated value stands for which live one, one to one."""

    recorded: Window | None
    """None: the set does not say when it was recorded, so no time is taken as generated."""
    seen: set[str] = field(default_factory=set)
    """Values from outside the service (recorded replies, tests' requests): never generated."""
    forward: dict[str, str] = field(default_factory=dict)
    backward: dict[str, str] = field(default_factory=dict)
    clock: bool = False
    """The replay clock moves the service's clock (clock.py): a live time stands for a
    recorded one only within ``slack`` of it, wherever the recorded one lies."""
    slack: float = CLOCK_SLACK_SECONDS
    """How far the times of the running test may be from the recorded ones, under the
    replay clock; also how far apart the shifts of the times new in one call may be."""
    learned: list[str] = field(default_factory=list)
    """Patterns of made-up values learned from two runs (``learned_pattern``)."""
    token: re.Pattern[str] = TOKEN

    def learn(self, patterns: Iterable[str]) -> None:
        self.learned += [p for p in patterns if p not in self.learned]
        self.token = token_pattern(self.learned)

    def kind(self, token: str) -> str:
        """``kind`` of the built-in ones, else ``made-up N`` for the learned pattern N."""
        if not TOKEN.fullmatch(token):
            for n, pattern in enumerate(self.learned):
                if re.fullmatch(pattern, token):
                    return f"made-up {n}"
        return kind(token)

    def snapshot(self) -> tuple[dict[str, str], dict[str, str]]:
        return dict(self.forward), dict(self.backward)

    def restore(self, saved: tuple[dict[str, str], dict[str, str]]) -> None:
        """Forget what was substituted since ``snapshot`` (a run to learn from)."""
        self.forward, self.backward = dict(saved[0]), dict(saved[1])

    def note_seen(self, value: Any) -> None:
        self.seen.update(t.lower() for t in tokens(value, self.token))

    def note_origins(self, halves: Iterable[Said]) -> None:
        """Learn, from a recording's exchanges, which values came from outside the service:
        those it was told (a reply, a client's request) before it had said them itself (a
        call it made, a response it gave). A value the service made and a reply echoed
        (INSERT ... RETURNING), or a client sent back (its token), is still its own."""
        said: set[str] = set()
        for half in sorted(halves, key=lambda h: (h.at, not h.by_service)):
            if half.by_service:
                said |= half.values
            else:
                self.seen |= half.values - said

    def pairs(self, recorded: Any, live: Any, now: Window) -> dict[str, str] | None:
        """The substitutions that make ``live`` equal ``recorded`` (match keys of the same
        call but for generated values), or None if it is another call. The times new in
        the call must all have moved by about as much (a clock moves them together: a token
        whose lifetime changed has its expiry moved by more than its issue time)."""
        if masked(recorded, self.token) != masked(live, self.token):
            return None
        new: dict[str, str] = {}
        for r, v in zip(tokens(recorded, self.token), tokens(live, self.token), strict=True):
            if r == v:
                continue
            if not self._may_stand(r, v, now) or new.get(r, v) != v:
                return None
            if self.kind(r) == "jwt":
                claims = self._claims(r, v, now)
                if claims is None or any(new.get(a, b) != b for a, b in claims.items()):
                    return None
                new |= claims
            new[r] = v
        if len(set(new.values())) != len(new):
            return None
        shifts = [_shift(r, v) for r, v in new.items() if r not in self.forward]
        moved = [d for d in shifts if d is not None]
        if moved and max(moved) - min(moved) > self.slack:
            return None
        return new

    def _claims(self, r: str, v: str, now: Window) -> dict[str, str] | None:
        """The substitutions that make JWT ``v`` the same token as ``r`` (the same header,
        the same claims but for generated values), or None. Its signature is judged
        through them: new claims are signed anew; the same claims signed otherwise by a
        deterministic algorithm (HS*, RS*) mean another key."""
        (head_r, claims_r, sig_r), (head_v, claims_v, sig_v) = _jwt(r), _jwt(v)
        if head_r is None or head_r != head_v:
            return None
        pairs = self.pairs(claims_r, claims_v, now)
        if pairs is None:
            return None
        randomized = str(head_r.get("alg", "")).startswith(RANDOMIZED_SIGNATURES)
        if not pairs and claims_r == claims_v and sig_r != sig_v and not randomized:
            return None
        return pairs

    def take(self, recorded: Any, live: Any, now: Window) -> bool:
        """Whether ``live`` equals ``recorded`` but for generated values; if so, they stand
        for each other from now on."""
        pairs = self.pairs(recorded, live, now)
        if pairs is not None:
            self.commit(pairs)
        return pairs is not None

    def _may_stand(self, r: str, v: str, now: Window) -> bool:
        """Whether recorded ``r`` may stand for live ``v``."""
        if self.forward.get(r, v) != v:
            return False
        # one to one, but for times on the replay clock: each test rewinds the clock to
        # its own recorded instant, so two times recorded a few ms apart may be read as one
        other = self.backward.get(v, r)
        if other != r and not (self.clock and self.kind(r) in CLOCK_KINDS):
            return False
        if other != r:
            apart = _shift(other, r)
            if apart is None or abs(apart) > REWOUND_SECONDS:
                return False
        if r.lower() in self.seen or v.lower() in self.seen:
            return False
        if self.kind(r) != self.kind(v):
            return False
        if self.kind(r) in ("uuid", "jwt") or self.kind(r).startswith("made-up"):
            return True  # a JWT's claims are judged by _claims
        if self.recorded is None:
            return False
        if self.clock:
            shift = _shift(r, v)
            return shift is not None and abs(shift) <= self.slack
        return self.recorded.holds(r) and now.holds(v)

    def commit(self, pairs: dict[str, str]) -> None:
        for r, v in pairs.items():
            self.forward[r] = v
            self.backward[v] = r

    def apply(self, value: Any) -> Any:
        """A recorded value with the generated values the replay used in their place."""
        if not self.forward:
            return value
        if isinstance(value, str):
            return self.token.sub(lambda m: self.forward.get(m.group(0), m.group(0)), value)
        if _epoch(value):
            return int(self.forward.get(str(value), str(value)))
        if isinstance(value, dict):
            return {k: self.apply(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.apply(v) for v in value]
        return value


def kind(token: str) -> str:
    """``jwt``, ``uuid``, ``epoch`` (a Unix time), ``http`` (an HTTP date) or ``iso``."""
    if JWT.fullmatch(token):
        return "jwt"
    if UUID.fullmatch(token):
        return "uuid"
    if EPOCH.fullmatch(token):
        return "epoch"
    return "http" if HTTP_DATE.fullmatch(token) else "iso"


def jwt_changes(recorded: str, live: str) -> list[str]:
    """What differs between two JWTs, readably: their header's and claims' members
    (``exp: 1796690163 -> 1796690193 (+30)``); empty when either is no JWT or only the
    signatures differ."""
    if not (JWT.fullmatch(recorded) and JWT.fullmatch(live)):
        return []
    (head_r, claims_r, _), (head_v, claims_v, _) = _jwt(recorded), _jwt(live)
    if head_r is None or head_v is None or not isinstance(claims_r, dict):
        return []
    if not isinstance(claims_v, dict):
        return []
    changes = []
    for part, r, v in (("header ", head_r, head_v), ("", claims_r, claims_v)):
        for name in [*r, *(k for k in v if k not in r)]:
            a, b = r.get(name, MISSING), v.get(name, MISSING)
            if a == b:
                continue
            if a is MISSING or b is MISSING:
                changes.append(f"{part}{name}: {'missing' if b is MISSING else 'new'}")
                continue
            moved = isinstance(a, int) and isinstance(b, int) and not isinstance(a, bool)
            delta = f" ({b - a:+d})" if moved else ""
            changes.append(f"{part}{name}: {json.dumps(a)} -> {json.dumps(b)}{delta}")
    return changes


MISSING = object()


CLOCK_KINDS = ("iso", "http", "epoch")
"""The kinds of ``kind`` that are read off a clock."""
REWOUND_SECONDS = 0.1
"""How far apart two recorded times may be for one live time to stand for both."""


def _jwt(token: str) -> tuple[dict[str, Any] | None, Any, str]:
    """A JWT's header and claims, decoded (None: not JSON), and its signature."""
    head, claims, signature = token.split(".", 2)
    try:
        decoded = [
            json.loads(base64.urlsafe_b64decode(p + "=" * (-len(p) % 4))) for p in (head, claims)
        ]
    except ValueError:
        return None, None, signature
    return (decoded[0] if isinstance(decoded[0], dict) else None), decoded[1], signature


def _shift(r: str, v: str) -> float | None:
    """How far live time ``v`` is from recorded ``r``, seconds (None: not both times)."""
    a, b = instant(r), instant(v)
    return None if a is None or b is None else b - a
