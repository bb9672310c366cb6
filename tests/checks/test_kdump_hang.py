"""Roots the agent cannot fully use: one that never answers (a dead NFS server), one it may not read."""

from __future__ import annotations

import os
import pickle
import shutil
import tempfile
import time
from pathlib import Path

import pytest
from kdump_helpers import SYSRQ, FakeContext, dump_dir, make_proc
from monagent.checks.kdump import KdumpCheck

from monagent.api import Formatter, Status
from monagent.workers import WorkerPool

EN = Formatter("en")

HEADLINE = "Kernel panic - not syncing: sysrq triggered crash"


@pytest.fixture
def pool():
    workers = WorkerPool(size=2)
    yield workers
    workers.close()


def _dump_root(tmp_path: Path) -> Path:
    root = tmp_path / "crash"
    dump_dir(root, "202601210724", {"dmesg.202601210724": SYSRQ, "dump.202601210724": b"makedumpfile\0\0\0\0"})
    return root


def test_a_root_on_a_filesystem_that_never_answers_is_unknown_and_the_other_roots_still_report(tmp_path, pool):
    from fuse_hang import Unavailable, mount_hanging

    hung = tmp_path / "nfs"
    try:
        fuse = mount_hanging(hung)
    except Unavailable as exc:
        pytest.skip(str(exc))
    try:

        def blocking(func, *args, timeout):  # the healthy root gets a generous limit: workers start slowly under load
            return pool.call(func, *args, timeout=timeout if args[0].root == str(hung) else 60.0)

        ctx = FakeContext(make_proc(tmp_path), blocking=blocking)
        watcher = KdumpCheck(roots=[str(hung), str(_dump_root(tmp_path))], read_kdump_config=False, scan_timeout_seconds=1.0)
        results = watcher.run(ctx)
    finally:
        fuse.close()
    assert [(r.subject, r.status, EN.text(r.reason)) for r in results[:1]] == [
        (str(hung), Status.UNKNOWN, f"{hung} is not responding (scan took longer than 1s)")
    ]
    assert [o.summary for r in results[1:] for o in r.occurrences] == [HEADLINE]


def test_an_injected_blocking_scan_is_cut_off_by_the_worker_timeout(tmp_path, pool):
    def blocking(func, *args, timeout):  # the scan of the first root is replaced by a call that never returns
        if args[0].root.endswith("/hung"):
            return pool.call(time.sleep, 3600, timeout=timeout)
        return pool.call(func, *args, timeout=60.0)

    (tmp_path / "hung").mkdir()
    ctx = FakeContext(make_proc(tmp_path), blocking=blocking)
    watcher = KdumpCheck(
        roots=[str(tmp_path / "hung"), str(_dump_root(tmp_path))], read_kdump_config=False, scan_timeout_seconds=0.5
    )
    results = watcher.run(ctx)
    assert results[0].status == Status.UNKNOWN
    assert EN.text(results[0].reason) == f"{tmp_path / 'hung'} is not responding (scan took longer than 500 ms)"
    assert [o.summary for o in results[1].occurrences] == [HEADLINE]


def _as_nobody(func, *args, timeout):
    """Run the scan in a forked child that dropped root, as an agent without privileges would."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        try:
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            payload = pickle.dumps(("ok", func(*args)))
        except BaseException as exc:
            payload = pickle.dumps(("error", exc))
        with os.fdopen(write_end, "wb") as out:
            out.write(payload)
        os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as answer:
        kind, value = pickle.loads(answer.read())
    os.waitpid(pid, 0)
    if kind == "error":
        raise value
    return value


@pytest.mark.skipif(os.geteuid() != 0 or not os.path.isdir("/dev/shm"), reason="needs root to drop privileges")
def test_a_dump_directory_the_agent_may_not_list_still_alerts_without_a_reason(tmp_path):
    base = Path(tempfile.mkdtemp(dir="/dev/shm"))  # pytest's tmp_path is private to root
    try:
        os.chmod(base, 0o755)
        root = base / "crash"
        directory = dump_dir(
            root, "2024-03-05-14-22", {"README.txt": "Kernel crashdump\n", "dmesg": SYSRQ, "vmcore": b"makedumpfile"}
        )
        os.chmod(root, 0o755)
        os.chmod(directory, 0o700)  # SUSE >= 2.0.17: umask 077
        ctx = FakeContext(make_proc(tmp_path), blocking=_as_nobody)
        results = KdumpCheck(roots=[str(root)], read_kdump_config=False).run(ctx)
    finally:
        shutil.rmtree(base)
    [occ] = [o for r in results for o in r.occurrences]
    assert occ.summary == "kernel crash (reason unavailable: no permission to list 2024-03-05-14-22)"
    assert (occ.facts["dump_status"], occ.facts["distro_layout"]) == ("unknown", "SUSE kdump")


@pytest.mark.skipif(os.geteuid() != 0 or not os.path.isdir("/dev/shm"), reason="needs root to drop privileges")
def test_a_kernel_log_the_agent_may_not_read_is_named_in_the_summary_on_every_run(tmp_path):
    base = Path(tempfile.mkdtemp(dir="/dev/shm"))
    try:
        os.chmod(base, 0o755)
        root = base / "crash"
        directory = dump_dir(root, "202601210724", {"dmesg.202601210724": SYSRQ, "dump.202601210724": b"KDUMP   "})
        for path, mode in ((root, 0o755), (directory, 0o755), (directory / "dmesg.202601210724", 0o600)):
            os.chmod(path, mode)  # as kdump-tools leaves them (doc listing)
        ctx = FakeContext(make_proc(tmp_path), blocking=_as_nobody)
        watcher = KdumpCheck(roots=[str(root)], read_kdump_config=False)
        runs = [[o.summary for r in watcher.run(ctx) for o in r.occurrences] for _ in range(2)]
    finally:
        shutil.rmtree(base)
    assert runs == [["kernel crash (reason unavailable: no permission to read dmesg.202601210724)"]] * 2
