"""Kernel log lines that announce trouble: hung tasks, lockups, RCU stalls, machine checks, OOM
panics, watchdogs, thermal trips.

:func:`find_problems` turns kernel log lines into distinct problems, each with a stable key
(kind and subject: the task, the CPU, the memory bank), so a line the kernel repeats every two
minutes is one problem. The ``kernel_log`` check alerts on them in the running boot; the boot
classifier names them as hints when the previous boot ended without a record.
"""

from __future__ import annotations

import functools
import re
from typing import Callable, Dict, Iterable, List, NamedTuple, Optional, Pattern, Tuple

from monagent.api import Formatter, Status, Text

TEXTS: Dict[str, Dict[str, str]] = {
    "kernel_log.hung_task": {
        "en": "hung task: {comm} (pid {pid}) blocked for more than {secs:duration}",
        "zh": "任务挂起：{comm}（pid {pid}）阻塞超过 {secs:duration}",
    },
    "kernel_log.soft_lockup": {
        "en": "soft lockup: CPU#{cpu} stuck for {secs:duration}",
        "zh": "软锁死：CPU#{cpu} 卡住 {secs:duration}",
    },
    "kernel_log.soft_lockup_in": {
        "en": "soft lockup: CPU#{cpu} stuck for {secs:duration} in {comm} (pid {pid})",
        "zh": "软锁死：CPU#{cpu} 在 {comm}（pid {pid}）中卡住 {secs:duration}",
    },
    "kernel_log.hard_lockup": {"en": "hard lockup", "zh": "硬锁死"},
    "kernel_log.hard_lockup_on": {"en": "hard lockup on CPU {cpu}", "zh": "CPU {cpu} 硬锁死"},
    "kernel_log.rcu_stall": {
        "en": "RCU stall ({flavour} detected stalls on CPUs/tasks)",
        "zh": "RCU 停顿（{flavour} 检测到 CPU 或任务停顿）",
    },
    "kernel_log.mce": {"en": "hardware error (machine check)", "zh": "硬件错误（机器检查异常）"},
    "kernel_log.mce_at": {"en": "hardware error (machine check: {items:list})", "zh": "硬件错误（机器检查异常：{items:list}）"},
    "kernel_log.mce.cpu": {"en": "CPU {cpu}", "zh": "CPU {cpu}"},
    "kernel_log.mce.bank": {"en": "bank {bank}", "zh": "bank {bank}"},
    "kernel_log.mce.edac": {"en": "EDAC {kind}", "zh": "EDAC {kind}"},
    "kernel_log.mce.severity": {"en": "severity {sev}", "zh": "严重程度 {sev}"},
    "kernel_log.oom_panic": {"en": "out-of-memory panic: {why}", "zh": "内存耗尽导致内核恐慌：{why}"},
    "kernel_log.watchdog": {"en": "watchdog: {line}", "zh": "看门狗：{line}"},
    "kernel_log.thermal": {"en": "thermal: {line}", "zh": "过热：{line}"},
}
"""The problems' texts (the kernel_log check ships them; the boot classifier uses them as hints)."""


def said(message_id: str, **args: object) -> Text:
    return Text(message_id, args, TEXTS[message_id])


_ENGLISH = Formatter("en")


class Problem(NamedTuple):  # a named tuple: a dataclass costs ~1 ms of every start-up (#17)
    kind: str  # hung_task, soft_lockup, hard_lockup, rcu_stall, mce, oom_panic, watchdog, thermal
    subject: str  # what it is about (a task, a CPU, a bank); may be empty
    reason: Text  # what it is, in words (kernel text inside it as the kernel wrote it)
    severity: Status
    line: str  # the first line that showed it
    seen: int = 1  # how many lines showed it

    @property
    def summary(self) -> str:
        """The reason in English, for logs."""
        return _ENGLISH.text(self.reason)


# kind, pattern, severity, (reason, subject) from the match
_Rule = Tuple[str, Pattern[str], Status, Callable[["re.Match[str]"], Tuple[Text, str]]]


def _mce(m: re.Match[str]) -> Tuple[Text, str]:
    items = []
    if m["cpu"]:
        items.append(said("kernel_log.mce.cpu", cpu=m["cpu"]))
    if m["bank"]:
        items.append(said("kernel_log.mce.bank", bank=m["bank"]))
    if m["edac_kind"]:
        items.append(said("kernel_log.mce.edac", kind=m["edac_kind"]))
    if m["sev"]:
        items.append(said("kernel_log.mce.severity", sev=m["sev"]))
    reason = said("kernel_log.mce_at", items=tuple(items)) if items else said("kernel_log.mce")
    return reason, m["bank"] or m["edac_kind"] or m["sev"] or ""


