"""The kernel_log check: distinct kernel problems of the running boot, read through journalctl
(a stand-in child process serving captured journal JSON), each reported once; from the second run
on through one journalctl --follow child that later runs drain."""

from __future__ import annotations

import logging
import os
import signal
import threading
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List

import pytest
from journal_helpers import (
    FAKE,
    append,
    calls,
    children,
    follower_pids,
    journal_dir,
    kernel_entry,
    state,
    wait_followers,
    wait_sent,
    wait_until,
)
from monagent.checks.journal_read import parse_entries
from monagent.checks.kernel_log import KernelLogCheck
from monagent.checks.kernel_patterns import find_problems, match_line

from monagent import testing, warden
from monagent.api import Formatter, Result, Status

ONCE = "--no-pager -q -o json -k -b 0"
FOLLOW = f"{ONCE} --follow"


@pytest.fixture
def journal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    directory = journal_dir(tmp_path, "current")
    monkeypatch.setenv("FAKE_JOURNAL_DIR", str(directory))
    return directory


@pytest.fixture
def kernel_log() -> Iterator[Callable[..., KernelLogCheck]]:
    """Checks on the fake journalctl, closed at the end (a follower does not outlive its test)."""
    made: List[KernelLogCheck] = []

    def make(**options: Any) -> KernelLogCheck:
        made.append(KernelLogCheck(journalctl=FAKE, **options))
        return made[-1]

    yield make
    for check in made:
        check.close()


def ctx(boot: str = "boot-1") -> testing.FakeContext:
    return testing.FakeContext(hostname="web01", now=1769000100.0, boot_id=boot)


def seen(result: Result) -> Dict[str, object]:
    """Occurrence id -> times seen."""
    return {o.id: o.facts["times_seen"] for o in result.occurrences}


def hung(number: int, task: str) -> str:
    return kernel_entry(number, f"INFO: task {task} blocked for more than 120 seconds.")


def following(check: KernelLogCheck, journal: Path) -> int:
    """Runs 1 and 2 (the second starts the follower); the follower's pid once it has caught up."""
    check.run(ctx())
    check.run(ctx())
    [pid] = wait_followers(journal, 1)
    assert calls(journal) == [f"{ONCE} -n 20000", f"{ONCE} --after-cursor s=cur;i=6", f"{FOLLOW} --after-cursor s=cur;i=6"]
    wait_sent(journal)
    return pid


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


def test_the_next_run_reads_only_new_lines_and_keeps_the_same_ids(journal: Path, kernel_log) -> None:
    check = kernel_log()
    first = {o.id for o in check.run(ctx())[0].occurrences}
    second = {o.id for o in check.run(ctx())[0].occurrences}
    assert first == second
    assert calls(journal)[1].endswith("--after-cursor s=cur;i=6")


def test_a_new_boot_starts_over(journal: Path, kernel_log) -> None:
    check = kernel_log()
    check.run(ctx())
    [result] = check.run(ctx("boot-2"))
    assert {o.id.split(":")[0] for o in result.occurrences} == {"boot-2"}
    wait_followers(journal, 1)
    assert calls(journal)[1:] == [f"{ONCE} -n 20000", f"{FOLLOW} --after-cursor s=cur;i=6"]


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


def test_a_message_holding_a_unicode_line_separator_is_one_entry() -> None:
    entry = kernel_entry(1, "usb 1-1: product: Disk\u2028Two")
    assert "\u2028" in entry  # unescaped, as journalctl writes it
    assert [e["MESSAGE"] for e in parse_entries(entry + entry)] == ["usb 1-1: product: Disk\u2028Two"] * 2


# Following the journal: one journalctl --follow child from the second run on.


def test_the_first_run_reads_once_and_starts_no_follower(journal: Path, kernel_log) -> None:
    """What `monagent check` does: one run, then close(): a single child, none left behind."""
    check = kernel_log()
    [result] = check.run(ctx())
    assert children() == []
    check.close()
    assert len(result.occurrences) == 3
    assert calls(journal) == [f"{ONCE} -n 20000"]
    assert follower_pids(journal) == [] and children() == []


def test_under_the_agent_the_first_run_reads_once_and_follows_from_there(journal: Path, kernel_log) -> None:
    """A long-lived context (monagent run) starts the follower after the first read, not a run later: the
    second spawn is part of the start-up, and no second one-shot read is needed."""
    check = kernel_log()
    [first] = check.run(testing.FakeContext(hostname="web01", now=1769000100.0, boot_id="boot-1", long_lived=True))
    [pid] = wait_followers(journal, 1)
    assert calls(journal) == [f"{ONCE} -n 20000", f"{FOLLOW} --after-cursor s=cur;i=6"]
    wait_sent(journal)
    append(journal, hung(1, "nginx:4242"))
    wait_sent(journal)
    [second] = check.run(testing.FakeContext(hostname="web01", now=1769000160.0, boot_id="boot-1", long_lived=True))
    assert len(calls(journal)) == 2 and follower_pids(journal) == [pid]
    assert set(seen(second)) == set(seen(first)) | {"boot-1:hung_task:nginx"}


