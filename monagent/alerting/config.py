"""The ``[alerting]`` defaults, per-check ``[checks.NAME.alerting]`` overrides,
``[[alerting.maintenance]]`` windows and ``[[alerting.inhibit]]`` rules (docs/design/alerting.md d.9).

Example::

    [alerting]
    fire_after_cycles = 3
    repeat_interval = { critical = "1h", warning = "0" }

    [[alerting.maintenance]]
    name = "nightly backup"
    weekdays = ["mon-fri"]
    times = ["02:00-04:00"]
    time_zone = "Asia/Shanghai"
    match = { check = "root_disk" }

    [[alerting.inhibit]]
    source = { metric = "read_only" }
    target = { metric = ["used_percent", "inodes_percent"] }
    equal = ["check", "subject"]
"""

from __future__ import annotations

import re
from dataclasses import field
from typing import Optional, Set, Tuple

from monagent.alerting.matchers import LABELS, Matcher
from monagent.api import Status
from monagent.confread import Section
from monagent.records import config_record

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@config_record
class AlertingOverrides:
    """The timing parameters of one check instance (defaults from ``[alerting]``)."""

    fire_after_cycles: int = 3
    fire_after: float = 0.0
    fire_window: Optional[Tuple[int, int]] = None  # (N, M): N bad samples among the last M
    clear_after_cycles: int = 2
    keep_firing_for: float = 0.0
    escalate_after_cycles: int = 1
    deescalate_after_cycles: Optional[int] = None  # None: = clear_after_cycles
    notify_deescalation: bool = True
    repeat_critical: float = 3600.0
    repeat_warning: float = 0.0
    max_reminders: int = 24
    unknown_after_cycles: int = 3
    flap_enabled: bool = True
    flap_low: float = 20.0
    flap_high: float = 30.0
    resolve_after_suppression: bool = True

    @property
    def deescalate_cycles(self) -> int:
        return self.clear_after_cycles if self.deescalate_after_cycles is None else self.deescalate_after_cycles

    def repeat_interval(self, severity: Status) -> float:
        return self.repeat_critical if severity == Status.CRITICAL else self.repeat_warning


@config_record
class TimeRange:
    start: int  # minutes after midnight, inclusive
    end: int  # minutes after midnight, exclusive; may be 1440


@config_record
class MaintenanceWindow:
    """A recurring window: weekdays and ``[start, end)`` times in a named IANA time zone."""

    name: str
    weekdays: Tuple[int, ...]  # 0 = Monday
    times: Tuple[TimeRange, ...]
    time_zone: str
    matcher: Matcher

    def active(self, now: float) -> bool:
        from datetime import datetime
        from zoneinfo import ZoneInfo

        local = datetime.fromtimestamp(now, ZoneInfo(self.time_zone))
        if local.weekday() not in self.weekdays:
            return False
        minute = local.hour * 60 + local.minute
        return any(r.start <= minute < r.end for r in self.times)


@config_record
class InhibitRule:
    """While a key matching ``source`` fires, keys matching ``target`` with equal ``equal`` labels are muted."""

    source: Matcher
    target: Matcher
    equal: Tuple[str, ...] = ("check", "subject")


BUILTIN_INHIBIT = (
    InhibitRule(
        Matcher((("metric", ("read_only",)),)),
        Matcher((("metric", ("used_percent", "inodes_percent")),)),
        ("check", "subject"),
    ),
)


@config_record
class AlertingConfig:
    defaults: AlertingOverrides = AlertingOverrides()
    outage_tolerance: float = 3600.0
    startup_grace: Optional[float] = None  # None: max(2 x the shortest check interval, 60 s)
    group_wait: float = 10.0
    max_sends_per_minute: int = 18
    lockout: float = 600.0
    body_budget_bytes: int = 20_000  # the whole request body, as DingTalk counts it
    mention_after_reminders: int = 0  # 0: off
    notify_transients: bool = False
    seen_ttl: float = 180 * 86400.0  # a crash dump is remembered 180 days after it is gone
    retention: float = 7 * 86400.0
    outbox_max_entries: int = 10_000
    outbox_max_age: float = 7 * 86400.0
    maintenance: Tuple[MaintenanceWindow, ...] = ()
    inhibit: Tuple[InhibitRule, ...] = field(default=BUILTIN_INHIBIT)


