"""The VM stage's verdict (tests/vm/expect.py) on serial consoles laid out as the guest driver writes
them: one accepted message of the right kind passes; two messages, another verdict, a damaged line,
a denial or a softened unit fail with a reason, never a traceback."""

from __future__ import annotations

import base64
import importlib.util
import json
from pathlib import Path
from typing import Any, List, Optional, Sequence

import pytest

SCRIPT = Path(__file__).resolve().parent / "vm" / "expect.py"
_spec = importlib.util.spec_from_file_location("vm_expect", SCRIPT)
assert _spec is not None and _spec.loader is not None
expect: Any = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(expect)

UNIT = (
    "UNIT ActiveState=active User=monagent ProtectSystem=strict NoNewPrivileges=yes "
    "CapabilityBoundingSet=cap_dac_read_search cap_sys_ptrace NRestarts=0 FragmentPath=/etc/systemd/system/monagent.service"
)
TEXTS = {
    "kdump": "[严重] Kernel panic - not syncing: sysrq triggered crash\n- 转储: /var/crash/202612040603, 32.5 MiB",
    "pstore": "[严重] kernel crash, no dump (pstore ramoops record): Kernel panic - not syncing: sysrq triggered crash",
    "reset": "unplanned\n> \\[06:12:45\\] monagent-vm: the host is about to be reset (SysRq-b)",
    "reboot": "planned reboot, requested by systemd-logind (The system will reboot now!)",
}
ENDS = {"kdump": "crash_dump", "pstore": "crash_pstore", "reset": "unplanned", "reboot": "planned"}


def console(
    scenario: str, texts: Optional[List[str]] = None, *, end: str = "", extra: Sequence[str] = (), unit: str = UNIT
) -> str:
    lines = ["[  108.6] Kernel panic - not syncing: sysrq triggered crash", "kdump-vm login: MONAGENT-VM: scenario=x boot=2"]
    requests = [
        {"t": 1.0, "errcode": 0, "message": {"msgtype": "markdown", "markdown": {"title": "t", "text": t}}}
        for t in texts or [TEXTS[scenario]]
    ]
    for n, request in enumerate(requests, 1):
        encoded = base64.b64encode(json.dumps(request, ensure_ascii=False).encode()).decode()
        lines += [f"MONAGENT-VM: ROBOT64 {n} {encoded[i : i + 96]}" for i in range(0, len(encoded), 96)]
    lines.append(f"MONAGENT-VM: ROBOT-COUNT {len(requests)}")
    lines.append(f"MONAGENT-VM: AGENT INFO monagent.agent: the previous boot was explained in 9.5 s: {end or ENDS[scenario]}")
    lines += [f"MONAGENT-VM: {line}" for line in [*extra, unit, "DONE"]]
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("scenario", sorted(ENDS))
def test_one_message_of_the_scenario_s_kind_passes(scenario: str, capsys: pytest.CaptureFixture[str]) -> None:
    ok, reason = expect.check(scenario, console(scenario))
    assert ok, reason
    assert TEXTS[scenario] in capsys.readouterr().out  # the text is printed for the report


def test_two_messages_fail_even_when_each_is_right() -> None:
    ok, reason = expect.check("kdump", console("kdump", [TEXTS["kdump"], "[通知] kdump-vm host rebooted"]))
    assert not ok and "2 accepted messages" in reason


def test_another_verdict_fails() -> None:
    ok, reason = expect.check("pstore", console("pstore", end="unplanned"))
    assert not ok and "explained the previous boot as ['unplanned']" in reason


def test_a_message_without_the_event_s_own_words_fails() -> None:
    ok, reason = expect.check("reset", console("reset", ["unplanned reboot, no lines"]))
    assert not ok and "about to be reset" in reason


def test_a_damaged_console_line_is_a_failure_with_a_reason() -> None:
    text = console("kdump").replace("MONAGENT-VM: ROBOT64 1 ", "MONAGENT-VM: ROBOT64 1 !", 1)
    ok, reason = expect.check("kdump", text)
    assert not ok and "arrived damaged" in reason
    ok, reason = expect.check("kdump", console("kdump").replace("ROBOT-COUNT 1", "ROBOT-COUNT 2"))
    assert not ok and "reported 2" in reason


def test_a_denial_or_a_softened_unit_fails() -> None:
    denial = 'DENIAL audit: type=1400 apparmor="DENIED" comm="monagent"'
    ok, reason = expect.check("reboot", console("reboot", extra=[denial]))
    assert not ok and "1 denials" in reason
    ok, reason = expect.check("reboot", console("reboot", unit=UNIT.replace("User=monagent", "User=root")))
    assert not ok and "User=root (expected monagent)" in reason


def test_an_unfinished_scenario_or_a_missing_log_fails_with_exit_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: Any
) -> None:
    ok, reason = expect.check("kdump", "MONAGENT-VM: FAIL monagent did not start\n")
    assert not ok and "FAIL monagent did not start" in reason
    monkeypatch.setattr("sys.argv", ["expect.py", "kdump", str(tmp_path / "missing.log")])
    assert expect.main() == 1
    assert "cannot read the serial log" in capsys.readouterr().out
    monkeypatch.setattr("sys.argv", ["expect.py", "nonsense", "x"])
    assert expect.main() == 2
