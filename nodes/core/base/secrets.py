"""Secrets never leave: API keys and URL credentials are taken out of any text from an upstream server (which
may echo our Authorization header back), and out of the URLs Atelier shows."""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

REDACTED = "[redacted]"
SECRET_QUERY = re.compile(r"(?i)^(api[-_]?key|key|token|access[-_]?token|secret|password|auth|sig|signature)$")
PATTERNS = (
    re.compile(r"(?i)(bearer|basic|token)\s+[A-Za-z0-9._~+/=-]{6,}"),            # Authorization values
    re.compile(r"\b(sk|pk|rk|ak)-[A-Za-z0-9_-]{6,}"),                              # sk-… style keys
    re.compile(r"(?i)((?:api[-_]?key|access[-_]?token|token|secret|password)[\"']?\s*[:=]\s*[\"']?)[^\s\"'&,;]+"),
    re.compile(r"(?i)(\w+://)[^/\s:@]+:[^/\s@]+@"),                                # user:password@ in URLs
)


def redact(text: str, secrets: Iterable[str | None] = ()) -> str:
    """``text`` without the given secrets nor anything shaped like a key or a credential."""
    for secret in sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    text = PATTERNS[0].sub(lambda m: f"{m.group(1)} {REDACTED}", text)
    text = PATTERNS[1].sub(REDACTED, text)
    text = PATTERNS[2].sub(lambda m: f"{m.group(1)}{REDACTED}", text)
    return PATTERNS[3].sub(lambda m: f"{m.group(1)}{REDACTED}@", text)


def public_url(url: str) -> str:
    """A URL to show: no user or password, and secret-looking query values redacted."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return redact(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    if ":" in host:  # IPv6
        netloc = f"[{host}]:{parts.port}" if parts.port else f"[{host}]"
    query = urlencode([(k, REDACTED if SECRET_QUERY.match(k) else v) for k, v in parse_qsl(parts.query)], safe="[]")
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def url_secrets(url: str) -> list[str]:
    """The credentials a URL carries (its password, user, secret query values), to redact wherever they appear."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return []
    found = [parts.password or "", parts.username or ""]
    found += [v for k, v in parse_qsl(parts.query) if SECRET_QUERY.match(k)]
    return [s for s in found if s]


ABSOLUTE_PATH = re.compile(r"(?<![\w.~/-])(?:/[^\s/,;:'\"()\[\]]+)+/?")


def without_paths(text: str) -> str:
    """``text`` with every absolute path shortened to its last part (``/srv/comfy/models/scorers`` →
    ``scorers``): answers name folders, never a server's layout."""
    return ABSOLUTE_PATH.sub(lambda m: m.group(0).rstrip("/").rsplit("/", 1)[-1] or "/", text)