def parse_alerting(section: Section) -> AlertingConfig:
    defaults = parse_overrides(section, AlertingConfig(), finish=False)
    base = AlertingConfig()
    builtin = section.boolean("builtin_inhibit", True)
    windows = tuple(w for w in (_parse_window(s) for s in section.array_of_tables("maintenance")) if w)
    rules = tuple(r for r in (_parse_inhibit(s) for s in section.array_of_tables("inhibit")) if r is not None)
    config = AlertingConfig(
        defaults=defaults,
        outage_tolerance=section.duration("outage_tolerance", base.outage_tolerance),
        startup_grace=section.duration("startup_grace", None),
        group_wait=section.duration("group_wait", base.group_wait),
        max_sends_per_minute=section.integer("max_sends_per_minute", base.max_sends_per_minute, minimum=1, maximum=19),
        lockout=section.duration("lockout", base.lockout),
        body_budget_bytes=section.integer("body_budget_bytes", base.body_budget_bytes, minimum=1000, maximum=20_000),
        mention_after_reminders=section.integer("mention_after_reminders", 0, minimum=0),
        notify_transients=section.boolean("notify_transients", False),
        seen_ttl=section.duration("seen_ttl", base.seen_ttl, minimum=1.0),
        retention=section.duration("retention", base.retention, minimum=1.0),
        outbox_max_entries=section.integer("outbox_max_entries", base.outbox_max_entries, minimum=1),
        outbox_max_age=section.duration("outbox_max_age", base.outbox_max_age, minimum=1.0),
        maintenance=windows,
        inhibit=(BUILTIN_INHIBIT if builtin else ()) + rules,
    )
    section.finish()
    return config


def parse_overrides(section: Section, base: AlertingConfig, finish: bool = True) -> AlertingOverrides:
    d = base.defaults
    repeat_critical, repeat_warning = _parse_repeat(section, d)
    result = AlertingOverrides(
        fire_after_cycles=section.integer("fire_after_cycles", d.fire_after_cycles, minimum=1),
        fire_after=section.duration("fire_after", d.fire_after),
        fire_window=_parse_window_spec(section, d.fire_window),
        clear_after_cycles=section.integer("clear_after_cycles", d.clear_after_cycles, minimum=1),
        keep_firing_for=section.duration("keep_firing_for", d.keep_firing_for),
        escalate_after_cycles=section.integer("escalate_after_cycles", d.escalate_after_cycles, minimum=1),
        deescalate_after_cycles=section.integer("deescalate_after_cycles", d.deescalate_after_cycles, minimum=1),
        notify_deescalation=section.boolean("notify_deescalation", d.notify_deescalation),
        repeat_critical=repeat_critical,
        repeat_warning=repeat_warning,
        max_reminders=section.integer("max_reminders", d.max_reminders, minimum=0),
        unknown_after_cycles=section.integer("unknown_after_cycles", d.unknown_after_cycles, minimum=1),
        flap_enabled=section.boolean("flap_enabled", d.flap_enabled),
        flap_low=section.number("flap_low", d.flap_low, minimum=0, maximum=100),
        flap_high=section.number("flap_high", d.flap_high, minimum=0, maximum=100),
        resolve_after_suppression=section.boolean("resolve_after_suppression", d.resolve_after_suppression),
    )
    if result.flap_low > result.flap_high and ("flap_low" in section or "flap_high" in section):
        section.error("flap_low", f"must not be above flap_high ({result.flap_high:g})")
    if finish:
        section.finish()
    return result


def _parse_repeat(section: Section, d: AlertingOverrides) -> Tuple[float, float]:
    """``repeat_interval = "30m"`` (both severities) or ``{ critical = "1h", warning = "0" }``."""
    if isinstance(section.data.get("repeat_interval"), dict):
        sub = section.table("repeat_interval")
        result = (sub.duration("critical", d.repeat_critical), sub.duration("warning", d.repeat_warning))
        sub.finish()
        return result
    both = section.duration("repeat_interval", None)
    return (both, both) if both is not None else (d.repeat_critical, d.repeat_warning)


