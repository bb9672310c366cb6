"""Property tests of docs/design/alerting.md d.10 (1-7, 10-15), with a naive reference model.

The machine is compared step by step with a model that recomputes the phase from
the whole history at every step. The pipeline properties drive the real pipeline
and SQLite store (on tmpfs) through generated scenarios: values, UNKNOWN runs,
silences, restarts and timer ticks.
"""

from __future__ import annotations

import math
import os
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from alerting_helpers import Clock, config, run, value
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monagent.alerting.config import AlertingOverrides
from monagent.alerting.machine import AlertState, Change, Phase, level_of, step
from monagent.alerting.outbox import EventOutbox
from monagent.alerting.pipeline import AlertPipeline
from monagent.api import Status, Threshold
from monagent.events import AlertKey, Event, EventKind
from monagent.store import Store

OK, WARN, CRIT = Status.OK, Status.WARNING, Status.CRITICAL
LEVELS = st.sampled_from([OK, WARN, CRIT])
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SHM = "/dev/shm" if os.path.isdir("/dev/shm") else None  # tmpfs: SQLite's fsync costs nothing there
PIPELINE_SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# ---------------------------------------------------------------- the naive reference model


@dataclass
class Naive:
    phase: Phase
    severity: Status
    incidents: int


def naive(levels: Sequence[Status], p: AlertingOverrides) -> Naive:
    """Recompute from the whole history: where incidents start and end, and the severity inside."""
    n, c = p.fire_after_cycles, p.clear_after_cycles
    incidents, start = 0, None
    for i in range(len(levels)):
        last_n, last_c = levels[max(0, i - n + 1) : i + 1], levels[max(0, i - c + 1) : i + 1]
        if start is None:
            if len(last_n) == n and all(x >= WARN for x in last_n):
                start, incidents = i, incidents + 1
        elif len(last_c) == c and all(x == OK for x in last_c):
            start = None
    if start is not None:
        phase = Phase.FIRING if levels[-1] >= WARN else Phase.RESOLVING
        return Naive(phase, _naive_severity(levels[start:], p.deescalate_cycles), incidents)
    pending = bool(levels) and levels[-1] >= WARN
    return Naive(Phase.PENDING if pending else Phase.INACTIVE, OK, incidents)


def _naive_severity(incident: Sequence[Status], d: int) -> Status:
    """WARNING without any CRITICAL; else CRITICAL unless d WARNINGs in a row followed the last CRITICAL."""
    if CRIT not in incident:
        return WARN
    after = incident[len(incident) - incident[::-1].index(CRIT) :]
    text = "".join("w" if x == WARN else "." for x in after)
    return WARN if "w" * d in text else CRIT


PARAMS = st.builds(
    lambda n, c, d: AlertingOverrides(fire_after_cycles=n, clear_after_cycles=c, deescalate_after_cycles=d, flap_enabled=False),
    st.integers(1, 4),
    st.integers(1, 4),
    st.integers(1, 3),
)


def machine_run(levels: Sequence[Status], p: AlertingOverrides) -> Tuple[AlertState, List[Change]]:
    state, changes = AlertState(), []
    for i, level in enumerate(levels):
        state, made = step(state, level, float(i), p, prefix="k")
        changes += [t.change for t in made]
    return state, changes


@SETTINGS
@given(st.lists(LEVELS, max_size=40), PARAMS)
def test_the_machine_agrees_with_a_naive_model_that_replays_the_whole_history(levels: List[Status], p: AlertingOverrides) -> None:
    state = AlertState()
    for i, level in enumerate(levels):
        state, _ = step(state, level, float(i), p, prefix="k")
        expected = naive(levels[: i + 1], p)
        assert (state.phase, state.incidents) == (expected.phase, expected.incidents), levels[: i + 1]
        if state.phase.open:
            assert state.severity == expected.severity, levels[: i + 1]


# ---------------------------------------------------------------- properties of the machine


