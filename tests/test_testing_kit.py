"""monagent.testing: a plugin built, run against fake facts, and judged in a few lines."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Dict, List, Optional, Sequence

import pytest

from monagent.api import (
    Check,
    CheckError,
    Context,
    Direction,
    Metric,
    MetricSpec,
    Occurrence,
    Result,
    Status,
    StuckCall,
    Threshold,
)
from monagent.confread import ConfigError
from monagent.testing import (
    HANGS,
    FakeContext,
    build_check,
    fake_cpu_times,
    fake_disk_usage,
    fake_mount,
    fake_process,
    run_check,
)

# ---------------------------------------------------------------- checks written the way a user would


class WorkerCount(Check):
    metrics: ClassVar[Dict[str, MetricSpec]] = {"count": MetricSpec(critical=1, direction=Direction.BELOW)}

    def __init__(self, *, name: str, argument: str = "") -> None:
        self.name = name
        self.argument = argument

    def run(self, ctx: Context) -> Result:
        pids = [p.pid for p in ctx.processes() if p.comm == self.name]
        if self.argument:
            pids = [pid for pid in pids if self.argument in ctx.cmdline(pid)]
        return Result(subject=self.name, metrics=(Metric("count", len(pids)),))


class MountSpace(Check):
    metrics: ClassVar[Dict[str, MetricSpec]] = {
        "used_percent": MetricSpec(unit="%", warning=85, critical=95, minimum=0, maximum=100),
    }

    def __init__(self, *, fstypes: Sequence[str] = ("ext4", "xfs")) -> None:
        self.fstypes = tuple(fstypes)

    def run(self, ctx: Context) -> List[Result]:
        results = []
        for mount in ctx.mounts():
            if mount.fstype not in self.fstypes:
                continue
            try:
                usage = ctx.disk_usage(mount.mountpoint, timeout=2.0)
            except StuckCall as exc:
                results.append(Result(subject=mount.mountpoint, status=Status.UNKNOWN, reason=str(exc)))
                continue
            results.append(Result(subject=mount.mountpoint, metrics=(Metric("used_percent", usage.used_percent, "%"),)))
        return results


class CpuBusy(Check):
    metrics: ClassVar[Dict[str, MetricSpec]] = {"busy_percent": MetricSpec(unit="%", warning=80, critical=95)}

    def __init__(self) -> None:
        self.previous = None

    def run(self, ctx: Context) -> Result:
        now = ctx.cpu_times()
        busy: Optional[float] = None
        if self.previous is not None:
            total = sum(now) - sum(self.previous)
            idle = (now.idle + now.iowait) - (self.previous.idle + self.previous.iowait)
            busy = 100.0 * (total - idle) / total if total else 0.0
        self.previous = now
        return Result(metrics=(Metric("busy_percent", busy, "%"),))


def _read_marker(path: str) -> str:
    return Path(path).read_text()


class Reboot(Check):
    metrics: ClassVar[Dict[str, MetricSpec]] = {}

    def __init__(self, *, marker: Path = Path("/var/lib/app/marker")) -> None:
        self.marker = marker
        self.seen_boot = ""

    def run(self, ctx: Context) -> Result:
        text = ctx.run_blocking(_read_marker, str(self.marker), timeout=3.0)
        boot = ctx.boot_id()
        occurrences = ()
        if self.seen_boot and boot != self.seen_boot:
            occurrences = (Occurrence(id=boot, summary=f"rebooted at {ctx.boot_time():.0f}"),)
        self.seen_boot = boot
        if not text:
            raise CheckError(f"{self.marker} is empty")
        return Result(status=Status.OK, reason=text.strip(), occurrences=occurrences)


# ---------------------------------------------------------------- running and judging


def test_a_check_runs_against_a_fake_process_table_and_is_judged_by_its_default_threshold():
    ctx = FakeContext(processes=[fake_process(10, "nginx"), fake_process(11, "nginx", ppid=10), fake_process(12, "sshd")])
    report = run_check(WorkerCount, {"name": "nginx"}, ctx)
    assert report.value("count") == 2
    assert report.status == Status.OK
    assert report.statuses == {("nginx", "count"): Status.OK}
    down = run_check(WorkerCount, {"name": "postgres"}, ctx)
    assert down.statuses == {("postgres", "count"): Status.CRITICAL}
    assert down.summary == "postgres: count 0 (< 1)"


def test_command_lines_come_from_the_fake_table():
    ctx = FakeContext(
        processes=[fake_process(10, "python3"), fake_process(11, "python3")],
        cmdlines={10: ["python3", "-m", "celery"], 11: ["python3", "manage.py"]},
    )
    assert run_check(WorkerCount, {"name": "python3", "argument": "celery"}, ctx).value("count") == 1


def test_every_mount_gets_a_result_and_a_hanging_one_is_unknown_with_the_agents_wording():
    ctx = FakeContext(
        mounts=[fake_mount("/"), fake_mount("/data", "xfs"), fake_mount("/mnt/nfs"), fake_mount("/proc", "proc")],
        disk_usage={"/": fake_disk_usage(100, 50), "/data": fake_disk_usage(1000, 960), "/mnt/nfs": HANGS},
    )
    report = run_check(MountSpace, context=ctx)
    assert report.subjects() == ["/", "/data", "/mnt/nfs"]
    assert report.statuses == {
        ("/", "used_percent"): Status.OK,
        ("/data", "used_percent"): Status.CRITICAL,
        ("/mnt/nfs", "status"): Status.UNKNOWN,
    }
    assert report.result("/mnt/nfs").reason == "statfs of /mnt/nfs did not return within 2s"
    assert report.status == Status.CRITICAL
    assert ctx.calls == [("statfs", "/", 2.0), ("statfs", "/data", 2.0), ("statfs", "/mnt/nfs", 2.0)]


def test_reserved_blocks_make_used_percent_what_df_shows():
    usage = fake_disk_usage(total=1000, used=900, free=50)
    assert usage.used_percent == pytest.approx(100 * 900 / 950)


def test_a_rate_check_warms_up_then_measures_between_ticks_with_the_same_instance():
    ctx = FakeContext(cpu_times=[fake_cpu_times(user=100, idle=900), fake_cpu_times(user=190, idle=910)])
    check = build_check(CpuBusy)
    first = run_check(check, context=ctx)
    assert first.value("busy_percent") is None
    assert first.statuses == {}  # no value yet: nothing to alert on
    second = run_check(check, context=ctx.tick(60))
    assert second.value("busy_percent") == 90.0
    assert second.statuses == {("", "busy_percent"): Status.WARNING}
    assert (ctx.now, ctx.monotonic) == (1_700_000_060.0, 1_060.0)


def test_thresholds_given_as_config_tables_or_objects_replace_the_defaults():
    ctx = FakeContext(mounts=[fake_mount("/")], disk_usage={"/": fake_disk_usage(100, 50)})
    as_table = run_check(MountSpace, context=ctx, thresholds={"used_percent": {"warning": 40, "critical": 60}})
    as_object = run_check(MountSpace, context=ctx, thresholds={"used_percent": Threshold(warning=30, critical=45)})
    assert as_table.status_of("used_percent", "/") == Status.WARNING
    assert as_object.status_of("used_percent", "/") == Status.CRITICAL
    assert as_table.thresholds["used_percent"] == Threshold(warning=40, critical=60)


def test_blocking_calls_run_directly_or_hang_on_request(tmp_path):
    marker = tmp_path / "marker"
    marker.write_text("ready\n")
    ctx = FakeContext(boot_id="b1")
    check = build_check(Reboot, {"marker": str(marker)})
    assert run_check(check, context=ctx).result().reason == "ready"
    ctx.boot, ctx.boot_seconds = "b2", 1_700_000_500.0
    rebooted = run_check(check, context=ctx)
    assert rebooted.occurrences == (Occurrence(id="b2", summary="rebooted at 1700000500"),)
    ctx.hanging_functions.append(_read_marker)
    hung = run_check(check, context=ctx)
    assert (hung.status, hung.result().reason) == (Status.UNKNOWN, "_read_marker did not return within 3s")
    assert ctx.calls[-1] == ("_read_marker", (str(marker),), 3.0)


def test_a_check_error_becomes_unknown_with_its_message_as_in_the_agent(tmp_path):
    empty = tmp_path / "marker"
    empty.write_text("")
    report = run_check(Reboot, {"marker": str(empty)})
    assert (report.status, report.result().reason) == (Status.UNKNOWN, f"{empty} is empty")


def test_any_other_exception_reaches_the_test_with_its_traceback():
    with pytest.raises(FileNotFoundError):
        run_check(Reboot, {"marker": "/nonexistent/marker"})


# ---------------------------------------------------------------- the user's error messages


def test_options_are_validated_with_the_config_loaders_messages():
    with pytest.raises(ConfigError) as error:
        run_check(WorkerCount, {"nmae": "nginx", "argument": 5})
    assert str(error.value).split("\n") == [
        '<run_check>: checks.test.nmae: unknown option for check type "WorkerCount" (did you mean "name"?); '
        "accepted options: argument, name",
        "<run_check>: checks.test.argument: must be a string, got 5",
        '<run_check>: checks.test.name: is required by check type "WorkerCount"',
    ]


def test_tuples_and_paths_are_accepted_where_toml_would_give_arrays_and_strings(tmp_path):
    check = build_check(MountSpace, {"fstypes": ("btrfs",)})
    assert check.fstypes == ("btrfs",)  # type: ignore[attr-defined]
    assert build_check(Reboot, {"marker": tmp_path}).marker == tmp_path  # type: ignore[attr-defined]


def test_bad_thresholds_are_reported_like_the_config_reports_them():
    with pytest.raises(ConfigError) as error:
        run_check(MountSpace, thresholds={"used_pct": {"warning": 1}, "used_percent": {"warning": 90, "critical": 80}})
    assert str(error.value).split("\n") == [
        '<run_check>: checks.test.thresholds.used_pct: unknown metric (did you mean "used_percent"?); '
        "this check type's metrics: used_percent",
        "<run_check>: checks.test.thresholds.used_percent.critical: must not be less severe than warning (90) "
        'for direction = "above"',
    ]


def test_options_belong_to_a_class_not_to_a_built_instance():
    with pytest.raises(TypeError, match="options are for a check class"):
        run_check(build_check(CpuBusy), {"x": 1})


def test_a_metric_asked_for_without_its_subject_must_be_unique():
    ctx = FakeContext(
        mounts=[fake_mount("/"), fake_mount("/var")], disk_usage={"/": fake_disk_usage(10, 1), "/var": fake_disk_usage(10, 2)}
    )
    report = run_check(MountSpace, context=ctx)
    assert report.value("used_percent", "/var") == 20.0
    with pytest.raises(KeyError, match='2 metrics named "used_percent"; pass subject='):
        report.metric("used_percent")


def test_fake_facts_that_were_not_set_say_how_to_set_them():
    ctx = FakeContext()
    with pytest.raises(LookupError, match=r"pass cpu_times=\[fake_cpu_times"):
        ctx.cpu_times()
    with pytest.raises(FileNotFoundError):
        ctx.disk_usage("/srv")
    with pytest.raises(TypeError, match="unknown cpu_times fields: usr"):
        fake_cpu_times(usr=1)
