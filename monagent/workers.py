"""Worker processes with hard timeouts, and the registry of calls that are stuck.

A :class:`WorkerPool` keeps a few long-lived ``python -m monagent.workers``
children that speak length-prefixed pickles over their stdin/stdout pipes.
``call(func, *args, timeout=...)`` runs a picklable top-level function in one of
them. When the answer does not come in time the worker is killed with SIGKILL and
replaced, and :class:`~monagent.api.StuckCall` is raised: a statvfs blocked in the
kernel cannot be interrupted in a thread, but its process can be killed.

A call made with a ``key`` (a mount point) is remembered when it gets stuck: its
worker is not killed but kept aside as a probe that is still waiting for the
kernel. While the probe has not answered, a new call with the same key fails at
once ("... still stuck since ...") instead of burning another worker every cycle,
so one dead NFS server costs one worker. When the probe finally answers (the
server is back) the key is cleared and the next call runs normally.

Workers are plain subprocesses rather than ``multiprocessing`` children because
multiprocessing joins its children at interpreter exit, and a child stuck in the
kernel would hang the agent's shutdown.
"""

from __future__ import annotations

import os
import pickle
import select
import signal
import struct
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, Hashable, List, Optional, TypeVar

from monagent.api import StuckCall
from monagent.lazylog import get_logger

log = get_logger(__name__)
R = TypeVar("R")

_HEADER = struct.Struct("!I")
MAX_PROBES = 8  # stuck calls kept waiting for the kernel; past this the oldest probe is killed
_ABANDONED: List[_Worker] = []  # workers that would not die at close (uninterruptible sleep)


class WorkerDied(RuntimeError):
    """The worker process exited while running a call (killed, crashed in C code, os._exit)."""


@dataclass
class _Probe:
    """A worker left waiting on a stuck call."""

    worker: _Worker
    since: float  # wall clock
    what: str


