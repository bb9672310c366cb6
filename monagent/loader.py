"""Finding check types: entry points in the group ``monagent.checks`` and ``*.py`` files in
the plugin directories, loaded lazily (only the types a config uses).

A plugin file's name is its type name (``checks.d/nginx_up.py`` provides ``nginx_up``).
The file defines one subclass of :class:`monagent.api.Check`, or names the one to use
with ``CHECK = TheClass``. A file that fails to import, or that is refused for its
permissions, disables only its own type: instances of it report UNKNOWN with the reason.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import pwd
import stat
import sys
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

from monagent.api import Check, Context, Result, Status
from monagent.lazylog import get_logger
from monagent.records import config_record

log = get_logger(__name__)
_quiet = [0]  # how many quiet() blocks are open


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Keep the loader's own log lines out while a command that prints each reason itself runs
    (validate's problems, check's UNKNOWN row, plugins' ERROR column)."""
    _quiet[0] += 1
    try:
        yield
    finally:
        _quiet[0] -= 1


GROUP = "monagent.checks"


@config_record
class TypeInfo:
    """Where a check type comes from, for ``monagent plugins``."""

    name: str
    source: str  # "entry point monagent.checks:disk (monagent 0.1.0)" or a file path
    error: str = ""


def broken_check_class(type_name: str, reason: str) -> type:
    """A stand-in for a type that failed to load: every run is UNKNOWN with the reason."""

    class BrokenCheck(Check):
        metrics = None
        load_error = reason

        def __init__(self, **_options: object) -> None:
            pass

        def run(self, ctx: Context) -> Result:
            return Result(status=Status.UNKNOWN, reason=f'check type "{type_name}" failed to load: {reason}')

    BrokenCheck.__name__ = f"Broken_{type_name}"
    return BrokenCheck


def _entry_points() -> Dict[str, object]:
    from importlib.metadata import entry_points

    eps: Any = entry_points()
    group = eps.select(group=GROUP) if hasattr(eps, "select") else eps.get(GROUP, ())  # .select: Python >= 3.10
    return {ep.name: ep for ep in group}


@config_record
class _OwnEntryPoint:
    """One line of monagent's own ``entry_points.txt``, loaded like an importlib entry point."""

    name: str
    value: str

    def load(self) -> object:
        module_name, _, attribute = self.value.partition(":")
        module = importlib.import_module(module_name.strip())
        for part in attribute.strip().split("."):
            module = getattr(module, part)
        return module


def _own_entry_points(package_dir: Optional[Path] = None) -> Dict[str, object]:
    """monagent's own registrations in the group, read from its own distribution only: resolving a
    built-in type then costs one small file instead of importlib.metadata and a scan of every
    installed distribution (which is what makes ``monagent validate`` slow)."""
    package_dir = package_dir or Path(__file__).resolve().parent
    for info in package_dir.parent.glob("monagent-*.dist-info/entry_points.txt"):
        try:
            own = _entry_point_section(info.read_text(encoding="utf-8"), GROUP)
        except (OSError, UnicodeDecodeError):
            break
        if own:
            return {name: _OwnEntryPoint(name, value) for name, value in own.items()}
        break
    # an editable install or a source tree: ask importlib.metadata
    from importlib.metadata import PackageNotFoundError, distribution

    try:
        dist = distribution("monagent")
    except PackageNotFoundError:  # running from a source tree that is not installed
        return {}
    return {ep.name: ep for ep in dist.entry_points if ep.group == GROUP}


def _entry_point_section(text: str, group: str) -> Dict[str, str]:
    """``name = value`` lines of one ``[group]`` of an ``entry_points.txt`` (the INI subset pip writes;
    configparser would cost more to import than the whole lookup)."""
    found: Dict[str, str] = {}
    inside = False
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            inside = line[1:-1].strip() == group
            continue
        name, sep, value = line.partition("=")
        if inside and sep:
            found[name.strip()] = value.strip()
    return found


def permission_problem(path: Path, allowed_uids: Sequence[int]) -> Optional[str]:
    """Why ``path`` (a plugin file or directory) must not be loaded, or None when it is safe.

    Plugins run with the agent's privileges, so a file someone else can change is refused
    (like OpenSSH's StrictModes).
    """
    try:
        st = path.stat()
    except OSError as exc:
        return f"cannot stat {path}: {exc.strerror}"
    if st.st_uid not in allowed_uids:
        try:
            owner = pwd.getpwuid(st.st_uid).pw_name
        except KeyError:
            owner = str(st.st_uid)
        return f"{path} is owned by {owner}; plugins must be owned by root or the agent's user"
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        who = (
            "group and others"
            if st.st_mode & stat.S_IWGRP and st.st_mode & stat.S_IWOTH
            else ("group" if st.st_mode & stat.S_IWGRP else "others")
        )
        return f"{path} is writable by {who} (mode {stat.S_IMODE(st.st_mode):04o}); run chmod go-w {path}"
    return None


