"""The alerts of the golden-file test: each check type, each event kind, as the checks and the engine
make them (reasons by message id, typed facts). Where a check has a function that makes the reason
from what it read (a systemctl answer, a kernel line, a plugin's run, the boot's evidence), the case
calls it, so the golden files show what the check really says. tests/test_voice.py renders them
through every output. The events are built with tests/events_factory.py."""

from __future__ import annotations

from typing import Dict, Tuple

from events_factory import T0, crash_event, event, notice, process_down
from monagent.checks.cpu import CpuCheck
from monagent.checks.disk import DiskCheck
from monagent.checks.kernel_log import KernelLogCheck
from monagent.checks.kernel_patterns import match_line
from monagent.checks.memory import MemoryCheck
from monagent.checks.nagios import NagiosCheck, Outcome
from monagent.checks.oom import OomCheck
from monagent.checks.process import ProcessCheck
from monagent.checks.systemd_units import FailedUnit, unit_result

from monagent.api import Status, Text, joined
from monagent.bootend import AgentMemory, Evidence, classify
from monagent.events import AlertKey, Event, EventKind
from monagent.notify.coalesce import Batch, HeldReason, Item

GIB = 1 << 30


def oom() -> Event:
    return Event(
        id="oom:1",
        kind=EventKind.OCCURRENCE,
        key=AlertKey("oom", "system", "occurrence"),
        severity=Status.CRITICAL,
        time=T0,
        host="web01",
        summary="OOM killer killed java (pid 3121), anon-rss 3 GiB",
        check_type="oom",
        facts={"process": "java", "pid": "3121", "anon_rss": 3 * GIB, "total_vm": 5 * GIB, "count": "1"},
        reason=OomCheck.text("oom.killed", comm="java", pid="3121", rss=3 * GIB, n=1),
    )


def first_run() -> Event:
    dates = (Text("date", {"at": T0 - 86400 * 3}), Text("date", {"at": T0 - 86400 * 40}))
    reason = Text("first_run.crash", {"n": 2, "where": "/var/crash", "dates": dates})
    return Event(
        id="kdump:first-run:1",
        kind=EventKind.NOTICE,
        key=AlertKey("kdump", "", "occurrence"),
        severity=Status.CRITICAL,
        time=T0,
        host="web01",
        summary="2 crash dumps already in /var/crash when monagent first ran",
        reason=reason,
    )


def kernel_problem() -> Event:
    """The kernel_log check's occurrence for a hung task, from the kernel's line (its fact labels are
    KernelLogCheck's, registered when the class is defined, as the agent's loader does)."""
    assert KernelLogCheck.texts["fact.times_seen"]
    problem = match_line("INFO: task jbd2/vda-8:312 blocked for more than 120 seconds.")
    assert problem is not None
    return Event(
        id="boot-1:hung_task:jbd2/vda-8",
        kind=EventKind.OCCURRENCE,
        key=AlertKey("kernel", "", "occurrence"),
        severity=problem.severity,
        time=T0,
        host="web01",
        summary=problem.summary,
        check_type="kernel_log",
        facts={"kind": problem.kind, "line": problem.line, "times_seen": 2},
        reason=problem.reason,
    )


def boot_end() -> Event:
    """The one message about how the previous boot ended (no journal, no dump, no pstore record)."""
    verdict = classify(Evidence(AgentMemory("prev-boot", T0 - 4000, T0 - 90000, clean_stop=False), T0 - 3600))
    return Event(
        id="boot-end:b1",
        kind=EventKind.NOTICE,
        key=AlertKey("monagent", "", "host"),
        severity=verdict.severity,
        time=T0,
        host="web01",
        summary=verdict.summary,
        since=verdict.since,
        check_type=verdict.end.value,
        facts=dict(verdict.facts),
        reason=verdict.reason,
    )


def nagios_timeout() -> Event:
    check = NagiosCheck(command=["/usr/lib/nagios/plugins/check_pgsql", "-H", "db1"], timeout=10)
    result = check.judge(Outcome(-9, "PGSQL: still connecting\n", "", 24, timed_out=True))
    return event(
        check="nagios_pg",
        subject="",
        metric="#unknown",
        value=None,
        threshold=None,
        operator="",
        check_type="nagios",
        reason=result.reason,
        incident="inc-t",
    )


