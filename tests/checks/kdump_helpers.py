"""Building real dump directory trees (docs/design/kdump-layouts.md section 1), and the kdump tests' fake Context."""

from __future__ import annotations

import base64
import gzip
import os
from pathlib import Path
from typing import Any, Callable, Optional, Union

from monagent import testing

DATA = Path(__file__).resolve().parent.parent / "data" / "kdump"
SYSRQ = (DATA / "fedora-5.4-sysrq-triggered-crash.vmcore-dmesg.txt").read_text(encoding="utf-8")
OOM = (DATA / "rhel7-3.10-panic-on-oom.dmesg.txt").read_text(encoding="utf-8")
NULL_DEREF = (DATA / "syzbot-5.6-null-pointer-dereference.dmesg.txt").read_text(encoding="utf-8")

NOW = 1_769_000_000.0  # 2026-01-21 12:53 UTC
BOOT = NOW - 600.0  # booted ten minutes ago
CRASH = BOOT - 120.0  # the capture kernel wrote the dump two minutes before this boot

FLATTENED = b"makedumpfile\x00\x00\x00\x00" + b"\x00" * 48
KDUMP_COMPRESSED = b"KDUMP   \x06\x00\x00\x00" + b"\x00" * 48
ELF = b"\x7fELF\x02\x01\x01" + b"\x00" * 57
GZIP = b"\x1f\x8b\x08\x00" + b"\x00" * 60

SUSE_README = """Kernel crashdump
----------------

dmesg status: saved successfully
vmcore status: saved successfully
Kernel version: 6.4.0-150600.23.7-default
Crash time: 2024-03-05 14:21:58
Dump time: 2024-03-05 14:22:31
"""
SUSE_PLACEHOLDER = (
    "This file will be overwritten when the dump is finished.\nIf you see this text the crash dump is likely incomplete.\n"
)


def put(path: Path, data: Union[str, bytes], when: float = CRASH) -> Path:
    """Write a file and give it the mtime/atime ``when``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        data = data.encode("utf-8")
    path.write_bytes(data)
    os.utime(path, (when, when))
    return path


def dump_dir(root: Path, name: str, files: dict, when: float = CRASH) -> Path:
    """A dump directory holding ``files`` (name -> content), every mtime ``when``."""
    directory = root / name
    directory.mkdir(parents=True, exist_ok=True)
    for file_name, content in files.items():
        put(directory / file_name, content, when)
    os.utime(directory, (when, when))
    return directory


def apport_kernel_report(dmesg: str, release: str = "6.8.0-51-generic") -> bytes:
    """An apport KernelCrash report as kdump-tools' hook writes it (VmCoreDmesg gzip+base64 chunks)."""
    packed = gzip.compress(dmesg.encode("utf-8"))
    chunks = [base64.b64encode(packed[i : i + 57]).decode("ascii") for i in range(0, len(packed), 57)]
    lines = [
        "ProblemType: KernelCrash",
        "Date: Wed Jan 21 07:24:03 2026",
        "Architecture: amd64",
        "DistroRelease: Ubuntu 24.04",
        f"Package: linux-image-{release} 6.8.0-51.52",
        f"Uname: Linux {release} x86_64",
        "VmCoreDmesg: base64",
        *[f" {chunk}" for chunk in chunks],
    ]
    return ("\n".join(lines) + "\n").encode("ascii")


BOOT_ID = "0e5c2a4f-6d3b-4f7e-9a51-2b8f0f3c1d77"


class FakeContext(testing.FakeContext):
    """monagent.testing.FakeContext at the kdump tests' clock; ``blocking`` replaces run_blocking (a worker pool)."""

    def __init__(
        self,
        proc_root: Path,
        *,
        now: float = NOW,
        boot: float = BOOT,
        blocking: Optional[Callable[..., Any]] = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(hostname="web01", now=now, proc_root=proc_root, boot_id=BOOT_ID, boot_time=boot, **kwargs)
        self._blocking = blocking

    def run_blocking(self, func: Callable[..., Any], *args: Any, timeout: float = 10.0, path: Optional[str] = None) -> Any:
        if self._blocking is None:
            return super().run_blocking(func, *args, timeout=timeout, path=path)
        self.calls.append((func.__qualname__, args, timeout))
        return self._blocking(func, *args, timeout=timeout)


def make_proc(tmp_path: Path, release: str = "6.1.0-18-amd64") -> Path:
    proc = tmp_path / "proc"
    put(proc / "sys/kernel/osrelease", release + "\n", NOW)
    return proc
