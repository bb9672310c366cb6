"""``agent.toml`` parsed once into typed, frozen objects.

:func:`load` reads the file, reports every problem at once as a
:class:`~monagent.confread.ConfigError` (file, line, dotted key, message) and
returns a :class:`Config`. Each part of the agent owns the parser of its own
section (``parse_alerting``, ``parse_notifiers``, ...); this module assembles them
and validates each check instance against its check type's declared options and
metrics.
"""

from __future__ import annotations

import os
import re
from dataclasses import field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, List, Mapping, Optional, Tuple

from monagent import catalogue
from monagent.alerting.config import AlertingConfig, AlertingOverrides, parse_alerting, parse_overrides
from monagent.api import Direction, MetricSpec, Threshold
from monagent.confread import ConfigError, Deferred, Document, Problem, Section, format_duration, limit_problems, nesting_problem
from monagent.lazylog import get_logger
from monagent.metrics_config import MetricsConfig, parse_metrics
from monagent.notify.config import NotifiersConfig, parse_notifiers
from monagent.reboot_config import RebootConfig, parse_reboot
from monagent.records import config_record

log = get_logger(__name__)

if TYPE_CHECKING:  # the loader imports plugin code; it stays out of module import time
    from monagent.loader import Registry

try:
    import tomllib  # novermin - guarded: tomli below on Python < 3.11
except ImportError:  # Python < 3.11
    import tomli as tomllib  # type: ignore[no-redef]

DEFAULT_CONFIG = Path("/etc/monagent/agent.toml")
STOP_DEADLINE = 20.0  # seconds in-flight sends get on SIGTERM ([agent] stop_deadline)
MAX_STOP_DEADLINE = 25.0  # the unit's TimeoutStopSec (30 s) must outlast it, or systemd kills the agent mid-commit
TOP_LEVEL = ("agent", "alerting", "notifiers", "metrics", "reboot", "checks")


@config_record
class AgentConfig:
    hostname: str
    state_dir: Path
    runtime_dir: Path
    plugin_dirs: Tuple[Path, ...]
    interval: float
    timeout: float
    splay: float
    max_workers: int
    log_level: str
    trusted_plugin_owners: Tuple[str, ...] = ()
    stop_deadline: float = STOP_DEADLINE
    language: str = "en"  # what `monagent check` and `status` say their text fields in (catalogue language)


@config_record
class CheckConfig:
    """One ``[checks.NAME]`` instance, validated against its check type."""

    name: str
    type: str
    interval: float
    timeout: float
    enabled: bool
    options: Mapping[str, Any]
    thresholds: Mapping[str, Threshold]
    alerting: AlertingOverrides
    line: Optional[int] = None
    load_error: str = ""  # the check type could not be loaded: where from and why (runs report UNKNOWN)
    splay: Optional[float] = None  # a random first-run delay of its own; None: the agent's shared grid


@config_record
class Config:
    file: str
    agent: AgentConfig
    alerting: AlertingConfig
    notifiers: NotifiersConfig
    metrics: MetricsConfig
    checks: Tuple[CheckConfig, ...] = field(default_factory=tuple)
    deferred: Tuple[Deferred, ...] = ()  # secrets left to the service (load(defer_secrets=True))
    reboot: RebootConfig = field(default_factory=RebootConfig)

    def check(self, name: str) -> Optional[CheckConfig]:
        return self._checks_by_name.get(name)

    @cached_property
    def _checks_by_name(self) -> Dict[str, CheckConfig]:
        return {c.name: c for c in self.checks}


def default_state_dir(environ: Mapping[str, str]) -> Path:
    """``$STATE_DIRECTORY`` under systemd, /var/lib/monagent as root, else the XDG state dir."""
    if environ.get("STATE_DIRECTORY"):
        return Path(environ["STATE_DIRECTORY"].split(":")[0])
    if os.geteuid() == 0:
        return Path("/var/lib/monagent")
    home = environ.get("HOME") or os.path.expanduser("~")
    base = environ.get("XDG_STATE_HOME") or str(Path(home) / ".local" / "state")
    return Path(base) / "monagent"


def default_runtime_dir(environ: Mapping[str, str]) -> Path:
    if environ.get("RUNTIME_DIRECTORY"):
        return Path(environ["RUNTIME_DIRECTORY"].split(":")[0])
    if os.geteuid() == 0:
        return Path("/run/monagent")
    base = environ.get("XDG_RUNTIME_DIR") or f"/tmp/monagent-{os.geteuid()}"  # noqa: S108 - per-user fallback
    return Path(base) / "monagent" if environ.get("XDG_RUNTIME_DIR") else Path(base)


