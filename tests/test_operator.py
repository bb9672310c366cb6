"""The operator's path (#14), each case driven through the CLI as a subprocess.

Admin commands from a shell without the service's secrets, next to a running agent whose file
has a typo; the config named before the command; journald priorities read from the stream; the
first-cycle line; start failures with their exit codes; validate's warnings; a robot failing
with HTTP 500 in ``status``.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, Iterator, List, Optional

import pytest
from conftest import ROOT, run_monagent
from fake_dingtalk import FakeDingTalk, Fault
from harness import AgentProcess, wait_until

PLUGIN = """
from monagent.api import Check, Metric, MetricSpec, Result


class Gauge(Check):
    metrics = {"value": MetricSpec(unit="%", warning=80, critical=90)}

    def __init__(self, *, path: str) -> None:
        self.path = path

    def run(self, ctx):
        with open(self.path) as handle:
            return Result(metrics=(Metric("value", float(handle.read()), "%"),))
"""

CONFIG = """
[agent]
hostname = "web01"
state_dir = "{root}/state"
runtime_dir = "{root}/run"
plugin_dirs = ["{root}/plugins"]
splay = "0"

[alerting]
startup_grace = "0"
fire_after_cycles = 1
group_wait = "0"

[checks.load]
type = "gauge"
path = "{root}/load"
interval = "200ms"

[checks.spare]
type = "gauge"
path = "{root}/spare"
interval = "200ms"
{extra}"""

SECRET = "SEC0123456789abcdef"


def write_agent(root: Path, extra: str = "", load: float = 95, spare: float = 10) -> Path:
    plugins = root / "plugins"
    plugins.mkdir(mode=0o755, exist_ok=True)
    os.chmod(plugins, 0o755)
    (plugins / "gauge.py").write_text(PLUGIN)
    os.chmod(plugins / "gauge.py", 0o644)
    (root / "load").write_text(str(load))
    (root / "spare").write_text(str(spare))
    path = root / "agent.toml"
    path.write_text(CONFIG.format(root=root, extra=extra))
    os.chmod(path, 0o600)
    return path


def line_of(config: Path, text: str) -> int:
    return next(n for n, line in enumerate(config.read_text().splitlines(), start=1) if line.startswith(text))


def admin_env(root: Path, **extra: str) -> Dict[str, str]:
    """An admin shell: none of the service's variables, and no installed unit to read."""
    env = {k: v for k, v in os.environ.items() if k not in ("CREDENTIALS_DIRECTORY", "DINGTALK_SECRET", "JOURNAL_STREAM")}
    env.update({"TZ": "UTC", "MONAGENT_UNIT": str(root / "no-such.service"), **extra})
    return env


def start_agent(config: Path, env: Optional[Dict[str, str]] = None, log: Optional[Path] = None) -> AgentProcess:
    """``monagent run`` as a subprocess; its stderr (the log) goes to ``log``, by default agent.log beside the config."""
    return AgentProcess(config, env, log=log or config.parent / "agent.log")


@pytest.fixture
def agents() -> Iterator[List[AgentProcess]]:
    started: List[AgentProcess] = []
    yield started
    for agent in started:
        agent.close()


def status_json(config: Path, env: Dict[str, str]) -> Dict:
    result = run_monagent("status", "--json", "-c", str(config), env=env)
    return json.loads(result.stdout) if result.returncode == 0 else {}


# ---------------------------------------------------------------- 1. secrets outside the service


