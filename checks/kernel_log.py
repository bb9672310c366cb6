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
from typing import TYPE_CHECKING, ClassVar, Dict, List, Mapping, Optional, Sequence, Tuple

from monagent.api import Check, Context, MetricSpec, Occurrence, Result, Status

if TYPE_CHECKING:
    from monagent.checks.kernel_patterns import Problem

# The journal reader and the patterns are imported by run(): loading the class (monagent validate,
# plugins) stays cheap.
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
        from monagent.checks.kernel_patterns import Problem, find_problems

        boot = ctx.boot_id()
        if boot != self._boot:
            self._boot, self._cursor, self._problems, self._first_time = boot, "", {}, {}
        args = ["-k", "-b", "0"] + (["--after-cursor", self._cursor] if self._cursor else ["-n", str(self.max_lines)])
        try:
            entries = run_journalctl(args, timeout=self.journal_timeout_seconds, journalctl=self.journalctl)
        except JournalUnavailable as exc:
            return [Result(status=Status.UNKNOWN, reason=f"cannot read the kernel log: {exc}")]
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
            self._problems[key] = Problem(problem.kind, problem.subject, problem.summary, problem.severity, problem.line, count)
        occurrences = tuple(self._occurrence(boot, key, p) for key, p in self._problems.items())
        reason = f"{len(occurrences)} kernel problem{'s' if len(occurrences) != 1 else ''} in this boot" if occurrences else ""
        return [
            Result(
                status=Status.OK, reason=reason or "no hung task, lockup or machine check in this boot", occurrences=occurrences
            )
        ]

    def _occurrence(self, boot: str, key: Tuple[str, str], problem: Problem) -> Occurrence:
        return Occurrence(
            id=f"{boot}:{problem.kind}:{problem.subject}",
            summary=problem.summary,
            severity=problem.severity,
            facts={"kind": problem.kind, "line": problem.line, "times_seen": str(problem.count)},
            time=self._first_time.get(key),
            announce_on_first_run=True,
        )