def parse_agent(section: Section) -> AgentConfig:
    environ = section.doc.environ
    hostname = section.string("hostname", "") or os.uname().nodename
    state_dir = section.path_value("state_dir", None) or default_state_dir(environ)
    runtime_dir = section.path_value("runtime_dir", None) or default_runtime_dir(environ)
    plugin_dirs = tuple(
        p if p.is_absolute() else section.doc.base_dir / p
        for p in (Path(s).expanduser() for s in section.strings("plugin_dirs", ("/etc/monagent/checks.d",)))
    )
    config = AgentConfig(
        hostname=hostname,
        state_dir=Path(state_dir),
        runtime_dir=Path(runtime_dir),
        plugin_dirs=plugin_dirs,
        interval=section.duration("interval", 60.0, minimum=0.1),
        timeout=section.duration("timeout", 30.0, minimum=0.1),
        splay=section.duration("splay", 10.0),
        max_workers=section.integer("max_workers", 2, minimum=1, maximum=64),
        log_level=section.string("log_level", "info", choices=("debug", "info", "warning", "error")),
        trusted_plugin_owners=section.strings("trusted_plugin_owners", ()),
        stop_deadline=section.duration("stop_deadline", STOP_DEADLINE),
        language=section.string("language", "en", choices=tuple(sorted(catalogue.LANGUAGES))),
    )
    if config.stop_deadline > MAX_STOP_DEADLINE:
        section.error("stop_deadline", f"must be at most {format_duration(MAX_STOP_DEADLINE)} (the unit's TimeoutStopSec is 30s)")
    section.finish()
    return config


_THRESHOLD_KEYS = ("warning", "critical", "warning_clear", "critical_clear", "direction")


def parse_threshold(section: Section, spec: Optional[MetricSpec]) -> Optional[Threshold]:
    """One ``metric = { warning = .., critical = .., *_clear = .., direction = .. }`` table."""
    low = spec.threshold_min if spec else None
    high = spec.threshold_max if spec else None
    values = {k: section.number(k, None, minimum=low, maximum=high) for k in _THRESHOLD_KEYS[:4]}
    default_direction = spec.direction.value if spec else Direction.ABOVE.value
    direction = Direction(section.string("direction", default_direction, choices=("above", "below")) or "above")
    section.finish()
    if values["warning"] is None and values["critical"] is None:
        section.error(None, "needs warning or critical (or both)")
        return None
    threshold = Threshold(direction=direction, **values)
    _check_order(section, threshold)
    return threshold


def _check_order(section: Section, t: Threshold) -> None:
    def worse(a: float, b: float) -> bool:
        return a >= b if t.direction == Direction.ABOVE else a <= b

    word = "above" if t.direction == Direction.ABOVE else "below"
    if t.warning is not None and t.critical is not None and not worse(t.critical, t.warning):
        section.error("critical", f'must not be less severe than warning ({t.warning}) for direction = "{word}"')
    for level, clear in (("warning", t.warning_clear), ("critical", t.critical_clear)):
        on = getattr(t, level)
        if clear is not None and on is None:
            section.error(f"{level}_clear", f"needs {level} to be set")
        elif clear is not None and not worse(on, clear):
            section.error(f"{level}_clear", f"must be on the healthy side of {level} ({on}), got {clear}")


def parse_thresholds(section: Section, metrics: Optional[Mapping[str, MetricSpec]]) -> Dict[str, Threshold]:
    result: Dict[str, Threshold] = {}
    if metrics:
        for name, declared in metrics.items():
            default = declared.default_threshold()
            if default is not None:
                result[name] = default
    for name, sub in section.tables():
        spec: Optional[MetricSpec] = metrics.get(name) if metrics else None
        if metrics is not None and spec is None:
            sub.error(None, _unknown_metric(name, metrics))
            continue
        threshold = parse_threshold(sub, spec)
        if threshold is not None:
            result[name] = threshold
    return result


def _unknown_metric(name: str, metrics: Mapping[str, MetricSpec]) -> str:
    import difflib

    close = difflib.get_close_matches(name, list(metrics), n=1, cutoff=0.6)
    hint = f' (did you mean "{close[0]}"?)' if close else ""
    accepted = ", ".join(sorted(metrics)) or "none"
    return f"unknown metric{hint}; this check type's metrics: {accepted}"


