"""The OOM check against a captured /proc/vmstat, cgroup v2 memory.events files and kernel log records.

The kernel log lines follow the format strings of mm/oom_kill.c (``Out of memory: Killed process
%d (%s) total-vm:%lukB, anon-rss:%lukB, file-rss:%lukB, shmem-rss:%lukB, UID:%u pgtables:%lukB
oom_score_adj:%hd`` and the ``oom-kill:`` summary line), as /dev/kmsg presents them.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from kdump_helpers import FakeContext
from monagent.checks.oom import OomCheck, _read_kmsg

from monagent.api import Formatter, Status

EN, ZH = Formatter("en"), Formatter("zh")

BOOT_ID = "0e5c2a4f-6d3b-4f7e-9a51-2b8f0f3c1d77"
GLOBAL_KILL = [
    "4,5001,9000000000,-;java invoked oom-killer: gfp_mask=0x140cca(GFP_HIGHUSER_MOVABLE|__GFP_COMP), order=0, oom_score_adj=0",
    "6,5002,9000000100,-;oom-kill:constraint=CONSTRAINT_NONE,nodemask=(null),cpuset=/,mems_allowed=0,global_oom,"
    "task_memcg=/user.slice/user-1000.slice/session-3.scope,task=java,pid=4242,uid=1000",
    "3,5003,9000000200,-;Out of memory: Killed process 4242 (java) total-vm:9437184kB, anon-rss:6291456kB, "
    "file-rss:1024kB, shmem-rss:0kB, UID:1000 pgtables:13000kB oom_score_adj:0",
    " SUBSYSTEM=memory",
]
SERVICE_KILL = [
    "6,6001,9100000000,-;oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,"
    "oom_memcg=/system.slice/api.service,task_memcg=/system.slice/api.service,task=python3,pid=777,uid=998",
    "3,6002,9100000100,-;Memory cgroup out of memory: Killed process 777 (python3) total-vm:2500000kB, "
    "anon-rss:2000000kB, file-rss:512kB, shmem-rss:0kB, UID:998 pgtables:4500kB oom_score_adj:0",
]


class Machine:
    """A /proc and /sys/fs/cgroup tree the test changes between runs."""

    def __init__(self, tmp_path: Path) -> None:
        self.proc = tmp_path / "proc"
        self.cgroup = tmp_path / "cgroup"
        self.kmsg = tmp_path / "kmsg"
        self.proc.mkdir()
        self.kmsg.write_text("6,1,0,-;Linux version 6.1.0-18-amd64\n", encoding="utf-8")
        self.set_oom_kill(0)

    def set_oom_kill(self, count: int) -> None:
        (self.proc / "vmstat").write_text(f"nr_free_pages 123456\noom_kill {count}\nnr_zone_inactive_anon 1\n", encoding="ascii")

    def set_service(self, name: str, oom_kill: int) -> None:
        directory = self.cgroup / "system.slice" / name
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "memory.events").write_text(
            f"low 0\nhigh 0\nmax 12\noom {oom_kill}\noom_kill {oom_kill}\noom_group_kill 0\n", encoding="ascii"
        )

    def log(self, *records: str) -> None:
        with self.kmsg.open("a", encoding="utf-8") as fh:
            fh.write("".join(r + "\n" for r in records))

    def check(self, **options) -> OomCheck:
        options.setdefault("kernel_log", str(self.kmsg))
        options.setdefault("dmesg_command", [])
        return OomCheck(proc_root=str(self.proc), cgroup_root=str(self.cgroup), **options)


@pytest.fixture
def machine(tmp_path: Path) -> Machine:
    return Machine(tmp_path)


@pytest.fixture
def ctx(tmp_path: Path) -> FakeContext:
    return FakeContext(tmp_path / "proc")


def occurrences(results):
    return [(r.subject, o) for r in results for o in r.occurrences]


def test_the_first_run_records_the_counters_without_reporting_old_kills(machine, ctx):
    machine.set_oom_kill(3)
    machine.log(*GLOBAL_KILL)
    results = machine.check().run(ctx)
    assert occurrences(results) == []
    assert [(r.subject, r.status, EN.text(r.reason)) for r in results] == [("system", Status.OK, "3 OOM kills since boot")]
    assert ZH.text(results[0].reason) == "开机以来 OOM killer 共终止进程 3 次"


def test_a_rising_counter_gives_one_occurrence_naming_the_killed_process_and_its_memory(machine, ctx):
    watcher = machine.check()
    watcher.run(ctx)
    machine.log(*GLOBAL_KILL)
    machine.set_oom_kill(1)
    [(subject, occ)] = occurrences(watcher.run(ctx))
    assert subject == "system"
    assert occ.summary == "OOM killer killed java (pid 4242), anon-rss 6 GiB"
    assert ZH.text(occ.reason) == "OOM killer 终止了进程 java（pid 4242），其匿名内存 6 GiB"
    assert occ.id == f"oom:{BOOT_ID}:1"
    assert occ.severity == Status.CRITICAL
    assert dict(occ.facts) == {
        "count": 1,
        "total_since_boot": 1,
        "process": "java",
        "pid": "4242",
        "anon_rss": 6 << 30,
        "total_vm": 9 << 30,
        "file_rss": 1 << 20,
        "shmem_rss": 0,
        "uid": "1000",
        "oom_score_adj": "0",
        "cgroup": "/user.slice/user-1000.slice/session-3.scope",
        "constraint": "CONSTRAINT_NONE",
        "excerpt": "Killed process 4242 (java) total-vm:9437184kB, anon-rss:6291456kB, file-rss:1024kB, "
        "shmem-rss:0kB, UID:1000 pgtables:13000kB oom_score_adj:0",
    }
    assert occurrences(watcher.run(ctx)) == []  # no rise: nothing new


def test_each_cycle_with_kills_gets_its_own_id_and_only_its_own_kills(machine, ctx):
    watcher = machine.check()
    watcher.run(ctx)
    machine.log(*GLOBAL_KILL)
    machine.set_oom_kill(1)
    first = occurrences(watcher.run(ctx))[0][1]
    machine.log(GLOBAL_KILL[2].replace("5003", "5010").replace("4242 (java)", "4300 (node)"))
    machine.log(GLOBAL_KILL[2].replace("5003", "5011").replace("4242 (java)", "4301 (node)"))
    machine.set_oom_kill(3)
    second = occurrences(watcher.run(ctx))[0][1]
    assert (first.id, second.id) == (f"oom:{BOOT_ID}:1", f"oom:{BOOT_ID}:3")
    assert second.summary == "OOM killer killed node (pid 4301), anon-rss 6 GiB; 2 kills in all"
    assert [line.split(")")[0] for line in second.facts["excerpt"].splitlines()] == [
        "Killed process 4300 (node",
        "Killed process 4301 (node",
    ]


def test_without_a_readable_kernel_log_the_count_is_still_reported(machine, ctx):
    watcher = machine.check(kernel_log=str(machine.proc / "no-such-kmsg"))
    watcher.run(ctx)
    machine.set_oom_kill(2)
    [(_, occ)] = occurrences(watcher.run(ctx))
    assert occ.summary == "OOM killer fired 2 times (kernel log not readable)"
    assert dict(occ.facts) == {"count": 2, "total_since_boot": 2}


def test_the_dmesg_command_is_the_fallback_source(machine, ctx, tmp_path):
    script = tmp_path / "dmesg.py"
    script.write_text("print('[ 9000.000200] ' + " + repr(GLOBAL_KILL[2].split(";", 1)[1]) + ")\n", encoding="utf-8")
    watcher = machine.check(kernel_log="", dmesg_command=[sys.executable, str(script)])
    watcher.run(ctx)
    machine.set_oom_kill(1)
    [(_, occ)] = occurrences(watcher.run(ctx))
    assert occ.summary == "OOM killer killed java (pid 4242), anon-rss 6 GiB"


def test_a_kill_inside_a_service_cgroup_is_reported_under_the_service_only(machine, ctx):
    machine.set_service("api.service", 0)
    machine.set_service("db.service", 0)
    watcher = machine.check()
    watcher.run(ctx)
    machine.log(*SERVICE_KILL)
    machine.set_service("api.service", 1)
    machine.set_oom_kill(1)
    results = watcher.run(ctx)
    [(subject, occ)] = occurrences(results)
    assert subject == "api.service"
    assert occ.summary == "api.service: OOM killer killed python3 (pid 777), anon-rss 1.91 GiB"
    assert occ.facts["service"] == "api.service"
    assert occ.facts["cgroup"] == "/system.slice/api.service"
    ino = os.stat(machine.cgroup / "system.slice/api.service").st_ino
    assert occ.id == f"oom:{BOOT_ID}:api.service:{ino}:1"


def test_a_restarted_service_counts_its_new_cgroup_from_zero(machine, ctx):
    machine.set_service("api.service", 2)
    watcher = machine.check()
    watcher.run(ctx)
    old = machine.cgroup / "system.slice/api.service"  # systemd removes the cgroup on stop (kernfs never
    old.rename(old.with_name("api.service.removed"))  # reuses the inode; the rename keeps it taken here) ...
    machine.set_service("api.service", 1)  # ... and the restarted service is killed again
    machine.set_oom_kill(1)
    [(subject, occ)] = occurrences(watcher.run(ctx))
    assert (subject, occ.facts["count"]) == ("api.service", 1)
    assert occ.summary == "api.service: OOM killer fired 1 time (kernel log not readable)"


def test_a_kernel_without_the_oom_kill_counter_is_unknown(machine, ctx):
    (machine.proc / "vmstat").write_text("nr_free_pages 1\n", encoding="ascii")
    [result] = machine.check().run(ctx)
    assert (result.status, EN.text(result.reason)) == (
        Status.UNKNOWN,
        f"{machine.proc}/vmstat has no oom_kill counter (kernel older than 4.13?)",
    )


@pytest.mark.skipif(not os.access("/dev/kmsg", os.R_OK), reason="/dev/kmsg is not readable here")
def test_the_real_dev_kmsg_is_read_to_its_end_without_blocking():
    records = _read_kmsg("/dev/kmsg")
    assert records is not None and records
    assert all(seq >= 0 for seq, _ in records)


def test_service_counters_are_read_only_when_the_machine_wide_count_moved(machine, ctx, monkeypatch):
    """Every OOM kill counts in /proc/vmstat's total, a cgroup's too: while it stands still the counter file
    of each service (one per service, every 30 s) is not read. A service restarted meanwhile is still
    counted from its new cgroup's zero when a kill moves the total."""
    import glob

    machine.set_service("api.service", 2)
    machine.set_service("db.service", 0)
    watcher = machine.check()
    globs = []
    real = glob.glob
    monkeypatch.setattr(glob, "glob", lambda *a, **k: globs.append(a) or real(*a, **k))
    watcher.run(ctx)
    assert len(globs) == 1  # the baseline
    old = machine.cgroup / "system.slice/api.service"
    old.rename(old.with_name("api.service.removed"))  # restarted while nothing was killed
    machine.set_service("api.service", 0)
    for _ in range(3):
        assert occurrences(watcher.run(ctx)) == []
    assert len(globs) == 1  # quiet: no service counter read
    machine.set_service("api.service", 1)
    machine.set_oom_kill(1)
    [(subject, occ)] = occurrences(watcher.run(ctx))
    assert len(globs) == 2 and (subject, occ.facts["count"]) == ("api.service", 1)