def _directory_problem(directory: Path, allowed_uids: Sequence[int]) -> Optional[str]:
    """Why a directory on a plugin's path lets someone else swap what is below it, or None.

    A sticky directory owned by root (``/tmp``) is safe: nobody else can rename or remove
    entries there that they do not own, and every entry below it is checked in turn."""
    try:
        st = directory.stat()
    except OSError as exc:
        return f"cannot stat {directory}: {exc.strerror}"
    if st.st_mode & stat.S_ISVTX and st.st_uid == 0:
        return None
    return permission_problem(directory, allowed_uids)


def path_problem(path: Path, allowed_uids: Sequence[int]) -> Optional[str]:
    """As sshd's StrictModes: the plugin file and every directory from its real location up to the
    root, and the directory the plugin directory names (it may be a symlink), are owned by root or a
    trusted user and writable by nobody else. None when all are."""
    real = path.resolve()
    problem = permission_problem(real, allowed_uids)
    if problem:
        return problem
    directories = list(real.parents) + [p for p in path.parent.resolve().parents if p not in real.parents]
    directories.insert(0, path.parent.resolve())
    for directory in dict.fromkeys(directories):
        problem = _directory_problem(directory, allowed_uids)
        if problem:
            return problem + (f" (on the way to {real})" if real != path else "")
    return None


def read_source(path: Path, allowed_uids: Sequence[int]) -> bytes:
    """The plugin's source, read through one descriptor whose owner and mode are checked again
    after opening (a file swapped in after the path check is refused). Raises PermissionError."""
    fd = os.open(path.resolve(), os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_uid not in allowed_uids or st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            raise PermissionError(f"{path} changed owner or mode while it was being loaded")
        chunks: List[bytes] = []
        while True:
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)
    finally:
        os.close(fd)


