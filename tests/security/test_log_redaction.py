"""Credentials a plugin reads from requests are masked in the server's logs because the plugin
says where they travel (``register_redactions``), whichever slot it serves."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from uvicorn.logging import TRACE_LOG_LEVEL

from netrun_ws import create_app, redact
from netrun_ws.plugins import PluginLoadError
from netrun_ws.redact import CredentialLogFilter, Redactions, RedactQueryFilter
from tests.host.helpers import base_config
from tests.security import VERBOSE_SERVER, attempt, captured_logs, leaks
from tests.security.ticket_plugin import TICKET
from tests.support.server import serve

TICKETED = "tests.security.ticket_plugin"


@pytest.mark.parametrize("ws_protocol", ["netrun", "uvicorn"])
async def test_an_app_plugins_ticket_is_masked_by_the_filters_create_app_installs(
    caplog: pytest.LogCaptureFixture, ws_protocol: str
) -> None:
    caplog.set_level(TRACE_LOG_LEVEL)
    server = {"path": "/ws", "ws_protocol": ws_protocol}
    app = create_app(base_config(server=server, plugins=[TICKETED]))
    # Only the filters create_app installed: the test adds none of its own. At TRACE, uvicorn logs
    # each ASGI scope (its subprotocols included); its protocol logs headers at DEBUG.
    with captured_logs(caplog.handler, redact.LOGGERS, level=TRACE_LOG_LEVEL):
        async with serve(app, **VERBOSE_SERVER) as addr:
            by_query = await attempt(f"ws://{addr}/ws?user_id=ann&ticket={TICKET}")
            by_subprotocol = await attempt(
                f"ws://{addr}/ws?user_id=bob", subprotocols=["netrun-ws", f"ticket.{TICKET}"]
            )
    assert by_query.welcome is not None and by_query.welcome["user_id"] == "ann"
    assert by_subprotocol.welcome is not None and by_subprotocol.welcome["user_id"] == "bob"
    lines = [record.getMessage() for record in caplog.records]
    assert any("ticket=***" in line for line in lines), "the query was never logged"
    assert any("ticket.***" in line for line in lines), "the subprotocol was never logged"
    assert leaks(caplog.records, TICKET) == []


def test_the_defaults_are_masked_whatever_the_plugins_add() -> None:
    query, credentials = redact.log_filters(Redactions(("ticket",), ("key-",)))
    assert isinstance(query, RedactQueryFilter) and isinstance(credentials, CredentialLogFilter)
    line = "GET /ws?token=a1&ticket=b2&page=3 protocols: netrun-ws, bearer.c3, key-d4"
    record = logging.LogRecord("uvicorn.access", logging.INFO, __file__, 1, line, None, None)
    query.filter(record)
    credentials.filter(record)
    assert record.getMessage() == (
        "GET /ws?token=***&ticket=***&page=3 protocols: netrun-ws, bearer.***, key-***"
    )


def test_redactions_combine_in_order_each_name_once() -> None:
    combined = redact.DEFAULTS | Redactions(("ticket", "token"), ("bearer.", "ticket."))
    assert combined.query_params == (*redact.DEFAULT_PARAMS, "ticket")
    assert combined.subprotocol_prefixes == ("bearer.", "ticket.")


@pytest.mark.parametrize(
    "bad", [{"query_params": "ticket"}, {"query_params": ("",)}, {"subprotocol_prefixes": [1]}]
)
def test_a_bare_string_or_an_empty_name_is_refused(bad: dict[str, object]) -> None:
    with pytest.raises(ValueError, match=r"Redactions\.\w+ must be a tuple of non-empty strings"):
        Redactions(**bad)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("name", "body", "cause"),
    [
        ("wrong_answer", "    return ['ticket']\n", "returned list, not Redactions"),
        ("raises", "    raise RuntimeError('no names')\n", "RuntimeError: no names"),
    ],
)
def test_a_broken_register_redactions_stops_create_app_with_one_line(
    tmp_path: Path, name: str, body: str, cause: str
) -> None:
    source = "from netrun_ws import hookimpl\n\n@hookimpl\ndef register_redactions():\n" + body
    (tmp_path / f"{name}.py").write_text(source)
    with pytest.raises(PluginLoadError) as raised:
        create_app(base_config(plugins_dir=str(tmp_path), plugins=[name]))
    line = str(raised.value)
    assert "\n" not in line
    assert line.startswith(f"plugin '{name}' (file {tmp_path / name}.py)")
    assert f"failed in register_redactions: {cause}" in line
