"""How a replayed response is compared with the recorded one: status, headers (kpy's
default noise aside), JSON bodies value by value with each difference named by its path,
text bodies whole; noise patterns; the noise two replays disagree on; the rendered diff."""

from __future__ import annotations

import copy
from typing import Any

from kpy_ci.compare import DEFAULT_NOISE, Difference, compare_response, noise_between, render


def response(
    body: dict[str, Any] | None = None, *headers: tuple[str, str], status: int = 200
) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "status": status,
        "reason": "OK",
        "version": "1.1",
        "headers": [list(h) for h in headers],
    }
    if body is not None:
        doc["body"] = body
    return doc


JSON = ("Content-Type", "application/json")
ITEMS = {
    "json": {
        "items": [{"id": 1, "price": "12.50"}, {"id": 2, "price": "3.00"}],
        "total": "15.50",
        "meta": {"page": 1, "at": "2026-11-25T14:31:47.123456"},
    }
}


def wheres(differences: list[Difference]) -> list[str]:
    return [d.where for d in differences]


def changed(body: dict[str, Any], *path: Any, value: Any) -> dict[str, Any]:
    """A deep copy of a JSON body with the value at ``path`` replaced."""
    out = copy.deepcopy(body)
    node = out["json"]
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return out


def test_same_response_has_no_difference() -> None:
    a = response(ITEMS, JSON)
    assert compare_response(a, response(ITEMS, JSON)) == []


def test_status() -> None:
    [d] = compare_response(response(None, status=200), response(None, status=500))
    assert (d.where, d.expected, d.actual) == ("status", 200, 500)
    assert d.line() == "status: 200 -> 500"
    assert compare_response(response(status=200), response(status=500), ["status"]) == []


def test_headers_missing_new_and_changed() -> None:
    recorded = response(None, JSON, ("X-Version", "1"), ("ETag", '"abc"'))
    live = response(None, ("content-type", "text/html"), ("etag", '"abc"'), ("X-New", "yes"))
    by_where = {d.where: d for d in compare_response(recorded, live)}
    assert sorted(by_where) == ["header.Content-Type", "header.X-New", "header.X-Version"]
    assert by_where["header.Content-Type"].expected == "application/json"
    assert by_where["header.Content-Type"].actual == "text/html"
    assert not by_where["header.Content-Type"].missing
    assert by_where["header.X-Version"].missing
    assert by_where["header.X-Version"].line() == "header.X-Version: missing (recorded '1')"
    assert by_where["header.X-New"].added
    assert by_where["header.X-New"].line() == "header.X-New: new 'yes'"


def test_repeated_headers_compare_as_one_list() -> None:
    recorded = response(None, ("Vary", "Accept"), ("Vary", "Origin"))
    assert compare_response(recorded, response(None, ("Vary", "Accept"), ("vary", "Origin"))) == []
    [d] = compare_response(recorded, response(None, ("Vary", "Origin"), ("Vary", "Accept")))
    assert (d.expected, d.actual) == ("Accept, Origin", "Origin, Accept")


def test_default_noise_headers_are_ignored() -> None:
    recorded = response(
        None,
        ("Date", "Wed, 25 Nov 2026 14:31:47 GMT"),
        ("Server", "Werkzeug/3.1.9 Python/3.11.7"),
        ("Content-Length", "77"),
        ("Connection", "close"),
        ("X-Request-Id", "a1"),
    )
    live = response(
        None,
        ("date", "Thu, 26 Nov 2026 09:00:00 GMT"),
        ("Server", "gunicorn"),
        ("Transfer-Encoding", "chunked"),
        ("x-request-id", "b2"),
        ("Traceparent", "00-abc-def-01"),
    )
    assert compare_response(recorded, live) == []
    assert "header.Date" in DEFAULT_NOISE and "header.Server" in DEFAULT_NOISE


def test_header_noise_in_any_case() -> None:
    recorded = response(None, ("X-Foo", "1"), ("X-Bar", "1"))
    live = response(None, ("x-foo", "2"), ("X-BAR", "2"))
    assert wheres(compare_response(recorded, live)) == ["header.X-Bar", "header.X-Foo"]
    assert wheres(compare_response(recorded, live, ["header.x-foo"])) == ["header.X-Bar"]
    assert wheres(compare_response(recorded, live, ["header.X-BAR"])) == ["header.X-Foo"]
    # a header noise pattern covers a header the replay added, or dropped, too
    assert compare_response(response(None), live, ["header.X-FOO", "header.x-bar"]) == []
    assert compare_response(recorded, response(None), ["header.x-foo", "header.x-bar"]) == []


