"""The ``nagios`` check type against Debian's real monitoring-plugins and our own misbehaving plugins."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
import time
import tracemalloc
from pathlib import Path

import pytest
from harness import SUBPROCESS_CWD
from monagent.checks.nagios import NagiosCheck

from monagent.api import Formatter, Metric, Status
from monagent.confread import ConfigError
from monagent.testing import run_check

EN, ZH = Formatter("en"), Formatter("zh")

PLUGINS = Path("/usr/lib/nagios/plugins")
DATA = Path(__file__).resolve().parent.parent / "data" / "nagios"


def plugin(name: str) -> str:
    """The path of a monitoring-plugins executable; skipped when absent, except in CI."""
    path = PLUGINS / name
    if not path.exists():
        if os.environ.get("CI"):
            pytest.fail(f"{path} is missing: CI must install Debian's monitoring-plugins package")
        pytest.skip(f"{path} is absent: install Debian's monitoring-plugins package (CI does)")
    return str(path)


def script(name: str) -> str:
    return str(DATA / name)


def alive(pid: int) -> bool:
    """Running (a zombie waiting for a reaper that never comes is dead for our purpose)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def dies(pid: int) -> bool:
    """Whether ``pid`` is dead or dies soon: SIGKILL is delivered asynchronously."""
    for _ in range(100):
        if not alive(pid):
            return True
        time.sleep(0.05)
    return False


# ---------------------------------------------------------------- the real Monitoring Plugins


@pytest.mark.debian
@pytest.mark.parametrize(("code", "status"), [(0, Status.OK), (1, Status.WARNING), (2, Status.CRITICAL), (3, Status.UNKNOWN)])
def test_check_dummy_exit_codes_0_to_3_become_the_four_statuses_with_its_line_as_reason(code, status):
    report = run_check(NagiosCheck, {"command": [plugin("check_dummy"), str(code), "all is as it is"]})
    assert report.result().status == status
    assert report.result().reason == f"{status.name}: all is as it is"
    assert report.status == status
    assert report.result().metrics == ()


@pytest.mark.debian
def test_check_load_perfdata_becomes_metrics_that_monagent_thresholds_judge():
    command = [plugin("check_load"), "-w", "1000,1000,1000", "-c", "2000,2000,2000"]
    report = run_check(NagiosCheck, {"command": command}, thresholds={"load1": {"critical": 0}})
    result = report.result()
    assert result.status == Status.OK
    assert result.reason.startswith("LOAD OK - total load average: ")
    assert [(m.name, m.unit, m.minimum) for m in result.metrics] == [("load1", "", 0.0), ("load5", "", 0.0), ("load15", "", 0.0)]
    assert all(m.value is not None and m.value >= 0 for m in result.metrics)
    # The plugin says OK; monagent's own threshold on its perfdata says CRITICAL, and the worse wins.
    assert report.statuses == {("", "load1"): Status.CRITICAL, ("", "status"): Status.OK}
    assert report.status == Status.CRITICAL


@pytest.mark.debian
def test_check_disk_reports_the_root_filesystem_in_bytes_with_its_size_as_maximum():
    report = run_check(NagiosCheck, {"command": [plugin("check_disk"), "-w", "100%", "-c", "100%", "-p", "/"]})
    st = os.statvfs("/")
    (metric,) = report.result().metrics
    assert report.result().status == Status.CRITICAL
    assert report.result().reason.startswith("DISK CRITICAL - free space: / ")
    assert (metric.name, metric.unit, metric.minimum) == ("/", "B", 0.0)
    assert metric.value is not None and metric.maximum is not None
    assert 0 < metric.value < metric.maximum <= st.f_blocks * st.f_frsize


@pytest.mark.debian
def test_check_procs_warning_carries_the_process_count():
    report = run_check(NagiosCheck, {"command": [plugin("check_procs"), "-w", "0", "-c", "1000000"]})
    assert report.result().status == Status.WARNING
    count = report.value("procs")
    assert count is not None and count >= 1
    assert report.result().reason == f"PROCS WARNING: {int(count)} processes"


# ---------------------------------------------------------------- exit codes our scripts produce


def test_an_exit_code_above_3_is_unknown_and_says_which_code():
    report = run_check(NagiosCheck, {"command": [script("exit_with.sh"), "7", "seven is not a state"]})
    assert report.result().status == Status.UNKNOWN
    assert EN.text(report.result().reason) == "exit_with.sh exited with code 7: seven is not a state"
    assert ZH.text(report.result().reason) == "exit_with.sh 以退出码 7 结束（不是 Nagios 状态码 0 到 3）：seven is not a state"


