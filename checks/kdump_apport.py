"""Reading the kernel log out of an Ubuntu apport ``linux-image-*-<stamp>.crash`` report.

apport treats a report whose atime is newer than its mtime as already seen, so reading one
must not change its atime (docs/design/kdump-layouts.md 2.2): the file is opened with ``O_NOATIME``
where the kernel permits it, and otherwise its atime is put back with ``os.utime``.
Binary values in the report format are ``Key: base64`` followed by one base64 chunk of a
gzip stream per continuation line; text values continue on lines starting with a space.
"""

from __future__ import annotations

import base64
import binascii
import gzip
import os
import stat
import zlib
from typing import List

REPORT_LIMIT = 8 * 1024 * 1024
_NOATIME = getattr(os, "O_NOATIME", 0)
_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


def read_report(dir_fd: int, name: str, *, want_dmesg: bool = True) -> str:
    """The ``VmCoreDmesg`` text of a ``ProblemType: KernelCrash`` report, or "" when absent."""
    data = _read_preserving_atime(dir_fd, name, REPORT_LIMIT if want_dmesg else 4096)
    if not data.startswith(b"ProblemType: KernelCrash") or not want_dmesg:
        return ""
    return vmcore_dmesg(data)


def _read_preserving_atime(dir_fd: int, name: str, limit: int) -> bytes:
    try:
        before = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except OSError:
        return b""
    if not stat.S_ISREG(before.st_mode):
        return b""
    try:
        fd = os.open(name, _FLAGS | _NOATIME, dir_fd=dir_fd)
        restore = False
    except PermissionError:  # O_NOATIME needs ownership or CAP_FOWNER
        try:
            fd = os.open(name, _FLAGS, dir_fd=dir_fd)
        except OSError:
            return b""
        restore = True
    except OSError:
        return b""
    try:
        data = os.pread(fd, limit, 0)
    finally:
        os.close(fd)
    if restore or _NOATIME == 0:
        try:
            os.utime(name, ns=(before.st_atime_ns, before.st_mtime_ns), dir_fd=dir_fd, follow_symlinks=False)
        except OSError:
            pass  # best effort: a report we may read but not touch keeps whatever the kernel did
    return data


def vmcore_dmesg(data: bytes) -> str:
    """Decode the ``VmCoreDmesg`` field (gzip+base64 chunks, or plain text continuation lines)."""
    lines = data.split(b"\n")
    for i, line in enumerate(lines):
        if not line.startswith(b"VmCoreDmesg:"):
            continue
        value = line[len(b"VmCoreDmesg:") :].strip()
        body: List[bytes] = []
        for cont in lines[i + 1 :]:
            if not cont.startswith(b" "):
                break
            body.append(cont[1:])
        if value == b"base64":
            return _decode_binary(body)
        return b"\n".join([value, *body]).decode("utf-8", errors="replace")
    return ""


def _decode_binary(chunks: List[bytes]) -> str:
    try:
        raw = b"".join(base64.b64decode(chunk) for chunk in chunks)
        text = gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else zlib.decompress(raw)
    except (binascii.Error, OSError, EOFError, zlib.error):
        return ""
    return text.decode("utf-8", errors="replace")
