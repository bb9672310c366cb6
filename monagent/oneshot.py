"""One-shot judgement of results against thresholds, without history (``monagent check``).

The running agent judges through the alert state machine, with hysteresis and
confirmation; this is the plain comparison DECISIONS.md section 2 prescribes for
one-shot use, and what the Nagios output and the metrics' status use.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Optional, Sequence, Tuple

from monagent.api import Metric, Result, Status, Threshold, worst


@dataclass(frozen=True)
class MetricVerdict:
    metric: Metric
    status: Status
    threshold: Optional[Threshold]

    def describe(self) -> str:
        """``used_percent 93% (>= 90)``, or just the value when within limits."""
        text = f"{self.metric.name} {format_value(self.metric.value, self.metric.unit)}"
        if self.threshold is not None and self.status in (Status.WARNING, Status.CRITICAL):
            limit = self.threshold.limit_for(self.status)
            text += f" ({self.threshold.operator} {format_value(limit, self.metric.unit)})"
        return text


@dataclass(frozen=True)
class Judged:
    result: Result
    status: Status
    metrics: Tuple[MetricVerdict, ...]

    @property
    def summary(self) -> str:
        bad = [m.describe() for m in self.metrics if m.status != Status.OK]
        if self.result.reason:
            return "; ".join([self.result.reason, *bad])
        shown = bad or [m.describe() for m in self.metrics]
        return ", ".join(shown)


def judge(result: Result, thresholds: Mapping[str, Threshold]) -> Judged:
    verdicts = []
    for metric in result.metrics:
        threshold = thresholds.get(metric.name)
        if metric.value is None or threshold is None:
            status = Status.OK
        else:
            status = threshold.classify(metric.value)
        verdicts.append(MetricVerdict(metric, status, threshold))
    statuses = [v.status for v in verdicts]
    if result.status is not None:
        statuses.append(result.status)
    if result.occurrences:
        statuses.extend(o.severity for o in result.occurrences)
    return Judged(result, worst(statuses), tuple(verdicts))


def judge_all(results: Sequence[Result], thresholds: Mapping[str, Threshold]) -> Tuple[Judged, ...]:
    return tuple(judge(r, thresholds) for r in results)


def format_value(value: Optional[float], unit: str = "") -> str:
    if value is None:
        return "n/a"
    if unit == "B":
        return format_bytes(value)
    text = f"{value:.0f}" if float(value).is_integer() or abs(value) >= 100 else f"{value:.1f}"
    if unit in ("%",):
        return text + "%"
    if unit == "s":
        return text + "s"
    return f"{text} {unit}".rstrip()


def format_bytes(value: float) -> str:
    size = float(value)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(size) < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} PiB"  # pragma: no cover
