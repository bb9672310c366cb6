"""Filesystem space, inodes, unexpected read-only remounts and time-to-full.

Every real filesystem of the host mount table (``/proc/1/mountinfo``) by default, or
the configured ``mounts``. One result per mount point; its metrics are separate alert
keys, so space, inodes and read-only state of ``/var`` can fire and clear on their own.
"""

from __future__ import annotations

import fnmatch
from collections import deque
from typing import ClassVar, Deque, Dict, List, Optional, Sequence, Set, Tuple, Union

from monagent.api import (
    Check,
    Context,
    Direction,
    DiskUsage,
    Fact,
    Metric,
    MetricSpec,
    Mount,
    Result,
    Status,
    StuckCall,
    Text,
    joined,
)

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

    texts: ClassVar[Dict[str, Dict[str, str]]] = {
        "disk.not_mounted": {"en": "{mount} is not mounted", "zh": "{mount} 未挂载"},
        "disk.stuck": {
            "en": "statfs of {mount} did not return within {timeout:duration} (a hung network or FUSE mount?)",
            "zh": "{mount} 的 statfs 调用超过 {timeout:duration}仍未返回（网络或 FUSE 挂载卡死？）",
        },
        "disk.still_stuck": {
            "en": "statfs of {mount} still stuck since {since:time} (did not return within {timeout:duration})",
            "zh": "{mount} 的 statfs 调用自 {since:time} 起一直卡住（超过 {timeout:duration}未返回）",
        },
        "disk.statfs_failed": {"en": "statfs of {mount} failed: {error}", "zh": "{mount} 的 statfs 调用失败：{error}"},
        "disk.used": {"en": "{percent:%} used", "zh": "已用 {percent:%}"},
        "disk.trend": {"en": "+{rate:%/h}", "zh": "每小时增长 {rate:%}"},
        "disk.shrinking": {"en": "-{rate:%/h}", "zh": "每小时减少 {rate:%}"},
        "disk.full_in": {"en": "full in about {eta:duration}", "zh": "约{eta:duration}后写满"},
        "disk.ro_by_kernel": {
            "en": "remounted read-only by the kernel after filesystem errors",
            "zh": "文件系统出错，已被内核重新挂载为只读",
        },
        "disk.ro_now": {"en": "was read-write, now read-only", "zh": "原为读写，现已变为只读"},
        "fact.filesystem": {"en": "Filesystem", "zh": "文件系统"},
        "fact.free": {"en": "Free", "zh": "可用空间"},
        "fact.read_only": {"en": "Read-only", "zh": "只读"},
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
                results.append(Result(subject=point, status=Status.CRITICAL, reason=self.text("disk.not_mounted", mount=point)))
                continue
            results.append(self._one(ctx, mount, discovered))
        live = {point for point, _ in chosen}
        self._trends = {k: v for k, v in self._trends.items() if k in live}
        # Only local filesystems: the runs take microseconds and share the non-blocking checks' thread.
        # A network or FUSE one (its statfs in a worker, waited for up to statfs_timeout): a thread of its own.
        self.non_blocking = all(ctx.is_local(point) for point in live)
        return results

    def _one(self, ctx: Context, mount: Mount, discovered: bool) -> Result:
        point = mount.mountpoint
        try:
            usage = ctx.disk_usage(point, timeout=self.statfs_timeout)
        except StuckCall as exc:
            if exc.since is not None:
                stuck = self.text("disk.still_stuck", mount=point, since=exc.since, timeout=self.statfs_timeout)
            else:
                stuck = self.text("disk.stuck", mount=point, timeout=self.statfs_timeout)
            return Result(subject=point, status=Status.UNKNOWN, reason=stuck, discovered=discovered)
        except OSError as exc:
            return Result(
                subject=point,
                status=Status.UNKNOWN,
                discovered=discovered,
                reason=self.text("disk.statfs_failed", mount=point, error=exc.strerror or str(exc)),
            )
        facts: Dict[str, Fact] = {"filesystem": f"{mount.fstype} {mount.source}", "free": usage.free}
        read_only = self._read_only(mount)
        if read_only is not None:
            facts["read_only"] = True
        text, hours = self._trend(ctx.monotonic, mount, usage, facts, read_only)
        metrics = (
            Metric("used_percent", round(usage.used_percent, 2), "%", 0, 100),
            Metric("free_bytes", usage.free, "B", 0, usage.used + usage.free),
            Metric("inodes_percent", round(usage.inodes_percent, 2) if usage.inodes_total else None, "%", 0, 100),
            Metric("read_only", 1.0 if read_only else 0.0, "", 0, 1),
            Metric("hours_to_full", hours, "h", 0),
        )
        return Result(subject=point, metrics=metrics, reason=text, facts=facts, discovered=discovered)

    def _read_only(self, mount: Mount) -> Optional[Text]:
        """Why the mount is unexpectedly read-only, or None (read-only by design, or writable)."""
        key = (mount.mountpoint, mount.device)
        if not mount.read_only:
            self._seen_rw.add(key)
            return None
        if "rw" in mount.options and "ro" in mount.super_options:
            # Mounted read-write but the superblock went read-only: the kernel did it (errors=remount-ro).
            return self.text("disk.ro_by_kernel")
        if key in self._seen_rw:
            return self.text("disk.ro_now")
        return None

    def _trend(
        self, when: float, mount: Mount, usage: DiskUsage, facts: Dict[str, Fact], read_only: Optional[Text]
    ) -> Tuple[Union[Text, str], Optional[float]]:
        """The reason (used, growth per hour, time to full, read-only) and the hours to full."""
        capacity = usage.used + usage.free
        trend = self._trends.get(mount.mountpoint)
        if trend is None:
            trend = self._trends[mount.mountpoint] = Trend(self.trend_window)
        trend.add(when, usage.used, capacity, mount.device)
        parts: List[Union[Text, str]] = [self.text("disk.used", percent=round(usage.used_percent, 2))]
        slope = trend.slope()
        hours = None
        if slope is not None and capacity:
            per_hour = round(slope * 3600 / capacity * 100, 1)
            facts["trend"] = per_hour
            parts.append(self.text("disk.trend" if per_hour >= 0 else "disk.shrinking", rate=abs(per_hour)))
            if slope > 0:
                hours = round(usage.free / slope / 3600, 2)
                facts["time_to_full"] = round(hours * 3600)
                parts.append(self.text("disk.full_in", eta=round(hours * 3600)))
        if read_only is not None:
            parts.append(read_only)
        return joined(*parts) if len(parts) > 1 else parts[0], hours
