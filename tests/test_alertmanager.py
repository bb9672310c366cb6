"""The Alertmanager receiver against real prometheus-alertmanager processes on loopback."""

from __future__ import annotations

import base64
import time
from dataclasses import replace
from typing import Dict, List, Optional

import pytest
from conftest_fleet import (
    ALERTMANAGER,
    HOST,
    Alertmanager,
    AlertmanagerOutbox,
    am_config,
    dispatcher_for,
    event,
    free_port,
    need_binary,
    toml,
)
from outboxes import queue

from monagent.alerting.outbox import EventOutbox
from monagent.api import Status
from monagent.confread import ConfigError, Document, Secret, Section
from monagent.events import EventKind, OutcomeKind
from monagent.notify.alertmanager import (
    NAMESPACE,
    AlertmanagerDispatcher,
    AlertmanagerReceiver,
    AmAlert,
    MemoryKeyValue,
    alertname,
    classify,
    rfc3339,
)
from monagent.notify.alertmanager_config import AlertmanagerConfig, parse_alertmanager
from monagent.store import Store


@pytest.fixture
def am_binary():
    return need_binary(ALERTMANAGER, "prometheus-alertmanager")


@pytest.fixture
def alertmanager(am_binary, tmp_path):
    server = Alertmanager(am_binary, tmp_path / "am")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def second_alertmanager(am_binary, tmp_path):
    server = Alertmanager(am_binary, tmp_path / "am2")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def closing():
    """Closes every dispatcher a test made (their HTTP sessions hold sockets)."""
    made: List[AlertmanagerDispatcher] = []
    yield made.append
    for dispatcher in made:
        dispatcher.close(time.monotonic() + 5)


def ours(labels: List[Dict[str, str]], watchdog: bool = False) -> List[Dict[str, str]]:
    return [la for la in labels if (la["alertname"] == "MonagentWatchdog") == watchdog]


# ---------------------------------------------------------------- against a real Alertmanager


def test_a_firing_alert_appears_in_alertmanager_with_labels_annotations_and_start_time(alertmanager, closing):
    config = am_config(alertmanager.url, labels={"team": "ops", "env": "prod"})
    dispatcher = dispatcher_for(config)
    closing(dispatcher)
    outbox = AlertmanagerOutbox()
    now = time.time()
    outbox.add("alertmanager", event(EventKind.FIRING, at=now, since=now - 120, facts={"time_to_full": "~4h"}))

    dispatcher.pump(outbox, now)

    [alert] = [a for a in alertmanager.alerts() if a["labels"]["alertname"] == "DiskUsedPercent"]
    assert alert["labels"] == {
        "alertname": "DiskUsedPercent",
        "instance": "web1",
        "check": "root_disk",
        "subject": "/",
        "metric": "used_percent",
        "severity": "critical",
        "team": "ops",
        "env": "prod",
    }
    assert alert["annotations"] == {
        "summary": "root_disk / used_percent 96.5% (>= 95%)",
        "description": "value: 96.5% (>= 95%)\ntime_to_full: ~4h",
    }
    assert alert["startsAt"] == rfc3339(now - 120)
    assert alert["endsAt"] == rfc3339(now + 240)
    assert alert["status"]["state"] in ("active", "unprocessed")
    assert outbox.queued_count("alertmanager") == 0
    assert outbox.health("alertmanager").sent == 1
    assert dispatcher.next_due(now) == now + 60


def test_the_watchdog_alert_is_posted_with_every_post_for_the_host(alertmanager, closing):
    started = time.time() - 3600
    dispatcher = dispatcher_for(am_config(alertmanager.url, labels={"team": "ops"}), started_at=started)
    closing(dispatcher)

    dispatcher.pump(AlertmanagerOutbox(), time.time())

    [alert] = alertmanager.alerts()
    assert alert["labels"] == {"alertname": "MonagentWatchdog", "instance": "web1", "severity": "none", "team": "ops"}
    assert alert["annotations"]["summary"] == "monagent on web1 is running"
    assert alert["startsAt"] == rfc3339(started)