@SETTINGS
@given(st.lists(st.tuples(st.integers(1, 3), st.integers(1, 5)), max_size=10), st.integers(1, 4), LEVELS)
def test_property_1_a_bad_run_shorter_than_the_fire_condition_never_fires(
    runs: List[Tuple[int, int]], extra: int, bad: Status
) -> None:
    fire_after = 3 + extra
    p = AlertingOverrides(fire_after_cycles=fire_after, flap_enabled=False)
    levels = []
    for bad_len, good_len in runs:
        levels += [max(bad, WARN)] * min(bad_len, fire_after - 1) + [OK] * good_len
    assert Change.FIRE not in machine_run(levels, p)[1]


@SETTINGS
@given(st.lists(st.integers(1, 3), max_size=10), st.integers(2, 4))
def test_property_1_window_mode_never_fires_with_fewer_than_n_bad_in_any_window(gaps: List[int], n: int) -> None:
    m = n + 3
    p = AlertingOverrides(fire_window=(n, m), flap_enabled=False)
    levels: List[Status] = []
    for _ in gaps:  # one bad flag per m samples: never n in one window
        levels += [WARN] + [OK] * (m - 1)
    assert Change.FIRE not in machine_run(levels, p)[1]


@SETTINGS
@given(st.lists(st.integers(1, 3), min_size=1, max_size=10), st.integers(4, 6))
def test_property_2_good_runs_shorter_than_the_clear_condition_never_resolve(good_runs: List[int], clear: int) -> None:
    p = AlertingOverrides(fire_after_cycles=1, clear_after_cycles=clear, flap_enabled=False)
    levels = [CRIT]
    for length in good_runs:
        levels += [OK] * min(length, clear - 1) + [CRIT]
    state, changes = machine_run(levels, p)
    assert changes == [Change.FIRE]  # the bounces FIRING -> RESOLVING -> FIRING say nothing
    assert state.phase == Phase.FIRING


@SETTINGS
@given(
    st.lists(LEVELS, max_size=15), st.lists(st.floats(75.0, 85.0, exclude_min=True, exclude_max=True), min_size=1, max_size=20)
)
def test_property_3_values_between_the_clear_and_on_values_never_change_the_latch(
    prefix: List[Status], values: List[float]
) -> None:
    threshold = Threshold(warning=85, critical=95, warning_clear=75, critical_clear=75)
    p = AlertingOverrides(fire_after_cycles=2, clear_after_cycles=2, flap_enabled=False)
    state, _ = machine_run([x for x in prefix if x != CRIT], p)
    latched, phase_open = state.latched, state.phase.open
    for v in values:
        state, made = step(state, level_of(state, v, threshold, None), 0.0, p, prefix="k")
        assert state.latched == latched
        assert Change.FIRE not in [t.change for t in made] or not phase_open
        assert Change.RESOLVE not in [t.change for t in made]


@SETTINGS
@given(st.lists(st.one_of(LEVELS, st.none()), max_size=40), PARAMS)
def test_property_11_unknown_samples_are_invisible_to_the_lifecycle(
    samples: List[Optional[Status]], p: AlertingOverrides
) -> None:
    from monagent.alerting.machine import unknown

    with_unknown = AlertState()
    changes: List[Change] = []
    for i, level in enumerate(samples):
        if level is None:
            with_unknown = unknown(with_unknown)
        else:
            with_unknown, made = step(with_unknown, level, float(i), p, prefix="k")
            changes += [t.change for t in made]
    without, expected = machine_run([x for x in samples if x is not None], p)
    assert changes == expected
    assert (with_unknown.phase, with_unknown.severity) == (without.phase, without.severity)


# ---------------------------------------------------------------- pipeline scenarios

ALERTING = """
repeat_interval = { critical = "5m", warning = "0" }
max_reminders = 3
flap_enabled = {flap}
"""
CONFIG = """
[notifiers.webhook.pager]
url = "http://127.0.0.1:9/hook"
severities = ["critical"]

[checks.load]
type = "gauge"
[checks.load.alerting]
fire_after_cycles = 2
clear_after_cycles = 2
"""

