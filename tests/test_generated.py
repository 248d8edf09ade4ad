"""generated.py: which values a service made up, and substitution one to one."""

from __future__ import annotations

import time
import uuid

from kpy_ci.generated import MASK, Substitutions, Window, masked, tokens
from kpy_ci.protocols.postgres_replay import readable

NOW = time.time()
RECORDED = Window(NOW - 86_400 * 3, NOW - 86_400 * 3 + 60)  # three days ago, for a minute
REPLAY = Window(NOW - 5, NOW)
THEN = "2026-11-28T10:00:30.123456+00:00"


def iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + ".250000+00:00"


def key(*values: str) -> tuple[str, ...]:
    return ("INSERT INTO t VALUES ($1, $2)", *values)


def test_tokens_and_masks_find_uuids_and_timestamps_in_text() -> None:
    u = str(uuid.uuid4())
    text = f"INSERT INTO t VALUES ('{u}', '2026-12-01 12:00:00.5+00')"
    assert list(tokens({"sql": text, "n": 5})) == [u, "2026-12-01 12:00:00.5+00"]
    assert masked(("x", text)) == ("x", f"INSERT INTO t VALUES ('{MASK}', '{MASK}')")
    assert list(tokens("order 12, id 0000-1")) == []


def test_generated_values_stand_one_to_one() -> None:
    subs = Substitutions(RECORDED)
    r1, r2, l1, l2 = (str(uuid.uuid4()) for _ in range(4))
    then, now = iso(RECORDED.start + 10), iso(NOW - 1)
    pairs = subs.pairs(key(r1, then), key(l1, now), REPLAY)
    assert pairs == {r1: l1, then: now}
    subs.commit(pairs)
    assert subs.pairs(key(r1), key(l1), REPLAY) == {r1: l1}  # the same substitution again
    assert subs.pairs(key(r1), key(l2), REPLAY) is None  # r1 stands for l1 already
    assert subs.pairs(key(r2), key(l1), REPLAY) is None  # and l1 for r1
    assert subs.apply({"id": r1, "at": f"at {then}"}) == {"id": l1, "at": f"at {now}"}


def test_what_came_from_outside_or_another_time_is_no_generated_value() -> None:
    subs = Substitutions(RECORDED)
    r, v = str(uuid.uuid4()), str(uuid.uuid4())
    subs.note_seen({"rows": [[r]]})  # a recorded reply held it: the service did not make it
    assert subs.pairs(key(r), key(v), REPLAY) is None
    then = iso(RECORDED.start + 10)
    assert subs.pairs(key(then), key(iso(NOW - 86_400)), REPLAY) is None  # not now
    assert subs.pairs(key(iso(NOW - 86_400 * 10)), key(iso(NOW)), REPLAY) is None  # not then
    assert Substitutions(None).pairs(key(then), key(iso(NOW)), REPLAY) is None  # unknown then
    assert subs.pairs(key(then, "a"), key(iso(NOW), "b"), REPLAY) is None  # another call


def test_postgres_binary_uuids_and_times_are_read_as_text() -> None:
    u = uuid.uuid4()
    bind = {
        "type": "Bind",
        "statement": "",
        "param_formats": [1, 1, 1],
        "params": [
            {"base64": __import__("base64").b64encode(u.bytes).decode()},
            {"base64": "AAMEkFYuGCw="},  # a timestamptz, microseconds since 2000
            {"base64": "AAE="},  # an int2: left alone
        ],
    }
    parse = {"type": "Parse", "statement": "", "sql": "x", "param_types": [2950, 1184, 21]}
    out = readable({"messages": [parse, bind]})["messages"][1]["params"]
    assert out[0] == str(u) and out[1].startswith("2026-") and out[2] == {"base64": "AAE="}
