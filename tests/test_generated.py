"""generated.py: which values a service made up, and substitution one to one; trace.py:
the trace comments left out of SQL's match key."""

from __future__ import annotations

import time
import uuid

import pytest

from kpy_ci.generated import (
    MASK,
    Substitutions,
    Window,
    instant,
    jwt_changes,
    masked,
    said_in,
    tokens,
)
from kpy_ci.protocols.postgres.replay import match_key, readable

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


def test_times_in_every_common_shape_are_found_and_read() -> None:
    at = 1796593350.0  # 2026-12-06 21:42:30 UTC
    shapes = {
        "2026-12-06 21:42:30.961 +00:00": at + 0.961,  # Sequelize
        "2026-12-06T21:42:30Z": at,
        "2026-12-06T23:42:30.5+02:00": at + 0.5,
        "2026-12-06 21:42:30": at,  # SQL, MySQL DATETIME (no zone: UTC)
        "2026-12-06T21:42:30.123456789+0000": at + 0.123456,  # nanoseconds (Go, Java)
        "2026-12-06 21:42:30+00": at,  # PostgreSQL's text
        "Sun, 06 Dec 2026 21:42:30 GMT": at,  # HTTP dates
        "1796593350": at,  # Unix seconds
        "1796593350250": at + 0.25,  # and milliseconds
    }
    for text, expected in shapes.items():
        assert list(tokens(f"x '{text}' y")) == [text], text
        assert instant(text) == pytest.approx(expected), text
    assert list(tokens({"iat": 1796593350, "n": 5, "ok": True, "price": 1796593350.5})) == [
        "1796593350"
    ]
    assert masked({"exp": 1796593350, "n": 7}) == {"exp": MASK, "n": 7}
    for text in ("order 12, id 0000-1", "phone 0123456789", "v1.2.3", "2026-12-06"):
        assert list(tokens(text)) == [], text


def test_under_the_replay_clock_a_time_stands_only_for_one_near_it() -> None:
    subs = Substitutions(RECORDED, clock=True, slack=2.0)
    issued, expires = RECORDED.start + 10, RECORDED.start + 10 + 3600  # an hour ahead
    assert subs.pairs(
        key(iso(issued), iso(expires)), key(iso(issued + 1), iso(expires + 1)), REPLAY
    )
    assert subs.pairs(key(iso(issued)), key(iso(issued + 30)), REPLAY) is None  # too far
    assert subs.pairs(key(iso(issued)), key(iso(NOW)), REPLAY) is None  # today's clock
    # each test rewinds the clock: two times recorded 4 ms apart may be read as one
    base = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(issued + 20))
    first, second, read = (key(f"{base}.{ms}+00:00") for ms in ("100", "104", "106"))
    assert subs.take(first, read, REPLAY) and subs.take(second, read, REPLAY)
    far = key(time.strftime("%Y-%m-%dT%H:%M:%S.104+00:00", time.gmtime(issued + 21)))
    assert not subs.take(far, read, REPLAY)  # a second apart: a stale time reused
    # the same instant recorded in two shapes (ISO and MySQL's DATETIME) is read as one
    same = Substitutions(RECORDED, clock=True, slack=2.0)
    at = time.gmtime(issued + 40)
    iso_form = key(time.strftime("%Y-%m-%dT%H:%M:%S.250000+00:00", at))
    sql_form = key(time.strftime("%Y-%m-%d %H:%M:%S.250000", at))
    live = key(time.strftime("%Y-%m-%dT%H:%M:%S.300000+00:00", at))
    assert same.take(iso_form, live, REPLAY) and same.take(sql_form, live, REPLAY)
    strict = Substitutions(RECORDED, slack=2.0)  # on today's clock, one to one
    base = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(RECORDED.end - 1))
    now = key(time.strftime("%Y-%m-%dT%H:%M:%S.500+00:00", time.gmtime(NOW - 1)))
    assert strict.take(key(f"{base}.100+00:00"), now, REPLAY)
    assert not strict.take(key(f"{base}.104+00:00"), now, REPLAY)


def test_the_times_new_in_one_call_move_together() -> None:
    subs = Substitutions(RECORDED)
    then, now = RECORDED.start + 10, NOW - 1
    same = key(iso(then), iso(then + 30)), key(iso(now), iso(now + 30))
    assert subs.pairs(*same, REPLAY) is not None
    longer = key(iso(then), iso(then + 30)), key(iso(now), iso(now + 60))  # a lifetime changed
    assert subs.pairs(*longer, REPLAY) is None
    epoch = Substitutions(RECORDED, clock=True)
    token = {"iat": int(then), "exp": int(then) + 30}
    assert epoch.take(token, {"iat": int(then) + 1, "exp": int(then) + 31}, REPLAY)
    assert epoch.apply(token) == {"iat": int(then) + 1, "exp": int(then) + 31}
    assert not Substitutions(RECORDED, clock=True).take(
        token, {"iat": int(then), "exp": int(then) + 60}, REPLAY
    )


