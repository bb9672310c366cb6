"""``monagent install`` / ``uninstall`` into a temporary root: files, modes, ExecStart, manifest."""

from __future__ import annotations

import contextlib
import grp
import io
import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import NOBODY, ROOT, run_as, run_monagent

from monagent import cli
from monagent.install import Action, InstallError, install, monagent_command, placement_problems, render_unit, uninstall

UNIT = Path("etc/systemd/system/monagent.service")
SYSUSERS = Path("etc/sysusers.d/monagent.conf")
CONFIG = Path("etc/monagent/agent.toml")
MANIFEST = Path("etc/monagent/.install-manifest")
CONFIG_TEXT = '[agent]\nlog_level = "info"\n'


def next_steps(program: str):
    return [
        "Next, as root on the target system:",
        "  systemd-sysusers /etc/sysusers.d/monagent.conf",
        "  chgrp monagent /etc/monagent/agent.toml",
        f"  {program} validate -c /etc/monagent/agent.toml",
        "  systemctl daemon-reload",
        "  systemctl enable --now monagent.service",
        "  journalctl -u monagent.service -f",
        f"Then send a test message to your group: {program} notify-test -c /etc/monagent/agent.toml",
    ]


no_monagent_group = pytest.mark.skipif(
    any(g.gr_name == "monagent" for g in grp.getgrall()), reason="this host already has a monagent group"
)


@pytest.fixture
def source(tmp_path) -> Path:
    path = tmp_path / "shipped-agent.toml"
    path.write_text(CONFIG_TEXT, encoding="utf-8")
    return path


@pytest.fixture
def root(tmp_path) -> Path:
    path = tmp_path / "root"
    path.mkdir()
    return path


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def exec_start(root: Path) -> str:
    return next(line for line in (root / UNIT).read_text().splitlines() if line.startswith("ExecStart="))


def test_install_puts_unit_sysusers_and_config_in_place_with_their_modes(root, source):
    report = install(root, command=["/opt/monagent/bin/monagent"], config_source=source)
    assert [(s.action, s.path) for s in report.steps] == [
        (Action.CREATED, root / UNIT),
        (Action.CREATED, root / SYSUSERS),
        (Action.CREATED, root / CONFIG),
    ]
    assert (mode(root / UNIT), mode(root / SYSUSERS), mode(root / CONFIG), mode(root / MANIFEST)) == (0o644, 0o644, 0o640, 0o600)
    assert exec_start(root) == "ExecStart=/opt/monagent/bin/monagent run --config /etc/monagent/agent.toml"
    assert (root / SYSUSERS).read_text() == (ROOT / "systemd/monagent-sysusers.conf").read_text()
    assert (root / CONFIG).read_text() == CONFIG_TEXT
    assert (root / CONFIG).stat().st_uid == 0


def test_the_installed_unit_differs_from_the_shipped_one_only_in_exec_start(root, source):
    install(root, command=["/opt/monagent/bin/monagent"], config_source=source)
    shipped = (ROOT / "systemd/monagent.service").read_text().splitlines()
    installed = (root / UNIT).read_text().splitlines()
    assert [(a, b) for a, b in zip(shipped, installed) if a != b] == [
        (
            "ExecStart=/usr/local/bin/monagent run --config /etc/monagent/agent.toml",
            "ExecStart=/opt/monagent/bin/monagent run --config /etc/monagent/agent.toml",
        )
    ]


def test_the_next_steps_run_the_installed_monagent_even_when_it_is_not_on_path(root, source):
    report = install(root, command=["/opt/monagent/bin/monagent"], config_source=source)
    assert "/opt/monagent/bin/monagent validate -c /etc/monagent/agent.toml" in report.commands
    report = install(root, command=["/opt/py 3/bin/python3", "-m", "monagent"], config_source=source)
    assert report.program == "'/opt/py 3/bin/python3' -m monagent"


def test_the_manifest_lists_what_install_wrote_and_not_the_config(root, source):
    install(root, command=["/opt/monagent/bin/monagent"], config_source=source)
    manifest = json.loads((root / MANIFEST).read_text())
    assert manifest["files"] == ["/etc/systemd/system/monagent.service", "/etc/sysusers.d/monagent.conf"]
    assert manifest["exec_start"] == ["/opt/monagent/bin/monagent"]


