"""Suppressions: maintenance windows, silences, inhibition, flapping and acks (docs/design/alerting.md d.6).

They act on notifications only, never on evaluation. :func:`reason` answers, for one
key at one moment, why its notifications are muted ("" when they are not).
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Sequence, Tuple

from monagent.alerting.config import InhibitRule, MaintenanceWindow
from monagent.alerting.matchers import Matcher, key_labels
from monagent.api import Status
from monagent.events import AlertKey
from monagent.records import record


@record
class Silence:
    """Muted notifications for matching keys from ``starts_at`` to ``ends_at`` (required)."""

    id: str
    matcher: Matcher
    starts_at: float
    ends_at: float
    author: str
    comment: str
    created_at: float = 0.0

    def active(self, now: float) -> bool:
        return self.starts_at <= now < self.ends_at

    def state(self, now: float) -> str:
        if now < self.starts_at:
            return "pending"
        return "active" if now < self.ends_at else "expired"

    def to_json(self) -> Dict[str, Any]:
        return {
            "id": self.id,
            "matchers": self.matcher.to_json(),
            "starts_at": self.starts_at,
            "ends_at": self.ends_at,
            "author": self.author,
            "comment": self.comment,
            "created_at": self.created_at,
        }

    @classmethod
    def from_json(cls, data: Dict[str, Any]) -> Silence:
        return cls(
            str(data["id"]),
            Matcher.from_json(data["matchers"]),
            float(data["starts_at"]),
            float(data["ends_at"]),
            str(data.get("author", "")),
            str(data.get("comment", "")),
            float(data.get("created_at", 0.0)),
        )


@record
class Ack:
    """An acknowledged incident: no reminders or de-escalations until it ends or gets worse."""

    key: AlertKey
    incident: str
    severity: Status
    author: str
    at: float
    comment: str = ""
    expires_at: Optional[float] = None

    def active(self, incident: str, now: float) -> bool:
        return incident == self.incident and (self.expires_at is None or now < self.expires_at)

    def to_json(self) -> Dict[str, Any]:
        return {
            "key": [self.key.check, self.key.subject, self.key.metric],
            "incident": self.incident,
            "severity": int(self.severity),
            "author": self.author,
            "at": self.at,
            "comment": self.comment,
            "expires_at": self.expires_at,
        }

    @classmethod
    def from_json(cls, data: Dict[str, Any]) -> Ack:
        expires = data.get("expires_at")
        return cls(
            AlertKey(*data["key"]),
            str(data["incident"]),
            Status(int(data["severity"])),
            str(data.get("author", "")),
            float(data["at"]),
            str(data.get("comment", "")),
            None if expires is None else float(expires),
        )


@record
class Suppressions:
    """Everything that can mute a key at one moment; ``open_keys`` are the keys in FIRING or RESOLVING
    with their check type and severity."""

    windows: Tuple[MaintenanceWindow, ...] = ()
    silences: Tuple[Silence, ...] = ()
    inhibit: Tuple[InhibitRule, ...] = ()
    open_keys: Tuple[Tuple[AlertKey, str, str], ...] = ()

    def muted(self, key: AlertKey, check_type: str, now: float, severity: str = "") -> str:
        """Sources 1-3 (window, silence, inhibition): why ``key`` is muted, or ""."""
        for window in self.windows:
            if window.matcher.matches(key, check_type, severity) and window.active(now):
                return f"maintenance {window.name}"
        for silence in self.silences:
            if silence.active(now) and silence.matcher.matches(key, check_type, severity):
                return f"silence {silence.id}"
        for rule in self.inhibit:
            source = self._inhibitor(rule, key, check_type, severity)
            if source is not None:
                return f"inhibited by {source}"
        return ""

    def _inhibitor(self, rule: InhibitRule, key: AlertKey, check_type: str, severity: str) -> Optional[AlertKey]:
        if not self.open_keys or not rule.target.matches(key, check_type, severity):
            return None  # nothing open inhibits (the common case, and the cheap test first)
        both = rule.source.matches(key, check_type, severity)
        labels = key_labels(key, check_type, severity)
        for source, source_type, source_severity in self.open_keys:
            if source == key or not rule.source.matches(source, source_type, source_severity):
                continue
            if both and rule.target.matches(source, source_type, source_severity):
                continue  # Alertmanager: a key matching both sides is not inhibited by one that does too
            source_labels = key_labels(source, source_type, source_severity)
            if all(labels[name] == source_labels[name] for name in rule.equal):
                return source
        return None


def active_silences(silences: Sequence[Silence], now: float) -> Tuple[Silence, ...]:
    return tuple(s for s in silences if s.active(now))
