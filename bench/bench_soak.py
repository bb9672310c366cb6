"""The agent's memory over a long run: the shipped agent.toml with every check at 5 s, plus three process rules.

Usage (as root, from the repository):
    python bench/bench_soak.py --python /tmp/bench-venv/bin/python              # one hour
    python bench/bench_soak.py --python /tmp/bench-venv/bin/python --minutes 10

The configuration is ``bench_agent.py``'s headline one (the repository's ``agent.toml`` as shipped,
state and runtime directories in a temporary directory, three process rules watching ``sleep``
processes the bench starts), with ``interval = "5s"`` added to every check: twelve times the
work per minute of the shipped cpu check, so a leak shows twelve times sooner. Every ``--sample``
seconds it records the main process's RSS (VmRSS) and peak (VmHWM), the PSS summed over the
process and its descendants (smaps_rollup), how many processes the tree holds (a worker shows
there), and the CPU the tree used so far. The report gives the first sample, one line every
``--every`` minutes, and the last; the targets (#17) are RSS of the main process <= 32 MiB after an
hour, and PSS of the whole tree <= 32 MiB when no worker is needed.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_agent import (
    Subject,
    kill_all,
    pss_kib,
    shipped_agent_toml,
    start_services,
    stat_cpu,
    tree_pids,
)

CHECK_HEADER = re.compile(r"^\[checks\.[A-Za-z0-9_-]+\]$", re.MULTILINE)


def soak_toml(tmp: Path, interval: str) -> Path:
    """The headline configuration with ``interval`` in every check table."""
    path = shipped_agent_toml(tmp)
    text = CHECK_HEADER.sub(lambda m: f'{m.group(0)}\ninterval = "{interval}"', path.read_text())
    if not CHECK_HEADER.search(text):
        raise SystemExit(f"{path}: no [checks.NAME] table to set the interval in")
    path.write_text(text)
    return path


def status_kib(pid: int, field: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def command_line(pid: int) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return "?"
    return raw.replace(b"\0", b" ").decode(errors="replace").strip() or "(zombie or kernel thread)"


def report_tree_changes(known: Dict[int, str], pids: List[int], minute: float, first: bool) -> None:
    """A line for every process that joins the agent's tree (command line and PSS) or leaves it:
    a worker or a second follower shows which it is."""
    for pid in pids:
        if pid not in known:
            known[pid] = command_line(pid)
            if not first:
                pss = pss_kib([pid]) / 1024
                print(f"  {minute:5.1f} min  new in the tree: pid {pid} ({pss:.1f} MiB PSS) {known[pid][:160]}", file=sys.stderr)
    for pid in [p for p in known if p not in pids]:
        print(f"  {minute:5.1f} min  gone from the tree: pid {pid} {known.pop(pid)[:160]}", file=sys.stderr)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=60.0, help="length of the run (default 60)")
    parser.add_argument("--interval", default="5s", help='interval set in every check (default "5s")')
    parser.add_argument("--sample", type=float, default=30.0, help="seconds between samples (default 30)")
    parser.add_argument("--every", type=float, default=5.0, help="minutes between report lines (default 5)")
    parser.add_argument("--python", default=sys.executable, help="interpreter that runs the agent")
    parser.add_argument("--json", type=Path, help="also write every sample to this file")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (config, log)")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="monagent-soak-"))
    services = start_services(tmp)
    config = soak_toml(tmp, args.interval)
    agent = Subject("agent", [args.python, "-m", "monagent", "run", "-c", str(config)], tmp / "agent.out", tmp)
    samples: List[Dict[str, float]] = []
    started = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    print(f"soak: {args.minutes:g} min, every check at {args.interval}; work in {tmp}", file=sys.stderr)
    try:
        agent.start()
        assert agent.proc is not None
        start, k = time.monotonic(), 0
        known: Dict[int, str] = {}
        while True:
            elapsed = k * args.sample
            if elapsed > args.minutes * 60:
                break
            time.sleep(max(0.0, start + elapsed + 1.0 - time.monotonic()))  # the first sample 1 s after the start
            if agent.proc.poll() is not None:
                tail = agent.log.read_text(errors="replace")[-2000:]
                raise SystemExit(f"the agent exited with status {agent.proc.returncode}:\n{tail}")
            pids = tree_pids(agent.proc.pid)
            report_tree_changes(known, pids, elapsed / 60, first=k == 0)
            samples.append(
                {
                    "minute": round(elapsed / 60, 2),
                    "rss_mib": status_kib(agent.proc.pid, "VmRSS") / 1024,
                    "hwm_mib": status_kib(agent.proc.pid, "VmHWM") / 1024,
                    "pss_tree_mib": pss_kib(pids) / 1024,
                    "processes": len(pids),
                    "cpu_s": stat_cpu(pids),
                }
            )
            print(f"  {elapsed / 60:5.1f} min  RSS {samples[-1]['rss_mib']:.1f} MiB", file=sys.stderr, flush=True)
            k += 1
    finally:
        agent.stop()
        kill_all(services)
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)

    print(f"{started}, {os.cpu_count()} CPUs, shipped agent.toml + 3 process rules, every check at {args.interval}, "
          f"{args.minutes:g} min")  # fmt: skip
    print(f"{'minute':>6} {'RSS':>9} {'peak RSS':>9} {'PSS tree':>9} {'procs':>5} {'CPU so far':>10}")
    step = max(1, round(args.every * 60 / args.sample))
    shown = samples[::step] + ([samples[-1]] if (len(samples) - 1) % step else [])
    for s in shown:
        print(f"{s['minute']:>6.1f} {s['rss_mib']:>5.1f} MiB {s['hwm_mib']:>5.1f} MiB {s['pss_tree_mib']:>5.1f} MiB"
              f" {s['processes']:>5.0f} {s['cpu_s']:>8.2f} s")  # fmt: skip
    last_quarter = [s["rss_mib"] for s in samples if s["minute"] >= 0.75 * args.minutes]
    if last_quarter:
        print(f"RSS in the last quarter: {min(last_quarter):.1f}-{max(last_quarter):.1f} MiB; "
              f"peak {max(s['hwm_mib'] for s in samples):.1f} MiB; "
              f"PSS of the tree at most {max(s['pss_tree_mib'] for s in samples):.1f} MiB; "
              f"most processes in the tree {max(s['processes'] for s in samples):.0f}")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps({"started": started, "interval": args.interval, "samples": samples}, indent=2))


if __name__ == "__main__":
    main()
