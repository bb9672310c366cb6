"""The one set of event builders of the tests: an alert, a crash, a process down, a notice.

Every builder makes a whole :class:`monagent.events.Event` from defaults that read as one believable
alert of host web01 at :data:`T0`; a test names only the fields it is about (any Event field may be
given). tests/voice_cases.py (the golden files), tests/test_markdown.py and the receiver, store and
outbox tests build their events here, so a change to Event is made in one place.
"""

from __future__ import annotations

from typing import Any, Dict, Optional

from monagent.api import Status
from monagent.events import AlertKey, Event, EventKind

T0 = 1_790_000_000.0  # 2026-09-21 14:13:20 UTC


def event(
    kind: EventKind = EventKind.FIRING,
    *,
    check: str = "disk",
    subject: str = "/var",
    metric: str = "used_percent",
    severity: Status = Status.CRITICAL,
    time: float = T0,
    incident: str = "inc-1",
    seq: int = 1,
    id: Optional[str] = None,  # the Event field's name
    **fields: Any,
) -> Event:
    """An alert of ``check`` on ``subject``: by default disk /var at 93% against a threshold of 90%,
    critical, pending since five minutes before ``time``; ``id`` is ``incident:seq`` unless given."""
    base: Dict[str, Any] = {
        "host": "web01",
        "summary": "",
        "check_type": "disk",
        "value": 93.0,
        "unit": "%",
        "threshold": 90.0,
        "operator": ">=",
        "since": time - 300,
    }
    base.update(fields)
    return Event(
        id=f"{incident}:{seq}" if id is None else id,
        kind=kind,
        key=AlertKey(check, subject, metric),
        severity=severity,
        time=time,
        incident=incident,
        **base,
    )


SYSRQ_EXCERPT = "\n".join(
    [
        "sysrq: Trigger a crash",
        "Kernel panic - not syncing: sysrq triggered crash",
        "CPU: 0 PID: 4952 Comm: bash Kdump: loaded Not tainted 5.4.0-0.rc6.git0.1.fc32.x86_64 #1",
        "Call Trace:",
        " sysrq_handle_crash+0x11/0x20",
    ]
)


def crash_event(test: bool = True, *, subject: str = "/var/crash", metric: str = "occurrence", **fields: Any) -> Event:
    """The kdump check's occurrence for a crash dump: by default a crash triggered by SysRq (``test``)
    found in /var/crash, its facts typed as the check gives them (``facts`` replaces them all)."""
    base: Dict[str, Any] = {
        "id": "crash:/var/crash/127.0.0.1-2026-09-21-13:30:02:1234",
        "kind": EventKind.OCCURRENCE,
        "key": AlertKey("kdump", subject, metric),
        "severity": Status.CRITICAL,
        "time": T0,
        "host": "web01",
        "summary": "Kernel panic - not syncing: sysrq triggered crash",
        "check_type": "kdump",
        "since": T0 - 1500,
        "facts": {
            "reason": "Kernel panic - not syncing: sysrq triggered crash",
            "function": "sysrq_handle_crash+0x11/0x20",
            "comm": "bash",
            "pid": "4952",
            "kernel": "5.4.0-0.rc6.git0.1.fc32.x86_64",
            "running_kernel": "6.1.0-18-amd64",
            "taint": "not tainted",
            "test_crash": test,
            "dump_status": "complete",
            "dump_path": "/var/crash/127.0.0.1-2026-09-21-13:30:02",
            "dump_size": 1_288_490_189,
            "dump_format": "flattened",
            "free_space": 51_539_607_552,
            "boot_time": T0 - 1200,
            "capture_time": "2026-09-21 13:30:02",
            "excerpt": SYSRQ_EXCERPT,
        },
    }
    base.update(fields)
    return Event(**base)


def process_down(kind: EventKind = EventKind.FIRING, **fields: Any) -> Event:
    """The process check's verdict on nginx (a status, no value): by default none running of at least one."""
    from monagent.checks.process import ProcessCheck

    fields.setdefault("reason", ProcessCheck.text("process.expected_min", n=0, min=1))
    return event(
        kind,
        check="nginx",
        subject="nginx",
        metric="status",
        value=None,
        threshold=None,
        operator="",
        check_type="process",
        **fields,
    )


def notice(**fields: Any) -> Event:
    """The agent's own notice (no check, no value): by default that it restarted after two hours down."""
    base: Dict[str, Any] = {
        "id": "n1",
        "kind": EventKind.NOTICE,
        "key": AlertKey("monagent", "", "restart"),
        "severity": Status.OK,
        "time": T0,
        "host": "web01",
        "summary": "agent restarted after 2h of downtime",
    }
    base.update(fields)
    return Event(**base)
