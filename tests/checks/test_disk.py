"""The disk check against the captured host mount table, a real hanging FUSE mount and the live system."""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Dict, Union

import pytest
from fuse_hang import Unavailable, mount_hanging
from monagent.checks.disk import DiskCheck

from monagent.api import DiskUsage, Formatter, Result, Status, StuckCall
from monagent.context import CycleContext, SystemFacts
from monagent.workers import format_since

DATA = Path(__file__).resolve().parent.parent / "data" / "proc"
GiB = 2**30
T0 = 1_790_000_000.0
EN, ZH = Formatter("en"), Formatter("zh")


def said(result: Result, fmt: Formatter = EN) -> str:
    return fmt.text(result.reason)


def usage(
    used_gib: float, free_gib: float, *, total_gib: float = 0, inodes: int = 1000, inodes_used: int = 100, read_only: bool = False
) -> DiskUsage:
    used, free = int(used_gib * GiB), int(free_gib * GiB)
    return DiskUsage(
        total=int(total_gib * GiB) or used + free,
        used=used,
        free=free,
        inodes_total=inodes,
        inodes_used=inodes_used,
        inodes_free=inodes - inodes_used,
        read_only=read_only,
    )


class Statfs(CycleContext):
    """The captured tree with statvfs answers given per mount point (or an exception to raise)."""

    def __init__(self, facts: SystemFacts, monotonic: float, answers: Dict[str, Union[DiskUsage, Exception]]):
        super().__init__(facts, T0 + monotonic, monotonic)
        self.answers = answers

    def disk_usage(self, path: str, timeout: float = 5.0) -> DiskUsage:
        answer = self.answers.get(path, usage(10, 90))
        if isinstance(answer, Exception):
            raise answer
        return answer


@pytest.fixture
def facts():
    system = SystemFacts("web-01", proc_root=DATA)
    yield system
    system.close()


def by_subject(results) -> Dict[str, Result]:
    return {r.subject: r for r in results}


def metric(result: Result, name: str):
    return next(m.value for m in result.metrics if m.name == name)


def test_every_real_filesystem_is_found_and_pseudo_bind_snap_and_overlay_mounts_are_not(facts):
    results = DiskCheck().run(Statfs(facts, 0.0, {}))
    assert [r.subject for r in results] == [
        "/",
        "/boot",
        "/boot/efi",
        "/data disk",
        "/mnt/nfs",
        "/srv/backup",
        "/srv/logs",
        "/srv/pool",
        "/var",
    ]
    assert all(r.discovered for r in results)


def test_exclude_patterns_and_filesystem_types_narrow_the_discovery(facts):
    check = DiskCheck(exclude=["/srv/*", "/boot*"], exclude_fstypes=["nfs4"])
    assert [r.subject for r in check.run(Statfs(facts, 0.0, {}))] == ["/", "/data disk", "/var"]


def test_used_percent_counts_the_root_reserve_as_df_does(facts):
    # 100 GiB filesystem, 5 GiB reserved for root: 90 used + 5 available
    ctx = Statfs(facts, 0.0, {"/var": usage(90, 5, total_gib=100, inodes=1000, inodes_used=870)})
    result = by_subject(DiskCheck(mounts=["/var"]).run(ctx))["/var"]
    assert metric(result, "used_percent") == 94.74
    assert metric(result, "free_bytes") == 5 * GiB
    assert metric(result, "inodes_percent") == 87.0
    assert metric(result, "read_only") == 0.0
    assert metric(result, "hours_to_full") is None
    assert said(result) == "94.7% used" and said(result, ZH) == "已用 94.7%"  # as the used_percent value reads
    assert result.facts == {"filesystem": "xfs /dev/mapper/vg0-var", "free": 5 * GiB}
    assert result.status is None and not result.discovered


def test_a_configured_mount_that_is_missing_is_critical(facts):
    results = by_subject(DiskCheck(mounts=["/", "/data"]).run(Statfs(facts, 0.0, {})))
    assert results["/data"].status == Status.CRITICAL
    assert said(results["/data"]) == "/data is not mounted" and said(results["/data"], ZH) == "/data 未挂载"
    assert metric(results["/"], "used_percent") == 10.0


def test_a_filesystem_without_inodes_has_no_inode_value(facts):
    ctx = Statfs(facts, 0.0, {"/srv/pool": usage(1, 9, inodes=0, inodes_used=0)})
    assert metric(by_subject(DiskCheck().run(ctx))["/srv/pool"], "inodes_percent") is None


def test_a_kernel_remount_read_only_alerts_and_a_read_only_by_design_mount_does_not(facts):
    results = by_subject(DiskCheck().run(Statfs(facts, 0.0, {})))
    assert metric(results["/srv/logs"], "read_only") == 1.0
    assert results["/srv/logs"].facts["read_only"] is True
    assert said(results["/srv/logs"]) == "10% used; remounted read-only by the kernel after filesystem errors"
    assert said(results["/srv/logs"], ZH) == "已用 10%；文件系统出错，已被内核重新挂载为只读"
    assert metric(results["/srv/backup"], "read_only") == 0.0
    assert "read_only" not in results["/srv/backup"].facts


