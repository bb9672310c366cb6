"""The per-cycle context: /proc read once per cycle, mounts, CPU times, blocking calls.

``tests/data/proc`` is a captured /proc tree of a 4-CPU server: stat, meminfo, loadavg,
a host mountinfo (bind mounts, overlay, snaps, NFS, an errors=remount-ro casualty) and
a few processes (systemd, kthreadd, nginx master + workers + a zombie, two programs
whose names the kernel truncates to the same 15-byte comm, "(sd-pam)", a python script).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, List

import psutil
import pytest

from monagent import procfs
from monagent.api import Status, StuckCall
from monagent.context import SystemFacts
from monagent.procfs import CLOCK_TICKS, PAGE_SIZE

DATA = Path(__file__).parent / "data" / "proc"


def sleep_forever() -> None:
    while True:
        time.sleep(3600)


@pytest.fixture
def facts():
    system = SystemFacts("web-01", proc_root=DATA)
    yield system
    system.close()


@pytest.fixture
def proc_copy(tmp_path):
    root = tmp_path / "proc"
    shutil.copytree(DATA, root)
    return root


def test_the_process_table_is_read_from_proc_with_comm_state_ppid_uid_cpu_and_rss(facts):
    ctx = facts.cycle(1000.0, 50.0)
    table = {p.pid: p for p in ctx.processes()}
    assert sorted(table) == [1, 2, 812, 813, 814, 815, 1200, 1201, 1300, 1400]
    worker = table[814]
    assert (worker.comm, worker.state, worker.ppid, worker.uid) == ("nginx", "R", 812, 33)
    assert worker.cpu_seconds == (5120 + 2001) / CLOCK_TICKS
    assert worker.rss_bytes == 30720 * PAGE_SIZE
    assert worker.started == 1841
    assert table[815].state == "Z"
    assert table[1300].comm == "(sd-pam)"  # parentheses inside the comm field
    assert table[1200].comm == "gunicorn-worker"


def test_the_process_table_is_scanned_once_per_cycle_and_again_next_cycle(proc_copy):
    system = SystemFacts("web-01", proc_root=proc_copy)
    ctx = system.cycle(1000.0, 50.0)
    first = ctx.processes()
    shutil.copytree(proc_copy / "1400", proc_copy / "1500")
    assert ctx.processes() is first
    assert 1500 not in {p.pid for p in first}
    assert 1500 in {p.pid for p in system.cycle(1060.0, 110.0).processes()}


def test_a_process_that_vanishes_during_the_scan_is_skipped(proc_copy):
    (proc_copy / "4242").mkdir()  # listed by listdir, gone before its comm is read
    (proc_copy / "4243").mkdir()
    (proc_copy / "4243" / "comm").write_text("python3\n")
    stat = (proc_copy / "1400" / "stat").read_text().replace("1400", "4243", 1)
    (proc_copy / "4243" / "stat").write_text(stat)  # its status is gone when the uid is asked for
    ctx = SystemFacts("web-01", proc_root=proc_copy).cycle(1000.0, 50.0)
    table = {p.pid: p for p in ctx.processes()}
    assert 4242 not in table and 1 in table
    assert table[4243].uid == -1 and table[4243].comm == "python3" and table[4243].state == "S"


@pytest.fixture
def reads(monkeypatch) -> List[str]:
    """The files of the captured /proc tree opened while the test runs."""
    opened: List[str] = []
    real = os.open

    def counting(path: str, *args: Any, **kwargs: Any) -> int:
        if str(path).startswith(str(DATA)):
            opened.append(str(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", counting)
    return opened


def test_the_scan_reads_only_names_and_a_stat_waits_until_a_field_of_it_is_asked_for(facts, reads):
    table = {p.pid: p for p in facts.cycle(1000.0, 50.0).processes()}
    assert sorted(reads) == sorted(f"{DATA}/{pid}/comm" for pid in table)
    assert table[1300].comm == "(sd-pam)" and len(reads) == len(table)
    assert table[814].rss_bytes == 30720 * PAGE_SIZE
    assert reads[len(table) :] == [f"{DATA}/814/stat"]


def test_a_process_gone_between_the_name_and_the_stat_read_is_dead_with_zero_figures(proc_copy):
    ctx = SystemFacts("web-01", proc_root=proc_copy).cycle(1000.0, 50.0)
    table = {p.pid: p for p in ctx.processes()}
    shutil.rmtree(proc_copy / "814")
    gone = table[814]
    assert (gone.comm, gone.state, gone.ppid, gone.cpu_seconds, gone.rss_bytes, gone.started, gone.uid) == (
        "nginx",
        "X",
        0,
        0.0,
        0,
        0,
        -1,
    )
    assert (table[813].state, table[813].ppid) == ("S", 812)


def test_one_stat_read_fills_every_field_of_it_for_the_rest_of_the_cycle(proc_copy):
    ctx = SystemFacts("web-01", proc_root=proc_copy).cycle(1000.0, 50.0)
    worker = next(p for p in ctx.processes() if p.pid == 814)
    assert worker.state == "R"
    (proc_copy / "814" / "stat").unlink()
    assert (worker.ppid, worker.cpu_seconds, worker.rss_bytes, worker.started) == (
        812,
        (5120 + 2001) / CLOCK_TICKS,
        30720 * PAGE_SIZE,
        1841,
    )


def test_after_a_cycle_that_read_most_stats_the_next_scan_reads_stat_and_not_comm(facts, reads):
    light = facts.cycle(1000.0, 50.0).processes()
    assert sorted(p.state for p in light if p.comm == "nginx") == ["R", "S", "S", "Z"]
    reads.clear()
    heavy = facts.cycle(1060.0, 110.0).processes()  # 4 of 10 stats read last cycle: names again
    assert {path.rsplit("/", 1)[1] for path in reads} == {"comm"}
    assert all(p.state for p in heavy)  # this cycle reads every stat
    reads.clear()
    table = {p.pid: p for p in facts.cycle(1120.0, 170.0).processes()}
    assert {path.rsplit("/", 1)[1] for path in reads} == {"stat"} and len(reads) == 10
    assert table[1300].comm == "(sd-pam)" and table[1200].comm == "gunicorn-worker"
    worker = table[814]
    assert (worker.state, worker.ppid, worker.rss_bytes, worker.started) == ("R", 812, 30720 * PAGE_SIZE, 1841)
    assert len(reads) == 10  # parsed from the scan's read
    reads.clear()
    facts.cycle(1180.0, 230.0).processes()  # 1 of 10 read last cycle: names again
    assert {path.rsplit("/", 1)[1] for path in reads} == {"comm"}


def test_the_command_line_is_read_on_demand_and_cached_for_the_cycle(proc_copy):
    ctx = SystemFacts("web-01", proc_root=proc_copy).cycle(1000.0, 50.0)
    assert ctx.cmdline(1400) == ("/usr/bin/python3", "/opt/app/worker.py", "--queue", "emails")
    (proc_copy / "1400" / "cmdline").write_bytes(b"changed\0")
    assert ctx.cmdline(1400) == ("/usr/bin/python3", "/opt/app/worker.py", "--queue", "emails")
    assert ctx.cmdline(2) == ()  # a kernel thread
    assert ctx.cmdline(99999) == ()  # gone


def test_a_command_line_longer_than_one_read_is_read_whole():
    args = [f"{n:06d}" + "x" * 994 for n in range(100)]  # 100,100 bytes with the NULs: two reads
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", *args])
    try:
        ctx = SystemFacts("here").cycle(time.time(), time.monotonic())
        deadline = time.monotonic() + 10
        while len(ctx.cmdline(proc.pid)) < 3:  # exec is still setting argv up
            assert time.monotonic() < deadline
            time.sleep(0.01)
            ctx = SystemFacts("here").cycle(time.time(), time.monotonic())
        assert list(ctx.cmdline(proc.pid)) == [sys.executable, "-c", "import time; time.sleep(60)", *args]
    finally:
        proc.kill()
        proc.wait()


def test_mounts_come_from_the_host_mountinfo_with_escapes_undone(facts):
    mounts = {m.mountpoint: m for m in facts.cycle(1000.0, 50.0).mounts()}
    data = mounts["/data disk"]
    assert (data.device, data.fstype, data.source) == ("252:3", "ext4", "/dev/mapper/vg0-data")
    assert mounts["/srv/docker"].root == "/lib/docker"
    logs = mounts["/srv/logs"]
    assert logs.options[0] == "rw" and logs.super_options == ("ro", "errors=remount-ro") and logs.read_only
    assert mounts["/mnt/nfs"].source == "nas01:/export/home"
    assert len(mounts) == 29  # every line of the file


def test_mountinfo_falls_back_to_the_agents_own_view_when_pid_1_is_hidden(proc_copy):
    (proc_copy / "self").mkdir()
    shutil.move(str(proc_copy / "1" / "mountinfo"), str(proc_copy / "self" / "mountinfo"))
    ctx = SystemFacts("web-01", proc_root=proc_copy).cycle(1000.0, 50.0)
    assert "/var" in {m.mountpoint for m in ctx.mounts()}


def test_cpu_times_boot_time_and_boot_id_come_from_proc(facts):
    ctx = facts.cycle(1000.0, 50.0)
    times = ctx.cpu_times()
    assert times.user == 2255346 / CLOCK_TICKS and times.iowait == 66421 / CLOCK_TICKS
    assert times.steal == 18820 / CLOCK_TICKS
    assert ctx.cpu_count() == 4
    assert ctx.boot_time() == 1764225600.0
    assert ctx.boot_id() == "5c1a9f0e-3b7d-4e52-9c61-0f2d8a7b4e13"
    assert (ctx.hostname, ctx.now, ctx.monotonic, ctx.proc_root) == ("web-01", 1000.0, 50.0, DATA)


def test_checks_in_several_threads_share_one_scan(facts, monkeypatch):
    calls = []
    real = procfs.read_processes
    monkeypatch.setattr(procfs, "read_processes", lambda root, *args, **kwargs: calls.append(root) or real(root, *args, **kwargs))
    ctx = facts.cycle(1000.0, 50.0)
    seen = []
    threads = [threading.Thread(target=lambda: seen.append(ctx.processes())) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(calls) == 1 and all(table is seen[0] for table in seen)


def test_the_live_process_table_has_this_process_and_matches_psutil():
    ctx = SystemFacts("here").cycle(time.time(), time.monotonic())
    me = next(p for p in ctx.processes() if p.pid == os.getpid())
    proc = psutil.Process()
    assert (me.comm, me.ppid, me.uid) == (proc.name(), proc.ppid(), proc.uids().real)
    assert me.started > 0 and me.rss_bytes > 0
    assert ctx.cmdline(os.getpid())[0] == proc.cmdline()[0]


def test_a_process_denied_to_an_unprivileged_agent_is_still_counted(tmp_path):
    """As nobody, other users' /proc/PID/stat, status and cmdline stay readable; nothing raises."""
    target = subprocess.Popen(["sleep", "30"])
    try:
        read, write = os.pipe()
        child = os.fork()
        if child == 0:  # pragma: no cover (runs in the forked child)
            os.close(read)
            try:
                os.setgid(65534)
                os.setuid(65534)
                ctx = SystemFacts("here").cycle(time.time(), time.monotonic())
                row = next(p for p in ctx.processes() if p.pid == target.pid)
                os.write(write, f"{row.comm} {row.uid} {' '.join(ctx.cmdline(target.pid))}".encode())
            finally:
                os._exit(0)
        os.close(write)
        with os.fdopen(read, "rb") as pipe:
            answer = pipe.read().decode()
        os.waitpid(child, 0)
    finally:
        target.kill()
        target.wait()
    assert answer == "sleep 0 sleep 30"


