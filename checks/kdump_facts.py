"""Turning one recognised dump into the occurrence a message is made from (docs/design/kdump-layouts.md 6.3).

Fact keys (the DingTalk formatter renders these; empty values are left out): ``reason``,
``function``, ``module``, ``comm``, ``pid``, ``kernel``, ``running_kernel``, ``taint``,
``test_crash`` (bool), ``dump_status`` (complete/incomplete/failed, or unknown when the agent
may not list the dump directory), ``dump_path``,
``dump_size`` (bytes), ``dump_format`` (``flattened``: the messages say to run makedumpfile -R
first), ``free_space`` (bytes), ``boot_time`` (epoch seconds of the current boot), ``excerpt`` (newline-separated lines),
``distro_layout``; and when known ``panic`` (the panic line when the headline is another
line), ``host`` (the crashed client on a dump server), ``capture_time`` (the directory
stamp, capture-kernel clock), ``crash_time`` (SUSE README), ``hardware``, ``note``,
``apport_report``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Dict, Optional, Union

if TYPE_CHECKING:
    from monagent.checks.kdump_reason import CrashReport
    from monagent.checks.kdump_scan import FoundDump

from monagent.api import Fact, Formatter, Occurrence, Status, Text, plain

SUMMARY_MAX = 200
_ENGLISH = Formatter("en")  # the occurrence's summary: for logs; messages render its reason
_LOCAL_HOSTS = ("127.0.0.1", "::1")  # RHEL names local dumps 127.0.0.1-<date>: not a crashed client


@dataclass(frozen=True)
class DumpContext:
    """Per-root and per-host facts shared by every dump of one scan."""

    root: str  # the root's real path
    free_bytes: Optional[int]
    running_kernel: str
    boot_time: float
    announce_window: float


def occurrence_id(root: str, dump: FoundDump) -> str:
    """Stable across completion and renames of the files inside: root, entry name, entry inode."""
    return f"{os.path.join(root, dump.name)}:{dump.ino}"


def revision(status: str, dump: FoundDump) -> str:
    """Changes when the status changes, or when a reused directory gets a new core file."""
    if status == "complete" and dump.core is not None:
        return f"complete:{dump.core.ino}"
    return status


def build_occurrence(ctx: DumpContext, dump: FoundDump, status: str, report: Optional[CrashReport]) -> Occurrence:
    written = dump.newest_mtime
    window = ctx.announce_window
    reason = summary(status, dump, report)
    return Occurrence(
        id=occurrence_id(ctx.root, dump),
        summary=_ENGLISH.text(reason),
        reason=reason,
        severity=Status.CRITICAL,
        revision=revision(status, dump),
        facts=facts(ctx, dump, status, report),
        time=written or None,
        announce_on_first_run=ctx.boot_time - window <= written <= ctx.boot_time + window,
    )


def summary(status: str, dump: FoundDump, report: Optional[CrashReport]) -> Text:
    """The crash in words: the kernel's own headline (as the kernel wrote it), or why there is none,
    and whether the dump is incomplete or failed."""
    from monagent.checks.kdump import KdumpCheck

    if report is not None and report.found:
        kernel = report.headline
        head = plain(kernel if len(kernel) <= SUMMARY_MAX else kernel[: SUMMARY_MAX - 1] + "…")
    elif dump.report_error:
        head = KdumpCheck.text("kdump.reason_unavailable", why=dump.report_error)
    else:
        head = KdumpCheck.text("kdump.no_message")
    said: Text = head  # KdumpCheck is untyped here: mypy does not map checks/ to monagent.checks
    if status == "incomplete":
        said = KdumpCheck.text("kdump.dump_incomplete", head=head)
    elif status == "failed":
        said = KdumpCheck.text("kdump.dump_failed", head=head)
    return said


def facts(ctx: DumpContext, dump: FoundDump, status: str, report: Optional[CrashReport]) -> Dict[str, Fact]:
    from monagent.checks.kdump_reason import CrashReport

    rep = report or CrashReport()
    shape = dump.shape
    path = os.path.join(ctx.root, dump.name)
    values: Dict[str, Union[str, int, float, bool, None]] = {
        "reason": rep.headline,
        "panic": rep.panic if rep.panic and rep.panic not in rep.headline else "",
        "function": rep.function,
        "module": rep.module,
        "comm": rep.comm,
        "pid": rep.pid,
        "kernel": rep.kernel or shape.kernel,
        "running_kernel": ctx.running_kernel,
        "taint": rep.taint,
        "test_crash": rep.test_crash,
        "dump_status": status,
        "dump_path": path,
        "dump_size": dump.core.size if dump.core is not None else None,
        "dump_format": dump.core_format if dump.core is not None else "none",
        "free_space": ctx.free_bytes,
        "boot_time": ctx.boot_time or None,
        "excerpt": "\n".join(rep.excerpt),
        "distro_layout": shape.layout.value,
        "host": "" if dump.entry.host in _LOCAL_HOSTS else dump.entry.host,
        "capture_time": capture_time(dump.entry.stamp),
        "crash_time": shape.crash_time,
        "hardware": rep.hardware,
        "note": shape.note or (dump.report_error if not rep.found else ""),
        "apport_report": os.path.join(ctx.root, dump.apport_report) if dump.apport_report else "",
    }
    return {key: value for key, value in values.items() if value is not None and value != ""}


def capture_time(stamp: str) -> str:
    """The directory stamp in one readable form (capture-kernel clock, often local time)."""
    if len(stamp) == 12 and stamp.isdigit():
        return f"{stamp[:4]}-{stamp[4:6]}-{stamp[6:8]} {stamp[8:10]}:{stamp[10:]}"
    if len(stamp) >= 16 and stamp[:4].isdigit() and stamp[10] == "-":
        return f"{stamp[:10]} {stamp[11:13]}:{stamp[14:]}"
    return ""