def test_no_watchdog_is_posted_when_it_is_switched_off(alertmanager, closing):
    dispatcher = dispatcher_for(am_config(alertmanager.url, watchdog=False))
    closing(dispatcher)
    outbox = AlertmanagerOutbox()
    outbox.add("alertmanager", event(EventKind.FIRING))

    dispatcher.pump(outbox, time.time())

    assert [a["alertname"] for a in alertmanager.labels()] == ["DiskUsedPercent"]


def test_a_resolve_ends_the_alert_in_alertmanager(alertmanager, closing):
    dispatcher = dispatcher_for(am_config(alertmanager.url))
    closing(dispatcher)
    outbox = AlertmanagerOutbox()
    now = time.time()
    outbox.add("alertmanager", event(EventKind.FIRING, at=now - 60))
    dispatcher.pump(outbox, now - 60)
    assert len(ours(alertmanager.labels())) == 1

    outbox.add("alertmanager", event(EventKind.RESOLVED, at=now, severity=Status.OK, summary="web1 root_disk / recovered"))
    dispatcher.pump(outbox, now)

    assert ours(alertmanager.labels()) == []
    assert alertmanager.metric('alertmanager_alerts_received_total{status="resolved",version="v2"}') >= 1
    assert len(ours(alertmanager.labels(), watchdog=True)) == 1


def test_a_resolve_is_reposted_for_15_minutes_then_forgotten(alertmanager, closing):
    kv = MemoryKeyValue()
    dispatcher = dispatcher_for(am_config(alertmanager.url, watchdog=False), kv)
    closing(dispatcher)
    outbox = AlertmanagerOutbox()
    now = time.time()
    outbox.add("alertmanager", event(EventKind.FIRING, at=now - 60))
    outbox.add("alertmanager", event(EventKind.RESOLVED, at=now))
    dispatcher.pump(outbox, now)

    [(ident, resolved)] = kv.kv_items(NAMESPACE).items()
    assert ident.startswith("resolved:")
    assert resolved["ends_at"] == now
    assert resolved["labels"]["severity"] == "critical"  # the labels Alertmanager knows the alert by

    dispatcher.pump(outbox, now + 899)
    assert len(kv.kv_items(NAMESPACE)) == 1
    dispatcher.pump(outbox, now + 900)
    assert kv.kv_items(NAMESPACE) == {}


def test_an_alert_that_fires_again_after_its_resolve_is_firing(alertmanager, closing):
    dispatcher = dispatcher_for(am_config(alertmanager.url))
    closing(dispatcher)
    outbox = AlertmanagerOutbox()
    now = time.time()
    outbox.add("alertmanager", event(EventKind.FIRING, at=now - 120))
    dispatcher.pump(outbox, now - 120)
    outbox.add("alertmanager", event(EventKind.RESOLVED, at=now - 60))
    dispatcher.pump(outbox, now - 60)
    assert ours(alertmanager.labels()) == []

    outbox.add("alertmanager", event(EventKind.FIRING, at=now, since=now))
    dispatcher.pump(outbox, now)

    [alert] = [a for a in alertmanager.alerts() if a["labels"]["alertname"] == "DiskUsedPercent"]
    assert (alert["startsAt"], alert["endsAt"]) == (rfc3339(now), rfc3339(now + 240))
    assert list(dispatcher.active.alerts) == ["root_disk\x1f/\x1fused_percent"]