class _Worker:
    """One child process and its two pipe ends."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "monagent.workers"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            bufsize=0,
            close_fds=True,
            cwd="/",
            start_new_session=True,
        )
        from monagent import warden

        warden.watch(self.proc.pid)  # killed with the agent even if it is SIGKILLed
        self._watched = True
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.wfd = self.proc.stdin.fileno()
        self.rfd = self.proc.stdout.fileno()
        self.send(list(sys.path))

    @property
    def pid(self) -> int:
        return self.proc.pid

    def send(self, obj: Any) -> None:
        _write_all(self.wfd, _frame(obj))

    def answer_ready(self) -> bool:
        readable, _, _ = select.select([self.rfd], [], [], 0)
        return bool(readable)

    def receive(self, deadline: Optional[float]) -> Any:
        """The next answer; None as deadline means it is known to be ready."""
        header = _read_exact(self.rfd, _HEADER.size, deadline)
        return pickle.loads(_read_exact(self.rfd, _HEADER.unpack(header)[0], deadline))  # noqa: S301 (our own child)

    def kill(self) -> None:
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(signal.SIGKILL)
            except ProcessLookupError:
                pass

    def close_pipes(self) -> None:
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                stream.close()

    def reaped(self) -> bool:
        if self.proc.poll() is None:
            return False
        if self._watched:
            from monagent import warden

            warden.release(self.proc.pid)
            self._watched = False
        return True


class _Timeout(Exception):
    pass


def _frame(obj: Any) -> bytes:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    return _HEADER.pack(len(data)) + data


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _read_exact(fd: int, size: int, deadline: Optional[float]) -> bytes:
    chunks: List[bytes] = []
    remaining = size
    while remaining:
        if deadline is not None:
            left = deadline - time.monotonic()
            readable, _, _ = select.select([fd], [], [], max(left, 0.0))
            if not readable:
                raise _Timeout
        chunk = os.read(fd, remaining)
        if not chunk:
            raise EOFError
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def _describe_func(func: Callable[..., Any]) -> str:
    return getattr(func, "__qualname__", None) or repr(func)


def format_since(when: float) -> str:
    """When a stuck call began, for its UNKNOWN reason and the log (monagent.formatting)."""
    from monagent.formatting import Formatter

    return Formatter("en").time(when)


class WorkerPool:
    """Up to ``size`` worker processes, started on first use; thread-safe."""

    def __init__(self, size: int = 2, clock: Callable[[], float] = time.time) -> None:
        if size < 1:
            raise ValueError("a worker pool needs at least one worker")
        self.size = size
        self._clock = clock
        self._cond = threading.Condition()
        self._idle: List[_Worker] = []
        self._busy = 0
        self._probes: Dict[Hashable, _Probe] = {}
        self._dying: List[_Worker] = []
        self._closed = False

    # -- public -----------------------------------------------------------------------------------

    def call(
        self, func: Callable[..., R], *args: Any, timeout: float, key: Optional[Hashable] = None, what: Optional[str] = None
    ) -> R:
        """Run ``func(*args)`` in a worker; raise :class:`StuckCall` after ``timeout`` seconds.

        ``what`` names the call in messages ("statfs of /mnt/nfs"); ``key`` enables the
        stuck-call registry for it. An exception raised by ``func`` is re-raised here.
        """
        what = what or _describe_func(func)
        if key is not None:
            self._refuse_if_stuck(key, what, timeout)
        request = _frame((func, args))  # an unpicklable function fails here, before a worker is used
        worker = self._acquire()
        try:
            _write_all(worker.wfd, request)
            status, value = worker.receive(time.monotonic() + timeout)
        except _Timeout:
            self._retire_stuck(worker, key, what)
            raise StuckCall(f"{what} did not return within {timeout:g}s") from None
        except (EOFError, OSError) as exc:
            self._discard(worker)
            raise WorkerDied(f"{what}: the worker process died ({self._exit_text(worker)})") from exc
        except BaseException:
            self._discard(worker)  # e.g. an unpicklable argument: the pipe state is unknown
            raise
        self._release(worker)
        if status == "ok":
            result: R = value  # what func returned, unpickled
            return result
        raise value

    def stuck(self) -> Dict[Hashable, float]:
        """Keys of calls still stuck, with the wall-clock time each got stuck."""
        with self._cond:
            self._poll_probes()
            return {key: probe.since for key, probe in self._probes.items()}

    def close(self) -> None:
        """Stop every worker (idle ones get EOF, probes and busy ones SIGKILL) and reap them."""
        with self._cond:
            self._closed = True
            idle, self._idle = self._idle, []
            probes, self._probes = list(self._probes.values()), {}
            dying, self._dying = self._dying, []
        for worker in idle:
            worker.close_pipes()
        for worker in [p.worker for p in probes] + dying:
            worker.kill()
            worker.close_pipes()
        deadline = time.monotonic() + 2.0
        for worker in idle + [p.worker for p in probes] + dying:
            try:
                worker.proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                worker.kill()
                log.warning("worker process %d does not exit (stuck in the kernel); leaving it", worker.pid)
                _ABANDONED.append(worker)  # keep the Popen: it is reaped if it ever exits

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- internals --------------------------------------------------------------------------------

    def _acquire(self) -> _Worker:
        with self._cond:
            while True:
                if self._closed:
                    raise RuntimeError("the worker pool is closed")
                self._reap()
                if self._idle:
                    self._busy += 1
                    return self._idle.pop()
                if self._busy < self.size:
                    self._busy += 1
                    break
                self._cond.wait()
        try:
            return _Worker()
        except BaseException:
            with self._cond:
                self._busy -= 1
                self._cond.notify()
            raise

    def _release(self, worker: _Worker) -> None:
        with self._cond:
            self._busy -= 1
            if self._closed:
                worker.close_pipes()
                self._dying.append(worker)
            else:
                self._idle.append(worker)
            self._cond.notify()

    def _discard(self, worker: _Worker) -> None:
        worker.kill()
        worker.close_pipes()
        with self._cond:
            self._busy -= 1
            self._dying.append(worker)
            self._cond.notify()

    def _retire_stuck(self, worker: _Worker, key: Optional[Hashable], what: str) -> None:
        """A call timed out: keep its worker as the key's probe, or kill it."""
        if key is None or self._closed:
            log.warning("%s did not return in time; killing worker %d", what, worker.pid)
            self._discard(worker)
            return
        log.warning("%s is stuck; worker %d is kept waiting for it and replaced", what, worker.pid)
        with self._cond:
            self._busy -= 1
            self._probes[key] = _Probe(worker, self._clock(), what)
            while len(self._probes) > MAX_PROBES:
                oldest = min(self._probes, key=lambda k: self._probes[k].since)
                victim = self._probes.pop(oldest).worker
                victim.kill()
                victim.close_pipes()
                self._dying.append(victim)
            self._cond.notify()

    def _refuse_if_stuck(self, key: Hashable, what: str, timeout: float) -> None:
        with self._cond:
            self._poll_probes()
            probe = self._probes.get(key)
        if probe is not None:
            raise StuckCall(
                f"{what} still stuck since {format_since(probe.since)} (did not return within {timeout:g}s)", since=probe.since
            )

    def _poll_probes(self) -> None:
        """Clear probes whose call has returned (or whose process has gone). Holds the lock."""
        for key, probe in list(self._probes.items()):
            worker = probe.worker
            if worker.reaped():
                del self._probes[key]
                worker.close_pipes()
                continue
            if not worker.answer_ready():
                continue
            del self._probes[key]
            try:
                worker.receive(None)
            except (EOFError, OSError):
                worker.kill()
                worker.close_pipes()
                self._dying.append(worker)
                continue
            log.info("%s returned after being stuck since %s", probe.what, format_since(probe.since))
            worker.close_pipes()  # EOF: the worker exits; a fresh one replaces it on demand
            self._dying.append(worker)

    def _reap(self) -> None:
        self._dying = [w for w in self._dying if not w.reaped()]

    @staticmethod
    def _exit_text(worker: _Worker) -> str:
        try:
            code = worker.proc.wait(timeout=1.0)
        except subprocess.TimeoutExpired:
            return "still running"
        if code < 0:
            try:
                return f"killed by {signal.Signals(-code).name}"
            except ValueError:
                return f"killed by signal {-code}"
        return f"exit status {code}"


