"""Filesystem space, inodes, unexpected read-only remounts and time-to-full.

Every real filesystem of the host mount table (``/proc/1/mountinfo``) by default, or
the configured ``mounts``. One result per mount point; its metrics are separate alert
keys, so space, inodes and read-only state of ``/var`` can fire and clear on their own.
"""

from __future__ import annotations

import fnmatch
from collections import deque
from typing import ClassVar, Deque, Dict, List, Optional, Sequence, Set, Tuple

from monagent.api import Check, Context, Direction, DiskUsage, Metric, MetricSpec, Mount, Result, Status, StuckCall

#: Filesystem types that hold no data of their own, are always full (squashfs, iso9660) or
#: are someone else's business (container layers, desktop FUSE helpers).
PSEUDO_FSTYPES = frozenset(
    """
    autofs binfmt_misc bpf cgroup cgroup2 configfs debugfs devpts devtmpfs efivarfs erofs fusectl
    hugetlbfs iso9660 mqueue nfsd nsfs overlay aufs pipefs proc pstore ramfs rpc_pipefs securityfs
    selinuxfs sockfs squashfs sysfs tmpfs tracefs devfs rootfs none
    fuse.lxcfs fuse.gvfsd-fuse fuse.portal fuse.snapfuse fuse.xdg-document-portal fuse.kio-fuse
""".split()
)

#: Mount points under these belong to the system or to container runtimes.
EXCLUDED_PREFIXES = (
    "/proc/",
    "/sys/",
    "/dev/",
    "/snap/",
    "/run/credentials/",
    "/run/snapd/",
    "/run/containerd/",
    "/run/docker/",
    "/var/lib/docker/",
    "/var/lib/containers/",
    "/var/lib/kubelet/pods/",
)


def real_filesystems(mounts: Sequence[Mount], exclude: Sequence[str] = (), exclude_fstypes: Sequence[str] = ()) -> List[Mount]:
    """The mounts an operator means by "the disks": no pseudo filesystems, one entry per device."""
    top: Dict[str, Mount] = {}
    for mount in mounts:  # a later mount on the same point hides the earlier one
        top[mount.mountpoint] = mount
    by_device: Dict[str, Mount] = {}
    for mount in top.values():
        point = mount.mountpoint
        if mount.fstype in PSEUDO_FSTYPES or mount.fstype in exclude_fstypes or point in ("/proc", "/sys", "/dev"):
            continue
        if point.startswith(EXCLUDED_PREFIXES) or any(fnmatch.fnmatchcase(point, pattern) for pattern in exclude):
            continue
        kept = by_device.get(mount.device)
        if kept is None or _rank(mount) < _rank(kept):
            by_device[mount.device] = mount  # bind mounts of one filesystem: keep the real one
    return sorted(by_device.values(), key=lambda m: m.mountpoint)


def _rank(mount: Mount) -> Tuple[int, int, int]:
    return (0 if mount.root == "/" else 1, len(mount.mountpoint), mount.mount_id)


def _configured(mounts: Sequence[Mount], point: str) -> Optional[Mount]:
    found = None
    for mount in mounts:
        if mount.mountpoint == point:
            found = mount  # the last one is on top
    return found


def human_bytes(value: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} PiB"  # pragma: no cover


def human_hours(hours: float) -> str:
    """``~35m``, ``~4h``, ``~3d``."""
    if hours < 1:
        return f"~{max(1, round(hours * 60))}m"
    if hours < 48:
        return f"~{round(hours)}h"
    return f"~{round(hours / 24)}d"


class Trend:
    """Recent (time, used bytes) samples of one filesystem and their least-squares slope."""

    def __init__(self, window: float) -> None:
        self.window = window
        self.samples: Deque[Tuple[float, float]] = deque()
        self.device = ""

    def add(self, when: float, used: float, capacity: float, device: str) -> None:
        last = self.samples[-1] if self.samples else None
        if device != self.device or (last is not None and (when <= last[0] or last[1] - used > capacity / 100)):
            self.samples.clear()  # another filesystem, a clock step, or a clean-up: old samples mislead
            self.device = device
        self.samples.append((when, used))
        while self.samples and self.samples[0][0] < when - self.window:
            self.samples.popleft()

    def slope(self) -> Optional[float]:
        """Bytes per second, once the samples span a quarter of the window (at least three)."""
        if len(self.samples) < 3 or self.samples[-1][0] - self.samples[0][0] < self.window / 4:
            return None
        n = len(self.samples)
        mean_t = sum(t for t, _ in self.samples) / n
        mean_u = sum(u for _, u in self.samples) / n
        var = sum((t - mean_t) ** 2 for t, _ in self.samples)
        cov = sum((t - mean_t) * (u - mean_u) for t, u in self.samples)
        return cov / var if var else None


