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

import calendar
import fnmatch
import json
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Dict, List, Mapping, Optional, Sequence

from monagent.api import Check, Context, Fact, Metric, MetricSpec, Result, Status

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


# Result= of a failed unit (systemd.exec(5), "$SERVICE_RESULT"), in words.
_RESULTS = {
    "exit-code": ("the main process exited with an error", "主进程以错误码退出"),
    "signal": ("the main process was killed by a signal", "主进程被信号终止"),
    "core-dump": ("the main process crashed and dumped core", "主进程崩溃并转储了 core"),
    "timeout": ("an operation timed out", "操作超时"),
    "watchdog": ("the watchdog timed out", "看门狗超时"),
    "start-limit-hit": ("restarted too often: the start limit was hit", "重启过于频繁，已达启动次数上限"),
    "resources": ("out of resources (a process or file could not be set up)", "资源不足，无法创建进程或文件"),
    "oom-kill": ("killed by the OOM killer", "被 OOM killer 终止"),
    "exec-condition": ("its ExecCondition= failed", "ExecCondition= 条件未满足"),
    "protocol": ("it broke the service protocol (no PID file, no READY=1)", "未遵守服务协议（如未写 PID 文件、未发送 READY=1）"),
}


class _Unavailable(Exception):
    """systemctl cannot tell us anything this run; ``reason`` is the UNKNOWN reason."""

    def __init__(self, message_id: str, **args: Any) -> None:
        self.reason = SystemdCheck.text(message_id, **args)
        super().__init__(message_id)


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
    texts: ClassVar[Dict[str, Dict[str, str]]] = {
        "systemd_units.none_failed": {"en": "no failed units", "zh": "没有失败的 unit"},
        "systemd_units.some_failed": {"en": "{n} failed unit{n:s}: {names:list}", "zh": "{n} 个 unit 失败：{names:list}"},
        "systemd_units.failed": {"en": "failed", "zh": "已失败"},
        "systemd_units.failed_why": {"en": "failed: {why}", "zh": "已失败：{why}"},
        "systemd_units.failed_since": {"en": "failed since {since:time}", "zh": "自 {since:time} 起处于失败状态"},
        "systemd_units.failed_why_since": {
            "en": "failed since {since:time}: {why}",
            "zh": "自 {since:time} 起处于失败状态：{why}",
        },
        "systemd_units.not_pid1": {
            "en": "systemd is not running as PID 1 on this host ({dir} does not exist); the systemd check needs a systemd host",
            "zh": "本机的 PID 1 不是 systemd（{dir} 不存在），systemd 检查只能用在 systemd 主机上",
        },
        "systemd_units.not_found": {
            "en": "{cmd} not found: is this a systemd host?",
            "zh": "找不到 {cmd}：这是 systemd 主机吗？",
        },
        "systemd_units.denied": {"en": "cannot run {cmd}: permission denied", "zh": "无权运行 {cmd}"},
        "systemd_units.timeout": {
            "en": "systemctl {what} did not answer within {limit:duration}",
            "zh": "systemctl {what} 超过 {limit:duration}没有应答",
        },
        "systemd_units.cmd_failed": {"en": "systemctl {what} failed: {why}", "zh": "systemctl {what} 执行失败：{why}"},
        "systemd_units.exit_status": {"en": "exit status {code}", "zh": "退出码 {code}"},
        "systemd_units.no_json": {
            "en": "systemctl list-units printed no JSON (first line: {line})",
            "zh": "systemctl list-units 的输出不是 JSON（第一行：{line}）",
        },
        "systemd_units.nothing": {"en": "systemctl list-units printed nothing", "zh": "systemctl list-units 没有输出"},
        "systemd_units.bad_json": {
            "en": "systemctl list-units printed JSON of an unexpected shape",
            "zh": "systemctl list-units 输出的 JSON 结构不对",
        },
        **{f"systemd_units.result.{k}": {"en": en, "zh": zh} for k, (en, zh) in _RESULTS.items()},
        "fact.description": {"en": "Description", "zh": "描述"},
        "fact.exit_status": {"en": "Exit status", "zh": "退出码"},
        "fact.killed_by": {"en": "Killed by", "zh": "终止信号"},
        "fact.dumped_core_on": {"en": "Dumped core on", "zh": "core dump 信号"},
        "fact.restarts": {"en": "Restarts", "zh": "重启次数"},
        "fact.unit_file_gone": {
            "en": "Unit file gone (systemctl reset-failed clears this)",
            "zh": "unit 文件已删除（systemctl reset-failed 可清除此告警）",
        },
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
            return [Result(status=Status.UNKNOWN, reason=exc.reason)]
        summary = self.text("systemd_units.none_failed")
        if failed:
            summary = self.text("systemd_units.some_failed", n=len(failed), names=tuple(u.name for u in failed))
        own = Result(status=Status.OK, reason=summary, metrics=(Metric("failed_units", len(failed)),))
        return [own, *(unit_result(u, details.get(u.name, {})) for u in failed)]

    # -- selection
    def _selected(self, name: str) -> bool:
        return any(_matches(name, p) for p in self.units) and not any(_matches(name, p) for p in self.exclude)

    # -- systemctl
    def _failed_units(self) -> List[FailedUnit]:
        if not self.systemd_run_dir.is_dir():
            raise _Unavailable("systemd_units.not_pid1", dir=str(self.systemd_run_dir))
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
            raise _Unavailable("systemd_units.not_found", cmd=self.systemctl) from None
        except PermissionError:
            raise _Unavailable("systemd_units.denied", cmd=self.systemctl) from None
        except subprocess.TimeoutExpired:
            raise _Unavailable("systemd_units.timeout", what=args[0], limit=_COMMAND_TIMEOUT) from None
        if done.returncode != 0:
            errors = [line.strip() for line in done.stderr.decode("utf-8", "replace").splitlines() if line.strip()]
            why: Any = errors[0] if errors else SystemdCheck.text("systemd_units.exit_status", code=done.returncode)
            raise _Unavailable("systemd_units.cmd_failed", what=args[0], why=why)
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
        if lines:
            raise _Unavailable("systemd_units.no_json", line=lines[0][:80]) from None
        raise _Unavailable("systemd_units.nothing") from None
    if not isinstance(rows, list) or not all(isinstance(r, dict) and isinstance(r.get("unit"), str) for r in rows):
        raise _Unavailable("systemd_units.bad_json")
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
        return f"SIG{number}"


def _main_process(props: Mapping[str, str]) -> Dict[str, Fact]:
    """How the main process ended, as facts: its exit status, or the signal that killed it."""
    code, status = props.get("ExecMainCode", ""), props.get("ExecMainStatus", "")
    if code == str(_CLD_EXITED) and status.isdigit() and status != "0":
        return {"exit_status": int(status)}
    if code == str(_CLD_KILLED):
        return {"killed_by": _signal_name(status)}
    if code == str(_CLD_DUMPED):
        return {"dumped_core_on": _signal_name(status)}
    return {}


def systemd_time(text: str) -> Optional[float]:
    """``Sat 2026-11-28 14:02:11 UTC`` (systemctl show under LC_ALL=C) in epoch seconds; None if unreadable.

    systemctl prints in the agent's own zone (the environment has no TZ), so a zone other than
    UTC is the local one."""
    parts = text.split()
    if len(parts) < 3:
        return None
    try:
        moment = time.strptime(f"{parts[1]} {parts[2]}", "%Y-%m-%d %H:%M:%S")
    except ValueError:
        return None
    if len(parts) > 3 and parts[3] in ("UTC", "GMT"):
        return float(calendar.timegm(moment))
    return time.mktime(moment)


def unit_result(unit: FailedUnit, props: Mapping[str, str]) -> Result:
    """The CRITICAL subject of one failed unit; the reason does not repeat the unit's name (the subject says it)."""
    result = props.get("Result", "")
    since = systemd_time(props.get("InactiveEnterTimestamp") or props.get("StateChangeTimestamp") or "")
    why: Any = ""
    if result and result != "success":
        why = SystemdCheck.text(f"systemd_units.result.{result}") if result in _RESULTS else result
    message_id = "systemd_units.failed" + ("_why" if why else "") + ("_since" if since is not None else "")
    reason = SystemdCheck.text(message_id, why=why, since=since)
    facts: Dict[str, Fact] = {}
    description = props.get("Description") or unit.description
    if description and description != unit.name:
        facts["description"] = description
    facts.update(_main_process(props))
    if props.get("NRestarts", "0").isdigit() and props.get("NRestarts", "0") != "0":
        facts["restarts"] = int(props["NRestarts"])
    if (props.get("LoadState") or unit.load) == "not-found":
        facts["unit_file_gone"] = True
    details = f"journalctl -b -u {unit.name} -n 50 --no-pager"
    return Result(subject=unit.name, status=Status.CRITICAL, reason=reason, facts=facts, details=details, discovered=True)


__all__ = ["FailedUnit", "SystemdCheck", "parse_list_units", "parse_show", "systemd_time", "unit_result"]
