"""CPU cost of one process-table scan: monagent's /proc reader against psutil.process_iter.

Usage: python bench/process_scan.py [--spawn 2000] [--rounds 30]

Spawns that many idle ``sleep`` processes (killed at the end), then measures process CPU
time per scan for: monagent.procfs.read_processes (stat only), the same plus the uid of
every process (status), a cycle of 20 name rules + 1 user rule through the context, and
psutil.process_iter with name/status/ppid/uids (cache cleared, and cached).
"""

from __future__ import annotations

import argparse
import subprocess
import time
from pathlib import Path

import psutil
from monagent.checks.process import ProcessCheck

from monagent.context import SystemFacts
from monagent.procfs import read_processes


def per_call_ms(func, rounds: int) -> float:
    start = time.process_time()
    for _ in range(rounds):
        func()
    return (time.process_time() - start) / rounds * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spawn", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()
    children = [subprocess.Popen(["sleep", "3600"]) for _ in range(args.spawn)]
    facts = SystemFacts("bench")
    rules = [ProcessCheck(name=f"daemon{n}") for n in range(20)] + [ProcessCheck(name="sleep", user="root")]

    def cycle() -> None:
        ctx = facts.cycle(time.time(), time.monotonic())
        for rule in rules:
            rule.run(ctx)

    def psutil_fresh() -> None:
        psutil.process_iter.cache_clear()
        [p.info for p in psutil.process_iter(["name", "status", "ppid", "uids"])]

    def psutil_cached() -> None:
        [p.info for p in psutil.process_iter(["name", "status", "ppid", "uids"])]

    try:
        count = len(read_processes(Path("/proc")))
        rows = {
            "monagent scan (stat only)": per_call_ms(lambda: read_processes(Path("/proc")), args.rounds),
            "monagent scan + every uid": per_call_ms(lambda: [p.uid for p in read_processes(Path("/proc"))],
                                                     args.rounds),
            "monagent cycle, 21 rules": per_call_ms(cycle, args.rounds),
            "psutil.process_iter (fresh)": per_call_ms(psutil_fresh, args.rounds),
            "psutil.process_iter (cached)": per_call_ms(psutil_cached, args.rounds),
        }
    finally:
        for child in children:
            child.kill()
        for child in children:
            child.wait()
        facts.close()
    print(f"{count} processes, CPU ms per call (process_time, {args.rounds} rounds)")
    for name, ms in rows.items():
        print(f"  {name:32} {ms:8.2f}")


if __name__ == "__main__":
    main()