def test_disk_usage_is_computed_the_way_df_does(tmp_path):
    mountpoint = tmp_path / "small"
    mountpoint.mkdir()
    if (
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=1m,nr_inodes=100", "tmpfs", str(mountpoint)], capture_output=True
        ).returncode
        != 0
    ):
        pytest.skip("cannot mount a tmpfs here")
    system = SystemFacts("here")
    try:
        (mountpoint / "blob").write_bytes(b"x" * 262144)
        usage = system.cycle(time.time(), time.monotonic()).disk_usage(str(mountpoint), timeout=10)
        reference = psutil.disk_usage(str(mountpoint))
        assert (usage.total, usage.used, usage.free) == (reference.total, reference.used, reference.free)
        assert round(usage.used_percent, 1) == reference.percent == 25.0
        assert (usage.inodes_total, usage.inodes_used) == (100, 2)
        assert not usage.read_only
    finally:
        system.close()
        subprocess.run(["umount", str(mountpoint)], check=True)


def test_a_blocking_call_gets_a_hard_timeout_through_the_context(facts):
    ctx = facts.cycle(1000.0, 50.0)
    with pytest.raises(StuckCall, match=r"^sleep_forever did not return within 0\.3s$"):
        ctx.run_blocking(sleep_forever, timeout=0.3)
    assert ctx.run_blocking(os.getpid, timeout=10) != os.getpid()


