"""The agent's control socket (DECISIONS.md section 6): a unix stream socket in the runtime
directory, one JSON object per line each way.

The agent runs a :class:`ControlServer` whose handler answers requests (the alert
pipeline's ``handle_request``); the CLI calls :func:`request`. The socket is mode 0660,
so the agent's group may send commands too.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import socket
import socketserver
import threading
import time
from pathlib import Path
from typing import Any, Callable, Dict, Mapping, Optional

log = logging.getLogger(__name__)

IDLE_POLL = 30.0  # seconds between the control thread's idle wake-ups

MAX_REQUEST = 65536
Handler = Callable[[Mapping[str, Any]], Dict[str, Any]]


class AgentNotRunning(Exception):
    """Nobody listens on the control socket."""


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    handler: Handler

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that went away is not the agent's problem: a log line, not a traceback on stderr."""
        log.debug("control request failed", exc_info=True)


class _Connection(socketserver.StreamRequestHandler):
    server: _Server

    def handle(self) -> None:
        line = self.rfile.readline(MAX_REQUEST)
        if not line.strip():
            return  # a probe (another agent checking whether this one lives): nothing to answer
        try:
            message = json.loads(line)
            if not isinstance(message, dict):
                raise TypeError("not an object")
        except (ValueError, TypeError):
            answer: Dict[str, Any] = {"ok": False, "error": "bad request: send one JSON object on one line"}
        else:
            answer = self.server.handler(message)
        try:
            self.wfile.write(json.dumps(answer).encode() + b"\n")
        except (BrokenPipeError, ConnectionResetError):
            log.debug("control client left before the answer")


class ControlServer:
    """Listens on ``path`` in a background thread; ``handler`` is a callable or has ``handle_request``."""

    def __init__(self, path: Path, handler: Any) -> None:
        self.path = Path(path)
        self.handler: Handler = getattr(handler, "handle_request", handler)
        self._server: Optional[_Server] = None
        self._thread: Optional[threading.Thread] = None

    def start(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
        _remove_stale(self.path)
        old_umask = os.umask(0o117)
        try:
            server = _Server(str(self.path), _Connection)
        finally:
            os.umask(old_umask)
        os.chmod(self.path, 0o660)
        server.handler = self.handler
        self._server = server
        # A long poll: an idle agent should not wake 5 times a second for nothing; stop() wakes the
        # loop with a connection of its own instead.
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": IDLE_POLL}, name="control", daemon=True
        )
        self._thread.start()
        log.info("control socket listening on %s", self.path)

    def stop(self) -> None:
        if self._server is None:
            return
        server = self._server
        stopper = threading.Thread(target=server.shutdown, name="control-stop", daemon=True)
        stopper.start()
        deadline = time.monotonic() + 5.0
        while stopper.is_alive() and time.monotonic() < deadline:
            _wake(self.path)  # serve_forever sees the shutdown request once select() returns
            stopper.join(0.05)
        server.server_close()
        if self._thread is not None:
            self._thread.join(5.0)
        self._server = None
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass


def _wake(path: Path) -> None:
    """Connect and leave at once: returns the server's select() without a request."""
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(str(path))
    except OSError:
        pass
    finally:
        probe.close()


def _remove_stale(path: Path) -> None:
    """A socket left by a killed agent is removed; a live one means another agent runs."""
    if not path.exists():
        return
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(str(path))
    except OSError:
        path.unlink()
        return
    finally:
        probe.close()
    raise OSError(errno.EADDRINUSE, f"another agent is listening on {path}")


def request(path: Path, message: Mapping[str, Any], timeout: float = 10.0) -> Dict[str, Any]:
    """Send one request to the running agent; raises :class:`AgentNotRunning` when none listens."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        try:
            sock.connect(str(path))
        except (FileNotFoundError, ConnectionRefusedError) as exc:
            raise AgentNotRunning(str(path)) from exc
        sock.sendall(json.dumps(dict(message)).encode() + b"\n")
        data = b""
        while not data.endswith(b"\n"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    finally:
        sock.close()
    answer = json.loads(data) if data else {"ok": False, "error": "the agent closed the connection"}
    return answer if isinstance(answer, dict) else {"ok": False, "error": "bad answer"}


def agent_running(path: Path) -> Optional[bool]:
    """Whether an agent answers on ``path``; None when this user may not ask (the socket is 0660)."""
    try:
        return bool(request(path, {"op": "ping"}, timeout=2.0).get("ok"))
    except PermissionError:
        return None
    except (AgentNotRunning, OSError, ValueError):
        return False
