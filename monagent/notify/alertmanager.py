"""The Prometheus Alertmanager receiver: tell every Alertmanager the current state.

Alertmanager keeps alerts in memory only and resolves one by itself when its ``endsAt``
passes, so it is told the state the way Prometheus tells it (docs/design/decisions.md section 5):

- outbox events are folded into an *active set* kept in the store's key-value table, so
  a restarted agent goes on re-posting;
- every ``repost_interval`` (60 s) the whole set is posted to EVERY configured URL (all
  members of an HA cluster), firing alerts with ``endsAt`` = now + ``ends_at_lead`` (4 m);
  a change is posted at once. An Alertmanager that was down gets everything with the next
  post after it is back;
- a resolve is posted with ``endsAt`` = the resolve time, and re-posted for 15 minutes (as
  Prometheus does) so an Alertmanager restart cannot lose it; an occurrence is posted with a
  short ``endsAt``;
- the always-firing watchdog alert (``MonagentWatchdog``) rides along with every post: when
  it stops arriving, Alertmanager resolves it and routing can page that this host is gone.
"""

from __future__ import annotations

import json
import re
from dataclasses import replace
from datetime import datetime, timezone
from typing import Any, Dict, List, Mapping, Optional, Protocol, Sequence, Set, Tuple

from monagent.api import Status
from monagent.events import Event, EventKind, OutboxEntry, Outcome, OutcomeKind
from monagent.lazylog import get_logger
from monagent.notify.alertmanager_config import AlertmanagerConfig
from monagent.notify.base import Outbox
from monagent.records import record
from monagent.wording import ENGLISH, event_summary, fact_text

log = get_logger(__name__)

RECEIVER = "alertmanager"
NAMESPACE = "alertmanager"  # the store's key-value namespace of the active set: one row per alert
RESOLVED_RETENTION = 900.0  # Prometheus's resolvedRetention: re-post a resolve for 15 minutes
FIRST_RETRY = 5.0
_ACTIVE_KINDS = (EventKind.FIRING, EventKind.ESCALATED, EventKind.DEESCALATED, EventKind.REMINDER)

Labels = Tuple[Tuple[str, str], ...]


class KeyValue(Protocol):
    """The store's key-value table for receivers (:class:`monagent.store.Store` has it): JSON values."""

    def kv_items(self, namespace: str) -> Dict[str, Any]: ...

    def kv_set(self, namespace: str, key: str, value: Any) -> None:
        """Store a JSON value (None deletes it); committed before it returns."""
        ...


class MemoryKeyValue:
    """A :class:`KeyValue` in a dict, for ``monagent notify test`` and the tests."""

    def __init__(self) -> None:
        self.data: Dict[str, Dict[str, Any]] = {}

    def kv_items(self, namespace: str) -> Dict[str, Any]:
        copy: Dict[str, Any] = json.loads(json.dumps(self.data.get(namespace, {})))
        return copy

    def kv_set(self, namespace: str, key: str, value: Any) -> None:
        if value is None:
            self.data.get(namespace, {}).pop(key, None)
        else:
            self.data.setdefault(namespace, {})[key] = json.loads(json.dumps(value))


# ---------------------------------------------------------------- alerts


