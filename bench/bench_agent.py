"""monagent against monit side by side: the shipped agent.toml (the headline), or the reference work.

Usage (as root, from the repository):
    python bench/bench_agent.py                   # the shipped agent.toml + 3 process rules beside monit
    python bench/bench_agent.py --processes 2000  # the same, with sleeping processes up to ~2,000
    python bench/bench_agent.py --reference       # the reference work, 12 cycles of 10 s, with the floor
    python bench/bench_agent.py --python /tmp/bench-venv/bin/python   # the agent from another install

The headline (default): the repository's ``agent.toml`` as shipped (cpu, memory, every real
filesystem, crash dumps, OOM kills; the default splay and intervals; console receiver), with its
state and runtime directories moved into the temporary directory and three process rules added
(two by name, one by command-line regex). monit gets the equivalent monitrc: ``set daemon 30``,
``check system`` (load, cpu, wait, memory, swap), ``check filesystem`` for every filesystem the
agent's disk check reports and ``check directory`` for each crash root the kdump check scans,
both ``every 2 cycles`` (60 s, as the agent's), and three ``check process ... matching`` rules.
(monit has nothing like the OOM check; the agent's runs anyway.) CPU is read from each one's
cgroup every 10 s; the figures are CPU per 10 s: the first 30 s (start-up) apart, then the mean
over the rest and the median of 60 s windows (each holds two 30 s cycles and one 60 s cycle of
both, whatever their phase). ``--repeat N`` runs N rounds one after the other, each with monit
and the agent side by side; the ratio is taken within each round.

The reference work, for all three: CPU use, load, memory and swap; space and inodes of
``/``; five process rules (four by name, one by command-line regex) matching five
services the bench starts (``sleep`` under the names ``mbsvc1`` .. ``mbsvc5``); a crash
directory; one cycle every 10 s. The three run at the same time:

- monit (``/usr/bin/monit -I -c monitrc``, ``set daemon 10``, the same checks);
- monagent (``python -m monagent run -c agent.toml``, every check at 10 s, splay 0,
  console receiver, state in the temporary directory);
- the floor (``bench/floor.py``): the same psutil calls in a bare loop.

CPU: each of the three is started in a cgroup of its own (cgroup v1 cpuacct, else v2
cpu.stat), whose counter is in nanoseconds and includes every thread and child, even
those that exited. It is read half-way between two cycles, so each difference holds
exactly one cycle; the first cycle (start-up, imports, cold caches) is not counted.
/proc/PID/stat utime+stime of the process, its live descendants and its reaped
children (cutime+cstime) gives a cross-check over the whole run (10 ms ticks, so only
the mean is meaningful there). Without a usable cgroup the ticks are all there is.
Memory: peak RSS of the main process (VmHWM), and PSS summed over the process and its
descendants (smaps_rollup), the largest sum seen at any sample.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

BENCH_DIR = Path(__file__).resolve().parent
MONIT = "/usr/bin/monit"
SERVICES = ("mbsvc1", "mbsvc2", "mbsvc3", "mbsvc4", "mbsvc5")
CMDLINE_RULE = "mbsvc5 [0-9]+"  # the fifth rule matches the command line, not the name
TICK = os.sysconf("SC_CLK_TCK")
CGROUP_ROOTS = (Path("/sys/fs/cgroup/cpuacct"), Path("/sys/fs/cgroup/unified"), Path("/sys/fs/cgroup"))


# ---------------------------------------------------------------- reading /proc


def _stat_fields(pid: int) -> Optional[List[str]]:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2 :].split()  # fields from the state on (3rd field)


def tree_pids(root: int) -> List[int]:
    """The process and all its live descendants."""
    children: Dict[int, List[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat_fields(int(entry))
            if fields is not None:
                children.setdefault(int(fields[1]), []).append(int(entry))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, ()))
    return out


def stat_cpu(pids: Sequence[int]) -> float:
    """utime+stime+cutime+cstime (seconds) summed: every CPU second of the tree counted once."""
    total = 0
    for pid in pids:
        fields = _stat_fields(pid)
        if fields is not None:
            total += sum(int(value) for value in fields[11:15])
    return total / TICK


def pss_kib(pids: Sequence[int]) -> int:
    total = 0
    for pid in pids:
        try:
            lines = Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()
        except OSError:
            continue
        total += sum(int(line.split()[1]) for line in lines if line.startswith("Pss:"))
    return total


def vm_hwm_kib(pid: int) -> int:
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return 0
    return next((int(line.split()[1]) for line in lines if line.startswith("VmHWM:")), 0)


# ---------------------------------------------------------------- cgroups


class CpuGroup:
    """A cgroup holding one subject; ``seconds()`` is its CPU use so far, to the nanosecond."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.v1 = (path.parent / "cpuacct.usage").exists()

    @classmethod
    def create(cls, name: str) -> Optional[CpuGroup]:
        for root in CGROUP_ROOTS:
            usable = (root / "cpuacct.usage").exists() or (root / "cgroup.controllers").exists()
            if not usable:
                continue
            path = root / f"monagent-bench-{name}-{os.getpid()}"
            try:
                path.mkdir()
            except OSError:
                continue
            return cls(path)
        return None

    def join(self) -> None:
        """Called in the child before exec: the subject and all it starts belong to the group."""
        (self.path / "cgroup.procs").write_text(f"{os.getpid()}\n")

    def seconds(self) -> float:
        if self.v1:
            return int((self.path / "cpuacct.usage").read_text()) / 1e9
        for line in (self.path / "cpu.stat").read_text().splitlines():
            if line.startswith("usage_usec "):
                return int(line.split()[1]) / 1e6
        raise RuntimeError(f"no usage_usec in {self.path}/cpu.stat")

    def remove(self) -> None:
        for _ in range(50):
            try:
                self.path.rmdir()
                return
            except OSError:
                time.sleep(0.1)  # the last member is still exiting


