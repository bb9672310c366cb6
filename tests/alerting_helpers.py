"""Shared helpers of the alerting tests: a config with in-test check types, runs, a pipeline."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Dict, List, Mapping, Optional, Sequence

from harness import FakeClock

from monagent.alerting.outbox import EventOutbox
from monagent.alerting.pipeline import AlertPipeline
from monagent.api import Check, Context, Direction, Metric, MetricSpec, Occurrence, Result, Status
from monagent.checkrun import CheckRun
from monagent.config import Config, loads
from monagent.events import Event
from monagent.store import Store


class Gauge(Check):
    metrics: ClassVar[Mapping[str, MetricSpec]] = {"value": MetricSpec(warning=80, critical=90)}

    def run(self, ctx: Context) -> Result:
        return Result()


class Disk(Check):
    metrics: ClassVar[Mapping[str, MetricSpec]] = {
        "used_percent": MetricSpec(unit="%", warning=85, critical=95),
        "inodes_percent": MetricSpec(unit="%", warning=85, critical=95),
        "read_only": MetricSpec(critical=1),
    }

    def run(self, ctx: Context) -> Result:
        return Result()


class Count(Check):
    metrics: ClassVar[Mapping[str, MetricSpec]] = {"count": MetricSpec(critical=1, direction=Direction.BELOW)}

    def run(self, ctx: Context) -> Result:
        return Result()


class Verdict(Check):
    metrics = None

    def run(self, ctx: Context) -> Result:
        return Result()


class Registry:
    types: ClassVar[Dict[str, type]] = {
        "gauge": Gauge,
        "disk": Disk,
        "count": Count,
        "verdict": Verdict,
        "kdump": Verdict,
    }

    def resolve(self, type_name: str, section: Optional[object] = None) -> type:
        return self.types[type_name]


BASE = """
[agent]
hostname = "web01"
state_dir = "{state}"
runtime_dir = "{runtime}"
plugin_dirs = []

[alerting]
"""


def config(tmp_path: Path, extra: str = "", alerting: str = "", base: str = BASE, grace: bool = False) -> Config:
    """A config with the in-test check types; ``alerting`` lines go into ``[alerting]``.

    Startup grace is off unless ``grace`` (the default grace) or ``alerting`` sets it."""
    if "startup_grace" not in alerting and not grace:
        alerting = 'startup_grace = "0"\n' + alerting
    text = base.format(state=tmp_path / "state", runtime=tmp_path / "run") + alerting + "\n" + extra
    return loads(text, str(tmp_path / "agent.toml"), environ={}, registry=Registry())  # type: ignore[arg-type]


def run(check: str, *results: Result, check_type: str = "gauge", time: float = 0.0, error: str = "") -> CheckRun:
    return CheckRun(check, check_type, time, 0.01, tuple(results), error)


def value(v: float, subject: str = "", metric: str = "value", unit: str = "", discovered: bool = False) -> Result:
    return Result(subject=subject, metrics=(Metric(metric, v, unit),), discovered=discovered)


def verdict(status: Status, reason: str = "", subject: str = "") -> Result:
    return Result(subject=subject, status=status, reason=reason)


def occurrences(*items: Occurrence, subject: str = "/var/crash") -> Result:
    return Result(subject=subject, occurrences=items)


Clock = FakeClock  # the one fake clock (tests/harness.py); the pipeline tests call it Clock


def open_pipeline(cfg: Config, clock: Clock, boot_id: str = "boot-1", store: Optional[Store] = None) -> AlertPipeline:
    store = store or Store.open(cfg.agent.state_dir)
    return AlertPipeline(cfg, store, now=clock.wall, monotonic=clock.mono, boot_id=boot_id)


def outbox(store: Store, receiver: str = "console") -> List[Event]:
    """The events queued for ``receiver``, read as the agent's delivery reads them."""
    return [e.event for e in EventOutbox(store).pending(receiver, float("inf"))]


def drain(store: Store, receiver: str = "console") -> List[str]:
    """Everything queued for ``receiver`` as console lines, then marked delivered."""
    from monagent.notify.console import format_line

    entries = EventOutbox(store).pending(receiver, float("inf"))
    store.complete(receiver, [e.seq for e in entries])
    return [format_line(e.event) for e in entries]


def feed(pipeline: AlertPipeline, clock: Clock, check: str, values: Sequence[float], **kw: object) -> Dict[str, int]:
    counts: Dict[str, int] = {}
    for v in values:
        now, mono = clock.step()
        counts[str(v)] = pipeline.observe([run(check, value(v, **kw))], now, mono)  # type: ignore[arg-type]
    return counts
