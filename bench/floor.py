"""The floor: a bare loop making the psutil calls the reference config needs, every N seconds.

Usage: python bench/floor.py --crash-dir DIR --name svc1 ... [--cmdline REGEX ...] [--interval 10]

No scheduler, no state, no alerting, no threads: what any Python monitor doing the same
work must pay at least. One cycle reads CPU times and the load average, memory and swap,
space and inodes of the root filesystem, the process table (name rules match the process
name; command-line rules read the command line of every process, as they must), the CPU
and RSS of every matching process, and lists the crash directory.
"""

from __future__ import annotations

import argparse
import os
import re
import time
from typing import Any, Dict, List, Pattern, Sequence, Tuple

import psutil


def system_facts(previous: Any) -> Tuple[Any, float]:
    """CPU used over the interval, load, memory and swap, space and inodes of /."""
    now = psutil.cpu_times()
    busy = sum(now) - now.idle - now.iowait - (sum(previous) - previous.idle - previous.iowait)
    total = sum(now) - sum(previous)
    used = 100.0 * busy / total if total > 0 else 0.0
    psutil.getloadavg()
    psutil.cpu_count()
    psutil.virtual_memory()
    psutil.swap_memory()
    psutil.disk_usage("/")
    fs = os.statvfs("/")
    _ = (fs.f_files - fs.f_ffree) / fs.f_files if fs.f_files else 0.0
    return now, used


def process_rules(names: Sequence[str], patterns: Sequence[Pattern[str]]) -> Dict[str, int]:
    """One warm psutil scan; per-process CPU and RSS of every match."""
    counts: Dict[str, int] = {rule: 0 for rule in list(names) + [p.pattern for p in patterns]}
    for proc in psutil.process_iter(["name"]):
        matched: List[str] = [name for name in names if proc.info["name"] == name]
        if patterns:
            try:
                line = " ".join(proc.cmdline())
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                line = ""
            matched += [p.pattern for p in patterns if p.search(line)]
        if not matched:
            continue
        try:
            proc.cpu_percent()
            proc.memory_info()
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
        for rule in matched:
            counts[rule] += 1
    return counts


def crash_dir(path: str) -> int:
    try:
        with os.scandir(path) as entries:
            return sum(1 for entry in entries if entry.is_dir(follow_symlinks=False))
    except OSError:
        return -1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--interval", type=float, default=10.0)
    parser.add_argument("--crash-dir", default="/var/crash")
    parser.add_argument("--name", action="append", default=[], help="a process rule by process name")
    parser.add_argument("--cmdline", action="append", default=[], help="a process rule by command-line regex")
    args = parser.parse_args()
    patterns = [re.compile(text) for text in args.cmdline]
    previous = psutil.cpu_times()
    deadline = time.monotonic()
    while True:
        previous, _ = system_facts(previous)
        process_rules(args.name, patterns)
        crash_dir(args.crash_dir)
        deadline += args.interval
        time.sleep(max(0.0, deadline - time.monotonic()))


if __name__ == "__main__":
    main()
