"""Wall time of ``monagent --help`` and ``monagent validate``, from a regular (non-editable) install.

Usage: python bench/bench_startup.py [--venv /tmp/bench-venv] [--source .] [--runs 20] [--reuse]

Builds a fresh virtual environment (``python3 -m venv``) and ``pip install``s the
source tree into it (a copy, as a user gets it: compiled .pyc files, no editable
finder on sys.path), writes the reference agent.toml of bench_agent.py, then runs each
command ``--runs`` times and prints the median and the range of the wall time. Then one
``python -X importtime`` run of each command lists the modules that cost the most
(self time, and cumulative time of the package's own modules).

CPU (issue #17's targets): user+system time of ``python -c pass``, ``monagent validate`` and
``monagent check`` on the shipped agent.toml (state moved into a temporary directory), from the
same venv, interleaved run by run so a busy machine slows all three alike; the medians and the
ratios to ``python -c pass`` (targets: validate <= 7x, check <= 12x). ``--before /path/bin/monagent``
adds another install's validate and check to the same interleaved rounds (a before/after in one run).
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

BENCH_DIR = Path(__file__).resolve().parent
TARGET_MS = 150.0


def build_venv(venv: Path, source: Path) -> None:
    if venv.exists():
        shutil.rmtree(venv)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run(pip + [str(source)], check=True)


def wall_ms(argv: Sequence[str], runs: int, cwd: Path) -> List[float]:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        done = subprocess.run(argv, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False)
        times.append((time.perf_counter() - start) * 1000)
        if done.returncode != 0:
            raise SystemExit(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr.decode()[-500:]}")
    return times


CPU_TARGETS = {"validate": 7.0, "check": 12.0}  # times the CPU of `python -c pass`


def cpu_ms(argv: Sequence[str], cwd: Path) -> float:
    """User + system CPU of one run of ``argv`` and everything it started."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(argv, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime) * 1000


def cpu_ratios(python: Path, exe: Path, tmp: Path, runs: int, before: Optional[Path] = None) -> None:
    text = (BENCH_DIR.parent / "agent.toml").read_text()
    shipped = tmp / "shipped.toml"
    shipped.write_text(text.replace("\n[agent]\n", f'\n[agent]\nstate_dir = "{tmp}/state"\nruntime_dir = "{tmp}/run"\n', 1))
    argvs = {
        "python -c pass": [str(python), "-c", "pass"],
        "validate": [str(exe), "validate", "-c", str(shipped)],
        "check": [str(exe), "check", "-c", str(shipped)],
    }
    if before is not None:  # another install (an earlier commit), interleaved with this one
        argvs["validate (before)"] = [str(before), "validate", "-c", str(shipped)]
        argvs["check (before)"] = [str(before), "check", "-c", str(shipped)]
    spent: Dict[str, List[float]] = {name: [] for name in argvs}
    for _ in range(runs):
        for name, argv in argvs.items():
            spent[name].append(cpu_ms(argv, tmp))
    base = statistics.median(spent["python -c pass"])
    print(f"CPU (user+system, median of {runs}, interleaved), shipped agent.toml:")
    for name, values in spent.items():
        median = statistics.median(values)
        target = CPU_TARGETS.get(name)
        if target is None and name != "python -c pass":
            verdict = f"  {median / base:.1f}x pass"
        elif target is None:
            verdict = ""
        else:
            verdict = f"  {median / base:.1f}x pass (target <= {target:g}x: {'met' if median / base <= target else 'missed'})"
        print(f"  {name:22} {median:6.1f} ms{verdict}")


def import_offenders(python: Path, args: Sequence[str], cwd: Path, top: int) -> Tuple[float, List[str]]:
    """Total import time (ms) of one run and the modules with the largest self / own cumulative time."""
    done = subprocess.run(
        [str(python), "-X", "importtime", "-m", "monagent", *args],
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        check=True,
    )
    rows: List[Tuple[int, int, str]] = []
    for line in done.stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        own, cumulative, name = line[len("import time:") :].split("|")
        rows.append((int(own), int(cumulative), name.rstrip()))
    total = sum(own for own, _, _ in rows) / 1000
    by_self = sorted(rows, reverse=True)[:top]
    lines = [f"    {own / 1000:6.1f} ms self {cum / 1000:6.1f} ms cumulative  {name.strip()}" for own, cum, name in by_self]
    return total, lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--venv", type=Path, default=Path("/tmp/bench-venv"))
    parser.add_argument("--source", type=Path, default=BENCH_DIR.parent, help="what to pip install")
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--top", type=int, default=12, help="modules listed from -X importtime")
    parser.add_argument("--reuse", action="store_true", help="use the venv as it is (no rebuild)")
    parser.add_argument(
        "--before", type=Path, default=None, help="monagent executable of another install (an earlier commit) to interleave"
    )
    parser.add_argument("--cpu-runs", type=int, default=0, help="rounds of the CPU comparison (default: --runs / 2, at least 5)")
    args = parser.parse_args()
    if not args.reuse:
        print(f"building {args.venv} from {args.source}", file=sys.stderr)
        build_venv(args.venv, args.source)
    sys.path.insert(0, str(BENCH_DIR))
    from bench_agent import agent_toml

    tmp = Path(tempfile.mkdtemp(prefix="monagent-startup-"))
    try:
        (tmp / "crash").mkdir()
        config = agent_toml(tmp, tmp / "crash")
        exe, python = args.venv / "bin" / "monagent", args.venv / "bin" / "python"
        commands: Dict[str, List[str]] = {"--help": ["--help"], "validate": ["validate", "-c", str(config)]}
        print(
            f"{time.strftime('%Y-%m-%d %H:%M')}, {os.cpu_count()} CPUs, Python {sys.version.split()[0]}, "
            f"{args.runs} runs each, target <= {TARGET_MS:.0f} ms"
        )
        baseline = statistics.median(wall_ms([str(python), "-c", "pass"], args.runs, tmp))
        print(f"  {'python -c pass':22} median {baseline:6.1f} ms (the interpreter alone)")
        for name, argv in commands.items():
            times = wall_ms([str(exe), *argv], args.runs, tmp)
            median = statistics.median(times)
            verdict = "ok" if median <= TARGET_MS else "OVER TARGET"
            print(f"  monagent {name:13} median {median:6.1f} ms  (min {min(times):.1f}, max {max(times):.1f})  {verdict}")
        cpu_ratios(python, exe, tmp, args.cpu_runs or max(5, args.runs // 2), args.before)
        for name, argv in commands.items():
            total, lines = import_offenders(python, argv, tmp, args.top)
            print(f"imports of monagent {name}: {total:.1f} ms in all (with -X importtime); largest self times:")
            print("\n".join(lines))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
