"""docs/clients.md's retry tables say exactly what netrun_ws.client.retry does."""

from __future__ import annotations

import re
from pathlib import Path

from netrun_ws.client import retry

DOC = Path(__file__).resolve().parents[2] / "docs" / "clients.md"


def expected_close_rows() -> list[tuple[str, str, str]]:
    rows = [
        (str(code), rule.retry.value, rule.why) for code, rule in retry.CLOSE_CODE_RULES.items()
    ]
    rows += [(f"{lo}-{hi}", rule.retry.value, rule.why) for lo, hi, rule in retry.CLOSE_CODE_RANGES]
    other = retry.OTHER_CLOSE_CODE
    return [*rows, ("other", other.retry.value, other.why)]


def expected_status_rows() -> list[tuple[str, str, str]]:
    rows = [(str(s), rule.retry.value, rule.why) for s, rule in retry.HTTP_STATUS_RULES.items()]
    for key, rule in (
        ("other 5xx", retry.OTHER_SERVER_ERROR),
        ("other", retry.OTHER_STATUS),
        ("no connection", retry.NETWORK_ERROR),
    ):
        rows.append((key, rule.retry.value, rule.why))
    return rows


def table_after(heading: str) -> list[tuple[str, str, str]]:
    """The rows of the first table after ``heading`` in docs/clients.md."""
    text = DOC.read_text()
    start = text.index(heading)
    rows: list[tuple[str, str, str]] = []
    for line in text[start:].splitlines()[1:]:
        if rows and not line.startswith("|"):
            break
        match = re.fullmatch(r"\| `?([^|`]+?)`? \| `(\w+)` \| (.+) \|", line)
        if match:
            key, retry_value, why = match.groups()
            rows.append((key, retry_value, why))
    return rows


def test_the_close_code_table_matches_the_code() -> None:
    assert table_after("### Close codes") == expected_close_rows()


def test_the_http_status_table_matches_the_code() -> None:
    assert table_after("### Refused handshakes") == expected_status_rows()


def test_every_code_of_the_protocol_page_has_a_rule() -> None:
    """Each close code docs/protocol.md lists is in the client's table (not left to a range)."""
    protocol = (DOC.parent / "protocol.md").read_text()
    section = protocol[protocol.index("## Close codes") :]
    section = section[: section.index("\n## ", 1)]
    codes = {int(code) for code in re.findall(r"^\| (\d{4}) \|", section, re.MULTILINE)}
    assert codes and codes <= set(retry.CLOSE_CODE_RULES)
