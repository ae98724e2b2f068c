"""Keep credentials out of logs: uvicorn logs request paths, query strings included."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable

DEFAULT_PARAMS = ("token", "access_token", "jwt", "api_key", "apikey", "password", "secret")


class RedactQueryFilter(logging.Filter):
    """Replaces the value of credential-looking query parameters in a log record with ``***``."""

    def __init__(self, params: Iterable[str] = DEFAULT_PARAMS) -> None:
        super().__init__()
        names = "|".join(re.escape(p) for p in sorted(set(params)))
        self._pattern = re.compile(rf"([?&](?:{names})=)[^&\s\"']*", re.IGNORECASE)

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = self._pattern.sub(r"\1***", message)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


def install(params: Iterable[str] = DEFAULT_PARAMS) -> None:
    """Attach the filter to the loggers that print request paths."""
    redactor = RedactQueryFilter(params)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "netrun_ws"):
        logging.getLogger(name).addFilter(redactor)
