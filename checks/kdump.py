"""The kdump crash-dump watcher: one occurrence per kernel crash dump, with the panic reason.

Each run scans every dump root (``/var/crash``, the configured ``roots``, and what the
host's kdump configuration names), in-process on a local filesystem and in a worker process
with a hard timeout on a network or FUSE one, and reports
every dump that is complete, or that failed (a temporary marker older than the current
boot), as an :class:`~monagent.api.Occurrence` in a result whose subject is the root.
The engine keeps the seen set and sends each occurrence once per revision; the check
itself only remembers, for the settle window, how dumps without a completion signal
looked on the previous runs, and the reasons it already parsed.
"""

from __future__ import annotations

import os
import pwd
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Dict, FrozenSet, List, Mapping, Optional, Sequence, Set, Tuple

from monagent.checks.kdump_config import configured_roots

from monagent.api import Check, Context, MetricSpec, Occurrence, Result, Status, StuckCall, Text, joined

if TYPE_CHECKING:
    import logging

    from monagent.checks.kdump_reason import CrashReport
    from monagent.checks.kdump_scan import FoundDump, RootScan

# The scanner, layouts, reason parser and occurrence builder are imported where a run needs
# them: loading the check class (monagent validate, plugins) then stays cheap (~30 ms less).


def log() -> logging.Logger:
    """This module's logger; ``logging`` is imported at the first line logged (start-up, #17)."""
    import logging

    return logging.getLogger(__name__)


DEFAULT_ROOT = "/var/crash"