# -- the child side -------------------------------------------------------------------------------


def _serve(inp: int, out: int) -> None:
    """Answer requests until EOF: ("ok", result) or ("error", exception)."""
    paths = pickle.loads(_read_exact(inp, _HEADER.unpack(_read_exact(inp, _HEADER.size, None))[0], None))  # noqa: S301
    sys.path[:] = [p for p in paths if p not in sys.path] + sys.path
    while True:
        try:
            header = _read_exact(inp, _HEADER.size, None)
        except EOFError:
            return
        try:
            func, args = pickle.loads(_read_exact(inp, _HEADER.unpack(header)[0], None))  # noqa: S301
            answer: Any = ("ok", func(*args))
        except Exception as exc:  # noqa: BLE001 (a boundary: the caller re-raises the function's failure)
            answer = ("error", exc)
        try:
            data = _frame(answer)
        except Exception as exc:  # noqa: BLE001 (an unpicklable result or exception: say what it was)
            data = _frame(("error", TypeError(f"cannot send the answer back: {exc!r} ({answer[1]!r})")))
        _write_all(out, data)


def main() -> None:
    """Entry point of a worker: keep private copies of the pipes, point fd 0/1 elsewhere."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the agent decides when workers stop
    inp, out = os.dup(0), os.dup(1)
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(2, 1)  # a function that prints must not corrupt the protocol
    os.close(devnull)
    _serve(inp, out)


if __name__ == "__main__":
    main()
