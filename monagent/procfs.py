"""Reading /proc directly: the process table, mountinfo, CPU times, boot facts.

Every function takes the procfs root, so tests point it at a captured tree
(``tests/data/proc``). The process scan is the agent's hot path: it reads one small
file per process (``comm``, the name) with ``os.open``/``os.read``, leaves ``stat``
(state, ppid, CPU, RSS), ``status`` (the uid) and ``cmdline`` until a rule asks for
them, and builds no objects it does not return. At 2,000 processes the names cost about
half of what reading every ``stat`` does, and a tenth of ``psutil.process_iter``. When
the rules read the stat of most processes anyway (a user rule matching most of them),
the context has the next scan read ``stat`` instead of ``comm`` (:class:`Tally`).
"""

from __future__ import annotations

import os
import re
import threading
from collections import namedtuple
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from monagent.api import DiskUsage, Mount, ProcessInfo

CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096

#: psutil's field names, so a check can treat this like ``psutil.cpu_times()``.
CpuTimes = namedtuple("CpuTimes", "user nice system idle iowait irq softirq steal guest guest_nice")

_GONE = (FileNotFoundError, ProcessLookupError, PermissionError, NotADirectoryError)


def read_small(path: str) -> bytes:
    """One read of a small procfs file (they are generated in one go; 16 KiB is plenty)."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        return os.read(fd, 16384)
    finally:
        os.close(fd)


class Tally:
    """How many rows of one scan had their stat read: tells the next scan whether to read it up front."""

    __slots__ = ("rows", "stats")

    def __init__(self) -> None:
        self.rows = 0
        self.stats = 0  # counted without a lock: a lost increment only blurs the share

    @property
    def stat_heavy(self) -> bool:
        """More than half the rows: one stat per process beats a comm and then a stat for most."""
        return self.stats * 2 > self.rows


class _Row(ProcessInfo):
    """A process-table row that knows only its pid and name until a rule looks closer.

    ``ppid``, ``state``, ``cpu_seconds``, ``rss_bytes`` and ``started`` come from one
    read of /proc/PID/stat on first use of any of them, and ``uid`` from /proc/PID/status
    on first use (status is the costliest file: the kernel formats ~50 lines for it).
    Most rules match by name, so stat is read for their matches only. A process gone by
    then reads as state ``"X"`` (dead) with zero figures; its uid is -1. One that exec'd
    in between keeps the name the scan saw (a stat read with the scan would have been as
    stale: exec keeps the pid and the start time).
    """

    @property
    def ppid(self) -> int:
        return (self.__dict__.get("_stat") or self._fill())[0]

    @property
    def state(self) -> str:
        return (self.__dict__.get("_stat") or self._fill())[1]

    @property
    def cpu_seconds(self) -> float:
        return (self.__dict__.get("_stat") or self._fill())[2]

    @property
    def rss_bytes(self) -> int:
        return (self.__dict__.get("_stat") or self._fill())[3]

    @property
    def started(self) -> int:
        return (self.__dict__.get("_stat") or self._fill())[4]

    @property
    def uid(self) -> int:
        cached = self.__dict__.get("_uid")
        if cached is None:
            cached = self.__dict__["_uid"] = _read_uid(self.__dict__["_base"])
        return cached

    def _fill(self) -> _Stat:
        """Parse stat once (read now, or kept raw by a stat-first scan); one tuple, so threads see a whole set."""
        fields = self.__dict__
        raw = fields.pop("_raw", None)
        stat = fields["_stat"] = _read_stat(fields["_base"]) if raw is None else _parse_stat(raw)
        fields["_tally"].stats += 1
        return stat


#: ppid, state, cpu_seconds, rss_bytes, started
_Stat = Tuple[int, str, float, int, int]
_DEAD: _Stat = (0, "X", 0.0, 0, 0)


def _read_stat(base: str) -> _Stat:
    try:
        return _parse_stat(read_small(base + "stat"))
    except _GONE:
        return _DEAD  # exited after its name was read


def _parse_stat(stat: bytes) -> _Stat:
    close = stat.rfind(b")")
    fields = stat[close + 2 :].split()
    if close < 0 or len(fields) < 22:
        return _DEAD
    return (
        int(fields[1]),
        fields[0].decode("utf-8", "replace"),
        (int(fields[11]) + int(fields[12])) / CLOCK_TICKS,
        int(fields[21]) * PAGE_SIZE,
        int(fields[19]),
    )


def _read_uid(base: str) -> int:
    try:
        status = read_small(base + "status")
    except _GONE:
        return -1
    at = status.find(b"\nUid:")
    return int(status[at + 5 : status.find(b"\n", at + 5)].split()[0]) if at >= 0 else -1


def read_processes(proc_root: Path, tally: Optional[Tally] = None, with_stat: bool = False) -> List[ProcessInfo]:
    """Every process (thread-group leader) visible in ``proc_root``, by pid and name.

    Only /proc/PID/comm is read; the other fields when first asked for (see :class:`_Row`),
    and ``tally`` counts those reads. ``with_stat`` reads /proc/PID/stat instead of comm
    (the name is in it too) and keeps it raw for the rows that get asked: cheaper when
    most rows will be. Processes gone before the read are skipped.
    """
    root = str(proc_root)
    tally = Tally() if tally is None else tally
    table: List[ProcessInfo] = []
    append = table.append
    new = _Row.__new__
    open_, read, close, flags = os.open, os.read, os.close, os.O_RDONLY | os.O_CLOEXEC
    leaf = "stat" if with_stat else "comm"
    for name in os.listdir(root):
        if not name.isdigit():
            continue
        base = f"{root}/{name}/"
        try:  # read_small, inlined: this loop runs once per process every cycle
            fd = open_(base + leaf, flags)
            try:
                data = read(fd, 16384)
            finally:
                close(fd)
        except _GONE:
            continue  # exited between listdir and read, or hidden from us
        except OSError:  # ESRCH from the read of a process exiting under it
            continue
        row = new(_Row)
        # Bypassing the frozen dataclass __init__ (one object.__setattr__ per field) halves the
        # cost of building 2,000 rows.
        fields = row.__dict__
        fields["pid"] = int(name)
        if with_stat:
            fields["comm"] = data[data.find(b"(") + 1 : data.rfind(b")")].decode("utf-8", "replace")
            fields["_raw"] = data
        else:
            fields["comm"] = data[:-1].decode("utf-8", "replace")
        fields["_base"] = base
        fields["_tally"] = tally
        append(row)
    tally.rows += len(table)
    return table


def read_cmdline(proc_root: Path, pid: int) -> Tuple[str, ...]:
    """argv of ``pid`` (empty for kernel threads, zombies and processes that are gone)."""
    try:
        fd = os.open(f"{proc_root}/{pid}/cmdline", os.O_RDONLY | os.O_CLOEXEC)
    except (*_GONE, OSError):
        return ()
    try:
        chunks = []
        while True:
            chunk = os.read(fd, 65536)
            chunks.append(chunk)
            if len(chunk) < 65536:
                break  # the kernel fills a read as far as argv goes: a short one is the end
    except OSError:  # ESRCH while the process exits
        return ()
    finally:
        os.close(fd)
    data = b"".join(chunks)
    if data.endswith(b"\0"):
        data = data[:-1]
    return tuple(arg.decode("utf-8", "surrogateescape") for arg in data.split(b"\0")) if data else ()


_ESCAPE = re.compile(r"\\([0-7]{3})")


def unescape(field: str) -> str:
    """Undo mountinfo's octal escapes (``\\040`` is a space)."""
    return _ESCAPE.sub(lambda m: chr(int(m.group(1), 8)), field) if "\\" in field else field