_TOML_WHERE = re.compile(r"\s*\(at line (\d+), column (\d+)\)")
_INSTANCE_KEYS = ("type", "interval", "timeout", "enabled", "splay", "thresholds", "alerting")


def parse_check(
    name: str, section: Section, agent: AgentConfig, alerting: AlertingConfig, registry: Registry
) -> Optional[CheckConfig]:
    from monagent.options import validate_options

    type_name = section.string("type")
    if type_name is None:
        section.finish(extra_known=list(section.keys()))
        return None
    check_class = registry.resolve(type_name, section)
    interval = section.duration("interval", getattr(check_class, "interval", agent.interval), minimum=0.1)
    timeout = section.duration("timeout", min(getattr(check_class, "timeout", agent.timeout), agent.timeout), minimum=0.1)
    enabled = section.boolean("enabled", True)
    splay = section.duration("splay", None)
    overrides = parse_overrides(section.table("alerting"), alerting)
    metrics = getattr(check_class, "metrics", None) if check_class else None
    thresholds = parse_thresholds(section.table("thresholds"), metrics) if check_class else {}
    options: Mapping[str, Any] = {}
    if check_class is not None and not getattr(check_class, "load_error", None):
        option_keys = [k for k in section.keys() if k not in _INSTANCE_KEYS]
        before = len(section.doc.problems)
        options = validate_options(check_class, type_name, section, option_keys)
        if len(section.doc.problems) == before:
            _try_build(check_class, options, timeout, section)
    else:
        section.mark_used(*section.keys())
    section.finish()
    info = getattr(registry, "infos", {}).get(type_name)
    load_error = f"{info.source}: {info.error}" if info is not None and info.error else ""
    line = section.doc.line_of(section.path)
    return CheckConfig(name, type_name, interval, timeout, enabled, options, thresholds, overrides, line, load_error, splay)


def _try_build(check_class: type, options: Mapping[str, Any], timeout: float, section: Section) -> None:
    """Build the instance once so the check's own option checks (``ValueError("option: ...")``) are
    reported as configuration problems instead of an UNKNOWN at run time."""
    from monagent.options import instance_kwargs

    kwargs = instance_kwargs(check_class, options, timeout)
    try:
        instance = check_class(**kwargs)
    except (ValueError, TypeError) as exc:
        text = str(exc)
        key, _, message = text.partition(": ")
        if message and key in kwargs:
            section.error(key, message)
        else:
            section.error(None, text)
        return
    close = getattr(instance, "close", None)
    if callable(close):
        close()


def toml_problem(file: str, exc: Exception, last_line: Optional[int] = None) -> Problem:
    """A TOML syntax error as ``file:line: invalid TOML: message at column N`` (editors jump to it)."""
    text = str(exc)
    found = _TOML_WHERE.search(text)
    if found is None:
        return Problem(file, last_line, "", f"invalid TOML: {text}")  # "at end of document"
    message = f"{text[: found.start()].rstrip()} at column {found.group(2)}{text[found.end() :]}"
    if text.startswith("Illegal character '\\n'"):
        message += " (a string's closing quote is missing)"
    return Problem(file, int(found.group(1)), "", f"invalid TOML: {message}")


def _read_source(path: Path) -> str:
    file = str(path)
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([Problem(file, None, "", f"cannot read the configuration: {exc.strerror or exc}")]) from None
    except UnicodeDecodeError as exc:
        line = exc.object[: exc.start].count(b"\n") + 1
        raise ConfigError([Problem(file, line, "", f"not UTF-8 text: {exc.reason} at byte {exc.start}")]) from None


def load(
    path: Path,
    environ: Optional[Mapping[str, str]] = None,
    registry: Optional[Registry] = None,
    *,
    resolver: Any = None,
    defer_secrets: bool = False,
) -> Config:
    """Read and validate ``path``; raise :class:`ConfigError` listing every problem.

    Outside the service, ``resolver`` (a :class:`~monagent.credentials.ServiceCredentials`) reads
    secrets where the unit gets them, and ``defer_secrets`` leaves the ones nobody here can read to
    the service (:attr:`Config.deferred` lists them) instead of calling them problems."""
    return loads(_read_source(path), str(path), environ, registry, resolver=resolver, defer_secrets=defer_secrets)