def test_a_mount_seen_read_write_that_turns_read_only_alerts(tmp_path):
    root = tmp_path / "proc"
    shutil.copytree(DATA, root)
    system = SystemFacts("web-01", proc_root=root)
    check = DiskCheck(mounts=["/var"])
    assert metric(check.run(Statfs(system, 0.0, {}))[0], "read_only") == 0.0
    info = root / "1" / "mountinfo"
    info.write_text(
        info.read_text().replace(
            "/var rw,relatime shared:27 - xfs /dev/mapper/vg0-var rw,", "/var ro,relatime shared:27 - xfs /dev/mapper/vg0-var ro,"
        )
    )
    result = check.run(Statfs(system, 60.0, {}))[0]
    assert metric(result, "read_only") == 1.0
    assert result.facts["read_only"] is True and said(result).endswith("; was read-write, now read-only")
    # a fresh instance that never saw it writable takes it as read-only by design
    assert metric(DiskCheck(mounts=["/var"]).run(Statfs(system, 120.0, {}))[0], "read_only") == 0.0


def filling(check: DiskCheck, facts: SystemFacts, seconds: float, start: float = 0.90475, rate: float = 0.021):
    """Run the check on "/" filling at ``rate`` of its size per hour; return the last result."""
    capacity = 100 * GiB
    result = None
    for when in range(0, int(seconds) + 1, 60):
        used = int(capacity * (start + rate * when / 3600))
        ctx = Statfs(facts, float(when), {"/": DiskUsage(capacity, used, capacity - used, 1000, 10, 990, False)})
        result = check.run(ctx)[0]
    return result


def test_time_to_full_comes_from_a_linear_fit_of_recent_samples(facts):
    result = filling(DiskCheck(mounts=["/"]), facts, 900)
    assert said(result) == "91% used; +2.1%/h; full in about 4h17m"
    assert said(result, ZH) == "已用 91%；每小时增长 2.1%；约4小时17分后写满"
    assert result.facts["trend"] == 2.1 and result.facts["time_to_full"] == 15444
    assert metric(result, "hours_to_full") == 4.29


def test_there_is_no_trend_until_the_samples_span_a_quarter_of_the_window(facts):
    result = filling(DiskCheck(mounts=["/"]), facts, 840)
    assert said(result) == "91% used"
    assert metric(result, "hours_to_full") is None and "trend" not in result.facts


def test_a_filesystem_that_is_not_filling_has_a_trend_but_no_time_to_full(facts):
    result = filling(DiskCheck(mounts=["/"]), facts, 1800, start=0.5, rate=-0.01)
    assert said(result) == "49.5% used; -1%/h" and said(result, ZH) == "已用 49.5%；每小时减少 1%"
    assert metric(result, "hours_to_full") is None


def test_a_clean_up_restarts_the_trend(facts):
    check = DiskCheck(mounts=["/"])
    filling(check, facts, 900)
    ctx = Statfs(facts, 960.0, {"/": usage(40, 60)})
    result = check.run(ctx)[0]
    assert said(result) == "40% used" and metric(result, "hours_to_full") is None


def test_a_stuck_statfs_makes_only_that_mount_unknown(facts):
    stuck = StuckCall("statfs of /mnt/nfs did not return within 5s")
    results = by_subject(DiskCheck().run(Statfs(facts, 0.0, {"/mnt/nfs": stuck})))
    assert results["/mnt/nfs"].status == Status.UNKNOWN and results["/mnt/nfs"].discovered
    assert said(results["/mnt/nfs"]) == "statfs of /mnt/nfs did not return within 5s (a hung network or FUSE mount?)"
    assert results["/var"].status is None and metric(results["/var"], "used_percent") == 10.0


def fixed_usage(path: str) -> DiskUsage:
    return usage(10, 90)


def hang(path: str) -> DiskUsage:
    while True:
        time.sleep(3600)


class InjectedHang(CycleContext):
    """The real worker pool and stuck registry, with a statvfs that blocks for /mnt/nfs."""

    def disk_usage(self, path: str, timeout: float = 5.0) -> DiskUsage:
        func = hang if path == "/mnt/nfs" else fixed_usage
        return self.facts.pool.call(func, path, timeout=timeout, key=("statfs", path), what=f"statfs of {path}")


def slow_usage(path: str) -> DiskUsage:
    time.sleep(0.3)
    return usage(10, 90)


def warm_up(pool) -> None:
    """Start both of the pool's workers (two calls at once) so later calls find them idle."""
    import threading

    calls = [threading.Thread(target=pool.call, args=(slow_usage, "/"), kwargs={"timeout": 120.0}) for _ in range(2)]
    for call in calls:
        call.start()
    for call in calls:
        call.join()


