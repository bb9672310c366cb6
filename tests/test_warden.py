"""The warden's script against real process groups: what it was told to watch dies when its pipe
closes, what it was told to release does not (a released id may name someone else's group by then)."""

from __future__ import annotations

import subprocess
import time

from monagent import warden


def _group(tmp_path, name: str) -> subprocess.Popen:
    """A group leader with a child of its own (the grandchild a plugin leaves behind)."""
    script = f"sleep 300 & echo $! > {tmp_path / name}; wait"
    return subprocess.Popen(["/bin/sh", "-c", script], start_new_session=True)


def _wait_file(path, limit: float = 10.0) -> int:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if path.exists() and path.read_text().strip():
            return int(path.read_text())
        time.sleep(0.02)
    raise AssertionError(f"{path} never written")


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_watched_groups_die_at_end_of_file_and_released_ones_live(tmp_path):
    kept, killed = _group(tmp_path, "kept"), _group(tmp_path, "killed")
    kept_child, killed_child = _wait_file(tmp_path / "kept"), _wait_file(tmp_path / "killed")
    try:
        proc = subprocess.Popen(["/bin/sh", "-c", warden.SCRIPT, warden.NAME], stdin=subprocess.PIPE)
        assert proc.stdin is not None
        proc.stdin.write(f"+ {kept.pid}\n+ 999999999\n+ {killed.pid}\n- {kept.pid}\n- 12345\ngarbage\n".encode())
        proc.stdin.close()  # what the agent's death does
        assert proc.wait(10) == 0
        assert killed.wait(10) < 0
        deadline = time.monotonic() + 10
        while _alive(killed_child) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not _alive(killed_child)  # the grandchild too: the whole group
        assert kept.poll() is None and _alive(kept_child)
    finally:
        for proc in (kept, killed):
            proc.kill()
            proc.wait(10)
        subprocess.run(["kill", "-KILL", str(kept_child), str(killed_child)], stderr=subprocess.DEVNULL, check=False)


def test_without_enable_nothing_is_started():
    warden.watch(12345)
    warden.release(12345)
    assert warden.pid() is None


def test_enabled_the_warden_starts_with_the_first_group_and_shutdown_ends_it(tmp_path):
    """What the agent does: enable() at start, a watched group, then its clean stop calls shutdown()."""
    leader = _group(tmp_path, "child")
    child = _wait_file(tmp_path / "child")
    try:
        warden.enable()
        warden.watch(leader.pid)
        started = warden.pid()
        assert started is not None and _alive(started)
        warden.shutdown()  # a group still listed is killed with it
        assert warden.pid() is None
        assert leader.wait(10) < 0
        deadline = time.monotonic() + 10
        while _alive(child) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not _alive(child) and not _alive(started)
        warden.watch(12345)  # disabled again: nothing starts
        assert warden.pid() is None
    finally:
        warden.shutdown()
        leader.kill()
        leader.wait(10)