def test_lines_written_after_the_second_run_come_through_the_follower_without_another_journalctl(
    journal: Path, kernel_log
) -> None:
    check = kernel_log()
    following(check, journal)
    append(journal, kernel_entry(1, "INFO: task jbd2/vda-8:312 blocked for more than 362 seconds.") + hung(2, "nginx:4242"))
    wait_sent(journal)
    [third] = check.run(ctx())
    assert seen(third) == {
        "boot-1:hung_task:jbd2/vda-8": 3,
        "boot-1:hung_task:postgres": 1,
        "boot-1:mce:": 1,
        "boot-1:hung_task:nginx": 1,
    }
    append(journal, hung(3, "nginx:4242") + hung(4, "jbd2/vda-8:312"))
    wait_sent(journal)
    [fourth] = check.run(ctx())
    assert seen(fourth) == {**seen(third), "boot-1:hung_task:jbd2/vda-8": 4, "boot-1:hung_task:nginx": 2}
    [fifth] = check.run(ctx())  # nothing new: the same counts
    assert seen(fifth) == seen(fourth)
    assert len(calls(journal)) == 3  # no journalctl after the follower
    assert len(follower_pids(journal)) == 1


def test_a_line_split_across_two_drains_is_parsed_once_whole(journal: Path, kernel_log) -> None:
    check = kernel_log()
    following(check, journal)
    line = hung(1, "nginx:4242")
    append(journal, line[:70])
    wait_sent(journal)
    assert "boot-1:hung_task:nginx" not in seen(check.run(ctx())[0])
    append(journal, line[70:])
    wait_sent(journal)
    assert seen(check.run(ctx())[0])["boot-1:hung_task:nginx"] == 1
    assert seen(check.run(ctx())[0])["boot-1:hung_task:nginx"] == 1
    assert len(calls(journal)) == 3


@pytest.mark.parametrize("in_the_pipe", [True, False], ids=["line-in-the-dead-followers-pipe", "line-written-after-it-died"])
def test_a_follower_killed_from_outside_is_replaced_and_nothing_is_lost_or_counted_twice(
    journal: Path, kernel_log, caplog: pytest.LogCaptureFixture, in_the_pipe: bool
) -> None:
    check = kernel_log()
    pid = following(check, journal)
    append(journal, hung(1, "nginx:4242"))
    wait_sent(journal)
    assert seen(check.run(ctx())[0])["boot-1:hung_task:nginx"] == 1
    if in_the_pipe:
        append(journal, hung(2, "nginx:4242"))
        wait_sent(journal)
    os.kill(pid, signal.SIGKILL)
    wait_until(lambda: state(pid) == "Z", "dead")
    if not in_the_pipe:
        append(journal, hung(2, "nginx:4242"))
    (journal / "follow.sent").unlink()
    with caplog.at_level(logging.WARNING, logger="monagent.checks.kernel_log"):
        [result] = check.run(ctx())
    assert caplog.messages == [
        f"{FAKE} --follow (pid {pid}) was killed by SIGKILL; reading the kernel log once from the last cursor"
    ]
    assert seen(result)["boot-1:hung_task:nginx"] == 2
    wait_followers(journal, 2)
    read_from = "s=follow;i=2" if in_the_pipe else "s=follow;i=1"
    assert calls(journal)[3:] == [f"{ONCE} --after-cursor {read_from}", f"{FOLLOW} --after-cursor s=follow;i=2"]
    assert state(pid) == ""  # reaped
    wait_sent(journal)
    append(journal, hung(3, "nginx:4242"))
    wait_sent(journal)
    assert seen(check.run(ctx())[0])["boot-1:hung_task:nginx"] == 3
    assert len(calls(journal)) == 5


