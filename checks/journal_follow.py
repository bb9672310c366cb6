"""Following the systemd journal with one long-lived ``journalctl --follow`` child, read without blocking.

A ``journalctl`` spawned at every run costs a fork, an exec and an open of every journal file (many on
a server that keeps archived files). :class:`JournalFollower` starts one and keeps it (what Vector's
journald source does); each :meth:`~JournalFollower.read` takes what the pipe holds now, with
``os.read`` on a non-blocking descriptor until it would block: no reader thread. Between reads
journalctl blocks on the full pipe and catches up once it is drained, so nothing is lost. A read
returns at most ``max_lines`` entries and keeps the rest, and a partial last line, for the next one:
a storm of lines cannot make one read unbounded.

The child runs in a session of its own that the agent's warden contains (it dies with the agent, even
a SIGKILLed one); :meth:`~JournalFollower.stop` ends the group and reaps the child. Its stderr is
drained too, and its last line kept: what to say when the child exits.
"""

from __future__ import annotations

import collections
import logging
import os
import signal
import subprocess
import time
from typing import Deque, Dict, List, Optional, Sequence

from monagent.checks.journal_read import JOURNALCTL, JournalUnavailable, parse_line

from monagent.api import contain_process_group, release_process_group

log = logging.getLogger(__name__)

STOP_GRACE = 2.0  # seconds between SIGTERM and SIGKILL, and the wait for the reap after it
_CHUNK = 65536
_STDERR_KEPT = 4096  # bytes of stderr kept: enough for its last line


class JournalFollower:
    """``journalctl --no-pager -q -o json ARGS`` (ARGS with ``--follow``), started at once.

    Raises :class:`JournalUnavailable` when it cannot be started. Not thread-safe: the owner keeps
    one thread at a time in it."""

    def __init__(self, args: Sequence[str], *, journalctl: str = JOURNALCTL) -> None:
        self.journalctl = journalctl
        command = [journalctl, "--no-pager", "-q", "-o", "json", *args]
        try:
            self.proc = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                cwd="/",
                close_fds=True,
                start_new_session=True,
            )
        except FileNotFoundError:
            raise JournalUnavailable(f"{journalctl} not found") from None
        except OSError as exc:
            raise JournalUnavailable(f"cannot run {journalctl}: {exc.strerror or exc}") from None
        contain_process_group(self.proc.pid)  # it dies with the agent, even a SIGKILLed one
        assert self.proc.stdout is not None and self.proc.stderr is not None
        self._stdout, self._stderr = self.proc.stdout.fileno(), self.proc.stderr.fileno()
        os.set_blocking(self._stdout, False)
        os.set_blocking(self._stderr, False)
        self._lines: Deque[bytes] = collections.deque()  # complete lines not yet returned
        self._partial = b""  # the start of a line whose end has not come yet
        self._eof = False
        self._stderr_tail = b""

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def last_error(self) -> str:
        """The last line the child wrote to stderr ("" if none)."""
        lines = self._stderr_tail.decode("utf-8", errors="replace").strip().splitlines()
        return lines[-1].strip() if lines else ""

    def read(self, max_lines: int) -> List[Dict[str, str]]:
        """The entries of the complete lines available now, at most ``max_lines``; never blocks."""
        self._drain_stderr()
        while len(self._lines) < max_lines and not self._eof:
            try:
                data = os.read(self._stdout, _CHUNK)
            except BlockingIOError:
                break
            if not data:
                self._eof = True
                break
            pieces = (self._partial + data).split(b"\n")
            self._partial = pieces.pop()
            self._lines.extend(pieces)
        entries = []
        for _ in range(min(max_lines, len(self._lines))):
            entry = parse_line(self._lines.popleft().decode("utf-8", errors="replace"))
            if entry is not None:
                entries.append(entry)
        return entries

    def exited(self) -> bool:
        """Whether the child exited, without reaping it: its pid names its group until :meth:`stop`."""
        if self.proc.returncode is not None:
            return True
        try:
            info = os.waitid(os.P_PID, self.proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            return True
        return info is not None and info.si_pid == self.proc.pid

    def stop(self, grace: float = STOP_GRACE) -> Optional[int]:
        """SIGTERM to the group, SIGKILL after ``grace`` seconds, reap: the exit status as Popen
        gives it (negative: the signal), None if the child survives SIGKILL. Idempotent."""
        if self.proc.returncode is None:
            if not self.exited():
                self._kill_group(signal.SIGTERM)
                deadline = time.monotonic() + grace
                while not self.exited() and time.monotonic() < deadline:
                    time.sleep(0.01)
            self._kill_group(signal.SIGKILL)  # the leader is not reaped yet: its pid still names the group
            release_process_group(self.proc.pid)  # before the reap: until then no other group can have its id
            try:
                self.proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:  # stuck in the kernel (a journal on a hung disk)
                log.warning("%s (pid %d) survives SIGKILL; it is stuck in the kernel", self.journalctl, self.proc.pid)
        self._drain_stderr()
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()
        return self.proc.returncode

    def _kill_group(self, sig: int) -> None:
        try:
            os.killpg(self.proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def _drain_stderr(self) -> None:
        if self.proc.stderr is None or self.proc.stderr.closed:
            return
        while True:
            try:
                data = os.read(self._stderr, _CHUNK)
            except BlockingIOError:
                return
            if not data:
                return
            self._stderr_tail = (self._stderr_tail + data)[-_STDERR_KEPT:]
