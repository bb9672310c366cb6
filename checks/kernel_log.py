"""The ``kernel_log`` check: hung tasks, soft and hard lockups, RCU stalls and machine checks in the
running boot's kernel log, so trouble that often precedes a crash is seen while the host is up.

Each run reads the kernel lines of the current boot that are new since the last run
(``journalctl -k -b 0 -o json --after-cursor``, a child process killed at ``journal_timeout``;
the unit's ProtectKernelLogs= keeps /dev/kmsg closed, the journal is the way in). Every distinct
problem (kind and subject: the blocked task, the CPU, the memory bank) is one occurrence per
boot; the engine's seen set announces each once, however often the kernel repeats the line.
"""

from __future__ import annotations

import logging
from typing import ClassVar, Dict, List, Mapping, Optional, Sequence, Tuple

from monagent.checks.kernel_patterns import TEXTS, Problem, find_problems

from monagent.api import Check, Context, MetricSpec, Occurrence, Result, Status

# The journal reader is imported by run(): loading the class (monagent validate, plugins) stays cheap.
# The patterns module comes with the class: its texts are the check's own (Check.texts).
JOURNALCTL = "journalctl"  # as monagent.checks.journal_read.JOURNALCTL

log = logging.getLogger(__name__)

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
        self._problems: Dict[Tuple[str, str], Problem] = {}
        self._first_time: Dict[Tuple[str, str], float] = {}

    def run(self, ctx: Context) -> List[Result]:
        from monagent.checks.journal_read import JournalUnavailable, run_journalctl, to_line

        boot = ctx.boot_id()
        if boot != self._boot:
            self._boot, self._cursor, self._problems, self._first_time = boot, "", {}, {}
        args = ["-k", "-b", "0"] + (["--after-cursor", self._cursor] if self._cursor else ["-n", str(self.max_lines)])
        try:
            entries = run_journalctl(args, timeout=self.journal_timeout_seconds, journalctl=self.journalctl)
        except JournalUnavailable as exc:
            return [Result(status=Status.UNKNOWN, reason=self.text("kernel_log.unreadable", error=str(exc)))]
        lines = [to_line(e) for e in entries]
        if entries and entries[-1].get("__CURSOR"):
            self._cursor = entries[-1]["__CURSOR"]
        when: Dict[str, float] = {}
        for line in lines:
            when.setdefault(line.text, line.time)
        for problem in find_problems(line.text for line in lines):
            if problem.kind not in self.kinds:
                continue
            key = (problem.kind, problem.subject)
            before = self._problems.get(key)
            self._first_time.setdefault(key, when.get(problem.line, 0.0) or ctx.now)
            count = problem.count + (before.count if before else 0)
            self._problems[key] = Problem(problem.kind, problem.subject, problem.reason, problem.severity, problem.line, count)
        occurrences = tuple(self._occurrence(boot, key, p) for key, p in self._problems.items())
        reason = self.text("kernel_log.count", n=len(occurrences)) if occurrences else self.text("kernel_log.none")
        return [Result(status=Status.OK, reason=reason, occurrences=occurrences)]

    def _occurrence(self, boot: str, key: Tuple[str, str], problem: Problem) -> Occurrence:
        return Occurrence(
            id=f"{boot}:{problem.kind}:{problem.subject}",
            summary=problem.summary,
            reason=problem.reason,
            severity=problem.severity,
            facts={"kind": problem.kind, "line": problem.line, "times_seen": problem.count},
            time=self._first_time.get(key),
            announce_on_first_run=True,
        )