@no_monagent_group
def test_without_the_monagent_group_yet_the_next_steps_include_the_chgrp(root, source):
    report = install(root, command=["/opt/monagent/bin/monagent"], config_source=source)
    assert "chgrp monagent /etc/monagent/agent.toml" in report.commands
    assert (root / CONFIG).stat().st_gid == 0


def test_an_existing_group_gets_the_config_at_once(root, source):
    report = install(root, command=["/opt/monagent/bin/monagent"], config_source=source, group="daemon")
    assert (root / CONFIG).stat().st_gid == grp.getgrnam("daemon").gr_gid
    assert report.steps[2].note == "mode 0640, owner root:daemon"
    assert not any(c.startswith("chgrp") for c in report.commands)


def test_reinstall_keeps_an_existing_config_and_rewrites_exec_start(root, source):
    install(root, command=["/opt/monagent/bin/monagent"], config_source=source, group="daemon")
    (root / CONFIG).write_text("# edited by the administrator\n")
    os.chmod(root / CONFIG, 0o600)
    report = install(root, command=["/srv/venv/bin/monagent"], config_source=source, group="daemon")
    assert [(s.action, s.note) for s in report.steps] == [
        (Action.UPDATED, "ExecStart=/srv/venv/bin/monagent run --config /etc/monagent/agent.toml"),
        (Action.UNCHANGED, ""),
        (Action.KEPT, "it exists; not overwritten"),
    ]
    assert (root / CONFIG).read_text() == "# edited by the administrator\n"
    assert mode(root / CONFIG) == 0o600
    assert exec_start(root) == "ExecStart=/srv/venv/bin/monagent run --config /etc/monagent/agent.toml"


def test_installing_the_same_thing_twice_changes_nothing(root, source):
    install(root, command=["/opt/monagent/bin/monagent"], config_source=source)
    before = {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}
    report = install(root, command=["/opt/monagent/bin/monagent"], config_source=source)
    assert [s.action for s in report.steps] == [Action.UNCHANGED, Action.UNCHANGED, Action.KEPT]
    assert {p: p.read_bytes() for p in root.rglob("*") if p.is_file()} == before


def test_dry_run_writes_nothing(root, source):
    report = install(root, command=["/opt/monagent/bin/monagent"], config_source=source, dry_run=True)
    assert [s.action for s in report.steps] == [Action.CREATED, Action.CREATED, Action.CREATED]
    assert list(root.rglob("*")) == []


def test_a_missing_config_source_is_a_clear_error(root, tmp_path):
    with pytest.raises(InstallError) as error:
        install(root, command=["/opt/monagent/bin/monagent"], config_source=tmp_path / "nope.toml")
    assert str(error.value) == f"{tmp_path / 'nope.toml'} is not a file"
    assert list(root.rglob("*")) == []


def test_uninstall_removes_what_install_put_and_keeps_config_and_state(root, source):
    install(root, command=[shutil.which("true") or "/bin/true"], config_source=source)
    state = root / "var/lib/monagent"
    state.mkdir(parents=True)
    (state / "monagent.db").write_text("state")
    subprocess.run(["systemctl", f"--root={root}", "enable", "monagent.service"], check=True, capture_output=True)
    link = root / "etc/systemd/system/multi-user.target.wants/monagent.service"
    assert link.is_symlink()
    report = uninstall(root)
    assert [(s.action, s.path) for s in report.steps] == [
        (Action.REMOVED, link),
        (Action.REMOVED, root / UNIT),
        (Action.REMOVED, root / SYSUSERS),
        (Action.KEPT, root / "etc/monagent"),
        (Action.KEPT, state),
    ]
    assert sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() or p.is_symlink()) == [
        "etc/monagent/agent.toml",
        "var/lib/monagent/monagent.db",
    ]
    assert report.commands == ("systemctl stop monagent.service", "systemctl daemon-reload")


def test_uninstall_without_a_manifest_refuses(root):
    with pytest.raises(InstallError) as error:
        uninstall(root)
    assert str(error.value) == f"nothing to uninstall: {root / MANIFEST} does not exist (monagent install writes it)"


def test_uninstall_never_removes_a_file_the_manifest_smuggled_in(root, source):
    install(root, command=["/opt/monagent/bin/monagent"], config_source=source)
    victim = root / "etc/passwd"
    victim.write_text("root:x:0:0::/root:/bin/sh\n")
    manifest = json.loads((root / MANIFEST).read_text())
    manifest["files"].append("/etc/passwd")
    (root / MANIFEST).write_text(json.dumps(manifest))
    uninstall(root)
    assert victim.exists()