@record
class AmAlert:
    """One alert as Alertmanager sees it. ``ends_at`` None: firing, ends ``ends_at_lead`` after each post."""

    labels: Labels
    annotations: Labels
    starts_at: float
    ends_at: Optional[float] = None
    forget_at: Optional[float] = None  # leaves the active set then (resolved: retention; occurrence: its end)

    def payload(self, now: float, lead: float) -> Dict[str, Any]:
        ends_at = now + lead if self.ends_at is None else self.ends_at
        return {
            "labels": dict(self.labels),
            "annotations": dict(self.annotations),
            "startsAt": rfc3339(min(self.starts_at, ends_at)),
            "endsAt": rfc3339(ends_at),
        }

    def to_json(self) -> Dict[str, Any]:
        return {
            "labels": dict(self.labels),
            "annotations": dict(self.annotations),
            "starts_at": self.starts_at,
            "ends_at": self.ends_at,
            "forget_at": self.forget_at,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> AmAlert:
        return cls(
            _labels(data["labels"]),
            _labels(data["annotations"]),
            float(data["starts_at"]),
            data.get("ends_at"),
            data.get("forget_at"),
        )


def _labels(mapping: Mapping[str, str]) -> Labels:
    return tuple(sorted((str(k), str(v)) for k, v in mapping.items() if v != ""))


def rfc3339(seconds: float) -> str:
    """``1764340800.5`` -> ``"2025-11-28T14:40:00.500Z"``."""
    return datetime.fromtimestamp(seconds, tz=timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def alertname(check_type: str, metric: str) -> str:
    """``("disk", "used_percent")`` -> ``"DiskUsedPercent"``; ``("nagios", "#unknown")`` -> ``"NagiosUnknown"``."""
    words = re.split(r"[^A-Za-z0-9]+", f"{check_type} {metric}")
    return "".join(word[:1].upper() + word[1:] for word in words if word) or "Monagent"


def severity_label(severity: Status) -> str:
    return severity.label


def event_labels(event: Event, extra: Mapping[str, str]) -> Labels:
    labels = dict(extra)
    labels.update(
        {
            "alertname": alertname(event.check_type or event.key.check, event.key.metric),
            "instance": event.host,
            "check": event.key.check,
            "subject": event.key.subject,
            "metric": event.key.metric,
            "severity": severity_label(event.severity),
        }
    )
    if event.kind == EventKind.OCCURRENCE:
        labels["occurrence"] = event.id
    return _labels(labels)


def event_annotations(event: Event) -> Labels:
    """``summary`` and ``description`` in English, with values and facts in the formatter's units."""
    fmt = ENGLISH
    lines = []
    if event.value is not None:
        limit = f" ({fmt.threshold(event.operator, event.threshold, event.unit)})" if event.threshold is not None else ""
        lines.append(f"value: {fmt.value(event.value, event.unit)}{limit}")
    lines += [f"{name}: {fact_text(fmt, name, value)}" for name, value in event.facts.items()]
    lines += [text for text in (event.details, event.note) if text]
    summary = " ".join(p for p in (str(event.key), event_summary(fmt, event)) if p)
    return _labels({"summary": summary, "description": "\n".join(lines)})


def fingerprint(labels: Labels) -> str:
    return "\x1f".join(f"{k}={v}" for k, v in labels)


# ---------------------------------------------------------------- the active set


class _Tracked(Dict[str, AmAlert]):
    """A dict that remembers which identities changed since the last save."""

    def __init__(self, items: Mapping[str, AmAlert]) -> None:
        super().__init__(items)
        self.dirty: Set[str] = set()

    def __setitem__(self, key: str, value: AmAlert) -> None:
        super().__setitem__(key, value)
        self.dirty.add(key)

    def __delitem__(self, key: str) -> None:
        super().__delitem__(key)
        self.dirty.add(key)

    def pop(self, key: str, default: Any = None) -> Any:
        self.dirty.add(key)
        return super().pop(key, default)


class ActiveSet:
    """The alerts to post, by identity: an alert key's id, ``resolved:`` + labels, ``occurrence:`` + id."""

    def __init__(self, alerts: Optional[Mapping[str, AmAlert]] = None) -> None:
        self.alerts = _Tracked(alerts or {})

    @classmethod
    def load(cls, kv: KeyValue) -> ActiveSet:
        alerts = {}
        for ident, item in kv.kv_items(NAMESPACE).items():
            try:
                alerts[ident] = AmAlert.from_json(item)
            except (ValueError, KeyError, TypeError, AttributeError) as exc:
                log.warning("alertmanager: a stored alert is unreadable (%s: %s); it is dropped", type(exc).__name__, exc)
                kv.kv_set(NAMESPACE, ident, None)
        return cls(alerts)

    def save(self, kv: KeyValue) -> None:
        """Write the alerts that changed (one row each); forgotten ones are deleted."""
        for ident in sorted(self.alerts.dirty):
            alert = self.alerts.get(ident)
            kv.kv_set(NAMESPACE, ident, None if alert is None else alert.to_json())
        self.alerts.dirty.clear()

    def apply(self, event: Event, extra: Mapping[str, str], now: float, lead: float) -> bool:
        """Fold one event in; True when what Alertmanager must be told changed."""
        ident = event.key.as_id()
        if event.kind in _ACTIVE_KINDS:
            return self._fire(ident, event, extra)
        if event.kind == EventKind.RESOLVED:
            previous = self.alerts.pop(ident, None)
            labels = previous.labels if previous else event_labels(event, extra)
            starts_at = previous.starts_at if previous else (event.since or event.time)
            annotations = event_annotations(event)
            self._resolve(AmAlert(labels, annotations, starts_at), event.time)
            return True
        if event.kind == EventKind.OCCURRENCE:
            ends_at = max(event.time, now) + lead
            alert = AmAlert(event_labels(event, extra), event_annotations(event), event.time, ends_at, ends_at)
            self.alerts[f"occurrence:{event.id}"] = alert
            return True
        return False  # flapping and notices mean nothing to Alertmanager: the state says it all

    def _fire(self, ident: str, event: Event, extra: Mapping[str, str]) -> bool:
        labels = event_labels(event, extra)
        previous = self.alerts.get(ident)
        starts_at = event.since or (previous.starts_at if previous else event.time)
        if previous is not None and previous.labels != labels:
            self._resolve(previous, event.time)  # a new severity is a new alert: end the old one now
        if f"resolved:{fingerprint(labels)}" in self.alerts:  # it fires again within the retention
            del self.alerts[f"resolved:{fingerprint(labels)}"]
        alert = AmAlert(labels, event_annotations(event), starts_at)
        self.alerts[ident] = alert
        return previous != alert

    def _resolve(self, alert: AmAlert, at: float) -> None:
        self.alerts[f"resolved:{fingerprint(alert.labels)}"] = replace(alert, ends_at=at, forget_at=at + RESOLVED_RETENTION)

    def expire(self, now: float) -> None:
        """Forget resolves past their retention and occurrences past their end (Alertmanager has them ended)."""
        gone = [ident for ident, alert in self.alerts.items() if alert.forget_at is not None and alert.forget_at <= now]
        for ident in gone:
            del self.alerts[ident]


# ---------------------------------------------------------------- the receiver


@record
class UrlHealth:
    """The last post to one Alertmanager URL."""

    url: str
    up: Optional[bool] = None  # None: not tried yet
    last_success: Optional[float] = None
    last_error: str = ""
    last_error_at: Optional[float] = None


class AlertmanagerReceiver:
    """Posts alerts to ``/api/v2/alerts`` of every configured Alertmanager; accepted if one accepts."""

    name = RECEIVER

    def __init__(self, config: AlertmanagerConfig, host: str) -> None:
        self.config = config
        self.host = host
        self.health: Dict[str, UrlHealth] = {url: UrlHealth(url) for url in config.urls}
        self._sessions: Dict[str, Any] = {}  # one per URL: the URLs are posted to in parallel

    def send(self, entries: Sequence[OutboxEntry], now: float) -> Outcome:
        """Post these entries' alerts once (``monagent notify test``); the dispatcher posts the active set."""
        active = ActiveSet()
        for entry in entries:
            active.apply(entry.event, self.config.labels, now, self.config.ends_at_lead)
        return self.post([a.payload(now, self.config.ends_at_lead) for a in active.alerts.values()], now)

    def post(self, alerts: Sequence[Mapping[str, Any]], now: float) -> Outcome:
        body = json.dumps(list(alerts)).encode()
        outcomes = self._post_all(body, now)
        if any(o.kind == OutcomeKind.DELIVERED for o in outcomes):
            return Outcome(OutcomeKind.DELIVERED)
        reason = "; ".join(o.reason for o in outcomes)
        retry = [o for o in outcomes if o.kind == OutcomeKind.RETRY]
        worst = retry[0] if retry else outcomes[0]
        return Outcome(worst.kind, reason, code=worst.code)

    def _post_all(self, body: bytes, now: float) -> List[Outcome]:
        """One request per URL, in parallel: a member that does not answer must not delay the others."""
        urls = self.config.urls
        if len(urls) == 1:
            return [self._post_one(urls[0], body, now)]
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=len(urls), thread_name_prefix="alertmanager") as pool:
            return list(pool.map(lambda url: self._post_one(url, body, now), urls))

    def _post_one(self, url: str, body: bytes, now: float) -> Outcome:
        import requests

        from monagent.notify import http

        try:
            reply = http.post(
                self._http(url),
                f"{url}/api/v2/alerts",
                data=body,
                timeout=self.config.timeout,
                headers=self._headers(),
                verify=self._verify(),
            )
        except http.Redirected as exc:
            return self._failed(url, now, Outcome(OutcomeKind.BROKEN, f"{url}: {exc}"))
        except http.HttpFailure as exc:
            return self._failed(url, now, Outcome(OutcomeKind.RETRY, f"{url}: {exc}"))
        except requests.RequestException as exc:
            return self._failed(url, now, Outcome(OutcomeKind.RETRY, f"{url}: cannot reach it: {_short(exc)}"))
        if reply.status == 200:
            return self._succeeded(url, now)
        return self._failed(url, now, classify(url, reply.status, reply.text))

    def _succeeded(self, url: str, now: float) -> Outcome:
        if self.health[url].up is False:
            log.info("alertmanager: %s accepts alerts again", url)
        self.health[url] = UrlHealth(url, True, now)
        return Outcome(OutcomeKind.DELIVERED)

    def _failed(self, url: str, now: float, outcome: Outcome) -> Outcome:
        before = self.health[url]
        if before.up is not False or before.last_error != outcome.reason:
            if outcome.kind == OutcomeKind.BROKEN:
                log.error("alertmanager: %s", outcome.reason)
            else:
                log.warning("alertmanager: %s", outcome.reason)
        self.health[url] = UrlHealth(url, False, before.last_success, outcome.reason, now)
        return outcome

    def _headers(self) -> Dict[str, str]:
        headers = {"Content-Type": "application/json", "User-Agent": "monagent"}
        if self.config.bearer_token is not None:
            headers["Authorization"] = f"Bearer {self.config.bearer_token.reveal()}"
        elif self.config.password is not None:
            import base64

            pair = f"{self.config.username}:{self.config.password.reveal()}".encode()
            headers["Authorization"] = f"Basic {base64.b64encode(pair).decode()}"
        return headers

    def _verify(self) -> Any:
        if not self.config.tls_verify:
            return False
        return str(self.config.ca_file) if self.config.ca_file else True

    def _http(self, url: str) -> Any:
        if url not in self._sessions:
            from monagent.notify.http import new_session

            self._sessions[url] = new_session()
        return self._sessions[url]

    def close(self) -> None:
        sessions, self._sessions = self._sessions, {}
        for session in sessions.values():
            session.close()


def classify(url: str, code: int, text: str) -> Outcome:
    """What an HTTP answer from ``/api/v2/alerts`` means, with what to fix."""
    said = " ".join(text.split())[:200]
    if code in (401, 403):
        return Outcome(
            OutcomeKind.BROKEN,
            f"{url}: HTTP {code}, authentication refused: check username and password_file, or bearer_token",
            code=code,
        )
    if code == 404:
        return Outcome(
            OutcomeKind.BROKEN,
            f"{url}: HTTP 404, no /api/v2/alerts there: give the Alertmanager's base URL (with its --web.route-prefix, if any)",
            code=code,
        )
    if code == 400:
        return Outcome(OutcomeKind.REJECTED, f"{url}: HTTP 400, alerts rejected: {said}", code=code)
    return Outcome(OutcomeKind.RETRY, f"{url}: HTTP {code}: {said}", code=code)


def _short(exc: Exception) -> str:
    text = str(exc)
    match = re.search(r"\[Errno -?\d+\] ([^'\")\]]+)", text)
    if match:
        return match.group(1)
    return type(exc).__name__ if len(text) > 200 else text


# ---------------------------------------------------------------- the dispatcher


class AlertmanagerDispatcher:
    """Folds outbox events into the active set and posts it at once on change, else every repost interval."""

    receiver_name = RECEIVER

    def __init__(
        self,
        config: AlertmanagerConfig,
        host: str,
        kv: KeyValue,
        started_at: float,
        receiver: Optional[AlertmanagerReceiver] = None,
    ) -> None:
        self.config = config
        self.host = host
        self.kv = kv
        self.started_at = started_at
        self.receiver = receiver or AlertmanagerReceiver(config, host)
        self._active: Optional[ActiveSet] = None
        self._next_post = 0.0
        self._retry_delay = FIRST_RETRY
        self._closed = False

    @property
    def active(self) -> ActiveSet:
        if self._active is None:
            self._active = ActiveSet.load(self.kv)
        return self._active

    def url_health(self) -> Tuple[UrlHealth, ...]:
        return tuple(self.receiver.health.values())

    def url_up(self) -> Dict[str, bool]:
        """URL -> whether its last post was accepted (untried URLs left out): ``AgentSnapshot.alertmanager_up``."""
        return {h.url: bool(h.up) for h in self.url_health() if h.up is not None}

    def pump(self, outbox: Outbox, now: float) -> None:
        if self._closed:
            return
        entries = outbox.pending(RECEIVER, now)
        self.active.expire(now)
        changed = False
        for entry in entries:
            changed = self.active.apply(entry.event, self.config.labels, now, self.config.ends_at_lead) or changed
        self.active.save(self.kv)  # the set carries the state now: the entries may go
        if entries:
            outbox.complete(RECEIVER, [entry.seq for entry in entries])
        if changed or now >= self._next_post:
            self._post(outbox, now)

    def next_due(self, now: float) -> Optional[float]:
        return None if self._closed else self._next_post

    def close(self, deadline: float) -> None:
        """A post in flight ends within ``timeout``; no new post starts."""
        self._closed = True
        self.receiver.close()

    def payload(self, now: float) -> List[Tuple[str, Dict[str, Any]]]:
        """``(identity, alert)`` for every alert to post now; the watchdog's identity is ``""``."""
        lead = self.config.ends_at_lead
        alerts = [(ident, alert.payload(now, lead)) for ident, alert in sorted(self.active.alerts.items())]
        if self.config.watchdog:
            alerts.append(("", self.watchdog().payload(now, lead)))
        return alerts

    def watchdog(self) -> AmAlert:
        labels = dict(self.config.labels)
        labels.update({"alertname": self.config.watchdog_name, "instance": self.host, "severity": "none"})
        summary = f"monagent on {self.host} is running"
        description = (
            "This alert fires for as long as the agent runs (a dead man's switch). "
            "When it is missing, the agent or the host is gone."
        )
        return AmAlert(_labels(labels), _labels({"summary": summary, "description": description}), self.started_at)

    def _post(self, outbox: Outbox, now: float) -> None:
        alerts = self.payload(now)
        if not alerts:
            self._next_post = now + self.config.repost_interval
            return
        outcome = self.receiver.post([alert for _, alert in alerts], now)
        if outcome.kind == OutcomeKind.REJECTED and len(alerts) > 1:
            outcome = self._post_without_rejected(alerts, now)
        self._record(outbox, outcome, now)

    def _post_without_rejected(self, alerts: Sequence[Tuple[str, Dict[str, Any]]], now: float) -> Outcome:
        """One alert Alertmanager refuses must not hold back the others: find it, drop it, post the rest."""
        for ident, alert in alerts:
            single = self.receiver.post([alert], now)
            if single.kind == OutcomeKind.REJECTED and ident:
                log.error("alertmanager: dropping an alert it refuses (labels %s): %s", alert["labels"], single.reason)
                del self.active.alerts[ident]
        self.active.save(self.kv)
        rest = self.payload(now)
        return self.receiver.post([alert for _, alert in rest], now) if rest else Outcome(OutcomeKind.DELIVERED)

    def _record(self, outbox: Outbox, outcome: Outcome, now: float) -> None:
        health = outbox.health(RECEIVER)
        if outcome.kind == OutcomeKind.DELIVERED:
            self._next_post = now + self.config.repost_interval
            self._retry_delay = FIRST_RETRY
            outbox.set_health(replace(health, last_success=now, broken=False, sent=health.sent + 1))
            return
        self._next_post = now + min(self._retry_delay, self.config.repost_interval)
        self._retry_delay = min(self._retry_delay * 2, self.config.repost_interval)
        outbox.set_health(
            replace(
                health,
                last_error=outcome.reason,
                last_error_at=now,
                last_error_class=outcome.kind.value,
                broken=outcome.kind == OutcomeKind.BROKEN,
                failed=health.failed + 1,
            )
        )


__all__ = [
    "NAMESPACE",
    "ActiveSet",
    "AlertmanagerDispatcher",
    "AlertmanagerReceiver",
    "AmAlert",
    "KeyValue",
    "MemoryKeyValue",
    "UrlHealth",
    "alertname",
    "classify",
    "rfc3339",
]