def test_an_escalation_replaces_the_warning_alert_with_a_critical_one(alertmanager, closing):
    dispatcher = dispatcher_for(am_config(alertmanager.url))
    closing(dispatcher)
    outbox = AlertmanagerOutbox()
    now = time.time()
    outbox.add("alertmanager", event(EventKind.FIRING, severity=Status.WARNING, at=now - 60))
    dispatcher.pump(outbox, now - 60)
    assert [a["severity"] for a in ours(alertmanager.labels())] == ["warning"]

    outbox.add("alertmanager", event(EventKind.ESCALATED, severity=Status.CRITICAL, at=now))
    dispatcher.pump(outbox, now)

    assert [a["severity"] for a in ours(alertmanager.labels())] == ["critical"]


def test_an_alertmanager_that_was_down_gets_every_alert_when_it_is_back(alertmanager, closing):
    alertmanager.stop()
    dispatcher = dispatcher_for(am_config(alertmanager.url))
    closing(dispatcher)
    outbox = AlertmanagerOutbox()
    now = time.time()
    for subject in ("/", "/var", "/home"):
        outbox.add("alertmanager", event(EventKind.FIRING, subject=subject, at=now))

    dispatcher.pump(outbox, now)

    health = outbox.health("alertmanager")
    assert (health.failed, health.last_error_class) == (1, "retry")
    assert health.last_error == f"{alertmanager.url}: cannot reach it: Connection refused"
    assert dispatcher.url_health()[0].up is False
    assert dispatcher.next_due(now) == now + 5  # retried soon, backing off to the repost interval
    assert outbox.queued_count("alertmanager") == 0  # the active set holds them now

    alertmanager.start()
    dispatcher.pump(outbox, dispatcher.next_due(now))

    assert sorted(a["subject"] for a in ours(alertmanager.labels())) == ["/", "/home", "/var"]
    assert len(ours(alertmanager.labels(), watchdog=True)) == 1
    assert dispatcher.url_health()[0].up is True


def test_a_restarted_agent_keeps_reposting_into_a_restarted_alertmanager(alertmanager, closing, tmp_path):
    store = Store.open(tmp_path / "state")
    first = dispatcher_for(am_config(alertmanager.url), store)
    closing(first)
    now = time.time()
    queue(store, "alertmanager", event(EventKind.FIRING, subject="/var", at=now), now=now)
    first.pump(EventOutbox(store), now)
    first.close(time.monotonic())
    store.close()
    alertmanager.stop()  # Alertmanager keeps alerts in memory only
    alertmanager.start()
    assert alertmanager.alerts() == []

    store = Store.open(tmp_path / "state")
    try:
        assert store.queued_count("alertmanager") == 0  # the outbox entry was consumed before the restart
        second = dispatcher_for(am_config(alertmanager.url), store)
        closing(second)
        second.pump(EventOutbox(store), time.time())
    finally:
        store.close()

    assert [a["subject"] for a in ours(alertmanager.labels())] == ["/var"]


def test_both_alertmanagers_of_an_ha_pair_receive_every_alert(alertmanager, second_alertmanager, closing):
    dispatcher = dispatcher_for(am_config(alertmanager.url, second_alertmanager.url))
    closing(dispatcher)
    outbox = AlertmanagerOutbox()
    outbox.add("alertmanager", event(EventKind.FIRING))

    dispatcher.pump(outbox, time.time())

    for server in (alertmanager, second_alertmanager):
        assert [a["alertname"] for a in server.labels()] == ["DiskUsedPercent", "MonagentWatchdog"]


def test_one_member_down_still_delivers_and_it_catches_up_at_the_next_repost(alertmanager, second_alertmanager, closing):
    second_alertmanager.stop()
    dispatcher = dispatcher_for(am_config(alertmanager.url, second_alertmanager.url))
    closing(dispatcher)
    outbox = AlertmanagerOutbox()
    now = time.time()
    outbox.add("alertmanager", event(EventKind.FIRING, at=now))
    dispatcher.pump(outbox, now)
    assert outbox.health("alertmanager").sent == 1
    assert dispatcher.url_up() == {alertmanager.url: True, second_alertmanager.url: False}

    second_alertmanager.start()
    dispatcher.pump(outbox, now + 30)  # not due yet: nothing new, nothing posted
    assert second_alertmanager.alerts() == []
    dispatcher.pump(outbox, now + 60)

    assert [a["alertname"] for a in second_alertmanager.labels()] == ["DiskUsedPercent", "MonagentWatchdog"]


