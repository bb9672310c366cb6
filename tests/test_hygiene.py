"""The house rules a maintainer relies on: the design is in the repository where the code cites it,
one version source, one agent.toml, every package in the wheel, the files a project ships."""

from __future__ import annotations

import ast
import importlib.metadata
import os
import re
import sys
from pathlib import Path
from typing import Iterator, List

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.9/3.10
    import tomli as tomllib

import monagent

ROOT = Path(__file__).resolve().parent.parent
DESIGN = ROOT / "docs" / "design"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))

# The research notes the design was distilled from; outside docs/design/ only the repository's own
# pages may be cited, as docs/design/<page>.
REFERENCE = re.compile(
    r"(?P<path>[\w./-]*?)(?P<name>DECISIONS\.md|STYLE\.md|alerting\.md|kdump-layouts\.md|kdump-directory-trees\.txt"
    r"|dingtalk-robot\.md|plugins-systemd\.md|decisions\.md)"
)
SKIP_DIRS = {".git", ".venv", ".venv-plain", "build", "dist", "__pycache__", ".hypothesis", ".mypy_cache", ".ruff_cache"}
TEXT_SUFFIXES = {".py", ".md", ".toml", ".txt", ".sh", ".service", ".conf", ".yaml", ".yml", ".cfg", ".in", ".ini", ""}


def repository_text_files() -> Iterator[Path]:
    for directory, subdirs, files in os.walk(ROOT):
        subdirs[:] = [d for d in subdirs if d not in SKIP_DIRS and not d.endswith(".egg-info")]
        for name in files:
            path = Path(directory) / name
            if path.suffix in TEXT_SUFFIXES and not path.is_symlink() and path != Path(__file__).resolve():
                yield path


def test_every_design_citation_points_to_a_page_in_docs_design() -> None:
    wrong: List[str] = []
    for path in repository_text_files():
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        inside = path.parent == DESIGN
        for number, line in enumerate(text.splitlines(), 1):
            for match in REFERENCE.finditer(line):
                cited = match.group("path") + match.group("name")
                if cited.startswith("docs/design/"):
                    target = ROOT / cited
                elif inside and not match.group("path"):
                    target = DESIGN / cited
                else:
                    target = None
                if target is None or not target.is_file():
                    wrong.append(f"{path.relative_to(ROOT)}:{number}: {cited}")
    assert wrong == [], "cite the design as docs/design/<page> (a page that exists):\n" + "\n".join(wrong)


def test_the_design_pages_cover_the_decisions_the_code_cites() -> None:
    pages = {p.name for p in DESIGN.glob("*.md")}
    assert {"README.md", "decisions.md", "alerting.md", "dingtalk-robot.md", "kdump-layouts.md", "plugins-systemd.md"} <= pages
    decisions = (DESIGN / "decisions.md").read_text(encoding="utf-8")
    for section in ("## 1. The check stanza", "## 2. Who decides a status", "## 4. Exit codes", "## 5. Delivery"):
        assert section in decisions
    alerting = (DESIGN / "alerting.md").read_text(encoding="utf-8")
    for section in ("## d.3", "## d.4", "## d.5", "## d.6", "## d.7", "## d.8", "## d.9", "## d.10"):
        assert section in alerting
    for page in pages:
        assert "## Sources" in (DESIGN / page).read_text(encoding="utf-8") or page == "README.md", page


