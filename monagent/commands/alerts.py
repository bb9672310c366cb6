"""``monagent status``, ``silence add|list|expire`` and ``ack``.

While the agent runs, changes go through its control socket; when it does not,
they are written to the store directly, as the owner of the state database, so the
CLI never leaves a file there that the agent's user cannot write. ``status`` and
``silence list`` only read the store (``mode=ro``).
"""

from __future__ import annotations

import argparse
import contextlib
import getpass
import json
import os
import re
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, Iterator, List, Optional, Sequence, Tuple

from monagent.cli import EX_NOPERM, EX_TEMPFAIL, EX_USAGE, DescriptionFormatter, config_error_exit
from monagent.commands.core import add_config_option, load_for_state

if TYPE_CHECKING:
    from monagent.store import Store

# Exit codes (README "Exit codes"): no such firing alert or silence is a usage error (64), like a
# malformed one; the agent busy or a state database not there yet may come back (75); a state or
# socket of another user is 77.
SILENCE_ID = re.compile(r"[0-9a-f]{8}")
SEVERITIES = ("warning", "critical")  # what a severity matcher can meet: an open alert's severity
KEY_HELP = (
    "the alert's key as the Alerts section of `monagent status` prints it: CHECK [SUBJECT] METRIC, e.g. "
    '"disks /var used_percent" or "memory available_percent" (quote it; `monagent status --json` has it as "key")'
)
ID_HELP = "the silence's 8-hex-digit ID, as `monagent silence add` printed it and `monagent silence list` shows it"


def register(sub: Any) -> None:
    fmt = DescriptionFormatter
    status = sub.add_parser(
        "status",
        help="show alerts, outbox, silences and notifier health",
        formatter_class=fmt,
        description="Show the alerts that are not inactive (phase, severity, since, last value "
        "and threshold), the checks failing now (runs in a row without a verdict, "
        "before and after that alerts), the outbox depth per receiver, active silences and "
        "maintenance windows, and each notifier's health and last error. Reads the "
        "state database without changing it.",
        epilog="examples:\n  monagent status\n  monagent status --json | jq .alerts",
    )
    add_config_option(status)
    status.add_argument("--json", action="store_true", help="print JSON")
    status.set_defaults(func=cmd_status)

    silence = sub.add_parser(
        "silence",
        help="add, list or expire silences",
        formatter_class=fmt,
        description="Silences mute notifications (never evaluation) for the alert keys they "
        "match, from now until they end. When one ends, what the group heard is "
        "reconciled with the current state.",
        epilog="example:\n  monagent silence add --match check=disks --match subject=/var "
        "--duration 2h --comment 'disk migration'",
    )
    actions = silence.add_subparsers(dest="action", metavar="ACTION")
    add = actions.add_parser(
        "add",
        help="add a silence",
        formatter_class=fmt,
        description="Add a silence. Each --match is LABEL=GLOB with LABEL one of check, "
        "subject, metric, type (the check type) or severity (warning, "
        "critical); all must match. A silence of warnings lets an escalation "
        "to critical through.",
        epilog="example:\n  monagent silence add --match check=disks --duration 2h --comment 'resizing /var'",
    )
    add_config_option(add)
    add.add_argument("--match", action="append", required=True, metavar="LABEL=GLOB", help="a matcher (repeatable)")
    add.add_argument("--duration", required=True, help='how long, e.g. "30m", "2h", "1d"')
    add.add_argument("--comment", required=True, help="why (shown in status)")
    add.add_argument("--author", default=None, help="who (default: the invoking user)")
    add.set_defaults(func=cmd_silence_add)
    listing = actions.add_parser(
        "list",
        help="list silences",
        formatter_class=fmt,
        description="List pending and active silences (--all: expired ones too).",
        epilog="example:\n  monagent silence list --all",
    )
    add_config_option(listing)
    listing.add_argument("--all", action="store_true", help="include expired silences")
    listing.add_argument("--json", action="store_true", help="print JSON")
    listing.set_defaults(func=cmd_silence_list)
    expire = actions.add_parser(
        "expire",
        help="end a silence now",
        formatter_class=fmt,
        description="End a silence now; notifications for its keys resume after the next check run.",
        epilog="example:\n  monagent silence expire 1a2b3c4d",
    )
    add_config_option(expire)
    expire.add_argument("id", metavar="ID", help=ID_HELP)
    expire.set_defaults(func=cmd_silence_expire)
    silence.set_defaults(func=lambda args: _usage(silence))

    ack = sub.add_parser(
        "ack",
        help="acknowledge a firing alert (stops its reminders)",
        formatter_class=fmt,
        description="Acknowledge a firing alert: no reminders or de-escalation messages until it "
        "resolves; an escalation above the acknowledged severity is still sent and "
        "ends the acknowledgement. KEY is as `monagent status` prints it.",
        epilog="example:\n  monagent ack 'disks /var used_percent' --comment 'cleaning up logs'",
    )
    add_config_option(ack)
    ack.add_argument("key", metavar="KEY", help=KEY_HELP)
    ack.add_argument("--comment", default="", help="shown in status")
    ack.add_argument("--author", default=None, help="who (default: the invoking user)")
    ack.add_argument("--expires", default=None, metavar="DURATION", help="end the acknowledgement after this long")
    ack.set_defaults(func=cmd_ack)


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return EX_USAGE


