"""The shipped systemd unit: required directives, hardening, and systemd-analyze's verdicts."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Tuple

import pytest
from conftest import ROOT

from monagent.confread import parse_duration
from monagent.install import install

UNIT_FILE = ROOT / "systemd" / "monagent.service"
MAX_EXPOSURE = 3.0

needs_analyze = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None and not os.environ.get("CI"),
    reason="systemd-analyze is not installed (package systemd); in CI this fails",
)


def directives(text: str) -> List[Tuple[str, str, str]]:
    """``(section, key, value)`` for every directive, in order (keys may repeat)."""
    section, out = "", []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        out.append((section, key.strip(), value.strip()))
    return out


def service() -> Dict[str, List[str]]:
    table: Dict[str, List[str]] = {}
    for section, key, value in directives(UNIT_FILE.read_text()):
        if section == "Service":
            table.setdefault(key, []).append(value)
    return table


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("Type", "notify"),
        ("NotifyAccess", "main"),
        ("Restart", "on-failure"),
        ("ExecReload", "/bin/kill -HUP $MAINPID"),
        ("RestartPreventExitStatus", "78"),
        ("User", "monagent"),
        ("Group", "monagent"),
        ("StateDirectory", "monagent"),
        ("ConfigurationDirectory", "monagent"),
        ("RuntimeDirectory", "monagent"),
        ("KillMode", "mixed"),
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "read-only"),
        ("ProtectProc", "default"),
        ("ProcSubset", "all"),
    ],
)
def test_the_service_section_sets(key, value):
    assert service()[key] == [value]


def test_only_the_two_capabilities_the_checks_need_are_granted():
    wanted = {"CAP_DAC_READ_SEARCH", "CAP_SYS_PTRACE"}
    assert set(" ".join(service()["AmbientCapabilities"]).split()) == wanted
    assert set(" ".join(service()["CapabilityBoundingSet"]).split()) == wanted


@pytest.mark.parametrize(
    ("key", "blinding"),
    [
        ("ProtectProc", {"invisible", "noaccess", "ptraceable"}),
        ("ProcSubset", {"pid"}),
        ("ProtectHome", {"yes", "true", "tmpfs"}),
        ("PrivateUsers", {"yes", "true", "1", "self", "identity"}),
        ("PrivateNetwork", {"yes", "true", "1"}),
        ("PrivatePIDs", {"yes", "true", "1"}),
    ],
)
def test_no_directive_blinds_the_monitoring_agent(key, blinding):
    assert not blinding & set(service().get(key, []))


def test_every_service_directive_sits_under_a_comment_saying_why():
    block: List[str] = []
    uncommented = []
    in_service = False
    for line in UNIT_FILE.read_text().splitlines() + [""]:
        if line.startswith("["):
            in_service = line == "[Service]"
            block = []
            continue
        if not line.strip():
            block = []
            continue
        if in_service and not line.startswith("#") and not any(b.startswith("#") for b in block):
            uncommented.append(line)
        block.append(line)
    assert uncommented == []


def test_stop_timeout_leaves_room_for_the_longest_in_flight_send_deadline():
    from monagent.config import MAX_STOP_DEADLINE, STOP_DEADLINE

    (timeout,) = service()["TimeoutStopSec"]
    assert STOP_DEADLINE <= MAX_STOP_DEADLINE
    assert parse_duration(timeout) >= MAX_STOP_DEADLINE + 5


def test_the_agent_loop_wakes_often_enough_to_feed_the_watchdog():
    from monagent import agent  # an import error fails this test: nothing here may be skipped for it

    (watchdog,) = service()["WatchdogSec"]
    assert agent.LOOP_MAX_SLEEP <= parse_duration(watchdog) / 2


def test_the_packaged_unit_and_sysusers_file_are_the_ones_in_systemd_dir():
    import monagent

    data = Path(monagent.__file__).parent / "data"  # the installed package's (a wheel's) or the checkout's
    for name in ("monagent.service", "monagent-sysusers.conf"):
        assert (data / name).read_bytes() == (ROOT / "systemd" / name).read_bytes()


def installed_unit(root: Path, program: Path) -> Path:
    source = root / "agent.toml"
    source.write_text("")
    install(root, command=[str(program)], config_source=source)
    return root / "etc/systemd/system/monagent.service"


def analyze(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["systemd-analyze", *args], capture_output=True, text=True, timeout=60)


@needs_analyze
def test_systemd_analyze_verify_accepts_the_installed_unit(tmp_path):
    program = Path(sys.executable).parent / "monagent"
    unit = installed_unit(tmp_path, program if program.is_file() else Path(sys.executable))
    result = analyze("verify", str(unit))
    assert (result.returncode, result.stderr) == (0, "")


@needs_analyze
def test_systemd_analyze_verify_accepts_an_exec_start_path_with_a_space(tmp_path):
    program = tmp_path / "my tools" / "monagent"
    program.parent.mkdir()
    program.write_text("#!/bin/sh\n")
    program.chmod(0o755)
    result = analyze("verify", str(installed_unit(tmp_path, program)))
    assert (result.returncode, result.stderr) == (0, "")


@needs_analyze
def test_systemd_analyze_verify_rejects_a_missing_exec_start_binary(tmp_path):
    result = analyze("verify", str(installed_unit(tmp_path, tmp_path / "gone" / "monagent")))
    assert result.returncode != 0
    assert "gone/monagent" in result.stderr


@needs_analyze
def test_systemd_analyze_security_rates_the_exposure_at_most_3(tmp_path):
    result = analyze("security", "--offline=true", "--threshold=30", str(UNIT_FILE))
    match = re.search(r"Overall exposure level for monagent\.service: (\d+\.\d+) (\w+)", result.stdout)
    assert match, result.stdout[-500:] + result.stderr
    assert float(match.group(1)) <= MAX_EXPOSURE, match.group(0)
    assert result.returncode == 0
