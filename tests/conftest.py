"""Shared fixtures. Each area keeps its own fixtures in its test files."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


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
    import subprocess

    return subprocess.run([sys.executable, "-m", "monagent", *args], capture_output=True, text=True, timeout=timeout, env=env)


NOBODY = 65534


def run_as(uid: int, func, *args, gid: int = NOBODY):
    """Call ``func(*args)`` in a forked child running as ``uid`` and return its (pickled) result.

    CI runs as root, so privilege-dependent behaviour is tested with privileges dropped in a
    child (DECISIONS.md section 7). Forking after the imports means the child needs no access
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
