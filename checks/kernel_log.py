"""The ``kernel_log`` check: hung tasks, soft and hard lockups, RCU stalls and machine checks in the
running boot's kernel log, so trouble that often precedes a crash is seen while the host is up.

The kernel lines come from the journal (the unit's ProtectKernelLogs= keeps /dev/kmsg closed, the
journal is the way in). The check follows the journal with one ``journalctl --follow`` child and
each run takes the lines that arrived since the last one, without blocking (at most ``max_lines``;
the rest waits in the pipe for the next run). The first run of an instance reads once instead
(``journalctl -k -b 0 -o json -n max_lines``, killed at ``journal_timeout``), so ``monagent check``
spawns one child; the second starts the follower after the cursor it read. A follower that exits is
logged, replaced by a read from the last cursor (nothing lost, nothing counted twice), and started
again; close() ends it. Every distinct problem (kind and subject: the blocked task, the CPU, the
memory bank) is one occurrence per boot; the engine's seen set announces each once, however often
the kernel repeats the line.
"""

from __future__ import annotations

import _thread
from typing import TYPE_CHECKING, ClassVar, Dict, List, Mapping, Optional, Sequence, Tuple

from monagent.checks.kernel_patterns import TEXTS, Problem, find_problems

from monagent.api import Check, Context, MetricSpec, Occurrence, Result, Status

if TYPE_CHECKING:
    import logging

    from monagent.checks.journal_follow import JournalFollower

# The journal reader and follower are imported by run(): loading the class (monagent validate, plugins) stays cheap.
# The patterns module comes with the class: its texts are the check's own (Check.texts).
JOURNALCTL = "journalctl"  # as monagent.checks.journal_read.JOURNALCTL


def log() -> logging.Logger:
    """This module's logger; ``logging`` is imported at the first line logged (start-up, #17)."""
    import logging

    return logging.getLogger(__name__)


KINDS = ("hung_task", "soft_lockup", "hard_lockup", "rcu_stall", "mce", "oom_panic", "watchdog", "thermal")
DEFAULT_KINDS = ("hung_task", "soft_lockup", "hard_lockup", "rcu_stall", "mce")


