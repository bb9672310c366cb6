"""``monagent install`` / ``uninstall``: put the systemd unit, the sysusers.d entry and a
default config in place, and take them away again.

The installed unit's ``ExecStart`` names the ``monagent`` that ran the install, so a venv
or pipx install works as well as a system one. The default ``agent.toml`` is written only
when none exists, mode 0640 root:monagent (it may hold a robot's secret). What install
wrote is listed in a manifest under ``/etc/monagent`` (root-owned, unlike the state
directory, which belongs to the agent's user: a manifest there would let that user make
root delete files). ``uninstall`` removes what the manifest lists and keeps the config
and the state. Everything takes a ``root`` so tests install into a temporary tree.
"""

from __future__ import annotations

import enum
import grp
import json
import os
import re
import shlex
import stat
import sys
from dataclasses import field
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

from monagent import __version__
from monagent.records import record

UNIT_NAME = "monagent.service"
GROUP = "monagent"
UNIT = Path("/etc/systemd/system") / UNIT_NAME
SYSUSERS = Path("/etc/sysusers.d/monagent.conf")
CONFIG = Path("/etc/monagent/agent.toml")
MANIFEST = Path("/etc/monagent/.install-manifest")
# The only files uninstall ever removes, whatever a manifest says.
OWNED = (UNIT, SYSUSERS)

_PACKAGE_DIR = Path(__file__).resolve().parent
# Package data first (a wheel), then the checkout the package runs from (an editable install).
_SOURCES = {
    "unit": (_PACKAGE_DIR / "data" / "monagent.service", _PACKAGE_DIR.parent / "systemd" / "monagent.service"),
    "sysusers": (_PACKAGE_DIR / "data" / "monagent-sysusers.conf", _PACKAGE_DIR.parent / "systemd" / "monagent-sysusers.conf"),
    "config": (_PACKAGE_DIR / "data" / "agent.toml", _PACKAGE_DIR.parent / "agent.toml"),
}


class InstallError(Exception):
    """Install or uninstall cannot go on; the message says why and what to do."""


class Action(enum.Enum):
    CREATED = "created"
    UPDATED = "updated"
    UNCHANGED = "unchanged"
    KEPT = "kept"
    REMOVED = "removed"
    ABSENT = "absent"


@record
class Step:
    action: Action
    path: Path  # where the file is on disk (under the root)
    note: str = ""


@record
class Report:
    steps: Tuple[Step, ...]
    commands: Tuple[str, ...] = ()  # what the administrator runs next
    warnings: Tuple[str, ...] = field(default_factory=tuple)
    program: str = "monagent"  # how to run this monagent from a shell (it may not be on PATH)


# ---------------------------------------------------------------- the executable


def monagent_command(argv0: Optional[str] = None, executable: Optional[str] = None) -> List[str]:
    """The argv that starts this monagent: the script that ran (``sys.argv[0]``), else the
    console script beside the interpreter (a venv's ``bin/``), else ``python -m monagent``."""
    argv0 = sys.argv[0] if argv0 is None else argv0
    executable = sys.executable if executable is None else executable
    candidates = [Path(argv0).resolve()] if argv0 and Path(argv0).name.startswith("monagent") else []
    if executable:
        candidates.append(Path(os.path.abspath(executable)).parent / "monagent")
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return [str(candidate)]
    if not executable:
        raise InstallError("cannot tell which monagent to start: sys.executable is empty")
    return [os.path.abspath(executable), "-m", "monagent"]


def _quote(word: str) -> str:
    """One ExecStart word: ``$`` and ``%`` escaped, quoted when it holds a space or quote."""
    word = word.replace("%", "%%").replace("$", "$$")
    if re.search(r"[\s\"'\\;]", word):
        return '"' + word.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return word


def render_unit(template: str, command: Sequence[str]) -> str:
    """The unit text with ExecStart's program replaced by ``command``."""
    pattern = re.compile(r"^ExecStart=(\S+)", re.MULTILINE)
    if not pattern.search(template):
        raise InstallError("the shipped unit has no ExecStart= line")
    return pattern.sub(lambda _m: "ExecStart=" + " ".join(_quote(w) for w in command), template, count=1)