# ---------------------------------------------------------------- the three configurations


def monitrc(tmp: Path, crash: Path) -> Path:
    lines = [
        "set daemon 10",
        f"set logfile {tmp}/monit.log",
        f"set pidfile {tmp}/monit.pid",
        f"set idfile {tmp}/monit.id",
        f"set statefile {tmp}/monit.state",
        "",
        "check system bench",
        "    if loadavg (5min) per core > 2 then alert",
        "    if cpu usage > 90% then alert",
        "    if cpu usage (wait) > 30% then alert",
        "    if memory usage > 90% then alert",
        "    if swap usage > 80% then alert",
        "",
        "check filesystem rootfs with path /",
        "    if space usage > 85% then alert",
        "    if inode usage > 85% then alert",
        "",
    ]
    for name in SERVICES:
        pattern = CMDLINE_RULE if name == SERVICES[-1] else name
        lines += [
            f'check process {name} matching "{pattern}"',
            "    if cpu usage > 90% then alert",
            "    if memory > 2 GB then alert",
            "",
        ]
    lines += [f"check directory crash with path {crash}", "    if changed timestamp then alert", ""]
    path = tmp / "monitrc"
    path.write_text("\n".join(lines))
    path.chmod(0o600)  # monit refuses a control file others can read
    return path


def agent_toml(tmp: Path, crash: Path) -> Path:
    lines = [
        "[agent]",
        f'state_dir = "{tmp}/state"',
        f'runtime_dir = "{tmp}/run"',
        "plugin_dirs = []",
        'interval = "10s"',
        'splay = "0"',
        "",
        '[checks.cpu]\ntype = "cpu"\ninterval = "10s"\n',
        '[checks.memory]\ntype = "memory"\ninterval = "10s"\n',
        '[checks.root]\ntype = "disk"\nmounts = ["/"]\ninterval = "10s"\n',
        f'[checks.crash]\ntype = "kdump"\nroots = ["{crash}"]\nread_kdump_config = false\ninterval = "10s"\n',
    ]
    for name in SERVICES:
        rule = f'cmdline = "{CMDLINE_RULE}"' if name == SERVICES[-1] else f'name = "{name}"'
        lines.append(f'[checks.{name}]\ntype = "process"\n{rule}\ninterval = "10s"\n')
    lines.append("[notifiers.console]\n")
    path = tmp / "agent.toml"
    path.write_text("\n".join(lines))
    return path


