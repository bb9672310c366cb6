"""The ``systemd`` check against systemctl output (CI has no running systemd)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from conftest import ROOT
from monagent.checks.systemd_units import SystemdCheck

from monagent.api import Formatter, Status
from monagent.confread import ConfigError
from monagent.testing import run_check

DATA = ROOT / "tests" / "data" / "systemd"
EN, ZH = Formatter("en", "UTC"), Formatter("zh", "Asia/Shanghai")
NGINX = "failed since 2026-11-28 14:02:11 UTC: the main process exited with an error"


def fake_systemctl(tmp_path: Path, listing: str, show: str = "show-failed.txt", rc: int = 0, stderr: str = "") -> Path:
    """A real executable that prints captured output the way systemctl would, logging its argv."""
    script = tmp_path / "systemctl"
    err = f"cat {DATA / stderr} >&2\n" if stderr else ""
    script.write_text(
        "#!/bin/sh\n"
        f'printf "%s\\n" "$*" >> {tmp_path / "argv.log"}\n'
        f"{err}"
        'case "$1" in\n'
        f"  list-units) cat {DATA / listing} ;;\n"
        f"  show) cat {DATA / show} ;;\n"
        "esac\n"
        f"exit {rc}\n"
    )
    script.chmod(0o755)
    return script


def options(tmp_path: Path, systemctl: Path, **more):
    run_dir = tmp_path / "run-systemd-system"
    run_dir.mkdir(exist_ok=True)
    return {"systemctl": str(systemctl), "systemd_run_dir": str(run_dir), **more}


def test_each_failed_unit_is_a_critical_discovered_subject(tmp_path):
    report = run_check(SystemdCheck, options(tmp_path, fake_systemctl(tmp_path, "list-units-failed.json")))
    assert report.status == Status.CRITICAL
    assert report.subjects() == [
        "",
        "backup@nightly.service",
        "data.mount",
        "nginx.service",
        "old-agent.service",
        "user@1000.service",
    ]
    assert [(r.subject, r.status, r.discovered) for r in report.results[1:]] == [
        (name, Status.CRITICAL, True) for name in report.subjects()[1:]
    ]
    assert report.value("failed_units") == 5


def test_the_reason_says_why_and_since_when(tmp_path):
    report = run_check(SystemdCheck, options(tmp_path, fake_systemctl(tmp_path, "list-units-failed.json")))
    assert [EN.text(r.reason) for r in report.results] == [
        "5 failed units: backup@nightly.service, data.mount, nginx.service, old-agent.service, user@1000.service",
        "failed since 2026-11-28 03:00:41 UTC: the main process was killed by a signal",
        "failed since 2026-11-28 09:12:05 UTC: the main process exited with an error",
        NGINX,
        "failed since 2026-11-27 22:47:30 UTC: the main process crashed and dumped core",
        "failed",  # not in the show output: the failure stands without details
    ]
    assert [ZH.text(r.reason) for r in report.results[2:4]] == [
        "自 2026-11-28 17:12:05 CST 起处于失败状态：主进程以错误码退出",
        "自 2026-11-28 22:02:11 CST 起处于失败状态：主进程以错误码退出",
    ]
    assert ZH.text(report.results[0].reason).startswith("5 个 unit 失败：backup@nightly.service、data.mount、")


def test_facts_name_the_main_process_fate_restarts_and_a_vanished_unit_file(tmp_path):
    report = run_check(SystemdCheck, options(tmp_path, fake_systemctl(tmp_path, "list-units-failed.json")))
    assert dict(report.result("backup@nightly.service").facts) == {
        "description": "Nightly backup to the NAS",
        "killed_by": "SIGKILL",
        "restarts": 3,
    }
    assert dict(report.result("nginx.service").facts) == {
        "description": "A high performance web server and a reverse proxy server",
        "exit_status": 1,
    }
    assert dict(report.result("old-agent.service").facts) == {
        "dumped_core_on": "SIGSEGV",
        "unit_file_gone": True,
    }
    assert dict(report.result("data.mount").facts) == {"description": "/data"}
    assert report.result("nginx.service").details == "journalctl -b -u nginx.service -n 50 --no-pager"


def test_systemctl_is_asked_for_json_and_then_shown_only_the_selected_units(tmp_path):
    systemctl = fake_systemctl(tmp_path, "list-units-failed.json")
    run_check(SystemdCheck, options(tmp_path, systemctl, units=["nginx", "*.mount"]))
    assert (tmp_path / "argv.log").read_text().splitlines() == [
        "list-units --state=failed --output=json --no-pager",
        "show --no-pager --property=Id,Description,LoadState,Result,ExecMainCode,ExecMainStatus,NRestarts,"
        "InactiveEnterTimestamp,StateChangeTimestamp -- data.mount nginx.service",
    ]


def test_units_and_exclude_select_by_glob(tmp_path):
    systemctl = fake_systemctl(tmp_path, "list-units-failed.json")
    report = run_check(SystemdCheck, options(tmp_path, systemctl, exclude=["user@*.service", "old-*"]))
    assert report.subjects() == ["", "backup@nightly.service", "data.mount", "nginx.service"]
    report = run_check(SystemdCheck, options(tmp_path, systemctl, units=["nginx", "backup@*"]))
    assert report.subjects() == ["", "backup@nightly.service", "nginx.service"]


def test_no_failed_units_is_ok_and_reports_no_subject(tmp_path):
    report = run_check(SystemdCheck, options(tmp_path, fake_systemctl(tmp_path, "list-units-none.json")))
    assert report.status == Status.OK
    assert report.subjects() == [""]
    assert report.summary == "no failed units"
    assert (tmp_path / "argv.log").read_text().splitlines() == ["list-units --state=failed --output=json --no-pager"]


def test_a_recovered_unit_simply_stops_being_reported(tmp_path):
    check = SystemdCheck(**options(tmp_path, fake_systemctl(tmp_path, "list-units-failed.json")))
    assert "backup@nightly.service" in run_check(check).subjects()
    fake_systemctl(tmp_path, "list-units-nginx.json")
    assert run_check(check).subjects() == ["", "nginx.service"]


def test_a_failed_show_still_reports_the_failed_units(tmp_path):
    systemctl = fake_systemctl(tmp_path, "list-units-nginx.json", show="not-booted.stderr")
    report = run_check(SystemdCheck, options(tmp_path, systemctl))
    assert EN.text(report.result("nginx.service").reason) == "failed"
    assert ZH.text(report.result("nginx.service").reason) == "已失败"
    assert dict(report.result("nginx.service").facts) == {
        "description": "A high performance web server and a reverse proxy server"
    }


def test_without_systemd_as_pid_1_the_check_is_unknown_with_the_reason(tmp_path):
    systemctl = fake_systemctl(tmp_path, "list-units-failed.json")
    report = run_check(SystemdCheck, {"systemctl": str(systemctl), "systemd_run_dir": str(tmp_path / "absent")})
    assert report.status == Status.UNKNOWN
    assert EN.text(report.result().reason) == (
        f"systemd is not running as PID 1 on this host ({tmp_path / 'absent'} does not exist); "
        "the systemd check needs a systemd host"
    )
    assert not (tmp_path / "argv.log").exists()


def test_a_systemctl_that_cannot_reach_systemd_gives_its_own_words(tmp_path):
    systemctl = fake_systemctl(tmp_path, "list-units-none.json", rc=1, stderr="not-booted.stderr")
    report = run_check(SystemdCheck, options(tmp_path, systemctl))
    assert report.status == Status.UNKNOWN
    assert EN.text(report.result().reason) == (
        "systemctl list-units failed: System has not been booted with systemd as init system (PID 1). Can't operate."
    )
    assert report.subjects() == [""]


@pytest.mark.skipif(shutil.which("systemctl") is None, reason="systemctl is not installed")
def test_the_real_systemctl_without_a_running_systemd_is_unknown(tmp_path):
    if Path("/run/systemd/system").is_dir():
        pytest.skip("systemd runs on this machine")
    report = run_check(SystemdCheck, {"systemd_run_dir": str(tmp_path)})
    assert report.status == Status.UNKNOWN
    assert report.summary.startswith("systemctl list-units failed: ")


def test_the_default_run_dir_tells_a_host_without_systemd(tmp_path):
    if Path("/run/systemd/system").is_dir():
        pytest.skip("systemd runs on this machine")
    report = run_check(SystemdCheck)
    assert report.summary == (
        "systemd is not running as PID 1 on this host (/run/systemd/system does not exist); "
        "the systemd check needs a systemd host"
    )


def test_a_missing_systemctl_is_unknown(tmp_path):
    report = run_check(SystemdCheck, options(tmp_path, tmp_path / "no-systemctl"))
    assert report.summary == f"{tmp_path / 'no-systemctl'} not found: is this a systemd host?"


def test_output_that_is_not_json_is_unknown(tmp_path):
    report = run_check(SystemdCheck, options(tmp_path, fake_systemctl(tmp_path, "show-failed.txt")))
    assert report.summary == "systemctl list-units printed no JSON (first line: Result=signal)"


def test_empty_output_is_unknown(tmp_path):
    (tmp_path / "empty").write_text("")
    report = run_check(SystemdCheck, options(tmp_path, fake_systemctl(tmp_path, str(tmp_path / "empty"))))
    assert report.summary == "systemctl list-units printed nothing"


def test_an_unknown_option_is_a_config_error_listing_the_accepted_ones():
    with pytest.raises(ConfigError) as error:
        run_check(SystemdCheck, {"unit": ["nginx"]})
    assert str(error.value) == (
        '<run_check>: checks.test.unit: unknown option for check type "SystemdCheck" '
        '(did you mean "units"?); accepted options: exclude, systemctl, systemd_run_dir, units'
    )
