"""Kernel log lines that announce trouble: hung tasks, lockups, RCU stalls, machine checks, OOM
panics, watchdogs, thermal trips.

:func:`find_problems` turns kernel log lines into distinct problems, each with a stable key
(kind and subject: the task, the CPU, the memory bank), so a line the kernel repeats every two
minutes is one problem. The ``kernel_log`` check alerts on them in the running boot; the boot
classifier names them as hints when the previous boot ended without a record.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, Dict, Iterable, List, Optional, Pattern, Tuple

from monagent.api import Status


@dataclass(frozen=True)
class Problem:
    kind: str  # hung_task, soft_lockup, hard_lockup, rcu_stall, mce, oom_panic, watchdog, thermal
    subject: str  # what it is about (a task, a CPU, a bank); may be empty
    summary: str
    severity: Status
    line: str  # the first line that showed it
    count: int = 1


# kind, pattern, severity, (summary, subject) from the match
_Rule = Tuple[str, Pattern[str], Status, Callable[["re.Match[str]"], Tuple[str, str]]]

_RULES: List[_Rule] = [
    (
        "hung_task",
        re.compile(r"INFO: task (?P<comm>.+?):(?P<pid>\d+) blocked for more than (?P<secs>\d+) seconds"),
        Status.WARNING,
        lambda m: (f"hung task: {m['comm']} (pid {m['pid']}) blocked for more than {m['secs']} s", m["comm"]),
    ),
    (
        "soft_lockup",
        re.compile(r"soft lockup - CPU#(?P<cpu>\d+) stuck for (?P<secs>\d+)s!(?: \[(?P<comm>.+?):(?P<pid>\d+)\])?"),
        Status.CRITICAL,
        lambda m: (
            f"soft lockup: CPU#{m['cpu']} stuck for {m['secs']} s" + (f" in {m['comm']} (pid {m['pid']})" if m["comm"] else ""),
            m["comm"] or f"CPU#{m['cpu']}",
        ),
    ),
    (
        "hard_lockup",
        re.compile(r"(?:Watchdog detected hard LOCKUP on cpu (?P<cpu>\d+)|NMI watchdog: .*hard LOCKUP)"),
        Status.CRITICAL,
        lambda m: (f"hard lockup on CPU {m['cpu']}" if m["cpu"] else "hard lockup", m["cpu"] or ""),
    ),
    (
        "rcu_stall",
        re.compile(r"rcu: INFO: (?P<flavour>rcu_\w+) detected (?:stalls|expedited stalls)"),
        Status.WARNING,
        lambda m: (f"RCU stall ({m['flavour']} detected stalls on CPUs/tasks)", m["flavour"]),
    ),
    (
        "mce",
        re.compile(
            r"(?:mce: \[Hardware Error\]: (?:CPU (?P<cpu>\d+): )?Machine Check(?: Exception)?:?(?:.*?Bank (?P<bank>\d+))?"
            r"|Machine check events logged|\[Hardware Error\]: (?:event severity: (?P<sev>\w+)|.*[Uu]ncorrected)"
            r"|EDAC \S+: (?P<edac>\d+) (?P<edac_kind>UE|CE) )"
        ),
        Status.WARNING,
        lambda m: (
            "hardware error (machine check"
            + (f", CPU {m['cpu']}" if m["cpu"] else "")
            + (f", bank {m['bank']}" if m["bank"] else "")
            + (f", EDAC {m['edac_kind']}" if m["edac_kind"] else "")
            + (f", {m['sev']}" if m["sev"] else "")
            + ")",
            m["bank"] or m["edac_kind"] or m["sev"] or "",
        ),
    ),
    (
        "oom_panic",
        re.compile(r"Kernel panic - not syncing: (?P<why>(?:System is deadlocked on memory|Out of memory.*))"),
        Status.CRITICAL,
        lambda m: (f"out-of-memory panic: {m['why']}", ""),
    ),
    (
        "watchdog",
        re.compile(
            r"(?P<text>(?:softdog|iTCO_wdt|watchdog\d*): .*(?:[Ii]nitiating system reboot|did not stop|expired)"
            r"|Watchdog timer expired.*)"
        ),
        Status.CRITICAL,
        lambda m: (f"watchdog: {m['text']}", ""),
    ),
    (
        "thermal",
        re.compile(
            r"(?P<text>CPU\d+: (?:Core|Package) temperature (?:above threshold|.*throttled).*"
            r"|[Cc]ritical temperature reached.*|thermal \S+: critical temperature reached.*)"
        ),
        Status.WARNING,
        lambda m: (f"thermal: {m['text']}", ""),
    ),
]

_UNCORRECTED = re.compile(r"(?i)uncorrect|\bUE\b|fatal|severity: (?:fatal|recoverable)")


def match_line(line: str) -> Optional[Problem]:
    for kind, pattern, severity, describe in _RULES:
        found = pattern.search(line)
        if found is None:
            continue
        summary, subject = describe(found)
        level = Status.CRITICAL if kind == "mce" and _UNCORRECTED.search(line) else severity
        return Problem(kind, subject.strip(), summary, level, line.strip())
    return None


def find_problems(lines: Iterable[str]) -> List[Problem]:
    """Distinct problems in order of first appearance; repeats only raise ``count``."""
    found: Dict[Tuple[str, str], Problem] = {}
    for line in lines:
        problem = match_line(line)
        if problem is None:
            continue
        key = (problem.kind, problem.subject)
        before = found.get(key)
        if before is None:
            found[key] = problem
        else:
            found[key] = Problem(
                before.kind, before.subject, before.summary, max(before.severity, problem.severity), before.line, before.count + 1
            )
    return list(found.values())
