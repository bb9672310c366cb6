"""Check type ``systemd``: units in the ``failed`` state, one subject each.

Reads ``systemctl list-units --state=failed --output=json`` and, for the failed units that
match ``units`` and not ``exclude``, ``systemctl show`` for why and since when. Each failed
unit is a CRITICAL subject ("nginx.service failed (exit-code) since Sat 2026-11-28 14:02:11
UTC") marked ``discovered``: when the unit recovers it simply stops being reported and its
alert resolves. The run's own result carries the ``failed_units`` count.

Without systemd as PID 1 (no ``/run/systemd/system``), without ``systemctl``, or when
systemctl fails, the check is UNKNOWN with the reason; the units already alerted on keep
their state until systemctl answers again.

Example::

    [checks.units]
    type = "systemd"
    units = ["*"]                          # globs on unit names; "nginx" means nginx.service too
    exclude = ["user@*.service"]
"""

from __future__ import annotations

import fnmatch
import json
import os
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Dict, List, Mapping, Optional, Sequence

from monagent.api import Check, Context, Metric, MetricSpec, Result, Status

_COMMAND_TIMEOUT = 10.0  # seconds; systemctl answers in milliseconds unless PID 1 is wedged
_SHOW_PROPERTIES = (
    "Id",
    "Description",
    "LoadState",
    "Result",
    "ExecMainCode",
    "ExecMainStatus",
    "NRestarts",
    "InactiveEnterTimestamp",
    "StateChangeTimestamp",
)
# waitid(2) si_code values systemd reports as ExecMainCode.
_CLD_EXITED, _CLD_KILLED, _CLD_DUMPED = 1, 2, 3


class _Unavailable(Exception):
    """systemctl cannot tell us anything this run; the message is the UNKNOWN reason."""


@dataclass(frozen=True)
class FailedUnit:
    name: str
    load: str
    description: str


class SystemdCheck(Check):
    """Failed systemd units, by glob pattern or all."""

    interval = 60.0
    timeout = 30.0
    run_at_start = True
    metrics: ClassVar[Dict[str, MetricSpec]] = {
        "failed_units": MetricSpec(unit="", description="failed units matching units and not exclude"),
    }

    def __init__(
        self,
        *,
        units: Sequence[str] = ("*",),
        exclude: Sequence[str] = (),
        systemctl: str = "systemctl",
        systemd_run_dir: Path = Path("/run/systemd/system"),
    ) -> None:
        self.units = tuple(units)
        self.exclude = tuple(exclude)
        self.systemctl = systemctl
        self.systemd_run_dir = Path(systemd_run_dir)

    def run(self, ctx: Context) -> List[Result]:
        try:
            failed = [u for u in self._failed_units() if self._selected(u.name)]
            details = self._show([u.name for u in failed]) if failed else {}
        except _Unavailable as exc:
            return [Result(status=Status.UNKNOWN, reason=str(exc))]
        summary = "no failed units"
        if failed:
            summary = f"{len(failed)} failed unit{'' if len(failed) == 1 else 's'}: {', '.join(u.name for u in failed)}"
        own = Result(status=Status.OK, reason=summary, metrics=(Metric("failed_units", len(failed)),))
        return [own, *(unit_result(u, details.get(u.name, {})) for u in failed)]

    # -- selection
    def _selected(self, name: str) -> bool:
        return any(_matches(name, p) for p in self.units) and not any(_matches(name, p) for p in self.exclude)

    # -- systemctl
    def _failed_units(self) -> List[FailedUnit]:
        if not self.systemd_run_dir.is_dir():
            raise _Unavailable(
                f"systemd is not running as PID 1 on this host ({self.systemd_run_dir} does not "
                "exist); the systemd check needs a systemd host"
            )
        output = self._systemctl("list-units", "--state=failed", "--output=json", "--no-pager")
        return parse_list_units(output)

    def _show(self, names: Sequence[str]) -> Dict[str, Dict[str, str]]:
        try:
            output = self._systemctl("show", "--no-pager", f"--property={','.join(_SHOW_PROPERTIES)}", "--", *names)
        except _Unavailable:
            return {}  # the failures are known; only the why and since are missing
        return parse_show(output)

    def _systemctl(self, *args: str) -> str:
        command = [self.systemctl, *args]
        try:
            done = subprocess.run(
                command, capture_output=True, timeout=_COMMAND_TIMEOUT, env=_environ(), stdin=subprocess.DEVNULL, check=False
            )
        except FileNotFoundError:
            raise _Unavailable(f"{self.systemctl} not found: is this a systemd host?") from None
        except PermissionError:
            raise _Unavailable(f"cannot run {self.systemctl}: permission denied") from None
        except subprocess.TimeoutExpired:
            raise _Unavailable(f"systemctl {args[0]} did not answer within {_COMMAND_TIMEOUT:.0f} s") from None
        if done.returncode != 0:
            errors = [line.strip() for line in done.stderr.decode("utf-8", "replace").splitlines() if line.strip()]
            why = errors[0] if errors else f"exit status {done.returncode}"
            raise _Unavailable(f"systemctl {args[0]} failed: {why}")
        return done.stdout.decode("utf-8", "replace")