def loads(
    source: str,
    file: str = "agent.toml",
    environ: Optional[Mapping[str, str]] = None,
    registry: Optional[Registry] = None,
    *,
    resolver: Any = None,
    defer_secrets: bool = False,
) -> Config:
    """Parse and validate ``source``; every failure is a :class:`ConfigError`, never another exception:
    a reload keeps the running configuration and a start exits 78 whatever is wrong with the file."""
    try:
        config, problems = _parse(source, file, environ, registry, resolver=resolver, defer_secrets=defer_secrets)
    except ConfigError:
        raise
    except RecursionError:
        raise ConfigError([Problem(file, 1, "", "nested too deep to read")]) from None
    except Exception as exc:
        log.debug("validating %s failed inside monagent", file, exc_info=True)
        message = f"could not be validated (a bug in monagent, please report it): {type(exc).__name__}: {exc}"
        raise ConfigError([Problem(file, 1, "", message)]) from None
    if problems:
        raise ConfigError(problems)
    assert config is not None
    return config


def _parse(
    source: str,
    file: str,
    environ: Optional[Mapping[str, str]],
    registry: Optional[Registry],
    *,
    resolver: Any = None,
    defer_secrets: bool = False,
    lenient: bool = False,
) -> Tuple[Optional[Config], List[Problem]]:
    """The config and every problem. A file the TOML parser refuses (or too deep or too large to
    read safely) has no config unless ``lenient``, which then reads its ``[agent]`` table alone."""
    problems: List[Problem] = []
    deep = nesting_problem(file, source)
    data: Mapping[str, Any] = {}
    if deep is not None:
        problems.append(deep)
    else:
        try:
            data = tomllib.loads(source)
        except tomllib.TOMLDecodeError as exc:
            problems.append(toml_problem(file, exc, source.count("\n") + 1))
    if not problems:
        doc = Document(file, source, environ)
        problems = limit_problems(doc, data)
    if problems:
        if not lenient:
            return None, problems
        data = {"agent": _agent_table(source)}
    doc = Document(file, source, environ)
    doc.resolver, doc.defer_secrets = resolver, defer_secrets
    return _build(doc, data, registry), problems + doc.problems


def _build(doc: Document, data: Mapping[str, Any], registry: Optional[Registry]) -> Config:
    root = Section(doc, (), data)
    agent = parse_agent(root.table("agent"))
    if registry is None:
        from monagent.loader import Registry

        registry = Registry.for_agent(agent)
    alerting = parse_alerting(root.table("alerting"))
    notifiers = parse_notifiers(root.table("notifiers"), alerting)
    metrics = parse_metrics(root.table("metrics"))
    reboot = parse_reboot(root.table("reboot"))
    checks = []
    for name, section in root.table("checks").tables():
        check = parse_check(name, section, agent, alerting, registry)
        if check is not None:
            checks.append(check)
    root.finish()
    return Config(doc.file, agent, alerting, notifiers, metrics, tuple(checks), deferred=tuple(doc.deferred), reboot=reboot)


_HEADER_LINE = re.compile(r"^\s*\[")


def _agent_table(source: str) -> Dict[str, Any]:
    """The ``[agent]`` table alone, for a file whose TOML elsewhere does not parse."""
    lines = source.splitlines()
    start = next((i for i, line in enumerate(lines) if re.match(r"^\s*\[\s*agent\s*\]\s*(#.*)?$", line)), None)
    if start is None:
        return {}
    end = next((i for i in range(start + 1, len(lines)) if _HEADER_LINE.match(lines[i])), len(lines))
    try:
        return dict(tomllib.loads("\n".join(lines[start:end])).get("agent", {}))
    except tomllib.TOMLDecodeError:
        return {}


def load_lenient(path: Path, environ: Optional[Mapping[str, str]] = None) -> Tuple[Config, List[Problem]]:
    """For commands that only read or change alert state (docs/design/decisions.md section 4): the config with
    every problem returned as a warning instead of raised (a key that is wrong keeps its default),
    and secrets left to the service. A file whose TOML does not parse still gives its ``[agent]``
    table (the state and runtime directories), or the defaults. Raises ConfigError only when the
    file cannot be read at all."""
    file = str(path)
    source = _read_source(path)
    try:
        config, problems = _parse(source, file, environ, None, defer_secrets=True, lenient=True)
    except (RecursionError, ValueError, TypeError):  # what a hostile file may still raise: the defaults then
        log.debug("reading %s leniently failed", file, exc_info=True)
        config, problems = _parse("", file, environ, None, defer_secrets=True, lenient=True)
        problems = [Problem(file, 1, "", "could not be read; using the default state and runtime directories")]
    assert config is not None
    return config, problems


__all__ = ["AgentConfig", "CheckConfig", "Config", "ConfigError", "load", "load_lenient", "loads", "parse_threshold"]
