"""The agent's control socket (docs/design/decisions.md section 6): a unix stream socket in the runtime
directory, one JSON object per line each way.

The agent runs a :class:`ControlServer` whose handler answers requests (the alert
``alerting.control_handler.ControlHandler``); the CLI calls :func:`request`. The socket is mode 0660,
so the agent's group may send commands too.
"""

from __future__ import annotations

import errno
import json
import os
import socket
import socketserver
import stat
import threading
import time
from pathlib import Path
from typing import Any, Callable, Dict, Mapping, Optional, Sequence

from monagent.lazylog import get_logger

log = get_logger(__name__)

IDLE_POLL = 300.0  # seconds between the control thread's idle wake-ups (stop() wakes it with a connection)

MAX_REQUEST = 65536
READ_TIMEOUT = 5.0  # seconds a client has to send its one line
MAX_CONNECTIONS = 16  # control connections served at once; the CLI needs one
Handler = Callable[[Mapping[str, Any]], Dict[str, Any]]


class AgentNotRunning(Exception):
    """Nobody listens on the control socket."""


class UntrustedSocket(AgentNotRunning):
    """The socket's directory belongs to someone who is not the agent: never talk to it."""


def runtime_dir_problem(directory: Path, trusted_uids: Sequence[int] = ()) -> Optional[str]:
    """Why ``directory`` (the runtime directory) cannot be trusted to hold the agent's socket, or None.

    Trusted: a real directory (not a symlink), owned by root, this user or one of ``trusted_uids``,
    writable by its owner only. Another user could otherwise pre-create it, listen there, and
    receive what an admin sends to the agent."""
    try:
        st = os.lstat(directory)
    except FileNotFoundError:
        return None
    except OSError as exc:
        return f"cannot check the runtime directory {directory}: {exc.strerror or exc}"
    if not stat.S_ISDIR(st.st_mode):
        return f"the runtime directory {directory} is not a directory (a symlink?)"
    if st.st_uid not in (0, os.geteuid(), *trusted_uids):
        return f"the runtime directory {directory} is owned by uid {st.st_uid}, not by the agent's user; remove it"
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return f"the runtime directory {directory} is writable by others (mode {stat.S_IMODE(st.st_mode):04o}); remove it"
    return None


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    request_queue_size = 64  # the listen backlog: a burst of clients waits instead of failing
    handler: Handler

    def __init__(self, path: str) -> None:
        super().__init__(path, _Connection)
        self.slots = threading.BoundedSemaphore(MAX_CONNECTIONS)

    def process_request(self, request: Any, client_address: Any) -> None:
        """At most MAX_CONNECTIONS at once: one more is told so and closed, never given a thread."""
        if not self.slots.acquire(blocking=False):
            try:
                request.settimeout(0.5)
                request.sendall(json.dumps({"ok": False, "error": "busy: too many control connections"}).encode() + b"\n")
            except OSError:
                pass
            self.shutdown_request(request)
            return
        super().process_request(request, client_address)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.slots.release()

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that went away is not the agent's problem: a log line, not a traceback on stderr."""
        log.debug("control request failed", exc_info=True)


class _Connection(socketserver.StreamRequestHandler):
    server: _Server
    timeout = READ_TIMEOUT  # a client that sends nothing (or half a line) is dropped, its thread freed

    def handle(self) -> None:
        try:
            line = self.rfile.readline(MAX_REQUEST + 1)
        except (socket.timeout, OSError):
            log.debug("control client sent no request within %.0f s", READ_TIMEOUT)
            return
        if not line.strip():
            return  # a probe (another agent checking whether this one lives): nothing to answer
        answer: Dict[str, Any]
        if len(line) > MAX_REQUEST or not line.endswith(b"\n"):
            answer = {"ok": False, "error": f"bad request: one line of at most {MAX_REQUEST} bytes"}
        else:
            try:
                message = json.loads(line, parse_constant=_no_constant)
                if not isinstance(message, dict):
                    raise TypeError("not an object")
            except (ValueError, TypeError, RecursionError):
                answer = {"ok": False, "error": "bad request: send one JSON object on one line"}
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
        directory = self.path.parent
        directory.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
        try:  # root's (/run/monagent) lets the agent's group reach the 0660 socket; a user's is private
            directory.mkdir(mode=0o755 if os.geteuid() == 0 else 0o700)
        except FileExistsError:
            pass
        problem = runtime_dir_problem(directory)
        if problem:
            raise OSError(errno.EPERM, problem)
        _remove_stale(self.path)
        old_umask = os.umask(0o117)
        try:
            server = _Server(str(self.path))
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


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number")  # NaN and Infinity are no JSON


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


def request(path: Path, message: Mapping[str, Any], timeout: float = 10.0, trusted_uids: Sequence[int] = ()) -> Dict[str, Any]:
    """Send one request to the running agent; raises :class:`AgentNotRunning` when none listens and
    :class:`UntrustedSocket` when the socket's directory is not the agent's (``trusted_uids``: the
    agent's user, besides root and this user)."""
    problem = runtime_dir_problem(Path(path).parent, trusted_uids)
    if problem:
        raise UntrustedSocket(problem)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        _connect(sock, path, time.monotonic() + timeout)
        try:
            sock.sendall(json.dumps(dict(message)).encode() + b"\n")
        except (BrokenPipeError, ConnectionResetError):
            pass  # a busy agent answers and closes without reading: its answer is still there
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


def _connect(sock: socket.socket, path: Path, deadline: float) -> None:
    """Connect, waiting while the agent's listen backlog is full (a unix socket says EAGAIN at once)."""
    while True:
        try:
            sock.connect(str(path))
            return
        except (FileNotFoundError, ConnectionRefusedError) as exc:
            raise AgentNotRunning(str(path)) from exc
        except BlockingIOError:
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.05)


def agent_running(path: Path, trusted_uids: Sequence[int] = ()) -> Optional[bool]:
    """Whether an agent answers on ``path``; None when this user may not ask (the socket is 0660)."""
    answer = agent_ping(path, trusted_uids)
    return None if answer is None else bool(answer.get("ok"))


def agent_ping(path: Path, trusted_uids: Sequence[int] = ()) -> Optional[Dict[str, Any]]:
    """The running agent's answer to ``ping`` (``problem`` says what stops delivery); ``{}`` when none
    answers (``problem`` set when the socket is not the agent's), None when this user may not ask
    (the socket is 0660)."""
    try:
        return request(path, {"op": "ping"}, timeout=2.0, trusted_uids=trusted_uids)
    except PermissionError:
        return None
    except UntrustedSocket as exc:
        return {"ok": False, "problem": str(exc)}
    except (AgentNotRunning, OSError, ValueError):
        return {}
