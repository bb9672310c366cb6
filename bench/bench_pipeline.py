"""CPU and wall time of AlertPipeline.observe (evaluation + the cycle's commit) on the reference config.

Usage: python bench/bench_pipeline.py [--cycles 1000] [--dir /tmp] [--firing]

The reference work of bench_agent.py as alert keys: cpu (2 metrics), memory (1), disk ``/``
(3), kdump (1 status) and five process rules (1 status each): 12 keys, every one sampled
each cycle with values that move a little (so last value and trend change every time) and
stay good, which is the steady state of a healthy host. ``--firing`` makes the cpu key bad
from the start (PENDING, then FIRING), to show a key with an open incident. The store is a
real SQLite database (WAL, synchronous=FULL) in a temporary directory under ``--dir``; the
clock is simulated (10 s a cycle), so the periodic write of value-only changes happens
every 6th cycle as in a real run. Prints CPU (process time) per observe call, the part of it
spent in the commit (``_commit``: serialising and the SQLite transaction), and wall time.

The floor, measured in the same run so the figure compares across machines: the least any
Python agent pays to remember the same 12 keys: each cycle a dict per key is built,
serialised with ``json.dumps`` and compared with the previous one, and every 6th cycle one
SQLite transaction (WAL, synchronous=FULL, same directory) writes the 12 rows. ``observe/floor``
is the figure to compare; the milliseconds depend on the machine.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import tempfile
import time
from pathlib import Path
from typing import Any, List

from monagent.alerting.pipeline import AlertPipeline
from monagent.api import Metric, Result, Status
from monagent.checkrun import CheckRun
from monagent.config import loads
from monagent.store import Store

PROCESSES = ("mbsvc1", "mbsvc2", "mbsvc3", "mbsvc4", "mbsvc5")


def config_text(tmp: Path) -> str:
    lines = [
        "[agent]",
        'hostname = "bench"',
        f'state_dir = "{tmp}/state"',
        f'runtime_dir = "{tmp}/run"',
        "plugin_dirs = []",
        "",
        '[checks.cpu]\ntype = "cpu"\n',
        '[checks.memory]\ntype = "memory"\n',
        '[checks.root]\ntype = "disk"\nmounts = ["/"]\n',
        f'[checks.crash]\ntype = "kdump"\nroots = ["{tmp}/crash"]\nread_kdump_config = false\n',
    ]
    lines += [f'[checks.{name}]\ntype = "process"\nname = "{name}"\n' for name in PROCESSES]
    lines.append("[notifiers.console]\n")
    return "\n".join(lines)


def runs(i: int, now: float, firing: bool) -> List[CheckRun]:
    wobble = (i % 7) * 0.1
    cpu = 97.0 if firing else 12.0 + wobble
    return [
        CheckRun(
            "cpu",
            "cpu",
            now,
            0.01,
            (Result(metrics=(Metric("used_percent", cpu, "%"), Metric("load15_per_core", 0.2 + wobble / 10))),),
        ),
        CheckRun("memory", "memory", now, 0.01, (Result(metrics=(Metric("available_percent", 60.0 - wobble, "%"),)),)),
        CheckRun(
            "root",
            "disk",
            now,
            0.01,
            (
                Result(
                    subject="/",
                    metrics=(
                        Metric("used_percent", 40.0 + wobble / 100, "%"),
                        Metric("inodes_percent", 5.0, "%"),
                        Metric("read_only", 0.0),
                    ),
                ),
            ),
        ),
        CheckRun("crash", "kdump", now, 0.01, (Result(subject="crash", status=Status.OK, reason="no crash dumps"),)),
    ] + [
        CheckRun(
            name,
            "process",
            now,
            0.01,
            (Result(status=Status.OK, reason=f"1 process ({100 + i % 3} MB)", facts={"pids": str(4000 + i % 5)}),),
        )
        for name in PROCESSES
    ]


def floor(directory: str, cycles: int) -> float:
    """CPU seconds per cycle of the floor (see the module docstring)."""
    with tempfile.TemporaryDirectory(dir=directory) as tmp:
        conn = sqlite3.connect(str(Path(tmp) / "floor.db"), isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("CREATE TABLE alerts (key TEXT PRIMARY KEY, state TEXT)")
        previous: dict = {}
        start = time.process_time()
        for i in range(cycles):
            wobble = (i % 7) * 0.1
            rows = []
            for k in range(12):
                state = {"phase": "inactive", "value": 10.0 + k + wobble, "trend": [wobble] * 4, "seq": 0}
                text = json.dumps(state, sort_keys=True)
                if previous.get(k) != text:
                    previous[k] = text
                    rows.append((f"key{k}", text))
            if i % 6 == 0:
                conn.execute("BEGIN IMMEDIATE")
                conn.executemany("INSERT OR REPLACE INTO alerts (key, state) VALUES (?, ?)", rows)
                conn.execute("COMMIT")
        spent = time.process_time() - start
        conn.close()
    return spent / cycles


def measure(directory: str, cycles: int, firing: bool) -> None:
    with tempfile.TemporaryDirectory(dir=directory) as tmp:
        cfg = loads(config_text(Path(tmp)), str(Path(tmp) / "agent.toml"), environ={})
        store = Store.open(cfg.agent.state_dir)
        wall, mono = 1_790_000_000.0, 1000.0
        pipeline = AlertPipeline(cfg, store, now=wall, monotonic=mono, boot_id="bench")
        for i in range(20):  # warm up: caches, the first write of every key
            wall, mono = wall + 10, mono + 10
            pipeline.observe(runs(i, wall, firing), wall, mono)
        spent = [0.0]
        commit = pipeline._commit

        def timed_commit(*args: Any, **kwargs: Any) -> int:
            start = time.process_time()
            try:
                return commit(*args, **kwargs)
            finally:
                spent[0] += time.process_time() - start

        pipeline._commit = timed_commit  # type: ignore[method-assign]
        cpu_start, wall_start = time.process_time(), time.perf_counter()
        for i in range(cycles):
            wall, mono = wall + 10, mono + 10
            pipeline.observe(runs(i, wall, firing), wall, mono)
        cpu, elapsed = time.process_time() - cpu_start, time.perf_counter() - wall_start
        keys, open_ = len(pipeline.states), pipeline.firing_count()
        pipeline.close(clean=True)
        store.close()
    base = floor(directory, cycles)
    print(
        f"{cycles} observe() calls, {keys} keys ({open_} open), store under {directory}: "
        f"CPU {cpu / cycles * 1000:.3f} ms/call (of which the commit {spent[0] / cycles * 1000:.3f}), "
        f"wall {elapsed / cycles * 1000:.3f} ms/call; floor {base * 1000:.3f} ms/cycle, observe/floor {cpu / cycles / base:.2f}x"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=1000)
    parser.add_argument("--dir", default=tempfile.gettempdir(), help="where the temporary state directory goes")
    parser.add_argument("--firing", action="store_true", help="keep the cpu key bad (an open incident)")
    args = parser.parse_args()
    measure(args.dir, args.cycles, args.firing)


if __name__ == "__main__":
    main()