_WINDOW_SPEC = re.compile(r"^\s*(\d+)\s*of\s*(\d+)\s*$")


def _parse_window_spec(section: Section, default: Optional[Tuple[int, int]]) -> Optional[Tuple[int, int]]:
    text = section.string("fire_window", None)
    if text is None:
        return default
    if text in ("", "off"):
        return None
    match = _WINDOW_SPEC.match(text)
    if not match or not 1 <= int(match.group(1)) <= int(match.group(2)) <= 64:
        section.error("fire_window", f'must be "N of M" with 1 <= N <= M <= 64, got "{text}"')
        return default
    return int(match.group(1)), int(match.group(2))


def parse_matcher(section: Section, key: str) -> Matcher:
    """``{ check = "root_disk", subject = ["/var", "/srv*"] }``: each label any of its globs."""
    sub = section.table(key)
    pairs = []
    for label in sub.keys():
        if label not in LABELS:
            sub.error(label, f"unknown label; use {', '.join(LABELS)}")
            sub.mark_used(label)
            continue
        raw = sub.raw(label)
        values = (raw,) if isinstance(raw, str) else raw
        if not isinstance(values, (list, tuple)) or not values or not all(isinstance(v, str) for v in values):
            sub.error(label, f"must be a string or an array of strings, got {raw!r}")
            continue
        pairs.append((label, tuple(values)))
    sub.finish()
    return Matcher(tuple(pairs))


def _parse_inhibit(section: Section) -> Optional[InhibitRule]:
    source, target = parse_matcher(section, "source"), parse_matcher(section, "target")
    equal = section.strings("equal", ("check", "subject"))
    for label in equal:
        if label not in LABELS:
            section.error("equal", f'unknown label "{label}"; use {", ".join(LABELS)}')
    if not source.pairs or not target.pairs:
        section.error(None, "needs both source and target matchers")
    section.finish()
    return InhibitRule(source, target, tuple(equal)) if source.pairs and target.pairs else None


def _parse_weekdays(section: Section) -> Tuple[int, ...]:
    days: Set[int] = set()
    for item in section.strings("weekdays", WEEKDAYS):
        first, _, last = item.lower().partition("-")
        if first not in WEEKDAYS or (last and last not in WEEKDAYS):
            section.error("weekdays", f'must name days as mon..sun or ranges such as "mon-fri", got "{item}"')
            continue
        a, b = WEEKDAYS.index(first), WEEKDAYS.index(last or first)
        days.update(range(a, b + 1) if a <= b else [*range(a, 7), *range(b + 1)])
    return tuple(sorted(days))


_TIME_RANGE = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")


def _parse_times(section: Section) -> Tuple[TimeRange, ...]:
    ranges = []
    for item in section.strings("times", ("00:00-24:00",)):
        match = _TIME_RANGE.match(item)
        if match:
            h1, m1, h2, m2 = (int(g) for g in match.groups())
            start, end = h1 * 60 + m1, h2 * 60 + m2
            if h1 < 24 and m1 < 60 and m2 < 60 and start < end <= 1440:
                ranges.append(TimeRange(start, end))
                continue
        section.error("times", f'must be ranges such as "02:00-04:00" (start before end, up to 24:00), got "{item}"')
    return tuple(ranges)


def _parse_window(section: Section) -> Optional[MaintenanceWindow]:
    name = section.string("name", "maintenance")
    weekdays, times = _parse_weekdays(section), _parse_times(section)
    zone = section.string("time_zone", "UTC")
    try:
        from zoneinfo import ZoneInfo

        ZoneInfo(zone)
    except (ValueError, KeyError, OSError):
        section.error("time_zone", f'unknown IANA time zone "{zone}" (e.g. "Asia/Shanghai", "UTC")')
        zone = "UTC"
    matcher = parse_matcher(section, "match")
    section.finish()
    return MaintenanceWindow(name, weekdays, times, zone, matcher)


__all__ = [
    "BUILTIN_INHIBIT",
    "AlertingConfig",
    "AlertingOverrides",
    "InhibitRule",
    "MaintenanceWindow",
    "TimeRange",
    "parse_alerting",
    "parse_overrides",
]
