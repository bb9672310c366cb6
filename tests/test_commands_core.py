"""``monagent validate``, ``check`` and ``plugins`` with check types that cannot be loaded."""

from __future__ import annotations

import json
import os

import pytest

from monagent.cli import main

GOOD = """
from monagent.api import Check, Result

class Fine(Check):
    def run(self, ctx):
        return Result(subject="x")
"""


@pytest.fixture
def broken_plugins(plugin_dir, write_config):
    (plugin_dir / "broken.py").write_text("from monagent.api import Check\nclass X(Check)\n    pass\n")
    writable = plugin_dir / "shared.py"
    writable.write_text(GOOD)
    os.chmod(plugin_dir / "broken.py", 0o644)
    os.chmod(writable, 0o664)
    return write_config(f"""[agent]
plugin_dirs = ["{plugin_dir}"]

[checks.b]
type = "broken"

[checks.s]
interval = "1m"
type = "shared"
""")


def test_validate_reports_each_check_whose_type_cannot_be_loaded_with_file_line_and_key(broken_plugins, plugin_dir, capsys):
    assert main(["validate", "-c", str(broken_plugins)]) == 78
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.splitlines() == [
        f'{broken_plugins}:5: checks.b.type: check type "broken" cannot be loaded: {plugin_dir}/broken.py: '
        "SyntaxError: expected ':' (broken.py, line 2)",
        f'{broken_plugins}:9: checks.s.type: check type "shared" cannot be loaded: {plugin_dir}/shared.py: '
        f"refused: {plugin_dir}/shared.py is writable by group (mode 0664); run chmod go-w {plugin_dir}/shared.py",
        f"monagent: 2 configuration problems; {broken_plugins} is not valid",
    ]


def test_validate_accepts_the_same_plugin_once_it_is_fixed(broken_plugins, plugin_dir, capsys):
    os.chmod(plugin_dir / "shared.py", 0o644)
    (plugin_dir / "broken.py").write_text(GOOD)
    assert main(["validate", "-c", str(broken_plugins)]) == 0
    assert capsys.readouterr().out == f"{broken_plugins}: OK; 2 checks: b (broken), s (shared); receivers: console\n"


def test_check_shows_an_unloadable_type_once_as_an_unknown_row(broken_plugins, capsys):
    assert main(["check", "-c", str(broken_plugins), "b"]) == 3
    captured = capsys.readouterr()
    assert captured.out.splitlines()[1] == (
        "b      -        UNKNOWN  check type \"broken\" failed to load: SyntaxError: expected ':' (broken.py, line 2)"
    )
    assert captured.err == ""


def test_plugins_puts_the_error_last_so_the_columns_stay_aligned(broken_plugins, plugin_dir, capsys):
    assert main(["plugins", "-c", str(broken_plugins)]) == 1
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    broken = next(line for line in lines if line.startswith("broken "))
    cpu = next(line for line in lines if line.startswith("cpu "))
    assert broken.index(str(plugin_dir)) == cpu.index("entry point")
    assert broken.endswith("ERROR: SyntaxError: expected ':' (broken.py, line 2)")
    assert cpu.endswith("  ok")
    assert lines[-1] == f"plugin directories: {plugin_dir}"
    assert captured.err == ""


COUNTING = """
from pathlib import Path
from monagent.api import Check, Metric, Result

class Counting(Check):
    warmup = {warmup}

    def __init__(self, *, path: str) -> None:
        self.path = Path(path)
        self.runs = 0

    def run(self, ctx):
        self.runs += 1
        with self.path.open("a") as log:
            log.write("run\\n")
        return Result(subject="x", metrics=(Metric("runs", self.runs),))
"""


@pytest.mark.parametrize("warmup, runs", [(0.0, 1), (0.01, 2)])
def test_check_runs_a_type_with_a_warmup_once_for_a_baseline_then_reports_the_second_run(
    plugin_dir, write_config, capsys, warmup, runs
):
    (plugin_dir / "counting.py").write_text(COUNTING.format(warmup=warmup))
    os.chmod(plugin_dir / "counting.py", 0o644)
    log = plugin_dir.parent / "runs.log"
    path = write_config(f'[agent]\nplugin_dirs = ["{plugin_dir}"]\n[checks.c]\ntype = "counting"\npath = "{log}"\n')
    assert main(["check", "-c", str(path), "--nagios", "c"]) == 0
    assert capsys.readouterr().out == f"c OK: runs {runs} | 'x runs'={runs}\n"
    assert log.read_text() == "run\n" * runs


def test_a_one_shot_cpu_check_reports_its_utilisation_instead_of_warming_up(write_config, capsys):
    path = write_config('[checks.cpu]\ntype = "cpu"\n')
    main(["check", "-c", str(path), "--json", "cpu"])
    (result,) = json.loads(capsys.readouterr().out)[0]["results"]
    used = next(m for m in result["metrics"] if m["name"] == "used_percent")
    assert isinstance(used["value"], float) and 0 <= used["value"] <= 100
    assert not result["summary"].startswith("warming up")


