"""What the pipeline writes each cycle: only keys whose lifecycle changed, last-sample fields every 60 s.

A crash (the store closed without AlertPipeline.close) must restore the lifecycle exactly even when the
last-sample fields were not written yet, and must then send exactly what a run without the crash sends.
"""

from __future__ import annotations

import os
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Dict, Iterator, List, Sequence, Set, Tuple, Union

import pytest
from alerting_helpers import Clock, config, drain, occurrences, open_pipeline, run, value, verdict
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monagent.alerting import persist
from monagent.alerting.config import AlertingOverrides
from monagent.alerting.machine import AlertState, Phase, step
from monagent.alerting.pipeline import AlertPipeline
from monagent.api import Occurrence, Status
from monagent.config import Config
from monagent.events import AlertKey
from monagent.store import Store

SHM = "/dev/shm" if os.path.isdir("/dev/shm") else None

FOUR = "".join(
    f"""
[checks.{name}]
type = "gauge"
[checks.{name}.alerting]
fire_after_cycles = 3
clear_after_cycles = 3
"""
    for name in ("pend", "fire", "clear", "calm")
)


@pytest.fixture(autouse=True)
def utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def cycle(p: AlertPipeline, clock: Clock, seconds: float = 10.0, **values: float) -> List[str]:
    now, mono = clock.step(seconds)
    p.observe([run(name, value(v), time=now) for name, v in values.items()], now, mono)
    return drain(p.store)


def key(check: str) -> AlertKey:
    return AlertKey(check, "", "value")


def lifecycle(state: AlertState) -> Tuple[object, ...]:
    return (
        state.phase,
        state.latched,
        state.severity,
        state.incident,
        state.incidents,
        state.seq,
        state.bad_streak if state.phase == Phase.PENDING else None,
        state.good_streak if state.phase == Phase.RESOLVING else None,
        state.pending_since,
        state.resolving_since,
        state.firing_since,
        state.last_notified_at,
        state.reminders_sent,
        state.flap_hist,
    )


# The "fire" key fires and the "clear" key fires and starts resolving; then one more cycle in which
# "pend" turns bad (PENDING, bad streak 1 of 3) and only values change elsewhere.
PREFIX: Sequence[Dict[str, float]] = (
    *[dict(pend=10.0, fire=95.0, clear=95.0, calm=20.0 + i) for i in range(3)],
    dict(pend=10, fire=96, clear=10, calm=30),  # clear: RESOLVING, good streak 1
    dict(pend=95, fire=97, clear=11, calm=31),  # pend: PENDING, bad streak 1; clear: good streak 2
)
AFTER: Sequence[Dict[str, float]] = (
    dict(pend=95, fire=98, clear=12, calm=32),  # clear resolves
    dict(pend=95, fire=99, clear=13, calm=33),  # pend fires
    *[dict(pend=95.0, fire=99.0, clear=13.0, calm=33.0)] * 3,
)


def test_a_crash_restores_phases_streaks_and_incidents_when_the_last_values_were_not_written(tmp_path: Path) -> None:
    twin_dir, crash_dir = tmp_path / "twin", tmp_path / "crash"
    twin_dir.mkdir()
    crash_dir.mkdir()
    twin_cfg, crash_cfg = config(twin_dir, FOUR), config(crash_dir, FOUR)
    twin_clock, crash_clock = Clock(), Clock()
    twin, crashed = open_pipeline(twin_cfg, twin_clock), open_pipeline(crash_cfg, crash_clock)
    for values in PREFIX:
        assert cycle(twin, twin_clock, **values) == cycle(crashed, crash_clock, **values)
    before = dict(crashed.states)
    crashed.store.close()  # killed: close() never ran; less than 60 s since the values were last written
    crashed = open_pipeline(crash_cfg, crash_clock, boot_id="boot-1")
    drain(crashed.store)  # the "restarted after an unclean stop" notice

    for check in ("pend", "fire", "clear", "calm"):
        assert lifecycle(crashed.states[key(check)]) == lifecycle(before[key(check)]), check
    assert crashed.states[key("pend")].phase == Phase.PENDING and crashed.states[key("pend")].bad_streak == 1
    assert crashed.states[key("clear")].phase == Phase.RESOLVING and crashed.states[key("clear")].good_streak == 2
    assert crashed.states[key("fire")].incident == before[key("fire")].incident != ""
    # the last-sample fields were behind, as intended: "calm" only changed its value since its first sample
    assert before[key("calm")].value == 31
    assert crashed.states[key("calm")].value == 20
    assert crashed.states[key("calm")].trend == (20.0,)

    for values in AFTER:
        assert cycle(crashed, crash_clock, **values) == cycle(twin, twin_clock, **values)
    for check in ("pend", "fire", "clear", "calm"):
        assert lifecycle(crashed.states[key(check)]) == lifecycle(twin.states[key(check)]), check
    twin.store.close()
    crashed.store.close()


