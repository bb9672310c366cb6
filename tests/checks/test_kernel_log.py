"""The kernel_log check: distinct kernel problems of the running boot, read through journalctl
(a stand-in child process serving captured journal JSON), each reported once."""

from __future__ import annotations

from pathlib import Path

import pytest
from journal_helpers import FAKE, calls, journal_dir
from monagent.checks.kernel_log import KernelLogCheck
from monagent.checks.kernel_patterns import find_problems, match_line

from monagent import testing
from monagent.api import Formatter, Status


@pytest.fixture
def journal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    directory = journal_dir(tmp_path, "current")
    monkeypatch.setenv("FAKE_JOURNAL_DIR", str(directory))
    return directory


def ctx(boot: str = "boot-1") -> testing.FakeContext:
    return testing.FakeContext(hostname="web01", now=1769000100.0, boot_id=boot)


def test_each_distinct_problem_is_one_occurrence(journal: Path) -> None:
    check = KernelLogCheck(journalctl=FAKE)
    [result] = check.run(ctx())
    found = {o.id: o for o in result.occurrences}
    assert sorted(found) == ["boot-1:hung_task:jbd2/vda-8", "boot-1:hung_task:postgres", "boot-1:mce:"]
    hung = found["boot-1:hung_task:jbd2/vda-8"]
    assert hung.summary == "hung task: jbd2/vda-8 (pid 312) blocked for more than 2m"
    assert Formatter("zh").text(hung.reason) == "任务挂起：jbd2/vda-8（pid 312）阻塞超过 2分钟"
    assert hung.severity == Status.WARNING and hung.facts["times_seen"] == 2 and hung.announce_on_first_run
    assert found["boot-1:mce:"].summary == "hardware error (machine check)"
    assert Formatter("en").text(result.reason) == "3 kernel problems in this boot"
    assert Formatter("zh").text(result.reason) == "本次启动以来发现 3 个内核问题"


def test_the_next_run_reads_only_new_lines_and_keeps_the_same_ids(journal: Path) -> None:
    check = KernelLogCheck(journalctl=FAKE)
    first = {o.id for o in check.run(ctx())[0].occurrences}
    second = {o.id for o in check.run(ctx())[0].occurrences}
    assert first == second
    assert calls(journal)[1].endswith("--after-cursor s=cur;i=6")


def test_a_new_boot_starts_over(journal: Path) -> None:
    check = KernelLogCheck(journalctl=FAKE)
    check.run(ctx())
    [result] = check.run(ctx("boot-2"))
    assert {o.id.split(":")[0] for o in result.occurrences} == {"boot-2"}
    assert calls(journal)[-1] == "--no-pager -q -o json -k -b 0 -n 20000"


def test_kinds_choose_what_is_reported(journal: Path) -> None:
    [result] = KernelLogCheck(journalctl=FAKE, kinds=["mce"]).run(ctx())
    assert [o.id for o in result.occurrences] == ["boot-1:mce:"]
    with pytest.raises(ValueError, match="kinds: unknown kind 'lockups'"):
        KernelLogCheck(kinds=["lockups"])


def test_an_unreadable_journal_is_unknown_with_the_reason(tmp_path: Path) -> None:
    [result] = KernelLogCheck(journalctl=str(tmp_path / "none")).run(ctx())
    assert result.status == Status.UNKNOWN
    assert Formatter("en").text(result.reason) == f"cannot read the kernel log: {tmp_path / 'none'} not found"


@pytest.mark.parametrize(
    ("line", "kind", "subject", "severity"),
    [
        ("watchdog: BUG: soft lockup - CPU#3 stuck for 22s! [stress:1234]", "soft_lockup", "stress", Status.CRITICAL),
        ("Watchdog detected hard LOCKUP on cpu 2", "hard_lockup", "2", Status.CRITICAL),
        ("rcu: INFO: rcu_preempt detected stalls on CPUs/tasks:", "rcu_stall", "rcu_preempt", Status.WARNING),
        ("mce: [Hardware Error]: CPU 0: Machine Check: 0 Bank 5: be00000000800400", "mce", "5", Status.WARNING),
        ("{1}[Hardware Error]: event severity: fatal", "mce", "fatal", Status.CRITICAL),
        ("EDAC MC0: 1 UE memory read error on CPU_SrcID#0_Ha#0_Chan#1_DIMM#0", "mce", "UE", Status.CRITICAL),
        ("Kernel panic - not syncing: Out of memory: system-wide panic_on_oom is enabled", "oom_panic", "", Status.CRITICAL),
        ("CPU3: Package temperature above threshold, cpu clock throttled (total events = 1)", "thermal", "", Status.WARNING),
        ("softdog: Initiating system reboot", "watchdog", "", Status.CRITICAL),
    ],
)
def test_kernel_lines_of_each_kind(line: str, kind: str, subject: str, severity: Status) -> None:
    problem = match_line(line)
    assert problem is not None
    assert (problem.kind, problem.subject, problem.severity) == (kind, subject, severity)


def test_ordinary_lines_are_no_problem() -> None:
    assert find_problems(["EXT4-fs (vda): mounted filesystem", "usb 1-1: new high-speed USB device"]) == []
