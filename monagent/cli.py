"""The ``monagent`` command line: parsing and exit codes (logging setup: :mod:`monagent.logsetup`).

Each command group lives in ``monagent/commands/<group>.py`` with a
``register(subparsers)`` function; a command sets ``func`` on its parser and
returns an exit code. Exit codes (sysexits.h, README "Exit codes"): 0 success, 1 a
receiver refused a test message, 64 usage error (also an unknown alert key or silence ID),
73 cannot create the state or runtime directory, 75 temporary (another agent holds the state),
77 permission denied, 78 invalid configuration; ``monagent check`` exits with the worst
status (0-3).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from typing import Any, List, Optional, Sequence

from monagent import __version__

EX_USAGE = 64
EX_CANTCREAT = 73
EX_TEMPFAIL = 75
EX_NOPERM = 77
EX_CONFIG = 78

# The command groups, in the order --help lists them. Explicit, not discovered.
COMMAND_MODULES = (
    "monagent.commands.core",  # run, check, validate, plugins
    "monagent.commands.alerts",  # status, silence, ack
    "monagent.commands.notify",  # notify-test
    "monagent.commands.install",  # install, uninstall
)

# Which group registers each command: `monagent validate` builds only its own group's parsers
# (argparse costs about a millisecond a command; the other groups' imports cost more).
COMMAND_OWNERS = {
    "run": "monagent.commands.core",
    "check": "monagent.commands.core",
    "validate": "monagent.commands.core",
    "plugins": "monagent.commands.core",
    "status": "monagent.commands.alerts",
    "silence": "monagent.commands.alerts",
    "ack": "monagent.commands.alerts",
    "notify-test": "monagent.commands.notify",
    "install": "monagent.commands.install",
    "uninstall": "monagent.commands.install",
}


def _command_of(argv: Sequence[str]) -> Optional[str]:
    """The command named in ``argv`` (the first word that is not an option or -c's value)."""
    skip = False
    for word in argv:
        if skip:
            skip = False
        elif word in ("-c", "--config"):
            skip = True
        elif word == "--":
            return None
        elif not word.startswith("-"):
            return word
    return None


def _columns() -> int:
    """The terminal's width as ``shutil.get_terminal_size`` finds it ($COLUMNS, else stdout's
    terminal, else 80), without importing shutil: 3 ms of every command's start-up (#17)."""
    try:
        columns = int(os.environ.get("COLUMNS", ""))
    except ValueError:
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns  # type: ignore[union-attr]
        except (AttributeError, ValueError, OSError):
            columns = 0
    return columns or 80


class DescriptionFormatter(argparse.RawDescriptionHelpFormatter):
    """argparse's RawDescriptionHelpFormatter (descriptions and epilogs as written), sized by
    ``_columns``; every parser of monagent uses it."""

    def __init__(
        self, prog: str, indent_increment: int = 2, max_help_position: int = 24, width: Optional[int] = None, **kwargs: Any
    ) -> None:
        super().__init__(prog, indent_increment, max_help_position, _columns() - 2 if width is None else width, **kwargs)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        self.exit(EX_USAGE, f"{self.prog}: error: {message}\n")


def build_parser(argv: Optional[Sequence[str]] = None) -> argparse.ArgumentParser:
    """The parser of every command; given ``argv`` that names a known command, only that command's
    group is registered (what it parses is the same; --help and usage errors still see every one)."""
    parser = _Parser(
        prog="monagent",
        description="Server monitoring agent: runs checks, turns problems into one FIRING and one RESOLVED "
        "message, and delivers them to DingTalk, webhooks, Alertmanager or the console.",
        epilog="Examples:\n  monagent run -c /etc/monagent/agent.toml\n  monagent -c agent.toml check\n"
        "  MONAGENT_CONFIG=agent.toml monagent status",
        formatter_class=DescriptionFormatter,
    )
    parser.add_argument("--version", action="version", version=f"monagent {__version__}")
    parser.add_argument(
        "-c",
        "--config",
        dest="global_config",
        default=None,
        metavar="FILE",
        help="configuration file, before or after the command (default: $MONAGENT_CONFIG, else "
        "$CONFIGURATION_DIRECTORY/agent.toml, else /etc/monagent/agent.toml)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    only = COMMAND_OWNERS.get(_command_of(argv) or "") if argv is not None else None
    for name in COMMAND_MODULES:
        if only is not None and name != only:
            continue
        try:
            module = importlib.import_module(name)
        except ImportError as exc:
            if exc.name != name:
                raise
            continue  # a command group not built yet
        module.register(sub)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    words = list(argv) if argv is not None else sys.argv[1:]
    parser = build_parser(words)
    args = parser.parse_args(words)
    if not getattr(args, "func", None):
        parser.print_help()
        return EX_USAGE
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except PermissionError as exc:  # a state dir or socket of an agent running as another user: no traceback
        what = f": {exc.filename}" if exc.filename else ""
        print(f"monagent: permission denied{what}; run this as root or as the user the agent runs as", file=sys.stderr)
        return EX_NOPERM
    except BrokenPipeError:  # `monagent check --json | head`: the reader left, nothing to report
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0


def config_error_exit(error: Exception, code: int = EX_CONFIG, *, outcome: str = "") -> int:
    """Print every problem of a ConfigError to stderr, then what the command did not do because of them
    (``outcome``: "nothing was started" for ``run``, "no check was run" for ``check``; none for
    ``validate``, whose whole answer is the list), and return ``code``."""
    problems: List[object] = list(getattr(error, "problems", [error]))
    for problem in problems:
        print(problem, file=sys.stderr)
    counted = f"monagent: {len(problems)} configuration problem{'s' if len(problems) != 1 else ''}"
    print(f"{counted}; {outcome}" if outcome else counted, file=sys.stderr)
    return code