SHIPPED_RULES = ("mbsvc1", "mbsvc2", "mbsvc5")  # two by name, the last by its command line


def shipped_agent_toml(tmp: Path) -> Path:
    """The repository's agent.toml as shipped, state and runtime in ``tmp``, plus three process rules."""
    text = (BENCH_DIR.parent / "agent.toml").read_text()
    head = f'[agent]\nstate_dir = "{tmp}/state"\nruntime_dir = "{tmp}/run"\n'
    if "\n[agent]\n" not in text:
        raise SystemExit("agent.toml has no [agent] section to add the state directory to")
    text = text.replace("\n[agent]\n", "\n" + head, 1)
    for name in SHIPPED_RULES:
        rule = f'cmdline = "{CMDLINE_RULE}"' if name == SERVICES[-1] else f'name = "{name}"'
        text += f'\n[checks.{name}]\ntype = "process"\n{rule}\n'
    path = tmp / "agent.toml"
    path.write_text(text)
    return path


def shipped_subjects(python: str, config: Path) -> Dict[str, List[str]]:
    """What the shipped config's disk and kdump checks look at here (``monagent check --json``)."""
    out = subprocess.run(
        [python, "-m", "monagent", "check", "-c", str(config), "--json", "disks", "crash_dumps"],
        capture_output=True,
        text=True,
        check=False,
        cwd="/",
    )
    runs = json.loads(out.stdout)
    found: Dict[str, List[str]] = {"disks": [], "crash_dumps": []}
    for run in runs:
        for result in run["results"]:
            found[run["check"]].append(result["subject"])
    return found


def shipped_monitrc(tmp: Path, mounts: Sequence[str], crash_roots: Sequence[str]) -> Path:
    lines = [
        "set daemon 30",
        f"set logfile {tmp}/monit.log",
        f"set pidfile {tmp}/monit.pid",
        f"set idfile {tmp}/monit.id",
        f"set statefile {tmp}/monit.state",
        "",
        "check system bench",
        "    if loadavg (5min) per core > 2 then alert",
        "    if cpu usage > 90% then alert",
        "    if cpu usage (wait) > 30% then alert",
        "    if memory usage > 90% then alert",
        "    if swap usage > 80% then alert",
        "",
    ]
    for i, mount in enumerate(mounts):
        lines += [
            f"check filesystem fs{i} with path {mount}",
            "    every 2 cycles",
            "    if space usage > 85% then alert",
            "    if inode usage > 85% then alert",
            "",
        ]
    for i, root in enumerate(crash_roots):
        lines += [f"check directory crash{i} with path {root}", "    every 2 cycles", "    if changed timestamp then alert", ""]
    for name in SHIPPED_RULES:
        pattern = CMDLINE_RULE if name == SERVICES[-1] else name
        lines += [
            f'check process {name} matching "{pattern}"',
            "    if cpu usage > 90% then alert",
            "    if memory > 2 GB then alert",
            "",
        ]
    path = tmp / "monitrc"
    path.write_text("\n".join(lines))
    path.chmod(0o600)
    return path


def floor_argv(python: str, crash: Path) -> List[str]:
    argv = [python, str(BENCH_DIR / "floor.py"), "--interval", "10", "--crash-dir", str(crash)]
    for name in SERVICES[:-1]:
        argv += ["--name", name]
    return argv + ["--cmdline", CMDLINE_RULE]


# ---------------------------------------------------------------- running and sampling


