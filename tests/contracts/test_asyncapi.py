"""`netrun-ws asyncapi`: the document is valid against the AsyncAPI 3.0 specification's own JSON
schema (from the npm package @asyncapi/specs) and lists every message and code."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from netrun_ws.cli import main
from netrun_ws.codes import CloseCode
from netrun_ws.contracts import messages
from tests.contracts.npm_tools import ASYNCAPI_SPECS, npm_package

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def spec() -> jsonschema.Draft7Validator:
    schemas = npm_package(ASYNCAPI_SPECS) / "@asyncapi" / "specs" / "schemas"
    return jsonschema.Draft7Validator(json.loads((schemas / "3.0.0-without-$id.json").read_text()))


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["asyncapi", "--config", str(ROOT / "netrun_ws.yaml")]) == 0
    return dict(json.loads(out.getvalue()))


def test_the_document_is_valid_asyncapi_3(
    spec: jsonschema.Draft7Validator, document: dict[str, Any]
) -> None:
    assert document["asyncapi"] == "3.0.0"
    assert [e.message for e in spec.iter_errors(document)] == []


def test_the_spec_schema_does_reject_a_broken_document(
    spec: jsonschema.Draft7Validator, document: dict[str, Any]
) -> None:
    broken = copy.deepcopy(document)
    broken["operations"]["sendServerMessage"]["action"] = "publish"  # AsyncAPI 2 vocabulary
    assert list(spec.iter_errors(broken))


def test_every_builtin_and_registered_message_is_there(document: dict[str, Any]) -> None:
    names = {m["name"] for m in document["components"]["messages"].values()}
    builtin = {"connect", "ping", "pong", "error", "refreshed", "disconnect", "delivery_gap"}
    assert builtin | {"gap", "recovered", "auth", "refresh"} <= names
    assert {"join", "leave", "say", "direct"} <= names  # plugins/chat.py, from the default config
    operations = document["operations"]
    sent = {ref["$ref"].rsplit("/", 1)[1] for ref in operations["sendServerMessage"]["messages"]}
    received = {r["$ref"].rsplit("/", 1)[1] for r in operations["receiveClientMessage"]["messages"]}
    assert {"Welcome", "Gap", "Recovered", "Say_delivered"} <= sent
    assert {"AuthMessage", "RefreshMessage", "Say"} <= received
    assert "AuthMessage" not in sent and "Welcome" not in received
    schemas = document["components"]["schemas"]
    assert schemas["Say_delivered"]["properties"]["pos"] == {
        "$ref": "#/components/schemas/ChannelPosition"
    }
    assert "pos" not in schemas["Say"]["properties"]  # a client may not send one
    assert schemas["Welcome"]["properties"]["positions"]


def test_close_and_error_codes_are_documented(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    close = {c["const"]: c for c in schemas["CloseCode"]["oneOf"]}
    assert set(close) == {int(code) for code in CloseCode}
    assert close[4101]["title"] == "SLOW_CONSUMER" and close[4101]["description"]
    errors = {c["const"] for c in schemas["ErrorCode"]["oneOf"]}
    assert {"invalid_json", "validation_failed", "rate_limited"} <= errors


def test_the_server_comes_from_the_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "netrun_ws.yaml"
    config.write_text("server: {port: 9123, path: /socket}\nplugins_dir: null\n")
    assert main(["asyncapi", "--config", str(config)]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["servers"]["configured"]["host"] == "127.0.0.1:9123"
    assert document["channels"]["websocket"]["address"] == "/socket"
    names = {m["name"] for m in document["components"]["messages"].values()}
    assert "say" not in names  # no chat plugin in this config


def test_a_broken_config_is_exit_2_without_a_document(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "netrun_ws.yaml"
    config.write_text("auth: {plugin: nosuch}\n")
    assert main(["asyncapi", "--config", str(config)]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and "unknown plugin 'nosuch'" in captured.err


def test_the_builtin_models_describe_every_message_the_host_lists() -> None:
    tags = {m.model_fields["type"].annotation.__args__[0] for m in messages.SERVER_MESSAGES}  # type: ignore[union-attr]
    assert tags == {
        "connect",
        "ping",
        "pong",
        "error",
        "refreshed",
        "disconnect",
        "delivery_gap",
        "gap",
        "recovered",
    }
