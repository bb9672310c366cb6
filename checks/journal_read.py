"""Reading the systemd journal through its own tool, ``journalctl -o json``, with a hard timeout.

``journalctl`` runs as a child process and is killed when it passes ``timeout`` (a journal on a
stuck disk must not hang the agent). Entries come back as plain dicts of strings; a field that
journald stored as bytes (a JSON array of numbers) is decoded as UTF-8 with replacement.
:func:`previous_boot` reads what the last boot left: its last kernel lines, its last entries of
any kind (where an orderly shutdown shows), and when it was last alive. :mod:`journal_follow` keeps
one ``journalctl --follow`` running instead, for a reader that comes back every minute.
"""

from __future__ import annotations

import json
import re
import subprocess
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

JOURNALCTL = "journalctl"
SHUTDOWN_MESSAGE_ID = "98268866d1d54a499c4e98921d93bc40"  # logind: "System is rebooting/powering down"
JOB_DONE_MESSAGE_ID = "39f53479d3a045ac8e11786248231fbf"  # PID 1: a unit (target) reached
_END_TARGETS = {
    "reboot.target": "reboot",
    "poweroff.target": "power-off",
    "halt.target": "halt",
    "kexec.target": "kexec reboot",
    "soft-reboot.target": "soft reboot",
    "shutdown.target": "shutdown",
}
_PID1_END = re.compile(r"^(?:Shutting down\.|Reached target (?:System (?:Reboot|Power Off|Halt|Shutdown)|Shutdown)\b.*)")
_LOGIND_END = re.compile(r"^(?:System is (?P<what>rebooting|powering down|halting|rebooting with kexec|soft-rebooting))")
_WHO = re.compile(r"(?i)\b(?:reboot|poweroff|power-off|shutdown|halt)\b")
_NO_BOOT = re.compile(r"(?i)(?:not available|no such boot|failed to look up boot|no journal files|specifies? boot)")


class JournalUnavailable(Exception):
    """journalctl is missing, timed out, or the journal has no such boot."""