def parse_mountinfo(text: str) -> List[Mount]:
    """The lines of a ``mountinfo`` file; malformed lines are skipped."""
    mounts = []
    for line in text.splitlines():
        parts = line.split(" ")
        try:
            dash = parts.index("-", 6)
            mounts.append(
                Mount(
                    mount_id=int(parts[0]),
                    parent_id=int(parts[1]),
                    device=parts[2],
                    root=unescape(parts[3]),
                    mountpoint=unescape(parts[4]),
                    options=tuple(parts[5].split(",")),
                    fstype=parts[dash + 1],
                    source=unescape(parts[dash + 2]),
                    super_options=tuple(parts[dash + 3].split(",")),
                )
            )
        except (ValueError, IndexError):
            continue
    return mounts


class MountinfoCache:
    """The last text of one mountinfo file and its parse. The table rarely changes between cycles, and
    comparing the text the kernel gave is a small fraction of parsing it again (60 lines: ~150 us)."""

    __slots__ = ("_lock", "_mounts", "_text")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._text: Optional[str] = None
        self._mounts: Tuple[Mount, ...] = ()

    def parse(self, text: str) -> Tuple[Mount, ...]:
        with self._lock:
            if text != self._text:
                self._mounts = tuple(parse_mountinfo(text))
                self._text = text
            return self._mounts


def read_mountinfo(path: Path, fallback: Optional[Path] = None, cache: Optional[MountinfoCache] = None) -> Sequence[Mount]:
    """``path`` (the host's view, /proc/1/mountinfo), or ``fallback`` when it is hidden from us; parsed
    through ``cache`` when given (the same text gives the same tuple, which nobody may change)."""
    try:
        text = path.read_text(encoding="utf-8", errors="surrogateescape")
    except (PermissionError, FileNotFoundError):
        if fallback is None:
            raise
        text = fallback.read_text(encoding="utf-8", errors="surrogateescape")
    return cache.parse(text) if cache is not None else parse_mountinfo(text)


def _line(text: str, start: str) -> Optional[str]:
    """The line of ``text`` that begins with ``start`` (a newline and the line's head), without them."""
    at = text.find(start)
    if at < 0:
        return None
    end = text.find("\n", at + 1)
    return text[at + 1 : end if end >= 0 else len(text)]


def parse_stat(text: str) -> Dict[str, object]:
    """/proc/stat: ``cpu_times`` (CpuTimes, seconds), ``cpu_count`` (online CPUs), ``btime``."""
    # Found by position, not line by line: the "intr" line alone holds a number per interrupt source
    # (thousands on a large host), and splitting every line cost more than reading the file.
    facts: Dict[str, object] = {}
    text = "\n" + text
    line = _line(text, "\ncpu ")
    if line is not None:
        values = [int(v) / CLOCK_TICKS for v in line.split()[1:11]]
        values += [0.0] * (10 - len(values))
        facts["cpu_times"] = CpuTimes(*values)
    line = _line(text, "\nbtime ")
    if line is not None:
        facts["btime"] = float(line.split()[1])
    facts["cpu_count"] = (text.count("\ncpu") - (1 if "cpu_times" in facts else 0)) or 1
    return facts


def statvfs_usage(path: str) -> DiskUsage:
    """statvfs of ``path`` as df shows it (runs in a worker process: it can block in the kernel)."""
    st = os.statvfs(path)
    total = st.f_blocks * st.f_frsize
    return DiskUsage(
        total=total,
        used=total - st.f_bfree * st.f_frsize,
        free=st.f_bavail * st.f_frsize,
        inodes_total=st.f_files,
        inodes_used=st.f_files - st.f_ffree,
        inodes_free=st.f_favail,
        read_only=bool(st.f_flag & os.ST_RDONLY),
    )