def test_the_twin_runs_send_the_expected_messages(tmp_path: Path) -> None:
    clock = Clock()
    p = open_pipeline(config(tmp_path, FOUR), clock)
    lines = [line for values in (*PREFIX, *AFTER) for line in cycle(p, clock, **values)]
    assert lines == [
        "FIRING critical web01 fire value 95 (>= 90) since 14:13",
        "FIRING critical web01 clear value 95 (>= 90) since 14:13",
        "RESOLVED web01 clear value 12 (was critical since 14:13)",
        "FIRING critical web01 pend value 95 (>= 90) since 14:14",
    ]
    p.store.close()


def alert_writes(store: Store) -> List[str]:
    """Every statement that writes the alerts or heard tables from now on (the list grows)."""
    seen: List[str] = []
    store.conn.set_trace_callback(lambda sql: seen.append(sql) if " alerts " in sql or " heard " in sql else None)
    return seen


def test_an_unchanged_key_is_not_rewritten_and_its_last_value_is_written_once_a_minute(tmp_path: Path) -> None:
    cfg = config(tmp_path, FOUR)
    clock = Clock()
    p = open_pipeline(cfg, clock)
    for i in range(6):  # the first sample writes the key; the 6th cycle (60 s) is a periodic write
        cycle(p, clock, calm=20 + i)
    writes = alert_writes(p.store)
    for i in range(5):  # 50 s: values change, nothing else does
        cycle(p, clock, calm=30 + i)
    assert writes == []
    cycle(p, clock, calm=40)  # 60 s since the last periodic write
    assert [sql.split("(")[0] for sql in writes] == ["INSERT OR REPLACE INTO alerts "]
    assert "calm\x1f\x1fvalue" in writes[0] and '"value": 40.0' in writes[0]
    writes.clear()
    cycle(p, clock, calm=85)  # bad: PENDING, a lifecycle change, written in this cycle's transaction
    assert [sql.split("(")[0] for sql in writes] == ["INSERT OR REPLACE INTO alerts "]
    assert '"phase": "pending"' in writes[0]
    p.store.close()


def commits(store: Store) -> List[str]:
    """Every transaction committed from now on (the list grows)."""
    seen: List[str] = []
    store.conn.set_trace_callback(lambda sql: seen.append(sql) if sql.strip() == "COMMIT" else None)
    return seen


def test_a_quiet_agent_commits_about_once_a_minute_and_last_eval_at_rides_along(tmp_path: Path) -> None:
    cfg = config(tmp_path, FOUR)
    clock = Clock()
    p = open_pipeline(cfg, clock)
    started = float(p.store.load().meta["last_eval_at"])
    cycle(p, clock, calm=20)  # the first evaluation after start is written at once
    assert float(p.store.load().meta["last_eval_at"]) == clock.wall > started
    done = commits(p.store)
    for i in range(30):  # 5 minutes of 10 s cycles, nothing but the value moves (nothing to deliver)
        now, mono = clock.step(10)
        p.observe([run("calm", value(20 + (i % 3)), time=now)], now, mono)
    assert 4 <= len(done) <= 6  # one a minute (the periodic write), not 30
    assert 0 <= clock.wall - float(p.store.load().meta["last_eval_at"]) < 60
    done.clear()
    now, mono = clock.step(10)
    p.observe([run("calm", value(85), time=now)], now, mono)  # PENDING: a lifecycle change, committed at once
    assert len(done) == 1
    assert float(p.store.load().meta["last_eval_at"]) == clock.wall
    p.store.close()


def test_a_key_whose_sample_says_the_same_is_never_rewritten(tmp_path: Path) -> None:
    cfg = config(tmp_path, '[checks.svc]\ntype = "verdict"\n')
    clock = Clock()
    p = open_pipeline(cfg, clock)
    svc = [run("svc", verdict(Status.OK, "1 process"), check_type="verdict")]
    p.observe(svc, *clock.step(10))
    writes = alert_writes(p.store)
    for _ in range(30):  # 5 minutes, 5 periodic writes due
        p.observe(svc, *clock.step(10))
    assert writes == []
    p.observe([run("svc", verdict(Status.OK, "2 processes"), check_type="verdict")], *clock.step(10))
    assert writes == []  # a new reason waits for the next periodic write...
    for _ in range(6):
        p.observe([run("svc", verdict(Status.OK, "2 processes"), check_type="verdict")], *clock.step(10))
    assert len(writes) == 1 and '"reason": "2 processes"' in writes[0]  # ...within 60 s
    p.store.close()