@functools.cache
def _rules() -> List[_Rule]:
    """The rules, compiled at the first line matched: compiling them costs ~2 ms that ``monagent validate``
    and every start-up would pay for nothing (#17)."""
    return [
        (
            "hung_task",
            re.compile(r"INFO: task (?P<comm>.+?):(?P<pid>\d+) blocked for more than (?P<secs>\d+) seconds"),
            Status.WARNING,
            lambda m: (said("kernel_log.hung_task", comm=m["comm"], pid=m["pid"], secs=int(m["secs"])), m["comm"]),
        ),
        (
            "soft_lockup",
            re.compile(r"soft lockup - CPU#(?P<cpu>\d+) stuck for (?P<secs>\d+)s!(?: \[(?P<comm>.+?):(?P<pid>\d+)\])?"),
            Status.CRITICAL,
            lambda m: (
                said("kernel_log.soft_lockup_in", cpu=m["cpu"], secs=int(m["secs"]), comm=m["comm"], pid=m["pid"])
                if m["comm"]
                else said("kernel_log.soft_lockup", cpu=m["cpu"], secs=int(m["secs"])),
                m["comm"] or f"CPU#{m['cpu']}",
            ),
        ),
        (
            "hard_lockup",
            re.compile(r"(?:Watchdog detected hard LOCKUP on cpu (?P<cpu>\d+)|NMI watchdog: .*hard LOCKUP)"),
            Status.CRITICAL,
            lambda m: (
                said("kernel_log.hard_lockup_on", cpu=m["cpu"]) if m["cpu"] else said("kernel_log.hard_lockup"),
                m["cpu"] or "",
            ),
        ),
        (
            "rcu_stall",
            re.compile(r"rcu: INFO: (?P<flavour>rcu_\w+) detected (?:stalls|expedited stalls)"),
            Status.WARNING,
            lambda m: (said("kernel_log.rcu_stall", flavour=m["flavour"]), m["flavour"]),
        ),
        (
            "mce",
            re.compile(
                r"(?:mce: \[Hardware Error\]: (?:CPU (?P<cpu>\d+): )?Machine Check(?: Exception)?:?(?:.*?Bank (?P<bank>\d+))?"
                r"|Machine check events logged|\[Hardware Error\]: (?:event severity: (?P<sev>\w+)|.*[Uu]ncorrected)"
                r"|EDAC \S+: (?P<edac>\d+) (?P<edac_kind>UE|CE) )"
            ),
            Status.WARNING,
            _mce,
        ),
        (
            "oom_panic",
            re.compile(r"Kernel panic - not syncing: (?P<why>(?:System is deadlocked on memory|Out of memory.*))"),
            Status.CRITICAL,
            lambda m: (said("kernel_log.oom_panic", why=m["why"]), ""),
        ),
        (
            "watchdog",
            re.compile(
                r"(?P<text>(?:softdog|iTCO_wdt|watchdog\d*): .*(?:[Ii]nitiating system reboot|did not stop|expired)"
                r"|Watchdog timer expired.*)"
            ),
            Status.CRITICAL,
            lambda m: (said("kernel_log.watchdog", line=m["text"]), ""),
        ),
        (
            "thermal",
            re.compile(
                r"(?P<text>CPU\d+: (?:Core|Package) temperature (?:above threshold|.*throttled).*"
                r"|[Cc]ritical temperature reached.*|thermal \S+: critical temperature reached.*)"
            ),
            Status.WARNING,
            lambda m: (said("kernel_log.thermal", line=m["text"]), ""),
        ),
    ]


_UNCORRECTED = r"(?i)uncorrect|\bUE\b|fatal|severity: (?:fatal|recoverable)"  # compiled at first use (re's cache)


def match_line(line: str) -> Optional[Problem]:
    for kind, pattern, severity, describe in _rules():
        found = pattern.search(line)
        if found is None:
            continue
        reason, subject = describe(found)
        level = Status.CRITICAL if kind == "mce" and re.search(_UNCORRECTED, line) else severity
        return Problem(kind, subject.strip(), reason, level, line.strip())
    return None


def find_problems(lines: Iterable[str]) -> List[Problem]:
    """Distinct problems in order of first appearance; repeats only raise ``seen``."""
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
                before.kind, before.subject, before.reason, max(before.severity, problem.severity), before.line, before.seen + 1
            )
    return list(found.values())
