"""The shipped agent.toml is the commented reference: as shipped it is valid, and so is every option it shows."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from monagent.config import load, loads
from monagent.confread import ConfigError

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ROOT / "agent.toml"
ENV = {"HOME": "/tmp/monagent-test-home"}
OPTION = re.compile(r"^# ((\[\[?[a-z_.]+\]\]?(\s+#.*)?)|([a-z_.]+ = .*))$")


def uncommented(tmp_path: Path) -> str:
    """Every commented-out table and option line of the shipped file, switched on."""
    (tmp_path / "am-token").write_text("token\n")
    (tmp_path / "am-ca.pem").write_text("-----BEGIN CERTIFICATE-----\n")
    lines = []
    for line in SHIPPED.read_text().splitlines():
        match = OPTION.match(line)
        text = match.group(1) if match else line
        text = text.replace("/etc/monagent/am-token", str(tmp_path / "am-token"))
        text = text.replace("/etc/monagent/am-ca.pem", str(tmp_path / "am-ca.pem"))
        lines.append(text)
    return "\n".join(lines) + "\n"


def test_the_shipped_file_is_valid_as_shipped():
    config = load(SHIPPED, environ=ENV)
    assert [c.type for c in config.checks] == ["cpu", "memory", "disk", "kdump", "kernel_log", "oom"]
    assert config.notifiers.receiver_names == ("console",)
    assert not config.metrics.enabled


def test_every_option_the_shipped_file_shows_is_a_real_option_with_a_valid_example(tmp_path):
    text = uncommented(tmp_path)
    try:
        config = loads(text, str(tmp_path / "agent.toml"), environ=ENV)
    except ConfigError as err:
        pytest.fail("the commented reference has invalid options:\n" + str(err))
    assert {c.type for c in config.checks} >= {"cpu", "memory", "disk", "kdump", "oom", "process", "systemd", "nagios"}
    assert config.notifiers.receiver_names == ("console", "dingtalk:ops", "webhook:ops", "alertmanager")
    assert config.metrics.enabled is False
    assert len(config.alerting.maintenance) == 1


def test_the_shipped_defaults_match_the_code_defaults(tmp_path):
    """Uncommenting a default changes nothing: the comments tell the truth."""
    shipped = load(SHIPPED, environ=ENV)
    text = uncommented(tmp_path)
    # keep only the sections that exist when shipped, with their defaults switched on
    sections = re.split(r"(?m)^(?=\[)", text)
    kept = [
        s
        for s in sections
        if s.startswith(
            (
                "[agent]",
                "[alerting]\n",
                "[checks.cpu]",
                "[checks.memory]",
                "[checks.disks]",
                "[checks.crash_dumps]",
                "[checks.kernel]",
                "[checks.oom]",
                "[reboot]",
                "[notifiers.console]",
                "[metrics]",
            )
        )
    ]
    kept = [
        s.split("\n[checks.disks.thresholds]")[0].split("\n[checks.cpu.thresholds]")[0].split("\n[checks.memory.thresholds]")[0]
        for s in kept
    ]
    body = "\n".join(kept)
    body = re.sub(r"(?m)^(state_dir|runtime_dir) = .*$", "", body)
    body = re.sub(r"(?m)^(startup_grace|deescalate_after_cycles) = .*$", "", body)  # defaults derived elsewhere
    body = re.sub(r"(?m)^mounts = .*$", "", body)  # an example, not the default (all real filesystems)
    body = re.sub(r"(?m)^hostname = .*$", "", body)
    config = loads(body, "agent.toml", environ=ENV)
    assert config.alerting == shipped.alerting
    assert config.reboot == shipped.reboot

    def essentials(checks):
        return [(c.name, c.type, c.interval, c.timeout, c.thresholds, c.alerting) for c in checks]

    assert essentials(config.checks) == essentials(shipped.checks)
    from monagent.loader import Registry
    from monagent.options import option_signature

    registry = Registry()
    for check in config.checks:
        params = option_signature(registry.resolve(check.type))
        for key, value in check.options.items():
            default = params[key].default
            default = tuple(default) if isinstance(default, list) else default
            assert value == default, f"checks.{check.name}.{key}: the comment says {value!r}, the code {default!r}"
    assert config.notifiers == shipped.notifiers
    assert config.metrics == shipped.metrics


# Modules `monagent validate` has no use for: the alert state machine and the notification policy,
# the event and delivery types, the store, the HTTP stack, hashing (robots' URLs are hashed only
# when their dispatchers are built). Each was on validate's import path once (#17: start-up CPU).
NOT_FOR_VALIDATE = (
    "monagent.alerting.machine",
    "monagent.alerting.policy",
    "monagent.events",
    "monagent.store",
    "monagent.notify.dingtalk",
    "sqlite3",
    "hashlib",
    "http.client",
    "requests",
    # and the standard library's heavier modules, which validate on a good file never uses (#17):
    "logging",  # each module's logger imports it at the first line logged (monagent.lazylog)
    "difflib",  # suggestions for a misspelt key
    "shlex",  # a unit's Environment= lines, a kdump-tools file's values
)
# Also not for validate, but importlib.metadata imports them; it is used only where monagent's
# own entry_points.txt is not beside the package (an editable install, a source tree).
NOT_FOR_VALIDATE_INSTALLED = (
    "shutil",  # argparse sizes its help with it (cli.DescriptionFormatter does not)
    "threading",  # the kernel_log check's lock is _thread's
)


def test_validate_of_the_shipped_file_loads_nothing_it_does_not_use(tmp_path):
    import subprocess
    import sys

    from harness import SUBPROCESS_CWD

    config = tmp_path / "agent.toml"
    config.write_text(SHIPPED.read_text().replace("\n[agent]\n", f'\n[agent]\nstate_dir = "{tmp_path}/state"\n', 1))
    code = (
        "import sys\nfrom monagent.cli import main\n"
        f"code = main(['validate', '-c', {str(config)!r}])\n"
        f"unused = {NOT_FOR_VALIDATE!r}\n"
        "if 'importlib.metadata' not in sys.modules:\n"
        f"    unused += {NOT_FOR_VALIDATE_INSTALLED!r}\n"
        "print(code, sorted(m for m in unused if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=SUBPROCESS_CWD, capture_output=True, text=True, check=False)
    assert done.stdout.splitlines()[-1] == "0 []", done.stdout + done.stderr


NOT_FOR_CHECK = (
    "monagent.alerting.machine",
    "monagent.alerting.policy",
    "monagent.alerting.pipeline",
    "monagent.events",
    "monagent.notify.dingtalk",
    "http.client",
    "requests",
)


def test_check_of_the_shipped_file_runs_its_checks_without_the_alerting_or_delivery_code(tmp_path):
    import subprocess
    import sys

    from harness import SUBPROCESS_CWD

    config = tmp_path / "agent.toml"
    config.write_text(SHIPPED.read_text().replace("\n[agent]\n", f'\n[agent]\nstate_dir = "{tmp_path}/state"\n', 1))
    code = (
        "import sys\nfrom monagent.cli import main\n"
        f"code = main(['check', '-c', {str(config)!r}, '--json'])\n"
        f"print(sorted(m for m in {NOT_FOR_CHECK!r} if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=SUBPROCESS_CWD, capture_output=True, text=True, check=False)
    assert '"check": "disks"' in done.stdout, done.stdout + done.stderr  # the checks did run
    assert done.stdout.splitlines()[-1] == "[]", done.stdout + done.stderr
