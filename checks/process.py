"""One process rule: how many processes match, their largest CPU and RSS, their zombies.

A rule matches by ``name`` (the kernel's comm, exact), ``cmdline`` (a regular
expression searched in the space-joined argv), ``user`` and ``pidfile``; all given
criteria must hold. The process table comes from the cycle's context, read once for
every rule; a command line is read only for processes that pass the cheaper criteria, and
the state, CPU and RSS (/proc/PID/stat) only for the processes that match.
"""

from __future__ import annotations

import os
import pwd
import re
from typing import ClassVar, Dict, List, Optional, Tuple, Union

from monagent.api import Check, CheckError, Context, Metric, MetricSpec, ProcessInfo, Result, Status, Text, joined

COMM_LEN = 15  # the kernel keeps the first 15 bytes of a program name (TASK_COMM_LEN - 1)


class ProcessCheck(Check):
    """Count the processes of one rule against min/max, report their max CPU, max RSS and zombies."""

    interval = 30.0
    non_blocking = True
    timeout = 10.0
    warmup = 1.0  # `monagent check`: a baseline run this long before the reported one (cpu_percent)
    metrics: ClassVar[Dict[str, MetricSpec]] = {
        "count": MetricSpec(description="matching processes, zombies excluded", minimum=0),
        "cpu_percent": MetricSpec(
            unit="%",
            description="highest CPU use of one matching process over the interval (100 = one core, as top shows it)",
            minimum=0,
        ),
        "rss_bytes": MetricSpec(unit="B", description="largest resident memory of one matching process", minimum=0),
        "zombies": MetricSpec(description="matching processes that are zombies (exited, not reaped)", minimum=0),
    }
    texts: ClassVar[Dict[str, Dict[str, str]]] = {
        "process.running": {"en": "{n} running", "zh": "运行中 {n} 个"},
        "process.expected_min": {"en": "{n} running, expected at least {min}", "zh": "运行中 {n} 个，至少应有 {min} 个"},
        "process.expected_max": {"en": "{n} running, expected at most {max}", "zh": "运行中 {n} 个，至多应有 {max} 个"},
        "process.zombies": {"en": "{n} zombie{n:s}", "zh": "僵尸进程 {n} 个"},
        "process.hidden": {
            "en": "{n} running, but other users' processes are hidden from the agent (/proc mounted with hidepid=)",
            "zh": "运行中 {n} 个，但 agent 看不到其他用户的进程（/proc 挂载时用了 hidepid=）",
        },
        "process.pidfile_unreadable": {
            "en": "cannot read pidfile {pidfile}: {error}",
            "zh": "无法读取 pid 文件 {pidfile}：{error}",
        },
        "process.no_user": {"en": 'user "{user}" does not exist', "zh": "用户“{user}”不存在"},
        "process.pidfile_missing": {"en": "pidfile {pidfile} not found", "zh": "找不到 pid 文件 {pidfile}"},
        "process.pidfile_empty": {"en": "pidfile {pidfile} holds no pid", "zh": "pid 文件 {pidfile} 里没有 pid"},
        "process.pidfile_stale": {
            "en": "pidfile {pidfile} names pid {pid}, which is not running",
            "zh": "pid 文件 {pidfile} 记录的进程 {pid} 已不在运行",
        },
        "process.max_cpu": {"en": "max CPU {cpu:%} (pid {pid})", "zh": "CPU 最高 {cpu:%}（pid {pid}）"},
        "process.max_rss": {"en": "max RSS {rss:bytes} (pid {pid})", "zh": "常驻内存最高 {rss:bytes}（pid {pid}）"},
        "fact.pids": {"en": "pids", "zh": "pid"},
    }

    def __init__(
        self,
        *,
        name: Optional[str] = None,
        cmdline: Optional[str] = None,
        user: Optional[str] = None,
        pidfile: Optional[str] = None,
        min_count: int = 1,
        max_count: Optional[int] = None,
        label: Optional[str] = None,
    ) -> None:
        if not (name or cmdline or user or pidfile):
            raise ValueError("a process rule needs at least one of name, cmdline, user, pidfile")
        if min_count < 0 or (max_count is not None and max_count < min_count):
            raise ValueError(f"min_count must be >= 0 and max_count >= min_count, got {min_count} and {max_count}")
        try:
            self.pattern = re.compile(cmdline) if cmdline else None
        except re.error as exc:
            raise ValueError(f"cmdline: invalid regular expression {cmdline!r}: {exc}") from None
        self.name = name
        self.user = user
        self.pidfile = pidfile
        self.min_count = min_count
        self.max_count = max_count
        self.label = label or name or pidfile or cmdline or f"user {user}"
        self._uid: Optional[int] = None
        self._cpu: Dict[Tuple[int, int], Tuple[float, float]] = {}  # (pid, started) -> (cpu seconds, when)

    def run(self, ctx: Context) -> Result:
        note: Union[Text, str] = ""
        wanted_pid = None
        if self.pidfile:
            wanted_pid, note = self._read_pidfile()
        uid = self._resolve_uid() if self.user else None
        matches = [] if self.pidfile and wanted_pid is None else self._match(ctx, uid, wanted_pid)
        # The first look at a row's state reads its /proc/PID/stat; "X" is dead, or gone since the scan.
        matches = [p for p in matches if p.state != "X"]
        if self.pidfile and wanted_pid is not None and not matches:
            note = self.text("process.pidfile_stale", pidfile=self.pidfile, pid=wanted_pid)
        running = [p for p in matches if p.state != "Z"]
        zombies = len(matches) - len(running)
        cpu, rss = self._usage(ctx.monotonic, running)
        status, verdict = self._verdict(ctx, len(running))
        details: List[Union[Text, str]] = []
        if cpu is not None:
            details.append(self.text("process.max_cpu", cpu=round(cpu[0]), pid=cpu[1]))
        if rss is not None and rss[0] > 0:
            details.append(self.text("process.max_rss", rss=rss[0], pid=rss[1]))
        if zombies:
            details.append(self.text("process.zombies", n=zombies))
        if note:
            details.append(note)
        metrics = (
            Metric("count", len(running)),
            Metric("cpu_percent", cpu[0] if cpu else None, "%", 0),
            Metric("rss_bytes", rss[0] if rss else None, "B", 0),
            Metric("zombies", zombies),
        )
        pids = sorted(p.pid for p in running)
        facts = {"pids": ", ".join(map(str, pids[:10])) + (" ..." if len(pids) > 10 else "")}
        reason = joined(verdict, *details) if details else verdict
        return Result(subject=self.label, metrics=metrics, status=status, reason=reason, facts=facts if running else {})

    def _verdict(self, ctx: Context, count: int) -> Tuple[Status, Text]:
        # messages show it after the subject: "nginx: 0 running, expected at least 1"
        if count < self.min_count:
            if os.geteuid() != 0 and not any(p.pid == 1 for p in ctx.processes()):
                return Status.UNKNOWN, self.text("process.hidden", n=count)
            return Status.CRITICAL, self.text("process.expected_min", n=count, min=self.min_count)
        if self.max_count is not None and count > self.max_count:
            return Status.CRITICAL, self.text("process.expected_max", n=count, max=self.max_count)
        return Status.OK, self.text("process.running", n=count)

    def _match(self, ctx: Context, uid: Optional[int], wanted_pid: Optional[int]) -> List[ProcessInfo]:
        own = os.getpid()
        name = self.name
        short = name[:COMM_LEN] if name else None
        found = []
        for p in ctx.processes():
            if p.pid == own or (wanted_pid is not None and p.pid != wanted_pid):
                continue
            if short is not None and p.comm != short:
                continue
            if uid is not None and p.uid != uid:
                continue
            if name is not None and len(name) > COMM_LEN and not self._long_name(ctx, p.pid, name):
                continue
            if self.pattern is not None and not self.pattern.search(" ".join(ctx.cmdline(p.pid))):
                continue
            found.append(p)
        return found

    @staticmethod
    def _long_name(ctx: Context, pid: int, name: str) -> bool:
        """comm holds only 15 bytes of a longer name: confirm it with argv[0]'s base name."""
        argv = ctx.cmdline(pid)
        if not argv:
            return True  # a zombie or a process that just exited: comm is all there is
        first = argv[0]
        return os.path.basename(first) == name or os.path.basename(first.split(" ")[0]) == name

    def _usage(self, when: float, running: List[ProcessInfo]) -> Tuple[Optional[Tuple[float, int]], Optional[Tuple[int, int]]]:
        """(max CPU percent, pid) since the previous run and (max RSS, pid); CPU needs two samples."""
        previous, self._cpu = self._cpu, {}
        best_cpu: Optional[Tuple[float, int]] = None
        for p in running:
            key = (p.pid, p.started)
            self._cpu[key] = (p.cpu_seconds, when)
            before = previous.get(key)
            if before is None or when <= before[1]:
                continue
            percent = round(100.0 * max(0.0, p.cpu_seconds - before[0]) / (when - before[1]), 2)
            if best_cpu is None or percent > best_cpu[0]:
                best_cpu = (percent, p.pid)
        best_rss = max(((p.rss_bytes, p.pid) for p in running), default=None)
        return best_cpu, best_rss

    def _read_pidfile(self) -> Tuple[Optional[int], Union[Text, str]]:
        assert self.pidfile is not None
        try:
            with open(self.pidfile, encoding="utf-8", errors="replace") as handle:
                text = handle.read(64).strip()
        except FileNotFoundError:
            return None, self.text("process.pidfile_missing", pidfile=self.pidfile)
        except OSError as exc:
            raise CheckError(
                self.text("process.pidfile_unreadable", pidfile=self.pidfile, error=exc.strerror or str(exc))
            ) from None
        if not text.isdigit():
            return None, self.text("process.pidfile_empty", pidfile=self.pidfile)
        return int(text), ""

    def _resolve_uid(self) -> int:
        if self._uid is None:
            assert self.user is not None
            if self.user.isdigit():
                self._uid = int(self.user)
            else:
                try:
                    self._uid = pwd.getpwnam(self.user).pw_uid
                except KeyError:
                    raise CheckError(self.text("process.no_user", user=self.user)) from None
        return self._uid