class KdumpCheck(Check):
    """Watch kdump dump directories; report each new crash dump once (CRITICAL)."""

    interval = 60.0
    timeout = 120.0
    metrics: ClassVar[Optional[Mapping[str, MetricSpec]]] = {}
    run_at_start = True
    texts: ClassVar[Mapping[str, Mapping[str, str]]] = {
        "kdump.capture_kernel": {
            "en": "running in a kdump capture kernel: dump roots are not scanned",
            "zh": "正运行在 kdump 捕获内核中，不扫描转储目录",
        },
        "kdump.not_responding": {
            "en": "{root} is not responding (scan took longer than {limit:duration})",
            "zh": "{root} 无响应（扫描超过 {limit:duration}）",
        },
        "kdump.cannot_scan": {"en": "cannot scan {root}: {error}", "zh": "无法扫描 {root}：{error}"},
        "kdump.no_root": {"en": "{root} does not exist (no dumps)", "zh": "{root} 不存在（没有转储）"},
        "kdump.root": {"en": "{n} crash dump{n:s} in {root}", "zh": "{root} 中有 {n} 个崩溃转储"},
        "kdump.writing": {"en": "{n} being written", "zh": "{n} 个正在写入"},
        "kdump.untrusted": {"en": "untrusted entries ignored: {n}", "zh": "忽略了 {n} 个属主不可信的条目"},
        "kdump.window": {
            "en": "a crowded root: entries {start}-{end} examined, the others in the next scans",
            "zh": "目录条目过多：本次检查第 {start}-{end} 个，其余留待下次扫描",
        },
        "kdump.window_empty": {
            "en": "a crowded root: no entries examined, the others in the next scans",
            "zh": "目录条目过多：本次未检查条目，其余留待下次扫描",
        },
        "kdump.skipped": {"en": "oldest entries not examined (max_dumps): {n}", "zh": "最旧的 {n} 个条目未检查（max_dumps）"},
        "kdump.no_message": {
            "en": "kernel crash (no crash message in the kernel log)",
            "zh": "内核崩溃（内核日志中没有崩溃信息）",
        },
        "kdump.reason_unavailable": {"en": "kernel crash (reason unavailable: {why})", "zh": "内核崩溃（原因不明：{why}）"},
        "kdump.dump_incomplete": {"en": "crash, dump incomplete: {head}", "zh": "内核崩溃，转储不完整：{head}"},
        "kdump.dump_failed": {"en": "crash, dump failed: {head}", "zh": "内核崩溃，转储失败：{head}"},
    }

    def __init__(
        self,
        *,
        roots: Sequence[str] = (DEFAULT_ROOT,),
        read_kdump_config: bool = True,
        etc_root: str = "/etc",
        abrt_spool: str = "",
        trusted_owners: Sequence[str] = ("root",),
        settle_seconds: float = 120.0,
        abandon_seconds: float = 1800.0,
        announce_window_seconds: float = 3600.0,
        scan_timeout_seconds: float = 20.0,
        max_dumps: int = 1000,
        max_entries_per_scan: int = 5_000,
    ) -> None:
        for root in roots:
            if not os.path.isabs(root):
                raise ValueError(f"roots: {root!r} is not an absolute path")
        self.roots = tuple(roots)
        self.read_kdump_config = read_kdump_config
        self.etc_root = etc_root
        self.abrt_spool = abrt_spool
        self.trusted_owners = tuple(trusted_owners)
        self.settle_seconds = settle_seconds
        self.abandon_seconds = abandon_seconds
        self.announce_window_seconds = announce_window_seconds
        self.scan_timeout_seconds = scan_timeout_seconds
        self.max_dumps = max_dumps
        if max_entries_per_scan < 1:
            raise ValueError(f"max_entries_per_scan: must be at least 1, got {max_entries_per_scan}")
        self.max_entries_per_scan = max_entries_per_scan
        self._settle: Dict[Tuple[str, str, int], Tuple[Tuple[Tuple[str, int, int], ...], float]] = {}
        self._reports: Dict[Tuple[str, Optional[Tuple[str, int, int, int]]], Tuple[Optional[CrashReport], str]] = {}
        self._logged: Dict[str, Tuple[int, Tuple[Tuple[str, str], ...]]] = {}  # root -> what was last logged
        self._offsets: Dict[str, int] = {}  # root -> where its next scan starts
        self._trusted = _trusted_uids(self.trusted_owners)

    def run(self, ctx: Context) -> List[Result]:
        if _in_capture_kernel(ctx.proc_root):
            return [Result(status=Status.OK, reason=self.text("kdump.capture_kernel"))]
        trusted = self._trusted
        results: List[Result] = []
        seen_roots: Set[Tuple[int, int]] = set()
        crash_names: Set[str] = set()
        roots = self._roots(ctx)
        # Every root local: scans run in-process in microseconds and share the non-blocking checks' thread;
        # one on NFS or FUSE (scanned in a worker, waited for up to scan_timeout): a thread of its own.
        self.non_blocking = all(ctx.is_local(root) for root, _ in roots)
        for root, abrt in roots:
            scan, failure = self._scan(ctx, root, abrt, trusted)
            if failure is not None:
                results.append(failure)
                continue
            assert scan is not None
            if scan.exists and (scan.dev, scan.ino) in seen_roots:
                continue  # the same directory reached through another configured path
            seen_roots.add((scan.dev, scan.ino))
            results.append(self._root_result(ctx, scan, crash_names))
            crash_names.update(d.name for d in scan.dumps)
        return results

    def _roots(self, ctx: Context) -> List[Tuple[str, bool]]:
        roots = list(self.roots)
        if self.read_kdump_config:
            roots += configured_roots(self.etc_root, lambda spec: _mountpoint_of(ctx, spec))
        unique: List[Tuple[str, bool]] = []
        for root in roots:
            path = os.path.normpath(root)
            if (path, False) not in unique:
                unique.append((path, False))
        if self.abrt_spool:
            unique.append((os.path.normpath(self.abrt_spool), True))
        return unique

    def _scan(self, ctx: Context, root: str, abrt: bool, trusted: FrozenSet[int]) -> Tuple[Optional[RootScan], Optional[Result]]:
        from monagent.checks.kdump_scan import ScanRequest, scan_root

        known = frozenset(key for (r, key) in self._reports if r == root)
        offset = self._offsets.get(root, 0)
        request = ScanRequest(
            root, trusted, known, abrt=abrt, max_dumps=self.max_dumps, max_entries=self.max_entries_per_scan, offset=offset
        )
        try:
            # in-process on a local filesystem; a worker with a hard timeout on NFS and the like
            scan = ctx.run_blocking(scan_root, request, timeout=self.scan_timeout_seconds, path=root)
            self._offsets[root] = scan.next_offset
            return scan, None
        except StuckCall:
            reason = self.text("kdump.not_responding", root=root, limit=self.scan_timeout_seconds)
        except OSError as exc:
            reason = self.text("kdump.cannot_scan", root=root, error=exc.strerror or str(exc))
        return None, Result(subject=root, status=Status.UNKNOWN, reason=reason)

    def _root_result(self, ctx: Context, scan: RootScan, crash_names: Set[str]) -> Result:
        from monagent.checks.kdump_facts import DumpContext, build_occurrence
        from monagent.checks.kdump_layouts import Layout

        self._log_ignored(scan)
        if not scan.exists:
            self._forget(scan.root, ())
            return Result(subject=scan.root, status=Status.OK, reason=self.text("kdump.no_root", root=scan.root))
        shared = DumpContext(
            scan.real, scan.free_bytes, _running_kernel(ctx.proc_root), ctx.boot_time(), self.announce_window_seconds
        )
        occurrences: List[Occurrence] = []
        writing = 0
        for dump in scan.dumps:
            if dump.entry.layout == Layout.ABRT and dump.entry.orig in crash_names:
                continue  # ABRT's copy of a dump already reported from the kdump directory
            status = self._status(ctx, scan.root, dump)
            if status is None:
                writing += 1
                continue
            reasoned = self._with_cached_reason(scan.root, dump)
            occurrences.append(build_occurrence(shared, reasoned, status, reasoned.report))
        self._forget(scan.root, scan.dumps)
        return Result(
            subject=scan.root, status=Status.OK, reason=_describe(scan, len(occurrences), writing), occurrences=tuple(occurrences)
        )

    def _status(self, ctx: Context, root: str, dump: FoundDump) -> Optional[str]:
        """complete / incomplete / failed / unknown, or None while the dump is still being written."""
        from monagent.checks.kdump_layouts import Signal

        signal = dump.shape.signal
        if signal == Signal.COMPLETE:
            return "complete"
        if signal == Signal.FAILED:
            return "failed"
        if signal == Signal.UNREADABLE:
            return "unknown"
        newest = dump.newest_mtime
        before_boot = newest < ctx.boot_time()
        if signal == Signal.WRITING:
            abandoned = ctx.now - newest >= self.abandon_seconds
            return "incomplete" if before_boot or abandoned else None
        if before_boot or ctx.now - newest >= self.settle_seconds or self._stable(ctx.now, root, dump):
            return "complete" if dump.core is not None else "incomplete"
        return None

    def _stable(self, now: float, root: str, dump: FoundDump) -> bool:
        """True once size and mtime of every file stayed the same for the settle window."""
        key = (root, dump.name, dump.ino)
        previous = self._settle.get(key)
        if previous is None or previous[0] != dump.signature:
            self._settle[key] = (dump.signature, now)
            return False
        return now - previous[1] >= self.settle_seconds

    def _with_cached_reason(self, root: str, dump: FoundDump) -> FoundDump:
        """The dump with its reason: read by this scan, or remembered from the scan that read this log."""
        if dump.dmesg_key is None:
            return dump
        key = (root, dump.dmesg_key)
        if key in self._reports and dump.report is None and not dump.report_error:
            report, error = self._reports[key]
            return replace(dump, report=report, report_error=error)
        self._reports[key] = (dump.report, dump.report_error)
        return dump

    def _forget(self, root: str, dumps: Sequence[FoundDump]) -> None:
        """Drop remembered sizes and reasons of dumps that are gone (rotation, deletion)."""
        present = {(d.name, d.ino) for d in dumps}
        keys = {d.dmesg_key for d in dumps if d.dmesg_key is not None}
        self._settle = {k: v for k, v in self._settle.items() if k[0] != root or (k[1], k[2]) in present}
        self._reports = {k: v for k, v in self._reports.items() if k[0] != root or k[1] in keys}

    def _log_ignored(self, scan: RootScan) -> None:
        """One WARNING per scan at most, and only when the untrusted entries changed: another user who
        fills a world-writable root with thousands of entries gets one line, not thousands."""
        seen = (scan.ignored_count, scan.ignored)
        if self._logged.get(scan.root) == seen:
            return
        self._logged[scan.root] = seen
        if not scan.ignored:
            return
        name, why = scan.ignored[0]
        if scan.ignored_count == 1:
            log().warning("%s: %r %s; not treated as a kernel crash dump (see trusted_owners)", scan.root, name, why)
        else:
            log().warning(
                "%s: %d untrusted entries ignored, e.g. %r %s; not treated as kernel crash dumps (see trusted_owners)",
                scan.root,
                scan.ignored_count,
                name,
                why,
            )