def unreachable_dir(path: Path) -> Optional[Path]:
    """The first directory above ``path`` that other users cannot enter, or None."""
    for parent in reversed(path.parents):
        try:
            if not parent.stat().st_mode & stat.S_IXOTH:
                return parent
        except OSError:
            return None  # not there (a staged install): nothing to say
    return None


# ---------------------------------------------------------------- install


def _source(kind: str, given: Optional[Path] = None) -> Path:
    if given is not None:
        if not given.is_file():
            raise InstallError(f"{given} is not a file")
        return given
    candidates = _SOURCES[kind]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    looked = ", ".join(str(c) for c in candidates)
    hint = "; pass --config-source FILE" if kind == "config" else "; reinstall the monagent package"
    raise InstallError(f"cannot find the shipped {kind} file (looked in {looked}){hint}")


# Problems that only the service's own environment can settle: EnvironmentFile= and LoadCredential=.
_DEFERRED = re.compile(r"environment variable \S+ is not set$|CREDENTIALS_DIRECTORY is not set\b")


def validate_config(source: Path) -> List[str]:
    """Refuse a config ``source`` that ``monagent.config.load`` rejects: raises its ConfigError.

    References to the environment or to systemd credentials cannot be checked here (the
    service sets them); those problems, and any other on the same keys, come back as warnings."""
    from monagent.config import load
    from monagent.confread import ConfigError

    try:
        config = load(source, defer_secrets=True)  # a secret the service resolves (LoadCredential=, ${VAR})
    except ConfigError as err:
        deferred = {(p.file, p.key) for p in err.problems if _DEFERRED.match(p.message)}
        real = [p for p in err.problems if (p.file, p.key) not in deferred]
        if real:
            raise ConfigError(real) from None
        return [
            f"{p}: not checked now, the service's environment must provide it" for p in err.problems if _DEFERRED.match(p.message)
        ]
    return [f"{d}: not checked now" for d in config.deferred]


def _under(root: Path, path: Path) -> Path:
    return root / path.relative_to("/")


def _write(target: Path, content: bytes, mode: int, dry_run: bool) -> Action:
    if target.is_file():
        if target.read_bytes() == content and stat.S_IMODE(target.stat().st_mode) == mode:
            return Action.UNCHANGED
        action = Action.UPDATED
    else:
        action = Action.CREATED
    if not dry_run:
        target.parent.mkdir(parents=True, exist_ok=True)
        temporary = target.with_name(f".{target.name}.tmp")
        temporary.write_bytes(content)
        temporary.chmod(mode)
        temporary.replace(target)
    return action


def _group_id(group: str) -> Optional[int]:
    try:
        return grp.getgrnam(group).gr_gid
    except KeyError:
        return None


def _group_fix(target: Path, group: str, dry_run: bool) -> List[str]:
    """Give ``target`` to root:``group`` now, or the command that will once the group exists."""
    gid = _group_id(group)
    if gid is None or os.geteuid() != 0:
        return [f"chgrp {group} {CONFIG}"]
    if not dry_run and target.exists() and target.stat().st_gid != gid:
        os.chown(target, 0, gid)
    return []


def _install_config(root: Path, source: Optional[Path], group: str, dry_run: bool) -> Tuple[Step, List[str]]:
    target = _under(root, CONFIG)
    if source is None:
        fix = _group_fix(target, group, dry_run) if target.stat().st_gid == 0 else []
        return Step(Action.KEPT, target, "it exists; not overwritten"), fix
    _write(target, source.read_bytes(), 0o640, dry_run)
    fix = _group_fix(target, group, dry_run)
    return Step(Action.CREATED, target, "mode 0640" + ("" if fix else f", owner root:{group}")), fix


