"""Check type ``nagios``: run a Nagios/Monitoring-Plugins executable and report what it says.

The command is an argv list whose first item is an absolute path; no shell is involved
unless the user writes ``["/bin/sh", "-c", "..."]`` himself. The plugin runs

- in a new session (its own process group), so a timeout kills the whole group,
  grandchildren included; when the plugin exits, whatever it left running in its group
  is killed too (a forgotten grandchild holding stdout cannot stall the check); the plugin
  dies with the agent (``PR_SET_PDEATHSIG``) and so does its group, background grandchildren
  included, whatever ends the agent (the warden: ``contain_process_group``);
- with stdin from /dev/null, cwd ``/``, no inherited descriptors, no ambient
  capabilities, and an environment made only of the allow-listed names plus the fixed
  ``env`` table (never ``NOTIFY_SOCKET``, ``WATCHDOG_*`` or ``LISTEN_*``);
- with its stdout read up to ``output_limit`` bytes (the rest is drained and dropped)
  and its stderr kept for the log.

Exit codes 0-3 are OK, WARNING, CRITICAL, UNKNOWN with the first line as the reason;
any other code, or a death by signal, is UNKNOWN. Perfdata values become metrics, so
``[checks.NAME.thresholds]`` may judge them by their perfdata labels.
"""

from __future__ import annotations

import logging
import os
import selectors
import signal
import subprocess
import time
from dataclasses import dataclass
from typing import Callable, ClassVar, Dict, List, Mapping, Optional, Sequence, Set, Tuple, Union

from monagent.api import Check, Context, Result, Status, Text, contain_process_group, release_process_group
from monagent.nagios import parse_output

log = logging.getLogger(__name__)

_RESERVED_PREFIXES = ("WATCHDOG_", "LISTEN_")
_RESERVED = ("NOTIFY_SOCKET",)
_STATES = {s.label: s for s in Status}
_LINGER = 0.2  # seconds to wait for EOF after the plugin itself exited
_CHUNK = 65536
_STOP_GRACE = 0.5  # seconds a plugin's group gets between SIGTERM and SIGKILL when the agent stops
_REAP_WAIT = 2.0  # seconds a SIGKILLed plugin gets to die before it is left for later reaping
_STUCK: List[subprocess.Popen[bytes]] = []  # killed plugins stuck in the kernel, reaped on later runs


def _reap_stuck() -> None:
    _STUCK[:] = [p for p in _STUCK if p.poll() is None]


def _reserved(name: str) -> bool:
    return name in _RESERVED or name.startswith(_RESERVED_PREFIXES)


# ---------------------------------------------------------------- the child's setup


def _child_setup() -> Optional[Callable[[], None]]:
    """A preexec_fn that clears the ambient capability set and asks the kernel to SIGKILL the
    plugin when the agent dies (even by SIGKILL); None where prctl is not available.

    The foreign function is looked up here, in the parent, so the child between fork and
    exec only makes plain libc calls (no imports, no allocation worth mentioning).
    """
    try:
        import ctypes

        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    prctl.restype = ctypes.c_int
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    agent = os.getpid()

    def setup() -> None:
        prctl(47, 4, 0, 0, 0)  # PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL; best effort (EINVAL before 4.3)
        prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG: the plugin dies with the agent
        if os.getppid() != agent:  # the agent died before that took effect
            os.kill(os.getpid(), signal.SIGKILL)

    return setup


# ---------------------------------------------------------------- reading with a cap