def test_systemd_sysusers_creates_the_monagent_user_from_the_installed_file(root, source):
    if not shutil.which("systemd-sysusers"):
        pytest.skip("systemd-sysusers is not installed")
    install(root, command=["/opt/monagent/bin/monagent"], config_source=source)
    subprocess.run(["systemd-sysusers", f"--root={root}"], check=True, capture_output=True)
    passwd = [line.split(":") for line in (root / "etc/passwd").read_text().splitlines()]
    user = next(fields for fields in passwd if fields[0] == "monagent")
    assert user[4:] == ["monagent monitoring agent", "/var/lib/monagent", "/usr/sbin/nologin"]
    assert int(user[2]) < 1000  # a system user
    assert any(line.startswith("monagent:x:") for line in (root / "etc/group").read_text().splitlines())


# ---------------------------------------------------------------- which monagent ExecStart runs


def test_exec_start_is_the_console_script_that_ran_the_install(tmp_path):
    script = tmp_path / "bin/monagent"
    script.parent.mkdir()
    script.write_text("#!/bin/sh\n")
    script.chmod(0o755)
    assert monagent_command(argv0=str(script), executable="/usr/bin/python3") == [str(script)]


def test_a_pipx_style_symlink_is_resolved_to_the_script_in_its_venv(tmp_path):
    venv_script = tmp_path / "pipx/venvs/monagent/bin/monagent"
    venv_script.parent.mkdir(parents=True)
    venv_script.write_text("#!/bin/sh\n")
    venv_script.chmod(0o755)
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin/monagent").symlink_to(venv_script)
    assert monagent_command(argv0=str(tmp_path / "bin/monagent"), executable="/usr/bin/python3") == [str(venv_script)]


def test_under_python_dash_m_the_console_script_beside_the_venv_interpreter_is_used(tmp_path):
    venv_bin = tmp_path / "venv/bin"
    venv_bin.mkdir(parents=True)
    (venv_bin / "python3").symlink_to(sys.executable)  # a venv's interpreter is a symlink
    (venv_bin / "monagent").write_text("#!/bin/sh\n")
    (venv_bin / "monagent").chmod(0o755)
    argv0 = str(ROOT / "monagent/__main__.py")
    assert monagent_command(argv0=argv0, executable=str(venv_bin / "python3")) == [str(venv_bin / "monagent")]


def test_without_a_console_script_exec_start_runs_python_dash_m_monagent(tmp_path):
    (tmp_path / "python3").symlink_to(sys.executable)
    assert monagent_command(argv0="-c", executable=str(tmp_path / "python3")) == [str(tmp_path / "python3"), "-m", "monagent"]


def test_exec_start_quotes_a_path_with_a_space_and_escapes_specifiers():
    unit = render_unit("[Service]\nExecStart=/usr/local/bin/monagent run\n", ["/opt/my tools/monagent%1$"])
    assert unit == '[Service]\nExecStart="/opt/my tools/monagent%%1$$" run\n'


def test_the_cli_install_names_the_interpreters_console_script_in_exec_start(root, source):
    result = run_monagent("install", "--root", str(root), "--config-source", str(source))
    assert result.returncode == 0, result.stderr
    script = Path(sys.executable).parent / "monagent"
    program = str(script) if script.is_file() else f"{sys.executable} -m monagent"
    assert exec_start(root) == f"ExecStart={program} run --config /etc/monagent/agent.toml"
    lines = result.stdout.splitlines()
    assert lines[:3] == [
        f"created   {root / UNIT}  (ExecStart={program} run --config /etc/monagent/agent.toml)",
        f"created   {root / SYSUSERS}",
        f"created   {root / CONFIG}  (mode 0640)",
    ]
    if not any(g.gr_name == "monagent" for g in grp.getgrall()):
        assert lines[3:] == ["", *next_steps(program)]


def test_the_installed_console_script_puts_itself_in_exec_start(root, source):
    script = Path(sys.executable).parent / "monagent"
    if not script.is_file():
        pytest.skip("monagent is not installed as a console script beside this interpreter")
    subprocess.run([str(script), "install", "--root", str(root), "--config-source", str(source)], check=True, capture_output=True)
    assert exec_start(root) == f"ExecStart={script.resolve()} run --config /etc/monagent/agent.toml"