def cases() -> Dict[str, Batch]:
    """Name -> the batch one message is made of."""
    disk_reason = joined(
        DiskCheck.text("disk.used", percent=96.5),
        DiskCheck.text("disk.trend", rate=1.2),
        DiskCheck.text("disk.full_in", eta=12_600),
    )
    disk = event(
        value=96.5,
        threshold=95.0,
        check="root_disk",
        check_type="disk",
        trend=(90.1, 92.0, 94.2, 96.5),
        facts={"time_to_full": 12_600.0, "trend": 1.2, "free": 3 * GIB},
        reason=disk_reason,
    )
    memory = event(
        check="mem",
        subject="",
        metric="available_bytes",
        value=524_288_000.0,
        unit="B",
        threshold=1_073_741_824.0,
        operator="<",
        severity=Status.WARNING,
        incident="inc-mem",
        check_type="memory",
        reason=joined(
            MemoryCheck.text("memory.available", percent=3, available=524_288_000, total=16 * GIB),
            MemoryCheck.text("memory.no_swap"),
        ),
    )
    cpu_resolved = event(
        EventKind.RESOLVED,
        check="cpu",
        subject="",
        metric="usage_percent",
        value=20.0,
        threshold=90.0,
        incident="inc-cpu",
        duration=7500.0,
        check_type="cpu",
        reason=joined(
            CpuCheck.text("cpu.usage", used=20, iowait=1, steal=0),
            CpuCheck.text("cpu.load", load1=0.25, load5=0.5, load15=1.25, cores=8),
        ),
    )
    latency = event(
        check="api",
        subject="",
        metric="latency_seconds",
        value=0.012,
        unit="s",
        threshold=0.01,
        severity=Status.WARNING,
        incident="inc-api",
        check_type="http_probe",
    )
    rate = event(
        check="api",
        subject="",
        metric="errors",
        value=1500.51,
        unit="/s",
        threshold=1.0,
        incident="inc-rate",
        check_type="http_probe",
    )
    failed = unit_result(
        FailedUnit("cron.service", "loaded", "Regular background program processing daemon"),
        {
            "Result": "exit-code",
            "InactiveEnterTimestamp": "Mon 2026-09-21 14:02:11 UTC",
            "ExecMainCode": "1",
            "ExecMainStatus": "1",
        },
    )
    unit_failed = event(
        check="units",
        subject="cron.service",
        metric="status",
        value=None,
        threshold=None,
        operator="",
        check_type="systemd_units",
        reason=failed.reason,
        facts=dict(failed.facts),
    )
    not_mounted = event(
        check="data_disk",
        subject="/data",
        metric="status",
        value=None,
        threshold=None,
        operator="",
        check_type="disk",
        reason=DiskCheck.text("disk.not_mounted", mount="/data"),
        incident="inc-nm",
    )
    zombies = process_down(
        reason=joined(ProcessCheck.text("process.expected_min", n=0, min=1), ProcessCheck.text("process.zombies", n=2)),
        incident="inc-z",
    )
    flap = event(
        EventKind.FLAP_START,
        check="nginx",
        subject="nginx",
        metric="status",
        value=None,
        threshold=None,
        since=None,
        severity=Status.WARNING,
        check_type="process",
        reason=Text("flap.started", {"percent": 34.0, "samples": 21}),
    )
    restarted = notice(reason=Text("notice.restarted", {"down": 7200.0}))
    failing = event(
        check="nagios_pg",
        subject="",
        metric="#unknown",
        value=None,
        threshold=None,
        operator="",
        check_type="nagios",
        reason=NagiosCheck.text(
            "nagios.cannot_run", plugin="/usr/lib/nagios/plugins/check_pgsql", error="No such file or directory"
        ),
        incident="inc-u",
    )
    one: Tuple[Tuple[str, Event], ...] = (
        ("disk_firing", disk),
        ("disk_escalated", event(EventKind.ESCALATED, value=98.0, threshold=98.0, check="root_disk", check_type="disk", seq=2)),
        ("disk_reminder", event(EventKind.REMINDER, value=96.5, threshold=95.0, check="root_disk", check_type="disk", seq=3)),
        (
            "disk_deescalated",
            event(
                EventKind.DEESCALATED, value=90.0, threshold=85.0, check="root_disk", check_type="disk", severity=Status.WARNING
            ),
        ),
        ("disk_not_mounted", not_mounted),
        ("memory_firing", memory),
        ("cpu_resolved", cpu_resolved),
        ("latency_firing", latency),
        ("rate_firing", rate),
        ("process_firing", process_down()),
        ("process_zombies", zombies),
        ("process_resolved", process_down(EventKind.RESOLVED, reason=ProcessCheck.text("process.running", n=1), duration=300.0)),
        ("systemd_firing", unit_failed),
        ("check_failing", failing),
        ("nagios_timeout", nagios_timeout()),
        ("flapping", flap),
        (
            "flapping_ended",
            event(
                EventKind.FLAP_END,
                check="nginx",
                subject="nginx",
                metric="status",
                value=None,
                threshold=None,
                since=None,
                severity=Status.OK,
                check_type="process",
                reason=Text("flap.ended", {"percent": 12.0, "phase": Text("phase.firing")}),
            ),
        ),
        ("crash_test", crash_event()),
        ("crash", crash_event(test=False)),
        ("oom", oom()),
        ("kernel_log", kernel_problem()),
        ("boot_unplanned", boot_end()),
        ("first_run_summary", first_run()),
        ("notice", restarted),
    )
    batches = {name: Batch((Item(e, (n,)),)) for n, (name, e) in enumerate(one, 1)}
    batches["digest"] = Batch(
        (Item(disk, (1,)), Item(memory, (2,)), Item(cpu_resolved, (3,))),
        held=(HeldReason.LOCKOUT,),
        held_since=T0 - 600,
        cancelled=1,
        cancelled_events=2,
    )
    return batches