class UsageError(ValueError):
    """A bad argument: exit 64 with the message."""


# ---------------------------------------------------------------- shared plumbing


def _config(args: argparse.Namespace) -> Any:
    """Leniently: only the state and runtime directories matter here (docs/design/decisions.md section 4)."""
    return load_for_state(args, args.command if args.command != "silence" else f"silence {args.action}")


def _socket(config: Any) -> Path:
    return Path(config.agent.runtime_dir) / "control.sock"


def _agent_uids(config: Any) -> Tuple[int, ...]:
    """The agent's user, as far as the CLI can tell: the owner of the state directory."""
    try:
        return (Path(config.agent.state_dir).stat().st_uid,)
    except OSError:
        return ()


def _author(args: argparse.Namespace) -> str:
    return args.author or os.environ.get("SUDO_USER") or getpass.getuser()


def _exit_code(answer: Dict[str, Any]) -> int:
    """A refused change: 64 for no such alert or silence (or a request the agent found bad), 75 when
    the agent was busy or went away, else the code the local path chose."""
    if "code" in answer:
        return int(answer["code"])
    if str(answer.get("error", "")).startswith(("busy", "the agent closed", "bad answer")):
        return EX_TEMPFAIL
    return EX_USAGE


def _fail(message: str, code: int) -> int:
    print(f"monagent: {message}", file=sys.stderr)
    return code


def _clock(wall: Optional[float]) -> str:
    if not wall:
        return "-"
    from monagent.formatting import Formatter

    return Formatter("en").minute(wall)


@contextlib.contextmanager
def _as_owner(path: Path) -> Iterator[None]:
    """As root, act as the owner of ``path`` so new files (-wal, -shm) belong to the agent's user."""
    info = path.stat()
    if os.geteuid() != 0 or info.st_uid == 0:
        yield
        return
    os.setegid(info.st_gid)
    os.seteuid(info.st_uid)
    try:
        yield
    finally:
        os.seteuid(0)
        os.setegid(0)


def _change(config: Any, message: Dict[str, Any]) -> Dict[str, Any]:
    """Through the running agent, else directly into the store (only if this user may write it)."""
    from monagent.alerting.silence_ack import BadRequest, validate
    from monagent.control import AgentNotRunning, UntrustedSocket, request

    try:
        validate(message, time.time())  # the same rules as the agent's: a bad request changes nothing
    except BadRequest as exc:
        return {"ok": False, "error": str(exc)}
    try:
        return request(_socket(config), message, trusted_uids=_agent_uids(config))
    except UntrustedSocket as exc:
        print(f"warning: {exc}; not sending anything there", file=sys.stderr)
    except AgentNotRunning:
        pass
    except PermissionError:
        return {
            "ok": False,
            "code": EX_NOPERM,
            "error": f"cannot reach the agent's control socket {_socket(config)}: permission "
            "denied (run as root or as a member of the agent's group)",
        }
    state_dir = Path(config.agent.state_dir)
    db = state_dir / "state.db"
    if not db.exists():
        return {"ok": False, "code": EX_TEMPFAIL, "error": f"no state database in {state_dir}: start the agent once first"}
    if os.geteuid() != 0 and not (os.access(db, os.W_OK) and os.access(state_dir, os.W_OK)):
        return {
            "ok": False,
            "code": EX_NOPERM,
            "error": f"the agent is not running and {db} is not writable by this user; run as the agent's user or root",
        }
    # Everything is imported before the switch to the owner's uid, which may not read the interpreter's files.
    import sqlite3  # noqa: F401

    import monagent.alerting.persist  # noqa: F401  (and silence_ack, codec: what _offline uses)
    from monagent.store import Store

    with _as_owner(db):
        store = Store.open(state_dir)
        try:
            return _offline(store, message, time.time())
        finally:
            store.close()