def test_no_worker_process_is_started_until_a_blocking_call_is_made():
    system = SystemFacts("here", proc_root=DATA)
    system.cycle(1000.0, 50.0).processes()
    assert system._pool is None
    system.close()


# -- where blocking calls run: in-process on local filesystems, a worker for network and FUSE ones


def test_a_path_is_local_only_when_every_step_to_it_is_on_a_local_filesystem(tmp_path):
    from monagent.context import local_mount
    from monagent.testing import fake_mount

    nfs = tmp_path / "nfs"
    fuse = tmp_path / "sshfs"
    local = tmp_path / "local" / "crash"
    for directory in (nfs, fuse, local):
        directory.mkdir(parents=True)
    (tmp_path / "to-nfs").symlink_to(nfs / "crash")  # a local symlink into the network mount
    (tmp_path / "to-local").symlink_to("local/crash")  # relative
    (tmp_path / "loop").symlink_to("loop")
    table = [
        fake_mount("/", "ext4"),
        fake_mount(str(nfs), "nfs4", "server:/export"),
        fake_mount(str(fuse), "fuse.sshfs", "user@host:"),
        fake_mount(str(tmp_path / "local"), "nfs"),  # hidden by the xfs mounted on top of it
        fake_mount(str(tmp_path / "local"), "xfs", "/dev/sdb1"),
    ]
    assert local_mount(str(local), table).fstype == "xfs"
    assert local_mount(str(tmp_path / "to-local"), table).fstype == "xfs"
    assert local_mount(str(tmp_path / "to-local" / ".." / ".." / "nfs"), table) is None  # .. after the link
    assert local_mount(str(nfs / "crash"), table) is None
    assert local_mount(str(fuse), table) is None
    assert local_mount(str(tmp_path / "to-nfs"), table) is None
    assert local_mount(str(tmp_path / "loop"), table) is None  # ELOOP: let the worker find out
    assert local_mount(str(tmp_path / "missing" / "x"), table).fstype == "ext4"  # fails at once, locally
    assert local_mount("relative/path", table) is None
    assert local_mount("/anything", []) is None  # a path the agent cannot place goes to a worker