STEP = st.one_of(
    st.tuples(st.just("value"), st.sampled_from([10.0, 50.0, 82.0, 85.0, 92.0, 99.0])),
    st.tuples(st.just("value"), st.sampled_from([10.0, 95.0])),
    st.tuples(st.just("unknown"), st.just(0.0)),
    st.tuples(st.just("tick"), st.sampled_from([30.0, 120.0, 400.0])),
    st.tuples(st.just("silence"), st.sampled_from([60.0, 300.0, 900.0])),
    st.tuples(st.just("restart"), st.sampled_from([0.0, 1.0])),
)


@dataclass
class Log:
    sent: List[Tuple[str, Event]] = field(default_factory=list)
    silenced: List[Tuple[float, float]] = field(default_factory=list)  # (start, end) wall
    final: Optional[AlertPipeline] = None


class Scenario:
    def __init__(self, directory: Path, flap: bool = False) -> None:
        self.cfg = config(directory, CONFIG, ALERTING.replace("{flap}", "true" if flap else "false"))
        self.clock = Clock()
        self.log = Log()
        self.pipeline = self._open()

    def _open(self) -> AlertPipeline:
        store = Store.open(self.cfg.agent.state_dir)
        return AlertPipeline(self.cfg, store, now=self.clock.wall, monotonic=self.clock.mono, boot_id="b")

    def collect(self) -> None:
        store = self.pipeline.store
        for receiver in ("console", "webhook:pager"):
            entries = EventOutbox(store).pending(receiver, float("inf"))
            store.complete(receiver, [e.seq for e in entries])
            self.log.sent += [(receiver, e.event) for e in entries if e.event.kind != EventKind.NOTICE]

    def apply(self, kind: str, arg: float) -> None:
        if kind == "value":
            now, mono = self.clock.step(60.0)
            self.pipeline.observe([run("load", value(arg), time=now)], now, mono)
        elif kind == "unknown":
            now, mono = self.clock.step(60.0)
            self.pipeline.observe([run("load", error="boom", time=now)], now, mono)
        elif kind == "tick":
            now, mono = self.clock.step(arg)
            self.pipeline.tick(now, mono)
        elif kind == "silence":
            silence = self.pipeline.add_silence(["check=load"], ends_at=self.clock.wall + arg, now=self.clock.wall)
            self.log.silenced.append((silence.starts_at, silence.ends_at))
        elif kind == "crash":  # killed between two steps: close() never runs, no time passes
            self.pipeline.store.close()
            self.pipeline = self._open()
        elif kind == "restart":
            self.pipeline.close(clean=bool(arg))
            self.pipeline.store.close()
            self.clock.step(5.0)
            self.pipeline = self._open()
        self.collect()

    def run(self, steps: Sequence[Tuple[str, float]]) -> Log:
        for kind, arg in steps:
            self.apply(kind, arg)
        self.log.final = self.pipeline
        return self.log

    def close(self) -> None:
        self.pipeline.store.close()


def scenario(steps: Sequence[Tuple[str, float]], flap: bool = False) -> Log:
    with tempfile.TemporaryDirectory(dir=SHM) as directory:
        sc = Scenario(Path(directory), flap)
        try:
            return sc.run(steps)
        finally:
            sc.close()


def per_receiver(log: Log) -> Dict[str, List[Event]]:
    result: Dict[str, List[Event]] = {}
    for receiver, event in log.sent:
        result.setdefault(receiver, []).append(event)
    return result


@PIPELINE_SETTINGS
@given(st.lists(STEP, max_size=30))
def test_property_4_and_5_one_firing_per_incident_and_a_resolve_only_after_it(steps: List[Tuple[str, float]]) -> None:
    log = scenario(steps)
    for receiver, events in per_receiver(log).items():
        fired: Dict[str, int] = {}
        resolved: Dict[str, int] = {}
        for event in events:
            if event.kind == EventKind.FIRING:
                fired[event.incident] = fired.get(event.incident, 0) + 1
            if event.kind == EventKind.RESOLVED:
                assert event.incident in fired, (receiver, event)
                resolved[event.incident] = resolved.get(event.incident, 0) + 1
        assert all(n == 1 for n in fired.values()), (receiver, fired)
        assert all(n == 1 for n in resolved.values()), (receiver, resolved)