def test_an_exit_code_above_3_without_output_shows_the_first_stderr_line():
    report = run_check(NagiosCheck, {"command": ["/bin/sh", "-c", "echo 'no such option -x' >&2; exit 64"]})
    assert EN.text(report.result().reason) == "sh exited with code 64: no such option -x"
    assert report.result().details == "stderr:\nno such option -x"


def test_death_by_a_signal_is_unknown_and_names_the_signal():
    report = run_check(NagiosCheck, {"command": [script("die_by_signal.sh"), "SEGV"]})
    assert report.result().status == Status.UNKNOWN
    assert EN.text(report.result().reason) == "die_by_signal.sh was killed by signal SIGSEGV: about to die"


def test_a_plugin_that_cannot_be_started_is_unknown_with_the_system_reason(tmp_path):
    not_executable = tmp_path / "check_thing"
    not_executable.write_text("#!/bin/sh\necho OK\n")
    missing = run_check(NagiosCheck, {"command": [str(tmp_path / "check_missing")]})
    denied = run_check(NagiosCheck, {"command": [str(not_executable)]})
    assert EN.text(missing.result().reason) == f"cannot run {tmp_path}/check_missing: No such file or directory"
    assert EN.text(denied.result().reason) == f"cannot run {not_executable}: Permission denied"
    assert missing.status == denied.status == Status.UNKNOWN


def test_a_plugin_that_prints_nothing_still_gets_a_reason():
    report = run_check(NagiosCheck, {"command": ["/bin/true"]})
    assert (report.result().status, EN.text(report.result().reason)) == (Status.OK, "true printed nothing (exit code 0)")


# ---------------------------------------------------------------- misbehaving plugins


def test_a_hanging_plugin_is_killed_with_its_whole_process_group_at_the_timeout(tmp_path):
    pid_file = tmp_path / "grandchild.pid"
    report = run_check(NagiosCheck, {"command": [script("hang.sh"), str(pid_file)], "timeout": 1.0, "timeout_state": "critical"})
    assert report.result().status == Status.CRITICAL
    assert (
        EN.text(report.result().reason) == "hang.sh timed out (timeout 1s); its process group was killed: HANG - still thinking"
    )
    assert dies(int(pid_file.read_text()))


def test_the_timeout_state_defaults_to_unknown(tmp_path):
    report = run_check(NagiosCheck, {"command": ["/bin/sleep", "60"], "timeout": 0.5})
    assert report.result().status == Status.UNKNOWN
    assert EN.text(report.result().reason) == "sleep timed out (timeout 500 ms); its process group was killed"


def test_a_grandchild_holding_stdout_does_not_stall_the_check_and_is_killed(tmp_path):
    pid_file = tmp_path / "grandchild.pid"
    # Without the group kill this would wait for "sleep 300" and end as a 60 s timeout.
    report = run_check(NagiosCheck, {"command": [script("grandchild_holds_stdout.sh"), str(pid_file)], "timeout": 60.0})
    assert report.result().status == Status.OK
    assert report.result().reason == "OK - answered, but left a child behind"
    assert report.result().metrics == (Metric("answered", 1.0),)
    assert dies(int(pid_file.read_text()))


def test_ten_megabytes_of_output_are_capped_and_never_held_in_memory():
    first_line = "BIG WARNING - far too much to say | size=10485760B;;;0\n"
    tracemalloc.start()
    try:
        report = run_check(NagiosCheck, {"command": [script("print_10mb.sh")]})
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    result = report.result()
    assert result.status == Status.WARNING
    assert result.reason == "BIG WARNING - far too much to say"
    assert result.metrics == (Metric("size", 10485760.0, "B", 0.0, None),)
    total = len(first_line) + 10485760 + 1
    assert result.details == "x" * (8192 - len(first_line)) + f"\n(output truncated to 8192 of {total} bytes)"
    assert peak < 2 * 1024 * 1024