class Registry:
    """Resolves check type names to classes; remembers where each came from and what failed."""

    def __init__(self, plugin_dirs: Sequence[Path] = (), trusted_owners: Sequence[str] = ()) -> None:
        self.plugin_dirs = [Path(p) for p in plugin_dirs]
        self.allowed_uids = [0, os.geteuid()]
        for name in trusted_owners:
            try:
                self.allowed_uids.append(pwd.getpwnam(name).pw_uid)
            except KeyError:
                if not _quiet[0]:
                    log.warning("trusted plugin owner %s does not exist", name)
        self._classes: Dict[str, type] = {}
        self.infos: Dict[str, TypeInfo] = {}
        self._eps: Optional[Dict[str, object]] = None
        self._own: Optional[Dict[str, object]] = None

    @classmethod
    def for_agent(cls, agent: Any) -> Registry:
        """The registry of an ``[agent]`` section: its plugin directories and trusted owners."""
        return cls(agent.plugin_dirs, trusted_owners=agent.trusted_plugin_owners)

    # -- discovery
    def entry_points(self) -> Dict[str, object]:
        if self._eps is None:
            self._eps = _entry_points()
        return self._eps

    def plugin_files(self) -> Dict[str, Path]:
        files: Dict[str, Path] = {}
        for directory in self.plugin_dirs:
            if not directory.is_dir():
                continue
            for path in sorted(directory.glob("*.py")):
                if path.name.startswith(("_", ".")):
                    continue
                files.setdefault(path.stem, path)
        return files

    def available(self) -> List[Tuple[str, str]]:
        """Every type name with its source, without importing anything."""
        out = []
        if self._own is None:
            self._own = _own_entry_points()
        eps = {**self.entry_points(), **self._own}  # monagent's own win, as in resolve()
        for name, ep in sorted(eps.items()):
            dist = getattr(getattr(ep, "dist", None), "name", None)
            out.append((name, f"entry point {getattr(ep, 'value', '')}" + (f" ({dist})" if dist else "")))
        for name, path in sorted(self.plugin_files().items()):
            out.append((name, str(path)))
        return out

    # -- resolution
    def resolve(self, type_name: str, section: Optional[object] = None) -> Optional[type]:
        """The class for ``type_name``; a stand-in that reports UNKNOWN if it failed to load;
        None (with a config problem recorded on ``section``) if no such type exists."""
        if type_name in self._classes:
            return self._classes[type_name]
        files = self.plugin_files()
        if self._own is None:
            self._own = _own_entry_points()
        # The same entry-point mechanism for all; monagent's own group entries are looked up first.
        eps = self._own if type_name in self._own else self.entry_points()
        if type_name in files and type_name in eps:
            self._report(
                section,
                f'check type "{type_name}" is both a built-in/entry point and a plugin file '
                f"({files[type_name]}); rename the file",
            )
            return None
        if type_name in files:
            cls = self._load_file(type_name, files[type_name])
        elif type_name in eps:
            cls = self._load_entry_point(type_name, eps[type_name])
        else:
            import difflib

            names = sorted(set(files) | set(eps))
            close = difflib.get_close_matches(type_name, names, n=1, cutoff=0.6)
            hint = f' (did you mean "{close[0]}"?)' if close else ""
            self._report(section, f'unknown check type "{type_name}"{hint}; available: {", ".join(names)}', key="type")
            return None
        self._classes[type_name] = cls
        return cls

    def _report(self, section: Optional[object], message: str, key: str = "type") -> None:
        if section is not None and hasattr(section, "error"):
            section.error(key, message)
        elif not _quiet[0]:
            log.error("%s", message)

    def _fail(self, type_name: str, source: str, reason: str) -> type:
        if not _quiet[0]:
            log.error('check type "%s" from %s disabled: %s', type_name, source, reason)
        self.infos[type_name] = TypeInfo(type_name, source, reason)
        return broken_check_class(type_name, reason)

    def _load_entry_point(self, type_name: str, ep: object) -> type:
        source = f"entry point {getattr(ep, 'value', '')}"
        try:
            obj = ep.load()  # type: ignore[attr-defined]
        except Exception as exc:  # any import-time error of third-party code disables only its type
            if not _quiet[0]:
                log.debug("import of %s failed", source, exc_info=True)
            return self._fail(type_name, source, f"{type(exc).__name__}: {exc}")
        if not (isinstance(obj, type) and issubclass(obj, Check)):
            return self._fail(type_name, source, "does not point to a subclass of monagent.api.Check")
        self.infos[type_name] = TypeInfo(type_name, source)
        return obj

    def _load_file(self, type_name: str, path: Path) -> type:
        problem = path_problem(path, self.allowed_uids)
        if problem:
            return self._fail(type_name, str(path), f"refused: {problem}")
        module_name = f"monagent_plugins.{type_name}"
        try:
            # From source, never bytecode: a .pyc in a __pycache__ that others can write would run
            # as the agent's user while the .py it claims to come from passes every check.
            source = read_source(path, self.allowed_uids)
            code = compile(source, str(path), "exec", dont_inherit=True)
            import importlib.util  # only for plugin files

            spec = importlib.util.spec_from_loader(module_name, loader=None, origin=str(path))
            if spec is None:
                return self._fail(type_name, str(path), "not a loadable Python file")
            module = importlib.util.module_from_spec(spec)
            module.__file__ = str(path)
            sys.modules[module_name] = module
            exec(code, module.__dict__)  # noqa: S102 - loading a plugin is running its code
        except PermissionError as exc:
            sys.modules.pop(module_name, None)
            return self._fail(type_name, str(path), f"refused: {exc}")
        except Exception as exc:  # a broken plugin file disables only its own type
            sys.modules.pop(module_name, None)
            if not _quiet[0]:
                log.debug("import of %s failed", path, exc_info=True)
            return self._fail(type_name, str(path), f"{type(exc).__name__}: {exc}")
        cls = getattr(module, "CHECK", None)
        if cls is None:
            found = [
                v
                for v in vars(module).values()
                if isinstance(v, type) and issubclass(v, Check) and v is not Check and v.__module__ == module_name
            ]
            if len(found) != 1:
                what = "no subclass" if not found else f"{len(found)} subclasses"
                return self._fail(
                    type_name, str(path), f"defines {what} of monagent.api.Check; define one, or set CHECK = TheClass"
                )
            cls = found[0]
        if not (isinstance(cls, type) and issubclass(cls, Check)):
            return self._fail(type_name, str(path), "CHECK is not a subclass of monagent.api.Check")
        self.infos[type_name] = TypeInfo(type_name, str(path))
        return cls