def test_an_occurrence_is_posted_with_a_short_end_and_forgotten_after_it(alertmanager, closing):
    kv = MemoryKeyValue()
    dispatcher = dispatcher_for(am_config(alertmanager.url, watchdog=False), kv)
    closing(dispatcher)
    outbox = AlertmanagerOutbox()
    now = time.time()
    outbox.add(
        "alertmanager",
        event(
            EventKind.OCCURRENCE,
            check="kdump",
            subject="/var/crash",
            metric="dump",
            id="dump-2026-11-28",
            at=now,
            check_type="kdump",
            value=None,
            summary="web1 kernel crash dump found",
        ),
    )

    dispatcher.pump(outbox, now)

    [alert] = alertmanager.alerts()
    assert alert["labels"]["alertname"] == "KdumpDump"
    assert alert["labels"]["occurrence"] == "dump-2026-11-28"
    assert alert["endsAt"] == rfc3339(now + 240)
    dispatcher.pump(outbox, now + 240)
    assert kv.kv_items(NAMESPACE) == {}


def test_a_wrong_base_url_is_reported_as_broken_with_what_to_fix(alertmanager, closing):
    dispatcher = dispatcher_for(am_config(alertmanager.url + "/monitoring"))
    closing(dispatcher)
    outbox = AlertmanagerOutbox()

    dispatcher.pump(outbox, time.time())

    health = outbox.health("alertmanager")
    assert health.broken is True
    assert health.last_error == (
        f"{alertmanager.url}/monitoring: HTTP 404, no /api/v2/alerts there: give the "
        "Alertmanager's base URL (with its --web.route-prefix, if any)"
    )


# ---------------------------------------------------------------- without a server


def test_unchanged_reminders_do_not_post_before_the_repost_interval():
    dispatcher = dispatcher_for(am_config(f"http://127.0.0.1:{free_port()}", watchdog=False))
    outbox = AlertmanagerOutbox()
    now = time.time()
    first = event(EventKind.FIRING, at=now)
    outbox.add("alertmanager", first)
    dispatcher.pump(outbox, now)  # fails: nothing listens there
    assert outbox.health("alertmanager").failed == 1
    outbox.add("alertmanager", replace(first, kind=EventKind.REMINDER, id="x:2", time=now + 1))

    dispatcher.pump(outbox, now + 1)

    assert outbox.health("alertmanager").failed == 1  # a reminder changes nothing Alertmanager is told
    assert dispatcher.next_due(now) == now + 5
    dispatcher.close(time.monotonic())


def test_retries_back_off_from_5_seconds_to_the_repost_interval():
    dispatcher = dispatcher_for(am_config(f"http://127.0.0.1:{free_port()}"))
    outbox = AlertmanagerOutbox()
    now, delays = 1_000_000.0, []
    for _ in range(6):
        dispatcher.pump(outbox, now)
        delays.append(dispatcher.next_due(now) - now)
        now = dispatcher.next_due(now)
    assert delays == [5, 10, 20, 40, 60, 60]
    dispatcher.close(time.monotonic())


BCRYPT_OF_S3CRET_PW = "$2b$04$RaDamxct.kxdmGkIEaHH8uN6ax9nZFtghMXPo.A.iA94QV4x1F7gy"  # cost 4: fast to check


