"""Silence and ack requests: the pure rules (monagent/alerting/silence_ack.py), and the running agent's
control-socket path and the CLI's no-agent path giving the same answer and storing the same rows."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Dict, Iterator, List, Tuple

import pytest
from alerting_helpers import Clock, config, feed, open_pipeline
from hypothesis import given
from hypothesis import strategies as st

from monagent.alerting.control_handler import handle
from monagent.alerting.machine import AlertState, Phase
from monagent.alerting.matchers import Matcher
from monagent.alerting.pipeline import AlertPipeline
from monagent.alerting.silence_ack import MAX_PAST, BadRequest, Decision, NotFound, decide
from monagent.alerting.suppress import Silence
from monagent.api import Status
from monagent.commands.alerts import _offline
from monagent.confread import MAX_DURATION
from monagent.events import AlertKey
from monagent.store import Store

NOW = 1_790_000_000.0
KEY = AlertKey("load", "", "value")
FIRING = {KEY: AlertState(phase=Phase.FIRING, severity=Status.CRITICAL, incident="load-1")}


def ids(*names: str) -> Iterator[str]:
    return iter(names)


def silence_add(**fields: Any) -> Dict[str, Any]:
    return {"op": "silence_add", "matchers": ["check=load"], "ends_at": NOW + 3600, **fields}


# ---------------------------------------------------------------- the pure rules


def test_a_silence_starts_now_when_no_start_or_a_past_one_is_given() -> None:
    made = ids("0000000a", "0000000b")
    for message in (silence_add(), silence_add(starts_at=NOW - 600)):
        silence = decide(message, silences={}, alerts={}, now=NOW, make_id=lambda: next(made)).silence
        assert silence is not None
        assert (silence.starts_at, silence.ends_at, silence.created_at) == (NOW, NOW + 3600, NOW)
        assert silence.matcher == Matcher((("check", ("load",)),))


def test_a_silence_may_start_later_and_is_pending_until_then() -> None:
    silence = decide(silence_add(starts_at=NOW + 600), silences={}, alerts={}, now=NOW).silence
    assert silence is not None and silence.starts_at == NOW + 600 and silence.state(NOW) == "pending"


def test_a_new_silence_never_takes_an_id_in_use() -> None:
    made = ids("deadbeef", "deadbeef", "0000cafe")
    old = Silence("deadbeef", Matcher(), NOW, NOW + 1, "", "")
    silence = decide(silence_add(), silences={"deadbeef": old}, alerts={}, now=NOW, make_id=lambda: next(made)).silence
    assert silence is not None and silence.id == "0000cafe"


@pytest.mark.parametrize(
    "message, error",
    [
        (silence_add(ends_at=math.nan), "silence_add: ends_at must be a finite number of seconds since the epoch"),
        (silence_add(ends_at=math.inf), "silence_add: ends_at must be a finite number of seconds since the epoch"),
        (silence_add(ends_at=True), "silence_add: ends_at must be a finite number of seconds since the epoch"),
        (silence_add(ends_at=NOW + MAX_DURATION + 1), "silence_add: ends_at must lie between a day ago and ten years ahead"),
        (silence_add(starts_at=NOW - MAX_PAST - 1), "silence_add: starts_at must lie between a day ago and ten years ahead"),
        (silence_add(ends_at=NOW - 1), "silence_add: the silence would end before it starts"),
        (silence_add(starts_at=NOW + 7200), "silence_add: the silence would end before it starts"),
        (silence_add(matchers=[]), "silence_add: matchers must be a list of 1 to 64 LABEL=GLOB strings"),
        (silence_add(matchers=["host=web01"]), 'silence_add: matchers: bad matcher "host=web01": use LABEL=GLOB'),
        (silence_add(owner="root"), "silence_add: unknown field 'owner'"),
        ({"op": "ack", "key": "load value", "expires_at": NOW}, "ack: expires_at must lie in the future"),
        ({"op": "ack", "key": "load value", "expires_at": math.nan}, "ack: expires_at must be a finite number"),
        ({"op": "silence_expire"}, "silence_expire: id is required"),
        ({"op": "ping"}, "unknown request 'ping'; known: ack, silence_add, silence_expire"),
    ],
)
def test_a_bad_request_is_refused_with_the_field_named(message: Dict[str, Any], error: str) -> None:
    with pytest.raises(BadRequest) as caught:
        decide(message, silences={}, alerts=FIRING, now=NOW)
    assert str(caught.value).startswith(error)


def test_an_unknown_silence_or_alert_is_not_found() -> None:
    with pytest.raises(NotFound, match="no silence 12345678"):
        decide({"op": "silence_expire", "id": "12345678"}, silences={}, alerts={}, now=NOW)
    with pytest.raises(NotFound, match="no firing alert disks /var used_percent"):
        decide({"op": "ack", "key": "disks /var used_percent"}, silences={}, alerts=FIRING, now=NOW)
    resolved = {KEY: AlertState(phase=Phase.INACTIVE, severity=Status.OK)}
    with pytest.raises(NotFound, match="no firing alert load value"):
        decide({"op": "ack", "key": "load value"}, silences={}, alerts=resolved, now=NOW)


def test_an_ack_holds_the_incident_and_severity_it_acknowledged() -> None:
    message = {"op": "ack", "key": "load value", "author": "ops", "comment": "on it", "expires_at": NOW + 60}
    ack = decide(message, silences={}, alerts=FIRING, now=NOW).ack
    assert ack is not None
    assert (ack.key, ack.incident, ack.severity, ack.author, ack.at, ack.comment, ack.expires_at) == (
        KEY,
        "load-1",
        Status.CRITICAL,
        "ops",
        NOW,
        "on it",
        NOW + 60,
    )


def test_expiring_a_pending_silence_expires_it_rather_than_leaving_it_pending() -> None:
    pending = Silence("0000abcd", Matcher(), NOW + 600, NOW + 3600, "", "")
    expired = decide({"op": "silence_expire", "id": "0000abcd"}, silences={"0000abcd": pending}, alerts={}, now=NOW).silence
    assert expired is not None and expired.state(NOW) == "expired" and expired.state(NOW + 900) == "expired"


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12,
)
FIELD_NAMES = st.sampled_from(["matchers", "ends_at", "starts_at", "author", "comment", "id", "key", "expires_at", "x"])
MESSAGES = st.fixed_dictionaries(
    {"op": st.sampled_from(["silence_add", "silence_expire", "ack", "ping", ""])},
    optional={"matchers": st.lists(st.sampled_from(["check=load", "severity=crit*", "bad"]), max_size=3)},
).flatmap(
    lambda base: st.dictionaries(FIELD_NAMES, JSON | st.floats(NOW - 2 * MAX_PAST, NOW + 2 * MAX_PAST), max_size=5).map(
        lambda extra: {**extra, **base}
    )
)


@given(MESSAGES, st.floats(0, 100 * 365 * 86400.0))
def test_any_request_is_decided_or_refused_with_a_message_never_a_crash(message: Dict[str, Any], offset: float) -> None:
    now = NOW + offset - 50 * 365 * 86400.0
    silences = {"0000abcd": Silence("0000abcd", Matcher(), now - 10, now + 10, "", "")}
    alerts = {KEY: AlertState(phase=Phase.FIRING, severity=Status.WARNING, incident="i")}
    try:
        decision = decide(message, silences=silences, alerts=alerts, now=now)
    except (BadRequest, NotFound) as exc:
        assert str(exc)
        return
    assert (decision.silence is None) != (decision.ack is None)
    answer = decision.answer()
    assert json.loads(json.dumps(answer, allow_nan=False)) == answer  # finite, JSON-safe
    if decision.silence is not None and message["op"] == "silence_add":
        silence = decision.silence
        assert now <= silence.starts_at < silence.ends_at <= now + MAX_DURATION
        assert silence.created_at == now and silence.id not in silences and silence.matcher.pairs
    elif decision.silence is not None:
        assert decision.silence.state(now) == "expired"
    else:
        assert decision.ack is not None and decision.ack.at == now
        assert decision.ack.expires_at is None or decision.ack.expires_at > now


# ---------------------------------------------------------------- both paths, same outcome

SCRIPT: List[Dict[str, Any]] = [
    silence_add(starts_at=NOW - 100, author="ops", comment="deploy"),
    silence_add(starts_at=NOW + 600, ends_at=NOW + 7200, matchers=["type=gauge", "severity=warning"]),
    {"op": "silence_expire", "id": "$last"},
    {"op": "silence_expire", "id": "12345678"},
    {"op": "ack", "key": "load value", "author": "ops", "comment": "on it", "expires_at": None},
    {"op": "ack", "key": "load//value"},
    {"op": "ack", "key": "disks /var used_percent"},
    silence_add(ends_at=math.nan),
    silence_add(ends_at=math.inf),
    silence_add(ends_at=NOW + MAX_DURATION + 86400),
    silence_add(starts_at=NOW + 100 * 365 * 86400.0),
    silence_add(matchers=[]),
    silence_add(matchers=["check"]),
    silence_add(ends_at=NOW - 1),
    silence_add(comment="x" * 5000),
    {"op": "ack", "key": "load value", "expires_at": NOW - 60},
    {"op": "ack", "key": "load value", "expires_at": math.nan},
    {"op": "ack", "key": "load value", "author": 7},
    {"op": "silence_expire", "id": "$last", "by": "me"},
]


def firing_state(tmp_path: Path) -> Tuple[AlertPipeline, Clock]:
    """A pipeline whose gauge ``load`` fires, on a fresh state directory, at wall time NOW."""
    cfg = config(tmp_path, '[checks.load]\ntype = "gauge"\n[checks.load.alerting]\nfire_after_cycles = 1\n')
    clock = Clock(wall=NOW - 120)
    pipeline = open_pipeline(cfg, clock)
    feed(pipeline, clock, "load", [95, 95])
    assert pipeline.states[KEY].phase.open
    return pipeline, clock


def rows(state_dir: Path) -> Tuple[List[Any], List[Any]]:
    store = Store.open_readonly(state_dir)
    try:
        stored = store.load()
    finally:
        store.close()
    silences = sorted((json.loads(text) for text in stored.silences.values()), key=lambda s: s["starts_at"])
    return [{**s, "id": "ID"} for s in silences], [json.loads(text) for text in stored.acks.values()]


def anonymous(answer: Dict[str, Any]) -> Dict[str, Any]:
    if "silence" in answer:
        return {**answer, "silence": {**answer["silence"], "id": "ID"}}
    return answer


def test_the_agent_and_the_no_agent_path_answer_and_store_the_same(tmp_path: Path) -> None:
    agent, clock = firing_state(tmp_path / "agent")
    offline_pipeline, _ = firing_state(tmp_path / "offline")
    offline_pipeline.close(clean=True)
    offline_pipeline.store.close()
    offline = Store.open(offline_pipeline.config.agent.state_dir)
    assert clock.wall == NOW
    last = {"agent": "", "offline": ""}
    try:
        for step, message in enumerate(SCRIPT):
            now = NOW + step
            answers = {}
            for path in ("agent", "offline"):
                sent = {k: (last[path] if v == "$last" else v) for k, v in message.items()}
                answer = handle(agent, sent, now) if path == "agent" else _offline(offline, sent, now)
                last[path] = answer.get("silence", {}).get("id", last[path])
                answers[path] = anonymous(answer)
            assert answers["agent"] == answers["offline"], message
            assert answers["agent"]["ok"] is (step in {0, 1, 2, 4, 5}), (message, answers["agent"])
    finally:
        offline.close()
        agent.close(clean=True)
        agent.store.close()
    assert rows(agent.config.agent.state_dir) == rows(offline_pipeline.config.agent.state_dir)
    silences, acks = rows(agent.config.agent.state_dir)
    assert [(s["starts_at"], s["ends_at"]) for s in silences] == [
        (NOW, NOW + 3600),
        (NOW + 2, NOW + 2),
    ]
    assert [(a["key"], a["author"], a["at"]) for a in acks] == [(["load", "", "value"], "", NOW + 5)]


def test_a_decision_is_written_by_both_paths_in_the_same_rows(tmp_path: Path) -> None:
    from monagent.alerting import persist

    silence = Silence("0000abcd", Matcher.parse(["check=load"]), NOW, NOW + 60, "ops", "c", NOW)
    changes = persist.decision_changes(Decision(silence=silence))
    assert changes.silences == {"0000abcd": persist.silence_row(silence)}
    assert json.loads(changes.silences["0000abcd"][0]) == silence.to_json()
