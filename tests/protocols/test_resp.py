"""RESP on hand-made bytes: every RESP2 and RESP3 type (the examples of the RESP3
specification among them), cut anywhere; errors; inline commands; the encoder's refusals.
Real server traffic is in test_redis.py."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from kpy_ci.protocols.base import ProtocolError
from kpy_ci.protocols.redis.resp import Frame, Reader, encode, split_inline

VALUES: list[tuple[bytes, Any]] = [
    (b"+OK\r\n", {"simple": "OK"}),
    (b"-ERR unknown command 'foo'\r\n", {"error": "ERR unknown command 'foo'"}),
    (b":-42\r\n", -42),
    (b":9223372036854775807\r\n", 9223372036854775807),
    (b"$5\r\nhello\r\n", "hello"),
    (b"$0\r\n\r\n", ""),
    (b"$4\r\na\r\nb\r\n", "a\r\nb"),
    (b"$3\r\n\xff\x00\xfe\r\n", {"base64": "/wD+"}),
    (b"$-1\r\n", {"null": "bulk"}),
    (b"*-1\r\n", {"null": "array"}),
    (b"*0\r\n", []),
    (b"*3\r\n:1\r\n*1\r\n$1\r\nx\r\n$-1\r\n", [1, ["x"], {"null": "bulk"}]),
    (b"_\r\n", {"null": "resp3"}),
    (b",1.23\r\n", {"double": "1.23"}),
    (b",10\r\n", {"double": "10"}),  # the text is kept: "10", not 10.0
    (b",-inf\r\n", {"double": "-inf"}),
    (b",nan\r\n", {"double": "nan"}),
    (b"#t\r\n", {"bool": True}),
    (b"#f\r\n", {"bool": False}),
    (b"(%d\r\n" % 2**140, {"big": str(2**140)}),
    (b"!21\r\nSYNTAX invalid syntax\r\n", {"blob_error": "SYNTAX invalid syntax"}),
    (b"=15\r\ntxt:Some string\r\n", {"verbatim": "txt", "text": "Some string"}),
    (b"=6\r\nmkd:\xff\xfe\r\n", {"verbatim": "mkd", "text": {"base64": "//4="}}),
    (
        b"%2\r\n+first\r\n:1\r\n+second\r\n:2\r\n",
        {"map": [[{"simple": "first"}, 1], [{"simple": "second"}, 2]]},
    ),
    (b"%0\r\n", {"map": []}),
    (b"~3\r\n+orange\r\n:1\r\n#t\r\n", {"set": [{"simple": "orange"}, 1, {"bool": True}]}),
    (b">3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$2\r\nhi\r\n", {"push": ["message", "ch", "hi"]}),
    (
        b"|1\r\n+key-popularity\r\n%2\r\n$1\r\na\r\n,0.1923\r\n$1\r\nb\r\n,0.0012\r\n"
        b"*2\r\n:2039123\r\n:9543892\r\n",
        {
            "attributes": [
                [
                    {"simple": "key-popularity"},
                    {"map": [["a", {"double": "0.1923"}], ["b", {"double": "0.0012"}]]},
                ]
            ],
            "value": [2039123, 9543892],
        },
    ),
    (  # an attribute on one element of an array
        b"*3\r\n:1\r\n|1\r\n+ttl\r\n:3600\r\n:2\r\n:3\r\n",
        [1, {"attributes": [[{"simple": "ttl"}, 3600]], "value": 2}, 3],
    ),
    (  # attributes at two levels, the inner one on an element that is an aggregate
        b"|1\r\n+a\r\n:1\r\n*1\r\n|1\r\n+b\r\n:2\r\n%1\r\n:3\r\n_\r\n",
        {
            "attributes": [[{"simple": "a"}, 1]],
            "value": [
                {"attributes": [[{"simple": "b"}, 2]], "value": {"map": [[3, {"null": "resp3"}]]}}
            ],
        },
    ),
]
STREAM = b"".join(raw for raw, _ in VALUES)


def read(*chunks: bytes, client: bool = False) -> list[Frame]:
    reader = Reader(client=client)
    return [frame for chunk in chunks for frame in reader.feed(chunk)]


@pytest.mark.parametrize(("raw", "value"), VALUES)
def test_read_and_encode(raw: bytes, value: Any) -> None:
    assert read(raw) == [Frame(value, raw)]
    assert encode(value) == raw
    assert encode(yaml.safe_load(yaml.safe_dump(value))) == raw


def test_frames_cut_anywhere() -> None:
    whole = read(STREAM)
    assert [f.value for f in whole] == [value for _, value in VALUES]
    assert read(*(STREAM[i : i + 1] for i in range(len(STREAM)))) == whole
    for cut in range(len(STREAM)):
        assert read(STREAM[:cut], STREAM[cut:]) == whole


def test_buffered_counts_a_frame_begun() -> None:
    reader = Reader()
    assert reader.feed(b"*2\r\n:1\r\n$5\r\nhel") == []
    assert reader.buffered == len(b"*2\r\n:1\r\n$5\r\nhel")
    assert reader.feed(b"lo\r\n+OK\r\n") == [
        Frame([1, "hello"], b"*2\r\n:1\r\n$5\r\nhello\r\n"),
        Frame({"simple": "OK"}, b"+OK\r\n"),
    ]
    assert reader.buffered == 0


@pytest.mark.parametrize("raw", [b":007\r\n", b":+1\r\n", b"$03\r\nabc\r\n", b"*1\r\n:-0\r\n"])
def test_a_frame_in_a_form_redis_never_writes_is_kept_raw(raw: bytes) -> None:
    assert read(raw) == [Frame({"raw": raw.decode()}, raw)]
    assert encode({"raw": raw.decode()}) == raw


@pytest.mark.parametrize(
    "raw",
    [
        b"?1\r\n",  # no such type
        b"HTTP/1.1 200 OK\r\n",
        b"$?\r\n;4\r\nHell\r\n;0\r\n",  # streamed string: unsupported
        b"*?\r\n:1\r\n.\r\n",  # streamed aggregate: unsupported
        b"$3\r\nabcd\r\n",  # no CRLF where the data should end
        b"$-2\r\n",
        b"%-1\r\n",
        b"#x\r\n",
        b"_0\r\n",
        b":one\r\n",
        b"=3\r\ntxt\r\n",  # verbatim without its format
    ],
)
def test_not_resp(raw: bytes) -> None:
    with pytest.raises(ProtocolError):
        read(raw)


def test_what_clients_send_resp_and_inline_mixed() -> None:
    frames = read(
        b"PING\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\n\r\n   \r\n",
        b"set a 'b c' \"\\xff\"\nEXISTS a",
        b"\r\n",
        client=True,
    )
    assert [(f.value, f.inline) for f in frames] == [
        (["PING"], True),
        (["GET", "k"], False),  # the blank lines after it: no command
        (["set", "a", "b c", {"base64": "/w=="}], True),
        (["EXISTS", "a"], True),
    ]


def test_an_endless_inline_line_is_refused() -> None:
    with pytest.raises(ProtocolError):
        read(b"SET k " + b"v" * 70_000, client=True)


@pytest.mark.parametrize(
    ("line", "words"),
    [
        (b"PING", [b"PING"]),
        (b"  set\tk   v  ", [b"set", b"k", b"v"]),
        (b'SET k "a b\\x41\\n\\"q\\""', [b"SET", b"k", b'a bA\n"q"']),
        (b"SET k 'it\\'s' ''", [b"SET", b"k", b"it's", b""]),
        (b'SET k "\\xZZ"', [b"SET", b"k", b"xZZ"]),
        (b'a"b c"', [b"ab c"]),  # a quote may open inside a word
        (b'SET k "open', None),
        (b'SET k "closed"x', None),  # a closing quote must end the word
        (b"SET k 'open", None),
        (b"", []),
    ],
)
def test_split_inline_as_redis_does(line: bytes, words: list[bytes] | None) -> None:
    assert split_inline(line) == words


@pytest.mark.parametrize(
    "value",
    [
        True,
        1.5,
        None,
        {"nope": 1},
        {"simple": "x", "text": "y"},
        {"verbatim": "txt"},
        {"null": "other"},
        {"bool": "yes"},
        {"base64": "not base64!"},
        {"map": [[1]]},
        [1, object()],
    ],
)
def test_encode_refuses_what_is_no_value(value: Any) -> None:
    with pytest.raises(ValueError):
        encode(value)
