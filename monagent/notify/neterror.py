"""A network failure in a few words: what went wrong and with which host, never the URL.

requests wraps the socket error three levels deep ("HTTPConnectionPool(host=..., port=...):
Max retries exceeded with url: /robot/send?access_token=... (Caused by NewConnectionError(...")
and quotes the URL with its query string, where a DingTalk access token lives. This finds the
socket error underneath and names the host and port only.
"""

from __future__ import annotations

import socket
import ssl
from typing import Iterator, Optional
from urllib.parse import urlsplit


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and everything it wraps: causes, contexts, urllib3's ``reason`` and exception args."""
    seen = set()
    todo = [exc]
    while todo:
        current = todo.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        nested = [
            getattr(current, "reason", None),
            current.__cause__,
            current.__context__,
            *[a for a in current.args if isinstance(a, BaseException)],
        ]
        todo.extend(n for n in nested if isinstance(n, BaseException))


def _where(exc: BaseException) -> str:
    request = getattr(exc, "request", None)
    url = getattr(request, "url", None)
    if not url:
        return ""
    parts = urlsplit(str(url))
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        port = None
    return f"{parts.hostname}:{port}" if port else str(parts.hostname or "")


def describe_network_error(exc: BaseException, timeout: Optional[float] = None) -> Optional[str]:
    """``connection refused by 10.0.0.5:443`` and the like, or None when nothing is recognised."""
    where = _where(exc)
    at = f" {where}" if where else ""
    names = {type(e).__name__ for e in _chain(exc)}
    within = f" within {timeout:g}s" if timeout else ""
    if "ReadTimeout" in names or "ReadTimeoutError" in names:
        return f"connected to{at} but got no answer{within}"
    if "ConnectTimeout" in names or "ConnectTimeoutError" in names:
        return f"could not connect to{at}{within} (a firewall dropping packets, or the host is down)"
    for error in _chain(exc):
        if isinstance(error, socket.gaierror):
            return f"cannot resolve{at}: {error.strerror or error} (check DNS and the host name)"
        if isinstance(error, ssl.SSLCertVerificationError):
            return f"the TLS certificate of{at} is not trusted: {error.verify_message or error}"
        if isinstance(error, ConnectionRefusedError):
            return f"connection refused by{at} (nothing listens there, or a proxy is needed)"
        if isinstance(error, ssl.SSLError):
            return f"TLS error with{at}: {error.reason or error}"
        if isinstance(error, OSError) and error.strerror and not isinstance(error, socket.timeout):
            return f"{error.strerror.lower()}{' (' + where + ')' if where else ''}"
    return None