def test_admin_commands_work_from_a_shell_without_the_services_secrets(tmp_path: Path, agents: List[AgentProcess]) -> None:
    """Case 1: webhook_credential and ${DINGTALK_SECRET} are the service's; the admin shell has neither."""
    with FakeDingTalk() as fake:
        fake.add_robot("t0ken", SECRET)
        creds = tmp_path / "creds"
        creds.mkdir()
        (creds / "dingtalk-webhook").write_text(fake.webhook("t0ken") + "\n")
        extra = '[notifiers.dingtalk.ops]\nwebhook_credential = "dingtalk-webhook"\nsecret = "${DINGTALK_SECRET}"\n'
        config = write_agent(tmp_path, extra)
        service = dict(os.environ, CREDENTIALS_DIRECTORY=str(creds), DINGTALK_SECRET=SECRET, TZ="UTC")
        agent = start_agent(config, service)
        agents.append(agent)
        wait_until(lambda: fake.accepted, "the FIRING at the robot")
        env = admin_env(tmp_path)

        validate = run_monagent("validate", "-c", str(config), env=env)
        assert validate.returncode == 0, validate.stderr
        notes = [line for line in validate.stderr.splitlines() if line.startswith("note:")]
        assert notes == [
            f"note: {config}:{line_of(config, 'webhook_credential')}: notifiers.dingtalk.ops.webhook_credential: "
            "resolved at service start from "
            "LoadCredential=dingtalk-webhook:... in the unit (checked when the service starts)",
            f"note: {config}:{line_of(config, 'secret =')}: notifiers.dingtalk.ops.secret: "
            "resolved at service start from $DINGTALK_SECRET "
            "(set for the service only) (checked when the service starts)",
        ]
        status = run_monagent("status", "-c", str(config), env=env)
        assert (status.returncode, status.stderr) == (0, "")
        assert "  FIRING    critical load value  95% (>= 90%)" in status.stdout
        added = run_monagent(
            "silence", "add", "-c", str(config), "--match", "check=spare", "--duration", "1h", "--comment", "x", env=env
        )
        assert (added.returncode, added.stderr) == (0, "")
        listed = run_monagent("silence", "list", "-c", str(config), env=env)
        assert listed.returncode == 0 and "check=spare" in listed.stdout
        ack = run_monagent("ack", "-c", str(config), "load value", env=env)
        assert (ack.returncode, ack.stderr) == (0, "")
        check = run_monagent("check", "-c", str(config), env=env)
        assert (check.returncode, check.stderr) == (2, ""), check.stdout  # CRITICAL, not 3 for a config error
        assert agent.stop() == 0


def _unit(root: Path, *lines: str) -> Path:
    unit = root / "unit" / "monagent.service"
    unit.parent.mkdir(exist_ok=True)
    unit.write_text("[Unit]\nDescription=test\n\n[Service]\nExecStart=/bin/true\n" + "\n".join(lines) + "\n")
    return unit


def test_notify_test_as_root_reads_the_secrets_where_the_unit_gets_them(tmp_path: Path) -> None:
    with FakeDingTalk() as fake:
        fake.add_robot("t0ken", SECRET)
        (tmp_path / "webhook").write_text(fake.webhook("t0ken"))
        (tmp_path / "service.env").write_text(f"# for the service\nDINGTALK_SECRET='{SECRET}'\n")
        for path in (tmp_path / "webhook", tmp_path / "service.env"):
            path.chmod(0o600)
        unit = _unit(
            tmp_path,
            "LoadCredential=dingtalk-webhook:" + str(tmp_path / "webhook"),
            "EnvironmentFile=-" + str(tmp_path / "service.env"),
        )
        extra = '[notifiers.dingtalk.ops]\nwebhook_credential = "dingtalk-webhook"\nsecret = "${DINGTALK_SECRET}"\n'
        config = write_agent(tmp_path, extra)

        alone = run_monagent("notify-test", "-c", str(config), env=admin_env(tmp_path))
        assert alone.returncode == 78
        assert alone.stderr.splitlines()[:2] == [
            f"{config}:{line_of(config, 'webhook_credential')}: notifiers.dingtalk.ops.webhook_credential: "
            "CREDENTIALS_DIRECTORY is not set and no installed "
            "unit loads a credential dingtalk-webhook (LoadCredential=dingtalk-webhook:/path in the unit, or "
            "/etc/credstore/dingtalk-webhook)",
            f"{config}:{line_of(config, 'secret =')}: notifiers.dingtalk.ops.secret: "
            "environment variable DINGTALK_SECRET is not set; export "
            "DINGTALK_SECRET=... (the value the service gets) and run this again",
        ]
        assert fake.accepted == []

        found = run_monagent("notify-test", "-c", str(config), env=admin_env(tmp_path, MONAGENT_UNIT=str(unit)))
        assert found.returncode == 0, found.stderr
        assert "  OK: errcode 0" in found.stdout
        assert len(fake.accepted) == 1  # the fake checked the signature made with the secret from the EnvironmentFile
        assert SECRET not in found.stdout + found.stderr and "t0ken" not in found.stdout + found.stderr

        (tmp_path / "webhook").write_text("oapi.dingtalk.com/robot/send")  # checked for real when readable
        bad = run_monagent("validate", "-c", str(config), env=admin_env(tmp_path, MONAGENT_UNIT=str(unit)))
        assert bad.returncode == 78
        assert bad.stderr.startswith(f"{config}:{line_of(config, 'webhook_credential')}: notifiers.dingtalk.ops.webhook: must be")


