"""Facts gathered once per cycle and shared by every check, and the helpers for blocking calls.

:class:`SystemFacts` lives as long as the agent: it owns the worker pool (and with it
the registry of stuck calls) and the boot id. ``facts.cycle(now, monotonic)`` gives
each scheduler cycle a fresh :class:`CycleContext`, which reads the process table, the
mount table and /proc/stat lazily, at most once, however many checks ask: twenty
process rules cost one scan. Checks run in threads, so each lazy fill holds a lock.
The scan reads process names only, unless the previous cycle's rules read the stat of
most processes (then it reads stat up front: one file per process instead of two).

Blocking calls on a path (``disk_usage``, ``run_blocking(..., path=...)``) run in-process when
every step of the path lies on a local filesystem (the fstype comes from the agent's own
mountinfo): a statfs or a directory scan there costs microseconds, where a worker round trip
costs pickling, two pipe hops and a second interpreter's memory. Network and FUSE filesystems
(NFS, CIFS, Ceph, sshfs, ...; :func:`needs_worker`), autofs triggers, paths the agent cannot
place, and calls without a path (a user check asking for isolation) go to a worker process
with a hard timeout. No worker is started on a host that needs none.
"""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Sequence, Tuple, TypeVar, Union

from monagent import procfs
from monagent.api import DiskUsage, Mount, ProcessInfo

if TYPE_CHECKING:  # imported when the first worker is needed: a host without network mounts never does
    from monagent.workers import WorkerPool

T = TypeVar("T")

# Filesystems whose calls can block on something outside this kernel: a server, a daemon, a trigger.
REMOTE_FSTYPES = frozenset(
    {
        "nfs", "nfs4", "cifs", "smb3", "smbfs", "ncpfs", "ceph", "glusterfs", "lustre", "gpfs", "beegfs",
        "orangefs", "pvfs2", "afs", "coda", "9p", "virtiofs", "davfs", "ocfs2", "gfs2", "fuse", "fuseblk",
        "autofs",
    }
)  # fmt: skip
MAX_SYMLINKS = 40  # as the kernel's ELOOP limit


def needs_worker(fstype: str) -> bool:
    """Calls on this filesystem type can hang on a server or a daemon (network, cluster, FUSE, autofs)."""
    return fstype in REMOTE_FSTYPES or fstype.startswith("fuse.")


def mount_of(path: str, mounts: Sequence[Mount]) -> Optional[Mount]:
    """The mount that holds the resolved absolute ``path``: the longest mount point that contains it,
    the last one mounted when several share it (the one on top)."""
    best: Optional[Mount] = None
    for mount in mounts:
        point = mount.mountpoint
        if point in (path, "/") or path.startswith(point + "/"):
            if best is None or len(point) >= len(best.mountpoint):
                best = mount
    return best


def local_mount(path: str, mounts: Sequence[Mount]) -> Optional[Mount]:
    """The local-filesystem mount holding ``path`` with symlinks followed, or None when any step of
    the way is on a filesystem that needs a worker (or cannot be placed). Only local paths are
    ``lstat``-ed on the way, so the walk itself never touches a remote filesystem."""
    if not os.path.isabs(path):
        return None
    resolved = "/"
    pending = [part for part in path.split("/") if part]
    links = 0
    while pending:
        part = pending.pop(0)
        if part == ".":
            continue
        if part == "..":
            resolved = os.path.dirname(resolved)
            continue
        candidate = os.path.join(resolved, part)
        mount = mount_of(candidate, mounts)
        if mount is None or needs_worker(mount.fstype):
            return None
        try:
            info = os.lstat(candidate)
        except FileNotFoundError:
            return mount  # nothing below exists: the call fails at once, on a local filesystem
        except OSError:
            return None
        if stat.S_ISLNK(info.st_mode):
            links += 1
            if links > MAX_SYMLINKS:
                return None
            try:
                target = os.readlink(candidate)
            except OSError:
                return None
            if target.startswith("/"):
                resolved = "/"
            pending[:0] = [p for p in target.split("/") if p]
            continue
        resolved = candidate
    mount = mount_of(resolved, mounts)
    return None if mount is None or needs_worker(mount.fstype) else mount