def test_an_alertmanager_behind_basic_auth_gets_alerts_and_a_wrong_password_is_broken(am_binary, tmp_path, closing, caplog):
    web = tmp_path / "web.yml"
    web.write_text(f"basic_auth_users:\n  monagent: {BCRYPT_OF_S3CRET_PW}\n", encoding="utf-8")
    server = Alertmanager(
        am_binary,
        tmp_path / "am",
        flags=["--cluster.listen-address=", f"--web.config.file={web}"],
        auth="Basic " + base64.b64encode(b"monagent:s3cret-pw").decode(),
    )
    server.start()
    try:
        good = dispatcher_for(am_config(server.url, username="monagent", password=Secret("s3cret-pw")))
        bad = dispatcher_for(am_config(server.url, username="monagent", password=Secret("wrong-pw")))
        closing(good)
        closing(bad)
        good_box, bad_box = AlertmanagerOutbox(), AlertmanagerOutbox()

        good.pump(good_box, time.time())
        bad.pump(bad_box, time.time())

        assert [a["alertname"] for a in server.labels()] == ["MonagentWatchdog"]
    finally:
        server.stop()
    assert good_box.health("alertmanager").sent == 1
    health = bad_box.health("alertmanager")
    assert (health.broken, health.last_error) == (
        True,
        f"{server.url}: HTTP 401, authentication refused: check username and password_file, or bearer_token",
    )
    assert "s3cret" not in caplog.text and "wrong-pw" not in caplog.text


def test_basic_auth_and_bearer_tokens_are_sent_and_never_shown():
    basic = AlertmanagerReceiver(am_config("http://am:9093", username="monagent", password=Secret("s3cret")), HOST)
    bearer = AlertmanagerReceiver(am_config("http://am:9093", bearer_token=Secret("t0ken")), HOST)
    assert basic._headers()["Authorization"] == "Basic bW9uYWdlbnQ6czNjcmV0"
    assert bearer._headers()["Authorization"] == "Bearer t0ken"
    assert "s3cret" not in repr(basic.config) and "t0ken" not in repr(bearer.config)


@pytest.mark.parametrize(
    ("check_type", "metric", "expected"),
    [
        ("disk", "used_percent", "DiskUsedPercent"),
        ("process", "count", "ProcessCount"),
        ("nagios", "#unknown", "NagiosUnknown"),
        ("systemd", "status", "SystemdStatus"),
    ],
)
def test_alertnames_are_the_check_type_and_metric_in_camel_case(check_type, metric, expected):
    assert alertname(check_type, metric) == expected


def test_http_answers_are_classified_with_what_to_fix():
    assert classify("http://am:9093", 401, "").kind == OutcomeKind.BROKEN
    assert (
        classify("http://am:9093", 400, '{"code":400,"message":"bad label"}').reason
        == 'http://am:9093: HTTP 400, alerts rejected: {"code":400,"message":"bad label"}'
    )
    assert classify("http://am:9093", 503, "").kind == OutcomeKind.RETRY


def test_an_unreadable_stored_alert_is_dropped_with_a_warning(caplog):
    kv = MemoryKeyValue()
    kv.kv_set(NAMESPACE, "root_disk", {"labels": 5})
    dispatcher = dispatcher_for(am_config("http://am:9093"), kv)
    assert dispatcher.active.alerts == {}
    assert kv.kv_items(NAMESPACE) == {}
    assert (
        "alertmanager: a stored alert is unreadable (AttributeError: 'int' object has no attribute 'items'); "
        "it is dropped" in caplog.text
    )


def test_an_alert_alertmanager_refuses_is_dropped_and_the_others_still_arrive(alertmanager, closing, caplog):
    kv = MemoryKeyValue()
    dispatcher = dispatcher_for(am_config(alertmanager.url), kv)
    closing(dispatcher)
    now = time.time()
    poison = AmAlert((("alertname", "Old"), ("bad-name", "x")), (), now)  # as an older version might have stored
    kv.kv_set(NAMESPACE, "old", poison.to_json())
    outbox = AlertmanagerOutbox()
    outbox.add("alertmanager", event(EventKind.FIRING, at=now))

    dispatcher.pump(outbox, now)

    assert [a["alertname"] for a in alertmanager.labels()] == ["DiskUsedPercent", "MonagentWatchdog"]
    assert list(kv.kv_items(NAMESPACE)) == ["root_disk\x1f/\x1fused_percent"]
    assert outbox.health("alertmanager").last_success == now
    assert (
        "alertmanager: dropping an alert it refuses (labels {'alertname': 'Old', 'bad-name': 'x'}): "
        f"{alertmanager.url}: HTTP 400, alerts rejected: " in caplog.text
    )