# ---------------------------------------------------------------- 2. a typo next to a running agent


@pytest.mark.parametrize(
    ("typo", "warning"),
    [
        (
            ("startup_grace", "startup_grase"),
            '{config}:{line}: alerting.startup_grase: unknown key (did you mean "startup_grace"?)',
        ),
        (("[checks.spare]", "[checks.spare"), "{config}:{line}: invalid TOML: Expected ']' at the end of a table declaration"),
    ],
)
def test_status_silence_and_ack_work_while_the_file_has_a_typo(tmp_path: Path, agents: List[AgentProcess], typo, warning) -> None:
    config = write_agent(tmp_path)
    agent = start_agent(config)
    agents.append(agent)
    env = admin_env(tmp_path)
    wait_until(lambda: any(a["phase"] == "firing" for a in status_json(config, env).get("alerts", [])), "the alert firing")
    config.write_text(config.read_text().replace(*typo))
    line = line_of(config, typo[1])
    agent.proc.send_signal(signal.SIGHUP)
    agent.wait_log("stays in force")
    ignored = "warning: " + warning.format(config=config, line=line)
    for args in (
        ("status",),
        ("silence", "add", "--match", "check=spare", "--duration", "1h", "--comment", "mid-edit"),
        ("silence", "list"),
        ("ack", "load value"),
    ):
        result = run_monagent(*args, "-c", str(config), env=env)
        assert result.returncode == 0, (args, result.stderr)
        assert result.stderr.splitlines()[0].startswith(ignored), result.stderr
        assert result.stderr.splitlines()[0].endswith(
            f"(ignored by `monagent {' '.join(args[:2]) if args[0] == 'silence' else args[0]}`; "
            "`monagent validate` lists every problem)"
        )
    state = status_json(config, env)
    assert state["agent"]["running"] is True
    assert [s["comment"] for s in state["silences"]] == ["mid-edit"]
    assert [a["acked_by"] is not None for a in state["alerts"] if a["key"] == "load value"] == [True]
    assert agent.stop() == 0


def test_status_reads_the_state_where_the_running_agent_keeps_it(tmp_path: Path, agents: List[AgentProcess]) -> None:
    """The file now names another state_dir (not reloaded yet): status asks the agent where its state is."""
    config = write_agent(tmp_path)
    agent = start_agent(config)
    agents.append(agent)
    env = admin_env(tmp_path)
    wait_until(lambda: any(a["phase"] == "firing" for a in status_json(config, env).get("alerts", [])), "the alert firing")
    config.write_text(config.read_text().replace(f'"{tmp_path}/state"', f'"{tmp_path}/elsewhere"'))
    state = status_json(config, env)
    assert state["agent"]["state_dir"] == f"{tmp_path}/state"
    assert [a["key"] for a in state["alerts"]] == ["load value"]
    assert agent.stop() == 0
    stopped = run_monagent("status", "-c", str(config), env=env)
    assert stopped.returncode == 75 and f"no state database at {tmp_path}/elsewhere/state.db" in stopped.stderr


# ---------------------------------------------------------------- 3. naming the config


def test_the_config_may_be_named_before_the_command_or_by_MONAGENT_CONFIG(tmp_path: Path) -> None:
    config = write_agent(tmp_path)
    before = run_monagent("-c", str(config), "validate")
    assert (before.returncode, before.stdout.split(":")[0]) == (0, str(config))
    env = dict(os.environ, MONAGENT_CONFIG=str(config))
    by_env = run_monagent("validate", env=env)
    assert (by_env.returncode, by_env.stdout.split(":")[0]) == (0, str(config))
    after = run_monagent("-c", "/nonexistent/agent.toml", "validate", "-c", str(config), env=env)
    assert after.returncode == 0  # the one after the command wins
    check = run_monagent("-c", str(config), "check", "spare")
    assert (check.returncode, check.stderr) == (0, "")


