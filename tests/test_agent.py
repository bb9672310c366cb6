"""The running agent as a subprocess: start-up errors, reload, SIGTERM during a send, DingTalk end to end."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import pytest
from fake_dingtalk import FakeDingTalk, Fault
from harness import AgentProcess, monagent, run_in_process_until_observed, wait_until

SCRIPTED = textwrap.dedent('''
    from pathlib import Path
    from monagent.api import Check, Metric, MetricSpec, Result

    class Scripted(Check):
        """Reports the number written in a file (a stand-in for any measured value)."""

        interval = 0.2
        metrics = {"value": MetricSpec(unit="%", warning=50, critical=90, minimum=0, maximum=100)}

        def __init__(self, *, path: str) -> None:
            self.path = Path(path)

        def run(self, ctx):
            return Result(subject="demo", metrics=(Metric("value", float(self.path.read_text()), "%"),))
''')


def agent_config(tmp_path: Path, extra: str = "", checks: str = "") -> Path:
    plugins = tmp_path / "checks.d"
    plugins.mkdir(exist_ok=True, mode=0o755)
    os.chmod(plugins, 0o755)
    (plugins / "scripted.py").write_text(SCRIPTED)
    os.chmod(plugins / "scripted.py", 0o644)
    value = tmp_path / "value"
    if not value.exists():
        value.write_text("10")
    path = tmp_path / "agent.toml"
    path.write_text(
        textwrap.dedent(f"""
        [agent]
        hostname = "web01"
        state_dir = "{tmp_path / "state"}"
        runtime_dir = "{tmp_path / "run"}"
        plugin_dirs = ["{plugins}"]
        splay = "0"

        [alerting]
        fire_after_cycles = 2
        clear_after_cycles = 2
        startup_grace = "0"
        group_wait = "0"

        [checks.demo]
        type = "scripted"
        path = "{value}"
        interval = "200ms"
    """)
        + textwrap.dedent(checks)
        + textwrap.dedent(extra)
    )
    return path


@pytest.fixture
def agents():
    started: List[AgentProcess] = []

    def start(config: Path, env: Optional[Dict[str, str]] = None) -> AgentProcess:
        agent = AgentProcess(config, env=env)
        started.append(agent)
        return agent

    yield start
    for agent in started:
        agent.close()


def test_an_invalid_config_exits_78_with_every_problem_and_no_traceback(tmp_path):
    path = tmp_path / "agent.toml"
    path.write_text('[agent]\ninterval = "fast"\n[checks.x]\ntype = "nosuch"\n')
    proc = monagent("run", "-c", str(path), timeout=30)
    assert proc.returncode == 78
    assert proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert lines[0] == (
        f'{path}:2: agent.interval: must be a duration such as "30s", "5m" or "4h" (units ms, s, m, h, d), got "fast"'
    )
    assert lines[1].startswith(f'{path}:4: checks.x.type: unknown check type "nosuch"')
    assert lines[2] == "monagent: 2 configuration problems; nothing was started"
    assert "Traceback" not in proc.stderr


def test_usage_errors_exit_64():
    proc = monagent("frobnicate", timeout=30)
    assert proc.returncode == 64
    assert "invalid choice: 'frobnicate'" in proc.stderr


def test_a_reload_with_a_broken_file_keeps_the_running_config_and_a_valid_one_applies(tmp_path, agents):
    config = agent_config(tmp_path)
    agent = agents(config)
    agent.wait_for("monagent started: 1 checks")
    good_text = config.read_text()
    config.write_text(good_text + '\n[checks.cpu]\ntype = "cpu"\nintreval = "1s"\n')
    agent.proc.send_signal(signal.SIGHUP)
    agent.wait_for("reload of")
    agent.wait_for('checks.cpu.intreval: unknown option for check type "cpu" (did you mean "interval"?)')
    assert agent.proc.poll() is None
    # the running configuration still works: the check still fires
    (tmp_path / "value").write_text("95")
    agent.wait_for("FIRING critical web01 demo demo value 95%")
    config.write_text(good_text + '\n[checks.cpu]\ntype = "cpu"\ninterval = "1s"\n')
    agent.proc.send_signal(signal.SIGHUP)
    agent.wait_for("configuration reloaded from")
    agent.wait_for("2 checks (1 changed)")
    assert agent.stop() == 0
    assert sum(line.startswith("FIRING") for line in agent.lines) == 1, "\n".join(agent.lines)


def test_sigterm_during_a_hung_send_exits_in_time_and_keeps_the_event(tmp_path, agents):
    with FakeDingTalk() as robot:
        robot.add_robot("tok", secret="SEC0123")
        robot.fail_next(Fault("hang"))
        config = agent_config(
            tmp_path,
            extra=f"""
            [notifiers.console]
            enabled = false
            [notifiers.dingtalk.ops]
            webhook = "{robot.webhook("tok")}"
            secret = "SEC0123"
            timeout = "60s"
            group_wait = "0"
            language = "en"
        """,
        )
        # The deadline is injected: [agent] stop_deadline (default 20 s) bounds the wait, not the send's 60 s timeout.
        config.write_text(config.read_text().replace("[agent]\n", '[agent]\nstop_deadline = "500ms"\n', 1))
        (tmp_path / "value").write_text("95")
        agent = agents(config)
        assert robot.hanging.wait(30), "\n".join(agent.lines)
        assert agent.stop() == 0  # with the send still hanging: the deadline let the agent go
        assert any("stopping: in-flight sends get 0.5 s" in line for line in agent.lines), "\n".join(agent.lines)
        assert robot.accepted == []
        robot.release.set()  # the hung request may still be recorded: it was in flight (at-least-once)
        wait_until(lambda: len(robot.answers) == 1, "the released request to be answered")
        before = len(robot.accepted)
        # a restart delivers what was queued: nothing was lost
        second = agents(config)
        second.wait_for("monagent started")
        deadline = time.monotonic() + 20
        while len(robot.accepted) == before and time.monotonic() < deadline:
            time.sleep(0.05)
        assert second.stop() == 0
        titles = [m.title for m in robot.accepted[before:]]
        assert len(titles) == 1, titles
        assert titles[0].startswith("[FIRING:1] web01")
        assert "95%" in robot.accepted[before].text


def test_the_shipped_config_runs_without_root(public_tmp):
    """As nobody, with HOME in a temporary dir: the state goes to ~/.local/state, alerts to the console.

    The agent runs in a forked child that drops to nobody after the imports (the interpreter's
    files may sit under a root-only home directory); SIGTERM stops it and it exits 0.
    """
    if os.geteuid() != 0:
        pytest.skip("needs root to start the agent as another user")
    import importlib

    for module in (
        "monagent.agent",
        "monagent.alerting.pipeline",
        "monagent.context",
        "monagent.notify.build",
        "monagent.notify.console",
        "monagent.control",
        "monagent.scheduler",
        "monagent.sdnotify",
        "monagent.store",
        "monagent.metrics",
        "monagent.metrics_state",
        "monagent.workers",
        "monagent.procfs",
        "monagent.checks.cpu",
        "monagent.checks.memory",
        "monagent.checks.disk",
        "monagent.checks.kdump",
        "monagent.checks.oom",
        "sqlite3",
        "encodings.ascii",
        "encodings.latin_1",
        "encodings.idna",
        "getpass",
        "json",
        "zoneinfo",
        "multiprocessing.forkserver",
        "multiprocessing.spawn",
        "multiprocessing.connection",
        "multiprocessing.reduction",
        "multiprocessing.popen_forkserver",
        "multiprocessing.popen_spawn_posix",
        "multiprocessing.resource_tracker",
        "multiprocessing.queues",
        "multiprocessing.synchronize",
        "concurrent.futures.thread",
        "logging.handlers",
        "gzip",
        "bz2",
        "lzma",
        "zlib",
        "zipfile",
        "tarfile",
        "ctypes",
        "ctypes.util",
        "fcntl",
        "struct",
        "pwd",
        "grp",
    ):
        importlib.import_module(module)
    from monagent.cli import build_parser

    build_parser()  # imports every command module
    root = Path(__file__).resolve().parent.parent
    home = public_tmp / "home"
    home.mkdir()
    os.chown(home, 65534, 65534)
    log = public_tmp / "out.log"
    pid = os.fork()
    if pid == 0:  # the child: become nobody, then run the agent in this process
        code = 70
        try:
            fd = os.open(log, os.O_WRONLY | os.O_CREAT, 0o644)
            os.dup2(fd, 1)
            os.dup2(fd, 2)
            sys.stdout = open(1, "w", closefd=False)
            sys.stderr = open(2, "w", closefd=False)
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            os.environ["HOME"] = str(home)
            for name in (
                "XDG_STATE_HOME",
                "XDG_RUNTIME_DIR",
                "STATE_DIRECTORY",
                "RUNTIME_DIRECTORY",
                "NOTIFY_SOCKET",
                "CONFIGURATION_DIRECTORY",
            ):
                os.environ.pop(name, None)
            os.chdir(public_tmp)
            from monagent.cli import main

            code = main(["run", "-c", str(root / "agent.toml")])
        except BaseException:  # the child must never return into pytest
            import traceback

            traceback.print_exc()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    try:
        wait_until(lambda: log.exists() and "monagent started" in log.read_text(), "the agent running as nobody to start", 60)
    finally:
        os.kill(pid, signal.SIGTERM)  # also when the wait failed: the forked agent must not outlive the test
        _, status = os.waitpid(pid, 0)
    out = log.read_text()
    assert os.waitstatus_to_exitcode(status) == 0, out
    assert "monagent started: 6 checks, receivers: console" in out
    assert (home / ".local" / "state" / "monagent").is_dir()
    assert "Traceback" not in out, out


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_the_running_agent_serves_its_checks_and_alerts_as_prometheus_metrics(tmp_path, agents):
    import shutil
    import urllib.request

    port = _free_port()
    config = agent_config(
        tmp_path,
        extra=f"""
        [metrics]
        enabled = true
        listen = "127.0.0.1:{port}"
    """,
    )
    (tmp_path / "value").write_text("95")
    agent = agents(config)
    agent.wait_for("FIRING critical web01 demo demo value 95%")
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    assert agent.stop() == 0
    lines = text.splitlines()
    assert 'monagent_check_value{check="demo",host="web01",metric="value",subject="demo",unit="%"} 95.0' in lines or any(
        line.startswith("monagent_check_value{") and 'check="demo"' in line and line.endswith(" 95.0") for line in lines
    )
    assert any(line.startswith("monagent_check_status{") and 'check="demo"' in line and line.endswith(" 2.0") for line in lines)
    assert any(line.startswith("monagent_alert_phase{") and 'phase="firing"' in line and line.endswith(" 1.0") for line in lines)
    assert any(line.startswith('monagent_outbox_entries{receiver="console"}') for line in lines)
    assert any(line.startswith("monagent_cycle_duration_seconds_count") for line in lines)
    promtool = shutil.which("promtool")
    if promtool:
        lint = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=30)
        assert lint.returncode == 0, lint.stdout + lint.stderr
    elif os.environ.get("CI"):
        pytest.fail("promtool is missing in CI (package prometheus)")


HOSTILE_FILES = {
    "an unclosed IPv6 bracket in a URL": (
        '\n[notifiers.webhook.ops]\nurl = "http://[::1/hook"\n',
        "cannot be parsed: Invalid IPv6 URL",
    ),
    "500 nested arrays": ("\n[checks.cpu]\ntype = " + "[" * 500 + "]" * 500 + "\n", "nest more than 16 deep"),
    "400 nested inline tables": ("\n[checks.cpu]\ntype = " + "{a=" * 400 + "1" + "}" * 400 + "\n", "nest more than 16 deep"),
    "a 400-digit integer duration": ('\n[checks.cpu]\ntype = "cpu"\ninterval = ' + "9" * 400 + "\n", "integer of 400 digits"),
    "a 400-digit duration string": ('\n[checks.cpu]\ntype = "cpu"\ninterval = "' + "9" * 400 + 's"\n', "checks.cpu.interval"),
    "a newline in a check and type name": (
        '\n[checks."a\\nb"]\ntype = "c\\npu"\n',
        'checks.a\\nb.type: unknown check type "c\\npu"',
    ),
}


@pytest.mark.parametrize("what", sorted(HOSTILE_FILES))
def test_a_hostile_file_is_refused_by_run_with_78_and_one_problem_per_line(tmp_path, what):
    text, expected = HOSTILE_FILES[what]
    path = agent_config(tmp_path, extra=text)
    proc = monagent("run", "-c", str(path), timeout=30)
    assert proc.returncode == 78, proc.stderr
    assert "Traceback" not in proc.stderr
    *problems, summary = proc.stderr.splitlines()
    assert summary.startswith("monagent: ") and problems
    assert all(re.match(re.escape(str(path)) + r":\d+: ", line) for line in problems), proc.stderr
    assert any(expected in line for line in problems), proc.stderr


def test_sighup_with_each_hostile_file_keeps_the_agent_and_its_config(tmp_path, agents):
    config = agent_config(tmp_path)
    agent = agents(config)
    agent.wait_for("monagent started: 1 checks")
    good_text = config.read_text()
    for number, what in enumerate(sorted(HOSTILE_FILES), start=1):
        text, expected = HOSTILE_FILES[what]
        config.write_text(good_text + text)
        agent.proc.send_signal(signal.SIGHUP)
        agent.wait_for("reload of", count=number)
        agent.wait_for(expected)
        assert agent.proc.poll() is None, what
    assert not any("Traceback" in line for line in agent.lines), "\n".join(agent.lines)
    (tmp_path / "value").write_text("95")
    agent.wait_for("FIRING critical web01 demo demo value 95%")  # the running configuration still works
    assert agent.stop() == 0


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"


def _plugin_agent(tmp_path: Path) -> Tuple[Path, Path]:
    pids = tmp_path / "pids"
    plugin = tmp_path / "check_forever"
    plugin.write_text(f"#!/bin/sh\nsleep 300 &\necho $$ $! > {pids}.tmp\nmv {pids}.tmp {pids}\nexec sleep 300\n")
    plugin.chmod(0o755)
    checks = f'\n[checks.forever]\ntype = "nagios"\ncommand = ["{plugin}"]\ntimeout = "120s"\ninterval = "200ms"\n'
    return agent_config(tmp_path, checks=checks), pids


def _plugin_pids(pids: Path) -> List[int]:
    deadline = time.monotonic() + 20
    while not pids.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    return [int(word) for word in pids.read_text().split()]


def _gone(pids: List[int], timeout: float = 10.0) -> List[int]:
    deadline = time.monotonic() + timeout
    while any(_alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    return [pid for pid in pids if _alive(pid)]


def test_a_plugin_running_when_the_agent_stops_dies_with_its_group(tmp_path, agents):
    config, pids = _plugin_agent(tmp_path)
    agent = agents(config)
    agent.wait_for("monagent started: 2 checks")
    plugin_and_child = _plugin_pids(pids)
    assert all(_alive(pid) for pid in plugin_and_child)
    assert agent.stop() == 0
    assert _gone(plugin_and_child) == []  # the plugin and what it started in the background


def test_a_plugin_dies_when_the_agent_is_killed(tmp_path, agents):
    config, pids = _plugin_agent(tmp_path)
    agent = agents(config)
    agent.wait_for("monagent started: 2 checks")
    plugin, _background = _plugin_pids(pids)
    try:
        agent.stop(signal.SIGKILL)
        assert _gone([plugin]) == []  # the kernel kills it (PR_SET_PDEATHSIG)
    finally:
        try:
            os.killpg(plugin, signal.SIGKILL)  # its background child is not covered: do not leak it
        except ProcessLookupError:
            pass


def test_a_finished_run_is_observed_when_it_finishes_not_at_the_next_timer(tmp_path, monkeypatch):
    """The loop sleeps until the next due run, a run's timeout or LOOP_MAX_SLEEP, whichever is first;
    here all three are an hour away. The check's first run ends at once and the loop observes it then:
    a finished run wakes the loop (#17). Without that, nothing would be observed for an hour."""
    import monagent.agent
    from monagent.agent import Agent

    monkeypatch.setattr(monagent.agent, "LOOP_MAX_SLEEP", 3600.0)
    config = agent_config(tmp_path)
    config.write_text(config.read_text().replace('interval = "200ms"', 'interval = "1h"\ntimeout = "1h"'))
    observed = run_in_process_until_observed(lambda: Agent(config, environ={}), "demo", monkeypatch, explain_previous_boot=False)
    assert observed, "the finished run was not observed: the loop slept through it"


def test_a_store_that_refuses_commits_stops_the_watchdog_pings_and_says_why_until_it_accepts_them_again(tmp_path, agents):
    """A commit that fails for a reason other than disk space is a bug: ERROR in the log, STATUS
    "delivery stopped: ...", and no more WATCHDOG=1, so systemd's WatchdogSec restarts the agent (#13).
    The agent is a real process, its notify socket a real datagram socket as systemd's; the store is
    broken from outside by a trigger that aborts every outbox insert."""
    import socket
    import sqlite3

    notify = tmp_path / "notify"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(notify))
    sock.settimeout(0.2)
    datagrams: List[Tuple[float, str]] = []

    def listen(seconds: float, until=lambda: False) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end and not until():
            try:
                datagrams.append((time.monotonic(), sock.recv(4096).decode()))
            except socket.timeout:
                pass

    def pings(after: float = 0.0) -> int:
        return sum(1 for at, text in datagrams if at > after and "WATCHDOG=1" in text.split("\n"))

    try:
        config = agent_config(tmp_path)
        agent = agents(config, {"NOTIFY_SOCKET": str(notify), "WATCHDOG_USEC": "1000000"})
        agent.wait_for("monagent started: 1 checks")
        listen(30, until=lambda: pings() >= 3)
        assert pings() >= 3, datagrams  # fed every 0.5 s while healthy
        with sqlite3.connect(str(tmp_path / "state" / "state.db"), timeout=30) as db:
            db.execute("CREATE TRIGGER planted BEFORE INSERT ON outbox BEGIN SELECT RAISE(ABORT, 'planted fault'); END")
        (tmp_path / "value").write_text("95")  # an alert fires: its event cannot be committed
        agent.wait_for("ERROR")
        stopped = "delivery stopped: the state database refused a commit (IntegrityError: planted fault)"

        def said_stopped() -> bool:
            return any(f"STATUS={stopped}" in text for _, text in datagrams)

        listen(30, until=said_stopped)
        assert said_stopped(), datagrams
        since = max(at for at, text in datagrams if stopped in text)
        listen(4)  # eight watchdog intervals
        assert pings(after=since) <= 1, datagrams  # at most one already due when the commit failed: fed no more
        errors = [line for line in agent.lines if "ERROR" in line]
        assert any(stopped in line and "the watchdog is no longer fed" in line for line in errors), agent.lines
        assert not any(line.startswith("FIRING") for line in agent.lines)  # held, not delivered
        with sqlite3.connect(str(tmp_path / "state" / "state.db"), timeout=30) as db:
            db.execute("DROP TRIGGER planted")
        agent.wait_for("FIRING critical web01 demo demo value 95%")  # the held event goes out once fixed
        resumed = time.monotonic()
        listen(30, until=lambda: pings(after=resumed) >= 2)
        assert pings(after=resumed) >= 2, datagrams
        assert agent.stop() == 0
    finally:
        sock.close()


