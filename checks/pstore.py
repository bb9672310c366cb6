"""Reading the dying kernel's log that firmware or reserved RAM kept: pstore records.

The kernel writes its log at a panic or an oops to a pstore backend (UEFI variables ``efi``,
ACPI ERST ``erst``, reserved RAM ``ramoops``); on the next boot the records appear in
``/sys/fs/pstore`` as ``dmesg-<backend>-<id>`` files, and ``systemd-pstore.service`` moves them to
``/var/lib/systemd/pstore/`` (efi/erst parts of one dump into a sub-directory named after the
record id without its last six digits, with a joined ``dmesg.txt``; ramoops records to the top).
A file ending in ``.enc.z`` is a record the kernel could not decompress (deflate).

One dump is often split into parts: every part starts with a ``Panic#N PartM`` (or ``Oops#N``)
header line, Part1 holding the newest lines. :func:`read_records` finds every dump in the given
directories, joins its parts oldest first and parses the reason with the kdump watcher's parser.
Nothing here deletes, moves or writes a record (that is systemd-pstore's job). Runs in a worker
process: the request and the answer are plain, picklable values.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
import zlib
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

from monagent.checks.kdump_reason import CrashReport, parse_dmesg

LIVE_DIR = "/sys/fs/pstore"
ARCHIVE_DIR = "/var/lib/systemd/pstore"
MAX_RECORD_BYTES = 1 << 20  # a record is a few KiB; a bigger file is not a kernel log chunk
MAX_FILES = 2000

_NAME = re.compile(r"^dmesg-(?P<backend>[a-z0-9_]+)-(?P<id>\d+)(?P<enc>\.enc\.z)?$")
_HEADER = re.compile(r"^(?P<reason>[A-Za-z_ ]+)#(?P<count>\d+) Part(?P<part>\d+)\s*$")
_JOINED_SEPARATOR = re.compile(r"^(dmesg-[a-z0-9_]+-\d+(?:\.enc\.z)?):$", re.MULTILINE)
_CPER_BACKENDS = ("efi", "erst")  # record id = (time * 100 + part) * 1000 + count: group like systemd-pstore
_GROUP_IGNORE = 6


@dataclass(frozen=True)
class PstoreRecord:
    """One kernel log dump, its parts joined oldest first."""

    ident: str  # a digest of the joined text: the same dump keeps it when systemd-pstore moves it
    backend: str
    reason: str  # Panic, Oops, Emergency, Shutdown, ... (the header's word)
    paths: Tuple[str, ...]
    mtime: float
    text: str
    report: CrashReport
    note: str = ""  # a part that could not be decompressed or read

    @property
    def panic(self) -> bool:
        return self.reason.lower() in ("panic", "oops") or bool(self.report.panic)


@dataclass(frozen=True)
class _Part:
    path: str
    backend: str
    group: str
    reason: str
    count: int
    part: int
    mtime: float
    text: str
    note: str


def read_records(directories: Sequence[str] = (LIVE_DIR, ARCHIVE_DIR)) -> Tuple[List[PstoreRecord], List[str]]:
    """Every dmesg dump found in ``directories`` (and their sub-directories, one level), and the
    problems met (a directory that cannot be read, a record that cannot be decoded)."""
    parts: List[_Part] = []
    problems: List[str] = []
    joined: List[Tuple[str, str, float]] = []
    for directory in directories:
        _collect(directory, parts, joined, problems, depth=0)
    records = _join(parts)
    known = {path for record in records for path in record.paths}
    for path, text, mtime in joined:  # a dmesg.txt whose part files are gone: read the joined copy
        names = _JOINED_SEPARATOR.findall(text)
        if names and not any(os.path.join(os.path.dirname(path), n) in known for n in names):
            records.extend(_join(_split_joined(path, text, mtime)))
    records.sort(key=lambda r: r.mtime)
    unique: Dict[str, PstoreRecord] = {}
    for record in records:  # the same dump still in /sys/fs/pstore and already archived
        unique.setdefault(record.ident, record)
    return list(unique.values()), problems


def _collect(directory: str, parts: List[_Part], joined: List[Tuple[str, str, float]], problems: List[str], depth: int) -> None:
    try:
        names = sorted(os.listdir(directory))[:MAX_FILES]
    except FileNotFoundError:
        return
    except OSError as exc:
        problems.append(f"cannot read {directory}: {exc.strerror or exc}")
        return
    for name in names:
        path = os.path.join(directory, name)
        try:
            st = os.lstat(path)
        except OSError:
            continue
        if stat.S_ISDIR(st.st_mode) and depth == 0:
            _collect(path, parts, joined, problems, depth + 1)
            continue
        if not stat.S_ISREG(st.st_mode) or st.st_size > MAX_RECORD_BYTES:
            continue
        if name == "dmesg.txt":
            text = _read_text(path, problems)
            if text is not None:
                joined.append((path, text, st.st_mtime))
            continue
        match = _NAME.match(name)
        if match is None:
            continue
        part = _read_part(path, match, st.st_mtime, problems)
        if part is not None:
            parts.append(part)


def _read_text(path: str, problems: List[str]) -> Optional[str]:
    try:
        with open(path, "rb") as handle:
            return handle.read(MAX_RECORD_BYTES).decode("utf-8", errors="replace")
    except OSError as exc:
        problems.append(f"cannot read {path}: {exc.strerror or exc}")
        return None


def _read_part(path: str, match: re.Match[str], mtime: float, problems: List[str]) -> Optional[_Part]:
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_RECORD_BYTES)
    except OSError as exc:
        problems.append(f"cannot read {path}: {exc.strerror or exc}")
        return None
    note = ""
    if match.group("enc"):
        decoded = _inflate(data)
        if decoded is None:
            note = f"{os.path.basename(path)} is compressed in a format this agent cannot read"
            problems.append(f"{path}: {note}")
            decoded = b""
        data = decoded
    return _part(path, match.group("backend"), match.group("id"), data.decode("utf-8", errors="replace"), mtime=mtime, note=note)


def _part(path: str, backend: str, ident: str, text: str, *, mtime: float, note: str) -> _Part:
    first, _, rest = text.partition("\n")
    header = _HEADER.match(first.strip())
    if header is not None:
        reason, count, number, body = header.group("reason"), int(header.group("count")), int(header.group("part")), rest
    else:
        reason, count, number, body = "", 0, 1, text
    if backend in _CPER_BACKENDS and len(ident) > _GROUP_IGNORE:
        group = ident[:-_GROUP_IGNORE]
    else:
        group = ""  # ramoops: one record slot per part; the header ties the parts together
    key = f"{os.path.dirname(path)}|{backend}|{group}|{reason}#{count}"
    return _Part(path, backend, key, reason, count, number, mtime, body, note)


def _inflate(data: bytes) -> Optional[bytes]:
    """The kernel's pstore compression is deflate: raw, or with a zlib or gzip header."""
    for wbits in (-15, 15, 31):
        try:
            return zlib.decompressobj(wbits).decompress(data, MAX_RECORD_BYTES * 4)
        except zlib.error:
            continue
    return None