def test_a_failing_follower_is_logged_and_a_failing_journal_is_unknown_with_one_child_per_run(
    journal: Path, kernel_log, caplog: pytest.LogCaptureFixture
) -> None:
    (journal / "follow-exit").write_text("0 Failed to iterate through journal: Bad message")
    check = kernel_log()
    check.run(ctx())
    check.run(ctx())
    [pid] = wait_followers(journal, 1)
    wait_until(lambda: state(pid) == "Z", "exited")
    (journal / "case").write_text("denied")
    with caplog.at_level(logging.WARNING, logger="monagent.checks.kernel_log"):
        [third] = check.run(ctx())
        [fourth] = check.run(ctx())
    assert caplog.messages == [
        f"{FAKE} --follow (pid {pid}) exited with status 1: Failed to iterate through journal: Bad message; "
        "reading the kernel log once from the last cursor"
    ]
    unreadable = "cannot read the kernel log: No journal files were opened due to insufficient permissions."
    assert [r.status for r in (third, fourth)] == [Status.UNKNOWN] * 2
    assert Formatter("en").text(fourth.reason) == unreadable
    assert calls(journal)[3:] == [f"{ONCE} --after-cursor s=cur;i=6"] * 2  # no follower while it fails
    assert state(pid) == ""
    (journal / "case").write_text("current")
    (journal / "follow-exit").unlink()
    [fifth] = check.run(ctx())
    assert fifth.status == Status.OK and seen(fifth)["boot-1:hung_task:jbd2/vda-8"] == 2
    wait_followers(journal, 2)
    assert calls(journal)[5:] == [f"{ONCE} --after-cursor s=cur;i=6", f"{FOLLOW} --after-cursor s=cur;i=6"]


def test_close_ends_the_follower_with_its_process_group_and_reaps_it(journal: Path, kernel_log) -> None:
    (journal / "follow-child").touch()
    check = kernel_log()
    pid = following(check, journal)
    assert children() == [pid]
    child = int((journal / "follow.child").read_text())
    assert state(pid) not in ("", "Z") and state(child) not in ("", "Z")
    check.close()
    assert state(pid) == ""  # dead and reaped: no zombie
    wait_until(lambda: state(child) in ("", "Z"), "killed with its group")  # reparented: whoever adopted it reaps it
    check.close()  # again: nothing to do
    assert children() == []
    check.run(ctx())  # a run that was in flight at close() starts no follower
    assert children() == [] and len(calls(journal)) == 4


def test_close_during_a_run_leaves_no_follower_behind(journal: Path, kernel_log) -> None:
    """close() from the scheduler's thread while the run's one-shot read is in flight."""
    check = kernel_log()
    check.run(ctx())
    (journal / "gate").touch()
    results: List[Result] = []
    second = threading.Thread(target=lambda: results.extend(check.run(ctx())))
    second.start()
    wait_until(lambda: len(calls(journal)) == 2, "reading")
    check.close()
    (journal / "gate").unlink()
    second.join(10)
    assert not second.is_alive() and results[0].status == Status.OK
    assert calls(journal) == [f"{ONCE} -n 20000", f"{ONCE} --after-cursor s=cur;i=6"] and children() == []


def test_the_follower_is_contained_by_the_warden_so_it_dies_with_the_agent(journal: Path, kernel_log) -> None:
    check = kernel_log()
    warden.enable()
    try:
        pid = following(check, journal)
        assert warden.pid() is not None  # the follower's group was handed to it
    finally:
        warden.shutdown()  # the pipe closes as when the agent dies: the warden kills what it holds
    wait_until(lambda: state(pid) == "Z", "killed by the warden")
    check.close()
    assert state(pid) == ""


def test_a_burst_larger_than_max_lines_is_read_over_several_runs_and_nothing_is_lost(journal: Path, kernel_log) -> None:
    check = kernel_log(max_lines=3)
    check.run(ctx())
    before = set(seen(check.run(ctx())[0]))
    wait_followers(journal, 1)
    assert calls(journal) == [f"{ONCE} -n 3", f"{ONCE} --after-cursor s=cur;i=6", f"{FOLLOW} --after-cursor s=cur;i=6"]
    wait_sent(journal)
    append(journal, "".join(hung(n, f"worker{n}:{1000 + n}") for n in range(1, 9)))
    wait_sent(journal)
    new: List[List[str]] = []
    for _ in range(4):
        now = seen(check.run(ctx())[0])
        new.append(sorted(key.split(":")[2] for key in set(now) - before))
        before = set(now)
    assert new == [["worker1", "worker2", "worker3"], ["worker4", "worker5", "worker6"], ["worker7", "worker8"], []]
    assert all(count == 1 for key, count in now.items() if "worker" in key)
    assert len(calls(journal)) == 3


def test_a_new_boot_stops_the_follower_and_reads_the_new_boot_from_its_start(journal: Path, kernel_log) -> None:
    check = kernel_log()
    pid = following(check, journal)
    [result] = check.run(ctx("boot-2"))
    assert state(pid) == ""
    wait_followers(journal, 2)
    assert sorted(seen(result).values()) == [1, 1, 2]
    assert calls(journal)[3:] == [f"{ONCE} -n 20000", f"{FOLLOW} --after-cursor s=cur;i=6"]