def _trusted_uids(owners: Sequence[str]) -> FrozenSet[int]:
    uids = set()
    for owner in owners:
        if owner.isdigit():
            uids.add(int(owner))
            continue
        try:
            uids.add(pwd.getpwnam(owner).pw_uid)
        except KeyError:
            raise ValueError(f"trusted_owners: no user named {owner!r} on this host") from None
    return frozenset(uids)


def _describe(scan: RootScan, reported: int, writing: int) -> Text:
    text = KdumpCheck.text
    parts = [text("kdump.root", n=reported, root=scan.root)]
    if writing:
        parts.append(text("kdump.writing", n=writing))
    if scan.ignored_count:
        parts.append(text("kdump.untrusted", n=scan.ignored_count))
    if scan.partial:  # a crowded root is read a window at a time
        if scan.examined:
            parts.append(text("kdump.window", start=scan.first + 1, end=scan.first + scan.examined))
        else:
            parts.append(text("kdump.window_empty"))
    if scan.skipped:
        parts.append(text("kdump.skipped", n=scan.skipped))
    return joined(*parts) if len(parts) > 1 else parts[0]


def _in_capture_kernel(proc_root: Path) -> bool:
    try:
        return (Path(proc_root) / "vmcore").stat().st_size > 0
    except OSError:
        return False


def _running_kernel(proc_root: Path) -> str:
    try:
        return (Path(proc_root) / "sys/kernel/osrelease").read_text(encoding="ascii", errors="replace").strip()
    except OSError:
        return os.uname().release


def _mountpoint_of(ctx: Context, spec: str) -> Optional[str]:
    """Where the device a kdump.conf filesystem target names is mounted (UUID=, LABEL= or a path)."""
    kind, _, value = spec.partition("=")
    if kind in ("UUID", "LABEL", "PARTUUID", "PARTLABEL") and value:
        device = os.path.realpath(f"/dev/disk/by-{kind.lower()}/{value}")
    else:
        device = os.path.realpath(spec)
    for mount in ctx.mounts():
        source = mount.source
        if source in (spec, device) or (source.startswith("/dev/") and os.path.realpath(source) == device):
            return mount.mountpoint
    return None