@dataclass
class Subject:
    name: str
    argv: List[str]
    log: Path
    cwd: Path = Path("/")
    proc: Optional[subprocess.Popen] = None
    group: Optional[CpuGroup] = None
    precise: List[float] = field(default_factory=list)  # cgroup seconds at each sample
    ticks: List[float] = field(default_factory=list)  # /proc stat seconds at each sample
    pss_peak_kib: int = 0
    hwm_kib: int = 0
    processes: int = 0

    def start(self) -> None:
        self.group = CpuGroup.create(self.name)
        join = self.group.join if self.group is not None else None
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                self.argv,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.cwd,
                start_new_session=True,
                preexec_fn=join,  # noqa: PLW1509 - no threads here
            )

    def sample(self) -> None:
        assert self.proc is not None
        if self.proc.poll() is not None:
            tail = self.log.read_text(errors="replace")[-2000:]
            raise SystemExit(f"{self.name} exited with status {self.proc.returncode}:\n{tail}")
        pids = tree_pids(self.proc.pid)
        self.ticks.append(stat_cpu(pids))
        if self.group is not None:
            self.precise.append(self.group.seconds())
        self.pss_peak_kib = max(self.pss_peak_kib, pss_kib(pids))
        self.hwm_kib = vm_hwm_kib(self.proc.pid)
        self.processes = len(pids)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        if self.group is not None:
            self.group.remove()

    def per_cycle_ms(self) -> List[float]:
        series = self.precise or self.ticks
        return [(b - a) * 1000 for a, b in zip(series, series[1:])]

    def summary(self) -> Dict[str, object]:
        cycles = self.per_cycle_ms()
        return {
            "cpu_ms_median": statistics.median(cycles),
            "cpu_ms_min": min(cycles),
            "cpu_ms_max": max(cycles),
            "cpu_ms_mean_stat": (self.ticks[-1] - self.ticks[0]) * 1000 / len(cycles),
            "cpu_source": "cgroup" if self.precise else "proc-stat",
            "peak_rss_mib": self.hwm_kib / 1024,
            "pss_tree_mib": self.pss_peak_kib / 1024,
            "processes": self.processes,
            "cycles_ms": [round(ms, 2) for ms in cycles],
        }


def start_sleepers(total: int) -> List[subprocess.Popen]:
    """Idle processes until the machine has about ``total``."""
    missing = total - running()
    return [
        subprocess.Popen(["sleep", "86400"], stdin=subprocess.DEVNULL, start_new_session=True) for _ in range(max(0, missing))
    ]


def start_services(tmp: Path) -> List[subprocess.Popen]:
    """The five services the process rules watch: ``sleep`` under other names (comm follows the file name)."""
    bindir = tmp / "bin"
    bindir.mkdir()
    sleep = shutil.which("sleep") or "/bin/sleep"
    procs = []
    for name in SERVICES:
        (bindir / name).symlink_to(sleep)
        procs.append(subprocess.Popen([str(bindir / name), "86400"], stdin=subprocess.DEVNULL, start_new_session=True))
    return procs


def kill_all(procs: Sequence[subprocess.Popen]) -> None:
    for proc in procs:
        proc.kill()
    for proc in procs:
        proc.wait()


def running() -> int:
    return sum(1 for entry in os.listdir("/proc") if entry.isdigit())


def measure(subjects: Sequence[Subject], cycles: int, interval: float) -> int:
    """Start together; sample half-way between cycles, cycles + 1 times (the first cycle is not counted).

    Returns the largest number of processes seen at a sample.
    """
    for subject in subjects:
        subject.start()
    start = time.monotonic()
    most = 0
    for k in range(cycles + 1):
        time.sleep(max(0.0, start + interval / 2 + k * interval - time.monotonic()))
        for subject in subjects:
            subject.sample()
        most = max(most, running())
        print(f"  sample {k}/{cycles}", file=sys.stderr, flush=True)
    return most


# ---------------------------------------------------------------- report


FIRST = 30.0  # seconds of start-up reported apart
WINDOW = 60.0  # the median is taken over windows this long (each holds every check's cycle)