def test_close_writes_the_last_values_that_were_behind(tmp_path: Path) -> None:
    cfg = config(tmp_path, FOUR)
    clock = Clock()
    p = open_pipeline(cfg, clock)
    for i in range(3):
        cycle(p, clock, calm=20 + i)
    cycle(p, clock, calm=55)
    p.close(clean=True)
    p.store.close()
    p = open_pipeline(cfg, clock)
    assert p.states[key("calm")].value == 55
    assert p.states[key("calm")].trend == (20.0, 21.0, 22.0, 55.0)
    p.store.close()


def test_a_failed_commit_keeps_the_lifecycle_change_for_the_next_one(tmp_path: Path) -> None:
    cfg = config(tmp_path, FOUR)
    clock = Clock()
    p = open_pipeline(cfg, clock)
    for i in range(3):
        cycle(p, clock, calm=20 + i)
    p.store.conn.execute("PRAGMA query_only = ON")  # the next commit fails like a read-only disk
    cycle(p, clock, calm=85)
    assert not p.store.writable
    p.store.conn.execute("PRAGMA query_only = OFF")
    cycle(p, clock, calm=86)
    p.store.close()
    p = open_pipeline(cfg, clock)
    assert p.states[key("calm")].phase == Phase.PENDING and p.states[key("calm")].bad_streak == 2
    p.store.close()


# ---------------------------------------------------------------- what persist.py relies on in the machine

LEVEL = st.sampled_from([Status.OK, Status.WARNING, Status.CRITICAL])
PARAMS = st.builds(
    lambda n, c, d, window: AlertingOverrides(
        fire_after_cycles=n, clear_after_cycles=c, deescalate_after_cycles=d, fire_window=window
    ),
    st.integers(1, 4),
    st.integers(1, 4),
    st.integers(1, 3),
    st.sampled_from([None, (2, 3), (3, 5)]),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(LEVEL, max_size=30), st.lists(LEVEL, max_size=30), PARAMS, st.integers(0, 50), st.integers(0, 50))
def test_streaks_the_ledger_skips_are_never_read_before_they_are_reset(
    before: List[Status], after: List[Status], params: AlertingOverrides, bad: int, good: int
) -> None:
    """bad_streak outside PENDING and good_streak outside RESOLVING may be stale on disk: any value there
    gives the same transitions and the same persisted fields afterwards."""
    state = AlertState()
    for i, level in enumerate(before):
        state, _ = step(state, level, float(i), params, prefix="k")
    other = state
    if state.phase != Phase.PENDING:
        other = replace(other, bad_streak=bad)
    if state.phase != Phase.RESOLVING:
        other = replace(other, good_streak=good)
    assert persist.matters(other) == persist.matters(state)
    for i, level in enumerate(after, start=len(before)):
        state, made = step(state, level, float(i), params, prefix="k")
        other, made_other = step(other, level, float(i), params, prefix="k")
        assert made_other == made
        assert persist.matters(other) == persist.matters(state)


def test_restored_streaks_survive_a_crash_in_every_phase_in_a_generated_run() -> None:
    """A crash after every cycle (PENDING, FIRING, RESOLVING and back, de-escalation) sends what no crash sends."""
    levels = [10, 85, 95, 95, 95, 50, 10, 95, 10, 10, 10, 10, 95, 95, 95, 82, 82, 82, 10, 10, 10]
    with tempfile.TemporaryDirectory(dir=SHM) as a, tempfile.TemporaryDirectory(dir=SHM) as b:
        plain = _run_load(config(Path(a), FOUR, "flap_enabled = false\n"), levels, crash=False)
        crashing = _run_load(config(Path(b), FOUR, "flap_enabled = false\n"), levels, crash=True)
    assert crashing == plain
    assert plain == [
        "FIRING critical web01 pend value 95 (>= 90) since 14:13",
        "RESOLVED web01 pend value 10 (was critical since 14:13)",
        "FIRING critical web01 pend value 95 (>= 90) since 14:15",
        "DEESCALATED warning web01 pend value 82 (>= 80) since 14:15",
        "RESOLVED web01 pend value 10 (was warning since 14:15)",
    ]


SLOW = """
[checks.pend]
type = "gauge"
[checks.pend.alerting]
fire_after_cycles = 30
clear_after_cycles = 30
"""


