"""Passwords out of URLs: the one place that masks them, for config output, logs and errors."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

MASK = "***"


def mask_url(text: str) -> str:
    """``text`` with a URL password (userinfo or ``?password=``) replaced by ``***``.

    A string that is not a URL, or a URL without a password, comes back unchanged; one that looks
    like a URL but cannot be parsed comes back as ``<unparsable URL>``, since it may hold one.
    """
    if "://" not in text:
        return text
    try:
        parts = urlsplit(text)
    except ValueError:
        return "<unparsable URL>"
    netloc = parts.netloc
    userinfo, at, hostport = netloc.rpartition("@")
    if at and ":" in userinfo:
        netloc = f"{userinfo.partition(':')[0]}:{MASK}@{hostport}"
    query = parts.query
    if "password=" in query.lower():
        pairs = parse_qsl(query, keep_blank_values=True)
        query = urlencode([(k, MASK if k.lower() == "password" else v) for k, v in pairs])
    if netloc == parts.netloc and query == parts.query:
        return text
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def scrub_password(url: str | None, text: str) -> str:
    """``text`` (e.g. a driver's error message) with ``url``'s password replaced by ``***``."""
    if not url:
        return text
    try:
        password = urlsplit(url).password
    except ValueError:
        return text
    return text.replace(password, MASK) if password else text
