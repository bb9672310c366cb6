"""One agent per state directory.

Two agents on one store would each take the other for crashed (an "unclean stop" notice to
the group), evaluate the same checks and send every alert twice. The running agent holds an
exclusive ``flock`` on ``STATE_DIR/agent.lock`` (released by the kernel when it exits, even
on SIGKILL) and writes its pid there for the message a second agent prints.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import IO, Optional

LOCK_NAME = "agent.lock"


class StateDirBusy(Exception):
    """Another agent holds the state directory; ``str()`` says which and what to do."""


class StateLock:
    def __init__(self, handle: Optional[IO[str]]) -> None:
        self._handle = handle

    def release(self) -> None:
        if self._handle is not None:
            self._handle.close()  # closing the descriptor drops the flock
            self._handle = None


def claim(state_dir: Path) -> StateLock:
    """Lock ``state_dir`` for this process or raise :class:`StateDirBusy`.

    A directory that cannot be created or written yields a lock that holds nothing: the
    store reports that problem itself when it opens.
    """
    path = Path(state_dir) / LOCK_NAME
    try:
        Path(state_dir).mkdir(parents=True, exist_ok=True, mode=0o750)
        handle = open(path, "a+", encoding="utf-8")
    except OSError:
        return StateLock(None)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.seek(0)
        holder = handle.read().strip()
        handle.close()
        who = f"another monagent (pid {holder})" if holder.isdigit() else "another monagent"
        raise StateDirBusy(
            f"{who} is running on the state directory {state_dir}; stop it first, or give this one its own [agent] state_dir"
        ) from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    return StateLock(handle)