def test_malformed_perfdata_is_parsed_leniently_with_a_note_for_each_bad_field():
    report = run_check(NagiosCheck, {"command": [script("malformed_perfdata.sh")]})
    result = report.result()
    assert result.status == Status.OK
    assert result.reason == "MESSY OK - some good, some bad"
    assert [(m.name, m.value, m.unit) for m in result.metrics] == [
        ("good", 1.0, ""),
        ("load", 0.75, ""),
        ("range", 3.0, ""),
        ("tail", 7.0, "s"),
        ("extra", 1.0, ""),
    ]
    assert result.details == textwrap.dedent("""\
        long text line
        more long text
        (perfdata: skipped "junk": no "=" after the label)
        (perfdata: skipped "'unclosed=4": the quoted label is not closed by "'=")
        (perfdata: skipped "=5": the label is empty)
        (perfdata: skipped "novalue=": it has no value)
        (perfdata: skipped "bad=abc": "abc" is not a number)
        (perfdata: ignored the warning range of "range": "x:y" is not a range such as 10, 10:, ~:10, 10:20 or @10:20)
        (perfdata: ignored the critical range of "range": range "@5:1" starts above its end)
        (perfdata: ignored extra fields "6" of "extra")""")


# ---------------------------------------------------------------- how the child is started


def test_the_child_runs_in_a_new_session_with_cwd_root_and_stdin_from_dev_null():
    shell = (
        'read -r pid comm state ppid pgrp sid rest < /proc/self/stat; echo "$pid $pgrp $sid $(pwd) $(readlink /proc/self/fd/0)"'
    )
    report = run_check(NagiosCheck, {"command": ["/bin/sh", "-c", shell]})
    pid, pgrp, sid, cwd, stdin = report.result().reason.split()
    assert pid == pgrp == sid
    assert (cwd, stdin) == ("/", "/dev/null")


def test_the_agents_open_descriptors_are_not_inherited(tmp_path):
    fd = os.open(tmp_path / "agent-state", os.O_CREAT | os.O_RDWR)
    try:
        os.set_inheritable(fd, True)
        report = run_check(
            NagiosCheck, {"command": ["/bin/sh", "-c", f"test -e /proc/self/fd/{fd} && echo leaked || echo closed"]}
        )
    finally:
        os.close(fd)
    assert report.result().reason == "closed"


def test_the_environment_is_the_allow_list_plus_the_fixed_table_without_systemd_variables(monkeypatch):
    for name in ("LANG", "LC_ALL", "TZ"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    monkeypatch.setenv("LANG", "C.UTF-8")
    monkeypatch.setenv("SECRET_TOKEN", "do-not-pass")
    monkeypatch.setenv("NOTIFY_SOCKET", "/run/systemd/notify")
    monkeypatch.setenv("WATCHDOG_USEC", "30000000")
    monkeypatch.setenv("LISTEN_FDS", "1")
    monkeypatch.setenv("MYSQL_HOME", "/etc/mysql")
    report = run_check(
        NagiosCheck,
        {
            "command": ["/usr/bin/env"],
            "env_allow": ["PATH", "LANG", "MYSQL_HOME"],
            "env": {"PGSERVICEFILE": "/etc/pg_service.conf"},
        },
    )
    result = report.result()
    printed = [result.reason, *result.details.split("\n")]
    assert sorted(printed) == [
        "LANG=C.UTF-8",
        "MYSQL_HOME=/etc/mysql",
        "PATH=/usr/bin:/bin",
        "PGSERVICEFILE=/etc/pg_service.conf",
    ]


def test_the_child_does_not_inherit_the_agents_ambient_capabilities():
    setpriv = shutil.which("setpriv")
    if os.geteuid() != 0 or setpriv is None:
        pytest.skip("needs root and util-linux setpriv to give the agent an ambient capability")
    program = textwrap.dedent("""\
        from pathlib import Path
        from monagent.checks.nagios import NagiosCheck
        own = [l for l in Path("/proc/self/status").read_text().splitlines() if l.startswith("CapAmb")][0]
        child = NagiosCheck(command=["/bin/grep", "CapAmb", "/proc/self/status"]).run(None).reason
        print(own.split()[1], child.split()[1])
        """)
    agent = subprocess.run(
        [setpriv, "--inh-caps", "+net_raw", "--ambient-caps", "+net_raw", sys.executable, "-c", program],
        capture_output=True,
        text=True,
        check=True,
        cwd=SUBPROCESS_CWD,  # outside the checkout: the copy of monagent under test
    )
    own, child = agent.stdout.split()
    assert own == "0000000000002000"  # the agent itself holds CAP_NET_RAW as an ambient capability
    assert child == "0000000000000000"


# ---------------------------------------------------------------- options and configuration


def test_thresholds_may_judge_any_perfdata_label():
    report = run_check(
        NagiosCheck,
        {"command": ["/bin/echo", "QUEUE OK - 120 waiting | depth=120;;;0 age=4s"]},
        thresholds={"depth": {"warning": 100, "critical": 1000}, "age": {"critical": 60}},
    )
    assert report.statuses == {("", "depth"): Status.WARNING, ("", "age"): Status.OK, ("", "status"): Status.OK}
    assert report.status == Status.WARNING


def test_an_undetermined_perfdata_value_is_a_metric_without_value_and_never_alerts():
    report = run_check(
        NagiosCheck,
        {"command": ["/bin/echo", "SENSOR UNKNOWN - no reading | temp=U;40;50"]},
        thresholds={"temp": {"warning": 40, "critical": 50}},
    )
    assert report.result().metrics == (Metric("temp", None),)
    assert report.statuses == {("", "status"): Status.OK}


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"command": ["check_load", "-r"]}, 'command: the plugin must be an absolute path, got "check_load"'),
        ({"command": []}, 'command: must name the plugin, e.g. ["/usr/lib/nagios/plugins/check_load", "-r"]'),
        (
            {"command": ["/bin/true"], "env_allow": ["PATH", "NOTIFY_SOCKET"]},
            "env: NOTIFY_SOCKET belongs to the agent's service manager and is never passed to plugins",
        ),
        (
            {"command": ["/bin/true"], "env": {"WATCHDOG_USEC": "1"}},
            "env: WATCHDOG_USEC belongs to the agent's service manager and is never passed to plugins",
        ),
        (
            {"command": ["/bin/true"], "timeout_state": "bad"},
            'timeout_state: must be one of ok, warning, critical, unknown; got "bad"',
        ),
        ({"command": ["/bin/true"], "output_limit": 10}, "output_limit: must be from 256 to 1048576 bytes, got 10"),
        ({"command": ["/bin/true"], "timeout": 0.0}, "timeout: must be positive, got 0"),
    ],
)
def test_bad_options_are_refused_with_the_option_named(options, message):
    with pytest.raises(ConfigError) as error:
        run_check(NagiosCheck, options)
    assert str(error.value) == f"<run_check>: checks.test: {message}"


