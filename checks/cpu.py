"""CPU utilisation, iowait and steal over the interval, and load average per core.

The check keeps the previous CPU-times sample on the instance and computes the
deltas itself (psutil's ``cpu_percent`` keeps its baseline per thread, so a check
run by a thread pool would read a fake 0). The first run has no baseline: its
percentages have no value ("warming up"), never a fake 0.
"""

from __future__ import annotations

from typing import Any, ClassVar, Dict, Optional, Tuple

from monagent.api import Check, CheckError, Context, Metric, MetricSpec, Result, joined


def _fields(times: Any) -> Tuple[float, float, float, float]:
    """(total, idle incl. iowait, iowait, steal) in seconds; guest time is already in user/nice."""
    total = sum(times) - getattr(times, "guest", 0.0) - getattr(times, "guest_nice", 0.0)
    iowait = getattr(times, "iowait", 0.0)
    return total, times.idle + iowait, iowait, getattr(times, "steal", 0.0)


def read_loadavg(ctx: Context) -> Tuple[float, float, float]:
    try:
        text = (ctx.proc_root / "loadavg").read_text(encoding="utf-8")
        one, five, fifteen = (float(v) for v in text.split()[:3])
    except (OSError, ValueError) as exc:
        raise CheckError(CpuCheck.text("cpu.no_loadavg", path=f"{ctx.proc_root}/loadavg", error=str(exc))) from None
    return one, five, fifteen


def cpu_count(ctx: Context) -> int:
    """Online CPUs from the context when it knows them, else from /proc/stat's per-CPU lines."""
    counter = getattr(ctx, "cpu_count", None)
    if counter is not None:
        return int(counter())
    text = (ctx.proc_root / "stat").read_text(encoding="utf-8", errors="replace")
    return max(1, sum(1 for line in text.splitlines() if line.startswith("cpu") and not line.startswith("cpu ")))


class CpuCheck(Check):
    """Utilisation, iowait and steal percent over the interval; load1/5/15 divided by the CPU count."""

    interval = 30.0
    non_blocking = True
    timeout = 10.0
    warmup = 1.0  # `monagent check`: a baseline run this long before the reported one
    metrics: ClassVar[Dict[str, MetricSpec]] = {
        "used_percent": MetricSpec(
            unit="%",
            description="CPU busy time (everything but idle and iowait)",
            warning=90,
            critical=98,
            minimum=0,
            maximum=100,
        ),
        "iowait_percent": MetricSpec(unit="%", description="CPU time waiting for I/O", minimum=0, maximum=100),
        "steal_percent": MetricSpec(unit="%", description="CPU time taken by the hypervisor", minimum=0, maximum=100),
        "load1_per_core": MetricSpec(description="1-minute load average divided by the CPU count", minimum=0),
        "load5_per_core": MetricSpec(description="5-minute load average divided by the CPU count", minimum=0),
        "load15_per_core": MetricSpec(
            description="15-minute load average divided by the CPU count", warning=2, critical=4, minimum=0
        ),
    }

    texts: ClassVar[Dict[str, Dict[str, str]]] = {
        "cpu.warming_up": {"en": "warming up", "zh": "正在采集基线"},
        "cpu.no_loadavg": {"en": "cannot read {path}: {error}", "zh": "无法读取 {path}：{error}"},
        "cpu.usage": {
            "en": "{used:%} used, iowait {iowait:%}, steal {steal:%}",
            "zh": "CPU 使用率 {used:%}，iowait {iowait:%}，steal {steal:%}",
        },
        "cpu.load": {
            "en": "load per core {load1:num} {load5:num} {load15:num} ({cores} CPUs)",
            "zh": "每核负载 {load1:num} {load5:num} {load15:num}（共 {cores} 个 CPU）",
        },
        "fact.cpus": {"en": "CPUs", "zh": "CPU 数"},
    }

    def __init__(self) -> None:
        self._previous: Optional[Tuple[float, float, float, float]] = None

    def run(self, ctx: Context) -> Result:
        current = _fields(ctx.cpu_times())
        used = iowait = steal = None
        previous, self._previous = self._previous, current
        if previous is not None:
            # CPU times can step backwards (psutil #1210): clamp every delta at zero.
            total, idle, wait, stolen = (max(0.0, now - before) for now, before in zip(current, previous))
            if total > 0:
                used = round(100.0 * max(0.0, total - idle) / total, 2)
                iowait = round(100.0 * min(wait, total) / total, 2)
                steal = round(100.0 * min(stolen, total) / total, 2)
        cores = cpu_count(ctx)
        loads = [round(v / cores, 3) for v in read_loadavg(ctx)]
        metrics = (
            Metric("used_percent", used, "%", 0, 100),
            Metric("iowait_percent", iowait, "%", 0, 100),
            Metric("steal_percent", steal, "%", 0, 100),
            Metric("load1_per_core", loads[0]),
            Metric("load5_per_core", loads[1]),
            Metric("load15_per_core", loads[2]),
        )
        if used is None or iowait is None or steal is None:
            head = self.text("cpu.warming_up")
        else:
            head = self.text("cpu.usage", used=round(used), iowait=round(iowait), steal=round(steal))
        load = self.text("cpu.load", load1=round(loads[0], 2), load5=round(loads[1], 2), load15=round(loads[2], 2), cores=cores)
        return Result(metrics=metrics, reason=joined(head, load), facts={"cpus": cores})