# ---------------------------------------------------------------- configuration


def parse(text: str, environ: Optional[Dict[str, str]] = None) -> AlertmanagerConfig:
    doc = Document("agent.toml", text, environ or {})
    config = parse_alertmanager(Section(doc, ("notifiers",), toml(text)["notifiers"]).table("alertmanager"))
    if doc.problems:
        raise ConfigError(doc.problems)
    return config


def test_the_alertmanager_defaults_follow_prometheus():
    config = parse('[notifiers.alertmanager]\nurls = ["http://am1:9093/", "https://am2:9093"]\n')
    assert config.urls == ("http://am1:9093", "https://am2:9093")
    assert (config.repost_interval, config.ends_at_lead, config.timeout) == (60.0, 240.0, 10.0)
    assert (config.watchdog, config.watchdog_name, config.tls_verify) == (True, "MonagentWatchdog", True)


def test_alertmanager_options_are_read_with_secrets_from_the_environment():
    config = parse(
        """\
[notifiers.alertmanager]
urls = ["http://am1:9093"]
repost_interval = "30s"
ends_at_lead = "2m"
username = "monagent"
password = "${AM_PASSWORD}"
tls_verify = false
severities = ["critical"]
[notifiers.alertmanager.labels]
team = "ops"
""",
        {"AM_PASSWORD": "pw"},
    )
    assert (config.repost_interval, config.ends_at_lead, config.tls_verify) == (30.0, 120.0, False)
    assert config.password == Secret("pw")
    assert config.labels == {"team": "ops"}
    assert config.route.severities == ("critical",)


def test_a_missing_ca_file_is_reported(tmp_path):
    with pytest.raises(ConfigError) as info:
        parse(f'[notifiers.alertmanager]\nurls = ["https://am1:9093"]\nca_file = "{tmp_path}/ca.pem"\n')
    assert str(info.value) == f"agent.toml:3: notifiers.alertmanager.ca_file: {tmp_path}/ca.pem is not a readable file"


def test_bad_alertmanager_options_are_each_reported_with_line_and_key():
    with pytest.raises(ConfigError) as info:
        parse("""\
[notifiers.alertmanager]
urls = ["am1:9093", "http://user:pw@am2:9093"]
ends_at_lead = "30s"
bearer_token = "t"
username = "u"
password = "p"
[notifiers.alertmanager.labels]
severity = "high"
"bad-name" = "x"
""")
    assert str(info.value).splitlines() == [
        "agent.toml:2: notifiers.alertmanager.urls: each must be an http:// or https:// URL such as "
        '"http://am1:9093", got "am1:9093"',
        "agent.toml:2: notifiers.alertmanager.urls: must not carry credentials; use username and password_file",
        "agent.toml:3: notifiers.alertmanager.ends_at_lead: must be longer than repost_interval (1m), got 30s: "
        "Alertmanager would resolve every alert between two posts",
        "agent.toml:4: notifiers.alertmanager.bearer_token: give either username/password or bearer_token, not both",
        "agent.toml:8: notifiers.alertmanager.labels.severity: is set by monagent itself; reserved labels: "
        "alertname, instance, check, subject, metric, severity, occurrence",
        "agent.toml:9: notifiers.alertmanager.labels.bad-name: is not a valid Prometheus label name "
        "(letters, digits, _; not starting with __)",
    ]
