"""The systemd notify protocol, spoken directly (sd_notify(3), sd_watchdog_enabled(3)).

Under ``Type=notify`` systemd passes ``$NOTIFY_SOCKET``: an ``AF_UNIX`` datagram
socket, a path or, when it starts with ``@``, a Linux abstract name. Each
notification is one datagram of ``KEY=VALUE`` lines; there is no reply and a
failed send is never fatal. Without ``$NOTIFY_SOCKET`` every call is a no-op, so
the agent runs the same in a terminal.

The agent calls, from its main process only (``NotifyAccess=main``)::

    notifier = SystemdNotifier.from_environ(os.environ, unset=True)
    notifier.ready(status_line(checks=12, firing=1, outbox=0))
    gate = WatchdogGate(notifier.watchdog_interval())
    gate.progress(now)                               # whenever the scheduler moved on
    if gate.due(now): notifier.watchdog()            # each loop turn
    notifier.reloading(); ...; notifier.ready()                               # SIGHUP
    notifier.stopping()                                                       # SIGTERM
"""

from __future__ import annotations

import os
import socket
import time
from typing import Callable, Dict, Mapping, MutableMapping, Optional, Tuple

from monagent.lazylog import get_logger

log = get_logger(__name__)

# Variables that give a process the right to talk to systemd; a child must not inherit them.
_SUPERVISION_PREFIXES = ("NOTIFY_SOCKET", "WATCHDOG_", "LISTEN_")


def child_environ(environ: Mapping[str, str]) -> Dict[str, str]:
    """A copy of ``environ`` without ``NOTIFY_SOCKET``, ``WATCHDOG_*`` and ``LISTEN_*``.

    Use it for every subprocess (Nagios plugins): what a child sends must not
    count as the agent's readiness or keep-alive.
    """
    return {k: v for k, v in environ.items() if not k.startswith(_SUPERVISION_PREFIXES)}


def socket_address(name: str) -> str:
    """The ``sendto`` address of a ``$NOTIFY_SOCKET`` value: ``@name`` is the abstract ``\\0name``."""
    return "\0" + name[1:] if name.startswith("@") else name


def status_line(checks: int, firing: int, outbox: int) -> str:
    """The short summary ``systemctl status`` shows: ``"12 checks, 1 firing, outbox 0"``."""
    noun = "check" if checks == 1 else "checks"
    return f"{checks} {noun}, {firing} firing, outbox {outbox}"