def test_the_version_is_written_once_and_the_installed_metadata_agrees() -> None:
    assert "version" not in PYPROJECT["project"]
    assert PYPROJECT["project"]["dynamic"] == ["version"]
    assert PYPROJECT["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "monagent.__version__"}
    assert importlib.metadata.version("monagent") == monagent.__version__


def test_every_package_in_the_tree_is_in_the_wheel() -> None:
    listed = set(PYPROJECT["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "monagent").rglob("__init__.py")}
    found.add("monagent.checks")  # checks/ at the top level, mapped by [tool.setuptools.package-dir]
    assert found <= listed, "add these to [tool.setuptools] packages"
    mapped = PYPROJECT["tool"]["setuptools"]["package-dir"]
    assert mapped == {"monagent.checks": "checks"}
    for package in listed:  # and nothing listed that is not there (a data-only package has no __init__.py)
        assert (ROOT / mapped.get(package, package.replace(".", "/"))).is_dir(), package


def test_agent_toml_is_stored_once_and_the_package_ships_that_file() -> None:
    shipped = ROOT / "monagent" / "data" / "agent.toml"
    assert shipped.is_symlink() and shipped.resolve() == (ROOT / "agent.toml")
    for name in ("monagent.service", "monagent-sysusers.conf"):
        assert (ROOT / "monagent" / "data" / name).resolve() == ROOT / "systemd" / name
    # What `monagent install` copies, from whichever copy of monagent is under test (a wheel holds a file).
    installed = Path(monagent.__file__).resolve().parent / "data" / "agent.toml"
    assert installed.read_bytes() == (ROOT / "agent.toml").read_bytes()


def test_the_agent_does_not_import_psutil() -> None:
    """psutil left the runtime dependencies: the agent reads /proc itself (docs/design/decisions.md section 3)."""
    assert not any(dep.startswith("psutil") for dep in PYPROJECT["project"]["dependencies"])
    assert any(dep.startswith("psutil") for dep in PYPROJECT["project"]["optional-dependencies"]["test"])
    importers = []
    for path in [*ROOT.joinpath("monagent").rglob("*.py"), *ROOT.joinpath("checks").rglob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            if any(n.split(".")[0] == "psutil" for n in names):
                importers.append(str(path.relative_to(ROOT)))
    assert importers == []


def test_the_project_files_a_contributor_needs_are_there() -> None:
    license_text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert "Apache License" in license_text and "Version 2.0, January 2004" in license_text
    assert "END OF TERMS AND CONDITIONS" in license_text
    assert PYPROJECT["project"]["license"] == "Apache-2.0"
    changelog = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    assert re.search(r"^## \[?Unreleased\]?", changelog, re.MULTILINE)
    contributing = (ROOT / "CONTRIBUTING.md").read_text(encoding="utf-8")
    for topic in ("tests/run.sh", "bench/", "pre-commit", "Release"):
        assert topic in contributing, topic
    hooks = (ROOT / ".pre-commit-config.yaml").read_text(encoding="utf-8")
    for hook in ("ruff check", "ruff format", "mypy"):
        assert hook in hooks, hook
    assert "ruff format --check ." in (ROOT / "tests" / "run.sh").read_text(encoding="utf-8")
    assert ".hypothesis/" in (ROOT / ".gitignore").read_text(encoding="utf-8").splitlines()


def _starts_python_m_monagent(call: ast.Call) -> bool:
    for arg in call.args[:1]:
        if isinstance(arg, (ast.List, ast.Tuple)):
            words = [e.value for e in arg.elts if isinstance(e, ast.Constant)]
            if any(words[i : i + 2] == ["-m", "monagent"] for i in range(len(words))):
                return True
    return False


def test_every_test_that_starts_python_m_monagent_starts_it_outside_the_checkout() -> None:
    """`python -m` puts the current directory first on sys.path: started in the checkout, a subprocess
    would run the checkout's monagent/ (which has no monagent.checks) instead of the installed copy,
    and a plain `pip install .` run fails where the editable run passes (harness.SUBPROCESS_CWD)."""
    offenders: List[str] = []
    for path in sorted((ROOT / "tests").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and _starts_python_m_monagent(node):
                if not any(k.arg == "cwd" for k in node.keywords):
                    offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert offenders == []


def test_every_benchmark_script_still_imports_what_it_uses() -> None:
    """The benchmarks import monagent's internals and the test helpers, which move; no test runs them
    whole (they take minutes), so ``--help`` proves at least that each still loads (bench_dingtalk.py
    once kept calling an outbox method and a clock that had moved)."""
    import subprocess

    scripts = sorted((ROOT / "bench").glob("*.py"))
    assert scripts
    for script in scripts:
        done = subprocess.run(
            [sys.executable, str(script), "--help"], cwd=ROOT, capture_output=True, text=True, timeout=60, check=False
        )
        assert done.returncode == 0, f"{script.name}: {done.stderr[-1500:]}"


def test_monagent_defines_its_frozen_types_with_record_and_its_loggers_lazily() -> None:
    """Start-up (#17): a @dataclass(frozen=True) generates six methods at import (~0.8 ms a class),
    @record three, @config_record one; a module-level logging.getLogger imports logging (~5 ms)
    into commands that log nothing."""
    offenders = []
    for path in sorted((ROOT / "monagent").rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        for number, line in enumerate(text.splitlines(), start=1):
            if line.startswith("@dataclass(frozen=True"):
                offenders.append(f"{path.relative_to(ROOT)}:{number}: use monagent.records.record")
            if re.match(r"^log = logging\.getLogger\(", line):
                offenders.append(f"{path.relative_to(ROOT)}:{number}: use monagent.lazylog.get_logger")
    assert offenders == []