@PIPELINE_SETTINGS
@given(st.lists(STEP, max_size=30))
def test_property_6_nothing_is_sent_about_a_key_while_a_silence_matches_it(steps: List[Tuple[str, float]]) -> None:
    log = scenario(steps)
    for _, event in log.sent:
        assert not any(start < event.time < end for start, end in log.silenced), event


@PIPELINE_SETTINGS
@given(st.lists(STEP, max_size=30))
def test_property_7_reminders_are_spaced_and_capped(steps: List[Tuple[str, float]]) -> None:
    log = scenario(steps)
    for events in per_receiver(log).values():
        reminders: Dict[str, int] = {}
        previous: Optional[Event] = None
        for event in events:
            if event.kind == EventKind.REMINDER:
                reminders[event.incident] = reminders.get(event.incident, 0) + 1
                if previous is not None and previous.incident == event.incident:
                    assert event.time - previous.time >= 300.0, (previous, event)
            previous = event
        assert all(n <= 3 for n in reminders.values())


FLAPPY = st.lists(
    st.one_of(st.tuples(st.just("value"), st.sampled_from([10.0, 99.0])), st.tuples(st.just("tick"), st.just(400.0))), max_size=40
)


@PIPELINE_SETTINGS
@given(FLAPPY)
def test_property_10_a_flapping_episode_sends_at_most_three_messages(steps: List[Tuple[str, float]]) -> None:
    log = scenario(steps, flap=True)
    for events in per_receiver(log).values():
        count: Optional[int] = None
        end: Optional[float] = None
        for event in events:
            if end is not None and event.time > end:
                count, end = None, None  # the episode is over: its end and one reconciliation were counted
            if event.kind == EventKind.FLAP_START and count is None:
                count = 0
            if count is not None:
                count += 1
                assert count <= 3, events
                if event.kind == EventKind.FLAP_END:
                    end = event.time


@PIPELINE_SETTINGS
@given(st.lists(STEP, max_size=25), st.sampled_from([10.0, 85.0, 95.0]))
def test_property_12_eventually_what_each_receiver_heard_matches_the_state(steps: List[Tuple[str, float]], final: float) -> None:
    settle = [("tick", 900.0), ("tick", 900.0)] + [("value", final)] * 6
    with tempfile.TemporaryDirectory(dir=SHM) as directory:
        sc = Scenario(Path(directory))
        try:
            sc.run([*steps, *settle])
            pipeline = sc.pipeline
            ((key, state),) = [(k, s) for k, s in pipeline.states.items() if k.metric == "value"]
            heard = pipeline.heard.get(key, {})
            for receiver in ("console", "webhook:pager"):
                h = heard.get(receiver)
                if state.phase.open and (receiver == "console" or state.severity == CRIT):
                    assert h is not None and h.firing(state.incident) and h.severity == state.severity
                if not state.phase.open:
                    assert h is None or not h.firing()
        finally:
            sc.close()


@PIPELINE_SETTINGS
@given(st.lists(st.sampled_from([92.0, 95.0, 99.0]), min_size=1, max_size=10), st.booleans())
def test_property_14_a_restart_while_firing_never_announces_again(values: List[float], clean: bool) -> None:
    steps = [("value", 95.0)] * 2 + [("restart", float(clean))]
    steps += [step for v in values for step in (("value", v), ("tick", 120.0))]
    log = scenario(steps)
    kinds = [e.kind for _, e in log.sent]
    assert kinds.count(EventKind.FIRING) == 2  # once per receiver, before the restart
    assert set(kinds) <= {EventKind.FIRING, EventKind.REMINDER}


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(STEP.filter(lambda s: s[0] != "silence"), max_size=25))
def test_property_15_the_same_inputs_give_the_same_states_and_outbox(steps: List[Tuple[str, float]]) -> None:
    first, second = scenario(steps), scenario(steps)
    assert [(r, e) for r, e in first.sent] == [(r, e) for r, e in second.sent]
    assert first.final is not None and second.final is not None
    assert first.final.states == second.final.states