class KernelLogCheck(Check):
    """Report each distinct hung task, lockup, RCU stall or machine check of the running boot once."""

    interval = 60.0
    timeout = 60.0
    metrics: ClassVar[Optional[Mapping[str, MetricSpec]]] = {}
    run_at_start = True
    texts: ClassVar[Mapping[str, Mapping[str, str]]] = {
        **TEXTS,
        "kernel_log.unreadable": {"en": "cannot read the kernel log: {error}", "zh": "无法读取内核日志：{error}"},
        "kernel_log.none": {
            "en": "no hung task, lockup or machine check in this boot",
            "zh": "本次启动以来没有任务挂起、锁死或机器检查异常",
        },
        "kernel_log.count": {"en": "{n} kernel problem{n:s} in this boot", "zh": "本次启动以来发现 {n} 个内核问题"},
        "fact.kind": {"en": "Kind", "zh": "类型"},
        "fact.line": {"en": "Kernel line", "zh": "内核日志"},
        "fact.times_seen": {"en": "Times seen", "zh": "出现次数"},
    }

    def __init__(
        self,
        *,
        kinds: Sequence[str] = DEFAULT_KINDS,
        journalctl: str = JOURNALCTL,
        journal_timeout_seconds: float = 20.0,
        max_lines: int = 20000,
    ) -> None:
        unknown = [k for k in kinds if k not in KINDS]
        if unknown:
            raise ValueError(f"kinds: unknown kind {unknown[0]!r}; known: {', '.join(KINDS)}")
        self.kinds = tuple(kinds)
        self.journalctl = journalctl
        self.journal_timeout_seconds = journal_timeout_seconds
        self.max_lines = max_lines
        self._boot = ""
        self._cursor = ""
        self._runs = 0
        self._problems: Dict[Tuple[str, str], Problem] = {}
        self._first_time: Dict[Tuple[str, str], float] = {}
        # close() may come from another thread while a run is in flight: the follower is this lock's.
        self._lock = _thread.allocate_lock()  # threading.Lock itself; threading costs 2 ms of start-up
        self._follower: Optional[JournalFollower] = None
        self._closed = False

    def run(self, ctx: Context) -> List[Result]:
        from monagent.checks.journal_read import JournalUnavailable, run_journalctl

        boot = ctx.boot_id()
        if boot != self._boot:
            self._stop_follower()
            self._boot, self._cursor, self._problems, self._first_time = boot, "", {}, {}
        first_run, self._runs = self._runs == 0, self._runs + 1
        if not self._drain(ctx):  # no follower alive: read once, then follow from there (under the agent)
            try:
                entries = run_journalctl(
                    ["-k", "-b", "0", *self._position()], timeout=self.journal_timeout_seconds, journalctl=self.journalctl
                )
            except JournalUnavailable as exc:
                return [Result(status=Status.UNKNOWN, reason=self.text("kernel_log.unreadable", error=str(exc)))]
            self._note(entries, ctx)
            if ctx.long_lived or not first_run:  # monagent check runs once: one child, no follower
                self._follow()
        occurrences = tuple(self._occurrence(boot, key, p) for key, p in self._problems.items())
        reason = self.text("kernel_log.count", n=len(occurrences)) if occurrences else self.text("kernel_log.none")
        return [Result(status=Status.OK, reason=reason, occurrences=occurrences)]

    def close(self) -> None:
        """End the journalctl --follow child, if there is one; no follower starts after this."""
        with self._lock:
            self._closed = True
        self._stop_follower()

    def _position(self) -> List[str]:
        return ["--after-cursor", self._cursor] if self._cursor else ["-n", str(self.max_lines)]

    def _drain(self, ctx: Context) -> bool:
        """Note what the follower wrote since the last run; False when none is alive (any more)."""
        with self._lock:
            follower = self._follower
            if follower is None:
                return False
            gone = follower.exited()  # before the read: what it wrote before it exited is in the pipe
            entries = follower.read(self.max_lines)
            if gone:
                self._follower = None
        self._note(entries, ctx)
        if gone:
            status = follower.stop()
            error = follower.last_error
            log().warning(
                "%s --follow (pid %d) %s%s; reading the kernel log once from the last cursor",
                self.journalctl,
                follower.pid,
                _ended(status),
                f": {error}" if error else "",
            )
        return not gone

    def _follow(self) -> None:
        from monagent.checks.journal_follow import JournalFollower
        from monagent.checks.journal_read import JournalUnavailable

        with self._lock:
            if self._closed or self._follower is not None:
                return
            try:
                self._follower = JournalFollower(["-k", "-b", "0", "--follow", *self._position()], journalctl=self.journalctl)
            except JournalUnavailable as exc:
                log().warning("cannot follow the kernel log (%s); reading it once at each run", exc)

    def _stop_follower(self) -> None:
        with self._lock:
            follower, self._follower = self._follower, None
        if follower is not None:
            follower.stop()

    def _note(self, entries: List[Dict[str, str]], ctx: Context) -> None:
        """Count the problems in ``entries`` (the next lines of the log) and move the cursor past them."""
        from monagent.checks.journal_read import to_line

        lines = [to_line(e) for e in entries]
        self._cursor = next((e["__CURSOR"] for e in reversed(entries) if e.get("__CURSOR")), self._cursor)
        when: Dict[str, float] = {}
        for line in lines:
            when.setdefault(line.text, line.time)
        for problem in find_problems(line.text for line in lines):
            if problem.kind not in self.kinds:
                continue
            key = (problem.kind, problem.subject)
            before = self._problems.get(key)
            self._first_time.setdefault(key, when.get(problem.line, 0.0) or ctx.now)
            count = problem.seen + (before.seen if before else 0)
            self._problems[key] = Problem(problem.kind, problem.subject, problem.reason, problem.severity, problem.line, count)

    def _occurrence(self, boot: str, key: Tuple[str, str], problem: Problem) -> Occurrence:
        return Occurrence(
            id=f"{boot}:{problem.kind}:{problem.subject}",
            summary=problem.summary,
            reason=problem.reason,
            severity=problem.severity,
            facts={"kind": problem.kind, "line": problem.line, "times_seen": problem.seen},
            time=self._first_time.get(key),
            announce_on_first_run=True,
        )


def _ended(status: Optional[int]) -> str:
    """How a follower ended, for the log: "exited with status 1", "was killed by SIGKILL"."""
    import signal

    if status is None:
        return "does not die"
    if status < 0:
        try:
            return f"was killed by {signal.Signals(-status).name}"
        except ValueError:
            return f"was killed by signal {-status}"
    return f"exited with status {status}"
