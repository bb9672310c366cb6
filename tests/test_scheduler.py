"""The scheduler: intervals, splay, skip-if-running, timeouts and exceptions, with an injected clock."""

from __future__ import annotations

import os
import random
import threading
import time

from monagent.alerting.config import AlertingOverrides
from monagent.api import Check, Metric, Result, Status
from monagent.config import CheckConfig
from monagent.scheduler import Scheduler


def cfg(name, interval=10.0, timeout=5.0, enabled=True, splay=None):
    return CheckConfig(name, "test", interval, timeout, enabled, {}, {}, AlertingOverrides(), splay=splay)


class Counting(Check):
    def __init__(self):
        self.calls = 0
        self.contexts = []

    def run(self, ctx):
        self.calls += 1
        self.contexts.append(ctx)
        return Result(metrics=(Metric("calls", self.calls),))


class Raising(Check):
    def run(self, ctx):
        raise ValueError("disk table is garbled")


class Blocking(Check):
    """Blocks in a read(2) on a pipe nobody writes to, until released."""

    def __init__(self):
        self.read_fd, self.write_fd = os.pipe()

    def run(self, ctx):
        os.read(self.read_fd, 1)
        return Result(status=Status.OK, reason="late")

    def release(self):
        os.write(self.write_fd, b"x")

    def close(self):
        os.close(self.read_fd)
        os.close(self.write_fd)


class Gated(Check):
    def __init__(self):
        self.gate = threading.Event()
        self.calls = 0

    def run(self, ctx):
        self.calls += 1
        self.gate.wait(10)
        return Result(status=Status.OK)


def drain(scheduler, now, mono, until=bool, limit=5.0):
    """Step with a fixed clock until a run arrives (threads need real time to finish)."""
    deadline = time.monotonic() + limit
    collected = []
    while time.monotonic() < deadline:
        collected += scheduler.step(now, mono)
        if until(collected):
            return collected
        time.sleep(0.005)
    return collected


def make(pairs, splay=0.0, mono=0.0):
    return Scheduler(pairs, lambda now, mono: ("ctx", now, mono), monotonic=mono, splay=splay, rng=random.Random(7))


def test_each_instance_runs_on_its_own_interval():
    fast, slow = Counting(), Counting()
    scheduler = make([(cfg("fast", interval=10), fast), (cfg("slow", interval=30), slow)])
    for second in range(0, 61, 10):
        drain(scheduler, 1000.0 + second, float(second), until=lambda runs, s=second: len(runs) >= (2 if s % 30 == 0 else 1))
    assert fast.calls == 7
    assert slow.calls == 3


def test_checks_started_in_one_step_share_one_context():
    a, b = Counting(), Counting()
    scheduler = make([(cfg("a"), a), (cfg("b"), b)])
    drain(scheduler, 1000.0, 0.0, until=lambda runs: len(runs) == 2)
    assert a.contexts[0] is b.contexts[0]


class AtStart(Counting):
    run_at_start = True


def test_one_splay_per_agent_checks_due_together_share_one_step_and_context():
    """The agent's splay is one random phase: every instance starts on it, and instances whose
    intervals are multiples of each other keep meeting in the same step (one context, one scan)."""
    a, b, slow = Counting(), Counting(), Counting()
    pairs = [(cfg("a", interval=30), a), (cfg("b", interval=30), b), (cfg("slow", interval=60), slow)]
    schedulers = [
        Scheduler(pairs, lambda now, mono: object(), monotonic=0.0, splay=10.0, rng=random.Random(seed)) for seed in range(5)
    ]
    phases = {round(s.instances["a"].next_due, 9) for s in schedulers}
    assert len(phases) > 1  # random per agent (a fleet spreads) ...
    for scheduler in schedulers:
        dues = {i.next_due for i in scheduler.instances.values()}
        assert len(dues) == 1 and 0 <= dues.pop() <= 10  # ... but one phase within one agent
    scheduler = schedulers[0]
    phase = scheduler.instances["a"].next_due
    steps_with_runs = []
    for k in range(5):  # 0, 30, 60, 90, 120 s after the phase
        mono = phase + 30 * k
        expected = 3 if k % 2 == 0 else 2
        runs = drain(scheduler, 1000.0 + mono, mono, until=lambda runs, n=expected: len(runs) >= n)
        steps_with_runs.append(sorted(r.check for r in runs))
    scheduler.close()
    assert steps_with_runs == [["a", "b", "slow"], ["a", "b"], ["a", "b", "slow"], ["a", "b"], ["a", "b", "slow"]]
    assert a.contexts[0] is b.contexts[0] is slow.contexts[0]
    assert a.contexts[2] is slow.contexts[1]