def test_statfs_and_scans_on_local_filesystems_start_no_worker(tmp_path):
    from monagent.checks.kdump import KdumpCheck

    with open("/proc/self/mountinfo", encoding="utf-8") as table:
        fstypes = {line.split(" - ")[1].split()[0] for line in table}
    here = SystemFacts("here")
    try:
        ctx = here.cycle(time.time(), time.monotonic())
        if not ctx.is_local(str(tmp_path)):
            pytest.skip(f"{tmp_path} is not on a local filesystem here ({sorted(fstypes)})")
        usage = ctx.disk_usage(str(tmp_path))
        st = os.statvfs(tmp_path)
        assert usage.total == st.f_blocks * st.f_frsize
        (tmp_path / "crash").mkdir()
        results = KdumpCheck(roots=[str(tmp_path / "crash")], read_kdump_config=False).run(ctx)
        assert [(r.subject, r.status) for r in results] == [(str(tmp_path / "crash"), Status.OK)]
        assert ctx.run_blocking(os.getpid, path=str(tmp_path)) == os.getpid()  # in-process: our own pid
        assert ctx.run_blocking(os.getpid, path=[str(tmp_path), "/proc"]) == os.getpid()  # every path local
        from monagent.bootinquiry import _read_pstore

        (tmp_path / "pstore").mkdir()
        assert _read_pstore(ctx, (str(tmp_path / "pstore"), str(tmp_path / "archive")), 5.0) == ([], [])
        assert here._pool is None  # no worker process was ever started (the boot inquiry once started one)
        assert ctx.run_blocking(os.getpid) != os.getpid()  # no path: isolated in a worker, as asked
        assert here._pool is not None
    finally:
        here.close()


def test_a_call_that_reads_several_paths_runs_in_a_worker_unless_every_one_is_local(tmp_path, monkeypatch):
    here = SystemFacts("here")
    try:
        ctx = here.cycle(time.time(), time.monotonic())
        remote = str(tmp_path / "nfs")
        monkeypatch.setattr(ctx, "is_local", lambda path: path != remote)
        assert ctx.run_blocking(os.getpid, path=[str(tmp_path), "/proc"]) == os.getpid()
        assert here._pool is None
        assert ctx.run_blocking(os.getpid, path=[str(tmp_path), remote]) != os.getpid()  # one is not local
        assert ctx.run_blocking(os.getpid, path=[]) != os.getpid()  # nothing named: isolated, as without path
    finally:
        here.close()