def test_a_mistyped_option_is_reported_like_the_config_loader_does():
    with pytest.raises(ConfigError) as error:
        run_check(NagiosCheck, {"command": "/usr/lib/nagios/plugins/check_load", "timout_state": "ok"})
    assert str(error.value).split("\n") == [
        '<run_check>: checks.test.command: must be an array, got "/usr/lib/nagios/plugins/check_load"',
        '<run_check>: checks.test.timout_state: unknown option for check type "NagiosCheck" '
        '(did you mean "timeout_state"?); accepted options: command, env, env_allow, output_limit, timeout, '
        "timeout_state",
    ]


def test_an_agent_toml_stanza_builds_a_nagios_instance_with_thresholds_on_perfdata_labels(tmp_path):
    from monagent.config import loads
    from monagent.loader import Registry

    config = loads(
        textwrap.dedent("""\
        [agent]
        plugin_dirs = []

        [checks.load]
        type = "nagios"
        command = ["/usr/lib/nagios/plugins/check_load", "-r", "-w", "0.9,0.8,0.7", "-c", "1.5,1.2,1.0"]
        timeout = "10s"
        env_allow = ["PATH"]
        env = { LC_ALL = "C" }

        [checks.load.thresholds]
        load15 = { warning = 0.8, critical = 1.0 }
        """),
        str(tmp_path / "agent.toml"),
        environ={},
        registry=Registry([]),
    )
    check = config.check("load")
    assert check is not None
    assert check.timeout == 10.0
    assert dict(check.options) == {
        "command": ("/usr/lib/nagios/plugins/check_load", "-r", "-w", "0.9,0.8,0.7", "-c", "1.5,1.2,1.0"),
        "env_allow": ("PATH",),
        "env": {"LC_ALL": "C"},
    }
    assert check.thresholds["load15"].critical == 1.0
    instance = NagiosCheck(**check.options, timeout=check.timeout)
    assert (instance.deadline, instance.environment({"PATH": "/bin", "HOME": "/root"})) == (10.0, {"PATH": "/bin", "LC_ALL": "C"})
