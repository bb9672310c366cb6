"""Requests over the control socket (DECISIONS.md section 6), answered by the running pipeline.

A request is one JSON object with ``op``; the answer has ``ok`` and either the result
or ``error`` (a sentence for the user). Every request is validated like configuration before
it touches anything: known fields only, each of its type, finite times within ten years of now,
bounded strings and lists. A bad request gets an error answer and changes nothing.
"""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING, Any, Dict, Mapping, Optional, Tuple

from monagent.confread import MAX_DURATION, printable

if TYPE_CHECKING:
    from monagent.alerting.pipeline import AlertPipeline

MAX_TEXT = 1024  # author, key, silence id
MAX_COMMENT = 4096
MAX_MATCHERS = 64
MAX_PAST = 86400.0  # a start time may lie a day back (clock skew between the CLI and the agent)

# op -> {field: (kind, required)}
FIELDS: Dict[str, Dict[str, Tuple[str, bool]]] = {
    "ping": {},
    "paths": {},  # where this agent keeps its state: the CLI reads that, whatever the file says now
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
    """A request that fails validation; the message names the field."""


def validate(message: Mapping[str, Any], now: float) -> Tuple[str, Dict[str, Any]]:
    """``(op, fields)`` of a well-formed request; raises :class:`BadRequest`."""
    op = message.get("op")
    if not isinstance(op, str) or op not in FIELDS:
        raise BadRequest(f"unknown request {printable(str(op), 40)!r}; known: {', '.join(sorted(FIELDS))}")
    spec = FIELDS[op]
    unknown = sorted(str(k) for k in message if k != "op" and k not in spec)
    if unknown:
        raise BadRequest(f"{op}: unknown field {printable(unknown[0], 40)!r}; accepted: {', '.join(spec) or 'none'}")
    fields: Dict[str, Any] = {}
    for name, (kind, required) in spec.items():
        if name not in message:
            if required:
                raise BadRequest(f"{op}: {name} is required")
            continue
        fields[name] = _field(op, name, kind, message[name], now)
    return op, fields


def _field(op: str, name: str, kind: str, value: Any, now: float) -> Any:
    where = f"{op}: {name}"
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
        return list(value)
    if value is None and kind == "time?":
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise BadRequest(f"{where} must be a finite number of seconds since the epoch")
    if not now - MAX_PAST <= value <= now + MAX_DURATION:
        raise BadRequest(f"{where} must lie between a day ago and ten years ahead")
    return float(value)


def handle(pipeline: AlertPipeline, message: Mapping[str, Any], now: Optional[float] = None) -> Dict[str, Any]:
    now = time.time() if now is None else now
    try:
        op, fields = validate(message, now)
    except BadRequest as exc:
        return {"ok": False, "error": str(exc)}
    try:
        if op == "ping":
            return {"ok": True, **pipeline.health()}
        if op == "paths":
            return {"ok": True, "state_dir": str(pipeline.config.agent.state_dir)}
        if op == "silence_add":
            silence = pipeline.add_silence(
                fields["matchers"],
                ends_at=fields["ends_at"],
                starts_at=fields.get("starts_at"),
                author=fields.get("author", ""),
                comment=fields.get("comment", ""),
            )
            return {"ok": True, "silence": silence.to_json()}
        if op == "silence_expire":
            return {"ok": True, "silence": pipeline.expire_silence(fields["id"]).to_json()}
        ack = pipeline.ack(
            fields["key"],
            author=fields.get("author", ""),
            comment=fields.get("comment", ""),
            expires_at=fields.get("expires_at"),
        )
        return {"ok": True, "ack": ack.to_json()}
    except KeyError as exc:
        what = "silence" if op == "silence_expire" else "firing alert"
        return {"ok": False, "error": f"no {what} {printable(str(exc.args[0]), 200)}" if exc.args else "missing field"}
    except ValueError as exc:
        return {"ok": False, "error": str(exc)}