def test_json_values_are_named_by_their_path() -> None:
    live = changed(ITEMS, "items", 0, "price", value="13.00")
    [d] = compare_response(response(ITEMS), response(live))
    assert (d.where, d.expected, d.actual) == ("body.items.0.price", "12.50", "13.00")
    assert d.line() == "body.items.0.price: '12.50' -> '13.00'"


def test_json_members_missing_and_new_and_types() -> None:
    live = changed(ITEMS, "total", value=15.5)  # a number now, not a string
    live["json"]["currency"] = "EUR"
    del live["json"]["meta"]["page"]
    by_where = {d.where: d for d in compare_response(response(ITEMS), response(live))}
    assert sorted(by_where) == ["body.currency", "body.meta.page", "body.total"]
    assert by_where["body.currency"].added and by_where["body.currency"].actual == "EUR"
    assert by_where["body.meta.page"].missing and by_where["body.meta.page"].expected == 1
    assert by_where["body.total"].line() == "body.total: '15.50' -> 15.5"
    # equal numbers of another type differ too: a JSON 1 is not a true
    [d] = compare_response(response({"json": {"ok": 1}}), response({"json": {"ok": True}}))
    assert d.where == "body.ok"


def test_json_key_order_does_not_matter() -> None:
    a = {"json": {"a": 1, "b": [1, 2]}}
    b = {"json": {"b": [1, 2], "a": 1}}
    assert compare_response(response(a), response(b)) == []


def test_json_list_of_another_length_differs_whole() -> None:
    live = {"json": {**ITEMS["json"], "items": ITEMS["json"]["items"][:1]}}
    [d] = compare_response(response(ITEMS), response(live))
    assert d.where == "body.items"


def test_noise_patterns_with_star_and_prefixes() -> None:
    live = changed(ITEMS, "items", 0, "price", value="1.00")
    live = changed(live, "items", 1, "price", value="2.00")
    live = changed(live, "meta", "at", value="2027-01-01T00:00:00.000001")
    live = changed(live, "meta", "page", value=2)
    a, b = response(ITEMS), response(live)
    assert wheres(compare_response(a, b)) == [
        "body.items.0.price",
        "body.items.1.price",
        "body.meta.page",
        "body.meta.at",
    ]
    assert wheres(compare_response(a, b, ["body.items.*.price"])) == [
        "body.meta.page",
        "body.meta.at",
    ]
    assert wheres(compare_response(a, b, ["body.items[1].price"])) == [
        "body.items.0.price",
        "body.meta.page",
        "body.meta.at",
    ]
    # a path covers everything below it
    assert wheres(compare_response(a, b, ["body.meta"])) == [
        "body.items.0.price",
        "body.items.1.price",
    ]
    assert compare_response(a, b, ["body.items", "body.meta"]) == []
    assert compare_response(a, b, ["body"]) == []
    # a pattern is matched part by part, not as a prefix of the text
    assert len(compare_response(a, b, ["body.me", "body.item"])) == 4
    # a pattern deeper than the difference does not cover it
    short = {"json": {**ITEMS["json"], "items": []}}
    assert wheres(compare_response(a, response(short), ["body.items.*.price"])) == ["body.items"]


def test_noise_covers_members_added_or_dropped() -> None:
    a = response({"json": {"id": "x", "name": "thing"}})
    b = response({"json": {"name": "thing", "trace": "t-1"}})
    assert wheres(compare_response(a, b)) == ["body.id", "body.trace"]
    assert compare_response(a, b, ["body.id", "body.trace"]) == []


def test_text_bodies_compare_whole() -> None:
    a = response({"text": "hello\nworld\n"}, ("Content-Type", "text/plain"))
    b = response({"text": "hello\nthere\n"}, ("Content-Type", "text/plain"))
    [d] = compare_response(a, b)
    assert (d.where, d.expected, d.actual) == ("body", "hello\nworld\n", "hello\nthere\n")
    assert compare_response(a, b, ["body"]) == []
    same = response({"text": "hello\nworld\n"}, ("Content-Type", "text/plain"))
    assert compare_response(a, same) == []


