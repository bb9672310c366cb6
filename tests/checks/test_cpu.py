"""The CPU check: deltas kept on the instance, the first run warming up, load per core."""

from __future__ import annotations

import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from monagent.checks.cpu import CpuCheck

from monagent.api import CheckError, Formatter, Result
from monagent.context import CycleContext, SystemFacts
from monagent.procfs import CpuTimes

DATA = Path(__file__).resolve().parent.parent / "data" / "proc"
BASE = CpuTimes(
    user=1000.0, nice=0.0, system=500.0, idle=8000.0, iowait=100.0, irq=0.0, softirq=20.0, steal=30.0, guest=0.0, guest_nice=0.0
)


class Times(CycleContext):
    """The captured tree (4 CPUs, loadavg 3.40 2.10 1.80) with given CPU times."""

    def __init__(self, times: CpuTimes) -> None:
        super().__init__(SystemFacts("web-01", proc_root=DATA), 1000.0, 50.0)
        self.times = times

    def cpu_times(self) -> CpuTimes:
        return self.times


def values(result: Result) -> dict:
    return {m.name: m.value for m in result.metrics}


def test_the_first_run_is_warming_up_not_a_fake_zero():
    result = CpuCheck().run(Times(BASE))
    assert values(result) == {
        "used_percent": None,
        "iowait_percent": None,
        "steal_percent": None,
        "load1_per_core": 0.85,
        "load5_per_core": 0.525,
        "load15_per_core": 0.45,
    }
    assert Formatter("en").text(result.reason) == "warming up; load per core 0.85 0.53 0.45 (4 CPUs)"
    assert Formatter("zh").text(result.reason) == "正在采集基线；每核负载 0.85 0.53 0.45（共 4 个 CPU）"


def test_utilisation_iowait_and_steal_are_computed_over_the_interval():
    check = CpuCheck()
    check.run(Times(BASE))
    later = BASE._replace(user=1060.0, system=520.0, idle=8100.0, iowait=110.0, steal=40.0)
    result = check.run(Times(later))
    assert values(result)["used_percent"] == 45.0  # (200 - 100 idle - 10 iowait) / 200
    assert values(result)["iowait_percent"] == 5.0
    assert values(result)["steal_percent"] == 5.0
    assert Formatter("en").text(result.reason) == "45% used, iowait 5%, steal 5%; load per core 0.85 0.53 0.45 (4 CPUs)"
    assert result.facts == {"cpus": 4}


def test_guest_time_is_not_counted_twice():
    check = CpuCheck()
    check.run(Times(BASE))
    result = check.run(Times(BASE._replace(user=1100.0, idle=8100.0, guest=50.0)))
    assert values(result)["used_percent"] == 50.0


def test_cpu_times_that_step_backwards_are_clamped():
    check = CpuCheck()
    check.run(Times(BASE))
    result = check.run(Times(BASE._replace(user=1100.0, idle=7990.0)))
    assert values(result)["used_percent"] == 100.0 and values(result)["iowait_percent"] == 0.0
    assert values(check.run(Times(BASE)))["used_percent"] is None  # nothing moved forward at all


def test_each_instance_keeps_its_own_baseline():
    first, second = CpuCheck(), CpuCheck()
    first.run(Times(BASE))
    assert values(second.run(Times(BASE._replace(idle=9000.0))))["used_percent"] is None


def test_a_plain_fake_context_is_enough():
    ctx = SimpleNamespace(proc_root=DATA, cpu_times=lambda: BASE)
    assert values(CpuCheck().run(ctx))["load1_per_core"] == 0.85


def test_a_missing_loadavg_is_reported_as_an_error(tmp_path):
    (tmp_path / "stat").write_text("cpu  1 2 3 4 5 6 7 8 0 0\ncpu0 1 2 3 4 5 6 7 8 0 0\n")
    ctx = SimpleNamespace(proc_root=tmp_path, cpu_times=lambda: BASE)
    with pytest.raises(CheckError, match=f"^cannot read {tmp_path}/loadavg: "):
        CpuCheck().run(ctx)


def test_the_live_system_reports_percentages_from_the_second_run_on():
    facts = SystemFacts("here")
    check = CpuCheck()
    check.run(facts.cycle(time.time(), time.monotonic()))
    sum(i * i for i in range(300000))  # some CPU time between the samples
    result = values(check.run(facts.cycle(time.time(), time.monotonic())))
    assert 0 <= result["used_percent"] <= 100 and 0 <= result["steal_percent"] <= 100
    assert result["load1_per_core"] >= 0
