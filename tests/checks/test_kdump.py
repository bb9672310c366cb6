"""The kdump watcher against real dump directory trees built from the reference layouts and real logs."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest
from kdump_helpers import (
    BOOT,
    CRASH,
    ELF,
    FLATTENED,
    GZIP,
    KDUMP_COMPRESSED,
    NOW,
    NULL_DEREF,
    OOM,
    SUSE_PLACEHOLDER,
    SUSE_README,
    SYSRQ,
    FakeContext,
    apport_kernel_report,
    dump_dir,
    make_proc,
    put,
)
from monagent.checks.kdump import KdumpCheck

from monagent.api import Formatter, Status

EN = Formatter("en")

SYSRQ_HEADLINE = "Kernel panic - not syncing: sysrq triggered crash"
OOM_HEADLINE = "Kernel panic - not syncing: Out of memory: system-wide panic_on_oom is enabled"
NULL_HEADLINE = "BUG: kernel NULL pointer dereference, address: 0000000000000086"
SYSRQ_WHO = {
    "function": "sysrq_handle_crash+0x11/0x20",
    "comm": "bash",
    "pid": "4952",
    "kernel": "5.4.0-0.rc6.git0.1.fc32.x86_64",
    "test_crash": True,
    "taint": "not tainted",
}
OOM_WHO = {
    "function": "check_panic_on_oom+0x55/0x60",
    "comm": "webservice",
    "pid": "35943",
    "kernel": "3.10.0-327.28.2.el7.x86_64",
    "test_crash": False,
}
NULL_WHO = {
    "function": "no symbol (0x86)",
    "comm": "syz-executor.0",
    "pid": "9969",
    "kernel": "5.6.0-rc6-syzkaller",
    "test_crash": False,
    "panic": "Kernel panic - not syncing: Fatal exception",
}


@pytest.fixture
def root(tmp_path: Path) -> Path:
    path = tmp_path / "crash"
    path.mkdir()
    return path


@pytest.fixture
def ctx(tmp_path: Path) -> FakeContext:
    return FakeContext(make_proc(tmp_path))


def check(root: Path, **options) -> KdumpCheck:
    options.setdefault("read_kdump_config", False)
    return KdumpCheck(roots=[str(root)], **options)


def occurrences(results):
    return [occ for result in results for occ in result.occurrences]


def only(results):
    found = occurrences(results)
    assert len(found) == 1, [o.summary for o in found]
    return found[0]


def debian(
    root: Path,
    log: str = SYSRQ,
    *,
    core: str = "dump.202601210724",
    body: bytes = FLATTENED,
    name: str = "202601210724",
    when: float = CRASH,
) -> Path:
    return dump_dir(root, name, {"dmesg.202601210724": log, core: body}, when)


# --- every layout of the reference ------------------------------------------------------------------


def _debian_local(root):
    debian(root)
    return "202601210724", "Debian/Ubuntu kdump-tools", "flattened", SYSRQ


def _debian_gzip(root):
    debian(root, OOM, core="dump.202601210724.gz", body=GZIP)
    return "202601210724", "Debian/Ubuntu kdump-tools", "gzip (flattened inside)", OOM


def _debian_plain_copy_after_makedumpfile_failed(root):
    dump_dir(
        root, "202601210724", {"dmesg.202601210724": NULL_DEREF, "dump-incomplete": b"makedumpfile", "vmcore.202601210724": ELF}
    )
    return "202601210724", "Debian/Ubuntu kdump-tools", "ELF", NULL_DEREF


def _debian_remote_host_stamp(root):
    debian(root, NULL_DEREF, name="10.20.0.15-202601210724")
    return "10.20.0.15-202601210724", "Debian/Ubuntu kdump-tools", "flattened", NULL_DEREF


def _debian_ftp_flat_files(root):
    put(root / "10.20.0.15-dmesg.202601210724", OOM)
    put(root / "10.20.0.15-dump.202601210724", FLATTENED)
    return (
        "10.20.0.15-dump.202601210724",
        "Debian/Ubuntu kdump-tools (FTP target)",
        "flattened",
        OOM,
    )


def _rhel_local(root):
    dump_dir(
        root,
        "127.0.0.1-2024-03-05-14:22:07",
        {"vmcore-dmesg.txt": SYSRQ, "vmcore": KDUMP_COMPRESSED, "kexec-dmesg.log": "kdump: saving vmcore complete\n"},
    )
    return "127.0.0.1-2024-03-05-14:22:07", "RHEL/Fedora kdump", "kdump-compressed", SYSRQ


def _rhel_ssh_flat(root):
    dump_dir(root, "192.168.122.10-2024-03-05-14:22:07", {"vmcore-dmesg.txt": OOM, "vmcore.flat": FLATTENED})
    return "192.168.122.10-2024-03-05-14:22:07", "RHEL/Fedora kdump", "flattened", OOM


def _rhel_nfs_ipv6_client(root):
    dump_dir(root, "fd00:1::5-2024-03-05-14:22:07", {"vmcore-dmesg.txt": NULL_DEREF, "vmcore": KDUMP_COMPRESSED})
    return "fd00:1::5-2024-03-05-14:22:07", "RHEL/Fedora kdump", "kdump-compressed", NULL_DEREF


def _rhel_kdumpctl_test(root):
    dump_dir(
        root,
        "kdump-test-1709648527-123456789",
        {"vmcore-creation.status": "success\n", "vmcore-dmesg.txt": SYSRQ, "vmcore": KDUMP_COMPRESSED},
    )
    return "kdump-test-1709648527-123456789", "RHEL/Fedora kdumpctl test", "kdump-compressed", SYSRQ


def _suse_new(root):
    dump_dir(root, "2024-03-05-14-22", {"README.txt": SUSE_README, "dmesg": NULL_DEREF, "vmcore": FLATTENED})
    return "2024-03-05-14-22", "SUSE kdump", "flattened", NULL_DEREF


def _suse_old(root):
    dump_dir(root, "2024-03-05-14:22", {"dmesg.txt": OOM, "vmcore": ELF, "README.txt": "Crash time: x\n"})
    return "2024-03-05-14:22", "SUSE kdumptool (before 2023)", "ELF", OOM


LAYOUTS = [
    _debian_local,
    _debian_gzip,
    _debian_plain_copy_after_makedumpfile_failed,
    _debian_remote_host_stamp,
    _debian_ftp_flat_files,
    _rhel_local,
    _rhel_ssh_flat,
    _rhel_nfs_ipv6_client,
    _rhel_kdumpctl_test,
    _suse_new,
    _suse_old,
]
EXPECTED = {SYSRQ: (SYSRQ_HEADLINE, SYSRQ_WHO), OOM: (OOM_HEADLINE, OOM_WHO), NULL_DEREF: (NULL_HEADLINE, NULL_WHO)}


@pytest.mark.parametrize("build", LAYOUTS, ids=[b.__name__.strip("_") for b in LAYOUTS])
def test_each_layout_gives_one_critical_occurrence_with_the_reason_of_its_log(build, root, ctx):
    name, layout, dump_format, log = build(root)
    results = check(root).run(ctx)
    occ = only(results)
    headline, who = EXPECTED[log]
    assert occ.summary == headline
    assert occ.severity == Status.CRITICAL
    assert occ.facts["reason"] == headline
    assert {k: occ.facts.get(k) for k in who} == who
    assert occ.facts["dump_status"] == "complete"
    assert occ.facts["distro_layout"] == layout
    assert occ.facts["dump_format"] == dump_format
    assert occ.facts["dump_path"] == str(root / name)
    assert occ.facts["running_kernel"] == "6.1.0-18-amd64"
    assert isinstance(occ.facts["free_space"], int)
    assert occ.id == f"{root / name}:{os.lstat(root / name).st_ino}"
    assert results[0].subject == str(root) and results[0].status == Status.OK


def test_the_facts_of_a_debian_dump_are_complete_for_the_message(root, ctx):
    debian(root, NULL_DEREF, name="10.20.0.15-202601210724")
    facts = dict(only(check(root).run(ctx)).facts)
    assert facts.pop("free_space")
    assert facts.pop("excerpt").splitlines()[:6] == [
        "BUG: kernel NULL pointer dereference, address: 0000000000000086",
        "#PF: supervisor instruction fetch in kernel mode",
        "#PF: error_code(0x0010) - not-present page",
        "PGD 42d21067 P4D 42d21067 PUD a442d067 PMD 0",
        "Oops: 0010 [#1] PREEMPT SMP KASAN",
        "CPU: 1 PID: 9969 Comm: syz-executor.0 Not tainted 5.6.0-rc6-syzkaller #0",
    ]
    assert facts == {
        "reason": NULL_HEADLINE,
        "panic": "Kernel panic - not syncing: Fatal exception",
        "function": "no symbol (0x86)",
        "comm": "syz-executor.0",
        "pid": "9969",
        "kernel": "5.6.0-rc6-syzkaller",
        "running_kernel": "6.1.0-18-amd64",
        "taint": "not tainted",
        "test_crash": False,
        "dump_status": "complete",
        "dump_path": str(root / "10.20.0.15-202601210724"),
        "dump_size": 64,
        "dump_format": "flattened",
        "distro_layout": "Debian/Ubuntu kdump-tools",
        "host": "10.20.0.15",
        "capture_time": "2026-01-21 07:24",
        "boot_time": BOOT,
        "hardware": "Google Google Compute Engine/Google Compute Engine, BIOS Google 01/01/2011",
    }


def test_a_dump_without_any_kernel_log_still_alerts_with_the_reason_unavailable(root, ctx):
    dump_dir(root, "2024-03-05-14:30", {"vmcore": KDUMP_COMPRESSED}, when=BOOT + 60)  # RHEL raw target, at boot
    occ = only(check(root).run(ctx))
    assert occ.summary == "kernel crash (reason unavailable: no kernel log beside the dump)"
    assert occ.facts["distro_layout"] == "RHEL/Fedora kdump (raw device target)"
    assert occ.announce_on_first_run is True


def test_suse_readme_gives_kernel_version_and_crash_time_when_the_log_has_none(root, ctx):
    dump_dir(root, "web01-2024-03-05-14-22", {"README.txt": SUSE_README, "vmcore": FLATTENED})
    occ = only(check(root).run(ctx))
    assert occ.facts["kernel"] == "6.4.0-150600.23.7-default"
    assert occ.facts["crash_time"] == "2024-03-05 14:21:58"
    assert occ.facts["host"] == "web01"


# --- completeness ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, files",
    [
        ("202601210724", {"dmesg.202601210724": SYSRQ, "dump-incomplete": FLATTENED}),
        ("202601210724", {"dmesg.202601210724": SYSRQ, "dump-incomplete.xz": b"\xfd7zXZ\x00"}),
        ("127.0.0.1-2024-03-05-14:22:07", {"vmcore-dmesg.txt": SYSRQ, "vmcore-incomplete": KDUMP_COMPRESSED}),
        ("2024-03-05-14-22", {"README.txt": SUSE_PLACEHOLDER, "dmesg": SYSRQ, "vmcore": FLATTENED}),
        ("kdump-test-1709648527-123456789", {"vmcore-creation.status": "fail\n", "vmcore-dmesg.txt": SYSRQ}),
    ],
    ids=["debian", "debian-xz", "rhel", "suse-placeholder", "kdumpctl-test"],
)
def test_no_occurrence_while_a_marker_says_the_dump_is_being_written(name, files, root, ctx):
    dump_dir(root, name, files, when=NOW - 5)
    results = check(root).run(ctx)
    assert occurrences(results) == []
    assert EN.text(results[0].reason) == f"0 crash dumps in {root}; 1 being written"


def test_a_marker_older_than_boot_is_a_failed_dump_and_completion_gets_one_follow_up(root, ctx):
    directory = dump_dir(root, "127.0.0.1-2024-03-05-14:22:07", {"vmcore-dmesg.txt": OOM, "vmcore-incomplete": KDUMP_COMPRESSED})
    watcher = check(root)
    failed = only(watcher.run(ctx))
    assert failed.summary == f"crash, dump incomplete: {OOM_HEADLINE}"
    assert failed.facts["dump_status"] == "incomplete"
    assert failed.revision == "incomplete"
    again = only(watcher.run(ctx))  # free_space is live bytes now: compare what the engine keys on
    assert (again.id, again.revision, again.summary) == (failed.id, failed.revision, failed.summary)

    os.rename(directory / "vmcore-incomplete", directory / "vmcore")  # a slow remote writer finished
    completed = only(watcher.run(ctx))
    assert completed.id == failed.id
    assert completed.revision == f"complete:{os.stat(directory / 'vmcore').st_ino}"
    assert completed.summary == OOM_HEADLINE


def test_a_suse_readme_reporting_an_error_is_a_failed_dump(root, ctx):
    readme = SUSE_README.replace("vmcore status: saved successfully", "vmcore status: error while saving (ENOSPC)")
    dump_dir(root, "2024-03-05-14-22", {"README.txt": readme, "dmesg": SYSRQ})
    occ = only(check(root).run(ctx))
    assert occ.summary == f"crash, dump failed: {SYSRQ_HEADLINE}"
    assert Formatter("zh").text(occ.reason) == f"内核崩溃，转储失败：{SYSRQ_HEADLINE}"  # the kernel's words as it wrote them
    assert occ.facts["note"] == "vmcore status: error while saving (ENOSPC)"
    assert occ.facts["dump_format"] == "none"


def test_an_ftp_dump_still_growing_waits_for_the_settle_window(root, tmp_path):
    core = put(root / "10.20.0.15-dump.202601210724", FLATTENED, when=NOW - 10)
    put(root / "10.20.0.15-dmesg.202601210724", OOM, when=NOW - 30)
    watcher = check(root, settle_seconds=120.0)
    proc = make_proc(tmp_path)
    assert occurrences(watcher.run(FakeContext(proc, now=NOW))) == []
    with core.open("ab") as fh:  # more data arrives
        fh.write(b"\x00" * 4096)
    os.utime(core, (NOW + 50, NOW + 50))
    assert occurrences(watcher.run(FakeContext(proc, now=NOW + 60))) == []
    assert occurrences(watcher.run(FakeContext(proc, now=NOW + 120))) == []  # unchanged for 60 s only
    occ = only(watcher.run(FakeContext(proc, now=NOW + 180)))  # unchanged for 120 s
    assert occ.summary == OOM_HEADLINE
    assert occ.facts["dump_size"] == 4160


# --- start, first run, identity --------------------------------------------------------------------


def test_the_watcher_scans_at_agent_start_without_splay():
    assert KdumpCheck.run_at_start is True


def test_a_dump_written_while_the_agent_was_stopped_is_reported_by_a_fresh_instance(root, ctx):
    check(root).run(ctx)  # the agent ran before, with nothing to report
    debian(root)  # the crash, the capture kernel, the reboot
    occ = only(check(root).run(ctx))  # the agent starts again: a new instance, no memory
    assert occ.summary == SYSRQ_HEADLINE
    assert occ.announce_on_first_run is True
    assert occ.time == CRASH


def test_only_a_dump_from_the_hour_before_boot_is_announced_on_a_first_run(root, ctx):
    debian(root, name="202601210724", when=BOOT - 1800)
    debian(root, name="202512010900", when=BOOT - 30 * 86400)
    announced = {o.facts["dump_path"]: o.announce_on_first_run for o in occurrences(check(root).run(ctx))}
    assert announced == {str(root / "202601210724"): True, str(root / "202512010900"): False}


def test_rotation_and_deletion_make_the_dump_silently_disappear(root, ctx):
    import shutil

    debian(root, name="202601210724")
    debian(root, name="202512010900", when=BOOT - 86400)
    watcher = check(root)
    assert len(occurrences(watcher.run(ctx))) == 2
    shutil.rmtree(root / "202512010900")  # KDUMP_NUM_DUMPS rotation, or an admin's rm -rf
    results = watcher.run(ctx)
    assert [o.facts["dump_path"] for o in occurrences(results)] == [str(root / "202601210724")]
    assert [r.status for r in results] == [Status.OK]


def test_the_identity_is_root_entry_name_and_inode_so_a_recreated_directory_is_a_new_dump(root, tmp_path, ctx):
    debian(root)
    first = only(check(root).run(ctx))
    (root / "202601210724").rename(tmp_path / "gone")  # deleted from the root; its inode stays taken here
    debian(root)
    second = only(check(root).run(ctx))
    assert first.id != second.id
    assert first.id.startswith(f"{root}/202601210724:")


# --- noise and the apport report ------------------------------------------------------------------


def test_files_that_are_not_kernel_dumps_are_ignored(root, ctx):
    put(root / "kdump_lock", b"")
    put(root / "kexec_cmd", "/sbin/kexec -p --command-line=...\n")
    put(root / "_usr_bin_python3.12.1000.crash", "ProblemType: Crash\nExecutablePath: /usr/bin/python3.12\n")
    put(root / "_usr_bin_python3.12.1000.upload", b"")
    put(root / "_usr_bin_python3.12.1000.uploaded", b"")
    (root / "vmcore-127.0.0.1-2024-03-05-14:22:07.new").mkdir()
    (root / "notes").mkdir()
    results = check(root).run(ctx)
    assert occurrences(results) == []
    assert EN.text(results[0].reason) == f"0 crash dumps in {root}"


def test_an_apport_kernel_report_and_its_dump_directory_make_one_occurrence(root, ctx):
    debian(root)
    put(root / "linux-image-6.8.0-51-generic-202601210724.crash", apport_kernel_report(SYSRQ), when=BOOT + 30)
    occ = only(check(root).run(ctx))
    assert occ.summary == SYSRQ_HEADLINE
    assert occ.facts["apport_report"] == str(root / "linux-image-6.8.0-51-generic-202601210724.crash")


def test_the_reason_comes_from_the_apport_report_without_changing_its_atime(root, ctx):
    dump_dir(root, "202601210724", {"dump.202601210724": FLATTENED})  # the dmesg was removed
    report = put(root / "linux-image-6.8.0-51-generic-202601210724.crash", apport_kernel_report(OOM))
    os.utime(report, (CRASH - 100, CRASH))  # atime older than mtime: apport has not shown it yet
    control = put(root.parent / "control.txt", "x", when=CRASH)
    os.utime(control, (CRASH - 100, CRASH))
    control.read_bytes()
    if os.stat(control).st_atime == CRASH - 100:
        pytest.skip("this filesystem does not update atime on read (noatime)")
    occ = only(check(root).run(ctx))
    assert occ.summary == OOM_HEADLINE
    assert occ.facts["function"] == "check_panic_on_oom+0x55/0x60"
    assert os.stat(report).st_atime == CRASH - 100


# --- hostile roots ------------------------------------------------------------------------------


def test_a_symlinked_dump_directory_is_logged_and_never_followed(root, tmp_path, ctx, caplog):
    outside = dump_dir(tmp_path / "elsewhere", "202601210724", {"dmesg.202601210724": SYSRQ, "dump.202601210724": FLATTENED})
    (root / "202601210724").symlink_to(outside)
    with caplog.at_level(logging.WARNING, logger="monagent.checks.kdump"):
        results = check(root).run(ctx)
    assert occurrences(results) == []
    assert EN.text(results[0].reason) == f"0 crash dumps in {root}; untrusted entries ignored: 1"
    assert caplog.messages == [
        f"{root}: '202601210724' is a symbolic link; not treated as a kernel crash dump (see trusted_owners)"
    ]


def test_a_symlinked_kernel_log_inside_a_dump_is_not_read(root, tmp_path, ctx):
    secret = put(tmp_path / "secret.txt", "Kernel panic - not syncing: from outside the root\n")
    directory = dump_dir(root, "202601210724", {"dump.202601210724": FLATTENED})
    (directory / "dmesg.202601210724").symlink_to(secret)
    occ = only(check(root).run(ctx))
    assert occ.summary == "kernel crash (reason unavailable: no kernel log beside the dump)"


@pytest.mark.skipif(os.geteuid() != 0, reason="chown needs root")
def test_a_dump_directory_owned_by_another_user_is_logged_not_alerted(root, ctx, caplog):
    directory = debian(root)
    os.chown(directory, 65534, 65534)
    with caplog.at_level(logging.WARNING, logger="monagent.checks.kdump"):
        assert occurrences(check(root).run(ctx)) == []
    assert caplog.messages == [
        f"{root}: '202601210724' is owned by uid 65534, not a trusted owner; "
        "not treated as a kernel crash dump (see trusted_owners)"
    ]
    assert only(check(root, trusted_owners=["root", "65534"]).run(ctx)).summary == SYSRQ_HEADLINE


def test_a_name_carrying_markdown_is_not_taken_for_a_dump(root, ctx):
    debian(root, name="[click](http://evil.example)-202601210724")
    debian(root, name="**boom**-202601210724")
    assert occurrences(check(root).run(ctx)) == []


def test_markdown_inside_the_log_reaches_the_facts_verbatim_for_the_formatter_to_escape(root, ctx):
    log = SYSRQ.replace("Comm: bash", "Comm: **[x](http://e)**")
    debian(root, log)
    assert only(check(root).run(ctx)).facts["comm"] == "**[x](http://e)**"


def test_only_the_last_two_megabytes_of_a_50_megabyte_kernel_log_are_read(root, ctx):
    directory = dump_dir(root, "202601210724", {"dump.202601210724": FLATTENED})
    dmesg = directory / "dmesg.202601210724"
    with dmesg.open("wb") as fh:
        fh.write(b"[    1.000000] Kernel panic - not syncing: a decoy at the head of the file\n")
        fh.seek(50 * 1024 * 1024 - len(NULL_DEREF.encode()) - 1)  # sparse: no disk space used
        fh.write(b"\n" + NULL_DEREF.encode())
    os.utime(dmesg, (CRASH, CRASH))
    before = _bytes_read()
    occ = only(check(root).run(ctx))
    read = _bytes_read() - before
    assert occ.summary == NULL_HEADLINE
    assert read < 4 * 1024 * 1024, read


def _bytes_read() -> int:
    with open("/proc/self/io", encoding="ascii") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith("rchar:"))


@pytest.fixture
def big_root(tmp_path: Path):
    """A root on tmpfs when there is one: creating 10,000 files on a busy disk takes longer than scanning them."""
    import shutil
    import tempfile

    base = tempfile.mkdtemp(dir="/dev/shm") if os.path.isdir("/dev/shm") else str(tmp_path)
    yield Path(base) / "crash"
    shutil.rmtree(base, ignore_errors=True)


def test_ten_thousand_entries_in_the_root_yield_the_one_dump(big_root, ctx):
    big_root.mkdir()
    for i in range(5000):
        for name in (f"_usr_bin_tool{i}.1000.crash", f"junk-{i}"):
            os.close(os.open(big_root / name, os.O_CREAT | os.O_WRONLY, 0o644))
    debian(big_root, OOM)
    assert only(check(big_root).run(ctx)).summary == OOM_HEADLINE


def test_max_dumps_bounds_the_work_and_says_so(root, ctx):
    for minute in range(5):
        debian(root, name=f"2026012107{minute:02d}", when=CRASH - 600 * (5 - minute))
    results = check(root, max_dumps=2).run(ctx)
    assert sorted(o.facts["dump_path"] for o in occurrences(results)) == [str(root / "202601210703"), str(root / "202601210704")]
    assert EN.text(results[0].reason) == f"2 crash dumps in {root}; oldest entries not examined (max_dumps): 3"


# --- roots ------------------------------------------------------------------------------------------


def test_roots_come_from_the_kdump_configuration_of_every_distribution(tmp_path, ctx):
    debian_root, rhel_root, suse_root = (tmp_path / n for n in ("deb", "rhel", "suse"))
    etc = tmp_path / "etc"
    put(etc / "default/kdump-tools", f'# kdump-tools\nKDUMP_COREDIR="{debian_root}"\nKDUMP_DUMP_DMESG=1\n')
    put(etc / "kdump.conf", f"# kdump.conf\npath {rhel_root}\ncore_collector makedumpfile -l --message-level 7 -d 31\n")
    put(etc / "sysconfig/kdump", f'KDUMP_SAVEDIR="file://{suse_root}"\n')
    debian(debian_root)
    dump_dir(rhel_root, "127.0.0.1-2024-03-05-14:22:07", {"vmcore-dmesg.txt": OOM, "vmcore": KDUMP_COMPRESSED})
    dump_dir(suse_root, "2024-03-05-14-22", {"README.txt": SUSE_README, "dmesg": NULL_DEREF, "vmcore": FLATTENED})
    watcher = KdumpCheck(roots=[str(tmp_path / "var-crash")], etc_root=str(etc))
    results = watcher.run(ctx)
    assert [r.subject for r in results] == [str(tmp_path / "var-crash"), str(debian_root), str(rhel_root), str(suse_root)]
    assert EN.text(results[0].reason) == f"{tmp_path / 'var-crash'} does not exist (no dumps)"
    assert [o.summary for o in occurrences(results)] == [SYSRQ_HEADLINE, OOM_HEADLINE, NULL_HEADLINE]


def test_a_root_reached_twice_through_a_symlink_is_scanned_once(root, tmp_path, ctx):
    debian(root)
    (tmp_path / "log-dump").symlink_to(root)  # SUSE's /var/log/dump -> /var/crash
    results = KdumpCheck(roots=[str(root), str(tmp_path / "log-dump")], read_kdump_config=False).run(ctx)
    assert [r.subject for r in results] == [str(root)]
    assert len(occurrences(results)) == 1


def test_an_abrt_copy_of_a_reported_dump_is_not_reported_again(root, tmp_path, ctx):
    spool = tmp_path / "abrt"
    files = {"vmcore-dmesg.txt": SYSRQ, "vmcore": KDUMP_COMPRESSED}
    dump_dir(root, "127.0.0.1-2024-03-05-14:22:07", files)
    dump_dir(spool, "vmcore-127.0.0.1-2024-03-05-14:22:07", files, when=BOOT + 40)
    dump_dir(spool, "vmcore-127.0.0.1-2024-02-01-10:00:00", files, when=BOOT - 86400)  # moved (CopyVMcore=no)
    results = check(root, abrt_spool=str(spool)).run(ctx)
    assert [o.facts["dump_path"] for o in occurrences(results)] == [
        str(root / "127.0.0.1-2024-03-05-14:22:07"),
        str(spool / "vmcore-127.0.0.1-2024-02-01-10:00:00"),
    ]
    assert occurrences(results)[1].facts["distro_layout"] == "ABRT spool copy"


def test_nothing_is_scanned_inside_a_kdump_capture_kernel(root, tmp_path):
    debian(root)
    proc = make_proc(tmp_path)
    put(proc / "vmcore", b"\x7fELF")
    ctx = FakeContext(proc)
    results = check(root).run(ctx)
    assert [EN.text(r.reason) for r in results] == ["running in a kdump capture kernel: dump roots are not scanned"]
    assert ctx.calls == []


def test_the_scan_runs_through_the_blocking_call_helper_with_its_timeout(root, ctx):
    check(root, scan_timeout_seconds=7.5).run(ctx)
    assert [(name, args[0].root, timeout) for name, args, timeout in ctx.calls] == [("scan_root", str(root), 7.5)]


def test_a_root_whose_scan_hangs_is_unknown_with_the_reason(root, tmp_path):
    from monagent.checks.kdump_scan import scan_root

    ctx = FakeContext(make_proc(tmp_path), hanging_functions=[scan_root])
    results = check(root, scan_timeout_seconds=3).run(ctx)
    assert [(r.subject, r.status, EN.text(r.reason)) for r in results] == [
        (str(root), Status.UNKNOWN, f"{root} is not responding (scan took longer than 3s)")
    ]


def test_options_are_validated_as_the_config_file_would_be():
    from monagent.confread import ConfigError
    from monagent.testing import build_check

    watcher = build_check(
        KdumpCheck,
        {"roots": ["/srv/crash"], "trusted_owners": ["root", "0"], "settle_seconds": 60, "abrt_spool": "/var/spool/abrt"},
    )
    assert (watcher.roots, watcher.settle_seconds) == (("/srv/crash",), 60.0)
    with pytest.raises(ConfigError) as err:
        build_check(KdumpCheck, {"trusted_owners": ["no-such-user-here"]})
    assert str(err.value).endswith("checks.test: trusted_owners: no user named 'no-such-user-here' on this host")
    with pytest.raises(ConfigError) as err:
        build_check(KdumpCheck, {"roots": ["var/crash"]})
    assert str(err.value).endswith("checks.test: roots: 'var/crash' is not an absolute path")


def test_a_local_rhel_dump_names_no_client_host_and_the_excerpt_starts_at_the_sysrq_trigger(root, ctx):
    _rhel_local(root)
    facts = only(check(root).run(ctx)).facts
    assert "host" not in facts
    assert facts["excerpt"].splitlines()[:2] == ["sysrq: Trigger a crash", "Kernel panic - not syncing: sysrq triggered crash"]


def test_a_directory_reused_by_a_stuck_clock_gets_a_new_revision_for_its_new_core(root, ctx):
    directory = debian(root)
    watcher = check(root)
    first = only(watcher.run(ctx))
    put(directory / "dump-incomplete", FLATTENED + b"second crash", when=CRASH + 60)  # same minute stamp, new dump
    os.rename(directory / "dump-incomplete", directory / "dump.202601210724")
    second = only(watcher.run(ctx))
    assert (second.id, second.summary) == (first.id, SYSRQ_HEADLINE)
    assert second.revision != first.revision


def test_with_the_engines_seen_set_a_restart_sends_nothing_and_a_first_run_announces_only_the_boot_crash(root, ctx):
    from monagent.alerting.occurrences import triage

    debian(root, name="202601210724", when=BOOT - 300)  # the crash that caused this boot
    debian(root, OOM, name="202511020300", when=BOOT - 90 * 86400)
    found = [(r.subject, o) for r in check(root).run(ctx) for o in r.occurrences]
    first = triage(found, {}, NOW)  # fresh install: no seen set
    assert [o.summary for _, o in first.announce] == [SYSRQ_HEADLINE]
    assert [o.summary for _, o in first.summarised] == [OOM_HEADLINE]

    restarted = [(r.subject, o) for r in check(root).run(ctx) for o in r.occurrences]  # a new instance
    again = triage(restarted, first.updates, NOW + 60)
    assert (again.announce, again.summarised) == ((), ())


@pytest.mark.skipif(os.geteuid() != 0, reason="chown needs root")
def test_a_root_flooded_by_another_user_gives_one_line_per_scan_and_a_bounded_scan(root, ctx, caplog, monkeypatch):
    """300 dump-like directories and flat dumps of another user (a 1777 root), at most 200 directory
    entries read per scan (#13): one summary WARNING per scan (not one per entry), a few samples
    kept, the rest read by the next scan, and the real dump among them still found."""
    from monagent.checks import kdump_scan
    from monagent.checks.kdump_scan import IGNORED_SAMPLES, ScanRequest, scan_root

    os.chmod(root, 0o1777)
    for n in range(300):
        path = root / (f"10.0.{n // 250}.{n % 250}-2026-01-21-07:24:00" if n % 2 else f"10.1.0.{n}-dump.202601210724")
        path.mkdir() if n % 2 else path.touch()
        os.chown(path, 65534, 65534)
    debian(root)
    read: list = []
    real_scandir = os.scandir

    class Counting:
        """os.scandir that counts the entries a scan takes from it."""

        def __init__(self, fd):
            self.inner = real_scandir(fd)
            read.append(0)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.inner.close()

        def __iter__(self):
            for item in self.inner:
                read[-1] += 1
                yield item

    monkeypatch.setattr(kdump_scan.os, "scandir", Counting)
    first = scan_root(ScanRequest(str(root), frozenset({0}), max_entries=200))
    second = scan_root(ScanRequest(str(root), frozenset({0}), max_entries=200, offset=first.next_offset))
    third = scan_root(ScanRequest(str(root), frozenset({0}), max_entries=200, offset=second.next_offset))
    monkeypatch.undo()
    assert read[0] == 201  # 200 examined, one more to know there are more; never the whole root
    assert [(s.first, s.examined, s.next_offset) for s in (first, second, third)] == [(0, 200, 200), (200, 101, 0), (0, 200, 200)]
    assert first.ignored_count + second.ignored_count == 300
    assert len(first.dumps) + len(second.dumps) == 1
    assert len(first.ignored) == len(second.ignored) == IGNORED_SAMPLES
    kdump = check(root, max_entries_per_scan=200)
    with caplog.at_level(logging.WARNING, logger="monagent.checks.kdump"):
        results = [kdump.run(ctx) for _ in range(2)]
    assert len(caplog.messages) == 2  # one per scan
    assert all(" untrusted entries ignored, e.g. " in message for message in caplog.messages)
    assert sum(len(occurrences(r)) for r in results) == 1
    assert EN.text(results[0][0].reason).endswith(
        f"untrusted entries ignored: {first.ignored_count}; a crowded root: entries 1-200 examined, the others in the next scans"
    )
    assert EN.text(results[1][0].reason).endswith("a crowded root: entries 201-301 examined, the others in the next scans")


def test_a_flat_dumps_kernel_log_of_another_user_is_not_read(root, ctx):
    """In a world-writable root another user may put HOST-dmesg.STAMP beside root's flat dump: it is
    not taken as the dump's kernel log (it would choose the reason told to the admins)."""
    if os.geteuid() != 0:
        pytest.skip("chown needs root")
    put(root / "10.20.0.15-dump.202601210724", FLATTENED)
    planted = put(root / "10.20.0.15-dmesg.202601210724", OOM)
    os.chown(planted, 65534, 65534)
    found = occurrences(check(root).run(ctx))
    assert len(found) == 1 and found[0].summary != OOM_HEADLINE
    os.chown(planted, 0, 0)  # the same file written by root is the dump's kernel log
    assert [o.summary for o in occurrences(check(root).run(ctx))] == [OOM_HEADLINE]


def test_the_watcher_shares_the_non_blocking_thread_only_while_every_root_is_local(tmp_path: Path, root: Path) -> None:
    watcher = check(root)
    watcher.run(FakeContext(make_proc(tmp_path)))
    assert watcher.non_blocking is True  # a local root: scanned in-process in microseconds
    watcher.run(FakeContext(make_proc(tmp_path), remote_paths=[str(root)]))
    assert watcher.non_blocking is False  # an NFS root, scanned in a worker up to scan_timeout: its own thread