def test_body_kinds_and_absent_bodies() -> None:
    text = response({"text": "{not json"})
    json_body = response({"json": {"a": 1}})
    [d] = compare_response(json_body, text)
    assert d.where == "body" and not d.missing and not d.added
    [gone] = compare_response(json_body, response(None))
    assert gone.missing and gone.line().startswith("body: missing")
    [new] = compare_response(response(None), json_body)
    assert new.added and new.line() == 'body: new {"a": 1}'
    binary = response({"base64": "AAE="})
    assert compare_response(binary, response({"base64": "AAE="})) == []
    assert wheres(compare_response(binary, response({"base64": "AAI="}))) == ["body"]


def test_long_values_are_shortened_in_lines() -> None:
    [d] = compare_response(response({"text": "a" * 500}), response({"text": "b" * 500}))
    line = d.line()
    assert len(line) < 300 and line.count("...") == 2


def test_noise_between_two_replies() -> None:
    first = response(
        {"json": {"id": "a1", "items": [{"at": "1"}, {"at": "2"}], "name": "thing"}},
        JSON,
        ("X-Trace", "t1"),
        ("Date", "d1"),
    )
    second = response(
        {"json": {"id": "b2", "items": [{"at": "3"}, {"at": "4"}], "name": "thing"}},
        JSON,
        ("x-trace", "t2"),
        ("Date", "d2"),
    )
    # list indexes become *, each pattern once; kpy's defaults (Date) are not proposed
    assert noise_between(first, second) == ["header.X-Trace", "body.id", "body.items.*.at"]
    assert noise_between(first, first) == []


def test_render_lists_differences_then_a_body_diff() -> None:
    live_body = changed(ITEMS, "items", 1, "price", value="4.00")
    recorded, live = response(ITEMS, JSON), response(live_body, ("Content-Type", "text/json"))
    differences = compare_response(recorded, live)
    text = render(differences, recorded, live)
    lines = text.splitlines()
    assert lines[:2] == [
        "header.Content-Type: 'application/json' -> 'text/json'",
        "body.items.1.price: '3.00' -> '4.00'",
    ]
    assert "--- recorded body" in lines and "+++ replayed body" in lines
    assert '-      "price": "3.00"' in lines
    assert '+      "price": "4.00"' in lines
    # only the lines around the change: the unchanged end of the body is cut
    assert not any("page" in line for line in lines)


def test_render_without_body_differences_has_no_diff() -> None:
    recorded, live = response(ITEMS, JSON), response(ITEMS, JSON, ("X-New", "1"))
    text = render(compare_response(recorded, live), recorded, live)
    assert text == "header.X-New: new '1'"


def test_render_text_bodies_and_binary_bodies() -> None:
    recorded, live = response({"text": "one\ntwo\n"}), response({"text": "one\n2\n"})
    lines = render(compare_response(recorded, live), recorded, live).splitlines()
    assert [line for line in lines if line in ("-two", "+2")] == ["-two", "+2"]
    recorded, live = response({"base64": "AAE="}), response({"base64": "AAI="})
    text = render(compare_response(recorded, live), recorded, live)
    assert text == "body: 'AAE=' -> 'AAI='"  # no diff of bytes


def test_a_header_derived_from_the_body_is_judged_through_it() -> None:
    def answer(body: dict[str, object], etag: str) -> dict[str, object]:
        return {"status": 200, "headers": [["ETag", etag]], "body": {"json": body}}

    recorded = answer({"at": "x", "n": 1}, 'W/"a1"')
    noisy = compare_response(recorded, answer({"at": "y", "n": 1}, 'W/"b2"'), ["body.at"])
    assert noisy == []  # the body differs in noise only: so does its ETag
    changed = compare_response(recorded, answer({"at": "x", "n": 2}, 'W/"c3"'))
    assert [d.where for d in changed] == ["body.n"]  # the body says it; the ETag adds nothing
    same_body = compare_response(recorded, answer({"at": "x", "n": 1}, 'W/"d4"'))
    assert [d.where for d in same_body] == ["header.ETag"]  # the same body, another ETag
