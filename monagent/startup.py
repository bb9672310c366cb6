"""Why the agent cannot start, said in one line with the path and the fix, and a sysexits code.

A state directory that cannot be created (a user whose HOME is ``/nonexistent``, a typo in
``[agent] state_dir``) is exit 73; one that exists but belongs to someone else is 77. The
service manager and the operator both get one line, never a traceback.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping

EX_CANTCREAT = 73
EX_NOPERM = 77

# The text, one place per message (for the catalogues).
CANNOT_CREATE = (
    "cannot create the state directory {path}: {reason}; set [agent] state_dir (or $STATE_DIRECTORY) "
    "to a directory this user ({user}) can create, or run as root{home}"
)
NOT_WRITABLE = (
    "the state directory {path} is not writable by this user ({user}; it belongs to {owner}); "
    "run as {run_as}, or set [agent] state_dir to a directory of your own"
)
NOT_A_DIRECTORY = "the state directory {path} is not a directory; remove it or set [agent] state_dir elsewhere"
HOME_HINT = " (the default is under $HOME, which is {home})"


class StartFailure(Exception):
    """The agent cannot start; ``str()`` is the one line to log, ``code`` the exit status."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


def _user(uid: int) -> str:
    import pwd

    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"


def prepare_state_dir(path: Path, environ: Mapping[str, str]) -> None:
    """Create ``path`` (0750) if needed and make sure this process can write it; raise :class:`StartFailure`."""
    path = Path(path)
    user = _user(os.geteuid())
    try:
        path.mkdir(parents=True, exist_ok=True, mode=0o750)
    except FileExistsError:
        raise StartFailure(EX_CANTCREAT, NOT_A_DIRECTORY.format(path=path)) from None
    except OSError as exc:
        home = environ.get("HOME", "")
        in_home = bool(home) and not environ.get("STATE_DIRECTORY") and str(path).startswith(home.rstrip("/") + "/")
        raise StartFailure(
            EX_CANTCREAT,
            CANNOT_CREATE.format(
                path=path,
                reason=exc.strerror or exc,
                user=user,
                home=HOME_HINT.format(home=home) if in_home else "",
            ),
        ) from None
    if not os.access(path, os.W_OK | os.X_OK):
        try:
            owner = _user(path.stat().st_uid)
        except OSError:
            owner = "another user"
        run_as = "root" if owner == "root" else f"{owner} or root"
        raise StartFailure(EX_NOPERM, NOT_WRITABLE.format(path=path, user=user, owner=owner, run_as=run_as))


__all__ = ["EX_CANTCREAT", "EX_NOPERM", "StartFailure", "prepare_state_dir"]