class _CountingDispatcher:
    """A dispatcher with nothing ever due (the console's answer): counts its pumps."""

    receiver_name = "counting"

    def __init__(self) -> None:
        self.pumps = 0

    def pump(self, outbox, now: float) -> None:
        self.pumps += 1

    def next_due(self, now: float) -> Optional[float]:
        return None

    def close(self, deadline: float) -> None:
        pass


class _RecordingEvent:
    """threading.Event that records the timeouts the lane waits with."""

    def __init__(self) -> None:
        import threading

        self._event = threading.Event()
        self.timeouts: List[float] = []

    def set(self) -> None:
        self._event.set()

    def clear(self) -> None:
        self._event.clear()

    def wait(self, timeout: Optional[float] = None) -> bool:
        self.timeouts.append(timeout if timeout is not None else float("inf"))
        return self._event.wait(timeout)


def test_an_idle_delivery_lane_sleeps_until_woken_and_a_wake_pumps_at_once() -> None:
    from monagent.agent import Delivery

    dispatcher = _CountingDispatcher()
    delivery = Delivery(outbox=None, dispatchers=[dispatcher])  # type: ignore[arg-type]
    lane = delivery._lanes[0]
    lane.wake = _RecordingEvent()  # type: ignore[assignment]
    delivery.start()
    try:
        wait_until(lambda: dispatcher.pumps >= 1 and lane.wake.timeouts, "the first pump", timeout=10.0)
        # nothing queued, nothing due: no timer worth waking for (it polled every 5 s before)
        assert min(lane.wake.timeouts) >= 60.0
        time.sleep(0.3)
        assert dispatcher.pumps == 1  # asleep: no pump until something wakes it
        before = dispatcher.pumps
        delivery.wake()
        wait_until(lambda: dispatcher.pumps > before, "a pump after the wake", timeout=10.0)
    finally:
        delivery.stop(time.monotonic() + 2.0)


