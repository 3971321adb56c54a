"""One place that takes credentials out of text before anyone sees it.

Store specs (``PCCD_STORE_FILE``) may hold passwords, and MongoDB URIs carry them inline
(``mongodb://user:password@host``). Every message or log line that names a store goes through :func:`redact`; the
passwords of the configured stores are also remembered (:func:`remember_secrets`) so that a driver's error text that
quotes one in some other form is cleaned too.
"""

from __future__ import annotations

import re
from typing import Any

MASK = "***"

# scheme://user:password@host: keep the user (it tells which account), mask the password
_URI_CREDENTIALS = re.compile(r"(?P<head>\b[a-zA-Z][\w+.-]*://[^\s:/@]*):(?P<secret>[^\s@/]*)@")
# password: x / "password": "x" / password=x / api_key=... as YAML, JSON, repr or a query string write them
_KEY_VALUE = re.compile(
    r"(?P<head>[\"']?\b(?:password|passwd|pwd|secret|api_key|apikey|token)[\"']?\s*[:=]\s*)"
    r"(?P<quote>[\"']?)(?P<secret>[^\s\"',}&]+)", re.IGNORECASE)

_secrets: set[str] = set()


def remember_secrets(spec: Any) -> None:
    """Note every password in a store spec (nested dicts/lists, URIs included) so :func:`redact` masks it anywhere."""
    if isinstance(spec, dict):
        for key, value in spec.items():
            if isinstance(value, str) and key.lower() in {"password", "passwd", "pwd", "secret", "api_key", "token"}:
                if value:
                    _secrets.add(value)
            else:
                remember_secrets(value)
    elif isinstance(spec, list | tuple):
        for value in spec:
            remember_secrets(value)
    elif isinstance(spec, str):
        for match in _URI_CREDENTIALS.finditer(spec):
            if match["secret"]:
                _secrets.add(match["secret"])


def redact(text: object) -> str:
    """``text`` with the password of every URI, every ``password: ...`` value and every remembered secret masked."""
    text = str(text)
    text = _URI_CREDENTIALS.sub(lambda m: f"{m['head']}:{MASK}@", text)
    text = _KEY_VALUE.sub(lambda m: f"{m['head']}{m['quote']}{MASK}", text)
    # longest first: a secret that contains another must not be left half-masked
    for secret in sorted(_secrets, key=len, reverse=True):
        text = text.replace(secret, MASK)
    return text


def describe_store(store: Any) -> str:
    """A store's name for messages: maggma's ``MongoURIStore.name`` is its URI, password included."""
    name = getattr(store, "name", None) or type(store).__name__
    return redact(name)
