"""Warnings for secrets that other users can read.

A DingTalk webhook or signing secret in ``agent.toml`` (or in a ``*_file`` beside it)
lets anyone who reads it post to the group. :func:`secret_warnings` names each such file
that is readable by "others" (the mode's last triplet, with every directory above it
searchable), and the ``chmod`` that fixes it. The raw file is read again because only it
tells an inline secret from a ``${ENV}`` reference, and where a ``*_file`` points.
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path
from typing import Any, Iterator, List, Mapping, Optional, Tuple

try:
    import tomllib  # novermin - tomli below on Python < 3.11
except ImportError:  # Python < 3.11
    import tomli as tomllib  # type: ignore[no-redef]

# Keys read with confread.Section.secret(): the value, KEY_file or KEY_credential.
SECRET_KEYS = frozenset({"secret", "password", "bearer_token", "access_token", "token"})
# Keys that are secrets only inside [notifiers] (a DingTalk webhook URL carries its access token).
NOTIFIER_SECRET_KEYS = frozenset({"webhook", "url"})

_ENV_ONLY = re.compile(r"^\s*\$\{[A-Za-z_][A-Za-z0-9_]*\}\s*$")
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def readable_by_others(path: Path) -> bool:
    """True when a user outside the file's owner and group can read ``path``."""
    try:
        if not path.stat().st_mode & stat.S_IROTH:
            return False
        return all(parent.stat().st_mode & stat.S_IXOTH for parent in path.resolve().parents)
    except OSError:
        return False


def _secret_keys(data: Mapping[str, Any], prefix: Tuple[str, ...] = ()) -> Iterator[Tuple[Tuple[str, ...], Any]]:
    """Every ``(dotted path, value)`` whose key names a secret or a secret's ``_file``."""
    in_notifiers = prefix[:1] == ("notifiers",)
    for key, value in data.items():
        path = prefix + (key,)
        if isinstance(value, dict):
            yield from _secret_keys(value, path)
            continue
        stem = key[: -len("_file")] if key.endswith("_file") else key
        if stem in SECRET_KEYS or (in_notifiers and stem in NOTIFIER_SECRET_KEYS):
            yield path, value


def _message(path: Path, what: str) -> str:
    mode = stat.S_IMODE(path.stat().st_mode)
    return f"{path} holds a secret ({what}) and other users can read it (mode {mode:04o}); run: chmod o-r {path}"


def secret_warnings(config_path: Path, config: object = None, *, environ: Optional[Mapping[str, str]] = None) -> List[str]:
    """One warning per file holding a secret that other users can read.

    ``config`` (the loaded :class:`~monagent.config.Config`) is accepted for the caller's
    convenience and not needed: the raw file says where each secret comes from.
    """
    env = os.environ if environ is None else environ
    config_path = Path(config_path)
    try:
        data = tomllib.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return []  # the config loader reports an unreadable file
    inline: List[str] = []
    files: List[Tuple[str, Path]] = []
    for keys, value in _secret_keys(data):
        if not isinstance(value, str) or not value.strip():
            continue
        dotted = ".".join(keys)
        if keys[-1].endswith("_file"):
            expanded = _ENV_REF.sub(lambda m: env.get(m.group(1), ""), value)
            target = Path(expanded).expanduser()
            files.append((dotted, target if target.is_absolute() else config_path.parent / target))
        elif not _ENV_ONLY.match(value):
            inline.append(dotted)
    warnings = []
    if inline and readable_by_others(config_path):
        warnings.append(_message(config_path, ", ".join(inline)))
    for dotted, target in files:
        if readable_by_others(target):
            warnings.append(_message(target, dotted))
    return warnings


secret_file_warnings = secret_warnings

__all__ = ["readable_by_others", "secret_file_warnings", "secret_warnings"]
