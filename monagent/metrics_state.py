"""The agent's state as one :class:`~monagent.metrics.AgentSnapshot`, for the metrics endpoint."""

from __future__ import annotations

import time
from typing import Any, Dict, List, Mapping, Tuple

from monagent import __version__
from monagent.metrics import AgentSnapshot, AlertSnapshot, CheckSnapshot
from monagent.oneshot import judge


def check_snapshots(config: Any, last_runs: Mapping[str, Any]) -> List[CheckSnapshot]:
    out = []
    for name, run in sorted(last_runs.items()):
        check_config = config.check(name)
        thresholds = check_config.thresholds if check_config else {}
        for result in run.results:
            judged = judge(result, thresholds)
            out.append(CheckSnapshot(name, run.check_type, result.subject, judged.status, tuple(result.metrics)))
    return out


def alert_snapshots(pipeline: Any, now: float, monotonic: float) -> List[AlertSnapshot]:
    offset = now - monotonic
    out = []
    for key, state in pipeline.open_alerts():
        since = state.firing_since if state.firing_since is not None else state.pending_since
        out.append(
            AlertSnapshot(
                key.check, key.subject, key.metric, state.phase.value, state.severity, None if since is None else since + offset
            )
        )
    return out


def build_snapshot(agent: Any, scheduler: Any, pipeline: Any, store: Any) -> AgentSnapshot:
    now, mono = time.time(), time.monotonic()
    config = agent.config
    receivers = config.notifiers.receiver_names
    sends: Dict[str, int] = {}
    failures: Dict[Tuple[str, str], int] = {}
    for receiver in receivers:
        health = store.health(receiver)
        sends[receiver] = health.sent
        if health.failed:
            failures[(receiver, health.last_error_class or "error")] = health.failed
    am = next((d for d in agent.dispatchers() if getattr(d, "receiver_name", "") == "alertmanager"), None)
    return AgentSnapshot(
        host=config.agent.hostname,
        started_at=agent.started_at,
        checks=check_snapshots(config, dict(agent.last_runs)),
        alerts=alert_snapshots(pipeline, now, mono),
        outbox={r: store.queued_count(r) for r in receivers},
        notifier_sends=sends,
        notifier_failures=failures,
        cycle_seconds=agent.cycle_histogram.snapshot(),
        skipped_runs={name: i.skipped for name, i in scheduler.instances.items()},
        alertmanager_up=am.url_up() if am is not None and hasattr(am, "url_up") else {},
        version=__version__,
    )
