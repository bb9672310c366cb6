"""Facts gathered once per cycle and shared by every check, and the helpers for blocking calls.

:class:`SystemFacts` lives as long as the agent: it owns the worker pool (and with it
the registry of stuck calls) and the boot id. ``facts.cycle(now, monotonic)`` gives
each scheduler cycle a fresh :class:`CycleContext`, which reads the process table, the
mount table and /proc/stat lazily, at most once, however many checks ask: twenty
process rules cost one scan. Checks run in threads, so each lazy fill holds a lock.
The scan reads process names only, unless the previous cycle's rules read the stat of
most processes (then it reads stat up front: one file per process instead of two).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, TypeVar

from monagent import procfs
from monagent.api import DiskUsage, Mount, ProcessInfo
from monagent.workers import WorkerPool

T = TypeVar("T")


class SystemFacts:
    """Long-lived: the procfs root, the mount table's path, the worker pool, the boot id."""

    def __init__(
        self,
        hostname: str,
        proc_root: Path = Path("/proc"),
        mountinfo: Optional[Path] = None,
        pool: Optional[WorkerPool] = None,
        pool_size: int = 2,
    ) -> None:
        self.hostname = hostname
        self._pool_size = pool_size
        self.proc_root = Path(proc_root)
        self.mountinfo = mountinfo if mountinfo is not None else self.proc_root / "1" / "mountinfo"
        # /proc/1 is hidden under hidepid=; the agent's own view is then the best there is.
        self.mountinfo_fallback = None if mountinfo is not None else self.proc_root / "self" / "mountinfo"
        self._pool = pool
        self._own_pool = pool is None
        self._lock = threading.Lock()
        self._boot_id: Optional[str] = None
        self.last_scan: Optional[procfs.Tally] = None  # the previous cycle's stat reads: how to scan next

    @property
    def pool(self) -> WorkerPool:
        """The worker pool, started on first use (no worker process when no check needs one)."""
        with self._lock:
            if self._pool is None:
                self._pool = WorkerPool(self._pool_size)
            return self._pool

    def cycle(self, now: float, monotonic: float) -> CycleContext:
        return CycleContext(self, now, monotonic)

    def boot_id(self) -> str:
        if self._boot_id is None:
            path = self.proc_root / "sys" / "kernel" / "random" / "boot_id"
            self._boot_id = path.read_text(encoding="utf-8").strip()
        return self._boot_id

    def close(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None and self._own_pool:
            pool.close()


class CycleContext:
    """One cycle's view of the machine (implements :class:`monagent.api.Context`)."""

    def __init__(self, facts: SystemFacts, now: float, monotonic: float) -> None:
        self.facts = facts
        self.hostname = facts.hostname
        self.now = now
        self.monotonic = monotonic
        self.proc_root = facts.proc_root
        self._lock = threading.RLock()
        self._processes: Optional[List[ProcessInfo]] = None
        self._cmdlines: Dict[int, Tuple[str, ...]] = {}
        self._mounts: Optional[List[Mount]] = None
        self._stat: Optional[Dict[str, object]] = None

    def processes(self) -> Sequence[ProcessInfo]:
        with self._lock:
            if self._processes is None:
                last, tally = self.facts.last_scan, procfs.Tally()
                self._processes = procfs.read_processes(self.proc_root, tally, with_stat=last is not None and last.stat_heavy)
                self.facts.last_scan = tally
            return self._processes

    def cmdline(self, pid: int) -> Sequence[str]:
        with self._lock:
            argv = self._cmdlines.get(pid)
            if argv is None:
                argv = self._cmdlines[pid] = procfs.read_cmdline(self.proc_root, pid)
            return argv

    def mounts(self) -> Sequence[Mount]:
        with self._lock:
            if self._mounts is None:
                self._mounts = procfs.read_mountinfo(self.facts.mountinfo, self.facts.mountinfo_fallback)
            return self._mounts

    def _stat_facts(self) -> Dict[str, object]:
        with self._lock:
            if self._stat is None:
                text = (self.proc_root / "stat").read_text(encoding="utf-8", errors="replace")
                self._stat = procfs.parse_stat(text)
            return self._stat

    def cpu_times(self) -> Any:
        """This cycle's aggregate CPU times (psutil's field names, seconds)."""
        return self._stat_facts()["cpu_times"]

    def cpu_count(self) -> int:
        """Online CPUs, from the per-CPU lines of /proc/stat."""
        count = self._stat_facts()["cpu_count"]
        assert isinstance(count, int)
        return count

    def boot_time(self) -> float:
        btime = self._stat_facts()["btime"]
        assert isinstance(btime, float)
        return btime

    def boot_id(self) -> str:
        return self.facts.boot_id()

    def disk_usage(self, path: str, timeout: float = 5.0) -> DiskUsage:
        """statvfs in a worker; a mount that hangs costs one worker until it answers again."""
        return self.facts.pool.call(procfs.statvfs_usage, path, timeout=timeout, key=("statfs", path), what=f"statfs of {path}")

    def run_blocking(self, func: Callable[..., T], *args: Any, timeout: float = 10.0) -> T:
        return self.facts.pool.call(func, *args, timeout=timeout)
