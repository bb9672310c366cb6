"""How the previous boot ended: the journal read through journalctl (a real child process serving
captured JSON), pstore records and crash dumps weighed into one verdict."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from journal_helpers import FAKE, calls, journal_dir
from kdump_helpers import SYSRQ
from monagent.checks.journal_read import previous_boot
from monagent.checks.pstore import read_records
from test_pstore import efi_name, kernel_chunks

from monagent.api import Occurrence, Status
from monagent.bootend import AgentMemory, BootEnd, Evidence, classify
from monagent.formatting import Formatter

MEMORY = AgentMemory("0b1d5c1e-prev", last_seen=1769000010.0, started_at=1768990000.0, clean_stop=False)
BOOT = 1769000100.0


@pytest.fixture
def journal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    def use(case: str, timeout: float = 5.0):
        directory = journal_dir(tmp_path, case)
        monkeypatch.setenv("FAKE_JOURNAL_DIR", str(directory))
        return previous_boot(timeout=timeout, journalctl=FAKE)

    return use


def test_an_orderly_reboot_is_planned_with_who_asked(journal) -> None:
    boot = journal("planned-reboot")
    assert boot.available and boot.shutdown is not None
    assert boot.shutdown.kind == "reboot"
    assert boot.shutdown.requested_by == "ops via sudo: /usr/bin/systemctl reboot"
    verdict = classify(Evidence(MEMORY, BOOT, journal=boot))
    assert verdict.end == BootEnd.PLANNED and verdict.severity == Status.WARNING
    assert (
        verdict.summary == "planned reboot: the previous boot shut down in order, requested by ops via sudo: "
        "/usr/bin/systemctl reboot"
    )
    assert verdict.facts["uptime"] == 3610 and verdict.facts["evidence"] == "System is rebooting."
    assert Formatter("zh").text(verdict.reason) == (
        "计划内重启：上一次启动已正常关机，由 ops via sudo: /usr/bin/systemctl reboot 发起"
    )


def test_a_shutdown_command_is_a_planned_power_off(journal) -> None:
    boot = journal("poweroff")
    assert boot.shutdown is not None and boot.shutdown.kind == "power-off"
    verdict = classify(Evidence(MEMORY, BOOT, journal=boot))
    assert verdict.summary.startswith("planned power-off: the previous boot shut down in order, requested by systemd-logind (")


def test_a_boot_that_just_stops_is_unplanned_with_its_last_kernel_lines_and_hints(journal) -> None:
    boot = journal("unplanned")
    assert boot.available and boot.shutdown is None
    verdict = classify(Evidence(MEMORY, BOOT, journal=boot, kernel_lines=3))
    assert verdict.end == BootEnd.UNPLANNED and verdict.severity == Status.CRITICAL
    assert verdict.summary == (
        "unplanned reboot: the previous boot ended without a shutdown and left no crash record (hints: hung task: "
        "jbd2/vda-8 (pid 312) blocked for more than 2m; soft lockup: CPU#1 stuck for 26s in kworker/1:2 (pid 4242))"
    )
    lines = verdict.details.splitlines()
    assert len(lines) == 3 and lines[-1].endswith(
        "] CPU: 1 PID: 4242 Comm: kworker/1:2 Not tainted 6.1.0-50-amd64 #1 Debian 6.1.158-1"
    )
    assert lines[1].endswith("] watchdog: BUG: soft lockup - CPU#1 stuck for 26s! [kworker/1:2:4242]")
    assert verdict.facts["last_seen_alive"] == 1769000150.0
    assert Formatter("zh").text(verdict.reason) == (
        "非计划重启：上一次启动没有正常关机，也没有留下崩溃记录（线索：任务挂起：jbd2/vda-8（pid 312）阻塞超过 2分钟；"
        "软锁死：CPU#1 在 kworker/1:2（pid 4242）中卡住 26秒）"
    )
    assert verdict.since == 1769000150.0


def test_without_a_previous_boot_in_the_journal_the_message_says_so(journal) -> None:
    boot = journal("nojournal")
    assert not boot.available and "is it persistent (/var/log/journal)?" in boot.error
    verdict = classify(Evidence(MEMORY, BOOT, journal=boot))
    assert verdict.end == BootEnd.UNPLANNED
    assert verdict.summary.endswith("left no crash record (no persistent journal to say more)")
    assert verdict.facts["journal"].startswith("no journal of the previous boot: the journal holds no previous boot (Data from")


def test_a_clean_agent_stop_stands_in_for_a_missing_journal(journal) -> None:
    memory = AgentMemory("prev", 1769000010.0, 1768990000.0, clean_stop=True)
    verdict = classify(Evidence(memory, BOOT, journal=journal("nojournal")))
    assert verdict.end == BootEnd.PLANNED
    assert verdict.summary == "planned reboot (probably): monagent was stopped in order before the host went down"


def test_a_journalctl_that_hangs_is_killed_at_its_timeout(journal, tmp_path: Path) -> None:
    started = time.monotonic()
    boot = journal("hang", timeout=1.0)
    assert time.monotonic() - started < 10
    assert not boot.available and boot.error == "journalctl did not answer within 1 s"
    assert len(calls(tmp_path / "journal")) <= 1  # killed in the first call: the second read is not tried


def test_a_missing_journalctl_is_a_reason_not_a_traceback(tmp_path: Path) -> None:
    boot = previous_boot(timeout=1.0, journalctl=str(tmp_path / "nope"))
    assert not boot.available and boot.error == f"{tmp_path / 'nope'} not found"


def test_a_pstore_panic_record_explains_the_crash_even_when_the_journal_looks_planned(journal, tmp_path: Path) -> None:
    live = tmp_path / "pstore"
    live.mkdir()
    for number, chunk in enumerate(kernel_chunks(SYSRQ, "Panic", 700), start=1):
        (live / efi_name(number)).write_text(chunk)
    records, _ = read_records([str(live)])
    verdict = classify(Evidence(MEMORY, BOOT, pstore=tuple(records), journal=journal("unplanned")))
    assert verdict.end == BootEnd.CRASH_PSTORE and verdict.severity == Status.CRITICAL
    assert verdict.summary == "kernel crash, no dump (pstore efi record): Kernel panic - not syncing: sysrq triggered crash"
    assert verdict.facts["comm"] == "bash" and verdict.facts["kernel"] == "5.4.0-0.rc6.git0.1.fc32.x86_64"
    assert "sysrq_handle_crash" in verdict.details
    planned = classify(Evidence(MEMORY, BOOT, pstore=tuple(records), journal=journal("planned-reboot")))
    assert planned.end == BootEnd.CRASH_PSTORE  # a panic record wins over an orderly-looking end


def test_an_oops_record_does_not_overrule_an_orderly_shutdown(journal, tmp_path: Path) -> None:
    live = tmp_path / "pstore"
    live.mkdir()
    (live / "dmesg-ramoops-0").write_text(kernel_chunks(SYSRQ.replace("Kernel panic - not syncing", "Oops"), "Oops", 99999)[0])
    records, _ = read_records([str(live)])
    assert classify(Evidence(MEMORY, BOOT, pstore=tuple(records), journal=journal("planned-reboot"))).end == BootEnd.PLANNED
    assert classify(Evidence(MEMORY, BOOT, pstore=tuple(records), journal=journal("unplanned"))).end == BootEnd.CRASH_PSTORE


def test_a_crash_dump_is_the_explanation_and_wins_over_everything(journal) -> None:
    dump = Occurrence("/var/crash/202601211250", "Kernel panic - not syncing: sysrq triggered crash", time=BOOT - 60)
    verdict = classify(Evidence(MEMORY, BOOT, dumps=(("crash_dumps", dump),), journal=journal("planned-reboot")))
    assert verdict.end == BootEnd.CRASH_DUMP
    assert verdict.summary == "kernel crash, dump saved: Kernel panic - not syncing: sysrq triggered crash"
