"""Scanning one dump root: the part that touches the filesystem.

:func:`scan_root` is a picklable top-level function; the check runs it through
``ctx.run_blocking(..., path=root)``: in-process when the root is on a local filesystem, in a
worker process when it is on NFS and the like, so a dead server cannot hang the agent.  Safety rules
(docs/design/kdump-layouts.md section 5): only entries owned by a trusted owner and not symlinks count;
everything below the root is opened relative to a directory descriptor with ``O_NOFOLLOW``;
a kernel log is read from its last ``tail_bytes`` only; a dump file only for its first 16
bytes; an apport report without changing its atime.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Dict, FrozenSet, List, Optional, Tuple

from monagent.checks.kdump_layouts import (
    APPORT_KERNEL_REPORT,
    EntryName,
    Layout,
    Shape,
    Signal,
    classify,
    flat_dmesg_name,
    flat_shape,
    recognise,
    recognise_abrt,
    sniff_format,
)

if TYPE_CHECKING:
    from monagent.checks.kdump_reason import CrashReport

# The reason parser and the apport reader are imported when a kernel log or a report is read: a
# scan that finds nothing new (every scan of a quiet host) does not pay for their patterns.

TAIL_BYTES = 2 * 1024 * 1024
SMALL_FILE = 64 * 1024
_OPEN = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC

DmesgKey = Tuple[str, int, int, int]  # entry name, inode, size, mtime_ns


@dataclass(frozen=True)
class FileStat:
    name: str
    size: int
    mtime_ns: int
    ino: int


@dataclass(frozen=True)
class ScanRequest:
    root: str
    trusted_uids: FrozenSet[int]
    known_dmesg: FrozenSet[DmesgKey] = frozenset()
    abrt: bool = False  # the root is an ABRT spool (/var/spool/abrt)
    max_dumps: int = 1000
    tail_bytes: int = TAIL_BYTES
    max_entries: int = 5_000  # directory entries read per scan; the rest wait for the next scans
    offset: int = 0  # how many entries the previous scans of this pass read (their next_offset)


@dataclass(frozen=True)
class FoundDump:
    """One recognised dump entry, with what could be read about it."""

    name: str
    ino: int
    entry: EntryName
    shape: Shape
    files: Tuple[FileStat, ...]
    core: Optional[FileStat] = None
    core_format: str = ""
    dmesg_key: Optional[DmesgKey] = None
    report: Optional[CrashReport] = None  # None with a dmesg_key: unchanged since the caller's last read
    report_error: str = ""
    apport_report: str = ""

    @property
    def newest_mtime(self) -> float:
        return max((f.mtime_ns for f in self.files), default=0) / 1e9

    @property
    def signature(self) -> Tuple[Tuple[str, int, int], ...]:
        return tuple(sorted((f.name, f.size, f.mtime_ns) for f in self.files))


@dataclass(frozen=True)
class RootScan:
    root: str
    real: str
    exists: bool
    dev: int = 0
    ino: int = 0
    free_bytes: Optional[int] = None
    dumps: Tuple[FoundDump, ...] = ()
    ignored: Tuple[Tuple[str, str], ...] = ()  # (entry name, why) of the first IGNORED_SAMPLES untrusted entries
    skipped: int = 0  # recognised entries beyond max_dumps (oldest first)
    ignored_count: int = 0  # untrusted entries (owner, symlink) among those examined
    first: int = 0  # entries skipped before this scan's window (examined by the previous scans)
    examined: int = 0  # entries read and examined by this scan (at most max_entries)
    next_offset: int = 0  # where the next scan starts (0: from the beginning: this scan reached the end)

    @property
    def partial(self) -> bool:
        """The root holds more entries than one scan reads: this scan saw only a window of them."""
        return self.first > 0 or self.next_offset > 0


IGNORED_SAMPLES = 5  # untrusted entries named in a scan; the others are only counted


@dataclass(frozen=True)
class _Candidate:
    name: str
    entry: EntryName
    mtime: float
    ino: int
    is_dir: bool


@dataclass
class _Root:
    """What every entry of one root is examined against."""

    fd: int
    request: ScanRequest
    apport: Dict[str, str] = field(default_factory=dict)  # stamp -> apport kernel report name


def scan_root(request: ScanRequest) -> RootScan:
    """Everything the check needs to know about one root, read in one pass."""
    try:
        root_fd = os.open(request.root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except (FileNotFoundError, NotADirectoryError):
        return RootScan(request.root, request.root, exists=False)
    try:
        st = os.fstat(root_fd)
        vfs = os.fstatvfs(root_fd)
        root = _Root(root_fd, request)
        candidates, ignored, counts = _list_root(root)
        candidates.sort(key=lambda c: c.mtime, reverse=True)
        skipped = max(0, len(candidates) - request.max_dumps)
        dumps = [d for d in (_examine(root, c) for c in candidates[: request.max_dumps]) if d is not None]
        return RootScan(
            request.root,
            os.path.realpath(request.root),
            True,
            st.st_dev,
            st.st_ino,
            vfs.f_bavail * vfs.f_frsize,
            tuple(dumps),
            tuple(ignored),
            skipped,
            *counts,
        )
    finally:
        os.close(root_fd)


def _list_root(root: _Root) -> Tuple[List[_Candidate], List[Tuple[str, str]], Tuple[int, int, int, int]]:
    """Candidates, sample untrusted entries and (untrusted count, first, examined, next offset).

    Work and memory stay bounded whatever another user puts in a world-writable root: one scan
    reads at most ``max_entries`` directory entries past the ``offset`` the previous scans reached
    (those before it are only stepped over, never matched or stat()ed) and stops there; the next
    scan goes on from there and, past the end, starts again. Untrusted entries are counted with a
    few samples kept, and nothing is kept per entry. A root with fewer entries than that is read
    whole by every scan."""
    candidates: List[_Candidate] = []
    ignored: List[Tuple[str, str]] = []
    request = root.request
    abrt = request.abrt
    ignored_count = index = 0
    end = request.offset + request.max_entries
    with os.scandir(root.fd) as it:
        for item in it:
            index += 1
            if index <= request.offset:
                continue  # examined by an earlier scan of this pass
            if index > end:
                return candidates, ignored, (ignored_count, request.offset, request.max_entries, end)
            is_dir = item.is_dir(follow_symlinks=False)
            entry = recognise_abrt(item.name) if abrt else recognise(item.name, is_dir)
            report = None if abrt else APPORT_KERNEL_REPORT.match(item.name)
            link = entry is None and report is None and item.is_symlink() and recognise(item.name, True) is not None
            if entry is None and report is None and not link:
                continue
            why = "is a symbolic link" if link else _untrusted(item.stat(follow_symlinks=False), request.trusted_uids)
            if why:
                ignored_count += 1
                if len(ignored) < IGNORED_SAMPLES:
                    ignored.append((item.name, why))
                continue
            st = item.stat(follow_symlinks=False)
            if report is not None:
                root.apport[report.group("stamp")] = item.name
            elif entry is not None and (is_dir or entry.layout == Layout.DEBIAN_FTP):
                candidates.append(_Candidate(item.name, entry, st.st_mtime, st.st_ino, is_dir))
    # the end of the directory: the next scan starts a new pass
    return candidates, ignored, (ignored_count, min(request.offset, index), max(0, index - request.offset), 0)


def _untrusted(st: os.stat_result, trusted: FrozenSet[int]) -> str:
    if stat.S_ISLNK(st.st_mode):
        return "is a symbolic link"
    if st.st_uid not in trusted:
        return f"is owned by uid {st.st_uid}, not a trusted owner"
    return ""


def _examine(root: _Root, cand: _Candidate) -> Optional[FoundDump]:
    if not cand.is_dir:
        # its kernel log beside it, looked up by name (it may lie outside this scan's window), and
        # only if a trusted owner wrote it: another user must not supply a root dump's reason
        dmesg = _trusted_regular(root.fd, flat_dmesg_name(cand.entry), root.request.trusted_uids)
        shape = flat_shape(cand.entry, cand.name, {dmesg} if dmesg else ())
        files = [f for f in (_stat(root.fd, cand.name), _stat(root.fd, shape.dmesg) if shape.dmesg else None) if f]
        if not files or files[0].ino != cand.ino:
            return None
        return _found(root, root.fd, cand, shape, files)
    try:
        dir_fd = os.open(cand.name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=root.fd)
    except PermissionError:
        itself = FileStat(".", 0, int(cand.mtime * 1e9), cand.ino)
        return FoundDump(
            cand.name,
            cand.ino,
            cand.entry,
            Shape(Signal.UNREADABLE, cand.entry.layout),
            (itself,),
            report_error=f"no permission to list {cand.name}",
        )
    except OSError:
        return None  # gone between listing and opening (rotation), or replaced by a symlink
    try:
        files = _regular_files(dir_fd)
        names = {f.name for f in files}
        readme = _read_small(dir_fd, "README.txt") if "README.txt" in names else ""
        status = _read_small(dir_fd, "vmcore-creation.status") if "vmcore-creation.status" in names else ""
        return _found(root, dir_fd, cand, classify(cand.entry, names, readme, status), files)
    finally:
        os.close(dir_fd)


def _found(root: _Root, fd: int, cand: _Candidate, shape: Shape, files: List[FileStat]) -> FoundDump:
    """Sniff the core's format and read the reason (kernel log, else the apport report's copy)."""
    request = root.request
    by_name = {f.name: f for f in files}
    core = by_name.get(shape.core)
    core_format = sniff_format(_read_head(fd, core.name)) if core else ""
    report: Optional[CrashReport] = None
    error = ""
    dmesg_key: Optional[DmesgKey] = None
    dmesg = by_name.get(shape.dmesg)
    if dmesg is not None:
        dmesg_key = (cand.name, dmesg.ino, dmesg.size, dmesg.mtime_ns)
        if dmesg_key not in request.known_dmesg:
            from monagent.checks.kdump_reason import parse_dmesg

            text, error = _read_tail(fd, dmesg.name, request.tail_bytes)
            report = parse_dmesg(text) if text else None
    local_debian = cand.entry.layout == Layout.DEBIAN and not cand.entry.host  # apport only handles these
    apport_name = root.apport.get(cand.entry.stamp, "") if local_debian else ""
    if report is None and dmesg_key not in request.known_dmesg and apport_name:
        from monagent.checks.kdump_apport import read_report
        from monagent.checks.kdump_reason import parse_dmesg

        text = read_report(root.fd, apport_name)
        if text:
            report, error = parse_dmesg(text[-request.tail_bytes :]), ""
    if dmesg is None and not error and report is None:
        error = "no kernel log beside the dump"
    return FoundDump(
        cand.name, cand.ino, cand.entry, shape, tuple(files), core, core_format, dmesg_key, report, error, apport_name
    )


def _regular_files(dir_fd: int) -> List[FileStat]:
    files = []
    with os.scandir(dir_fd) as it:
        for item in it:
            try:
                st = item.stat(follow_symlinks=False)
            except OSError:
                continue
            if stat.S_ISREG(st.st_mode) and item.name != ".notified":
                files.append(FileStat(item.name, st.st_size, st.st_mtime_ns, st.st_ino))
    return files


def _trusted_regular(dir_fd: int, name: str, trusted: FrozenSet[int]) -> str:
    """``name`` if it is a regular file (not a symlink) of a trusted owner, else ""."""
    try:
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except OSError:
        return ""
    return name if stat.S_ISREG(st.st_mode) and st.st_uid in trusted else ""


def _stat(dir_fd: int, name: str) -> Optional[FileStat]:
    try:
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except OSError:
        return None
    return FileStat(name, st.st_size, st.st_mtime_ns, st.st_ino) if stat.S_ISREG(st.st_mode) else None


def _open_regular(dir_fd: int, name: str) -> int:
    fd = os.open(name, _OPEN, dir_fd=dir_fd)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise OSError(f"{name} is not a regular file")
    return fd


def _read_head(dir_fd: int, name: str, size: int = 16) -> bytes:
    try:
        fd = _open_regular(dir_fd, name)
    except OSError:
        return b""
    try:
        return os.pread(fd, size, 0)
    finally:
        os.close(fd)


def _read_small(dir_fd: int, name: str) -> str:
    return _read_head(dir_fd, name, SMALL_FILE).decode("utf-8", errors="replace")


def _read_tail(dir_fd: int, name: str, limit: int) -> Tuple[str, str]:
    """The last ``limit`` bytes of a kernel log (from a line start), or an error text."""
    try:
        fd = _open_regular(dir_fd, name)
    except PermissionError:
        return "", f"no permission to read {name}"
    except OSError as exc:
        return "", f"cannot read {name}: {exc.strerror or exc}"
    try:
        size = os.fstat(fd).st_size
        start = max(0, size - limit)
        before = os.pread(fd, 1, start - 1) if start else b"\n"
        data = os.pread(fd, limit, start)
    finally:
        os.close(fd)
    if before != b"\n":  # started inside a line: drop its partial end
        data = data[data.find(b"\n") + 1 :]
    return data.decode("utf-8", errors="replace"), ""