def test_a_blocking_statfs_costs_one_worker_and_is_refused_at_once_in_later_cycles():
    from monagent.workers import WorkerPool

    pool = WorkerPool(clock=lambda: T0)
    system = SystemFacts("web-01", proc_root=DATA, pool=pool)
    check = DiskCheck(statfs_timeout=0.5)
    try:
        warm_up(pool)  # the half-second limits below time statfs, not the start of an interpreter under load
        first = by_subject(check.run(InjectedHang(system, T0, 0.0)))
        assert said(first["/mnt/nfs"]) == "statfs of /mnt/nfs did not return within 500 ms (a hung network or FUSE mount?)"
        assert first["/mnt/nfs"].status == Status.UNKNOWN
        assert metric(first["/var"], "used_percent") == 10.0
        started = time.monotonic()
        second = by_subject(check.run(InjectedHang(system, T0 + 60, 60.0)))
        assert time.monotonic() - started < 0.5 * 8  # no new half-second wait per cycle
        assert said(second["/mnt/nfs"]) == (
            f"statfs of /mnt/nfs still stuck since {format_since(T0)} (did not return within 500 ms)"
        )
        assert said(second["/mnt/nfs"], ZH).startswith("/mnt/nfs 的 statfs 调用自 ")
        assert list(pool.stuck()) == [("statfs", "/mnt/nfs")]
    finally:
        pool.close()


def test_a_real_fuse_mount_whose_statfs_hangs_is_unknown_and_the_others_are_fine(tmp_path):
    mountpoint = tmp_path / "dead-nfs"
    try:
        fs = mount_hanging(mountpoint)
    except Unavailable as exc:
        pytest.skip(f"FUSE cannot be mounted here: {exc}")
    system = SystemFacts("here", mountinfo=Path("/proc/self/mountinfo"))
    try:
        check = DiskCheck(mounts=["/", str(mountpoint)], statfs_timeout=0.5)
        results = by_subject(check.run(system.cycle(time.time(), time.monotonic())))
        assert results[str(mountpoint)].status == Status.UNKNOWN
        assert said(results[str(mountpoint)]).startswith(f"statfs of {mountpoint} did not return within 500 ms")
        assert 0 <= metric(results["/"], "used_percent") <= 100
        again = by_subject(check.run(system.cycle(time.time(), time.monotonic())))
        assert said(again[str(mountpoint)]).startswith(f"statfs of {mountpoint} still stuck since ")
        assert fs.statfs_requests == 1  # the second cycle did not send another statfs into the dead mount
    finally:
        fs.close()  # aborts the connection, which frees the worker blocked in the kernel
        system.close()


def test_the_live_system_has_a_root_filesystem():
    system = SystemFacts("here")
    try:
        results = by_subject(DiskCheck().run(system.cycle(time.time(), time.monotonic())))
    finally:
        system.close()
    root = results["/"]
    assert root.discovered and root.status is None
    assert 0 < metric(root, "used_percent") < 100 and metric(root, "free_bytes") > 0


def test_the_plugin_test_kit_judges_the_disk_check_with_its_default_thresholds():
    from monagent.testing import HANGS, FakeContext, fake_disk_usage, fake_mount, run_check

    mounts = [fake_mount("/var", device="8:1"), fake_mount("/mnt/nfs", "nfs4", "nas:/x", device="0:50")]
    ctx = FakeContext(mounts=mounts, disk_usage={"/var": fake_disk_usage(100 * GiB, 96 * GiB), "/mnt/nfs": HANGS})
    report = run_check(DiskCheck, {"mounts": ["/var", "/mnt/nfs", "/data"]}, ctx)
    assert report.status == Status.CRITICAL
    assert said(report.result("/var")) == "96% used"
    assert report.status_of("used_percent", "/var") == Status.CRITICAL
    assert report.result("/mnt/nfs").status == Status.UNKNOWN
    assert said(report.result("/data")) == "/data is not mounted"


def test_the_check_shares_the_non_blocking_thread_only_while_every_filesystem_it_watches_is_local():
    from monagent.testing import FakeContext, fake_disk_usage, fake_mount

    usage = fake_disk_usage(100 * GiB, 10 * GiB)
    mounts = [fake_mount("/var", device="8:1"), fake_mount("/mnt/nfs", "nfs4", "nas:/x", device="0:50")]
    check = DiskCheck()
    check.run(FakeContext(mounts=mounts[:1], disk_usage={"/var": usage}))
    assert check.non_blocking is True  # statfs in-process, microseconds: the shared thread
    check.run(FakeContext(mounts=mounts, disk_usage={"/var": usage, "/mnt/nfs": usage}, remote_paths=["/mnt/nfs"]))
    assert check.non_blocking is False  # a statfs that may wait for its timeout: a thread of its own
    assert DiskCheck.non_blocking is False and DiskCheck().non_blocking is False  # until a run has looked