def _watchdog_usec(environ: Mapping[str, str], pid: int) -> Optional[int]:
    """``$WATCHDOG_USEC`` when it is meant for ``pid`` (``$WATCHDOG_PID`` unset or equal)."""
    owner = environ.get("WATCHDOG_PID", "")
    if owner and owner.strip() != str(pid):
        return None
    try:
        usec = int(environ.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    return usec if usec > 0 else None


def _monotonic_usec() -> int:
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000


class SystemdNotifier:
    """Sends notifications to one ``$NOTIFY_SOCKET`` (or nowhere, when there is none)."""

    def __init__(
        self,
        address: Optional[str] = None,
        watchdog_usec: Optional[int] = None,
        monotonic_usec: Callable[[], int] = _monotonic_usec,
    ) -> None:
        self.address = address or None
        self.watchdog_usec = watchdog_usec
        self._monotonic_usec = monotonic_usec
        self._warned = False

    @classmethod
    def from_environ(
        cls, environ: Optional[MutableMapping[str, str]] = None, *, pid: Optional[int] = None, unset: bool = False
    ) -> SystemdNotifier:
        """Read ``NOTIFY_SOCKET``/``WATCHDOG_USEC``/``WATCHDOG_PID``; ``unset`` removes them (and
        ``LISTEN_*``) from ``environ`` so no child process inherits them, as sd_notify's flag does."""
        env = os.environ if environ is None else environ
        notifier = cls(env.get("NOTIFY_SOCKET"), _watchdog_usec(env, os.getpid() if pid is None else pid))
        if unset:
            for key in [k for k in env if k.startswith(_SUPERVISION_PREFIXES)]:
                del env[key]
        return notifier

    @property
    def enabled(self) -> bool:
        """True when running under systemd with a notify socket."""
        return self.address is not None

    def watchdog_interval(self) -> Optional[float]:
        """Seconds between WATCHDOG=1 pings (half of ``WatchdogSec=``), or None without a watchdog."""
        if self.address is None or self.watchdog_usec is None:
            return None
        return self.watchdog_usec / 2_000_000

    def notify(self, *lines: str) -> bool:
        """Send ``KEY=VALUE`` lines as one datagram; False (and a single warning) when it fails."""
        if self.address is None or not lines:
            return False
        payload = "\n".join(lines).encode("utf-8")
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.sendto(payload, socket_address(self.address))
        except OSError as exc:
            if not self._warned:
                log.warning("cannot notify systemd at %s: %s", self.address, exc.strerror or exc)
                self._warned = True
            return False
        return True

    def ready(self, status: Optional[str] = None) -> bool:
        """READY=1: the config is loaded and the scheduler runs (also ends a reload)."""
        return self.notify("READY=1", *_status(status))

    def status(self, text: str) -> bool:
        """STATUS=: one line for ``systemctl status``."""
        return self.notify(*_status(text))

    def watchdog(self) -> bool:
        """WATCHDOG=1: the keep-alive; prefer :class:`WatchdogGate`, which sends it only on progress."""
        return self.notify("WATCHDOG=1")

    def reloading(self, status: Optional[str] = "reloading configuration") -> bool:
        """RELOADING=1 with MONOTONIC_USEC= (required by ``Type=notify-reload``, harmless before)."""
        return self.notify("RELOADING=1", f"MONOTONIC_USEC={self._monotonic_usec()}", *_status(status))

    def stopping(self, status: Optional[str] = "stopping: finishing in-flight sends") -> bool:
        """STOPPING=1: shutdown has begun."""
        return self.notify("STOPPING=1", *_status(status))

    def extend_timeout(self, seconds: float) -> bool:
        """EXTEND_TIMEOUT_USEC=: ask for more time to start or stop."""
        return self.notify(f"EXTEND_TIMEOUT_USEC={int(seconds * 1_000_000)}")


def _status(text: Optional[str]) -> Tuple[str, ...]:
    """A STATUS= line, flattened to one line; nothing for None."""
    if text is None:
        return ()
    return ("STATUS=" + " ".join(text.split()),)


class WatchdogGate:
    """Decides when the scheduler loop sends WATCHDOG=1: every ``interval`` seconds (half of
    ``WatchdogSec``) while the loop reports progress, never once the last progress is older
    than ``stall_after`` (default: one interval).

    A wedged scheduler therefore stops feeding the watchdog and systemd restarts the agent
    (``Restart=on-failure`` covers a watchdog timeout). Times are monotonic seconds::

        gate = WatchdogGate(notifier.watchdog_interval())
        gate.progress(now)               # whenever the scheduler moved on
        if gate.due(now):                # each loop turn; sleep at most gate.interval
            notifier.watchdog()
    """

    def __init__(self, interval: Optional[float], stall_after: Optional[float] = None) -> None:
        self.interval = interval
        self.stall_after = interval if stall_after is None else stall_after
        self.last_progress: Optional[float] = None
        self.last_sent: Optional[float] = None

    def progress(self, now: float) -> None:
        """The scheduler made progress at ``now``."""
        self.last_progress = now

    def due(self, now: float) -> bool:
        """Whether WATCHDOG=1 goes out at ``now``; a True answer counts as sent."""
        if self.interval is None or self.stall_after is None or self.last_progress is None:
            return False
        if now - self.last_progress > self.stall_after:
            return False
        if self.last_sent is not None and now - self.last_sent < self.interval:
            return False
        self.last_sent = now
        return True


__all__ = ["SystemdNotifier", "WatchdogGate", "child_environ", "socket_address", "status_line"]
