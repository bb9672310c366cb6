"""What ``monagent status`` lists: alerts that are not inactive, and checks failing now."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Iterator, List, Tuple

import pytest
from alerting_helpers import Clock, config, open_pipeline, run, value

from monagent.alerting.pipeline import AlertPipeline
from monagent.alerting.status import gather
from monagent.api import Result, Status
from monagent.commands.alerts import render_status

DISKS = """
[checks.disks]
type = "disk"
[checks.disks.alerting]
fire_after_cycles = 1
"""

DENIED = "statvfs /: permission denied"


@pytest.fixture
def agent(tmp_path: Path) -> Iterator[Tuple[AlertPipeline, Clock]]:
    clock = Clock()
    pipeline = open_pipeline(config(tmp_path, DISKS), clock)
    try:
        yield pipeline, clock
    finally:
        pipeline.store.close()


def observe(agent: Tuple[AlertPipeline, Clock], *results: Result, error: str = "") -> Dict[str, Any]:
    pipeline, clock = agent
    now, mono = clock.step()
    pipeline.observe([run("disks", *results, check_type="disk", error=error)], now, mono)
    return gather(pipeline.config, pipeline.store, now, running=True)


def section(data: Dict[str, Any], title: str) -> List[str]:
    lines = render_status(data)
    start = lines.index(title) + 1
    return lines[start : lines.index("", start)]


def cannot_judge() -> Result:
    return Result(subject="/", status=Status.UNKNOWN, reason=DENIED)


def used(percent: float) -> Result:
    return value(percent, subject="/", metric="used_percent", unit="%")


def test_a_subject_the_check_cannot_judge_shows_as_failing_not_as_an_inactive_alert(agent) -> None:
    data = observe(agent, cannot_judge())
    assert data["alerts"] == []
    assert section(data, "Alerts:") == ["  none"]
    assert section(data, "Checks failing:") == [f"  disks /: 1 run in a row without a verdict (alerts after 3): {DENIED}"]


def test_the_failing_streak_ends_when_later_runs_report_only_metrics(agent) -> None:
    observe(agent, cannot_judge())
    observe(agent, cannot_judge())
    data = observe(agent, used(40))
    assert data["alerts"] == [] and data["failing"] == []
    assert section(data, "Alerts:") == ["  none"]
    assert section(data, "Checks failing:") == ["  none"]


def test_a_failing_streak_long_enough_to_alert_is_listed_as_alerting(agent) -> None:
    for _ in range(2):
        observe(agent, cannot_judge())
    data = observe(agent, cannot_judge())
    assert [(row["key"], row["phase"], row["severity"]) for row in data["alerts"]] == [("disks / #unknown", "firing", "warning")]
    assert section(data, "Checks failing:") == [f"  disks /: 3 runs in a row without a verdict (alerting): {DENIED}"]


def test_a_firing_alert_of_a_check_that_stopped_running_says_the_check_is_failing(agent) -> None:
    observe(agent, used(97))
    data = observe(agent, error="timed out after 10s")
    (row,) = data["alerts"]
    assert (row["key"], row["unknown_streak"]) == ("disks / used_percent", 1)
    (line,) = section(data, "Alerts:")
    assert line.startswith("  FIRING    critical disks / used_percent  97% (>= 95%)  since ")
    assert line.endswith("  [check failing: 1 run in a row without a verdict]")
    assert section(data, "Checks failing:") == ["  disks: 1 run in a row without a verdict (alerts after 3): timed out after 10s"]
    data = observe(agent, used(97))
    assert data["alerts"][0]["unknown_streak"] == 0 and data["failing"] == []