def test_a_check_with_its_own_splay_gets_its_own_phase():
    checks = [(cfg(f"own{i}", interval=60, splay=10.0), Counting()) for i in range(20)]
    checks.append((cfg("shared", interval=60), Counting()))
    scheduler = make(checks, splay=10.0)
    dues = [scheduler.instances[f"own{i}"].next_due for i in range(20)]
    assert all(0 <= d <= 10 for d in dues)
    assert len(set(dues)) > 10


def test_run_at_start_runs_at_once_then_joins_the_grid_and_late_steps_skip_missed_slots():
    first, other = AtStart(), Counting()
    scheduler = make([(cfg("first", interval=60), first), (cfg("other", interval=60), other)], splay=10.0)
    phase = scheduler.instances["other"].next_due
    assert 0 < phase <= 10
    assert scheduler.instances["first"].next_due == 0.0
    drain(scheduler, 1000.0, 0.0, until=lambda runs: len(runs) == 1)
    # not again at the phase a few seconds later: the next slot at least half an interval away
    assert scheduler.instances["first"].next_due == phase + 60
    drain(scheduler, 1000.0 + phase, phase, until=lambda runs: len(runs) == 1)
    assert scheduler.instances["other"].next_due == phase + 60
    # a step 150 s late (a suspended machine) runs once and goes back to the grid
    late = phase + 60 + 150
    drain(scheduler, 1000.0 + late, late, until=lambda runs: len(runs) == 2)
    assert scheduler.instances["first"].next_due == scheduler.instances["other"].next_due == phase + 60 * 4
    scheduler.close()


def test_a_check_added_by_a_reload_joins_the_next_slot_of_the_grid():
    old = Counting()
    scheduler = make([(cfg("old", interval=30), old)], splay=10.0)
    phase = scheduler.instances["old"].next_due
    scheduler.add(cfg("new", interval=30), Counting(), phase + 41.0)
    assert scheduler.instances["new"].next_due == phase + 60
    scheduler.close()


def test_a_check_that_raises_is_unknown_with_the_exception_text_and_others_run(caplog):
    good = Counting()
    scheduler = make([(cfg("bad"), Raising()), (cfg("good"), good)])
    runs = {r.check: r for r in drain(scheduler, 1000.0, 0.0, until=lambda runs: len(runs) == 2)}
    assert runs["bad"].results == (Result(status=Status.UNKNOWN, reason="ValueError: disk table is garbled"),)
    assert runs["bad"].error == "ValueError: disk table is garbled"
    assert runs["good"].results[0].metrics[0].value == 1
    tracebacks = [r for r in caplog.records if r.exc_info]
    assert len(tracebacks) == 1 and "bad" in tracebacks[0].getMessage()


def test_a_check_blocked_in_a_syscall_past_its_timeout_is_unknown_and_others_keep_schedule():
    blocked, good = Blocking(), Counting()
    scheduler = make([(cfg("stuck", interval=10, timeout=3), blocked), (cfg("good", interval=10), good)])
    try:
        drain(scheduler, 1000.0, 0.0, until=lambda runs: len(runs) == 1)  # good finishes, stuck blocks
        runs = scheduler.step(1003.0, 3.0)
        assert [(r.check, r.results[0].reason) for r in runs] == [("stuck", "still running after 3 s")]
        assert runs[0].results[0].status == Status.UNKNOWN
        # the next cycle: stuck still hangs, so its run is a failed run (it counts); good runs on
        hung = drain(scheduler, 1010.0, 10.0, until=lambda runs: good.calls == 2)
        assert good.calls == 2
        assert [r.check for r in hung if r.error.startswith("hung (the run started at ")] == ["stuck"]
        assert scheduler.instances["stuck"].skipped == 1
        # when the blocked call finally returns, its late result is discarded
        blocked.release()
        late = drain(scheduler, 1011.0, 11.0, until=lambda runs: scheduler.instances["stuck"].run is None, limit=2)
        assert [r for r in late if r.check == "stuck"] == []
    finally:
        blocked.release()
        scheduler.close()


def test_a_run_still_in_flight_is_skipped_never_stacked():
    gated = Gated()
    scheduler = make([(cfg("slow", interval=1, timeout=100), gated)])
    try:
        scheduler.step(1000.0, 0.0)
        for second in range(1, 6):
            scheduler.step(1000.0 + second, float(second))
        deadline = time.monotonic() + 5
        while gated.calls == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.05)
        assert gated.calls == 1
        assert scheduler.instances["slow"].skipped == 5
    finally:
        gated.gate.set()


def test_disabled_instances_never_run():
    check = Counting()
    scheduler = make([(cfg("off", enabled=False), check)])
    drain(scheduler, 1000.0, 100.0, limit=0.2)
    assert check.calls == 0