def test_the_cli_uninstall_reports_and_exits_0(root, source):
    install(root, command=["/opt/monagent/bin/monagent"], config_source=source)
    result = run_monagent("uninstall", "--root", str(root))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        f"removed   {root / UNIT}",
        f"removed   {root / SYSUSERS}",
        f"kept      {root / 'etc/monagent'}  (configuration)",
        f"kept      {root / 'var/lib/monagent'}  (state, if any, and the monagent user)",
        "",
        "Next, as root on the target system:",
        "  systemctl stop monagent.service",
        "  systemctl daemon-reload",
    ]


def test_the_cli_uninstall_without_an_install_exits_1(root):
    result = run_monagent("uninstall", "--root", str(root))
    assert result.returncode == 1
    assert result.stderr == (
        f"monagent uninstall: nothing to uninstall: {root / MANIFEST} does not exist (monagent install writes it)\n"
    )


def _cli_as_non_root(argv):
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = cli.main(argv)
    return code, err.getvalue()


@pytest.mark.parametrize("verb", ["install", "uninstall"])
def test_without_root_and_without_root_dir_the_cli_exits_77(verb):
    code, err = run_as(NOBODY, _cli_as_non_root, [verb])
    assert code == 77
    assert err == (
        f"monagent {verb}: must run as root (it writes to /etc); use sudo, or --root DIR to stage the files in a directory\n"
    )


def test_reinstall_warns_when_the_kept_config_shows_its_secret_to_everyone(public_tmp, source):
    root = public_tmp
    install(root, command=["/opt/monagent/bin/monagent"], config_source=source)
    (root / CONFIG).write_text('[notifiers.dingtalk.ops]\nwebhook = "https://oapi.dingtalk.com/robot/send?x=1"\n')
    os.chmod(root / CONFIG, 0o644)
    report = install(root, command=["/opt/monagent/bin/monagent"], config_source=source)
    assert report.warnings == (
        f"{root / CONFIG} holds a secret (notifiers.dingtalk.ops.webhook) and other users can "
        f"read it (mode 0644); run: chmod o-r {root / CONFIG}",
    )


def test_a_monagent_under_a_private_directory_gets_a_warning(public_tmp):
    private = public_tmp / "home"
    (private / "bin").mkdir(parents=True, mode=0o700)
    os.chmod(private, 0o700)
    errors, warnings = placement_problems([str(private / "bin/monagent")], homes=(), hidden=())
    assert errors == []
    assert warnings == [
        f"{private} is not searchable by other users, so the monagent user reaches {private / 'bin/monagent'} "
        "only through CAP_DAC_READ_SEARCH; install monagent in a venv outside it (python3 -m venv /opt/monagent)",
    ]


VENV_HINT = (
    "put monagent where every user can reach it: python3 -m venv /opt/monagent "
    "&& /opt/monagent/bin/pip install /path/to/monagent && /opt/monagent/bin/monagent install "
    "(or install the monagent .deb/.rpm package)"
)


def _script(path: Path, interpreter: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"#!{interpreter}\nimport sys\nfrom monagent.cli import main\nsys.exit(main())\n")
    path.chmod(0o755)
    return path


def test_a_venv_under_tmp_is_refused_before_anything_is_written(public_tmp, source):
    venv_script = _script(public_tmp / "venv/bin/monagent", sys.executable)
    with pytest.raises(InstallError) as caught:
        install(Path("/"), command=[str(venv_script)], config_source=source)
    message = str(caught.value)
    assert message.startswith(
        f"{venv_script} is under /tmp, which the service never sees (PrivateTmp=yes gives it an empty /tmp); " + VENV_HINT
    )
    assert message.endswith("; nothing was installed")


def test_the_cli_install_from_a_venv_under_tmp_exits_1_and_writes_nothing(public_tmp, source):
    if os.geteuid() != 0:
        pytest.skip("install without --root needs root")
    if Path("/etc/systemd/system/monagent.service").exists() or Path("/etc/sysusers.d/monagent.conf").exists():
        pytest.skip("this host has monagent installed")
    script = _script(public_tmp / "venv/bin/monagent", sys.executable)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    result = subprocess.run([str(script), "install", "--config-source", str(source)], capture_output=True, text=True, env=env)
    assert result.returncode == 1
    assert f"monagent install: {script} is under /tmp" in result.stderr
    assert "python3 -m venv /opt/monagent" in result.stderr
    assert result.stdout == ""
    assert not Path("/etc/systemd/system/monagent.service").exists()
    assert not Path("/etc/sysusers.d/monagent.conf").exists()


