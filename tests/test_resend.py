"""``resend.Issued``: a re-recording sends the credentials the service issues in this run
where the recording sends ones it issued then, found where ``redact.keep_issued`` finds
them (a JSON field, a header, inside a longer string), and refuses to send one whose
issuing test is not sent again."""

from __future__ import annotations

from kpy_ci.resend import Issued

OLD_BODY_TOKEN = "eyJhbGciOiJIUzI1NiJ9.old-body-token.sig"
NEW_BODY_TOKEN = "eyJhbGciOiJIUzI1NiJ9.new-body-token.sig"
OLD_HEADER_TOKEN = "hdr-0123456789abcdef-old"
NEW_HEADER_TOKEN = "hdr-fedcba9876543210-new"


def response(token: str, header_token: str) -> dict[str, object]:
    return {
        "status": 200,
        "headers": [["Content-Type", "application/json"], ["X-Session", f"v1;{header_token}"]],
        "body": {"json": {"token": token}},
    }


def request(credential: str) -> dict[str, object]:
    return {"method": "GET", "url": "/me", "headers": [["Authorization", f"Bearer {credential}"]]}


def test_a_token_issued_anew_is_sent_in_place_of_the_recorded_one() -> None:
    issued = Issued()
    recorded = response(OLD_BODY_TOKEN, OLD_HEADER_TOKEN)
    issued.saw("test-1", recorded, response(NEW_BODY_TOKEN, NEW_HEADER_TOKEN))
    for old, new in ((OLD_BODY_TOKEN, NEW_BODY_TOKEN), (OLD_HEADER_TOKEN, NEW_HEADER_TOKEN)):
        assert issued.missing(request(old)) == []
        assert issued.given(request(old)) == {"authorization": f"Bearer {new}"}


def test_a_token_whose_issuer_is_not_sent_again_is_refused_not_sent_stale() -> None:
    issued = Issued()
    issued.saw("test-4", response(OLD_BODY_TOKEN, OLD_HEADER_TOKEN), None)
    assert issued.missing(request(OLD_BODY_TOKEN)) == ["test-4"]
    assert issued.missing(request(OLD_HEADER_TOKEN)) == ["test-4"]  # in a header, inside
    assert issued.given(request(OLD_HEADER_TOKEN)) == {}
    assert issued.missing(request("a-credential-the-client-brought-itself")) == []