def _split_joined(path: str, text: str, mtime: float) -> List[_Part]:
    """systemd-pstore's dmesg.txt: ``dmesg-efi-<id>:`` lines, each followed by that part's text."""
    pieces = _JOINED_SEPARATOR.split(text)
    parts = []
    for name, body in zip(pieces[1::2], pieces[2::2]):
        match = _NAME.match(name)
        if match is not None:
            parts.append(_part(path, match.group("backend"), match.group("id"), body.lstrip("\n"), mtime=mtime, note=""))
    return parts


def _join(parts: Sequence[_Part]) -> List[PstoreRecord]:
    groups: Dict[str, List[_Part]] = {}
    for part in parts:
        groups.setdefault(part.group, []).append(part)
    records = []
    for group in groups.values():
        members = sorted(group, key=lambda p: -p.part)  # the highest part holds the oldest lines
        text = "".join(p.text if p.text.endswith("\n") or not p.text else p.text + "\n" for p in members)
        first = members[0]
        records.append(
            PstoreRecord(
                ident="pstore:" + hashlib.sha256((text or "|".join(p.path for p in members)).encode()).hexdigest()[:20],
                backend=first.backend,
                reason=first.reason or "unknown",
                paths=tuple(sorted(p.path for p in members)),
                mtime=max(p.mtime for p in members),
                text=text,
                report=parse_dmesg(text),
                note="; ".join(p.note for p in members if p.note),
            )
        )
    return records