class DiskCheck(Check):
    """Space (as df computes it), free bytes, inodes, read-only remounts and time to full."""

    interval = 60.0
    timeout = 30.0
    metrics: ClassVar[Dict[str, MetricSpec]] = {
        "used_percent": MetricSpec(
            unit="%",
            description="space used as df shows it (the root reserve counts)",
            warning=85,
            critical=95,
            minimum=0,
            maximum=100,
        ),
        "free_bytes": MetricSpec(
            unit="B", description="space available to unprivileged users", direction=Direction.BELOW, minimum=0
        ),
        "inodes_percent": MetricSpec(
            unit="%",
            description="inodes used (no value where the filesystem has none)",
            warning=85,
            critical=95,
            minimum=0,
            maximum=100,
        ),
        "read_only": MetricSpec(
            unit="", description="1 when the filesystem turned read-only unexpectedly", critical=1, minimum=0, maximum=1
        ),
        "hours_to_full": MetricSpec(
            unit="h",
            description="hours until full at the recent rate (none when not filling)",
            direction=Direction.BELOW,
            minimum=0,
        ),
    }

    def __init__(
        self,
        *,
        mounts: Optional[Sequence[str]] = None,
        exclude: Sequence[str] = (),
        exclude_fstypes: Sequence[str] = (),
        statfs_timeout: float = 5.0,
        trend_window: float = 3600.0,
    ) -> None:
        if statfs_timeout <= 0 or trend_window <= 0:
            raise ValueError("statfs_timeout and trend_window must be positive")
        self.mounts = tuple(mounts) if mounts is not None else None
        self.exclude = tuple(exclude)
        self.exclude_fstypes = tuple(exclude_fstypes)
        self.statfs_timeout = statfs_timeout
        self.trend_window = trend_window
        self._trends: Dict[str, Trend] = {}
        self._seen_rw: Set[Tuple[str, str]] = set()

    def run(self, ctx: Context) -> List[Result]:
        table = ctx.mounts()
        chosen: List[Tuple[str, Optional[Mount]]]
        if self.mounts is None:
            chosen = [(m.mountpoint, m) for m in real_filesystems(table, self.exclude, self.exclude_fstypes)]
        else:
            chosen = [(point, _configured(table, point)) for point in self.mounts]
        discovered = self.mounts is None
        results = []
        for point, mount in chosen:
            if mount is None:
                results.append(Result(subject=point, status=Status.CRITICAL, reason=f"{point} is not mounted"))
                continue
            results.append(self._one(ctx, mount, discovered))
        live = {point for point, _ in chosen}
        self._trends = {k: v for k, v in self._trends.items() if k in live}
        return results

    def _one(self, ctx: Context, mount: Mount, discovered: bool) -> Result:
        point = mount.mountpoint
        try:
            usage = ctx.disk_usage(point, timeout=self.statfs_timeout)
        except StuckCall as exc:
            return Result(subject=point, status=Status.UNKNOWN, reason=str(exc), discovered=discovered)
        except OSError as exc:
            return Result(
                subject=point,
                status=Status.UNKNOWN,
                discovered=discovered,
                reason=f"statfs of {point} failed: {exc.strerror or exc}",
            )
        facts = {"filesystem": f"{mount.fstype} {mount.source}", "free": human_bytes(usage.free)}
        read_only = self._read_only(mount)
        if read_only:
            facts["read_only"] = read_only
        text, hours = self._trend(ctx.monotonic, mount, usage, facts)
        metrics = (
            Metric("used_percent", round(usage.used_percent, 2), "%", 0, 100),
            Metric("free_bytes", usage.free, "B", 0, usage.used + usage.free),
            Metric("inodes_percent", round(usage.inodes_percent, 2) if usage.inodes_total else None, "%", 0, 100),
            Metric("read_only", 1.0 if read_only else 0.0, "", 0, 1),
            Metric("hours_to_full", hours, "h", 0),
        )
        return Result(subject=point, metrics=metrics, reason=text, facts=facts, discovered=discovered)

    def _read_only(self, mount: Mount) -> str:
        """Why the mount is unexpectedly read-only, or "" (read-only by design, or writable)."""
        key = (mount.mountpoint, mount.device)
        if not mount.read_only:
            self._seen_rw.add(key)
            return ""
        if "rw" in mount.options and "ro" in mount.super_options:
            # Mounted read-write but the superblock went read-only: the kernel did it (errors=remount-ro).
            return "remounted read-only by the kernel after filesystem errors"
        if key in self._seen_rw:
            return "was read-write, now read-only"
        return ""

    def _trend(self, when: float, mount: Mount, usage: DiskUsage, facts: Dict[str, str]) -> Tuple[str, Optional[float]]:
        capacity = usage.used + usage.free
        trend = self._trends.get(mount.mountpoint)
        if trend is None:
            trend = self._trends[mount.mountpoint] = Trend(self.trend_window)
        trend.add(when, usage.used, capacity, mount.device)
        parts = [f"{usage.used_percent:.0f}% used"]
        slope = trend.slope()
        hours = None
        if slope is not None and capacity:
            per_hour = slope * 3600 / capacity * 100
            facts["trend"] = f"{per_hour:+.1f}%/h"
            parts.append(facts["trend"])
            if slope > 0:
                hours = round(usage.free / slope / 3600, 2)
                facts["time_to_full"] = human_hours(hours)
                parts.append(f"full in {facts['time_to_full']}")
        if facts.get("read_only"):
            parts.append(facts["read_only"])
        return ", ".join(parts), hours
