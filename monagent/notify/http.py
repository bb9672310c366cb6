"""One HTTP POST to a receiver, bounded in every way a hostile or broken server can stretch it.

- A total deadline: connect, sending, the status line, the headers and the whole body end within
  ``timeout`` seconds. requests' own timeout is per socket read, so a server that drips one byte
  every two seconds would hold the sender forever; here every socket the request uses is shut
  down when the deadline passes, which ends any read in progress.
- A cap on the reply (64 KiB): a receiver's answer is a status and a short JSON object; a larger
  one is cut off, not read whole into memory.
- No redirects: a receiver that answers 3xx is told to the user with the target (scheme, host and
  path, never a query string), since following it would send the alert, and maybe credentials, to
  a place nobody configured, and count that as delivered.

Sessions come from :func:`new_session`; they are requests sessions with one change, an adapter
that lets the deadline find the connections in use.
"""

from __future__ import annotations

import socket
import threading
from typing import TYPE_CHECKING, Any, List, Mapping, Optional
from urllib.parse import urljoin, urlsplit

from monagent.records import record

if TYPE_CHECKING:
    import requests

MAX_REPLY = 64 * 1024

_local = threading.local()


class HttpFailure(Exception):
    """The request got no usable reply; ``str()`` is the reason, free of secrets."""


class Redirected(HttpFailure):
    """The receiver answered with a redirect, which is not followed."""


@record
class HttpReply:
    status: int
    headers: Mapping[str, str]
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


def new_session() -> requests.Session:
    """A requests session (proxies from the environment, TLS verification on) whose connections a
    deadline can find."""
    import requests

    session = requests.Session()
    adapter = _adapter_class()()
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def post(
    session: requests.Session,
    url: str,
    *,
    data: bytes,
    headers: Mapping[str, str],
    timeout: float,
    verify: Any = True,
    max_reply: int = MAX_REPLY,
) -> HttpReply:
    """POST ``data``; raises :class:`HttpFailure` (or :class:`Redirected`) with a reason, and
    ``requests.RequestException`` for network errors before the deadline."""
    import requests

    guard = _Deadline(timeout)
    with guard:
        try:
            # The per-read timeout is longer than the deadline, which therefore decides (connect stays bounded).
            response = session.post(
                url,
                data=data,
                headers=dict(headers),
                timeout=(timeout, timeout + 1.0),
                verify=verify,
                stream=True,
                allow_redirects=False,
            )
            with response:
                if 300 <= response.status_code < 400:
                    raise Redirected(_redirect_reason(response.status_code, url, response.headers.get("Location", "")))
                body = _read(response, max_reply, guard)
                return HttpReply(response.status_code, dict(response.headers), body)
        except requests.RequestException:
            if guard.fired:
                raise HttpFailure(f"network error: no complete reply within {timeout:g}s") from None
            raise


def _read(response: Any, limit: int, guard: _Deadline) -> bytes:
    chunks: List[bytes] = []
    size = 0
    for chunk in response.iter_content(4096):
        size += len(chunk)
        if size > limit:
            raise HttpFailure(f"the reply is larger than {limit // 1024} KiB; it was cut off unread")
        chunks.append(chunk)
    if guard.fired:
        raise HttpFailure(f"network error: no complete reply within {guard.timeout:g}s")
    return b"".join(chunks)


def _redirect_reason(status: int, url: str, location: str) -> str:
    target = urljoin(url, location) if location else ""
    try:
        parts = urlsplit(target)
        where = f"{parts.scheme}://{parts.hostname or ''}{f':{parts.port}' if parts.port else ''}{parts.path}"
    except ValueError:
        where = "an unparsable location"
    said = f" to {where}" if target else " without a Location"
    return f"HTTP {status} redirect{said} is not followed: configure the final URL"


class _Deadline:
    """Shuts down the sockets of the connections this thread takes from a pool, ``timeout`` seconds on."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.fired = False
        self._conns: List[Any] = []
        self._timer: Optional[threading.Timer] = None

    def __enter__(self) -> _Deadline:
        _local.conns = self._conns
        self._timer = threading.Timer(self.timeout, self._fire)
        self._timer.daemon = True
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._timer is not None:
            self._timer.cancel()
        _local.conns = None

    def _fire(self) -> None:
        self.fired = True
        for conn in list(self._conns):
            sock = getattr(conn, "sock", None)
            if sock is None:
                continue
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # already closed


_ADAPTER: List[type] = []


def _adapter_class() -> type:
    """Built on first use: importing requests and urllib3 stays out of ``monagent --help``."""
    if _ADAPTER:
        return _ADAPTER[0]
    from requests.adapters import HTTPAdapter
    from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

    class _Tracked:
        def _get_conn(self, timeout: Optional[float] = None) -> Any:
            conn = super()._get_conn(timeout)  # type: ignore[misc]
            tracked = getattr(_local, "conns", None)
            if tracked is not None:
                tracked.append(conn)
            return conn

    class _HTTPPool(_Tracked, HTTPConnectionPool):
        pass

    class _HTTPSPool(_Tracked, HTTPSConnectionPool):
        pass

    pools = {"http": _HTTPPool, "https": _HTTPSPool}

    class _Adapter(HTTPAdapter):
        def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
            super().init_poolmanager(*args, **kwargs)
            self.poolmanager.pool_classes_by_scheme = pools

        def proxy_manager_for(self, proxy: str, **kwargs: Any) -> Any:
            manager = super().proxy_manager_for(proxy, **kwargs)
            manager.pool_classes_by_scheme = pools
            return manager

    _ADAPTER.append(_Adapter)
    return _Adapter