def test_the_help_examples_of_check_run_on_the_shipped_config() -> None:
    shipped = ROOT / "agent.toml"
    examples = [
        line.split("#")[0].split()[1:]
        for line in run_monagent("check", "--help").stdout.splitlines()
        if line.strip().startswith("monagent check")
    ]
    assert len(examples) >= 3
    for words in examples:
        result = run_monagent(*words, "-c", str(shipped))
        assert result.returncode in (0, 1, 2, 3), (words, result.stderr)
        assert "no check named" not in result.stderr + result.stdout, words


# ---------------------------------------------------------------- 4, 5. journald and the first cycle

TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d")


def test_journal_lines_carry_their_priority_and_the_first_cycle_is_summed_up_once(
    tmp_path: Path, agents: List[AgentProcess]
) -> None:
    extra = '[notifiers.webhook.hook]\nurl = "http://127.0.0.1:9/hook"\n'  # nobody listens: a WARNING per attempt
    config = write_agent(tmp_path, extra)
    log = tmp_path / "journal.stream"
    log.touch()
    info = os.stat(log)
    env = dict(os.environ, JOURNAL_STREAM=f"{info.st_dev}:{info.st_ino}")
    agent = start_agent(config, env, log)
    agents.append(agent)
    agent.wait_log("<4>WARNING monagent.notify.dispatcher: webhook:hook: send failed")
    agent.wait_log("first cycle")
    time.sleep(1.0)  # five more runs of each check: no second summary
    assert agent.stop() == 0
    lines = log.read_text().splitlines()
    assert lines and all(re.match(r"<[2-7]>", line) for line in lines), lines
    assert not any(TIMESTAMP.search(line) for line in lines)
    assert any(line.startswith("<6>INFO monagent.agent: monagent started: 2 checks") for line in lines)
    summary = [line for line in lines if "first cycle" in line]
    assert summary == [
        "<6>INFO monagent.agent: first cycle: 2 checks ran, 1 OK; not OK: load CRITICAL (value 95% (>= 90%)); "
        "`monagent check` shows every result"
    ]


def test_a_stderr_that_is_not_the_journal_keeps_timestamps(tmp_path: Path, agents: List[AgentProcess]) -> None:
    config = write_agent(tmp_path)
    agent = start_agent(config, dict(os.environ, JOURNAL_STREAM="1:2"))  # some other stream: inherited, not ours
    agents.append(agent)
    agent.wait_log("first cycle")
    assert agent.stop() == 0
    started = next(line for line in agent.log_text().splitlines() if "monagent started" in line)
    assert TIMESTAMP.match(started) and " INFO monagent.agent: monagent started" in started


@pytest.mark.skipif(not Path("/run/systemd/journal/stdout").exists(), reason="no journald on this machine")
def test_journalctl_priority_filter_shows_the_warnings(tmp_path: Path) -> None:
    extra = '[notifiers.webhook.hook]\nurl = "http://127.0.0.1:9/hook"\n'
    config = write_agent(tmp_path, extra)
    tag = f"monagent-test-{os.getpid()}"
    script = (
        "JOURNAL_STREAM=$(stat -L -c %d:%i /proc/self/fd/2) "
        f'exec timeout -s TERM 5 "{sys.executable}" -m monagent run -c "{config}"'
    )
    subprocess.run(["systemd-cat", "-t", tag, "--level-prefix=true", "sh", "-c", script], timeout=60, check=False)
    time.sleep(1)
    shown = subprocess.run(["journalctl", "-t", tag, "-p", "warning", "-o", "cat", "--no-pager"], capture_output=True, text=True)
    assert "webhook:hook: send failed" in shown.stdout
    assert "monagent started" not in shown.stdout