@dataclass(frozen=True)
class JournalLine:
    time: float  # wall clock, seconds
    monotonic: float  # seconds since that boot began
    text: str
    identifier: str = ""
    pid: str = ""
    unit: str = ""
    message_id: str = ""
    fields: Tuple[Tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Shutdown:
    kind: str  # reboot, power-off, halt, kexec reboot, shutdown
    evidence: str  # the journal line that shows it
    requested_by: str = ""  # who or what asked, where the journal says


@dataclass(frozen=True)
class PreviousBoot:
    available: bool
    error: str = ""  # why the previous boot could not be read
    boot_id: str = ""
    last_time: Optional[float] = None  # the last entry: last seen alive
    uptime: Optional[float] = None  # seconds from boot to the last entry
    kernel_lines: Tuple[JournalLine, ...] = ()
    shutdown: Optional[Shutdown] = None
    last_lines: Tuple[JournalLine, ...] = field(default=(), repr=False)


def _text(value: Any) -> str:
    if isinstance(value, list):
        try:
            return bytes(value).decode("utf-8", errors="replace")
        except (TypeError, ValueError):
            return ""
    return "" if value is None else str(value)


def parse_line(line: str) -> Optional[Dict[str, str]]:
    """One line of ``journalctl -o json``: the entry, or None for a blank or broken line."""
    raw = line.strip()
    if not raw:
        return None
    try:
        obj = json.loads(raw)
    except ValueError:
        return None
    return {str(k): _text(v) for k, v in obj.items()} if isinstance(obj, dict) else None


def parse_entries(output: str) -> List[Dict[str, str]]:
    """``journalctl -o json`` output (a whole read, or a chunk of complete lines): one object per
    line; broken lines are skipped. Lines end at a newline only: a message may hold U+2028 unescaped."""
    entries = []
    for line in output.split("\n"):
        entry = parse_line(line)
        if entry is not None:
            entries.append(entry)
    return entries


def to_line(entry: Dict[str, str]) -> JournalLine:
    def number(name: str) -> float:
        try:
            return int(entry.get(name, "")) / 1e6
        except ValueError:
            return 0.0

    extra = tuple((k, entry[k]) for k in ("JOB_TYPE", "JOB_RESULT", "_COMM", "_BOOT_ID", "__CURSOR") if k in entry)
    return JournalLine(
        time=number("__REALTIME_TIMESTAMP"),
        monotonic=number("__MONOTONIC_TIMESTAMP"),
        text=entry.get("MESSAGE", ""),
        identifier=entry.get("SYSLOG_IDENTIFIER", "") or entry.get("_COMM", ""),
        pid=entry.get("_PID", ""),
        unit=entry.get("UNIT", "") or entry.get("_SYSTEMD_UNIT", ""),
        message_id=entry.get("MESSAGE_ID", ""),
        fields=extra,
    )


def run_journalctl(args: Sequence[str], *, timeout: float, journalctl: str = JOURNALCTL) -> List[Dict[str, str]]:
    """Entries of ``journalctl --no-pager -o json ARGS``; raises JournalUnavailable."""
    command = [journalctl, "--no-pager", "-q", "-o", "json", *args]
    try:
        done = subprocess.run(command, capture_output=True, timeout=timeout, check=False)
    except FileNotFoundError:
        raise JournalUnavailable(f"{journalctl} not found") from None
    except subprocess.TimeoutExpired:
        raise JournalUnavailable(f"journalctl did not answer within {timeout:g} s") from None
    except OSError as exc:
        raise JournalUnavailable(f"cannot run {journalctl}: {exc.strerror or exc}") from None
    stderr = done.stderr.decode("utf-8", errors="replace").strip()
    if done.returncode != 0:
        raise JournalUnavailable(stderr.splitlines()[-1] if stderr else f"journalctl exited {done.returncode}")
    return parse_entries(done.stdout.decode("utf-8", errors="replace"))


def previous_boot(
    *, timeout: float = 10.0, journalctl: str = JOURNALCTL, kernel_lines: int = 400, last_entries: int = 300
) -> PreviousBoot:
    """What the journal holds of boot -1. Never raises: an unreadable journal is ``available=False``."""
    try:
        kernel = [
            to_line(e)
            for e in run_journalctl(["-b", "-1", "-k", "-n", str(kernel_lines)], timeout=timeout, journalctl=journalctl)
        ]
        tail = [to_line(e) for e in run_journalctl(["-b", "-1", "-n", str(last_entries)], timeout=timeout, journalctl=journalctl)]
    except JournalUnavailable as exc:
        text = str(exc)
        if _NO_BOOT.search(text):
            text = f"the journal holds no previous boot ({text}); is it persistent (/var/log/journal)?"
        return PreviousBoot(available=False, error=text)
    if not tail and not kernel:
        return PreviousBoot(available=False, error="the journal holds no previous boot; is it persistent (/var/log/journal)?")
    newest = max((*tail, *kernel), key=lambda line: line.time)
    boot_id = dict(newest.fields).get("_BOOT_ID", "")
    return PreviousBoot(
        available=True,
        boot_id=boot_id,
        last_time=newest.time or None,
        uptime=newest.monotonic or None,
        kernel_lines=tuple(kernel),
        shutdown=find_shutdown(tail),
        last_lines=tuple(tail),
    )


def find_shutdown(lines: Sequence[JournalLine]) -> Optional[Shutdown]:
    """An orderly shutdown: logind announced it, or PID 1 reached a shutdown target or said
    "Shutting down."; with who asked where the journal says (logind, sudo, shutdown, systemctl)."""
    kind = ""
    evidence = ""
    for line in lines:
        if line.message_id == SHUTDOWN_MESSAGE_ID or (line.identifier == "systemd-logind" and _LOGIND_END.match(line.text)):
            match = _LOGIND_END.match(line.text)
            what = match.group("what") if match else ""
            kind = {"rebooting": "reboot", "powering down": "power-off", "halting": "halt"}.get(what, kind or what or "shutdown")
            evidence = evidence or line.text
        elif line.pid == "1" or line.identifier in ("systemd", "systemd-shutdown"):
            target = _target_of(line)
            if target and (not kind or kind == "shutdown"):
                kind = _END_TARGETS[target]
                evidence = evidence or line.text
            elif _PID1_END.match(line.text) or line.identifier == "systemd-shutdown":
                kind = kind or "shutdown"
                evidence = evidence or line.text
    if not kind:
        return None
    return Shutdown(kind=kind, evidence=evidence, requested_by=_requested_by(lines))


def _target_of(line: JournalLine) -> str:
    if line.unit in _END_TARGETS and (line.message_id == JOB_DONE_MESSAGE_ID or line.text.startswith("Reached target")):
        return line.unit
    for unit, _ in _END_TARGETS.items():
        if line.text.startswith("Reached target") and unit.split(".")[0] in line.text.lower().replace(" ", ""):
            return unit
    return ""


def _requested_by(lines: Sequence[JournalLine]) -> str:
    for line in lines:
        if line.identifier == "sudo" and "COMMAND=" in line.text and _WHO.search(line.text.split("COMMAND=", 1)[1]):
            user = line.text.split(":", 1)[0].strip()
            return f"{user} via sudo: {line.text.split('COMMAND=', 1)[1].strip()}"
        if line.identifier in ("shutdown", "reboot", "systemctl", "poweroff", "halt") and line.text:
            return f"{line.identifier}: {line.text}"
        if line.identifier == "systemd-logind" and "requested by" in line.text.lower():
            return line.text
    for line in lines:
        if line.identifier == "systemd-logind" and line.text.startswith(("The system will", "System is")):
            return f"systemd-logind ({line.text})"
    return ""