def test_nagios_mode_says_on_stdout_why_there_is_no_result_when_the_config_is_invalid(write_config, capsys):
    path = write_config('[checks.disks]\ntype = "dsik"\n')
    assert main(["check", "-c", str(path), "--nagios", "disks"]) == 3
    captured = capsys.readouterr()
    assert captured.out == (f"disks UNKNOWN: {path} has 1 configuration problem; run: monagent validate -c {path}\n")
    assert captured.err.startswith(f'{path}:2: checks.disks.type: unknown check type "dsik"')


def test_nagios_mode_names_a_check_that_is_not_configured_on_stdout(write_config, capsys):
    path = write_config('[checks.memory]\ntype = "memory"\n')
    assert main(["check", "-c", str(path), "--nagios", "disks"]) == 3
    assert capsys.readouterr().out == f"disks UNKNOWN: no check named disks in {path}\n"


@pytest.mark.parametrize(
    "language, said",
    [("en", "/nowhere/at/all is not mounted"), ("zh", "/nowhere/at/all 未挂载")],
)
def test_check_says_its_text_fields_in_the_configured_language(write_config, tmp_path, capsys, language, said):
    state = tmp_path / "state"
    path = write_config(
        f'[agent]\nlanguage = "{language}"\nstate_dir = "{state}"\n'
        '[checks.data]\ntype = "disk"\nmounts = ["/nowhere/at/all"]\n'
        '[checks.mem]\ntype = "memory"\n'
    )
    assert main(["check", "-c", str(path)]) == 2
    table = capsys.readouterr().out
    assert f"data   /nowhere/at/all  CRITICAL  {said}" in table
    assert ("可用内存 " in table) == (language == "zh") and ("上次启动：" in table) == (language == "zh")
    assert main(["check", "-c", str(path), "--json", "data"]) == 2
    (result,) = json.loads(capsys.readouterr().out)[0]["results"]
    assert result["summary"] == said
    # the Nagios line is read by a machine: English whatever the language
    assert main(["check", "-c", str(path), "--nagios", "data"]) == 2
    assert capsys.readouterr().out == "data CRITICAL: /nowhere/at/all: /nowhere/at/all is not mounted\n"


def test_an_unknown_language_is_a_config_error_naming_the_key(write_config, capsys):
    path = write_config('[agent]\nlanguage = "fr"\n')
    assert main(["validate", "-c", str(path)]) == 78
    err = capsys.readouterr().err
    assert err.startswith(f"{path}:2: agent.language"), err


@pytest.mark.parametrize(
    "command, code, outcome",
    [
        (["validate"], 78, "{path} is not valid"),
        (["check"], 3, "no check was run"),  # UNKNOWN, as Nagios reads it
        (["notify-test"], 78, "no test message was sent"),
        (["plugins"], 78, "no plugin directory was read"),
    ],
)
def test_a_config_error_says_what_each_command_did_not_do(write_config, capsys, command, code, outcome):
    path = write_config('[agent]\nlog_level = "loud"\n')
    assert main([*command, "-c", str(path)]) == code
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith(f"{path}:2: agent.log_level: must be one of")
    assert err[-1] == "monagent: 1 configuration problem; " + outcome.format(path=path)
    assert "nothing was started" not in "\n".join(err)


GONE = """
from monagent.api import Check, CheckError

class Gone(Check):
    texts = {{"gone.missing": {{"en": "{{path}} is gone", "zh": "{{path}} 不见了"}}}}

    def run(self, ctx):
        raise CheckError(self.text("gone.missing", path="{path}"))
"""


def test_a_check_error_with_a_text_is_said_in_the_configured_language_and_logged_in_english(
    plugin_dir, write_config, capsys, tmp_path
):
    (plugin_dir / "gone.py").write_text(GONE.format(path="/srv/spool"))
    os.chmod(plugin_dir / "gone.py", 0o644)
    config = f'[agent]\nplugin_dirs = ["{plugin_dir}"]\nstate_dir = "{tmp_path / "state"}"\nlanguage = "zh"\n'
    config += '[checks.g]\ntype = "gone"\n'
    path = write_config(config)
    assert main(["check", "-c", str(path), "g"]) == 3
    assert "g      -        UNKNOWN  /srv/spool 不见了" in capsys.readouterr().out
    assert main(["check", "-c", str(path), "--json", "g"]) == 3
    (run,) = json.loads(capsys.readouterr().out)
    assert (run["error"], run["results"][0]["summary"]) == ("/srv/spool is gone", "/srv/spool 不见了")