class _Capped:
    """Keeps the first ``limit`` bytes and counts the rest."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.chunks: List[bytes] = []
        self.kept = 0
        self.total = 0

    def add(self, data: bytes) -> None:
        self.total += len(data)
        room = self.limit - self.kept
        if room > 0:
            self.chunks.append(data[:room])
            self.kept += min(room, len(data))

    def text(self) -> str:
        return b"".join(self.chunks).decode("utf-8", "replace")

    @property
    def truncated(self) -> bool:
        return self.total > self.kept


@dataclass(frozen=True)
class Outcome:
    """How a plugin run ended: ``returncode`` as Popen reports it (negative: killed by that signal)."""

    returncode: int
    stdout: str
    stderr: str
    stdout_bytes: int
    timed_out: bool


class _Run:
    """One plugin process: spawn it, read both pipes with a cap, kill its group when needed."""

    def __init__(self, argv: Sequence[str], env: Mapping[str, str], limit: int) -> None:
        self.proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd="/",
            env=dict(env),
            close_fds=True,
            start_new_session=True,
            # glibc resets its locks in the child, and the hook makes plain prctl() calls
            # looked up in the parent: the usual preexec_fn-with-threads deadlock cannot happen.
            preexec_fn=_child_setup(),  # noqa: PLW1509
        )
        contain_process_group(self.proc.pid)  # its grandchildren die with the agent too, even a SIGKILLed one
        self.out, self.err = _Capped(limit), _Capped(limit)
        self.selector = selectors.DefaultSelector()
        assert self.proc.stdout is not None and self.proc.stderr is not None
        self.selector.register(self.proc.stdout.fileno(), selectors.EVENT_READ, self.out)
        self.selector.register(self.proc.stderr.fileno(), selectors.EVENT_READ, self.err)
        self.pidfd = self._open_pidfd()
        if self.pidfd is not None:
            self.selector.register(self.pidfd, selectors.EVENT_READ, None)

    def _open_pidfd(self) -> Optional[int]:
        opener = getattr(os, "pidfd_open", None)
        if opener is None:
            return None
        try:
            return int(opener(self.proc.pid))
        except OSError:  # kernel before 5.3: poll with waitid instead
            return None

    def exited(self) -> bool:
        """Whether the plugin exited, without reaping it: its pid stays its group's id until we do."""
        try:
            info = os.waitid(os.P_PID, self.proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            return True
        return info is not None and info.si_pid == self.proc.pid

    def pipes_open(self) -> bool:
        return any(key.data is not None for key in self.selector.get_map().values())

    def pump(self, until: float, stop_at_exit: bool) -> bool:
        """Read until EOF on both pipes (and exit), or until ``until``; True if it finished."""
        while True:
            exited = self.exited()
            if exited and (stop_at_exit or not self.pipes_open()):
                return not self.pipes_open()
            remaining = until - time.monotonic()
            if remaining <= 0:
                return False
            wait = remaining if self.pidfd is not None else min(remaining, 0.05)
            for key, _ in self.selector.select(wait):
                if key.data is None:  # the pidfd: the plugin exited
                    self.selector.unregister(key.fd)
                    continue
                data = os.read(key.fd, _CHUNK)
                if data:
                    key.data.add(data)
                else:
                    self.selector.unregister(key.fd)

    def kill_group(self, sig: int) -> None:
        if self.proc.returncode is not None:
            return  # reaped: its pid may name another group by now
        try:
            os.killpg(self.proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def stop(self) -> None:
        """From another thread, when the agent stops: SIGTERM to the group, SIGKILL a moment later."""
        self.kill_group(signal.SIGTERM)
        deadline = time.monotonic() + _STOP_GRACE
        while not self.exited() and time.monotonic() < deadline:
            time.sleep(0.01)
        self.kill_group(signal.SIGKILL)

    def finish(self, deadline: float, grace: float) -> Outcome:
        timed_out = False
        if not self.pump(deadline, stop_at_exit=True):
            if not self.exited():
                timed_out = True
                self.kill_group(signal.SIGTERM)
                self.pump(time.monotonic() + grace, stop_at_exit=True)
        if self.pipes_open() and not self.pump(time.monotonic() + _LINGER, stop_at_exit=False):
            log.debug("pid %d left processes holding its output; killing its group", self.proc.pid)
        # The leader is not reaped yet, so its pid still names this group: kill what is left.
        self.kill_group(signal.SIGKILL)
        self.pump(time.monotonic() + _LINGER, stop_at_exit=False)
        release_process_group(self.proc.pid)  # before the reap: until then no other group can have its id
        try:
            returncode = self.proc.wait(timeout=_REAP_WAIT)
        except subprocess.TimeoutExpired:  # SIGKILLed but stuck in the kernel (a hung NFS statfs)
            log.warning("%s (pid %d) survives SIGKILL; it is stuck in the kernel", self.proc.args, self.proc.pid)
            _STUCK.append(self.proc)
            returncode = -signal.SIGKILL
        return Outcome(returncode, self.out.text(), self.err.text(), self.out.total, timed_out)

    def close(self) -> None:
        self.selector.close()
        if self.pidfd is not None:
            os.close(self.pidfd)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()


def run_plugin(
    argv: Sequence[str], env: Mapping[str, str], timeout: float, limit: int = 8192, live: Optional[Set[_Run]] = None
) -> Outcome:
    """Run ``argv`` to completion or until ``timeout`` seconds; raises OSError if it cannot start.

    While it runs, the run is in ``live`` (the check's close() stops what is there)."""
    _reap_stuck()
    margin = min(1.0, timeout * 0.1)  # leave room to kill and report before the engine's own timeout
    run = _Run(argv, env, limit)
    if live is not None:
        live.add(run)
    try:
        return run.finish(time.monotonic() + timeout - margin, margin / 2)
    finally:
        if live is not None:
            live.discard(run)
        run.close()


# ---------------------------------------------------------------- the check


class NagiosCheck(Check):
    """Runs a Nagios-compatible plugin; its exit code is the verdict, its perfdata the metrics."""

    metrics = None  # perfdata labels are discovered: thresholds may name any of them
    # The agent's own words about a run; what the plugin prints is its reason as it wrote it.
    texts: ClassVar[Mapping[str, Mapping[str, str]]] = {
        "nagios.said": {"en": ": {text}", "zh": "：{text}"},
        "nagios.cannot_run": {"en": "cannot run {plugin}: {error}", "zh": "无法运行 {plugin}：{error}"},
        "nagios.timed_out": {
            "en": "{name} timed out (timeout {limit:duration}); its process group was killed{said}",
            "zh": "{name} 超时（超过 {limit:duration}），其进程组已被终止{said}",
        },
        "nagios.killed": {"en": "{name} was killed by signal {signal}{said}", "zh": "{name} 被信号 {signal} 终止{said}"},
        "nagios.exit_code": {
            "en": "{name} exited with code {code}{said}",
            "zh": "{name} 以退出码 {code} 结束（不是 Nagios 状态码 0 到 3）{said}",
        },
        "nagios.silent": {"en": "{name} printed nothing (exit code {code})", "zh": "{name} 没有任何输出（退出码 {code}）"},
    }

    def __init__(
        self,
        *,
        command: Sequence[str],
        timeout: Optional[float] = None,
        env_allow: Sequence[str] = ("PATH", "LANG", "LC_ALL", "TZ"),
        env: Optional[Mapping[str, str]] = None,
        output_limit: int = 8192,
        timeout_state: str = "unknown",
    ) -> None:
        self.command = tuple(command)
        self.deadline = float(type(self).timeout if timeout is None else timeout)
        self.env_allow = tuple(env_allow)
        self.env = dict(env or {})
        self.output_limit = output_limit
        self.timeout_state = _STATES.get(timeout_state.lower(), Status.UNKNOWN)
        problems = self._problems(timeout_state)
        if problems:
            raise ValueError("; ".join(problems))
        self.name = os.path.basename(self.command[0]) if self.command else ""
        self._live: Set[_Run] = set()  # runs in progress, for close()

    def _problems(self, timeout_state: str) -> List[str]:
        problems = []
        command = self.command
        if not command or not command[0]:
            problems.append('command: must name the plugin, e.g. ["/usr/lib/nagios/plugins/check_load", "-r"]')
        elif not os.path.isabs(command[0]):
            problems.append(f'command: the plugin must be an absolute path, got "{command[0]}"')
        if self.deadline <= 0:
            problems.append(f"timeout: must be positive, got {self.deadline:g}")
        for name in [*self.env_allow, *self.env]:
            if _reserved(name):
                problems.append(f"env: {name} belongs to the agent's service manager and is never passed to plugins")
        if not 256 <= self.output_limit <= 1048576:
            problems.append(f"output_limit: must be from 256 to 1048576 bytes, got {self.output_limit}")
        if timeout_state.lower() not in _STATES:
            problems.append(f'timeout_state: must be one of ok, warning, critical, unknown; got "{timeout_state}"')
        return problems

    def environment(self, agent_env: Optional[Mapping[str, str]] = None) -> Dict[str, str]:
        """The child's environment: allow-listed names from the agent's, then the fixed table."""
        source = os.environ if agent_env is None else agent_env
        child = {k: source[k] for k in self.env_allow if k in source}
        child.update(self.env)
        return {k: v for k, v in child.items() if not _reserved(k)}

    def close(self) -> None:
        """The agent stops or drops this instance: a plugin still running dies with its process group."""
        for run in list(self._live):
            run.stop()

    def run(self, ctx: Context) -> Result:
        try:
            outcome = run_plugin(self.command, self.environment(), self.deadline, self.output_limit, self._live)
        except OSError as exc:
            return Result(
                status=Status.UNKNOWN,
                reason=self.text("nagios.cannot_run", plugin=self.command[0], error=exc.strerror or str(exc)),
            )
        return self.judge(outcome)

    def judge(self, outcome: Outcome) -> Result:
        """The result of a finished run (public so tests can judge a prepared outcome)."""
        parsed = parse_output(outcome.stdout)
        status, reason = self._verdict(outcome, parsed.summary)
        notes = [f"perfdata: {note}" for note in parsed.notes]
        if outcome.stdout_bytes > self.output_limit:
            notes.append(f"output truncated to {self.output_limit} of {outcome.stdout_bytes} bytes")
        details = parsed.long_text
        if notes:
            details = "\n".join([details, *(f"({note})" for note in notes)]).strip("\n")
        stderr = outcome.stderr.strip()
        if stderr:
            level = logging.WARNING if status == Status.UNKNOWN else logging.DEBUG
            log.log(level, "%s wrote on stderr: %s", self.name, stderr[:1000])
            if status == Status.UNKNOWN:
                details = "\n".join([details, "stderr:", stderr]).strip("\n")
        return Result(metrics=parsed.metrics(), status=status, reason=reason, details=details)

    def _verdict(self, outcome: Outcome, summary: str) -> Tuple[Status, Union[Text, str]]:
        """The plugin's own line as it wrote it; the agent's words (in every language) when the run went wrong."""
        code = outcome.returncode
        said: Union[Text, str] = self.text("nagios.said", text=summary) if summary else ""
        if outcome.timed_out:
            return self.timeout_state, self.text("nagios.timed_out", name=self.name, limit=self.deadline, said=said)
        if code < 0:
            return Status.UNKNOWN, self.text("nagios.killed", name=self.name, signal=_signal_name(-code), said=said)
        if code > 3:
            first_err = outcome.stderr.strip().split("\n")[0]
            if not said and first_err:
                said = self.text("nagios.said", text=first_err)
            return Status.UNKNOWN, self.text("nagios.exit_code", name=self.name, code=code, said=said)
        return Status(code), summary or self.text("nagios.silent", name=self.name, code=code)


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return str(number)
