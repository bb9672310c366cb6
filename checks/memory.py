"""Available memory percent (what the kernel could hand out without swapping) and swap use.

Read from ``/proc/meminfo`` under the context's procfs root. ``MemAvailable`` is the
kernel's own estimate (Linux 3.14+); older kernels get MemFree + Buffers + Cached.
"""

from __future__ import annotations

import re
from typing import ClassVar, Dict

from monagent.api import Check, CheckError, Context, Direction, Fact, Metric, MetricSpec, Result, Text, joined

_FIELD = re.compile(r"^([^:\n]+):[ \t]*(\d+)( kB)?[ \t]*$", re.MULTILINE)  # "MemTotal:  16318612 kB"


def read_meminfo(ctx: Context) -> Dict[str, int]:
    """``/proc/meminfo`` in bytes, by field name."""
    path = ctx.proc_root / "meminfo"
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise CheckError(MemoryCheck.text("memory.unreadable", path=str(path), error=exc.strerror or str(exc))) from None
    values = {name: int(number) * (1024 if kb else 1) for name, number, kb in _FIELD.findall(text)}
    if "MemTotal" not in values:
        raise CheckError(MemoryCheck.text("memory.no_total", path=str(path)))
    return values


class MemoryCheck(Check):
    """Available memory percent (alerts when it gets low) and swap used percent."""

    interval = 30.0
    non_blocking = True
    timeout = 10.0
    metrics: ClassVar[Dict[str, MetricSpec]] = {
        "available_percent": MetricSpec(
            unit="%",
            description="memory available without swapping (MemAvailable)",
            warning=10,
            critical=5,
            direction=Direction.BELOW,
            minimum=0,
            maximum=100,
        ),
        "available_bytes": MetricSpec(unit="B", description="MemAvailable in bytes", direction=Direction.BELOW, minimum=0),
        "swap_used_percent": MetricSpec(
            unit="%", description="swap in use (no value when there is no swap)", minimum=0, maximum=100
        ),
    }

    texts: ClassVar[Dict[str, Dict[str, str]]] = {
        "memory.available": {
            "en": "{percent:%} available ({available:bytes} of {total:bytes})",
            "zh": "可用内存 {percent:%}（{total:bytes} 中可用 {available:bytes}）",
        },
        "memory.no_size": {"en": "no memory size reported", "zh": "内核没有报告内存总量"},
        "memory.unreadable": {"en": "cannot read {path}: {error}", "zh": "无法读取 {path}：{error}"},
        "memory.no_total": {"en": "{path} has no MemTotal line", "zh": "{path} 中没有 MemTotal 行"},
        "memory.swap": {"en": "swap {percent:%} used", "zh": "交换分区已用 {percent:%}"},
        "memory.no_swap": {"en": "no swap", "zh": "无交换分区"},
        "fact.total": {"en": "Memory", "zh": "内存总量"},
        "fact.swap_total": {"en": "Swap", "zh": "交换分区"},
    }

    def __init__(self) -> None:
        pass

    def run(self, ctx: Context) -> Result:
        info = read_meminfo(ctx)
        total = info["MemTotal"]
        available = info.get("MemAvailable")
        if available is None:  # Linux < 3.14
            available = info.get("MemFree", 0) + info.get("Buffers", 0) + info.get("Cached", 0)
        available_percent = round(100.0 * available / total, 2) if total else None
        swap_total = info.get("SwapTotal", 0)
        swap_used = swap_total - info.get("SwapFree", 0)
        swap_percent = round(100.0 * swap_used / swap_total, 2) if swap_total else None
        head: Text = (
            self.text("memory.available", percent=round(available_percent), available=available, total=total)
            if available_percent is not None
            else self.text("memory.no_size")
        )
        swap = self.text("memory.swap", percent=round(swap_percent)) if swap_percent is not None else self.text("memory.no_swap")
        facts: Dict[str, Fact] = {"total": total}
        if swap_total:
            facts["swap_total"] = swap_total
        metrics = (
            Metric("available_percent", available_percent, "%", 0, 100),
            Metric("available_bytes", available, "B", 0, total),
            Metric("swap_used_percent", swap_percent, "%", 0, 100),
        )
        return Result(
            metrics=metrics,
            reason=joined(head, swap),
            facts=facts,
        )
