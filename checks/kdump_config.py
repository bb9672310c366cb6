"""Where the host's kdump tooling says dumps go (docs/design/kdump-layouts.md section 6.1).

- Debian/Ubuntu: ``KDUMP_COREDIR`` in ``/etc/default/kdump-tools`` (shell assignments);
- RHEL/Fedora: ``path`` in ``/etc/kdump.conf``; with a local filesystem target
  (``ext4 UUID=...``) the path is relative to where that device is mounted; a remote target
  (``nfs``, ``ssh``) writes to another host, and ``path`` still names where a
  ``dump_to_rootfs`` fallback or a raw target's copy lands locally;
- SUSE: ``KDUMP_SAVEDIR`` in ``/etc/sysconfig/kdump`` when it is a path or a ``file://`` URL.

Files are read from ``etc_root`` so tests point it at a temporary tree. Unreadable or
absent files add nothing: the default ``/var/crash`` is always scanned.
"""

from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING, Callable, List, Optional, Sequence

if TYPE_CHECKING:
    import logging


def log() -> logging.Logger:
    """This module's logger; ``logging`` is imported at the first line logged (start-up, #17)."""
    import logging

    return logging.getLogger(__name__)


_FS_TARGETS = ("ext2", "ext3", "ext4", "xfs", "btrfs", "minix", "vfat")

# mountpoint_of(device_spec) -> mount point or None (device_spec as written: /dev/sdb1, UUID=..., LABEL=...)
MountLookup = Callable[[str], Optional[str]]


def configured_roots(etc_root: str, mountpoint_of: MountLookup) -> List[str]:
    """Dump roots named by the kdump configuration files under ``etc_root``, in file order."""
    roots: List[str] = []
    debian = _shell_value(os.path.join(etc_root, "default/kdump-tools"), "KDUMP_COREDIR")
    if debian:
        roots.append(debian)
    rhel = _kdump_conf_path(os.path.join(etc_root, "kdump.conf"), mountpoint_of)
    if rhel:
        roots.append(rhel)
    suse = _shell_value(os.path.join(etc_root, "sysconfig/kdump"), "KDUMP_SAVEDIR")
    if suse:
        local = _suse_local(suse)
        if local:
            roots.append(local)
    return [r for r in roots if os.path.isabs(r)]


def _read_lines(path: str) -> Sequence[str]:
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return fh.read(256 * 1024).splitlines()
    except FileNotFoundError:
        return ()
    except OSError as exc:
        log().warning("cannot read %s: %s", path, exc.strerror or exc)
        return ()


def _shell_value(path: str, name: str) -> str:
    """The last ``NAME=value`` assignment (quotes removed), as the shell that sources it would see."""
    value = ""
    pattern = re.compile(rf"^\s*(?:export\s+)?{name}=(.*)$")
    for number, line in enumerate(_read_lines(path), start=1):
        match = pattern.match(line)
        if not match:
            continue
        try:
            import shlex  # only when the file sets it

            words = shlex.split(match.group(1), comments=True)
        except ValueError:
            log().warning("%s:%d: %s: cannot parse the value", path, number, name)
            continue
        value = words[0] if words else ""
    return value


def _kdump_conf_path(path: str, mountpoint_of: MountLookup) -> str:
    dump_path = "/var/crash"
    target_mount: Optional[str] = ""
    seen_any = False
    for line in _read_lines(path):
        words = line.split("#", 1)[0].split()
        if len(words) < 2:
            continue
        seen_any = True
        key, value = words[0], words[1]
        if key == "path":
            dump_path = value
        elif key in _FS_TARGETS:
            target_mount = mountpoint_of(value)
            if target_mount is None:
                log().info("%s: %s target %s is not mounted; its dumps cannot be watched here", path, key, value)
    if not seen_any or target_mount is None:
        return ""
    if target_mount:
        return os.path.join(target_mount, dump_path.lstrip("/"))
    return dump_path


def _suse_local(value: str) -> str:
    if value.startswith("file://"):
        return value[len("file://") :]
    if "://" in value:
        return ""
    return value
