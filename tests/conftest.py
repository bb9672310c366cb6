"""Shared fixtures and the choice of the monagent under test. Each area keeps its own fixtures in its test files."""

from __future__ import annotations

import importlib.machinery
import os
import sys
from pathlib import Path

import pytest
from hypothesis import settings

ROOT = Path(__file__).resolve().parent.parent


def _test_the_installed_copy() -> str:
    """Make ``import monagent`` find the installed package; return where it is and how it got there.

    ``python -m pytest`` puts the current directory, the checkout, first on ``sys.path``. After an
    editable install that is right: the checkout is what is installed. After ``pip install .`` it is
    wrong: the checkout's ``monagent/`` has no ``monagent.checks`` (the install maps the top-level
    ``checks/`` there), so the tests of the built-in checks could not even be collected. When a regular
    install exists, the checkout leaves ``sys.path`` and the tests run against the installed copy,
    which is what ``pip install .`` then ``pytest`` means. Subprocesses follow the same choice because
    the harness starts them outside the checkout (``harness.SUBPROCESS_CWD``).
    """
    checkout = [entry for entry in sys.path if os.path.realpath(entry or os.curdir) == str(ROOT)]
    others = [entry for entry in sys.path if entry not in checkout]
    installed = importlib.machinery.PathFinder.find_spec("monagent", others)
    if installed is None or installed.origin is None or Path(installed.origin).resolve().parent == ROOT / "monagent":
        return "the checkout (editable install)"
    if "monagent" in sys.modules:
        raise RuntimeError("monagent was imported before tests/conftest.py could choose which copy to test")
    sys.path[:] = others
    return "an installed copy (pip install .)"


UNDER_TEST = _test_the_installed_copy()

# The helper modules (alerting_helpers, kdump_helpers, journal_helpers ...) are imported by name from
# both tests/ and tests/checks/, whatever order pytest collects the files in and whichever copy is tested.
for _helpers in (ROOT / "tests", ROOT / "tests" / "checks"):
    if str(_helpers) not in sys.path:
        sys.path.append(str(_helpers))

# Hypothesis: `ci` is derandomized (the same examples on every run, so a red build is reproducible
# and never a coin toss) and keeps no example database; `dev` explores new random examples each run
# and saves failures in .hypothesis/ (ignored by git) so they replay first next time.
# HYPOTHESIS_PROFILE picks one; CI (set by CI systems) selects `ci`.
settings.register_profile("ci", derandomize=True, database=None, deadline=None, print_blob=True)
settings.register_profile("dev", deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") else "dev"))


def pytest_report_header(config):
    import monagent

    return f"monagent {monagent.__version__} under test: {UNDER_TEST}, {Path(monagent.__file__).parent}"


@pytest.fixture
def write_config(tmp_path):
    """Write an agent.toml into tmp_path (with a private state dir) and return its path."""

    def write(text: str, name: str = "agent.toml") -> Path:
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        return path

    return write


@pytest.fixture
def plugin_dir(tmp_path):
    directory = tmp_path / "checks.d"
    directory.mkdir(mode=0o755)
    os.chmod(directory, 0o755)
    return directory


def run_monagent(*args: str, env=None, timeout: float = 60):
    """``monagent ARGS`` as a subprocess (the harness's, so it runs the copy under test)."""
    from harness import monagent

    return monagent(*args, env=env, timeout=timeout)


NOBODY = 65534


def run_as(uid: int, func, *args, gid: int = NOBODY):
    """Call ``func(*args)`` in a forked child running as ``uid`` and return its (pickled) result.

    CI runs as root, so privilege-dependent behaviour is tested with privileges dropped in a
    child (docs/design/decisions.md section 7). Forking after the imports means the child needs no access
    to the interpreter's files, which may sit under a root-only home directory.
    """
    import pickle

    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child
        os.close(read_fd)
        try:
            os.setgroups([])
            os.setgid(gid)
            os.setuid(uid)
            payload = pickle.dumps(("ok", func(*args)))
        except BaseException as exc:  # report anything to the parent; the child must not run pytest on
            payload = pickle.dumps(("error", f"{type(exc).__name__}: {exc}"))
        with os.fdopen(write_fd, "wb") as out:
            out.write(payload)
        os._exit(0)
    os.close(write_fd)
    with os.fdopen(read_fd, "rb") as pipe:
        data = pipe.read()
    os.waitpid(pid, 0)
    kind, value = pickle.loads(data)
    if kind == "error":
        raise AssertionError(f"in the child running as uid {uid}: {value}")
    return value


@pytest.fixture
def public_tmp():
    """A temporary directory other users can traverse (pytest's own tmp_path is root-only)."""
    import shutil
    import tempfile

    path = Path(tempfile.mkdtemp(prefix="monagent-test-"))
    os.chmod(path, 0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)
