"""The generated packaging pieces: monagent(8) and the bash completion follow the argparse
definitions, the completion completes in a real bash, and pyproject.toml adapts to a
distribution's older setuptools. The packages themselves are built, linted, installed and
purged by packaging/ci-packages.sh (the CI stage after this suite)."""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import NOBODY, ROOT, run_as

from monagent.cli import build_parser

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.9/3.10
    import tomli as tomllib


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"monagent_packaging_{name}", ROOT / "packaging" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


clidocs = _load("clidocs")
distro_pyproject = _load("distro_pyproject")


def _commands(parser: argparse.ArgumentParser, path=()):
    """(command path, option strings) for every (sub)command of the live parser."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                flags = [f for a in sub._actions for f in a.option_strings if f not in ("-h", "--help")]
                yield (*path, name), flags
                yield from _commands(sub, (*path, name))


COMMANDS = list(_commands(build_parser()))


def _roff(text: str) -> str:
    return text.replace("-", "\\-")


# ---------------------------------------------------------------- monagent(8)


def test_the_man_page_has_a_section_for_every_command_with_every_option():
    page = clidocs.manpage(date="2026-01-01")
    sections = {}
    current = None
    for line in page.splitlines():
        if line.startswith(".SS "):
            current = line[4:]
            sections[current] = []
        elif line.startswith(".SH "):
            current = None
        elif current is not None:
            sections[current].append(line)
    assert len(COMMANDS) >= 10
    for path, flags in COMMANDS:
        body = "\n".join(sections[_roff(" ".join(path))])
        for flag in flags:
            assert f"\\fB{_roff(flag)}\\fR" in body, (path, flag)


def test_a_new_option_appears_in_the_man_page_and_the_completion_without_editing_them():
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    sub.choices["validate"].add_argument("--strictness", choices=["low", "high"], help="how strict to be")
    page = clidocs.manpage(parser, date="2026-01-01")
    assert "\\fB\\-\\-strictness\\fR \\fI{low,high}\\fR\nhow strict to be" in page
    assert '"validate/--strictness") COMPREPLY=($(compgen -W "low high" -- "$cur")); return ;;' in clidocs.bash_completion(parser)


def test_the_man_page_help_texts_are_the_parsers():
    page = clidocs.manpage(date="2026-01-01")
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    check = sub.choices["check"]
    assert clidocs._roff(check.description) in page
    nagios = next(a for a in check._actions if "--nagios" in a.option_strings)
    assert f".TP\n\\fB\\-\\-nagios\\fR\n{nagios.help}" in page


def test_the_page_date_comes_from_source_date_epoch(monkeypatch):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1767225600")  # 2026-01-01 00:00 UTC
    assert '.TH MONAGENT 8 "2026-01-01" ' in clidocs.manpage()


@pytest.mark.debian
def test_man_renders_the_page_without_a_single_warning(tmp_path):
    if not shutil.which("man"):
        pytest.skip("man-db is not installed (tests/run.sh installs it with lintian)")
    page = tmp_path / "monagent.8"
    page.write_text(clidocs.manpage(date="2026-01-01"), encoding="utf-8")
    env = dict(os.environ, LC_ALL="C.UTF-8", MANWIDTH="80")
    result = subprocess.run(
        ["man", "--warnings", "-E", "UTF-8", "-l", str(page)], capture_output=True, text=True, env=env, check=False
    )
    assert result.returncode == 0
    assert result.stderr == ""
    assert "monagent check [--config FILE] [NAME ...] [--json] [--nagios]" in result.stdout


# ---------------------------------------------------------------- bash completion


def complete(tmp_path: Path, *words: str) -> list:
    """What the generated completion offers in a real bash after ``monagent WORDS``."""
    script = tmp_path / "monagent.bash"
    script.write_text(clidocs.bash_completion(), encoding="utf-8")
    line = " ".join(("monagent", *words))
    words_array = " ".join(f"'{w}'" for w in ("monagent", *words))
    program = "\n".join(
        [
            f"source {script}",
            f"COMP_WORDS=({words_array})",
            f"COMP_CWORD={len(words)}",
            f'COMP_LINE="{line}"',
            "_monagent",
            'printf "%s\\n" "${COMPREPLY[@]}"',
        ]
    )
    result = subprocess.run(
        ["bash", "--norc", "--noprofile", "-c", program], capture_output=True, text=True, cwd=tmp_path, check=True
    )
    return sorted(w for w in result.stdout.splitlines() if w)


def test_the_completion_offers_the_commands(tmp_path):
    top = [f for a in build_parser()._actions for f in a.option_strings if f != "-h"]
    assert "--version" in top
    assert complete(tmp_path, "") == sorted([*top, *(p[0] for p, _ in COMMANDS if len(p) == 1)])
    assert complete(tmp_path, "si") == ["silence"]


def test_the_completion_offers_subcommands_and_their_options(tmp_path):
    assert complete(tmp_path, "silence", "") == ["--help", "add", "expire", "list"]
    flags = dict(COMMANDS)[("silence", "add")]
    assert complete(tmp_path, "silence", "add", "--") == sorted([*(f for f in flags if f.startswith("--")), "--help"])


def test_the_completion_offers_choices_and_files(tmp_path):
    assert complete(tmp_path, "run", "--log-level", "") == ["debug", "error", "info", "warning"]
    (tmp_path / "agent.toml").write_text("")
    (tmp_path / "stage").mkdir()
    assert complete(tmp_path, "check", "-c", "ag") == ["agent.toml"]
    assert complete(tmp_path, "install", "--root", "") == ["stage"]


def test_the_completion_offers_nothing_for_a_free_text_value(tmp_path):
    assert complete(tmp_path, "ack", "somekey", "--comment", "") == []


# ---------------------------------------------------------------- pyproject for a distribution's setuptools


PYPROJECT = (ROOT / "pyproject.toml").read_text(encoding="utf-8")


def test_with_a_current_setuptools_pyproject_is_left_as_it_is():
    text, changes = distro_pyproject.adapt(PYPROJECT, (80, 9), (7, 2))
    assert (text, changes) == (PYPROJECT, [])


def test_with_debian_12s_setuptools_the_license_becomes_a_table_and_stays_valid_toml():
    text, changes = distro_pyproject.adapt(PYPROJECT, (66, 1), (5, 9))
    data = tomllib.loads(text)
    project = data["project"]
    assert project["license"] == {"text": tomllib.loads(PYPROJECT)["project"]["license"]}
    assert "license-files" not in project
    assert data["build-system"]["requires"] == ["setuptools>=61"]
    # psutil is a test dependency only (the agent reads /proc itself); the pin follows the distribution's.
    assert [d for d in project["optional-dependencies"]["test"] if d.startswith("psutil")] == ["psutil>=5.9,<8"]
    assert len(changes) == 4
    # Everything else is untouched.
    adapted = ("license", "license-files", "optional-dependencies")
    assert {k: v for k, v in project.items() if k not in adapted} == {
        k: v for k, v in tomllib.loads(PYPROJECT)["project"].items() if k not in adapted
    }


def test_the_upstream_metadata_is_complete():
    project = tomllib.loads(PYPROJECT)["project"]
    assert project["requires-python"] == ">=3.9"
    assert project["license"] == "Apache-2.0"
    assert project["license-files"] == ["LICENSE"]
    assert (ROOT / "LICENSE").is_file()
    assert {"Homepage", "Source", "Issues", "Changelog"} <= set(project["urls"])
    assert "Programming Language :: Python :: 3.9" in project["classifiers"]
    assert not [c for c in project["classifiers"] if c.startswith("License ::")]  # setuptools >= 77 warns on them


def test_every_python_package_in_the_tree_is_in_the_wheel():
    """A new subpackage missing from [tool.setuptools] packages installs broken from the wheel."""
    config = tomllib.loads(PYPROJECT)["tool"]["setuptools"]
    listed = set(config["packages"])
    package_dir = config.get("package-dir", {})
    found = set()
    for init in ROOT.glob("monagent/**/__init__.py"):
        found.add(".".join(init.parent.relative_to(ROOT).parts))
    for name, directory in package_dir.items():
        for init in (ROOT / directory).glob("**/__init__.py"):
            found.add(".".join((name, *init.parent.relative_to(ROOT / directory).parts)))
    assert found <= listed, sorted(found - listed)


# ---------------------------------------------------------------- the NRPE recipe: check reads no secret


def _check_nagios(config: str):
    import contextlib
    import io

    from monagent import cli

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main(["check", "load", "--nagios", "-c", config])
    return code, out.getvalue(), err.getvalue()


def test_check_as_another_user_needs_the_config_but_no_secret(public_tmp):
    """What NRPE's nagios user runs: secrets in root-only files and systemd credentials it cannot
    read, and (unlike the agent) no $CREDENTIALS_DIRECTORY."""
    secret = public_tmp / "dingtalk-secret"
    secret.write_text("SECroot-only\n")
    secret.chmod(0o600)
    config = public_tmp / "agent.toml"
    config.write_text(
        '[checks.load]\ntype = "memory"\n\n'
        "[notifiers.dingtalk.ops]\n"
        'webhook_credential = "dingtalk-webhook"\n'
        f'secret_file = "{secret}"\n'
    )
    config.chmod(0o644)
    _check_nagios(str(config))  # imports what the run needs first: the child may not read this interpreter's files
    code, out, err = run_as(NOBODY, _check_nagios, str(config))
    assert code in (0, 1, 2), (out, err)
    assert out.startswith(("load OK", "load WARNING", "load CRITICAL")), out
    assert "SECroot-only" not in out + err


def test_check_as_a_user_who_cannot_read_the_config_is_unknown_and_says_why(public_tmp):
    config = public_tmp / "agent.toml"
    config.write_text('[checks.load]\ntype = "memory"\n')
    config.chmod(0o640)  # root:root here; root:monagent where the packages install it
    code, out, err = run_as(NOBODY, _check_nagios, str(config))
    assert code == 3
    assert out == (f"load UNKNOWN: {config} has 1 configuration problem; run: monagent validate -c {config}\n")
    assert f"{config}: cannot read the configuration: Permission denied" in err


def test_tests_run_sh_installs_every_build_dependency_of_the_debian_package():
    """build-all.sh builds with dpkg-buildpackage -d (no build-essential): CI must install the
    Build-Depends itself, and the .deb's Depends for installing it."""
    if not (ROOT / "debian" / "control").is_file():
        pytest.skip("no debian/ here: the sdist leaves it out (the wheel's test run in CI starts from the sdist)")
    control = (ROOT / "debian" / "control").read_text(encoding="utf-8")
    fields = {}
    key = None
    for line in control.splitlines():
        if line[:1].isspace() and key:
            fields[key] += " " + line.strip()
        elif ":" in line:
            key, _, value = line.partition(":")
            fields.setdefault(key, value.strip())
    needed = set()
    for field in ("Build-Depends", "Depends"):
        for item in fields[field].split(","):
            name = item.split("(")[0].strip().replace("debhelper-compat", "debhelper")
            if name and not name.startswith("${"):
                needed.add(name)
    run_sh = (ROOT / "tests" / "run.sh").read_text(encoding="utf-8")
    installed = set()
    for line in run_sh.splitlines():
        if line.startswith("DEBS="):
            installed.update(line.split("=", 1)[1].strip('"').replace("$DEBS", "").split())
    assert {"debhelper", "dh-python", "python3-psutil"} <= needed
    assert needed <= installed, sorted(needed - installed)
