"""A FUSE filesystem whose statfs never answers: what a dead NFS server looks like to statvfs.

It speaks the kernel's FUSE protocol on /dev/fuse directly (no libfuse, no PyPI
binding): INIT is answered, GETATTR describes an empty root directory, STATFS is
read and never answered, so ``os.statvfs(mountpoint)`` blocks in the kernel until
the caller is killed. Needs root and /dev/fuse; :func:`mount_hanging` raises
:class:`Unavailable` where FUSE cannot be mounted, so tests skip cleanly.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import select
import struct
import threading
from pathlib import Path

FUSE_GETATTR = 3
FUSE_STATFS = 17
FUSE_INIT = 26
NO_REPLY = {2, 36, 42}  # FORGET, INTERRUPT, BATCH_FORGET
IN_HEADER = struct.Struct("=IIQQIIII")
OUT_HEADER = struct.Struct("=IiQ")
MNT_DETACH = 2


class Unavailable(Exception):
    pass


class HangingFuse:
    """A mounted filesystem at ``mountpoint``; ``statfs_requests`` counts STATFS calls seen."""

    def __init__(self, mountpoint: Path) -> None:
        self.mountpoint = mountpoint
        self.statfs_requests = 0
        self._libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        try:
            self.fd = os.open("/dev/fuse", os.O_RDWR | os.O_CLOEXEC)
        except OSError as exc:
            raise Unavailable(f"/dev/fuse: {exc.strerror}") from None
        options = f"fd={self.fd},rootmode=40000,user_id=0,group_id=0".encode()
        if self._libc.mount(b"hangfs", str(mountpoint).encode(), b"fuse.hangfs", 0, options) != 0:
            err = ctypes.get_errno()
            os.close(self.fd)
            raise Unavailable(f"mount -t fuse: {os.strerror(err)}")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="hangfs", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            ready, _, _ = select.select([self.fd], [], [], 0.05)
            if not ready:
                continue
            try:
                request = os.read(self.fd, 1 << 20)  # more than max_write plus headers, or EINVAL
            except OSError:
                return  # ENODEV after the unmount
            _length, opcode, unique, _node, _uid, _gid, _pid, _pad = IN_HEADER.unpack_from(request)
            if opcode == FUSE_STATFS:
                self.statfs_requests += 1
                continue  # never answered: the caller blocks in the kernel
            if opcode in NO_REPLY:
                continue
            self._reply(unique, opcode, request[IN_HEADER.size :])

    def _reply(self, unique: int, opcode: int, body: bytes) -> None:
        if opcode == FUSE_INIT:
            _major, minor = struct.unpack_from("=II", body)
            payload = struct.pack("=IIIIHHIIHHI28x", 7, min(minor, 31), 0, 0, 16, 12, 4096, 1, 0, 0, 0)
            error = 0
        elif opcode == FUSE_GETATTR:
            # fuse_attr_out: attr_valid, attr_valid_nsec, dummy, then fuse_attr of a 0755 directory
            attr = struct.pack("=QQQQQQIIIIIIIIII", 1, 0, 0, 0, 0, 0, 0, 0, 0, 0o040755, 2, 0, 0, 0, 4096, 0)
            payload = struct.pack("=QII", 1, 0, 0) + attr
            error = 0
        else:
            payload, error = b"", -38  # ENOSYS
        try:
            os.write(self.fd, OUT_HEADER.pack(OUT_HEADER.size + len(payload), error, unique) + payload)
        except OSError:
            pass  # the request was interrupted meanwhile

    def close(self) -> None:
        self._libc.umount2(str(self.mountpoint).encode(), MNT_DETACH)
        self._stop.set()
        self._thread.join()
        os.close(self.fd)  # aborts the connection: anything still blocked on it gets ENOTCONN


def mount_hanging(mountpoint: Path) -> HangingFuse:
    if os.geteuid() != 0:
        raise Unavailable("mounting FUSE needs root here")
    mountpoint.mkdir(parents=True, exist_ok=True)
    return HangingFuse(mountpoint)
