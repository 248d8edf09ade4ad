"""A test-set on disk, written whole or not at all:

    <path>/<set>/test-set.yaml       what was recorded, how, and whether it was interrupted
    <path>/<set>/tests/test-K.yaml   one inbound HTTP exchange and the mocks it used
    <path>/<set>/mocks.yaml          every outbound exchange, one YAML document each
    <path>/<set>/schema.lock.yaml    what the dependencies' schemas were (schema/lock.py)

It is built in a temporary directory beside its final place and renamed into it; an existing
set of the same name is swapped out only once the new one is complete.
"""

from __future__ import annotations

import bisect
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kpy_ci.store.owner import give_back, missing_parents
from kpy_ci.store.serializer import document, dump, dump_all

if TYPE_CHECKING:
    from kpy_ci.recording import Recorded

SET_PATTERN = re.compile(r"test-set-(\d+)$")


def next_set_name(root: Path) -> str:
    """test-set-N, one past the highest there."""
    numbers = [int(m.group(1)) for p in root.glob("test-set-*") if (m := SET_PATTERN.match(p.name))]
    return f"test-set-{max(numbers, default=0) + 1}"


def _seconds(at: int, t0: int) -> float:
    return round((at - t0) / 1e9, 6)


def mock_documents(outbound: Iterable[Recorded], t0: int) -> Iterator[dict[str, Any]]:
    """Mock documents, numbered from 1 in the order given, one at a time."""
    for n, r in enumerate(outbound, 1):
        ex = r.exchange
        fields: dict[str, Any] = {
            "name": f"mock-{n}",
            "protocol": ex.protocol,
            "destination": str(r.destination),
        }
        if r.tls is not None:
            fields["tls"] = r.tls
        fields |= {
            "connection": r.connection,
            "order": r.order,
            "reusable": ex.reusable,
            "started": _seconds(ex.started, t0),
            "ended": _seconds(ex.ended, t0),
            "request": ex.request,
            "response": ex.response,
        }
        yield document("Mock", fields)


class MockTimeline:
    """The mocks' start times, sorted once, so each test finds its mocks by bisection
    instead of a scan of every mock (a recording may hold millions)."""

    def __init__(self, outbound_started: Sequence[int]) -> None:
        self._order = sorted(range(len(outbound_started)), key=outbound_started.__getitem__)
        self._starts = [outbound_started[i] for i in self._order]

    def used_by(self, test: Recorded) -> list[int]:
        """Numbers (from 1) of the mocks that started while the test's request was being
        served. Requests served at once share the mocks of their overlap: replay must not
        depend on attribution being perfect, only on it never missing one."""
        t = test.exchange
        lo = bisect.bisect_left(self._starts, t.started)
        hi = bisect.bisect_right(self._starts, t.ended)
        return sorted(i + 1 for i in self._order[lo:hi])


def test_documents(
    inbound: Sequence[Recorded], outbound_started: Sequence[int], t0: int
) -> list[dict[str, Any]]:
    timeline = MockTimeline(outbound_started)
    docs = []
    for k, r in enumerate(inbound, 1):
        ex = r.exchange
        docs.append(
            document(
                "TestCase",
                {
                    "name": f"test-{k}",
                    "started": _seconds(ex.started, t0),
                    "ended": _seconds(ex.ended, t0),
                    "request": ex.request,
                    "response": ex.response,
                    "mocks": [f"mock-{n}" for n in timeline.used_by(r)],
                },
            )
        )
    return docs


def write_test_set(
    root: Path,
    name: str,
    tests: list[dict[str, Any]],
    mocks: Iterable[dict[str, Any] | bytes],
    meta: dict[str, Any] | Callable[[], dict[str, Any]],
    extra_files: Callable[[], dict[str, str]] | None = None,
    copied: Sequence[Path] = (),
) -> Path:
    """Write the set atomically; the final path. ``mocks``: documents, or a document's text
    (from its ``---`` line) kept as it is. ``meta``: test-set.yaml's body, or what makes it
    once every mock has been written. ``extra_files``: more files of the set
    (schema.lock.yaml), made then too. ``copied``: test files kept byte for byte (a
    re-recording's other tests). Under sudo, what it writes belongs to the caller (owner.py)."""
    made = missing_parents(root)
    root.mkdir(parents=True, exist_ok=True)
    give_back(made)
    final = root / name
    building = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=root))
    try:
        (building / "tests").mkdir()
        for doc in tests:
            (building / "tests" / f"{doc['name']}.yaml").write_text(dump(doc))
        for file in copied:
            shutil.copyfile(file, building / "tests" / file.name)
        with open(building / "mocks.yaml", "wb") as out:
            for mock in mocks:  # one at a time: a set may hold more mocks than fit in memory
                out.write(mock if isinstance(mock, bytes) else dump_all([mock]).encode())
        for file_name, text in (extra_files() if extra_files else {}).items():
            (building / file_name).write_text(text)
        body = meta() if callable(meta) else meta
        (building / "test-set.yaml").write_text(dump(document("TestSet", body)))
        _fsync_tree(building)
        building.chmod(0o755)
        give_back([building])
        if final.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{name}.old.", dir=root))
            os.replace(final, old / name)  # the old set stays whole until the new one is in
            os.replace(building, final)
            shutil.rmtree(old)
        else:
            os.replace(building, final)
    except BaseException:
        shutil.rmtree(building, ignore_errors=True)
        raise
    return final


def _fsync_tree(path: Path) -> None:
    for file in path.rglob("*"):
        if file.is_file():
            with open(file, "rb") as f:
                os.fsync(f.fileno())
