"""From a check run's results to samples for alert keys (docs/design/decisions.md section 2).

- a metric with a threshold in the check's config: a value sample for ``(check, subject, metric)``;
- an explicit status: a verdict sample for ``(check, subject, "status")``; UNKNOWN keeps the last state;
- occurrences: passed on for the seen-set handling;
- a run that raised or timed out: UNKNOWN for every key of the check (the pipeline knows them).
"""

from __future__ import annotations

from dataclasses import field
from typing import Dict, FrozenSet, List, Mapping, Optional, Tuple

from monagent.api import Fact, Occurrence, Result, Status, Threshold
from monagent.checkrun import CheckRun
from monagent.events import AlertKey
from monagent.formatting import Words
from monagent.records import record

UNKNOWN_METRIC = "#unknown"
STATUS_METRIC = "status"


@record
class Sample:
    """One observation of one alert key; ``unknown`` samples carry no level."""

    key: AlertKey
    check_type: str
    value: Optional[float] = None
    threshold: Optional[Threshold] = None
    verdict: Optional[Status] = None
    unit: str = ""
    reason: Words = ""
    facts: Mapping[str, Fact] = field(default_factory=dict)
    details: str = ""
    discovered: bool = False

    @property
    def unknown(self) -> bool:
        return self.verdict == Status.UNKNOWN


@record
class Translation:
    samples: Tuple[Sample, ...]
    unknown_subjects: Mapping[str, Words]  # subject -> reason, for subjects the check could not judge ("": the run)
    reported: FrozenSet[str]  # subjects this run reported
    occurrences: Tuple[Tuple[str, Occurrence], ...]  # (subject, occurrence)
    failed: bool  # the whole run raised or timed out
    reason: Words = ""


def run_failed(run: CheckRun) -> bool:
    if run.error:
        return True
    if len(run.results) != 1:
        return False
    only = run.results[0]
    return only.status == Status.UNKNOWN and not only.subject and not only.metrics and not only.occurrences


def _failure_reason(run: CheckRun) -> Words:
    """Why the run gave no verdict: its UNKNOWN result's reason (a Text when the check gave one), else the error."""
    said = run.results[0].reason if len(run.results) == 1 and run.results[0].status == Status.UNKNOWN else ""
    return said or run.error or (run.results[0].reason if run.results else "") or "no result"


def translate(run: CheckRun, thresholds: Mapping[str, Threshold]) -> Translation:
    if run_failed(run):
        return Translation((), {"": _failure_reason(run)}, frozenset(), (), True, _failure_reason(run))
    samples: List[Sample] = []
    unknown: Dict[str, Words] = {}
    occurrences: List[Tuple[str, Occurrence]] = []
    for result in run.results:
        samples.extend(_metric_samples(run, result, thresholds))
        if result.status is not None:
            if result.status == Status.UNKNOWN:
                unknown[result.subject] = result.reason
            samples.append(
                Sample(
                    AlertKey(run.check, result.subject, STATUS_METRIC),
                    run.check_type,
                    verdict=result.status,
                    reason=result.reason,
                    facts=dict(result.facts),
                    details=result.details,
                    discovered=result.discovered,
                )
            )
        occurrences.extend((result.subject, o) for o in result.occurrences)
    reported = frozenset(r.subject for r in run.results)
    return Translation(tuple(samples), unknown, reported, tuple(occurrences), False)


def _metric_samples(run: CheckRun, result: Result, thresholds: Mapping[str, Threshold]) -> Tuple[Sample, ...]:
    samples: List[Sample] = []
    for metric in result.metrics:
        threshold = thresholds.get(metric.name)
        if threshold is None or metric.value is None:
            continue
        samples.append(
            Sample(
                AlertKey(run.check, result.subject, metric.name),
                run.check_type,
                value=float(metric.value),
                threshold=threshold,
                unit=metric.unit,
                reason=result.reason,
                facts=dict(result.facts),
                details=result.details,
                discovered=result.discovered,
            )
        )
    return tuple(samples)