def _offline(store: Store, message: Dict[str, Any], now: float) -> Dict[str, Any]:
    """The request decided by the agent's own rules (:func:`silence_ack.decide`) on what the store
    holds, and written in the rows the agent's commit would write."""
    from monagent.alerting import codec, persist, silence_ack
    from monagent.alerting.suppress import Silence
    from monagent.events import AlertKey
    from monagent.store import StoreUnavailable

    snapshot = store.load()
    silences = {ident: Silence.from_json(codec.json_loads(text)) for ident, text in snapshot.silences.items()}
    alerts = {AlertKey.from_id(ident): codec.state_from_json(text, 0.0) for ident, text in snapshot.alerts.items()}
    try:
        decision = silence_ack.decide(message, silences=silences, alerts=alerts, now=now)
    except (silence_ack.BadRequest, silence_ack.NotFound) as exc:
        return silence_ack.refusal(exc)
    try:
        store.commit(persist.decision_changes(decision), now)
    except StoreUnavailable as exc:
        return {"ok": False, "code": EX_TEMPFAIL, "error": f"cannot write the state database: {exc}"}
    return decision.answer()


def _duration(option: str, text: str) -> float:
    """Seconds; raises UsageError."""
    from monagent.confread import DurationTooLong, parse_duration

    try:
        seconds = parse_duration(text)
    except DurationTooLong:
        raise UsageError(f'{option}: "{text}" is longer than 3650d (ten years)') from None
    except ValueError:
        raise UsageError(f'{option}: bad duration "{text}": use e.g. "30m", "2h", "1d", "1h30m"') from None
    if seconds <= 0:
        raise UsageError(f'{option}: the duration must be more than 0, got "{text}"')
    return seconds


def _matcher(items: Sequence[str]) -> Any:
    """The parsed ``--match`` items; raises UsageError."""
    from monagent.alerting.matchers import Matcher

    try:
        return Matcher.parse(items)
    except ValueError as exc:
        raise UsageError(f"--match: {exc}") from None


def _check_key(text: str) -> None:
    """Raises UsageError unless ``text`` has the shape of an alert key (find_key's forms)."""
    words = text.split()
    if len(words) >= 2 or "\x1f" in text or (len(words) == 1 and text.count("/") >= 2):
        return
    raise UsageError(
        f'bad KEY "{text}": a KEY is CHECK [SUBJECT] METRIC as `monagent status` prints it, e.g. "disks /var used_percent"'
    )


def _check_silence_id(text: str) -> str:
    if not SILENCE_ID.fullmatch(text.lower()):
        raise UsageError(f'bad silence ID "{text}": an ID is 8 hex digits as `monagent silence list` shows it, e.g. 1a2b3c4d')
    return text.lower()


def unmatched_warnings(config: Any, matcher: Any) -> List[str]:
    """What in ``matcher`` matches nothing configured: no check (by name and type), or no severity."""
    import fnmatch

    from monagent.events import AGENT_CHECK

    def hits(label: str, value: str) -> bool:
        return all(any(fnmatch.fnmatchcase(value, p) for p in patterns) for name, patterns in matcher.pairs if name == label)

    warnings = []
    by_check = [(label, patterns) for label, patterns in matcher.pairs if label in ("check", "type", "check_type")]
    checks = [(c.name, c.type) for c in config.checks] + [(AGENT_CHECK, "")]
    if by_check and not any(hits("check", name) and hits("type", kind) and hits("check_type", kind) for name, kind in checks):
        typed = any(label != "check" for label, _ in by_check)
        configured = ", ".join(f"{c.name} ({c.type})" if typed else c.name for c in config.checks) or "none"
        asked = ", ".join(f"{label}={'|'.join(p)}" for label, p in by_check)
        warnings.append(f"no configured check matches {asked}; configured: {configured}")
    if not any(hits("severity", level) for level in SEVERITIES):
        asked = ", ".join(f"severity={'|'.join(p)}" for label, p in matcher.pairs if label == "severity")
        warnings.append(f"no severity matches {asked}; severities: {', '.join(SEVERITIES)}")
    return warnings


# ---------------------------------------------------------------- commands