def per_10s(subject: Subject, times: Sequence[float]) -> Dict[str, object]:
    """CPU per 10 s from samples taken at ``times`` (seconds since start): first 30 s, mean, median of windows."""
    series = subject.precise or subject.ticks
    first_index = times.index(FIRST)
    first = series[first_index] * 1000  # from zero: a fresh cgroup, a fresh process (sample 0 may come late)
    rest = series[first_index:]
    span = times[-1] - FIRST
    step = int(WINDOW / (times[1] - times[0]))
    windows = [(rest[i + step] - rest[i]) * 1000 / (WINDOW / 10) for i in range(0, len(rest) - step, step)]
    return {
        "first_30s_ms": first,
        "mean_ms_per_10s": (rest[-1] - rest[0]) * 1000 / (span / 10),
        "median_ms_per_10s": statistics.median(windows),
        "windows_ms_per_10s": [round(w, 2) for w in windows],
        "cpu_source": "cgroup" if subject.precise else "proc-stat",
        "peak_rss_mib": subject.hwm_kib / 1024,
        "pss_tree_mib": subject.pss_peak_kib / 1024,
        "processes": subject.processes,
    }


def measure_shipped(subjects: Sequence[Subject], seconds: float) -> Tuple[List[float], int]:
    """Start together (the first sample right after the start), sample every 10 s for ``seconds``."""
    for subject in subjects:
        subject.start()
    start = time.monotonic()
    for subject in subjects:
        subject.sample()
    times, most = [0.0], 0
    k = 1
    while k * 10.0 <= seconds:
        time.sleep(max(0.0, start + k * 10.0 - time.monotonic()))
        for subject in subjects:
            subject.sample()
        times.append(k * 10.0)
        most = max(most, running())
        print(f"  {k * 10} s", file=sys.stderr, flush=True)
        k += 1
    return times, most


def report_shipped(rounds: List[Dict[str, Dict[str, object]]]) -> str:
    head = f"{'round':6} {'':6} {'first 30 s':>10} {'mean/10 s':>10} {'median/10 s':>11} {'peak RSS':>9} {'PSS tree':>9}"
    rows = [head]
    for i, results in enumerate(rounds, 1):
        for name, r in results.items():
            rows.append(
                f"{i:<6} {name:6} {r['first_30s_ms']:>7.1f} ms {r['mean_ms_per_10s']:>7.2f} ms {r['median_ms_per_10s']:>8.2f} ms"
                f" {r['peak_rss_mib']:>5.1f} MiB {r['pss_tree_mib']:>5.1f} MiB"
            )
        agent, monit = results["agent"], results["monit"]
        rows.append(
            f"{i:<6} agent/monit: mean {_ratio(agent['mean_ms_per_10s'], monit['mean_ms_per_10s'])}, "
            f"median {_ratio(agent['median_ms_per_10s'], monit['median_ms_per_10s'])}, "
            f"first 30 s {_ratio(agent['first_30s_ms'], monit['first_30s_ms'])}"
        )
    return "\n".join(rows)


def report(results: Dict[str, Dict[str, object]]) -> str:
    head = f"{'':8} {'CPU ms/cycle median (min-max)':>30} {'mean (stat)':>11} {'peak RSS':>9} {'PSS tree':>9} {'procs':>5}"
    rows = [head]
    for name, r in results.items():
        spread = f"{r['cpu_ms_median']:.2f} ({r['cpu_ms_min']:.2f}-{r['cpu_ms_max']:.2f})"
        rows.append(
            f"{name:8} {spread:>30} {r['cpu_ms_mean_stat']:>11.1f} {r['peak_rss_mib']:>5.1f} MiB"
            f" {r['pss_tree_mib']:>5.1f} MiB {r['processes']:>5}"
        )
    agent = results["agent"]
    for other in ("monit", "floor"):
        theirs = results[other]
        rows.append(
            f"agent/{other}: CPU {_ratio(agent['cpu_ms_median'], theirs['cpu_ms_median'])}, "
            f"peak RSS {_ratio(agent['peak_rss_mib'], theirs['peak_rss_mib'])}, "
            f"PSS {_ratio(agent['pss_tree_mib'], theirs['pss_tree_mib'])}"
        )
    return "\n".join(rows)


