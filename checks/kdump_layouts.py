"""Recognising what each distribution's kdump tooling writes under a dump root (pure, no I/O).

docs/design/kdump-layouts.md section 1 and 6.1: entry names are matched with anchored regexes; a
directory's file names (plus the SUSE ``README.txt`` and the ``kdumpctl test`` status file)
say which file is the core, which is the kernel log, and whether the dump is complete,
still being written (a temporary name or a placeholder), failed, or gives no signal at all
(then only a settle window tells).
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from typing import Collection, Dict, Optional, Tuple

# Host part of a remote dump directory: an IP (v4, v6 with colons and zone) or a host name.
# Anchored and restricted, so a name carrying markdown or spaces is never taken for a dump.
_HOST = r"(?P<host>[A-Za-z0-9][A-Za-z0-9._:%-]*?)"
_COMPRESSED = r"(?:\.(?:gz|bz2|xz|lz4))?"

DEBIAN_DIR = re.compile(rf"^(?:{_HOST}-)?(?P<stamp>\d{{12}})$")
RHEL_DIR = re.compile(rf"^{_HOST}-(?P<stamp>\d{{4}}-\d{{2}}-\d{{2}}-\d{{2}}:\d{{2}}:\d{{2}})$")
RAW_OR_OLD_SUSE_DIR = re.compile(rf"^(?:{_HOST}-)?(?P<stamp>\d{{4}}-\d{{2}}-\d{{2}}-\d{{2}}:\d{{2}})$")
SUSE_DIR = re.compile(rf"^(?:{_HOST}-)?(?P<stamp>\d{{4}}-\d{{2}}-\d{{2}}-\d{{2}}-\d{{2}})$")
RHEL_TEST_DIR = re.compile(r"^kdump-test-(?P<stamp>\d+)-\d+$")
ABRT_DIR = re.compile(r"^vmcore-(?P<orig>.+)$")
FTP_DUMP = re.compile(rf"^{_HOST}-dump\.(?P<stamp>\d{{12}}){_COMPRESSED}$")
APPORT_KERNEL_REPORT = re.compile(r"^linux-image-(?P<release>[A-Za-z0-9._+~-]+)-(?P<stamp>\d{12})\.crash$")

_DEBIAN_CORE = re.compile(rf"^dump\.\d{{12}}{_COMPRESSED}$")
_DEBIAN_COPY = re.compile(r"^vmcore\.\d{12}$")
_DEBIAN_MARKER = re.compile(rf"^dump-incomplete{_COMPRESSED}$")
_DEBIAN_DMESG = re.compile(r"^dmesg\.\d{12}$")
_SPLIT_CORE = re.compile(r"^vmcore\d+$")
SUSE_PLACEHOLDER = "This file will be overwritten when the dump is finished"
SUSE_FINAL = "Kernel crashdump"


class Layout(str, enum.Enum):
    """Which tool wrote a dump; the value is what a message shows."""

    DEBIAN = "Debian/Ubuntu kdump-tools"
    DEBIAN_FTP = "Debian/Ubuntu kdump-tools (FTP target)"
    RHEL = "RHEL/Fedora kdump"
    RHEL_RAW = "RHEL/Fedora kdump (raw device target)"
    RHEL_TEST = "RHEL/Fedora kdumpctl test"
    SUSE = "SUSE kdump"
    SUSE_OLD = "SUSE kdumptool (before 2023)"
    ABRT = "ABRT spool copy"


class Signal(enum.Enum):
    """What the files themselves say about the dump."""

    COMPLETE = "complete"  # final name present, no temporary marker
    WRITING = "writing"  # a temporary name or placeholder: in progress, or failed when older than boot
    FAILED = "failed"  # the tool itself says the save failed (SUSE README, kdumpctl test status)
    NO_SIGNAL = "no_signal"  # no temporary name exists for this layout: wait for the settle window
    UNREADABLE = "unreadable"  # the agent may not list the directory (SUSE 0700 dirs without root)


@dataclass(frozen=True)
class EntryName:
    layout: Layout
    host: str = ""
    stamp: str = ""
    orig: str = ""  # ABRT: the /var/crash directory it was copied from


@dataclass(frozen=True)
class Shape:
    """The roles of a dump's files and its completion signal."""

    signal: Signal
    layout: Layout
    core: str = ""
    dmesg: str = ""
    note: str = ""
    kernel: str = ""  # SUSE README "Kernel version:"
    crash_time: str = ""  # SUSE README "Crash time:"