def cmd_silence_add(args: argparse.Namespace) -> int:
    from monagent.confread import ConfigError, format_duration

    try:
        matcher = _matcher(args.match)
        duration = _duration("--duration", args.duration)
        config = _config(args)
    except UsageError as exc:
        return _fail(str(exc), EX_USAGE)
    except ConfigError as err:
        return config_error_exit(err, outcome="nothing was changed")
    for warning in unmatched_warnings(config, matcher):
        print(f"warning: {warning}; adding the silence anyway (it applies once one exists)", file=sys.stderr)
    answer = _change(
        config,
        {
            "op": "silence_add",
            "matchers": args.match,
            "ends_at": time.time() + duration,
            "author": _author(args),
            "comment": args.comment,
        },
    )
    if not answer.get("ok"):
        return _fail(answer.get("error", "failed"), _exit_code(answer))
    silence = answer["silence"]
    match = ", ".join(f"{label}={'|'.join(p)}" for label, p in silence["matchers"])
    print(f"silence {silence['id']} added: {match} until {_clock(silence['ends_at'])} ({format_duration(duration)})")
    return 0


def cmd_silence_expire(args: argparse.Namespace) -> int:
    from monagent.confread import ConfigError

    try:
        ident = _check_silence_id(args.id)
        config = _config(args)
    except UsageError as exc:
        return _fail(str(exc), EX_USAGE)
    except ConfigError as err:
        return config_error_exit(err, outcome="nothing was changed")
    answer = _change(config, {"op": "silence_expire", "id": ident})
    if not answer.get("ok"):
        error = answer.get("error", "failed")
        if error == f"no silence {ident}":
            error = f"no silence with ID {ident}; `monagent silence list --all` shows the IDs"
        return _fail(error, _exit_code(answer))
    print(f"silence {ident} expired")
    return 0


def cmd_ack(args: argparse.Namespace) -> int:
    from monagent.confread import ConfigError

    try:
        _check_key(args.key)
        expires = time.time() + _duration("--expires", args.expires) if args.expires is not None else None
        config = _config(args)
    except UsageError as exc:
        return _fail(str(exc), EX_USAGE)
    except ConfigError as err:
        return config_error_exit(err, outcome="nothing was changed")
    answer = _change(
        config, {"op": "ack", "key": args.key, "author": _author(args), "comment": args.comment, "expires_at": expires}
    )
    if not answer.get("ok"):
        error = answer.get("error", "failed")
        if error == f"no firing alert {args.key}":
            error += "; `monagent status` lists the firing alerts with their keys"
        return _fail(error, _exit_code(answer))
    print(f"acknowledged {args.key} (incident {answer['ack']['incident']}): no reminders until it resolves or gets worse")
    return 0


def _state_dir(config: Any) -> Path:
    """The running agent's state directory (asked over its socket), else the config's."""
    from monagent.control import AgentNotRunning, request

    try:
        answer = request(_socket(config), {"op": "paths"}, timeout=2.0)
    except (AgentNotRunning, OSError, ValueError):
        return Path(config.agent.state_dir)
    return (
        Path(answer["state_dir"])
        if answer.get("ok") and isinstance(answer.get("state_dir"), str)
        else Path(config.agent.state_dir)
    )


def _open_readonly(config: Any) -> Tuple[Any, Any]:
    """``(config, store)``: the config with the running agent's state directory, and its store read-only."""
    import dataclasses

    from monagent.store import Store

    state_dir = _state_dir(config)
    if state_dir != Path(config.agent.state_dir):
        config = dataclasses.replace(config, agent=dataclasses.replace(config.agent, state_dir=state_dir))
    return config, Store.open_readonly(state_dir)


def _read_state(args: argparse.Namespace, read: Any) -> Tuple[Optional[int], Any]:
    """Load the config, open the state read-only and return ``(None, read(config, store))``, or
    ``(exit code, None)`` after printing why it could not."""
    from monagent.confread import ConfigError
    from monagent.store import StoreError

    try:
        config, store = _open_readonly(_config(args))
    except ConfigError as err:
        return config_error_exit(err, outcome="the agent's state was not read"), None
    except StoreError as exc:
        return _fail(str(exc), EX_NOPERM if isinstance(exc.__cause__, PermissionError) else EX_TEMPFAIL), None
    try:
        return None, read(config, store)
    finally:
        store.close()


def cmd_silence_list(args: argparse.Namespace) -> int:
    from monagent.alerting.status import silences

    code, rows = _read_state(args, lambda config, store: silences(store, time.time(), include_expired=args.all))
    if code is not None:
        return code
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        print("no silences")
    for row in rows:
        print(
            f"{row['id']}  {row['state']:<8} {_clock(row['starts_at'])} - {_clock(row['ends_at'])}  {row['match']}  "
            f"by {row['author']}: {row['comment']}"
        )
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from monagent.alerting.status import gather
    from monagent.control import agent_ping

    def read(config: Any, store: Any) -> Dict[str, Any]:
        ping = agent_ping(_socket(config), _agent_uids(config))
        data = gather(config, store, time.time(), running=None if ping is None else bool(ping.get("ok")))
        data["agent"]["problem"] = str((ping or {}).get("problem", ""))
        return data

    code, data = _read_state(args, read)
    if code is not None:
        return code
    if args.json:
        print(json.dumps(data, indent=2, sort_keys=True))
    else:
        print("\n".join(render_status(data)))
    return 0


