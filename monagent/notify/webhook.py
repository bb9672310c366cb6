"""The generic JSON webhook receiver; paced and coalesced by the same :class:`ChatDispatcher`.

One POST per batch::

    {"version": "1", "receiver": "webhook:ops", "status": "firing", "title": "[FIRING:2] web01 ...",
     "text": "<the markdown DingTalk would get>", "digest": false, "omitted": 0, "dropped": 0,
     "events": [{"id": ..., "kind": "firing", "check": ..., "subject": ..., "metric": ..., ...}]}

Events are listed in priority order until ``body_budget`` is spent; ``omitted`` counts the
rest. 2xx is success; 429 locks out (``Retry-After`` honoured); 413 is too large; 400/422
reject the payload; 401/403/404/410 mark the URL broken; 5xx and network errors are retried.
"""

from __future__ import annotations

import dataclasses
import json
import re
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Sequence

from monagent.events import Event, EventKind, OutboxEntry, Outcome, OutcomeKind
from monagent.formatting import Formatter, Text
from monagent.notify.coalesce import Batch, Item, coalesce
from monagent.notify.dingtalk import scrub
from monagent.notify.dingtalk_config import WebhookConfig
from monagent.notify.markdown import Style, render, severity_name
from monagent.wording import ENGLISH, event_summary

if TYPE_CHECKING:
    import requests

_BROKEN_STATUSES = (401, 403, 404, 405, 410)
_REJECTED_STATUSES = (400, 422)


def event_json(item: Item, fmt: Formatter = ENGLISH) -> Dict[str, Any]:
    """One event for a machine: typed fields, and ``summary``/``value_text`` in the receiver's language."""
    e: Event = item.event
    return {
        "id": e.id,
        "kind": e.kind.value,
        "severity": severity_name(e.severity) if e.kind != EventKind.RESOLVED else "resolved",
        "check": e.key.check,
        "subject": e.key.subject,
        "metric": e.key.metric,
        "host": e.host,
        "time": e.time,
        "summary": event_summary(fmt, e),
        "reason_id": e.reason.id if isinstance(e.reason, Text) else "",
        "value_text": fmt.value(e.value, e.unit),
        "incident": e.incident,
        "check_type": e.check_type,
        "value": e.value,
        "unit": e.unit,
        "threshold": e.threshold,
        "operator": e.operator,
        "since": e.since,
        "duration": e.duration,
        "trend": list(e.trend),
        "facts": dict(e.facts),
        "note": e.note,
        "merged": item.merged,
    }


class WebhookReceiver:
    def __init__(self, config: WebhookConfig, session: Optional[requests.Session] = None) -> None:
        self.config = config
        self.name = config.receiver_name
        self.style = Style(config.language, config.timezone)
        self.fmt = Formatter(config.language, config.timezone)
        self._session = session

    def send(self, entries: Sequence[OutboxEntry], now: float) -> Outcome:
        return self.deliver(Batch(coalesce(entries).items, budget=self.config.delivery.body_budget), now)

    def deliver(self, batch: Batch, now: float) -> Outcome:
        return self.post(self.body(batch), now)

    def body(self, batch: Batch) -> bytes:
        message = render(dataclasses.replace(batch, budget=batch.budget // 2), self.style)  # half text, half events
        payload: Dict[str, Any] = {
            "version": "1",
            "receiver": self.name,
            "status": "firing" if any(i.is_problem for i in batch.items) else "resolved",
            "title": message.title,
            "text": message.text,
            "digest": batch.digest,
            "omitted": 0,
            "dropped": batch.dropped,
            "events": [],
        }
        size = len(_dump(payload)) + 16
        events: List[Dict[str, Any]] = []
        for item in batch.items:
            event = event_json(item, self.fmt)
            chunk = _dump(event)
            if size + len(chunk) + 1 > batch.budget:
                break
            events.append(event)
            size += len(chunk) + 1
        payload["events"] = events
        payload["omitted"] = len(batch.items) - len(events)
        return _dump(payload)

    def close(self) -> None:
        if self._session is not None:
            self._session.close()
            self._session = None

    def post(self, body: bytes, now: float) -> Outcome:
        import requests  # here, not at the top: keeps `monagent --help` fast

        from monagent.notify import http

        if self._session is None:
            self._session = http.new_session()
        try:
            reply = http.post(
                self._session,
                self.config.url.reveal(),
                data=body,
                timeout=self.config.timeout,
                headers={"Content-Type": "application/json; charset=utf-8"},
            )
        except http.Redirected as exc:
            return Outcome(OutcomeKind.BROKEN, f"{scrub_url(str(exc))} (check the webhook url)")
        except http.HttpFailure as exc:
            return Outcome(OutcomeKind.RETRY, str(exc))
        except requests.RequestException as exc:
            from monagent.notify.neterror import describe_network_error

            said = describe_network_error(exc, self.config.timeout) or scrub_url(str(exc))[:300]
            return Outcome(OutcomeKind.RETRY, f"network error: {type(exc).__name__}: {said}")
        return classify(reply.status, reply.headers.get("Retry-After", ""), now)


def classify(status: int, retry_after: str, now: float) -> Outcome:
    reason = f"HTTP {status}"
    if 200 <= status < 300:
        return Outcome(OutcomeKind.DELIVERED, code=status)
    if status == 429:
        pause = float(retry_after) if retry_after.strip().isdigit() else None
        return Outcome(
            OutcomeKind.LOCKED_OUT,
            reason + " (too many requests)",
            not_before=now + pause if pause is not None else None,
            code=status,
        )
    if status == 413:
        return Outcome(OutcomeKind.TOO_LARGE, reason + " (payload too large)", code=status)
    if status in _REJECTED_STATUSES:
        return Outcome(OutcomeKind.REJECTED, reason + " (the receiver refused the payload)", code=status)
    if status in _BROKEN_STATUSES:
        return Outcome(OutcomeKind.BROKEN, reason + " (check the webhook url and its credentials)", code=status)
    return Outcome(OutcomeKind.RETRY, reason, code=status)


_QUERY = re.compile(r"\?[^\s'\")]+")
_USERINFO = re.compile(r"//[^/\s@'\"]+@")


def scrub_url(text: str) -> str:
    """Text that may quote the webhook URL, without its query string or user:password (either may be a secret)."""
    return _USERINFO.sub("//…(redacted)@", _QUERY.sub("?…(redacted)", scrub(text)))


def _dump(data: Any) -> bytes:
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
