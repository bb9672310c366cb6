"""``monagent run``, ``check``, ``validate`` and ``plugins``."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, ContextManager, Dict, List, Optional, Sequence, Tuple

from monagent.cli import EX_CONFIG, EX_USAGE, DescriptionFormatter, config_error_exit

if TYPE_CHECKING:
    from monagent.formatting import Formatter


def default_config_path() -> str:
    """``$MONAGENT_CONFIG``, else ``$CONFIGURATION_DIRECTORY/agent.toml`` (systemd), else /etc/monagent/agent.toml."""
    if os.environ.get("MONAGENT_CONFIG"):
        return os.environ["MONAGENT_CONFIG"]
    directory = os.environ.get("CONFIGURATION_DIRECTORY")
    if directory:
        return str(Path(directory.split(":")[0]) / "agent.toml")
    return "/etc/monagent/agent.toml"


def add_config_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-c", "--config", default=None, metavar="FILE", help=f"configuration file (default: {default_config_path()})"
    )


def config_path(args: argparse.Namespace) -> Path:
    """``-c`` after the command, else ``-c`` before it, else the default."""
    return Path(getattr(args, "config", None) or getattr(args, "global_config", None) or default_config_path())


def register(sub: Any) -> None:
    fmt = DescriptionFormatter
    run = sub.add_parser(
        "run",
        help="run the agent in the foreground",
        formatter_class=fmt,
        description="Run the agent in the foreground: schedule the checks, turn their results "
        "into alerts and deliver them. Stops on SIGTERM; SIGHUP reloads the config.",
        epilog="example:\n  monagent run -c /etc/monagent/agent.toml",
    )
    add_config_option(run)
    run.add_argument(
        "--log-level", choices=("debug", "info", "warning", "error"), default=None, help="override [agent] log_level"
    )
    run.set_defaults(func=cmd_run)

    check = sub.add_parser(
        "check",
        help="run checks once and print their status",
        formatter_class=fmt,
        description="Run the configured checks once, through the same loader, executor and "
        "timeouts as the agent, and print a table. Thresholds are compared without "
        "history (no hysteresis). Exit status is the worst status: 0 OK, 1 WARNING, "
        "2 CRITICAL, 3 UNKNOWN (a configuration error is 3).",
        epilog="examples:\n  monagent check\n  monagent check disks --json\n"
        "  monagent check memory --nagios    # for NRPE / Icinga",
    )
    add_config_option(check)
    check.add_argument("names", nargs="*", metavar="NAME", help="check instances to run (default: all enabled)")
    out = check.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="print JSON instead of a table")
    out.add_argument("--nagios", action="store_true", help="print one Nagios plugin line with perfdata (one NAME)")
    check.set_defaults(func=cmd_check)

    validate = sub.add_parser(
        "validate",
        help="validate the configuration",
        formatter_class=fmt,
        description="Parse and validate the configuration and the check types it uses; "
        "print every problem with file, line and key. Exit 0 when valid, 78 "
        "when not. Also warns (exit 0; 78 with --strict) about a file that watches nothing, "
        "alerts that reach only the console, and placeholders such as access_token=… left in. "
        "A secret the service gets from LoadCredential= or its own environment is read where "
        "the installed unit gets it when this user can (root), else noted as resolved at start.",
        epilog="examples:\n  monagent validate -c /etc/monagent/agent.toml\n  monagent validate --strict",
    )
    add_config_option(validate)
    validate.add_argument("--strict", action="store_true", help="exit 78 on warnings too")
    validate.set_defaults(func=cmd_validate)

    plugins = sub.add_parser(
        "plugins",
        help="list check types and where they come from",
        formatter_class=fmt,
        description="List every check type: built-in and third-party entry points "
        "(group monagent.checks) and *.py files in the plugin directories, "
        "with load errors.",
        epilog="example:\n  monagent plugins -c /etc/monagent/agent.toml",
    )
    add_config_option(plugins)
    plugins.set_defaults(func=cmd_plugins)


def _load(args: argparse.Namespace) -> Any:
    """The whole config, strictly; secrets nobody here can read are left to the service."""
    from monagent import config as config_module

    return config_module.load(config_path(args), defer_secrets=True)


# The text, one place per message (for the catalogues).
IGNORED = "warning: {problem} (ignored by `monagent {command}`; `monagent validate` lists every problem)"


def load_for_state(args: argparse.Namespace, command: str) -> Any:
    """The config for a command that reads or changes alert state (status, silence, ack): a problem
    elsewhere in the file is a warning, never a refusal, and no secret is read (docs/design/decisions.md 4).
    Raises ConfigError only when the file cannot be read at all."""
    from monagent import config as config_module

    config, problems = config_module.load_lenient(config_path(args))
    for problem in problems:
        print(IGNORED.format(problem=problem, command=command), file=sys.stderr)
    return config


def _load_for_checks(args: argparse.Namespace) -> Any:
    """``monagent check`` runs checks, not receivers: a problem under [notifiers] is a warning."""
    from monagent.confread import ConfigError

    try:
        return _load(args)
    except ConfigError as err:
        if not all(p.key.startswith("notifiers.") for p in err.problems):
            raise
    return load_for_state(args, "check")


def _loader_quiet() -> ContextManager[None]:
    """The loader logs each check type it cannot load; a command that prints the reason itself
    (validate's problems, check's UNKNOWN row, plugins' ERROR column) keeps those lines out."""
    from monagent import loader

    return loader.quiet()


def unloadable_types(config: Any) -> List[Any]:
    """One problem per check instance whose type cannot be loaded (a plugin file with a syntax
    error, or refused for its permissions): the agent would start and report it UNKNOWN forever."""
    from monagent.confread import Problem, locate_keys

    try:
        lines = locate_keys(Path(config.file).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError):
        lines = {}
    return [
        Problem(
            config.file,
            lines.get(("checks", c.name, "type"), c.line),
            f"checks.{c.name}.type",
            f'check type "{c.type}" cannot be loaded: {c.load_error}',
        )
        for c in config.checks
        if getattr(c, "load_error", "")
    ]


STRICT_FAILED = "monagent: {count} warning{s}; --strict treats warnings as errors"
DEFERRED_NOTE = "note: {deferred} (checked when the service starts{hint})"
DEFERRED_HINT = "; run as root to check it now"


def cmd_validate(args: argparse.Namespace) -> int:
    from monagent import config as config_module
    from monagent.confread import ConfigError
    from monagent.credentials import ServiceCredentials
    from monagent.lint import config_warnings

    try:
        with _loader_quiet():
            config = config_module.load(config_path(args), resolver=ServiceCredentials(), defer_secrets=True)
    except ConfigError as err:
        return config_error_exit(err, outcome=f"{config_path(args)} is not valid")
    broken = unloadable_types(config)
    if broken:
        return config_error_exit(ConfigError(broken), outcome=f"{config_path(args)} is not valid")
    names = ", ".join(f"{c.name} ({c.type})" for c in config.checks) or "none"
    print(
        f"{config.file}: OK; {len(config.checks)} checks: {names}; receivers: "
        f"{', '.join(config.notifiers.receiver_names) or 'none'}"
    )
    for deferred in config.deferred:
        hint = DEFERRED_HINT if os.geteuid() != 0 else ""
        print(DEFERRED_NOTE.format(deferred=deferred, hint=hint), file=sys.stderr)
    warnings = config_warnings(config)
    try:
        from monagent.permissions import secret_warnings
    except ImportError:
        pass
    else:
        warnings += secret_warnings(Path(config.file), config)
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if warnings and args.strict:
        print(STRICT_FAILED.format(count=len(warnings), s="s" if len(warnings) != 1 else ""), file=sys.stderr)
        return EX_CONFIG
    return 0


def cmd_plugins(args: argparse.Namespace) -> int:
    from monagent.confread import ConfigError
    from monagent.loader import Registry

    plugin_dirs: Sequence[Path] = ()
    owners: Sequence[str] = ()
    path = config_path(args)
    if path.exists() or args.config:
        try:
            with _loader_quiet():
                config = _load(args)
            plugin_dirs, owners = config.agent.plugin_dirs, config.agent.trusted_plugin_owners
        except ConfigError as err:
            return config_error_exit(err, outcome="no plugin directory was read")
    registry = Registry(plugin_dirs, trusted_owners=owners)
    rows = []
    for name, source in registry.available():
        with _loader_quiet():  # the ERROR column says why
            registry.resolve(name)
        info = registry.infos.get(name)
        rows.append((name, source, f"ERROR: {info.error}" if info and info.error else "ok"))
    width = max((len(r[0]) for r in rows), default=4)
    source_width = max((len(r[1]) for r in rows), default=6)
    for name, source, state in rows:  # the state last: an error's reason may be long
        print(f"{name:<{width}}  {source:<{source_width}}  {state}")
    print(f"plugin directories: {', '.join(str(p) for p in plugin_dirs) or 'none'}")
    return 1 if any(r[2] != "ok" for r in rows) else 0


def cmd_check(args: argparse.Namespace) -> int:
    from monagent.api import Status, worst
    from monagent.confread import ConfigError

    try:
        with _loader_quiet():
            config = _load_for_checks(args)
    except ConfigError as err:
        config_error_exit(err, outcome="no check was run")
        if args.nagios:  # NRPE and Icinga show stdout only: say why there is no result
            count = len(getattr(err, "problems", [err]))
            name = args.names[0] if len(args.names) == 1 else "monagent"
            print(
                f"{name} UNKNOWN: {config_path(args)} has {count} configuration problem{'s' if count != 1 else ''}; "
                f"run: monagent validate -c {config_path(args)}"
            )
        return int(Status.UNKNOWN)
    selected = _select(config, args.names)
    if selected is None:
        if args.nagios and len(args.names) == 1:
            print(f"{args.names[0]} UNKNOWN: no check named {args.names[0]} in {config.file}")
        return int(Status.UNKNOWN)
    if args.nagios and len(selected) != 1:
        print("monagent: --nagios needs exactly one check NAME", file=sys.stderr)
        return EX_USAGE
    with _loader_quiet():  # a type that cannot be loaded is an UNKNOWN row with the reason
        runs = run_once(config, selected)
    judged = _judge(config, runs)
    overall = worst(j.status for _, items in judged for j in items) if judged else Status.OK
    from monagent.formatting import Formatter

    fmt = Formatter(config.agent.language)  # the Nagios line stays English: a machine reads it
    if args.nagios:
        print(_nagios_line(config, judged[0]))
    elif args.json:
        import json

        print(json.dumps(_as_json(judged, runs, fmt), indent=2, sort_keys=True))
    else:
        _print_table(judged, runs, fmt)
        if not args.names:
            print(last_boot_line(config))
    return int(overall)


def _this_boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text(encoding="ascii").strip()
    except OSError:
        return ""


def last_boot_line(config: Any) -> str:
    """How the last boot ended, as the agent decided it at its first start in this boot."""
    from monagent.formatting import Formatter
    from monagent.store import Store, StoreError

    fmt = Formatter(config.agent.language)
    try:
        store = Store.open_readonly(Path(config.agent.state_dir))
    except (StoreError, OSError) as exc:
        return fmt.say("check.last_boot_unknown", why=str(exc))
    try:
        meta = store.meta()
    finally:
        store.close()
    raw = meta.get("last_boot_end", "")
    try:
        import json

        verdict = json.loads(raw) if raw else None
    except ValueError:
        verdict = None
    if not isinstance(verdict, dict):
        if meta.get("boot_id") and meta.get("boot_id") == _this_boot_id():
            return fmt.say("check.last_boot_first_start")  # no earlier boot on record to explain
        return fmt.say("check.last_boot_pending")
    from monagent.bootend import describe  # only when there is a verdict to say

    return fmt.say("check.last_boot", what=describe(verdict, fmt))


def _select(config: Any, names: Sequence[str]) -> Optional[List[Any]]:
    if not names:
        return [c for c in config.checks if c.enabled]
    known = {c.name: c for c in config.checks}
    missing = [n for n in names if n not in known]
    if missing:
        print(
            f"monagent: no check named {', '.join(missing)} in {config.file}; configured: {', '.join(known) or 'none'}",
            file=sys.stderr,
        )
        return None
    return [known[n] for n in names]


def run_once(config: Any, selected: Sequence[Any]) -> List[Any]:
    """Run ``selected`` instances once through the agent's own loader and scheduler."""
    from monagent.context import SystemFacts
    from monagent.loader import Registry
    from monagent.scheduler import Scheduler, build_instances

    facts = SystemFacts(config.agent.hostname, pool_size=config.agent.max_workers)
    try:
        pairs = build_instances(selected, Registry.for_agent(config.agent))
        _warm_up(pairs, facts)
        scheduler = Scheduler(pairs, facts.cycle, monotonic=time.monotonic(), splay=0)
        runs = scheduler.run_all_once(time.time(), time.monotonic(), time.sleep, lambda: (time.time(), time.monotonic()))
        scheduler.close()
    finally:
        facts.close()
    order = {c.name: i for i, c in enumerate(selected)}
    return sorted(runs, key=lambda r: order.get(r.check, 0))


def _warm_up(pairs: Sequence[Tuple[Any, Any]], facts: Any) -> None:
    """Checks that measure over an interval (CPU percent) declare ``warmup = seconds``: run them
    once for a baseline and wait that long, so one shot reports a value instead of "warming up"."""
    from monagent.scheduler import Scheduler

    warm = [(c, check) for c, check in pairs if c.enabled and getattr(check, "warmup", 0)]
    if not warm:
        return
    scheduler = Scheduler(warm, facts.cycle, monotonic=time.monotonic(), splay=0)
    scheduler.run_all_once(time.time(), time.monotonic(), time.sleep, lambda: (time.time(), time.monotonic()))
    scheduler.instances.clear()  # the instances run again below: not closed here
    time.sleep(max(float(getattr(check, "warmup", 0)) for _, check in warm))


def _judge(config: Any, runs: Sequence[Any]) -> List[Tuple[Any, Tuple[Any, ...]]]:
    from monagent.oneshot import judge_all

    out = []
    for run in runs:
        check_config = config.check(run.check)
        out.append((run, judge_all(run.results, check_config.thresholds if check_config else {})))
    return out


def _print_table(judged: Sequence[Tuple[Any, Tuple[Any, ...]]], runs: Sequence[Any], fmt: Formatter) -> None:
    rows = [("CHECK", "SUBJECT", "STATUS", "SUMMARY")]
    for run, items in judged:
        if not items:
            rows.append((run.check, "", "OK", fmt.say("check.no_results")))
        for j in items:
            said = [j.summary_in(fmt), *j.occurrences_in(fmt)]
            rows.append(
                (run.check, j.result.subject or "-", j.status.name, fmt.say("list.clause_sep").join(s for s in said if s))
            )
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    for row in rows:
        print(f"{row[0]:<{widths[0]}}  {row[1]:<{widths[1]}}  {row[2]:<{widths[2]}}  {row[3]}".rstrip())


def _as_json(judged: Sequence[Tuple[Any, Tuple[Any, ...]]], runs: Sequence[Any], fmt: Formatter) -> List[Dict[str, Any]]:
    out = []
    for run, items in judged:
        out.append(
            {
                "check": run.check,
                "type": run.check_type,
                "duration_seconds": round(run.duration, 4),
                "error": run.error or None,
                "results": [
                    {
                        "subject": j.result.subject,
                        "status": j.status.name,
                        "summary": j.summary_in(fmt),
                        "metrics": [
                            {
                                "name": m.metric.name,
                                "value": m.metric.value,
                                "unit": m.metric.unit,
                                "status": m.status.name,
                                "threshold": None
                                if m.threshold is None
                                else {
                                    "warning": m.threshold.warning,
                                    "critical": m.threshold.critical,
                                    "direction": m.threshold.direction.value,
                                },
                            }
                            for m in j.metrics
                        ],
                        "occurrences": [
                            {"id": o.id, "summary": said, "severity": o.severity.name, "facts": dict(o.facts)}
                            for o, said in zip(j.result.occurrences, j.occurrences_in(fmt))
                        ],
                        "facts": dict(j.result.facts),
                    }
                    for j in items
                ],
            }
        )
    return out


def _nagios_line(config: Any, item: Tuple[Any, Tuple[Any, ...]]) -> str:
    from monagent.api import Status, worst

    run, judged = item
    status = worst(j.status for j in judged) if judged else Status.OK
    parts = [f"{j.result.subject}: {j.summary}" if j.result.subject else j.summary for j in judged if j.status != Status.OK] or [
        j.summary for j in judged
    ][:3]
    summary = "; ".join(p for p in parts if p) or "no results"
    check_config = config.check(run.check)
    thresholds = check_config.thresholds if check_config else {}
    metrics = []
    for j in judged:
        for m in j.metrics:
            label = f"{j.result.subject} {m.metric.name}".strip() if j.result.subject else m.metric.name
            metrics.append((label, m.metric))
    try:
        from monagent.nagios import format_nagios
    except ImportError:
        return f"{run.check.upper()} {status.name} - {summary}"
    return format_nagios(run.check, status, summary, metrics, thresholds)


def cmd_run(args: argparse.Namespace) -> int:
    from monagent.agent import Agent
    from monagent.confread import ConfigError

    try:
        agent = Agent(config_path(args), log_level=args.log_level)
    except ConfigError as err:
        return config_error_exit(err, EX_CONFIG, outcome="nothing was started")
    return agent.run()
