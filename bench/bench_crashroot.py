"""A crash root flooded by another user: CPU, memory and log lines of the kdump check's scans (#13).

Usage (as root): python bench/bench_crashroot.py [--entries 100000] [--dir /tmp] [--passes 2]

Builds a real tree: a 1777 directory with ``--entries`` entries made by ``nobody`` (two thirds
dump-like directories, one third dump-like flat files, as a user filling /var/crash would), plus
one real dump owned by root. Then, in a fresh interpreter each (so peak RSS is the scan's own):

- ``scan``: ``scan_root`` pass after pass (each scan reads ``max_entries_per_scan`` entries and
  hands the offset to the next), reporting CPU per scan (min, mean, max), entries read per scan,
  the tracemalloc peak of one scan and the process's peak RSS against a bare interpreter's;
- ``check``: the kdump check itself (``KdumpCheck.run``) for the same number of scans, counting the
  WARNING lines it logs (one summary per scan at most) and whether the real dump was found.

The figures depend on the machine and its load; entries read per scan, the log lines and the
memory do not.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

NOBODY = 65534

CHILD = r"""
import json, logging, resource, sys, time, tracemalloc
from pathlib import Path
mode, root, scans = sys.argv[1], sys.argv[2], int(sys.argv[3])
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
out = {"rss_base_kib": base}
if mode == "scan":
    from monagent.checks.kdump_scan import ScanRequest, scan_root
    cpus, read, offset, dumps = [], [], 0, 0
    for n in range(scans):
        started = time.process_time()
        scan = scan_root(ScanRequest(root, frozenset({0}), offset=offset))
        cpus.append(time.process_time() - started)
        read.append(scan.examined)
        dumps += len(scan.dumps)
        offset = scan.next_offset
    tracemalloc.start()
    scan_root(ScanRequest(root, frozenset({0}), offset=0))
    out.update(cpu=cpus, read=read, dumps=dumps, tracemalloc_peak=tracemalloc.get_traced_memory()[1])
else:
    from monagent.checks.kdump import KdumpCheck
    from monagent.testing import FakeContext
    lines = []
    class Keep(logging.Handler):
        def emit(self, record):
            if record.levelno >= logging.WARNING:
                lines.append(record.getMessage())
    logging.getLogger("monagent.checks.kdump").addHandler(Keep())
    check = KdumpCheck(roots=[root], read_kdump_config=False)
    found = 0
    for n in range(scans):
        found += sum(len(r.occurrences) for r in check.run(FakeContext(now=time.time() + 3600)))
    out.update(warnings=len(lines), found=found, example=lines[0] if lines else "")
out["rss_peak_kib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps(out))
"""


def build(root: Path, entries: int) -> None:
    root.mkdir(mode=0o1777)
    os.chmod(root, 0o1777)
    for n in range(entries):  # as another user would make them (created here, then given to nobody)
        name = f"10.{n // 62500}.{n // 250 % 250}.{n % 250}-2026-01-21-07:24:00"
        path = root / (name if n % 3 else f"{name[:-20]}-dump.202601210724")  # a directory, or a flat HOST-dump.STAMP
        if n % 3:
            path.mkdir()
        else:
            path.touch()
        os.lchown(path, NOBODY, NOBODY)
    real = root / "202601210724"  # a real Debian dump of root's among them
    real.mkdir()
    (real / "dump.202601210724").write_bytes(b"KDUMP   \x00" * 2)
    (real / "dmesg.202601210724").write_text("[  1.0] Kernel panic - not syncing: sysrq triggered crash\n")


def run(mode: str, root: Path, scans: int) -> dict:
    argv = [sys.executable, "-c", CHILD, mode, str(root), str(scans)]
    proc = subprocess.run(argv, check=False, capture_output=True, text=True, cwd="/")
    if proc.returncode:
        raise SystemExit(proc.stderr)
    return json.loads(proc.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--dir", default=tempfile.gettempdir())
    parser.add_argument("--passes", type=int, default=2, help="full passes over the root (default 2)")
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root: the entries are made by another user (nobody)")
    from monagent.checks.kdump import KdumpCheck

    per_scan = KdumpCheck().max_entries_per_scan
    scans = args.passes * -(-(args.entries + 1) // per_scan)
    top = Path(tempfile.mkdtemp(prefix="bench-crashroot-", dir=args.dir))
    try:
        root = top / "crash"
        build(root, args.entries)
        scan, check = run("scan", root, scans), run("check", root, scans)
        cpu = scan["cpu"]
        print(f"{args.entries} entries of another user + 1 real dump, {scans} scans ({args.passes} passes), {per_scan} per scan")
        print(f"CPU per scan: min {min(cpu) * 1e3:.1f} ms, mean {sum(cpu) / len(cpu) * 1e3:.1f} ms, max {max(cpu) * 1e3:.1f} ms")
        print(f"entries read per scan: max {max(scan['read'])}; the real dump found {scan['dumps']} times")
        print(
            f"memory: tracemalloc peak of one scan {scan['tracemalloc_peak'] / 1024:.0f} KiB; peak RSS "
            f"{scan['rss_peak_kib'] / 1024:.1f} MiB (interpreter and imports alone {scan['rss_base_kib'] / 1024:.1f} MiB)"
        )
        print(f"check: {check['warnings']} WARNING lines over {scans} scans, dump occurrences {check['found']}")
        print(f"  e.g. {check['example']}")
    finally:
        shutil.rmtree(top, ignore_errors=True)


if __name__ == "__main__":
    main()