def _environ() -> Dict[str, str]:
    """A fixed locale (stable timestamps), no pager, no colours, nothing of systemd's supervision."""
    return {
        "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
        "LC_ALL": "C.UTF-8",
        "SYSTEMD_PAGER": "",
        "SYSTEMD_COLORS": "0",
        "SYSTEMD_LOG_LEVEL": "err",
    }


def _matches(name: str, pattern: str) -> bool:
    """A glob on the unit name; a pattern without a suffix also matches ``.service`` (as systemctl does)."""
    if fnmatch.fnmatchcase(name, pattern):
        return True
    return "." not in pattern and fnmatch.fnmatchcase(name, pattern + ".service")


def parse_list_units(output: str) -> List[FailedUnit]:
    """``systemctl list-units --output=json``: ``[{"unit": .., "load": .., "description": ..}, ...]``."""
    try:
        rows = json.loads(output)
    except ValueError:
        lines = output.strip().splitlines()
        raise _Unavailable(
            f"systemctl list-units printed no JSON (first line: {lines[0][:80]})"
            if lines
            else "systemctl list-units printed nothing"
        ) from None
    if not isinstance(rows, list) or not all(isinstance(r, dict) and isinstance(r.get("unit"), str) for r in rows):
        raise _Unavailable("systemctl list-units printed JSON of an unexpected shape")
    return [FailedUnit(r["unit"], str(r.get("load", "")), str(r.get("description", ""))) for r in rows]


def parse_show(output: str) -> Dict[str, Dict[str, str]]:
    """``systemctl show`` of several units: ``KEY=VALUE`` blocks separated by blank lines, by ``Id``."""
    units: Dict[str, Dict[str, str]] = {}
    for block in output.split("\n\n"):
        fields = dict(line.split("=", 1) for line in block.splitlines() if "=" in line)
        if fields.get("Id"):
            units[fields["Id"]] = fields
    return units


def _signal_name(number: str) -> str:
    try:
        return signal.Signals(int(number)).name
    except ValueError:
        return f"signal {number}"


def _main_process(props: Mapping[str, str]) -> Optional[str]:
    code, status = props.get("ExecMainCode", ""), props.get("ExecMainStatus", "")
    if code == str(_CLD_EXITED) and status not in ("", "0"):
        return f"exited with status {status}"
    if code == str(_CLD_KILLED):
        return f"killed by {_signal_name(status)}"
    if code == str(_CLD_DUMPED):
        return f"dumped core on {_signal_name(status)}"
    return None


def unit_result(unit: FailedUnit, props: Mapping[str, str]) -> Result:
    """The CRITICAL subject of one failed unit."""
    why = props.get("Result", "")
    since = props.get("InactiveEnterTimestamp") or props.get("StateChangeTimestamp") or ""
    reason = f"{unit.name} failed" + (f" ({why})" if why and why != "success" else "") + (f" since {since}" if since else "")
    facts: Dict[str, str] = {}
    description = props.get("Description") or unit.description
    if description and description != unit.name:
        facts["description"] = description
    main = _main_process(props)
    if main:
        facts["main process"] = main
    if props.get("NRestarts", "0") not in ("", "0"):
        facts["restarts"] = props["NRestarts"]
    if (props.get("LoadState") or unit.load) == "not-found":
        facts["unit file"] = f"gone; systemctl reset-failed {unit.name} clears this"
    details = f"journalctl -b -u {unit.name} -n 50 --no-pager"
    return Result(subject=unit.name, status=Status.CRITICAL, reason=reason, facts=facts, details=details, discovered=True)


__all__ = ["FailedUnit", "SystemdCheck", "parse_list_units", "parse_show", "unit_result"]
