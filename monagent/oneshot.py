"""One-shot judgement of results against thresholds, without history (``monagent check``).

The running agent judges through the alert state machine, with hysteresis and
confirmation; this is the plain comparison docs/design/decisions.md section 2 prescribes for
one-shot use, and what the Nagios output and the metrics' status use.
"""

from __future__ import annotations

from typing import Mapping, Optional, Sequence, Tuple

from monagent.api import Metric, Result, Status, Threshold, worst
from monagent.formatting import Formatter
from monagent.records import record
from monagent.wording import ENGLISH, describe


@record
class MetricVerdict:
    metric: Metric
    status: Status
    threshold: Optional[Threshold]

    def describe(self, fmt: Formatter = ENGLISH) -> str:
        """``used_percent 93% (>= 90%)``, or just the value when within limits."""
        if self.metric.value is None:
            return f"{self.metric.name} {fmt.say('value.none')}"
        limit = None
        if self.threshold is not None and self.status in (Status.WARNING, Status.CRITICAL):
            limit = self.threshold.limit_for(self.status)
        operator = self.threshold.operator if self.threshold is not None else ""
        metric = self.metric
        text = describe(fmt, metric=metric.name, value=metric.value, unit=metric.unit, operator=operator, limit=limit)
        return f"{self.metric.name} {text}"


@record
class Judged:
    result: Result
    status: Status
    metrics: Tuple[MetricVerdict, ...]

    @property
    def summary(self) -> str:
        return self.summary_in(ENGLISH)

    def summary_in(self, fmt: Formatter) -> str:
        bad = [m.describe(fmt) for m in self.metrics if m.status != Status.OK]
        if self.result.reason:
            return fmt.say("list.clause_sep").join([fmt.text(self.result.reason), *bad])
        shown = bad or [m.describe(fmt) for m in self.metrics]
        return fmt.say("list.sep").join(shown)

    def occurrences_in(self, fmt: Formatter) -> Tuple[str, ...]:
        """What each occurrence says, in ``fmt``'s language (its English summary without a reason)."""
        return tuple(fmt.text(o.reason) if o.reason else o.summary for o in self.result.occurrences)


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