def test_a_crash_keeps_long_streaks_after_the_flap_history_stopped_changing(tmp_path: Path) -> None:
    """After 21 equal samples only the streak moves; it is still written every cycle in PENDING and RESOLVING."""
    levels = [95.0] * 30 + [10.0] * 30
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    plain = _run_load(config(tmp_path / "a", SLOW), levels, crash=False)
    crashing = _run_load(config(tmp_path / "b", SLOW), levels, crash={26, 56})
    assert (
        crashing
        == plain
        == [
            "FIRING critical web01 pend value 95 (>= 90) since 14:13",
            "RESOLVED web01 pend value 10 (was critical since 14:13)",
        ]
    )


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from([10.0, 50.0, 79.0, 85.0, 92.0, 99.0]), max_size=40), st.sets(st.integers(0, 39)), st.booleans())
def test_crashes_at_any_cycle_send_exactly_what_a_run_without_them_sends(levels: List[float], crashes: set, flap: bool) -> None:
    alerting = f"flap_enabled = {str(flap).lower()}\n"
    with tempfile.TemporaryDirectory(dir=SHM) as a, tempfile.TemporaryDirectory(dir=SHM) as b:
        plain = _run_load(config(Path(a), FOUR, alerting), levels, crash=False)
        crashing = _run_load(config(Path(b), FOUR, alerting), levels, crash=crashes)
    assert crashing == plain


def _run_load(cfg: Config, levels: Sequence[float], crash: Union[bool, Set[int]]) -> List[str]:
    """Console lines of the "pend" key fed ``levels`` every 10 s; ``crash``: after every cycle, or these."""
    clock = Clock()
    p = open_pipeline(cfg, clock)
    drain(p.store)
    lines: List[str] = []
    for i, level in enumerate(levels):
        lines += cycle(p, clock, pend=level)
        if crash is True or (isinstance(crash, set) and i in crash):
            p.store.close()
            p = open_pipeline(cfg, clock)
            lines += [line for line in drain(p.store) if not line.startswith("NOTICE")]
    p.store.close()
    return lines


def test_a_wall_clock_step_rewrites_every_key_so_a_crash_keeps_the_reminder_clock(tmp_path: Path) -> None:
    cfg = config(tmp_path, FOUR)
    clock = Clock()
    p = open_pipeline(cfg, clock)
    for _ in range(3):
        cycle(p, clock, fire=95, calm=20)
    before = p.states[key("fire")]
    assert before.phase == Phase.FIRING and before.last_notified_at is not None
    writes = alert_writes(p.store)
    clock.wall += 3600  # NTP stepped the clock an hour ahead; the monotonic clock did not move
    cycle(p, clock, fire=95, calm=20)
    assert sorted(sql.split("'")[1] for sql in writes if " alerts " in sql) == ["calm\x1f\x1fvalue", "fire\x1f\x1fvalue"]
    p.store.close()  # crash
    p = open_pipeline(cfg, clock)
    assert p.states[key("fire")].last_notified_at == pytest.approx(before.last_notified_at)
    assert p.states[key("fire")].firing_since == pytest.approx(before.firing_since)
    p.store.close()


def seen_writes(store: Store) -> List[str]:
    seen: List[str] = []
    store.conn.set_trace_callback(lambda sql: seen.append(sql) if " seen " in sql else None)
    return seen


def test_an_occurrence_seen_again_is_not_rewritten_each_cycle_and_a_crash_never_announces_it_twice(tmp_path: Path) -> None:
    cfg = config(tmp_path, '[checks.crash]\ntype = "kdump"\n')
    clock = Clock()
    p = open_pipeline(cfg, clock)
    panic = Occurrence("dump-1", "kernel panic")

    def crash_run(*found: Occurrence) -> List[str]:
        now, mono = clock.step(10)
        p.observe([run("crash", occurrences(*found), check_type="kdump")], now, mono)
        return drain(p.store)

    assert crash_run() == []  # first run: nothing found
    writes = seen_writes(p.store)
    assert crash_run(panic) == ["OCCURRENCE critical web01 crash /var/crash kernel panic"]
    assert [sql.split("'")[3] for sql in writes] == ["dump-1"]  # in the transaction of its outbox entry
    writes.clear()
    for _ in range(3):
        assert crash_run(panic) == []
    assert writes == []  # only last_seen moved
    p.store.close()  # crash
    p = open_pipeline(cfg, clock)
    drain(p.store)
    assert crash_run(panic) == []
    assert crash_run(panic, Occurrence("dump-2", "Oops")) == ["OCCURRENCE critical web01 crash /var/crash Oops"]
    p.store.close()