class SystemFacts:
    """Long-lived: the procfs root, the mount table's path, the worker pool, the boot id."""

    def __init__(
        self,
        hostname: str,
        proc_root: Path = Path("/proc"),
        mountinfo: Optional[Path] = None,
        pool: Optional[WorkerPool] = None,
        pool_size: int = 2,
        *,
        long_lived: bool = False,
    ) -> None:
        self.hostname = hostname
        self.long_lived = long_lived  # the agent's: its checks run again (Context.long_lived)
        self._pool_size = pool_size
        self.proc_root = Path(proc_root)
        self.mountinfo = mountinfo if mountinfo is not None else self.proc_root / "1" / "mountinfo"
        # /proc/1 is hidden under hidepid=; the agent's own view is then the best there is.
        self.mountinfo_fallback = None if mountinfo is not None else self.proc_root / "self" / "mountinfo"
        self.own_mountinfo = self.proc_root / "self" / "mountinfo"  # where the agent's own calls land
        self._pool = pool
        self._own_pool = pool is None
        self._lock = threading.Lock()
        self._boot_id: Optional[str] = None
        self.last_scan: Optional[procfs.Tally] = None  # the previous cycle's stat reads: how to scan next
        self.mount_cache = procfs.MountinfoCache()  # the host's table, parsed again only when it changed
        self.own_mount_cache = procfs.MountinfoCache()

    @property
    def pool(self) -> WorkerPool:
        """The worker pool, started on first use (no worker process when no check needs one)."""
        with self._lock:
            if self._pool is None:
                from monagent.workers import WorkerPool

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
        self.long_lived = facts.long_lived
        self._lock = threading.RLock()
        self._processes: Optional[List[ProcessInfo]] = None
        self._cmdlines: Dict[int, Tuple[str, ...]] = {}
        self._mounts: Optional[Sequence[Mount]] = None
        self._stat: Optional[Dict[str, object]] = None
        self._own_mounts: Optional[Sequence[Mount]] = None

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
                self._mounts = procfs.read_mountinfo(self.facts.mountinfo, self.facts.mountinfo_fallback, self.facts.mount_cache)
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

    def is_local(self, path: str) -> bool:
        """Every step of ``path`` is on a local filesystem of the agent's own mount table."""
        with self._lock:
            if self._own_mounts is None:
                try:
                    self._own_mounts = procfs.read_mountinfo(self.facts.own_mountinfo, cache=self.facts.own_mount_cache)
                except OSError:
                    self._own_mounts = []  # nothing can be placed: every call goes to a worker
            mounts = self._own_mounts
        return local_mount(path, mounts) is not None

    def disk_usage(self, path: str, timeout: float = 5.0) -> DiskUsage:
        """statvfs: in-process on a local filesystem, else in a worker (a mount that hangs costs one
        worker until it answers again)."""
        if self.is_local(path):
            return procfs.statvfs_usage(path)
        return self.facts.pool.call(procfs.statvfs_usage, path, timeout=timeout, key=("statfs", path), what=f"statfs of {path}")

    def run_blocking(
        self, func: Callable[..., T], *args: Any, timeout: float = 10.0, path: Union[str, Sequence[str], None] = None
    ) -> T:
        """``func(*args)`` in a worker with a hard timeout; in-process when ``path`` (what it reads: a
        path or several) is on a local filesystem, every one of them."""
        paths = (path,) if isinstance(path, str) else tuple(path or ())
        if paths and all(self.is_local(p) for p in paths):
            return func(*args)
        return self.facts.pool.call(func, *args, timeout=timeout)