def test_the_reference_model_itself_matches_a_hand_computed_history() -> None:
    p = replace(AlertingOverrides(flap_enabled=False), fire_after_cycles=2, clear_after_cycles=2)
    levels = [WARN, WARN, CRIT, WARN, WARN, OK, OK, WARN]
    assert naive(levels, p) == Naive(Phase.PENDING, OK, 1)
    assert naive(levels[:5], p) == Naive(Phase.FIRING, WARN, 1)
    assert naive(levels[:4], p) == Naive(Phase.FIRING, CRIT, 1)


DISKS = (
    '[checks.disks]\ntype = "disk"\n[checks.disks.alerting]\nfire_after_cycles = 1\nclear_after_cycles = 1\n'
    "flap_enabled = false\n"
)


@PIPELINE_SETTINGS
@given(st.lists(st.tuples(st.booleans(), st.sampled_from([50.0, 90.0, 97.0])), max_size=25))
def test_property_6_nothing_is_sent_about_space_while_the_same_mount_is_read_only(steps: List[Tuple[bool, float]]) -> None:
    from monagent.api import Metric, Result

    with tempfile.TemporaryDirectory(dir=SHM) as directory:
        cfg = config(Path(directory), DISKS)
        clock = Clock()
        store = Store.open(cfg.agent.state_dir)
        pipeline = AlertPipeline(cfg, store, now=clock.wall, monotonic=clock.mono, boot_id="b")
        read_only = AlertKey("disks", "/var", "read_only")
        try:
            for ro, used in steps:
                result = Result(subject="/var", metrics=(Metric("read_only", float(ro)), Metric("used_percent", used)))
                pipeline.observe([run("disks", result, check_type="disk")], *clock.step())
                inhibited = pipeline.states[read_only].phase.open
                entries = EventOutbox(store).pending("console", float("inf"))
                store.complete("console", [e.seq for e in entries])
                if inhibited:
                    assert [e.event.key.metric for e in entries if e.event.key.metric == "used_percent"] == []
        finally:
            store.close()


@PIPELINE_SETTINGS
@given(st.lists(STEP.filter(lambda s: s[0] not in ("silence", "restart")), max_size=25), st.sets(st.integers(0, 25), max_size=5))
def test_property_13_crashes_between_steps_lose_and_repeat_nothing(steps: List[Tuple[str, float]], crashes: set) -> None:
    crashed = [step for i, s in enumerate(steps) for step in ([("crash", 0.0), s] if i in crashes else [s])]
    plain, with_crashes = scenario(steps), scenario(crashed)
    assert [(r, e.id, e.kind) for r, e in with_crashes.sent] == [(r, e.id, e.kind) for r, e in plain.sent]


@settings(max_examples=300, deadline=None)
@given(
    last=st.floats(min_value=0.0, max_value=1e7, allow_nan=False),
    interval=st.one_of(st.sampled_from([60.0, 3600.0, 14400.0]), st.floats(min_value=0.5, max_value=1e6, allow_nan=False)),
)
def test_a_reminder_is_due_exactly_from_the_instant_reminder_at_names(last: float, interval: float) -> None:
    # The main loop sleeps until reminder_at; a tick then must find it due. Computed as
    # `mono - last >= interval` it was not, for about one (last, interval) in nine.
    from monagent.alerting.policy import reminder_at, reminder_due

    params = AlertingOverrides(repeat_critical=interval, max_reminders=5)
    state = AlertState(phase=Phase.FIRING, severity=Status.CRITICAL, firing_since=0.0, last_notified_at=last, reminders_sent=1)
    at = reminder_at(state, params)
    assert at is not None
    assert reminder_due(state, at, params)
    assert not reminder_due(state, math.nextafter(at, -1.0), params)
