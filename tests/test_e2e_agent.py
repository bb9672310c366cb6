"""The real agent as a subprocess with a scripted check and the console receiver.

Flip the check: one FIRING. Restart while firing: no second FIRING. Clear: one RESOLVED.
kill -9 mid-cycle and restart: nothing lost (the committed FIRING is printed at least once),
and the next start says the previous one stopped uncleanly.
"""

from __future__ import annotations

import os
import signal
import sqlite3
from pathlib import Path
from typing import List

import pytest
from harness import AgentProcess, wait_until

PLUGIN = """
import time
from monagent.api import Check, Metric, MetricSpec, Result


class Scripted(Check):
    metrics = {"value": MetricSpec(unit="%", warning=80, critical=90)}
    interval = 0.2

    def __init__(self, *, path: str) -> None:
        self.path = path

    def run(self, ctx):
        time.sleep(0.05)
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
interval = "1s"

[alerting]
startup_grace = "0"
fire_after_cycles = 2
clear_after_cycles = 2

[checks.scripted]
type = "scripted"
path = "{root}/value"
interval = "200ms"
"""

FIRING = "FIRING critical web01 scripted value 95% (>= 90%) since"
RESOLVED = "RESOLVED web01 scripted value 10% (was critical since"


def Agent(root: Path) -> AgentProcess:
    """One ``monagent run`` on ``root``'s config, in UTC; stderr (the log) goes to ``root/agent.log``."""
    return AgentProcess(root / "agent.toml", env={"TZ": "UTC"}, log=root / "agent.log")


def alert_phase(root: Path) -> str:
    """The phase in the store, read the way ``monagent status`` reads it."""
    db = root / "state" / "state.db"
    if not db.exists():
        return ""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        row = conn.execute("SELECT json_extract(state, '$.phase') FROM alerts WHERE key LIKE 'scripted%value'")
        found = row.fetchone()
    except sqlite3.OperationalError:
        return ""
    finally:
        conn.close()
    return found[0] if found else ""


def evaluations(root: Path) -> float:
    db = root / "state" / "state.db"
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        row = conn.execute("SELECT value FROM meta WHERE key = 'last_eval_at'").fetchone()
    finally:
        conn.close()
    return float(row[0]) if row else 0.0


def count(lines: List[str], prefix: str) -> int:
    return sum(1 for line in lines if line.startswith(prefix))


@pytest.fixture
def root(tmp_path: Path) -> Path:
    plugins = tmp_path / "plugins"
    plugins.mkdir(mode=0o755)
    os.chmod(plugins, 0o755)
    (plugins / "scripted.py").write_text(PLUGIN)
    os.chmod(plugins / "scripted.py", 0o644)
    (tmp_path / "agent.toml").write_text(CONFIG.format(root=tmp_path))
    (tmp_path / "value").write_text("10")
    return tmp_path


def test_the_agent_fires_once_survives_restarts_and_resolves_once(root: Path) -> None:
    value = root / "value"
    first = Agent(root)
    try:
        wait_until(lambda: alert_phase(root) == "inactive", "the first evaluation")
        value.write_text("95")
        wait_until(lambda: count(first.lines, FIRING) == 1, "one FIRING")
        firing_at = evaluations(root)
        wait_until(lambda: evaluations(root) > firing_at + 0.5, "three more cycles while firing")
    finally:
        assert first.stop() == 0
    assert [line for line in first.lines if not line.startswith("FIRING")] == []
    assert count(first.lines, FIRING) == 1

    second = Agent(root)
    try:
        seen = evaluations(root)
        wait_until(lambda: evaluations(root) > seen + 0.5, "evaluations after the restart")
        assert count(second.lines, "FIRING") == 0  # restarted while firing: not announced again
        value.write_text("10")
        wait_until(lambda: count(second.lines, RESOLVED) == 1, "one RESOLVED")
        value.write_text("95")
        wait_until(lambda: alert_phase(root) == "firing", "the second incident committed")
    finally:
        assert second.stop(signal.SIGKILL) == -signal.SIGKILL  # mid-cycle: the check sleeps in every run
    assert count(second.lines, RESOLVED) == 1

    third = Agent(root)
    try:
        wait_until(
            lambda: any(
                line.startswith("NOTICE warning web01 monagent restarted after an unclean stop; it was last seen alive at ")
                for line in third.lines
            ),
            "the notice",
        )
        wait_until(lambda: count(second.lines + third.lines, FIRING) >= 1, "the committed FIRING, delivered")
        value.write_text("10")
        wait_until(lambda: count(third.lines, RESOLVED) == 1, "one RESOLVED of the second incident")
        resolved_at = evaluations(root)
        wait_until(lambda: evaluations(root) > resolved_at + 0.5, "more cycles after the resolve")
    finally:
        assert third.stop() == 0
    assert count(second.lines + third.lines, FIRING) in (1, 2)  # at least once; at most the one in flight again
    assert count(third.lines, RESOLVED) == 1
    assert count(third.lines, "FIRING") == count(second.lines + third.lines, FIRING) - count(second.lines, FIRING)
