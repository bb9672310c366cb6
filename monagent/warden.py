"""The warden: kills the process groups of the agent's children when the agent dies, however it dies.

Every child the agent starts (a Nagios plugin, a worker) runs in a session and process group of its
own. A plugin itself gets ``PR_SET_PDEATHSIG``, but that dies with the direct child only: a
background grandchild it forked (``sleep 600 &``, a helper daemon) is reparented to PID 1 when the
agent is SIGKILLed, OOM-killed or crashes, and lives on. The clean stop kills each group, but a
SIGKILL gives the agent no chance to.

So the agent keeps one small helper beside it, started on demand: ``/bin/sh`` reading a pipe whose
only writer is the agent. :func:`watch` writes ``+PGID`` when a group starts and :func:`release`
``-PGID`` once it is gone. When the agent dies for any reason the kernel closes its end, ``read``
sees end of file, and the warden sends SIGKILL to every group still listed, then exits. The shell
costs about 1 MiB and a millisecond, no second Python interpreter; it ignores SIGHUP, SIGINT, SIGTERM
and SIGQUIT (a Ctrl-C or a stop of the service reaches the agent, whose clean stop goes first).

Why not the alternatives: ``PR_SET_CHILD_SUBREAPER`` only re-parents orphans to the agent while
it lives, and they go on to PID 1 when it dies; a PID namespace per plugin needs privileges and
gives the plugin PID 1 (``/proc/self`` and signal semantics change under it); cgroups exist only
under systemd (whose ``KillMode=control-group`` does cover it there). A grandchild that leaves its
process group on purpose (``setsid``, a daemonising double fork) escapes the warden; under systemd
the service's cgroup still catches it.

Nothing happens unless the agent :func:`enable` s the warden (``monagent run``): tests and one-shot
commands that run plugins start no helper.
"""

from __future__ import annotations

import os
import subprocess
import threading
from typing import Optional

from monagent.lazylog import get_logger

log = get_logger(__name__)

# POSIX sh: keep " PGID PGID ... " while the agent lives; at end of file SIGKILL each group.
SCRIPT = r"""trap '' HUP INT TERM QUIT
g=' '
while read -r op n; do
  case $op$n in
    +[0-9]*) g="$g$n ";;
    -[0-9]*) case $g in *" $n "*) g="${g%%" $n "*} ${g#*" $n "}";; esac;;
  esac
done
for n in $g; do kill -KILL -"$n" 2>/dev/null; done
"""
NAME = "monagent-warden"  # its $0: what ps shows


class _Warden:
    """The one warden of this process: off until enabled, started by the first group to watch."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.enabled = False
        self.proc: Optional[subprocess.Popen[bytes]] = None

    def send(self, line: str) -> None:
        if not self.enabled:
            return
        with self.lock:
            if self.proc is None or self.proc.poll() is not None:
                self.proc = _start()
                if self.proc is None:
                    return
            assert self.proc.stdin is not None
            try:
                os.write(self.proc.stdin.fileno(), line.encode("ascii"))  # one write under PIPE_BUF: atomic
            except BlockingIOError:
                log.warning("the warden (pid %d) is not reading; %s not recorded", self.proc.pid, line.strip())
            except OSError as exc:  # it died (killed by hand): the next call starts another
                log.warning("the warden (pid %d) is gone (%s); starting another", self.proc.pid, exc.strerror or exc)
                self.proc = None


_WARDEN = _Warden()


def enable() -> None:
    """From now on :func:`watch` starts the warden when first needed (the running agent calls this)."""
    _WARDEN.enabled = True


def shutdown() -> None:
    """The agent is done (its clean stop killed its children): close the pipe, so the warden kills
    whatever is still listed and exits, and start no other."""
    with _WARDEN.lock:
        _WARDEN.enabled = False
        proc, _WARDEN.proc = _WARDEN.proc, None
    if proc is not None and proc.stdin is not None:
        proc.stdin.close()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            log.warning("the warden (pid %d) did not exit", proc.pid)


def watch(pgid: int) -> None:
    """The process group ``pgid`` (a child started with ``start_new_session``) dies with the agent."""
    _WARDEN.send(f"+ {int(pgid)}\n")


def release(pgid: int) -> None:
    """The group ``pgid`` is gone (killed, its leader not yet reaped or just reaped): forget it."""
    _WARDEN.send(f"- {int(pgid)}\n")


def pid() -> Optional[int]:
    """The warden's pid while it runs."""
    proc = _WARDEN.proc
    return proc.pid if proc is not None and proc.poll() is None else None


def _start() -> Optional[subprocess.Popen[bytes]]:
    try:
        proc = subprocess.Popen(
            ["/bin/sh", "-c", SCRIPT, NAME],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            close_fds=True,
            cwd="/",
            env={"PATH": "/usr/bin:/bin"},
        )
    except OSError as exc:
        log.error("cannot start the warden (/bin/sh: %s): children may outlive a killed agent", exc.strerror or exc)
        return None
    assert proc.stdin is not None
    os.set_blocking(proc.stdin.fileno(), False)  # a stopped warden must never block a check
    log.debug("warden started (pid %d)", proc.pid)
    return proc


__all__ = ["enable", "pid", "release", "shutdown", "watch"]