def test_a_value_is_the_services_own_if_it_said_it_first() -> None:
    subs = Substitutions(RECORDED)
    made, fetched, sent = (str(uuid.uuid4()) for _ in range(3))
    subs.note_origins(
        [
            *said_in(0.0, 0.05, {"url": f"/users/{sent}"}, {"id": made}, outbound=False),
            *said_in(0.01, 0.02, {"sql": f"INSERT {made} RETURNING *"}, {"rows": [[made]]}, True),
            *said_in(0.03, 0.04, {"sql": "SELECT"}, {"rows": [[fetched]]}, outbound=True),
            *said_in(0.3, 0.4, {"url": f"/users/{made}"}, {"id": fetched}, outbound=False),
        ]
    )
    assert subs.seen == {sent, fetched}  # a client's value, and one read from a database


def test_sqlcommenter_comments_are_inert_and_hints_are_not() -> None:
    trace = "/*traceparent='00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01'*/"
    assert match_key({"sql": f"SELECT 1 {trace}"}) == match_key({"sql": "SELECT 1"})
    django = "/*controller='index',db_driver='django.db.backends.postgresql'*/"
    assert match_key({"sql": f"{django} SELECT 1"}) == match_key({"sql": "SELECT 1"})
    for kept in ("/*+ SeqScan(t) */", "/*! STRAIGHT_JOIN */", "/* a note */"):
        assert match_key({"sql": f"SELECT {kept} 1"}) != match_key({"sql": "SELECT 1"}), kept


def jwt(claims: dict[str, object], key: bytes = b"k", alg: str = "HS256") -> str:
    import base64
    import hashlib
    import hmac
    import json

    def part(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    head = part(json.dumps({"alg": alg, "typ": "JWT"}).encode())
    body = part(json.dumps(claims).encode())
    signature = hmac.new(key, f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{part(signature)}"


def test_a_jwt_is_judged_by_its_claims_and_its_signature_through_them() -> None:
    at = int(RECORDED.start) + 10
    recorded = jwt({"sub": "7", "role": "user", "iat": at, "exp": at + 30})
    subs = Substitutions(RECORDED, clock=True)
    a_second_later = jwt({"sub": "7", "role": "user", "iat": at + 1, "exp": at + 31})
    assert subs.take({"token": recorded}, {"token": a_second_later}, REPLAY)
    for changed in (
        {"sub": "7", "role": "user", "iat": at, "exp": at + 60},  # lifetime
        {"sub": "7", "role": "admin", "iat": at, "exp": at + 30},  # a claim
    ):
        fresh = Substitutions(RECORDED, clock=True)
        assert not fresh.take(recorded, jwt(changed), REPLAY), changed
    other_key = jwt({"sub": "7", "role": "user", "iat": at, "exp": at + 30}, key=b"other")
    assert not Substitutions(RECORDED, clock=True).take(recorded, other_key, REPLAY)


def test_a_made_up_value_is_learned_as_its_fixed_ends_and_a_run_of_its_characters() -> None:
    import re
    import secrets

    from kpy_ci.generated import learned_pattern

    def bcrypt_like(cost: int) -> str:
        alphabet = "./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
        return f"$2b${cost:02}$" + "".join(secrets.choice(alphabet) for _ in range(53))

    pattern = learned_pattern(f"'{bcrypt_like(10)}'", f"'{bcrypt_like(10)}'")
    assert pattern is not None and pattern.startswith(r"(?<![A-Za-z0-9])\$2b\$10\$")
    assert re.fullmatch(pattern, bcrypt_like(10)) and not re.fullmatch(pattern, bcrypt_like(12))
    # two hashes that start or end alike by chance ("." one time in 75 for bcrypt's last
    # character) keep no fixed part of that
    ending = learned_pattern(bcrypt_like(10)[:-1] + ".", bcrypt_like(10)[:-1] + ".")
    starting = learned_pattern(*("$2b$10$/" + bcrypt_like(10)[8:] for _ in "ab"))
    assert starting == pattern, starting
    assert ending == pattern and learned_pattern("at 1796690163.123", "at 1796690163.456") is None
    sql = "INSERT INTO s VALUES ('{}', 5)"
    token = learned_pattern(sql.format(secrets.token_hex(16)), sql.format(secrets.token_hex(16)))
    assert token == r"(?<![A-Za-z0-9])[0-9a-f]{32}(?![A-Za-z0-9])"
    key = learned_pattern(
        "session:" + secrets.token_urlsafe(24), "session:" + secrets.token_urlsafe(24)
    )
    assert key is not None and re.fullmatch(key, secrets.token_urlsafe(24))
    assert learned_pattern("id 5", "id 6") is None  # a counter, not randomness
    assert learned_pattern("a b c d e f g h", "a b c x y z g h") is None  # spans values


def test_a_jwt_difference_is_told_by_its_claims() -> None:
    at = int(RECORDED.start)
    recorded = jwt({"sub": "1", "iat": at, "exp": at + 30})
    assert jwt_changes(recorded, jwt({"sub": "1", "iat": at, "exp": at + 60})) == [
        f"exp: {at + 30} -> {at + 60} (+30)"
    ]
    changed = jwt({"sub": "ann", "iat": at, "role": "admin"}, alg="HS384")
    assert jwt_changes(recorded, changed) == [
        'header alg: "HS256" -> "HS384"',
        'sub: "1" -> "ann"',
        "exp: missing",
        "role: new",
    ]
    assert jwt_changes(recorded, jwt({"sub": "1", "iat": at, "exp": at + 30}, key=b"x")) == []
    assert jwt_changes(recorded, "not a token") == []
