"""Where the installed service gets its secrets, for commands run from an admin shell.

The service reads ``*_credential`` keys from ``$CREDENTIALS_DIRECTORY`` (systemd's
``LoadCredential=``) and ``${VAR}`` from its own environment. A shell has neither, so
``notify-test`` and ``validate`` read the unit instead: ``LoadCredential=ID:PATH`` (a
relative or missing PATH is looked up in the credential stores), ``LoadCredentialEncrypted=``
(decrypted with ``systemd-creds``, as root), ``SetCredential=``, ``Environment=`` and
``EnvironmentFile=``, from the unit file and its drop-ins, later ones overriding earlier ones.
Values are read only when this user may read them; nothing here is ever printed.

``$MONAGENT_UNIT`` names another unit (a name, or the path of a unit file).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterator, List, Mapping, Optional, Tuple

from monagent.records import config_record

UNIT_DIRS = (
    Path("/etc/systemd/system"),
    Path("/run/systemd/system"),
    Path("/usr/local/lib/systemd/system"),
    Path("/usr/lib/systemd/system"),
    Path("/lib/systemd/system"),
)
CREDSTORES = (Path("/etc/credstore"), Path("/run/credstore"), Path("/usr/local/lib/credstore"), Path("/usr/lib/credstore"))
ENCRYPTED_CREDSTORES = tuple(Path(f"{p}.encrypted") for p in CREDSTORES)
SPECIFIERS = {"%%": "%", "%E": "/etc", "%S": "/var/lib", "%t": "/run", "%C": "/var/cache", "%L": "/var/log"}


@config_record
class Setting:
    value: str
    file: Path


@dataclass
class Unit:
    """The [Service] settings of one unit that matter here, in the order systemd applies them."""

    path: Optional[Path] = None
    settings: Dict[str, List[Setting]] = field(default_factory=dict)

    def add(self, key: str, value: str, file: Path) -> None:
        if value == "":  # an empty assignment resets the list, as in systemd
            self.settings[key] = []
        else:
            self.settings.setdefault(key, []).append(Setting(value, file))

    def get(self, key: str) -> List[Setting]:
        return self.settings.get(key, [])


def _expand(value: str) -> str:
    for spec, text in SPECIFIERS.items():
        value = value.replace(spec, text)
    return value


def _lines(text: str) -> Iterator[str]:
    """Logical lines of a unit file: comments dropped, backslash continuations joined."""
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line[0] in "#;"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        yield pending + line
        pending = ""
    if pending:
        yield pending


def parse_unit_text(unit: Unit, text: str, file: Path) -> None:
    section = ""
    for line in _lines(text):
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
        elif section == "Service" and "=" in line:
            key, _, value = line.partition("=")
            unit.add(key.strip(), value.strip(), file)


def find_unit(name: str = "monagent.service") -> Unit:
    """The unit file (the first of the unit directories that has it) and its drop-ins (by file name)."""
    unit = Unit()
    if "/" in name:
        main: Optional[Path] = Path(name)
        dirs: Tuple[Path, ...] = (Path(name).parent,)
        name = Path(name).name
    else:
        main = next((d / name for d in UNIT_DIRS if (d / name).is_file()), None)
        dirs = UNIT_DIRS
    if main is None or not main.is_file():
        return unit
    unit.path = main
    files = [main]
    dropins: Dict[str, Path] = {}
    for directory in reversed(dirs):  # /etc last: its drop-in of a name wins
        for conf in sorted((directory / f"{name}.d").glob("*.conf")):
            dropins[conf.name] = conf
    files += [dropins[n] for n in sorted(dropins)]
    for file in files:
        try:
            parse_unit_text(unit, file.read_text(encoding="utf-8"), file)
        except (OSError, UnicodeDecodeError):
            continue
    return unit


def _read(path: Path) -> Optional[str]:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None


def _decrypt(name: str, path: Path) -> Optional[str]:
    import subprocess  # only for an encrypted credential: validate and check need it rarely

    try:
        done = subprocess.run(
            ["systemd-creds", "decrypt", f"--name={name}", str(path), "-"], capture_output=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.decode("utf-8", "replace") if done.returncode == 0 else None


def _parse_environment(value: str) -> Dict[str, str]:
    out = {}
    import shlex  # only for a unit with Environment=

    try:
        words = shlex.split(value)
    except ValueError:
        words = value.split()
    for word in words:
        key, sep, val = word.partition("=")
        if sep:
            out[key] = val
    return out


def _parse_env_file(text: str) -> Dict[str, str]:
    out: Dict[str, str] = {}
    for line in _lines(text):
        out.update(_parse_environment(line[len("export ") :] if line.startswith("export ") else line))
    return out


class ServiceCredentials:
    """Finds a credential or a variable where the unit gives it to the service."""

    def __init__(self, unit: Optional[Unit] = None, environ: Optional[Mapping[str, str]] = None) -> None:
        env = os.environ if environ is None else environ
        self.unit = unit if unit is not None else find_unit(env.get("MONAGENT_UNIT") or "monagent.service")

    # -- credentials
    def _candidates(self, name: str) -> List[Tuple[str, Path, str]]:
        """``(kind, path, description)`` for credential ``name``, the last setting first."""
        found: List[Tuple[str, Path, str]] = []
        for key, stores in (("LoadCredential", CREDSTORES), ("LoadCredentialEncrypted", ENCRYPTED_CREDSTORES)):
            for setting in reversed(self.unit.get(key)):
                ident, _, path = _expand(setting.value).partition(":")
                if ident != name:
                    continue
                where = f"{key}={setting.value} in {setting.file}"
                if path.startswith("/"):
                    found.append((key, Path(path), where))
                else:
                    found += [(key, store / (path or name), where) for store in stores]
        if not found:  # systemd >= 254 also reads ImportCredential= from the stores; the plain stores then
            for kind, stores in (("LoadCredential", CREDSTORES), ("LoadCredentialEncrypted", ENCRYPTED_CREDSTORES)):
                found += [(kind, store / name, f"the credential store {store}") for store in stores]
        return found

    def credential(self, name: str) -> Optional[Tuple[str, str]]:
        """``(value, where)`` when this user can read it, else None."""
        for setting in reversed(self.unit.get("SetCredential")):
            ident, _, value = setting.value.partition(":")
            if ident == name:
                return value, f"SetCredential= in {setting.file}"
        for kind, path, where in self._candidates(name):
            if not path.exists():
                continue
            text = _decrypt(name, path) if kind == "LoadCredentialEncrypted" else _read(path)
            if text is not None:
                return text, f"{path} ({where})" if str(path) not in where else where
        return None

    def credential_source(self, name: str) -> Optional[str]:
        """Where the service gets credential ``name``, when the unit or a store says so."""
        for setting in reversed(self.unit.get("SetCredential")):
            if setting.value.partition(":")[0] == name:
                return f"SetCredential= in {setting.file}"
        for kind, path, where in self._candidates(name):
            if where.startswith(kind) or path.exists():
                return where if str(path) in where else f"{path} ({where})"
        return None

    # -- environment variables
    def _environment(self) -> Iterator[Tuple[Dict[str, str], str]]:
        """Each source of variables, the one that wins first (EnvironmentFile= overrides Environment=)."""
        for setting in reversed(self.unit.get("EnvironmentFile")):
            path = _expand(setting.value).lstrip("-")
            text = _read(Path(path))
            yield (_parse_env_file(text) if text is not None else {}), f"EnvironmentFile={path} in {setting.file}"
        for setting in reversed(self.unit.get("Environment")):
            yield _parse_environment(setting.value), f"Environment= in {setting.file}"

    def variable(self, name: str) -> Optional[Tuple[str, str]]:
        for values, where in self._environment():
            if name in values:
                return values[name], where
        return None

    def variable_source(self, name: str) -> Optional[str]:
        """Where the service gets ``$name``: the file that sets it, or an EnvironmentFile= this user cannot read."""
        unreadable = None
        for values, where in self._environment():
            if name in values:
                return where
            if not values and where.startswith("EnvironmentFile=") and unreadable is None:
                unreadable = where
        return unreadable
