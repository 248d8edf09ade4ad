"""How a replayed HTTP response is compared with the recorded one. Pure functions.

Compared: the status, every header but the noisy ones, and the body: JSON value by value
(each difference named by its path, ``body.items.0.price``), text or bytes whole. What may
differ is noise, written as ``status``, ``header.NAME`` (any case) or ``body.PATH`` (keys
and list indexes joined by dots, ``*`` standing for any one of them); a noise path also
covers everything below it. kpy's defaults are in ``DEFAULT_NOISE``; kpy.yml's ``noise``
adds to them for every test, a test file's ``noise`` for that test.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from kpy_ci import generated
from kpy_ci.protocols.base import Doc

DEFAULT_NOISE = tuple(
    f"header.{name}"
    for name in (
        "Date", "Server", "Content-Length", "Transfer-Encoding", "Connection", "Keep-Alive",
        "Age", "Expires", "Last-Modified", "X-Request-Id", "X-Runtime", "X-Response-Time",
        "Request-Id", "Traceparent", "Tracestate", "Via", "Alt-Svc", "Report-To", "NEL",
    )
)  # fmt: skip
"""Headers that say when or where a response was made, or how it was framed (the body is
compared itself), not what it says."""

DERIVED_HEADERS = frozenset({"etag", "content-md5", "digest", "content-digest", "repr-digest"})
"""Headers computed from the body: judged through it. Where the bodies differ at all (a
made-up value, a noise field) they differ too and say nothing more; where the bodies are
the same, they must be too."""

Path = tuple[str, ...]


@dataclass(frozen=True)
class Difference:
    where: str
    """``status``, ``header.Content-Type``, ``body``, ``body.items.0.price``"""
    expected: Any
    actual: Any
    missing: bool = False  # the replay lacks it
    added: bool = False  # the replay has it, the recording had not

    def line(self) -> str:
        if self.missing:
            return f"{self.where}: missing (recorded {_short(self.expected)})"
        if self.added:
            return f"{self.where}: new {_short(self.actual)}"
        if isinstance(self.expected, str) and isinstance(self.actual, str):
            changes = generated.jwt_changes(self.expected, self.actual)
            if changes:
                return f"{self.where}: a JWT whose claims differ: {'; '.join(changes)}"
        return f"{self.where}: {_short(self.expected)} -> {_short(self.actual)}"


def _short(value: Any, limit: int = 120) -> str:
    text = json.dumps(value, ensure_ascii=False) if not isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def parse_noise(pattern: str) -> Path:
    head, _, rest = pattern.partition(".")
    if head == "header":
        return ("header", rest.lower())
    return (head, *rest.replace("[", ".").replace("]", "").split(".")) if rest else (head,)


def _covered(path: Path, noise: Sequence[Path]) -> bool:
    return any(
        len(n) <= len(path) and all(a == "*" or a == b for a, b in zip(n, path, strict=False))
        for n in noise
    )


def _headers(doc: Doc) -> dict[str, str]:
    out: dict[str, list[str]] = {}
    for name, value in doc.get("headers") or []:
        out.setdefault(str(name).lower(), []).append(str(value))
    return {name: ", ".join(values) for name, values in out.items()}


def _body(doc: Doc) -> tuple[str, Any]:
    body = doc.get("body")
    if body is None:
        return "none", None
    for kind in ("json", "text", "base64"):
        if kind in body:
            return kind, body[kind]
    return "none", None


def _names(doc: Doc) -> dict[str, str]:
    return {str(n).lower(): str(n) for n, _ in doc.get("headers") or []}


Same = Callable[[Any, Any], bool]
"""Whether a recorded value and a replayed one are the same but for values the service
made up (generated.Substitutions.take)."""


def _equal(a: Any, b: Any) -> bool:
    return a == b and type(a) is type(b)


def compare_response(
    recorded: Doc, live: Doc, noise: Iterable[str] = (), same: Same = _equal
) -> list[Difference]:
    """Every difference between the recorded and the replayed response, noise aside."""
    paths = [parse_noise(p) for p in (*DEFAULT_NOISE, *noise)]
    out: list[Difference] = []
    if recorded.get("status") != live.get("status") and not _covered(("status",), paths):
        out.append(Difference("status", recorded.get("status"), live.get("status")))
    want, got = _headers(recorded), _headers(live)
    names = _names(recorded) | {k: v for k, v in _names(live).items() if k not in want}
    same_body = _body(recorded) == _body(live)
    for key in sorted(set(want) | set(got)):
        if _covered(("header", key), paths) or want.get(key) == got.get(key):
            continue
        if key in DERIVED_HEADERS and key in want and key in got and not same_body:
            continue
        if key in want and key in got and same(want[key], got[key]):
            continue
        where = f"header.{names[key]}"
        out.append(Difference(where, want.get(key), got.get(key), key not in got, key not in want))
    (kind_a, a), (kind_b, b) = _body(recorded), _body(live)
    if kind_a == kind_b == "json":
        _json_diff(a, b, ("body",), paths, out, same)
    elif kind_a == kind_b == "text" and a != b and same(a, b):
        pass
    elif (kind_a, a) != (kind_b, b) and not _covered(("body",), paths):
        out.append(Difference("body", a, b, kind_b == "none", kind_a == "none"))
    return out


def _json_diff(
    a: Any, b: Any, path: Path, noise: Sequence[Path], out: list[Difference], same: Same = _equal
) -> None:
    if _covered(path, noise):
        return
    where = ".".join(path)
    if isinstance(a, dict) and isinstance(b, dict):
        for key in list(a) + [k for k in b if k not in a]:
            sub = (*path, str(key))
            if key not in b:
                if not _covered(sub, noise):
                    out.append(Difference(".".join(sub), a[key], None, missing=True))
            elif key not in a:
                if not _covered(sub, noise):
                    out.append(Difference(".".join(sub), None, b[key], added=True))
            else:
                _json_diff(a[key], b[key], sub, noise, out, same)
    elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _json_diff(x, y, (*path, str(i)), noise, out, same)
    elif not _equal(a, b) and not (type(a) is type(b) and same(a, b)):
        out.append(Difference(where, a, b))


def noise_between(first: Doc, second: Doc, same: Same = _equal) -> list[str]:
    """What differs between two replies to the same request (replayed twice on the same
    mocks): noise, as paths (list indexes as ``*``), defaults aside; ``same``: what is a
    made-up value both times (matched by substitution, so no noise)."""
    found: list[str] = []
    for d in compare_response(first, second, (), same):
        if d.where.startswith("header."):
            pattern = d.where
        else:
            pattern = ".".join("*" if part.isdigit() else part for part in d.where.split("."))
        if pattern not in found:
            found.append(pattern)
    return found


def render(differences: Sequence[Difference], recorded: Doc, live: Doc) -> str:
    """The differences, one a line, then a unified diff of the bodies when they are text
    or JSON (pretty-printed), for the lines around them."""
    lines = [d.line() for d in differences]
    texts = [_pretty(recorded), _pretty(live)]
    if any(d.where.startswith("body") for d in differences) and all(t is not None for t in texts):
        diff = difflib.unified_diff(
            (texts[0] or "").splitlines(),
            (texts[1] or "").splitlines(),
            "recorded body",
            "replayed body",
            n=2,
            lineterm="",
        )
        lines += ["", *diff]
    return "\n".join(lines)


def _pretty(doc: Doc) -> str | None:
    kind, value = _body(doc)
    if kind == "json":
        return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=False)
    if kind == "text":
        return str(value)
    return "" if kind == "none" else None
