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


def cfg(name, interval=10.0, timeout=5.0, enabled=True):
    return CheckConfig(name, "test", interval, timeout, enabled, {}, {}, AlertingOverrides())


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


def test_first_run_is_splayed_within_the_splay_window():
    checks = [(cfg(f"c{i}", interval=60), Counting()) for i in range(20)]
    scheduler = make(checks, splay=10.0)
    dues = [i.next_due for i in scheduler.instances.values()]
    assert all(0 <= d <= 10 for d in dues)
    assert len(set(dues)) > 10


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
        # the next cycle: stuck is still in flight, so its run is skipped and counted; good runs on
        drain(scheduler, 1010.0, 10.0)
        assert good.calls == 2
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
        drain(scheduler, 1010.0, 10.0, until=lambda runs: any(r.check == "good" for r in runs))
        assert good.calls == 2
        assert scheduler.instances["stuck"].skipped == 1
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
