"""Silence and ack requests, decided once for both ways they arrive (docs/design/decisions.md section 6).

A running agent answers them on its control socket (:mod:`monagent.alerting.control_handler`);
with no agent, the CLI writes the store itself (``monagent.commands.alerts``). Both call
:func:`decide` with what the state holds now, so the same request meets the same checks, gets the
same error and yields the same :class:`Decision`, which each path then stores in the same rows
(:func:`monagent.alerting.persist.silence_row`, :func:`~monagent.alerting.persist.ack_row`).

Pure: the clock (``now``) and the source of silence ids are passed in; nothing here reads the
clock, the store or a socket. A request is validated like configuration before it is decided:
known fields only, each of its type, finite times between a day ago (clock skew between the CLI
and the agent) and ten years ahead, bounded strings and lists. A start in the past is now.
"""

from __future__ import annotations

import math
import secrets
from dataclasses import replace
from typing import Any, Callable, Dict, Mapping, Optional, Tuple

from monagent.alerting.machine import AlertState
from monagent.alerting.matchers import Matcher, find_key
from monagent.alerting.suppress import Ack, Silence
from monagent.confread import MAX_DURATION, printable
from monagent.events import AlertKey
from monagent.records import record

MAX_TEXT = 1024  # author, key, silence id
MAX_COMMENT = 4096
MAX_MATCHERS = 64
MAX_PAST = 86400.0  # a time may lie a day back (clock skew between the CLI and the agent)

# op -> {field: (kind, required)}
Spec = Dict[str, Tuple[str, bool]]
FIELDS: Dict[str, Spec] = {
    "silence_add": {
        "matchers": ("matchers", True),
        "ends_at": ("time", True),
        "starts_at": ("time?", False),
        "author": ("text", False),
        "comment": ("comment", False),
    },
    "silence_expire": {"id": ("text", True)},
    "ack": {"key": ("text", True), "author": ("text", False), "comment": ("comment", False), "expires_at": ("time?", False)},
}


class BadRequest(ValueError):
    """A request that cannot be done as asked (malformed, or inconsistent times); the message names the field."""


class NotFound(KeyError):
    """The request names a silence or a firing alert that the state does not hold."""

    def __str__(self) -> str:
        return str(self.args[0])


def validate(message: Mapping[str, Any], now: float, ops: Optional[Mapping[str, Spec]] = None) -> Tuple[str, Dict[str, Any]]:
    """``(op, fields)`` of a well-formed request among ``ops`` (default: the silence and ack ones);
    raises :class:`BadRequest`."""
    ops = FIELDS if ops is None else ops
    op = message.get("op")
    if not isinstance(op, str) or op not in ops:
        raise BadRequest(f"unknown request {printable(str(op), 40)!r}; known: {', '.join(sorted(ops))}")
    spec = ops[op]
    unknown = sorted(str(k) for k in message if k != "op" and k not in spec)
    if unknown:
        raise BadRequest(f"{op}: unknown field {printable(unknown[0], 40)!r}; accepted: {', '.join(spec) or 'none'}")
    fields: Dict[str, Any] = {}
    for name, (kind, required) in spec.items():
        if name not in message:
            if required:
                raise BadRequest(f"{op}: {name} is required")
            continue
        fields[name] = _field(f"{op}: {name}", kind, message[name], now)
    return op, fields


def _field(where: str, kind: str, value: Any, now: float) -> Any:
    if kind in ("text", "comment"):
        limit = MAX_COMMENT if kind == "comment" else MAX_TEXT
        if not isinstance(value, str) or len(value) > limit:
            raise BadRequest(f"{where} must be a string of at most {limit} characters")
        return value
    if kind == "matchers":
        if not isinstance(value, list) or not 0 < len(value) <= MAX_MATCHERS:
            raise BadRequest(f"{where} must be a list of 1 to {MAX_MATCHERS} LABEL=GLOB strings")
        if not all(isinstance(item, str) and len(item) <= MAX_TEXT for item in value):
            raise BadRequest(f"{where} must hold strings of at most {MAX_TEXT} characters")
        try:
            return Matcher.parse(value)
        except ValueError as exc:
            raise BadRequest(f"{where}: {exc}") from None
    if value is None and kind == "time?":
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise BadRequest(f"{where} must be a finite number of seconds since the epoch")
    if not now - MAX_PAST <= value <= now + MAX_DURATION:
        raise BadRequest(f"{where} must lie between a day ago and ten years ahead")
    return float(value)


@record
class Decision:
    """What one request changes: a new or expired silence, or a new ack (exactly one of them)."""

    silence: Optional[Silence] = None
    ack: Optional[Ack] = None

    def answer(self) -> Dict[str, Any]:
        """The requester's answer (the control socket's JSON, the CLI's offline result)."""
        if self.ack is not None:
            return {"ok": True, "ack": self.ack.to_json()}
        assert self.silence is not None
        return {"ok": True, "silence": self.silence.to_json()}


def refusal(exc: Exception) -> Dict[str, Any]:
    """The answer to a request :func:`decide` refused."""
    return {"ok": False, "error": str(exc)}


def new_id() -> str:
    return secrets.token_hex(4)


def decide(
    message: Mapping[str, Any],
    *,
    silences: Mapping[str, Silence],
    alerts: Mapping[AlertKey, AlertState],
    now: float,
    make_id: Callable[[], str] = new_id,
) -> Decision:
    """The change ``message`` asks of a state holding ``silences`` and ``alerts`` at wall time ``now``.

    Raises :class:`BadRequest` (malformed, or a silence that would end before it starts, or an
    acknowledgement that would expire before it is made) or :class:`NotFound` (no such silence,
    no such firing alert)."""
    op, fields = validate(message, now)
    if op == "silence_add":
        return Decision(silence=_new_silence(fields, silences, now, make_id))
    if op == "silence_expire":
        ident = fields["id"]
        if ident not in silences:
            raise NotFound(f"no silence {printable(ident, 200)}")
        old = silences[ident]
        end = min(now, old.ends_at)
        # an expired pending silence is expired, not pending until it would have started
        return Decision(silence=replace(old, starts_at=min(old.starts_at, end), ends_at=end))
    key = find_key(alerts, fields["key"])
    state = alerts.get(key) if key is not None else None
    if key is None or state is None or not state.phase.open:
        raise NotFound(f"no firing alert {printable(fields['key'], 200)}")
    expires_at = fields.get("expires_at")
    if expires_at is not None and expires_at <= now:
        raise BadRequest("ack: expires_at must lie in the future")
    author, comment = fields.get("author", ""), fields.get("comment", "")
    return Decision(ack=Ack(key, state.incident, state.severity, author, now, comment, expires_at))


def _new_silence(fields: Mapping[str, Any], silences: Mapping[str, Silence], now: float, make_id: Callable[[], str]) -> Silence:
    matcher: Matcher = fields["matchers"]
    starts_at: Optional[float] = fields.get("starts_at")
    start = now if starts_at is None else max(starts_at, now)
    ends_at: float = fields["ends_at"]
    if ends_at <= start:
        raise BadRequest("silence_add: the silence would end before it starts")
    ident = make_id()
    while ident in silences:
        ident = make_id()
    return Silence(ident, matcher, start, ends_at, fields.get("author", ""), fields.get("comment", ""), now)