def recognise(name: str, is_dir: bool) -> Optional[EntryName]:
    """The layout an entry directly under a root belongs to, or None for anything else."""
    if not is_dir:
        match = FTP_DUMP.match(name)
        return EntryName(Layout.DEBIAN_FTP, match.group("host"), match.group("stamp")) if match else None
    if name.endswith(".new"):
        return None
    for pattern, layout in (
        (DEBIAN_DIR, Layout.DEBIAN),
        (RHEL_DIR, Layout.RHEL),
        (SUSE_DIR, Layout.SUSE),
        (RAW_OR_OLD_SUSE_DIR, Layout.RHEL_RAW),
        (RHEL_TEST_DIR, Layout.RHEL_TEST),
    ):
        match = pattern.match(name)
        if match:
            return EntryName(layout, match.groupdict().get("host") or "", match.group("stamp"))
    return None


def recognise_abrt(name: str) -> Optional[EntryName]:
    """An entry of the ABRT spool (``vmcore-<original dir>``), skipping ``.new`` copies in progress."""
    match = ABRT_DIR.match(name)
    if match is None or name.endswith(".new"):
        return None
    return EntryName(Layout.ABRT, orig=match.group("orig"))


def classify(entry: EntryName, names: Collection[str], readme: str = "", status: str = "") -> Shape:
    """The shape of a dump directory from its file names (and README/status text where needed)."""
    if entry.layout == Layout.DEBIAN:
        return _debian(names)
    if entry.layout == Layout.SUSE:
        return _suse(names, readme)
    if entry.layout == Layout.RHEL_RAW:
        if "README.txt" in names or "dmesg.txt" in names:
            return _suse_old(names, readme)
        return Shape(Signal.NO_SIGNAL, Layout.RHEL_RAW, core="vmcore" if "vmcore" in names else "")
    return _rhel(entry.layout, names, status)


def flat_dmesg_name(entry: EntryName) -> str:
    """The name of a Debian FTP dump's kernel log, beside it in the root."""
    return f"{entry.host}-dmesg.{entry.stamp}"


def flat_shape(entry: EntryName, dump_name: str, root_names: Collection[str]) -> Shape:
    """A Debian FTP dump: flat files, no temporary name, the dmesg beside it."""
    dmesg = flat_dmesg_name(entry)
    return Shape(Signal.NO_SIGNAL, Layout.DEBIAN_FTP, core=dump_name, dmesg=dmesg if dmesg in root_names else "")


def _debian(names: Collection[str]) -> Shape:
    cores = sorted(n for n in names if _DEBIAN_CORE.match(n))
    copies = sorted(n for n in names if _DEBIAN_COPY.match(n))
    markers = [n for n in names if _DEBIAN_MARKER.match(n)]
    dmesg = next(iter(sorted((n for n in names if _DEBIAN_DMESG.match(n)), reverse=True)), "")
    if copies and "vmcore-incomplete" not in names and not cores:
        note = "makedumpfile failed; plain copy of /proc/vmcore" if markers else ""
        return Shape(Signal.COMPLETE, Layout.DEBIAN, core=copies[0], dmesg=dmesg, note=note)
    if markers or "vmcore-incomplete" in names:
        core = markers[0] if markers else "vmcore-incomplete"
        return Shape(Signal.WRITING, Layout.DEBIAN, core=core, dmesg=dmesg)
    if cores:
        return Shape(Signal.COMPLETE, Layout.DEBIAN, core=cores[0], dmesg=dmesg)
    return Shape(Signal.NO_SIGNAL, Layout.DEBIAN, dmesg=dmesg)