def test_the_first_cycle_names_a_check_that_raised_as_unknown() -> None:
    from monagent.checkrun import CheckRun
    from monagent.firstcycle import FirstCycle

    tracker = FirstCycle(["a", "b"], {})
    assert tracker.observe([CheckRun("a", "t", 0.0, 0.1, (), error="OSError: boom")]) is None
    line = tracker.observe([CheckRun("b", "t", 0.0, 0.1, ())])
    assert line == "first cycle: 2 checks ran, 1 OK; not OK: a UNKNOWN (OSError: boom); `monagent check` shows every result"
    assert tracker.observe([CheckRun("a", "t", 0.0, 0.1, ())]) is None


# ---------------------------------------------------------------- 6, 8. failures to start


def _run_as_nobody(config: Path, home: str) -> tuple:
    """``monagent run`` in a forked child that drops to nobody after the imports (the interpreter may
    sit under a root-only directory); returns (exit code, output)."""
    import importlib

    for module in (
        "monagent.agent",
        "monagent.startup",
        "monagent.statelock",
        "monagent.store",
        "monagent.firstcycle",
        "monagent.sdnotify",
        "monagent.alerting.pipeline",
        "monagent.context",
        "monagent.loader",
        "monagent.scheduler",
        "monagent.notify.build",
        "importlib.metadata",
        "faulthandler",
        "pwd",
        "sqlite3",
    ):
        importlib.import_module(module)
    from monagent.cli import build_parser, main

    build_parser()
    out = config.parent / "nobody.log"
    pid = os.fork()
    if pid == 0:  # the child
        code = 70
        try:
            fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            os.dup2(fd, 2)
            sys.stderr = open(2, "w", closefd=False)
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            os.environ["HOME"] = home
            for name in ("XDG_STATE_HOME", "XDG_RUNTIME_DIR", "STATE_DIRECTORY", "RUNTIME_DIRECTORY", "JOURNAL_STREAM"):
                os.environ.pop(name, None)
            code = main(["run", "-c", str(config)])
        except BaseException:  # the child must never return into pytest
            import traceback

            traceback.print_exc()
        finally:
            sys.stderr.flush()
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), out.read_text()


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run the agent as nobody")
def test_a_state_directory_that_cannot_be_created_is_one_line_and_exit_73(public_tmp: Path) -> None:
    config = public_tmp / "agent.toml"
    config.write_text('[checks.memory]\ntype = "memory"\n')
    config.chmod(0o644)
    code, out = _run_as_nobody(config, "/nonexistent")
    assert (code, out.count("\n")) == (73, 1), out
    assert out.split(" ", 2)[2] == (
        "ERROR monagent.agent: cannot create the state directory /nonexistent/.local/state/monagent: Permission denied; "
        "set [agent] state_dir (or $STATE_DIRECTORY) to a directory this user (nobody) can create, or run as root "
        "(the default is under $HOME, which is /nonexistent)\n"
    )


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run the agent as nobody")
def test_a_state_directory_of_another_user_is_one_line_and_exit_77(public_tmp: Path) -> None:
    state = public_tmp / "state"
    state.mkdir(mode=0o700)
    config = public_tmp / "agent.toml"
    config.write_text(f'[agent]\nstate_dir = "{state}"\n[checks.memory]\ntype = "memory"\n')
    config.chmod(0o644)
    code, out = _run_as_nobody(config, str(public_tmp))
    assert (code, out.count("\n")) == (77, 1), out
    assert out.endswith(
        f"ERROR monagent.agent: the state directory {state} is not writable by this user (nobody; it belongs to root); "
        "run as root, or set [agent] state_dir to a directory of your own\n"
    )