def test_staging_with_root_from_a_venv_under_var_tmp_warns_and_installs(root, source, tmp_path):
    script = "/var/tmp/venv/bin/monagent"  # need not exist: staged for another machine
    report = install(root, command=[script], config_source=source)
    assert (root / UNIT).is_file()
    assert report.warnings[0] == (
        f"{script} is under /var/tmp, which the service never sees (PrivateTmp=yes gives it an empty /var/tmp); "
        + VENV_HINT
        + " (the unit will not start on a system like this one)"
    )


def test_a_venv_in_a_home_directory_gets_a_loud_warning(public_tmp):
    home = public_tmp / "alice"
    script = _script(home / ".venv/bin/monagent", "/usr/bin/python3")
    errors, warnings = placement_problems([str(script)], homes=[home], hidden=())
    assert errors == []
    assert warnings == [
        f"{script} is in a home directory ({home}): the service reads it read-only (ProtectHome=read-only), "
        "a private home hides it from the monagent user, and it goes away with its user; " + VENV_HINT
    ]


def test_a_script_whose_interpreter_lives_under_root_is_warned_about(public_tmp):
    # pyenv or a venv made from it: the script is fine, the python it starts is in /root.
    script = _script(public_tmp / "opt/bin/monagent", "/root/.pyenv/versions/3.11.7/bin/python3")
    errors, warnings = placement_problems([str(script)], hidden=())
    assert errors == []
    assert len(warnings) == 1
    assert warnings[0].startswith("/root/.pyenv/versions/3.11.7/bin/python3 is in a home directory (/root): ")


def test_a_symlink_on_path_is_followed_to_where_the_venv_really_is(public_tmp):
    target = _script(public_tmp / "venv/bin/monagent", "/usr/bin/python3")
    link = public_tmp / "usr/local/bin/monagent"
    link.parent.mkdir(parents=True)
    link.symlink_to(target)
    errors, _warnings = placement_problems([str(link)], homes=(), hidden=(public_tmp / "venv",))
    venv = public_tmp / "venv"
    assert [e.split(";")[0] for e in errors] == [
        f"{target} is under {venv}, which the service never sees (PrivateTmp=yes gives it an empty {venv})"
    ]


def test_an_invalid_config_source_is_refused_with_its_problems_and_nothing_is_installed(root, tmp_path):
    bad = tmp_path / "agent.toml"
    bad.write_text('[agent]\nlog_level = "loud"\n\n[alerting]\nfire_after_cycles = 0\n', encoding="utf-8")
    result = run_monagent("install", "--root", str(root), "--config-source", str(bad))
    assert result.returncode == 78
    assert result.stderr.splitlines() == [
        f"monagent install: {bad} is not a valid configuration",
        f'{bad}:2: agent.log_level: must be one of debug, info, warning, error; got "loud"',
        f"{bad}:5: alerting.fire_after_cycles: must be an integer of at least 1, got 0",
        "monagent: 2 configuration problems; nothing was installed",
    ]
    assert result.stdout == ""
    assert list(root.iterdir()) == []


def test_a_config_source_that_needs_the_services_environment_installs_with_a_warning(root, tmp_path, monkeypatch):
    monkeypatch.delenv("DINGTALK_URL", raising=False)
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    source = tmp_path / "agent.toml"
    source.write_text(
        '[notifiers.dingtalk.ops]\nwebhook = "${DINGTALK_URL}"\nsecret_credential = "dingtalk-secret"\n', encoding="utf-8"
    )
    report = install(root, command=["/opt/monagent/bin/monagent"], config_source=source)
    assert (root / CONFIG).read_bytes() == source.read_bytes()
    assert [w for w in report.warnings if "not checked now" in w] == [
        f"{source}:2: notifiers.dingtalk.ops.webhook: resolved at service start from $DINGTALK_URL (set for the "
        "service only): not checked now",
        f"{source}:3: notifiers.dingtalk.ops.secret_credential: resolved at service start from "
        "LoadCredential=dingtalk-secret:... in the unit: not checked now",
    ]


def test_the_uninstall_example_stops_and_disables_first_and_reloads_systemd_last():
    result = run_monagent("uninstall", "--help")
    assert result.stdout.endswith(
        "example:\n  sudo systemctl disable --now monagent && sudo monagent uninstall && sudo systemctl daemon-reload\n"
    )
    docs = (Path(__file__).resolve().parent.parent / "docs" / "systemd.md").read_text(encoding="utf-8")
    assert "systemctl disable --now monagent && monagent uninstall && systemctl daemon-reload" in docs