def test_run_all_once_waits_for_every_result_or_timeout():
    blocked = Blocking()
    scheduler = make([(cfg("stuck", timeout=0.3), blocked), (cfg("good"), Counting())])
    try:
        runs = scheduler.run_all_once(time.time(), time.monotonic(), time.sleep, lambda: (time.time(), time.monotonic()))
        assert sorted((r.check, r.results[0].status) for r in runs) == [("good", None), ("stuck", Status.UNKNOWN)]
    finally:
        blocked.release()


class CheapCounting(Counting):
    non_blocking = True

    def run(self, ctx):
        self.thread = threading.current_thread().name
        return super().run(ctx)


class CheapBlocking(Blocking):
    cheap = True  # the attribute's former name: still honoured


def test_the_former_name_cheap_still_marks_a_check_non_blocking():
    assert CheapBlocking.non_blocking is True
    assert Blocking.non_blocking is False


def test_cheap_checks_share_one_thread_and_run_one_after_another():
    a, b = CheapCounting(), CheapCounting()
    scheduler = make([(cfg("a"), a), (cfg("b"), b)])
    try:
        drain(scheduler, 1000.0, 0.0, until=lambda runs: len(runs) == 2)
        assert a.thread == b.thread == "checks:shared"
    finally:
        scheduler.close()


class Switching(Counting):
    """Sets non_blocking per instance from what a run found, as the disk and kdump checks do."""

    def run(self, ctx):
        self.thread = threading.current_thread().name
        self.non_blocking = self.calls % 2 == 0  # the next run's lane
        return super().run(ctx)


def test_an_instance_that_sets_non_blocking_moves_between_its_own_thread_and_the_shared_one():
    check = Switching()
    scheduler = make([(cfg("disks", interval=10), check)])
    threads = []
    try:
        for second in range(0, 31, 10):
            drain(scheduler, 1000.0 + second, float(second), until=lambda runs: len(runs) == 1)
            threads.append(check.thread)
        assert threads == ["check:disks", "checks:shared", "check:disks", "checks:shared"]
    finally:
        scheduler.close()


def test_a_cheap_check_that_hangs_is_abandoned_and_the_other_cheap_checks_go_on():
    stuck, good = CheapBlocking(), CheapCounting()
    scheduler = make([(cfg("stuck", interval=10, timeout=3), stuck), (cfg("good", interval=10), good)])
    try:
        scheduler.step(1000.0, 0.0)  # stuck was submitted first: good waits behind it on the lane
        time.sleep(0.2)
        assert good.calls == 0
        runs = scheduler.step(1003.0, 3.0)  # stuck times out: the lane is replaced, good runs on the new one
        assert [(r.check, r.results[0].reason) for r in runs] == [("stuck", "still running after 3 s")]
        later = drain(scheduler, 1003.5, 3.5, until=lambda runs: any(r.check == "good" for r in runs))
        assert [r.check for r in later] == ["good"]
        assert good.calls == 1
        later = drain(scheduler, 1010.0, 10.0, until=lambda runs: any(r.check == "good" for r in runs))
        assert good.calls == 2
        assert [r.check for r in later if r.error.startswith("hung (the run started at ")] == ["stuck"]
    finally:
        stuck.release()
        scheduler.close()


def test_stuck_runs_past_the_cap_make_the_scheduler_unhealthy_until_they_return(monkeypatch):
    import monagent.scheduler as scheduler_module

    monkeypatch.setattr(scheduler_module, "ABANDONED_THREAD_CAP", 1)
    first, second = Blocking(), Blocking()
    scheduler = make([(cfg("one", timeout=1), first), (cfg("two", timeout=1), second)])
    try:
        scheduler.step(1000.0, 0.0)
        scheduler.step(1001.0, 1.0)  # both pass their timeout: two runs stuck, cap 1
        assert scheduler.unhealthy
        first.release()
        second.release()
        drain(scheduler, 1001.5, 1.5, until=lambda runs: all(i.run is None for i in scheduler.instances.values()))
        assert not scheduler.unhealthy  # the stuck runs returned: no restart for old trouble
    finally:
        first.release()
        second.release()
        scheduler.close()


