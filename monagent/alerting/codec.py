"""JSON forms of alert states, heard records and events, as the store keeps them.

Alert states hold monotonic times inside a run; on disk they are wall-clock
seconds (``offset`` = wall - monotonic at the moment of writing or reading).
"""

from __future__ import annotations

import json
from dataclasses import fields, replace
from typing import Any, Dict, Optional

from monagent.alerting.machine import AlertState, Phase
from monagent.alerting.policy import Heard, HeardKind
from monagent.api import Direction, Status, Threshold
from monagent.events import AlertKey, Event, EventKind
from monagent.formatting import Text, Words

EVENT_FORMAT = 2
"""Version of the stored event: 1 (no ``format`` field) had prose summaries and string facts;
2 adds ``reason`` (a message id with typed arguments) and typed facts. Both decode."""


def words_to_json(words: Words) -> Any:
    return {"text": words.to_json()} if isinstance(words, Text) else words


def words_from_json(data: Any) -> Words:
    if isinstance(data, dict) and isinstance(data.get("text"), dict):
        return Text.from_json(data["text"])
    return "" if data is None else str(data)


_TIMES = ("pending_since", "resolving_since", "firing_since", "last_notified_at", "last_sample_at")


def _shift(value: Optional[float], offset: float) -> Optional[float]:
    return None if value is None else value + offset


def state_to_json(state: AlertState, offset: float) -> str:
    data: Dict[str, Any] = {}
    for f in fields(AlertState):
        value = getattr(state, f.name)
        if f.name in _TIMES:
            value = _shift(value, offset)
        elif isinstance(value, (Phase,)):
            value = value.value
        elif isinstance(value, Status):
            value = int(value)
        elif isinstance(value, Threshold):
            value = [value.warning, value.critical, value.warning_clear, value.critical_clear, value.direction.value]
        elif isinstance(value, tuple):
            value = list(value)
        elif f.name == "facts":
            value = dict(value)
        elif f.name == "reason":
            value = words_to_json(value)
        data[f.name] = value
    return json.dumps(data, sort_keys=True)


def state_from_json(text: str, offset: float) -> AlertState:
    data = json.loads(text)
    known = {f.name for f in fields(AlertState)}
    values: Dict[str, Any] = {k: v for k, v in data.items() if k in known}
    for name in _TIMES:
        if name in values:
            values[name] = _shift(values[name], -offset)
    values["phase"] = Phase(values.get("phase", "inactive"))
    for name in ("latched", "severity"):
        values[name] = Status(int(values.get(name, 0)))
    threshold = values.get("threshold")
    if threshold is not None:
        values["threshold"] = Threshold(threshold[0], threshold[1], threshold[2], threshold[3], Direction(threshold[4]))
    for name in ("window", "flap_hist", "trend"):
        values[name] = tuple(values.get(name, ()))
    values["reason"] = words_from_json(values.get("reason", ""))
    return replace(AlertState(), **values)


def heard_to_json(heard: Heard) -> str:
    return json.dumps({"kind": heard.kind.value, "incident": heard.incident, "severity": int(heard.severity)})


def heard_from_json(text: str) -> Heard:
    data = json.loads(text)
    return Heard(HeardKind(data["kind"]), str(data["incident"]), Status(int(data["severity"])))


def event_to_json(event: Event) -> str:
    data: Dict[str, Any] = {f.name: getattr(event, f.name) for f in fields(Event)}
    data["kind"] = event.kind.value
    data["key"] = [event.key.check, event.key.subject, event.key.metric]
    data["severity"] = int(event.severity)
    data["trend"] = list(event.trend)
    data["facts"] = dict(event.facts)
    data["reason"] = words_to_json(event.reason)
    data["format"] = EVENT_FORMAT
    return json.dumps(data, sort_keys=True)


def event_from_json(text: str) -> Event:
    data = json.loads(text)
    known = {f.name for f in fields(Event)}
    values = {k: v for k, v in data.items() if k in known}
    values["kind"] = EventKind(values["kind"])
    values["key"] = AlertKey(*values["key"])
    values["severity"] = Status(int(values["severity"]))
    values["trend"] = tuple(values.get("trend", ()))
    values["reason"] = words_from_json(values.get("reason", ""))
    return Event(**values)


def json_dumps(data: Any) -> str:
    return json.dumps(data, sort_keys=True)


def json_loads(text: str) -> Any:
    return json.loads(text)