def test_a_state_directory_under_a_file_exits_73_with_an_error_priority(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    config = tmp_path / "agent.toml"
    config.write_text(f'[agent]\nstate_dir = "{tmp_path}/file/state"\n[checks.memory]\ntype = "memory"\n')
    log = tmp_path / "journal.stream"
    log.touch()
    info = os.stat(log)
    agent = start_agent(config, {"JOURNAL_STREAM": f"{info.st_dev}:{info.st_ino}"}, log)
    assert agent.wait() == 73
    assert log.read_text().startswith(f"<3>ERROR monagent.agent: cannot create the state directory {tmp_path}/file/state: ")
    assert "Traceback" not in log.read_text()


def test_a_second_agent_on_the_same_state_exits_75(tmp_path: Path, agents: List[AgentProcess]) -> None:
    config = write_agent(tmp_path)
    first = start_agent(config)
    agents.append(first)
    first.wait_log("monagent started")
    second = run_monagent("run", "-c", str(config))
    assert second.returncode == 75
    assert second.stderr.strip().endswith(
        f"another monagent (pid {first.proc.pid}) is running on the state directory {tmp_path}/state; stop it first, "
        "or give this one its own [agent] state_dir"
    )
    assert first.stop() == 0


# ---------------------------------------------------------------- 7. validate's warnings


def _readme_step_2() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    step = text[text.index("## 钉钉机器人配置") :]  # the Chinese quickstart's step 2: its only TOML block
    block = step[step.index("```toml") + len("```toml") : step.index("```", step.index("```toml") + 7)]
    return "\n".join(line.strip() for line in block.splitlines())


def test_validate_warns_about_the_quickstart_placeholders_and_an_empty_watch_list(tmp_path: Path) -> None:
    config = tmp_path / "agent.toml"
    config.write_text(_readme_step_2())
    config.chmod(0o600)
    result = run_monagent("validate", "-c", str(config))
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines() == [
        f"warning: {config}: no checks are configured: nothing is watched; add a [checks.NAME] table (the shipped "
        "agent.toml has examples)",
        f'warning: {config}:3: notifiers.dingtalk.ops.webhook: looks like a placeholder ("…"), which can never work; '
        "paste the real value from the robot's settings (群设置 → 智能群助手 → 机器人)",
        f'warning: {config}:4: notifiers.dingtalk.ops.secret: looks like a placeholder ("…"), which can never work; '
        "paste the real value from the robot's settings (群设置 → 智能群助手 → 机器人)",
    ]
    strict = run_monagent("validate", "--strict", "-c", str(config))
    assert strict.returncode == 78
    assert strict.stderr.splitlines()[-1] == "monagent: 3 warnings; --strict treats warnings as errors"


def test_validate_warns_when_alerts_reach_only_the_console(tmp_path: Path) -> None:
    config = write_agent(tmp_path)
    result = run_monagent("validate", "-c", str(config))
    assert (result.returncode, result.stderr) == (
        0,
        f"warning: {config}: no receiver but the console: alerts reach only the agent's log; add "
        "[notifiers.dingtalk.NAME], [notifiers.webhook.NAME] or [notifiers.alertmanager]\n",
    )
    assert run_monagent("validate", "--strict", "-c", str(config)).returncode == 78


# ---------------------------------------------------------------- 10. a robot failing with HTTP 500


def test_status_shows_a_robot_failing_with_http_500_and_since_when(tmp_path: Path, agents: List[AgentProcess]) -> None:
    with FakeDingTalk() as fake:
        fake.add_robot("t0ken", SECRET)
        fake.fail_always(Fault("http500"))
        extra = f'[notifiers.dingtalk.ops]\nwebhook = "{fake.webhook("t0ken")}"\nsecret = "{SECRET}"\n'
        config = write_agent(tmp_path, extra)
        agent = start_agent(config, dict(os.environ, TZ="UTC"))
        agents.append(agent)
        env = admin_env(tmp_path)

        def robot() -> Dict:
            return next((n for n in status_json(config, env).get("notifiers", []) if n["receiver"] == "dingtalk:ops"), {})

        wait_until(lambda: robot().get("failed", 0) >= 2, "two failed attempts")
        health = robot()
        assert (health["state"], health["last_error_class"]) == ("failing", "retry")
        assert health["since"] == pytest.approx(fake.requests[0], abs=2)
        since = time.strftime("%Y-%m-%d %H:%M", time.gmtime(health["since"]))
        text = run_monagent("status", "-c", str(config), env=env).stdout
        notifiers = text.splitlines()[text.splitlines().index("Notifiers:") :]
        line = next(line for line in notifiers if line.startswith("  dingtalk:ops: "))
        assert line.startswith(f"  dingtalk:ops: FAILING since {since} (retry), last success -, sent 0, failed attempts ")
        fake.fail_always(None)
        wait_until(lambda: robot().get("state") == "ok", "the robot healthy again", timeout=90)
        assert robot()["since"] is None
        assert agent.stop() == 0