def install(
    root: Path = Path("/"),
    *,
    command: Optional[Sequence[str]] = None,
    config_source: Optional[Path] = None,
    group: str = GROUP,
    dry_run: bool = False,
) -> Report:
    """Install the unit, the sysusers entry and (if absent) the config under ``root``."""
    command = list(command) if command is not None else monagent_command()
    placement_errors, placement_warnings = placement_problems(command)
    if placement_errors and root == Path("/"):
        raise InstallError("; ".join(placement_errors) + "; nothing was installed")
    unit = render_unit(_source("unit").read_text(encoding="utf-8"), command)
    sysusers = _source("sysusers").read_bytes()
    # Every source is found before anything is written: no half installs.
    config = None if _under(root, CONFIG).exists() else _source("config", config_source)
    deferred = validate_config(config) if config is not None and config_source is not None else []
    exec_start = next(line for line in unit.splitlines() if line.startswith("ExecStart="))
    steps = [
        Step(_write(_under(root, UNIT), unit.encode(), 0o644, dry_run), _under(root, UNIT), exec_start),
        Step(_write(_under(root, SYSUSERS), sysusers, 0o644, dry_run), _under(root, SYSUSERS)),
    ]
    config_step, fix_group = _install_config(root, config, group, dry_run)
    steps.append(config_step)
    if not dry_run:
        manifest = {"format": 1, "monagent": __version__, "exec_start": command, "files": [str(p) for p in OWNED]}
        _write(_under(root, MANIFEST), (json.dumps(manifest, indent=2) + "\n").encode(), 0o600, dry_run)
    program = " ".join(shlex.quote(w) for w in command)
    commands = [
        f"systemd-sysusers {SYSUSERS}",
        *fix_group,
        f"{program} validate -c {CONFIG}",
        "systemctl daemon-reload",
        f"systemctl enable --now {UNIT_NAME}",
        f"journalctl -u {UNIT_NAME} -f",
    ]
    # A staged tree (--root) may be for another machine or a chroot: say it, do not refuse.
    warnings = [f"{e} (the unit will not start on a system like this one)" for e in placement_errors]
    warnings += placement_warnings + deferred
    if config is None:
        from monagent.permissions import secret_warnings

        warnings += secret_warnings(_under(root, CONFIG))
    return Report(tuple(steps), tuple(commands), tuple(warnings), program)


# Where the unit cannot see a program: PrivateTmp=yes gives the service an empty /tmp and /var/tmp.
HIDDEN_BY_UNIT = (Path("/tmp"), Path("/var/tmp"))  # noqa: S108 - paths named, never written
# Home directories: ProtectHome=read-only, private modes, deleted with their users, automounted.
HOME_ROOTS = (Path("/root"), Path("/home"), Path("/run/user"))
VENV_HINT = (
    "put monagent where every user can reach it: python3 -m venv /opt/monagent "
    "&& /opt/monagent/bin/pip install /path/to/monagent && /opt/monagent/bin/monagent install "
    "(or install the monagent .deb/.rpm package)"
)


def _interpreter(program: Path) -> Optional[Path]:
    """The interpreter a console script starts (its ``#!`` line), if it has one."""
    try:
        with program.open("rb") as handle:
            first = handle.readline(512)
    except OSError:
        return None
    if not first.startswith(b"#!"):
        return None
    words = first[2:].decode("utf-8", "replace").split()
    return Path(words[0]) if words and words[0].startswith("/") else None


def _home_dirs() -> List[Path]:
    import pwd

    homes = {Path(e.pw_dir) for e in pwd.getpwall() if e.pw_uid >= 1000 and e.pw_dir not in ("", "/", "/nonexistent")}
    return sorted(set(HOME_ROOTS) | homes)


