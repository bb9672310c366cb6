"""What ``monagent status`` shows, gathered from the store (read-only) and the config.

Alerts that are not inactive, with phase, severity, since, last value and threshold;
checks whose last runs gave no verdict (failing, alerting yet or not); outbox depth per
receiver; silences and maintenance windows; per-receiver health. No secrets: a
receiver is named by its config name, never by its URL or token.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Dict, List, Mapping, Optional, Tuple

from monagent.alerting import codec
from monagent.alerting.machine import AlertState, Phase
from monagent.alerting.samples import UNKNOWN_METRIC
from monagent.alerting.suppress import Ack, Silence
from monagent.events import AlertKey, ReceiverHealth
from monagent.formatting import Formatter

if TYPE_CHECKING:
    from monagent.config import Config
    from monagent.store import Store, StoredState

_WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def _states(stored: StoredState) -> Dict[AlertKey, AlertState]:
    # on disk times are wall clock already
    return {AlertKey.from_id(k): codec.state_from_json(t, 0.0) for k, t in sorted(stored.alerts.items())}


def _failing_runs(states: Mapping[AlertKey, AlertState], key: AlertKey) -> int:
    """How many runs in a row the check could not judge ``key``'s subject (or could not run at all).

    Read from the ``#unknown`` companions, which every run of the check updates; a key's own
    ``unknown_streak`` is only reset by a later verdict for that very key, which a check that
    reports a status only when it fails never sends."""
    runs = [
        s.unknown_streak
        for k, s in states.items()
        if k.check == key.check and k.metric == UNKNOWN_METRIC and k.subject in ("", key.subject)
    ]
    return max(runs, default=0)


def _alerts(
    states: Mapping[AlertKey, AlertState], acks: Mapping[AlertKey, Ack], now: float, fmt: Formatter
) -> List[Dict[str, Any]]:
    """Keys that are not inactive: pending, firing or resolving."""
    rows = []
    for key, state in states.items():
        if state.phase == Phase.INACTIVE:
            continue
        threshold = (
            state.threshold.limit_for(state.severity if state.phase.open else state.latched)
            if state.threshold is not None
            else None
        )
        ack = acks.get(key)
        rows.append(
            {
                "key": str(key),
                "check": key.check,
                "subject": key.subject,
                "metric": key.metric,
                "phase": state.phase.value,
                "severity": state.severity.label if state.phase.open else "",
                "since": state.firing_since if state.phase.open else state.pending_since,
                "value": state.value,
                "unit": state.unit,
                "threshold": threshold,
                "operator": state.threshold.operator if state.threshold is not None else "",
                "reason": fmt.text(state.reason),
                "flapping": state.flapping,
                "muted": state.suppressed,
                "unknown_streak": _failing_runs(states, key),
                "stale": state.stale,
                "acked_by": ack.author if ack is not None and ack.active(state.incident, now) else None,
            }
        )
    return rows


def _failing(config: Config, states: Mapping[AlertKey, AlertState], fmt: Formatter) -> List[Dict[str, Any]]:
    """Checks (or subjects) whose last runs gave no verdict, whether or not that alerts yet."""
    rows = []
    for key, state in states.items():
        if key.metric != UNKNOWN_METRIC or not state.unknown_streak:
            continue
        check = config.check(key.check)
        params = check.alerting if check is not None else config.alerting.defaults
        rows.append(
            {
                "key": str(key),
                "check": key.check,
                "subject": key.subject,
                "runs": state.unknown_streak,
                "alerting": state.phase.open,
                "alert_after": params.unknown_after_cycles,
                "reason": fmt.text(state.reason),
            }
        )
    return rows


def _windows(config: Config, now: float) -> List[Dict[str, Any]]:
    rows = []
    for window in config.alerting.maintenance:
        times = [f"{r.start // 60:02d}:{r.start % 60:02d}-{r.end // 60:02d}:{r.end % 60:02d}" for r in window.times]
        rows.append(
            {
                "name": window.name,
                "active": window.active(now),
                "weekdays": [_WEEKDAYS[d] for d in window.weekdays],
                "times": times,
                "time_zone": window.time_zone,
                "match": window.matcher.describe(),
            }
        )
    return rows


def _silences(stored: StoredState, now: float, include_expired: bool) -> List[Dict[str, Any]]:
    rows = []
    for text in stored.silences.values():
        silence = Silence.from_json(codec.json_loads(text))
        state = silence.state(now)
        if state == "expired" and not include_expired:
            continue
        rows.append(
            {
                "id": silence.id,
                "state": state,
                "match": silence.matcher.describe(),
                "starts_at": silence.starts_at,
                "ends_at": silence.ends_at,
                "author": silence.author,
                "comment": silence.comment,
            }
        )
    return sorted(rows, key=lambda r: r["ends_at"])


def receiver_state(health: ReceiverHealth, queued: int, now: float) -> Tuple[str, Optional[float]]:
    """``(state, since)`` of one receiver from its last delivery attempts: ``broken`` (a configuration
    fault, not sending until fixed), ``locked-out`` (until ``since``), ``failing`` (every attempt
    since ``since`` failed), ``never-delivered`` (events queued, no success yet), ``idle`` (nothing
    sent yet, nothing queued) or ``ok``."""
    failing = health.failing_since
    if failing is None and health.last_error_at is not None:
        if health.last_success is None or health.last_error_at > health.last_success:
            failing = health.last_error_at  # recorded by a monagent that did not keep the start
    if health.broken:
        return "broken", failing
    if health.locked_until is not None and health.locked_until > now:
        return "locked-out", health.locked_until
    if failing is not None:
        return "failing", failing
    if health.last_success is None:
        return ("never-delivered", None) if queued else ("idle", None)
    return "ok", None


def gather(config: Config, store: Store, now: float, *, running: Optional[bool]) -> Dict[str, Any]:
    stored = store.load()
    receivers = list(config.notifiers.receiver_names)
    receivers += [r for r in store.receivers_with_entries() if r not in receivers]
    health = {r: store.health(r) for r in receivers}
    queued = {r: store.queued_count(r) for r in receivers}
    meta = stored.meta
    states = _states(stored)
    acks = {ack.key: ack for ack in (Ack.from_json(codec.json_loads(t)) for t in stored.acks.values())}
    fmt = Formatter(config.agent.language)  # reasons in the configured language (the host's zone)
    return {
        "host": config.agent.hostname,
        "agent": {
            "running": running,
            "state_dir": str(config.agent.state_dir),
            "last_eval_at": float(meta["last_eval_at"]) if "last_eval_at" in meta else None,
            "clean_shutdown": meta.get("clean_shutdown") == "1",
            "language": fmt.language,
        },
        "alerts": _alerts(states, acks, now, fmt),
        "failing": _failing(config, states, fmt),
        "outbox": queued,
        "silences": _silences(stored, now, include_expired=False),
        "windows": _windows(config, now),
        "notifiers": [
            {
                "receiver": r,
                "state": receiver_state(h, queued[r], now)[0],
                "since": receiver_state(h, queued[r], now)[1],
                "last_success": h.last_success,
                "last_error": h.last_error,
                "last_error_at": h.last_error_at,
                "last_error_class": h.last_error_class,
                "locked_until": h.locked_until,
                "broken": h.broken,
                "sent": h.sent,
                "failed": h.failed,
                "dropped": h.dropped,
            }
            for r, h in health.items()
        ],
    }


def silences(store: Store, now: float, include_expired: bool) -> List[Dict[str, Any]]:
    return _silences(store.load(), now, include_expired)
