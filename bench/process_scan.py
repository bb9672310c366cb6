"""CPU cost of one process-table scan: monagent's /proc reader against psutil.process_iter.

Usage: python bench/process_scan.py [--sizes 75,500,2000] [--rounds 30]
       python bench/process_scan.py --spawn 2000      # one size: this many extra processes

For each size (the total number of processes on the machine, reached by spawning idle
``sleep`` processes, all killed at the end; a size below what is already running is
measured as it is) it measures process CPU time per scan for: monagent.procfs.read_processes
(names only: comm), the same plus the state of every process (stat, what the scan read
before stat became lazy), the same plus the uid of every process (status), a raw read of
every /proc/PID/comm (the lower bound of any scan), a cycle of 20 name rules + 1 user rule
through the context, a cycle of the reference config's 5 rules (4 names, 1 command-line
regex, as bench_agent.py runs them), the same 5 rules with psutil as bench/floor.py does
them, and psutil.process_iter with name/status/ppid/uids (cache cleared, and cached).
monit's cost at the same sizes comes from ``bench_agent.py --processes N``, which runs
monit, the agent and the floor side by side.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Dict, List

import psutil
from bench_agent import CMDLINE_RULE, SERVICES, kill_all, start_services
from floor import process_rules
from monagent.checks.process import ProcessCheck

from monagent.context import SystemFacts
from monagent.procfs import read_processes, read_small


def per_call_ms(func, rounds: int) -> float:
    start = time.process_time()
    for _ in range(rounds):
        func()
    return (time.process_time() - start) / rounds * 1000


def raw_comm() -> int:
    """Every /proc/PID/comm, read and decoded: what any scan must pay at least."""
    names = 0
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                read_small(f"/proc/{entry}/comm").decode()
            except OSError:
                continue
            names += 1
    return names


def running() -> int:
    return sum(1 for entry in os.listdir("/proc") if entry.isdigit())


def measure(rounds: int) -> Dict[str, float]:
    facts = SystemFacts("bench")
    rules = [ProcessCheck(name=f"daemon{n}") for n in range(20)] + [ProcessCheck(name="sleep", user="root")]
    reference = [ProcessCheck(name=name) for name in SERVICES[:-1]] + [ProcessCheck(cmdline=CMDLINE_RULE)]
    patterns = [re.compile(CMDLINE_RULE)]

    def cycle(checks: List[ProcessCheck]) -> None:
        ctx = facts.cycle(time.time(), time.monotonic())
        for rule in checks:
            rule.run(ctx)

    def psutil_fresh() -> None:
        psutil.process_iter.cache_clear()
        [p.info for p in psutil.process_iter(["name", "status", "ppid", "uids"])]

    def psutil_cached() -> None:
        [p.info for p in psutil.process_iter(["name", "status", "ppid", "uids"])]

    try:
        return {
            "monagent scan (names only)": per_call_ms(lambda: read_processes(Path("/proc")), rounds),
            "monagent scan + every stat": per_call_ms(lambda: [p.state for p in read_processes(Path("/proc"))], rounds),
            "monagent scan + every uid": per_call_ms(lambda: [p.uid for p in read_processes(Path("/proc"))], rounds),
            "raw read of every comm": per_call_ms(raw_comm, rounds),
            "monagent cycle, 21 rules": per_call_ms(lambda: cycle(rules), rounds),
            "monagent cycle, 5 reference rules": per_call_ms(lambda: cycle(reference), rounds),
            "psutil floor, 5 reference rules": per_call_ms(lambda: process_rules(SERVICES[:-1], patterns), rounds),
            "psutil.process_iter (fresh)": per_call_ms(psutil_fresh, rounds),
            "psutil.process_iter (cached)": per_call_ms(psutil_cached, rounds),
        }
    finally:
        facts.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="75,500,2000", help="total process counts to measure at")
    parser.add_argument("--spawn", type=int, help="instead of --sizes: measure once with this many extra processes")
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="monagent-scan-"))
    children = start_services(tmp)  # the reference rules find their five services
    table: Dict[int, Dict[str, float]] = {}
    try:
        if args.spawn is not None:
            children += [subprocess.Popen(["sleep", "3600"]) for _ in range(args.spawn)]
            sizes: List[int] = []
            table[running()] = measure(args.rounds)
        else:
            sizes = sorted(int(size) for size in args.sizes.split(","))
        for size in sizes:
            children += [subprocess.Popen(["sleep", "3600"]) for _ in range(max(0, size - running()))]
            table[running()] = measure(args.rounds)
    finally:
        kill_all(children)
        shutil.rmtree(tmp, ignore_errors=True)
    counts = sorted(table)
    print(f"CPU ms per call (process_time, {args.rounds} rounds), by number of processes")
    print(f"  {'':34}" + "".join(f"{count:>9}" for count in counts))
    for name in table[counts[0]]:
        print(f"  {name:34}" + "".join(f"{table[count][name]:9.2f}" for count in counts))


if __name__ == "__main__":
    main()