def test_a_hung_check_fails_every_cycle_until_check_failing_fires_and_resolves_when_it_returns(tmp_path, monkeypatch):
    """A run() that never returns: UNKNOWN at its timeout, then "hung (the run started at HH:MM has not
    returned)" every cycle (said once: the line's own "since" is the alert's), so the
    "check failing" alert fires after the configured runs, as for any failing check."""
    from alerting_helpers import Clock, config, open_pipeline
    from alerting_helpers import drain as drain_outbox

    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    cfg_text = '[checks.stuck]\ntype = "verdict"\ninterval = "10s"\ntimeout = "3s"\n'
    alert_cfg = config(tmp_path, cfg_text)
    clock = Clock()
    pipeline = open_pipeline(alert_cfg, clock)
    blocked = Blocking()
    scheduler = make([(alert_cfg.checks[0], blocked)], mono=clock.mono)
    lines = []
    try:
        for _ in range(5):
            now, mono = clock.wall, clock.mono
            runs = drain(scheduler, now, mono, until=bool, limit=0.3)
            runs += scheduler.step(now + 3, mono + 3)
            pipeline.observe(runs, now + 3, mono + 3)
            lines += drain_outbox(pipeline.store)
            clock.step(10)
        assert [line for line in lines if line.startswith("FIRING")] == [
            "FIRING warning web01 stuck #unknown check is failing: hung (the run started at 14:13 has not returned) since 14:13"
        ]  # the timeout, then two runs that could not start: three failed runs in a row
        assert scheduler.instances["stuck"].skipped == 4
        from monagent.alerting.status import gather
        from monagent.commands.alerts import render_status

        text = render_status(gather(alert_cfg, pipeline.store, clock.wall, running=True))
        shown = [line for line in text if "has not returned" in line]
        assert len(shown) == 2, text  # the alert and the check failing, each saying "since" once at most
        assert all(line.count("since") <= 1 and "hung since" not in line for line in shown), text
        for _ in range(6):
            blocked.release()  # the hung call returns, and so do the next runs
        drain(scheduler, clock.wall, clock.mono, until=lambda runs: scheduler.instances["stuck"].run is None, limit=2)
        for _ in range(4):
            runs = drain(scheduler, clock.wall, clock.mono, until=bool, limit=2)
            pipeline.observe(runs, clock.wall, clock.mono)
            lines += drain_outbox(pipeline.store)
            clock.step(10)
        assert any(line.startswith("RESOLVED web01 stuck #unknown check is failing") for line in lines)
    finally:
        blocked.release()
        scheduler.close()
        monkeypatch.delenv("TZ")
        time.tzset()


def test_the_last_run_in_flight_to_end_sets_the_wake_event_and_one_step_collects_the_cycle():
    """The loop is woken by the runs' end, not by a timer (the clock given to step() does not move),
    and once per cycle: when the last run started is done, so the cycle is observed in one step."""
    gated, cheap = Gated(), Counting()
    cheap.non_blocking = True  # the shared lane counts too
    wake = threading.Event()
    scheduler = Scheduler(
        [(cfg("gated"), gated), (cfg("cheap"), cheap)], lambda now, mono: "ctx", monotonic=0.0, splay=0.0, wake=wake
    )
    try:
        assert scheduler.step(1000.0, 0.0) == []  # both started
        deadline = time.monotonic() + 10
        while cheap.calls == 0 and time.monotonic() < deadline:
            time.sleep(0.005)
        assert cheap.calls == 1
        assert not wake.wait(0.2)  # the cheap run ended, the gated one is still in flight: no wake-up yet
        gated.gate.set()
        assert wake.wait(10)  # the last one ended
        assert sorted(r.check for r in scheduler.step(1000.0, 0.0)) == ["cheap", "gated"]
    finally:
        gated.gate.set()
        scheduler.close()


def test_a_run_past_its_timeout_no_longer_holds_back_the_wake_up():
    """A hung run is abandoned at its timeout; from then on the others' ends wake the loop again."""
    blocked, quick = Blocking(), Counting()
    wake = threading.Event()
    scheduler = Scheduler(
        [(cfg("stuck", interval=10, timeout=3), blocked), (cfg("quick", interval=10), quick)],
        lambda now, mono: "ctx",
        monotonic=0.0,
        splay=0.0,
        wake=wake,
    )
    try:
        scheduler.step(1000.0, 0.0)
        deadline = time.monotonic() + 10
        while quick.calls == 0 and time.monotonic() < deadline:
            time.sleep(0.005)
        assert not wake.wait(0.2)  # the stuck run is in flight
        runs = scheduler.step(1003.0, 3.0)  # its timeout (the loop's timer): abandoned; quick's result comes too
        assert sorted((r.check, r.error) for r in runs) == [("quick", ""), ("stuck", "still running after 3 s")]
        wake.clear()
        scheduler.step(1010.0, 10.0)  # the next cycle: quick runs, stuck cannot start (hung)
        assert wake.wait(10)  # quick is the only run in flight: its end wakes the loop
        assert [r.check for r in scheduler.step(1010.0, 10.0)] == ["quick"]
    finally:
        blocked.release()
        scheduler.close()