def _value_text(row: Dict[str, Any], language: str = "en") -> str:
    from monagent import wording
    from monagent.formatting import Formatter

    return wording.describe(
        Formatter(language),
        metric=row["metric"],
        value=row["value"],
        unit=row["unit"],
        operator=row["operator"],
        limit=row["threshold"],
        reason=row["reason"],
    )


def _runs_text(prefix: str, runs: int) -> str:
    return f"{prefix}{runs} run{'s' if runs != 1 else ''} in a row without a verdict"


def _failing_text(row: Dict[str, Any]) -> str:
    what = " ".join(part for part in (row["check"], row["subject"]) if part)
    alerting = "alerting" if row["alerting"] else f"alerts after {row['alert_after']}"
    return f"  {what}: {_runs_text('', row['runs'])} ({alerting}): {row['reason'] or 'no reason given'}"


# Receiver states (monagent.alerting.status.receiver_state), one place per text.
RECEIVER_STATES = {
    "ok": "ok",
    "idle": "nothing sent yet",
    "never-delivered": "NEVER DELIVERED ({queued} queued)",
    "failing": "FAILING since {since} ({error_class})",
    "broken": "BROKEN since {since}: not sending until fixed",
    "locked-out": "locked out until {since}",
}


def _notifier_text(h: Dict[str, Any], queued: int) -> str:
    state = RECEIVER_STATES.get(h["state"], h["state"]).format(
        since=_clock(h["since"]), queued=queued, error_class=h["last_error_class"] or "error"
    )
    text = f"  {h['receiver']}: {state}, last success {_clock(h['last_success'])}, sent {h['sent']}"
    if h["failed"]:
        text += f", failed attempts {h['failed']}"
    if h["dropped"]:
        text += f", dropped {h['dropped']}"
    if h["last_error"]:
        text += f"; last error {_clock(h['last_error_at'])}: {h['last_error']}"
    return text


def render_status(data: Dict[str, Any]) -> List[str]:
    agent = data["agent"]
    language = agent.get("language", "en")
    running = {True: "running", False: "not running", None: "state unknown (no access to its control socket)"}
    lines = [
        f"{data['host']}: agent {running[agent['running']]}, last evaluation "
        f"{_clock(agent['last_eval_at'])}, state in {agent['state_dir']}",
    ]
    if agent.get("problem"):
        lines.append(f"  {agent['problem']}")
    lines += ["", "Alerts:"]
    for row in data["alerts"]:
        extra = [
            word
            for word, on in (
                ("flapping", row["flapping"]),
                (f"muted: {row['muted']}", row["muted"]),
                (f"acked by {row['acked_by']}", row["acked_by"]),
                (_runs_text("check failing: ", row["unknown_streak"]), row["unknown_streak"]),
            )
            if on
        ]
        lines.append(
            f"  {row['phase'].upper():<9} {row['severity'] or '-':<8} {row['key']}  {_value_text(row, language)}  "
            f"since {_clock(row['since'])}" + (f"  [{'; '.join(extra)}]" if extra else "")
        )
    if not data["alerts"]:
        lines.append("  none")
    lines += ["", "Checks failing:"] + [_failing_text(row) for row in data["failing"]]
    if not data["failing"]:
        lines.append("  none")
    lines += ["", "Outbox:"] + [f"  {r}: {n} queued" for r, n in data["outbox"].items()]
    lines += ["", "Silences:"] + [
        f"  {s['id']} {s['state']} until {_clock(s['ends_at'])}  {s['match']}  by {s['author']}: {s['comment']}"
        for s in data["silences"]
    ]
    if not data["silences"]:
        lines.append("  none")
    lines += ["", "Maintenance windows:"] + [
        f"  {w['name']}: {'ACTIVE' if w['active'] else 'inactive'}  {','.join(w['weekdays'])} {','.join(w['times'])} "
        f"{w['time_zone']}  {w['match']}"
        for w in data["windows"]
    ]
    if not data["windows"]:
        lines.append("  none")
    lines += ["", "Notifiers:"] + [_notifier_text(h, data["outbox"].get(h["receiver"], 0)) for h in data["notifiers"]]
    return lines