def _ratio(a: object, b: object) -> str:
    assert isinstance(a, float) and isinstance(b, float)
    return f"{a / b:.2f}x" if b else "n/a"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference", action="store_true", help="the reference work at 10 s, with the psutil floor")
    parser.add_argument("--seconds", type=float, default=270.0, help="headline: seconds per round (default 270)")
    parser.add_argument("--repeat", type=int, default=1, help="headline: rounds, monit and the agent side by side in each")
    parser.add_argument("--cycles", type=int, default=12, help="reference: cycles measured (default 12: two minutes)")
    parser.add_argument("--quick", action="store_true", help="reference: 3 cycles")
    parser.add_argument("--processes", type=int, default=0, help="start sleeping processes until about this many")
    parser.add_argument("--python", default=sys.executable, help="interpreter that runs the agent and the floor")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (configs, logs)")
    args = parser.parse_args()
    cycles = 3 if args.quick else args.cycles
    if not os.access(MONIT, os.X_OK):
        raise SystemExit(f"{MONIT} not found: apt-get install monit")
    if not args.reference:
        shipped(args)
        return
    tmp = Path(tempfile.mkdtemp(prefix="monagent-bench-"))
    crash = tmp / "crash"
    crash.mkdir()
    sleepers = start_sleepers(args.processes) if args.processes else []
    services = start_services(tmp)
    subjects = [
        Subject("monit", [MONIT, "-I", "-c", str(monitrc(tmp, crash))], tmp / "monit.out", tmp),
        Subject("agent", [args.python, "-m", "monagent", "run", "-c", str(agent_toml(tmp, crash))], tmp / "agent.out", tmp),
        Subject("floor", floor_argv(args.python, crash), tmp / "floor.out", tmp),
    ]
    try:
        print(f"measuring {cycles} cycles of 10 s; work in {tmp}", file=sys.stderr)
        total = measure(subjects, cycles, 10.0)
    finally:
        for subject in subjects:
            subject.stop()
        kill_all(services + sleepers)
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    results = {s.name: s.summary() for s in subjects}
    print(f"{time.strftime('%Y-%m-%d %H:%M')}, {os.cpu_count()} CPUs, about {total} processes, {cycles} cycles of 10 s")
    print(report(results))
    if args.json:
        args.json.write_text(json.dumps({"processes": total, "cycles": cycles, "results": results}, indent=2))


def shipped(args: argparse.Namespace) -> None:
    sleepers = start_sleepers(args.processes) if args.processes else []
    tmp = Path(tempfile.mkdtemp(prefix="monagent-bench-"))
    services = start_services(tmp)
    rounds: List[Dict[str, Dict[str, object]]] = []
    most = 0
    try:
        for i in range(args.repeat):
            work = tmp / f"round{i}"
            work.mkdir()
            config = shipped_agent_toml(work)
            found = shipped_subjects(args.python, config)
            if not found["disks"]:
                raise SystemExit("the shipped disk check found no filesystem here")
            subjects = [
                Subject("monit", [MONIT, "-I", "-c", str(shipped_monitrc(work, found["disks"], found["crash_dumps"]))],
                        work / "monit.out", work),
                Subject("agent", [args.python, "-m", "monagent", "run", "-c", str(config)], work / "agent.out", work),
            ]  # fmt: skip
            if i % 2:
                subjects.reverse()  # alternate who starts first
            print(f"round {i + 1}/{args.repeat}: {args.seconds:g} s; filesystems {found['disks']}; work in {work}",
                  file=sys.stderr)  # fmt: skip
            try:
                times, seen = measure_shipped(subjects, args.seconds)
            finally:
                for subject in subjects:
                    subject.stop()
            most = max(most, seen)
            rounds.append({s.name: per_10s(s, times) for s in sorted(subjects, key=lambda s: s.name != "monit")})
    finally:
        kill_all(services + sleepers)
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    print(f"{time.strftime('%Y-%m-%d %H:%M')}, {os.cpu_count()} CPUs, about {most} processes, shipped agent.toml + 3 rules")
    print(report_shipped(rounds))
    if args.json:
        args.json.write_text(json.dumps({"processes": most, "rounds": rounds}, indent=2))


if __name__ == "__main__":
    main()