def placement_problems(
    command: Sequence[str], homes: Optional[Sequence[Path]] = None, hidden: Sequence[Path] = HIDDEN_BY_UNIT
) -> Tuple[List[str], List[str]]:
    """(errors, warnings) about where the program the unit runs lives: the script, its
    interpreter, and what their symlinks resolve to (a venv's python links to the base one).

    An error means the service cannot start: the unit's PrivateTmp=yes hides /tmp and /var/tmp.
    A warning means it starts today but is fragile: a home directory is read-only to the
    service, often private, and goes away with its user."""
    homes = _home_dirs() if homes is None else list(homes)
    program = Path(command[0])
    paths = [program]
    interpreter = _interpreter(program) if len(command) == 1 else None
    if interpreter is not None:
        paths.append(interpreter)
    errors: List[str] = []
    warnings: List[str] = []
    for original in paths:
        # The path as named, then where its symlinks lead; one report per path.
        for path in dict.fromkeys((Path(os.path.abspath(original)), Path(os.path.realpath(original)))):
            tmp = next((d for d in hidden if d == path or d in path.parents), None)
            home = next((h for h in homes if h == path or h in path.parents), None)
            closed = unreachable_dir(path) if tmp is None and home is None else None
            if tmp is not None:
                errors.append(
                    f"{path} is under {tmp}, which the service never sees (PrivateTmp=yes gives it an empty {tmp}); " + VENV_HINT
                )
            elif home is not None:
                warnings.append(
                    f"{path} is in a home directory ({home}): the service reads it read-only (ProtectHome=read-only), "
                    f"a private home hides it from the {GROUP} user, and it goes away with its user; " + VENV_HINT
                )
            elif closed is not None:
                warnings.append(
                    f"{closed} is not searchable by other users, so the {GROUP} user reaches {path} only through "
                    f"CAP_DAC_READ_SEARCH; install monagent in a venv outside it (python3 -m venv /opt/monagent)"
                )
            else:
                continue
            break
    return errors, warnings


# ---------------------------------------------------------------- uninstall


def _read_manifest(root: Path) -> List[Path]:
    path = _under(root, MANIFEST)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        files = [Path(p) for p in data["files"]]
    except FileNotFoundError:
        raise InstallError(f"nothing to uninstall: {path} does not exist (monagent install writes it)") from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InstallError(f"cannot read {path}: {exc}") from None
    return [p for p in files if p in OWNED]


def _remove_wants_links(root: Path, dry_run: bool) -> List[Step]:
    """The ``*.wants/monagent.service`` links ``systemctl enable`` made, as ``disable`` would."""
    steps = []
    # Not Path.glob: it skips the dangling links a --root tree is full of.
    for wants in sorted(_under(root, UNIT.parent).glob("*.wants")):
        link = wants / UNIT_NAME
        if link.is_symlink():
            if not dry_run:
                link.unlink()
            steps.append(Step(Action.REMOVED, link))
    return steps


def uninstall(root: Path = Path("/"), *, dry_run: bool = False) -> Report:
    """Remove what :func:`install` put under ``root``; keep the config and the state."""
    owned = _read_manifest(root)
    steps = _remove_wants_links(root, dry_run)
    for path in owned:
        target = _under(root, path)
        if target.is_file():
            if not dry_run:
                target.unlink()
            steps.append(Step(Action.REMOVED, target))
        else:
            steps.append(Step(Action.ABSENT, target, "already gone"))
    if not dry_run:
        _under(root, MANIFEST).unlink()
    steps.append(Step(Action.KEPT, _under(root, CONFIG.parent), "configuration"))
    steps.append(Step(Action.KEPT, _under(root, Path("/var/lib/monagent")), f"state, if any, and the {GROUP} user"))
    # Stopping is harmless when `systemctl disable --now` ran first, as it should; the unit stays loaded until
    # daemon-reload, so a still running agent can be stopped even now its file is gone.
    commands = [f"systemctl stop {UNIT_NAME}", "systemctl daemon-reload"]
    return Report(tuple(steps), tuple(commands))


__all__ = [
    "Action",
    "InstallError",
    "Report",
    "Step",
    "install",
    "monagent_command",
    "placement_problems",
    "render_unit",
    "uninstall",
    "validate_config",
]
