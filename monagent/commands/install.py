"""``monagent install`` and ``monagent uninstall``: the systemd service in one command."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from monagent.cli import DescriptionFormatter

EX_ERROR = 1
EX_NOPERM = 77  # sysexits.h: the command needs root


def register(sub: Any) -> None:
    fmt = DescriptionFormatter
    install = sub.add_parser(
        "install",
        help="install the systemd service (as root)",
        formatter_class=fmt,
        description="Install monagent as a hardened systemd service: the unit (its ExecStart runs this monagent, "
        "so a venv or pipx install works), the sysusers.d entry for the monagent user, and, only if "
        "none exists, a default /etc/monagent/agent.toml (mode 0640). Prints the commands to run next.",
        epilog="examples:\n  sudo /opt/monagent/bin/monagent install\n  monagent install --root /tmp/stage --dry-run",
    )
    install.add_argument(
        "--root", type=Path, default=None, metavar="DIR", help="install under DIR instead of / (a staging tree; no root needed)"
    )
    install.add_argument(
        "--config-source",
        type=Path,
        default=None,
        metavar="FILE",
        help="the agent.toml to copy when none exists, after validating it (default: the one shipped with monagent)",
    )
    install.add_argument("--dry-run", action="store_true", help="show what would be written, write nothing")
    install.set_defaults(func=cmd_install)

    uninstall = sub.add_parser(
        "uninstall",
        help="remove the systemd service (keeps config and state)",
        formatter_class=fmt,
        description="Remove the unit and the sysusers.d entry that `monagent install` wrote (and the links "
        "`systemctl enable` made). /etc/monagent, /var/lib/monagent and the monagent user are kept. "
        "Stop and disable the service first, then reload systemd.",
        epilog="example:\n  sudo systemctl disable --now monagent && sudo monagent uninstall && sudo systemctl daemon-reload",
    )
    uninstall.add_argument("--root", type=Path, default=None, metavar="DIR", help="uninstall from DIR instead of /")
    uninstall.set_defaults(func=cmd_uninstall)


def _needs_root(args: argparse.Namespace, verb: str) -> bool:
    if args.root is None and os.geteuid() != 0:
        print(
            f"monagent {verb}: must run as root (it writes to /etc); use sudo, or --root DIR to stage the files in a directory",
            file=sys.stderr,
        )
        return True
    return False


def _print_report(report: Any, dry_run: bool = False) -> None:
    prefix = "would be " if dry_run else ""
    for step in report.steps:
        note = f"  ({step.note})" if step.note else ""
        print(f"{prefix}{step.action.value:<9} {step.path}{note}")
    for warning in report.warnings:
        print(f"warning: {warning}", file=sys.stderr)


def cmd_install(args: argparse.Namespace) -> int:
    from monagent.cli import config_error_exit
    from monagent.confread import ConfigError
    from monagent.install import InstallError, install

    if _needs_root(args, "install"):
        return EX_NOPERM
    try:
        report = install(args.root or Path("/"), config_source=args.config_source, dry_run=args.dry_run)
    except ConfigError as err:
        print(f"monagent install: {args.config_source} is not a valid configuration", file=sys.stderr)
        return config_error_exit(err, outcome="nothing was installed")
    except (InstallError, OSError) as exc:
        print(f"monagent install: {exc}", file=sys.stderr)
        return EX_ERROR
    _print_report(report, args.dry_run)
    print("\nNext, as root" + (" on the target system" if args.root else "") + ":")
    for command in report.commands:
        print(f"  {command}")
    print(f"Then send a test message to your group: {report.program} notify-test -c /etc/monagent/agent.toml")
    return 0


def cmd_uninstall(args: argparse.Namespace) -> int:
    from monagent.install import InstallError, uninstall

    if _needs_root(args, "uninstall"):
        return EX_NOPERM
    try:
        report = uninstall(args.root or Path("/"))
    except (InstallError, OSError) as exc:
        print(f"monagent uninstall: {exc}", file=sys.stderr)
        return EX_ERROR
    _print_report(report)
    print("\nNext, as root" + (" on the target system" if args.root else "") + ":")
    for command in report.commands:
        print(f"  {command}")
    return 0
