"""The test helpers every area shares: waiting on a condition, the fake clock, the agent as a subprocess.

- :func:`wait_until` polls a condition: no test sleeps a fixed time hoping something happened.
- :class:`FakeClock` is wall and monotonic time that move together, only when told.
- :class:`AgentProcess` is ``python -m monagent run`` with its output collected line by line.
- :func:`monagent` runs one CLI command to completion.

The event builders are in tests/events_factory.py (this module imports nothing of monagent).

Subprocesses start in :data:`SUBPROCESS_CWD`, outside the checkout: ``python -m`` puts the current
directory first on ``sys.path``, and the copy of monagent under test (see ``tests/conftest.py``)
must be the one the subprocess imports too.
"""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO, Callable, List, Mapping, Optional, Tuple

SUBPROCESS_CWD = "/"
MONAGENT = (sys.executable, "-m", "monagent")
# Supervision variables the test runner may have inherited from systemd; an agent under test must not see them.
_SUPERVISION = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")


def wait_until(condition: Callable[[], object], what: str, timeout: float = 30.0, interval: float = 0.02) -> None:
    """Return once ``condition()`` is true; fail naming ``what`` after ``timeout`` seconds.

    The timeout only bounds a failing test: a passing one returns as soon as the condition holds,
    so it is generous (a loaded 2-core CI machine), never a measurement.
    """
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(interval)


class FakeClock:
    """Wall and monotonic time moving together, only when told (``advance``/``step``).

    Pass ``clock.time`` / ``clock.monotonic`` where the code takes clock functions, or read
    ``clock.wall`` / ``clock.mono`` where it takes the time as an argument (the pure state machine).
    ``reading_cost``: seconds both move at every call of ``monotonic()``, as code that reads the clock
    sees time pass on a loaded machine.
    """

    def __init__(self, wall: float = 1_790_000_000.0, mono: float = 1000.0, reading_cost: float = 0.0) -> None:
        self.wall, self.mono = wall, mono
        self.reading_cost = reading_cost

    @property
    def now(self) -> float:
        return self.wall

    def time(self) -> float:
        return self.wall

    def monotonic(self) -> float:
        self.advance(self.reading_cost)
        return self.mono

    def advance(self, seconds: float) -> None:
        self.wall += seconds
        self.mono += seconds

    def step(self, seconds: float = 60.0) -> Tuple[float, float]:
        """Advance and return the new (wall, monotonic) pair."""
        self.advance(seconds)
        return self.wall, self.mono


def subprocess_env(extra: Optional[Mapping[str, str]] = None) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in _SUPERVISION}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


def monagent(*args: str, env: Optional[Mapping[str, str]] = None, timeout: float = 60) -> subprocess.CompletedProcess:
    """Run ``monagent ARGS`` (the copy under test) to completion, output captured as text."""
    return subprocess.run(
        [*MONAGENT, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=dict(env) if env is not None else None,
        cwd=SUBPROCESS_CWD,
        check=False,
    )


class AgentProcess:
    """``python -m monagent run -c CONFIG``; stdout (and stderr, unless ``log`` is given) line by line.

    With ``log``, stderr (the agent's log) is appended to that file instead, as a service's goes to
    the journal: :meth:`log_text` reads it and :meth:`wait_log` waits for a line of it. ``env`` is
    added to this process's environment (less systemd's supervision variables)."""

    def __init__(self, config: Path, env: Optional[Mapping[str, str]] = None, *, log: Optional[Path] = None) -> None:
        self.log = log
        stderr: Optional[IO[bytes]] = None
        if log is not None:
            stderr = open(log, "ab")  # the child's stderr, closed in close()
        self.stderr = stderr
        self.proc = subprocess.Popen(
            [*MONAGENT, "run", "-c", str(config)],
            stdout=subprocess.PIPE,
            stderr=stderr if stderr is not None else subprocess.STDOUT,
            text=True,
            env=subprocess_env(env),
            cwd=SUBPROCESS_CWD,
        )
        self.lines: List[str] = []
        self._ended: queue.Queue[None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))
        self._ended.put(None)

    def count(self, prefix: str) -> int:
        return sum(1 for line in list(self.lines) if line.startswith(prefix))

    def wait_for(self, text: str, timeout: float = 30.0, count: int = 1) -> None:
        """Wait until ``count`` output lines contain ``text``; fail early if the agent exited."""

        def seen() -> bool:
            if sum(text in line for line in list(self.lines)) >= count:
                return True
            if self.proc.poll() is not None and not self._reader.is_alive():
                raise AssertionError(f"the agent exited ({self.proc.returncode}) before {text!r}:\n" + "\n".join(self.lines))
            return False

        try:
            wait_until(seen, repr(text), timeout)
        except AssertionError as exc:
            raise AssertionError(f"{exc}; output:\n" + "\n".join(self.lines)) from None

    def log_text(self) -> str:
        """What the agent has logged so far (``log`` given), else what it has printed."""
        if self.log is None:
            return "\n".join(self.lines)
        return self.log.read_text(errors="replace")

    def wait_log(self, text: str, timeout: float = 30.0) -> None:
        """Wait until the log contains ``text``; fail with the log if the agent exits first."""
        wait_until(lambda: text in self.log_text() or self.proc.poll() is not None, f"{text!r} in the log", timeout)
        assert text in self.log_text(), f"the agent exited ({self.proc.returncode}) before {text!r}:\n{self.log_text()}"

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60.0) -> int:
        """Send ``sig`` (if still running), wait for the exit and the last line; return the exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.wait(timeout)

    def wait(self, timeout: float = 60.0) -> int:
        """Wait for an agent that ends by itself (a start that fails) and its last line; return the exit status."""
        code = self.proc.wait(timeout)
        self._reader.join(10)
        self.close()
        return code

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        if self.proc.stdout is not None and not self.proc.stdout.closed:
            self.proc.stdout.close()
        if self.stderr is not None and not self.stderr.closed:
            self.stderr.close()


def run_in_process_until_observed(
    make_agent: Callable[[], object], check: str, monkeypatch: object, explain_previous_boot: bool = True
) -> bool:
    """Make an agent (``monagent.agent.Agent``, whose constructor sets up logging) and run it in this
    process until its loop has observed a run of ``check``, then stop it; return whether it was
    observed. The agent's logging setup and signal handlers are undone with the test (``monkeypatch``),
    so later tests keep pytest's own (a handler left on a closed stderr breaks them)."""
    import logging

    patch = monkeypatch  # pytest.MonkeyPatch; typed loosely so this module needs no pytest import
    patch.setattr(logging.root, "handlers", list(logging.root.handlers))  # type: ignore[attr-defined]
    patch.setattr(logging.root, "level", logging.root.level)  # type: ignore[attr-defined]
    agent = make_agent()
    patch.setattr(agent, "_install_signals", lambda: None)  # type: ignore[attr-defined]
    if not explain_previous_boot:
        patch.setattr(agent, "_explain_previous_boot", lambda *args: None)  # type: ignore[attr-defined]
    observed: List[bool] = []

    def stop_once_observed() -> None:
        deadline = time.monotonic() + 30  # a bound for a broken build, not a timing claim
        while time.monotonic() < deadline and check not in agent.last_runs:  # type: ignore[attr-defined]
            time.sleep(0.02)
        observed.append(check in agent.last_runs)  # type: ignore[attr-defined]
        agent.stop()  # type: ignore[attr-defined]

    stopper = threading.Thread(target=stop_once_observed, daemon=True)
    stopper.start()
    assert agent.run() == 0  # type: ignore[attr-defined]
    stopper.join(5)
    return observed == [True]