def _rhel(layout: Layout, names: Collection[str], status: str) -> Shape:
    dmesg = (
        "vmcore-dmesg.txt"
        if "vmcore-dmesg.txt" in names
        else ("vmcore-dmesg-incomplete.txt" if "vmcore-dmesg-incomplete.txt" in names else "")
    )
    core = next((n for n in ("vmcore", "vmcore.flat") if n in names), "")
    if layout == Layout.ABRT:
        return Shape(Signal.COMPLETE if core else Signal.NO_SIGNAL, layout, core=core, dmesg=dmesg)
    if "vmcore-incomplete" in names:
        return Shape(Signal.WRITING, layout, core="vmcore-incomplete", dmesg=dmesg)
    if layout == Layout.RHEL_TEST:
        word = status.split(maxsplit=1)[0].lower() if status.split() else ""
        if word == "success":
            return Shape(Signal.COMPLETE, layout, core=core, dmesg=dmesg)
        signal = Signal.WRITING if word in ("fail", "") else Signal.FAILED
        return Shape(signal, layout, core=core, dmesg=dmesg, note=status.strip()[:200])
    if core:
        return Shape(Signal.COMPLETE, layout, core=core, dmesg=dmesg)
    if dmesg == "vmcore-dmesg-incomplete.txt":
        return Shape(Signal.WRITING, layout, dmesg=dmesg)
    return Shape(Signal.NO_SIGNAL, layout, dmesg=dmesg)


def _suse(names: Collection[str], readme: str) -> Shape:
    core = "vmcore" if "vmcore" in names else ""
    dmesg = "dmesg" if "dmesg" in names else ""
    fields = readme_fields(readme)
    kernel, crash_time = fields.get("kernel version", ""), fields.get("crash time", "")
    if readme.lstrip().startswith(SUSE_FINAL):
        vmcore_status = fields.get("vmcore status", "")
        lowered = vmcore_status.lower()
        if lowered.startswith(("error", "deleted")):
            return Shape(
                Signal.FAILED,
                Layout.SUSE,
                core=core,
                dmesg=dmesg,
                note=f"vmcore status: {vmcore_status}",
                kernel=kernel,
                crash_time=crash_time,
            )
        note = f"vmcore status: {vmcore_status}" if lowered.startswith("skipped") else ""
        return Shape(Signal.COMPLETE, Layout.SUSE, core=core, dmesg=dmesg, note=note, kernel=kernel, crash_time=crash_time)
    signal = Signal.WRITING if SUSE_PLACEHOLDER in readme else Signal.NO_SIGNAL
    return Shape(signal, Layout.SUSE, core=core, dmesg=dmesg)


def _suse_old(names: Collection[str], readme: str) -> Shape:
    split = sorted(n for n in names if _SPLIT_CORE.match(n))
    core = "vmcore" if "vmcore" in names else (split[0] if split else "")
    dmesg = "dmesg.txt" if "dmesg.txt" in names else ""
    fields = readme_fields(readme)
    signal = Signal.COMPLETE if "README.txt" in names else Signal.NO_SIGNAL
    return Shape(
        signal,
        Layout.SUSE_OLD,
        core=core,
        dmesg=dmesg,
        kernel=fields.get("kernel version", ""),
        crash_time=fields.get("crash time", ""),
    )


def readme_fields(text: str) -> Dict[str, str]:
    """``Key: value`` lines of a SUSE README.txt, keys lower-cased."""
    fields: Dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() and len(key) < 40:
            fields.setdefault(key.strip().lower(), value.strip())
    return fields


def sniff_format(head: bytes) -> str:
    """The dump format from its first 16 bytes (docs/design/kdump-layouts.md section 3)."""
    for magic, name in _MAGIC:
        if head.startswith(magic):
            return name
    return "empty" if not head else "unknown"


_MAGIC: Tuple[Tuple[bytes, str], ...] = (
    (b"makedumpfile", "flattened"),
    (b"KDUMP   ", "kdump-compressed"),
    (b"DISKDUMP", "diskdump"),
    (b"\x7fELF", "ELF"),
    (b"\x1f\x8b", "gzip (flattened inside)"),
    (b"BZh", "bzip2 (flattened inside)"),
    (b"\xfd7zXZ\x00", "xz (flattened inside)"),
    (b"\x04\x22\x4d\x18", "lz4 (flattened inside)"),
)
