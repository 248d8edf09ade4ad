"""kpy.yml: defaults when absent; a bad file is one line with the file, line and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from kpy_ci import config, redact
from kpy_ci.errors import UsageError
from kpy_ci.protocols.base import REDACTED


def test_absent_means_defaults(tmp_path: Path) -> None:
    assert config.load(tmp_path) == config.Config()


def test_valid(tmp_path: Path) -> None:
    (tmp_path / "kpy.yml").write_text(
        "version: kpy/v1\nkind: Config\nredact:\n  headers: [X-Api-Key]\n"
        "  json_fields: [password]\npassthrough: ['10.0.0.0/8']\n"
    )
    loaded = config.load(tmp_path)
    assert loaded.redact_headers == ("X-Api-Key",)
    assert loaded.redact_json_fields == ("password",)
    assert loaded.passthrough == ("10.0.0.0/8",)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "version: kpy/v1\nkind: Config\nredact:\n  headers:\n    - X-Key\n    - ''\n",
            "kpy.yml:6: redact.headers.1: ''",
        ),
        (
            "version: kpy/v1\nkind: Config\nredcat: {}\n",
            "kpy.yml:1: (top level): Additional properties",
        ),
        ("version: kpy/v2\nkind: Config\n", "kpy.yml:1: version: 'kpy/v1' was expected"),
        ("version: kpy/v1\nkind: [\n", "kpy.yml:3: not valid YAML"),
    ],
)
def test_invalid_names_file_line_and_field(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "kpy.yml").write_text(text)
    with pytest.raises(UsageError) as e:
        config.load(tmp_path)
    assert message in str(e.value)
    assert "\n" not in str(e.value)


def test_configured_redaction() -> None:
    doc = {
        "request": {
            "headers": [["X-Api-Key", "k-123"], ["Accept", "*/*"]],
            "body": {
                "json": {"user": {"password": "p-456", "name": "ann"}, "list": [{"password": 1}]}
            },
        },
        "response": {"headers": [["x-api-key", "k-789"]]},
    }
    chain = redact.filters(
        config.Config(redact_headers=("x-api-key",), redact_json_fields=("password",))
    )
    [out] = redact.apply_all([doc], chain)
    text = repr(out)
    assert "k-123" not in text and "p-456" not in text and "k-789" not in text
    assert out["request"]["headers"] == [["X-Api-Key", REDACTED], ["Accept", "*/*"]]
    assert out["request"]["body"]["json"]["user"] == {"password": REDACTED, "name": "ann"}


def test_kpy_config_names_the_file_in_force(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "kpy.yml").write_text("version: kpy/v1\nkind: Config\nnoise: [body.beside]\n")
    named = tmp_path / "ci" / "kpy-ci.yml"
    named.parent.mkdir()
    named.write_text("version: kpy/v1\nkind: Config\nnoise: [body.named]\n")
    monkeypatch.setenv("KPY_CONFIG", str(named))
    assert config.load(tmp_path).noise == ("body.named",)
    assert config.load(tmp_path).source == named
    monkeypatch.setenv("KPY_CONFIG", str(tmp_path / "absent.yml"))
    with pytest.raises(UsageError, match=r"absent.yml: no such file \(named by KPY_CONFIG\)"):
        config.load(tmp_path)
    monkeypatch.setenv("KPY_CONFIG", "")
    assert config.load(tmp_path).noise == ("body.beside",)