def test_under_systemd_the_outbox_is_counted_for_the_status_line_only_when_it_can_have_changed(tmp_path, monkeypatch):
    """STATUS= says how deep the outbox is. Counting it is a query per receiver; the agent does it when
    events were queued or every 30 s, not after every run (#17). A real datagram socket stands in for
    systemd's; the check runs every 200 ms."""
    import socket
    import threading

    from monagent.agent import Agent
    from monagent.alerting.pipeline import AlertPipeline
    from monagent.store import Store

    notify = tmp_path / "notify"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(notify))
    counted: List[str] = []
    observed: List[int] = []
    real_count, real_observe = Store.queued_count, AlertPipeline.observe

    def counting(self, receiver):  # type: ignore[no-untyped-def]
        counted.append(receiver)
        return real_count(self, receiver)

    def observing(self, runs, now, mono):  # type: ignore[no-untyped-def]
        observed.append(len(runs))
        return real_observe(self, runs, now, mono)

    monkeypatch.setattr(Store, "queued_count", counting)
    monkeypatch.setattr(AlertPipeline, "observe", observing)
    monkeypatch.setattr(logging_root(), "handlers", list(logging_root().handlers))
    monkeypatch.setattr(logging_root(), "level", logging_root().level)
    try:
        hook = '\n[notifiers.webhook.ops]\nurl = "http://127.0.0.1:9/hook"\n'  # nothing listens: sends fail and stay queued
        monkeypatch.setenv("NOTIFY_SOCKET", str(notify))  # the agent reads it (and unsets it) as under systemd
        agent = Agent(agent_config(tmp_path, extra=hook), environ={})
        monkeypatch.setattr(agent, "_install_signals", lambda: None)
        monkeypatch.setattr(agent, "_explain_previous_boot", lambda *args: None)

        def stop_after_ten_observes() -> None:
            try:
                wait_until(lambda: len(observed) >= 10, "ten runs observed")
            finally:
                agent.stop()

        threading.Thread(target=stop_after_ten_observes, daemon=True).start()
        assert agent.run() == 0
    finally:
        sock.close()
    assert len(observed) >= 10
    # At start and when the start-up notices were queued (3 here); it was 2 per run (23 for 10 runs).
    assert 1 <= len(counted) <= 5, (len(counted), len(observed))


def logging_root():  # type: ignore[no-untyped-def]
    import logging

    return logging.root
