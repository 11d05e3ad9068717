"""Credential redaction: the one helper that keeps secrets out of `/health`, `describe()` outputs, error
messages and every log record (`service.logging.install_log_redaction`).

What is replaced by `***`:

* the password of a URL's userinfo (`http://user:***@host`), or the whole userinfo when it has no password
  (`https://***@host`: tokens are often passed as the user name);
* the value of a credential-named key, in query strings, headers, JSON or Python reprs: `api_key=***`,
  `token=***`, `access_token=***`, `hub.verify_token=***`, `client_secret=***`, `password=***`, `key=***`,
  `"webhook_secret": "***"`, `Authorization: ***` (any key ending in `token`, `secret`, `password`,
  `api_key`, `access_key` or `private_key`; `key` itself only as `key=`);
* the token after `Bearer` anywhere (`Bearer ***`).

Everything else is kept, so a redacted URL still says which host and path were called.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

MASK = "***"

# scheme://userinfo@ : the userinfo runs to the last "@" before the path, query, fragment or whitespace.
_USERINFO = re.compile(
    r"(?P<scheme>\b[a-zA-Z][a-zA-Z0-9+.\-]*://)(?P<userinfo>[^\s/?#'\"<>@]+(?:@[^\s/?#'\"<>@]+)*)@"
)
_NAME = (
    r"(?:[\w.\-]*?[_.\-])?(?:token|secret|password|passwd|pwd|api[_\-]?key|apikey|access[_\-]?key"
    r"|private[_\-]?key|signing[_\-]?key)|authorization|proxy-authorization"
)
# A bare value runs to a separator; `None` / `null` (an unset secret in a repr) are kept.
_VALUE = r"(?!(?:None|null)\b)(?:(?:bearer|basic|token|digest)\s+)?[^\s&#,;'\"<>(){}\[\]]+"
# name=value / name: value, the name and the value each optionally quoted ('x': 'y', "x": "y", x=y).
_KEY_VALUE = re.compile(
    rf"(?<![\w.\-])(?P<q>[\"']?)(?P<name>{_NAME}|key(?==))(?P=q)(?P<sep>\s*[=:]\s*)"
    rf"(?:\"(?P<dq>(?:[^\"\\]|\\.)*)\"|'(?P<sq>(?:[^'\\]|\\.)*)'|(?P<bare>{_VALUE}))",
    re.IGNORECASE,
)
_HINTS = ("token", "secret", "passw", "pwd", "key", "authorization", "bearer")
_BEARER = re.compile(r"\b(?P<scheme>bearer)\s+(?P<token>[A-Za-z0-9\-._~+/]+=*)", re.IGNORECASE)


def _userinfo(m: re.Match[str]) -> str:
    user, sep, _password = m["userinfo"].partition(":")
    return f"{m['scheme']}{user}:{MASK}@" if sep and user else f"{m['scheme']}{MASK}@"


def _key_value(m: re.Match[str]) -> str:
    quote = '"' if m["dq"] is not None else "'" if m["sq"] is not None else ""
    value = f"{quote}{MASK}{quote}"
    return f"{m['q']}{m['name']}{m['q']}{m['sep']}{value}"


def _bearer(m: re.Match[str]) -> str:
    return f"{m['scheme']} {MASK}"


def redact(text: str) -> str:
    """`text` with every credential it carries replaced by `***` (see the module docstring)."""
    if not text:
        return text
    if "@" in text and "://" in text:
        text = _USERINFO.sub(_userinfo, text)
    lower = text.lower()
    if any(hint in lower for hint in _HINTS):  # a cheap pre-check: this runs on every log record
        text = _KEY_VALUE.sub(_key_value, text)
        text = _BEARER.sub(_bearer, text)
    return text


def redact_values(value: Any) -> Any:
    """A copy of a JSON-like value (dicts, lists, tuples, strings) with every string redacted; keys kept."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, Mapping):
        return {k: redact_values(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(redact_values(v) for v in value)
    return value
