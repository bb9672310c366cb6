"""The alert pipeline end to end in one process: runs in, exact console lines out of the real store."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Iterator, List

import pytest
from alerting_helpers import Clock, config, drain, occurrences, open_pipeline, outbox, run, value, verdict

from monagent.alerting.machine import Phase
from monagent.alerting.pipeline import AlertPipeline
from monagent.api import Formatter, Metric, Occurrence, Result, Status
from monagent.events import AlertKey, EventKind
from monagent.store import Store

LOAD = """
[checks.load]
type = "gauge"
[checks.load.alerting]
fire_after_cycles = 2
clear_after_cycles = 2
"""


@pytest.fixture(autouse=True)
def utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.fixture
def clock() -> Clock:
    return Clock()  # Monday 2026-09-21 14:13:20 UTC


def observe(pipeline: AlertPipeline, clock: Clock, *runs: object) -> List[str]:
    now, mono = clock.step()
    pipeline.observe(list(runs), now, mono)  # type: ignore[arg-type]
    return drain(pipeline.store)


def values(pipeline: AlertPipeline, clock: Clock, check: str, *vals: float, **kw: object) -> List[str]:
    lines: List[str] = []
    for v in vals:
        lines += observe(pipeline, clock, run(check, value(v, **kw)))  # type: ignore[arg-type]
    return lines


def test_a_value_over_the_threshold_fires_once_after_the_confirmation_cycles(tmp_path: Path, clock: Clock) -> None:
    p = open_pipeline(config(tmp_path, LOAD), clock)
    assert values(p, clock, "load", 50, 85) == []
    assert values(p, clock, "load", 85) == ["FIRING warning web01 load value 85 (>= 80) since 14:15"]
    assert values(p, clock, "load", 85, 86) == []
    assert values(p, clock, "load", 10) == []
    assert values(p, clock, "load", 10) == ["RESOLVED web01 load value 10 (was warning since 14:15)"]


def test_warning_then_critical_is_one_incident_with_an_escalation(tmp_path: Path, clock: Clock) -> None:
    p = open_pipeline(config(tmp_path, LOAD), clock)
    values(p, clock, "load", 85, 85)
    assert values(p, clock, "load", 95) == ["ESCALATED critical web01 load value 95 (>= 90) since 14:14"]
    assert values(p, clock, "load", 85) == []
    assert values(p, clock, "load", 85) == ["DEESCALATED warning web01 load value 85 (>= 80) since 14:14"]
    assert p.states[AlertKey("load", "", "value")].incidents == 1


def test_a_receiver_hears_a_resolve_only_for_a_firing_it_heard(tmp_path: Path, clock: Clock) -> None:
    cfg = config(tmp_path, LOAD + '\n[notifiers.webhook.pager]\nurl = "http://127.0.0.1:9/"\nseverities = ["critical"]\n')
    p = open_pipeline(cfg, clock)
    values(p, clock, "load", 85, 85, 10, 10)
    assert drain(p.store, "webhook:pager") == []  # a warning incident: the pager never heard of it
    values(p, clock, "load", 85, 85, 95)
    assert drain(p.store, "webhook:pager") == ["FIRING critical web01 load value 95 (>= 90) since 14:18"]
    values(p, clock, "load", 10, 10)
    assert drain(p.store, "webhook:pager") == ["RESOLVED web01 load value 10 (was critical since 14:18)"]


def test_a_failing_check_keeps_its_alert_and_fires_check_is_failing_after_three_runs(tmp_path: Path, clock: Clock) -> None:
    p = open_pipeline(config(tmp_path, LOAD), clock)
    values(p, clock, "load", 95, 95)
    failing = run(
        "load", Result(status=Status.UNKNOWN, reason="TimeoutError: no answer in 30s"), error="TimeoutError: no answer in 30s"
    )
    assert observe(p, clock, failing) == []
    assert observe(p, clock, failing) == []
    assert observe(p, clock, failing) == [
        "FIRING warning web01 load #unknown check is failing: TimeoutError: no answer in 30s since 14:18"
    ]
    assert p.states[AlertKey("load", "", "value")].phase == Phase.FIRING
    assert values(p, clock, "load", 95) == [
        "RESOLVED web01 load #unknown check is failing: TimeoutError: no answer in 30s (was warning since 14:18)"
    ]


def test_a_verdict_unknown_keeps_the_last_verdict(tmp_path: Path, clock: Clock) -> None:
    p = open_pipeline(
        config(
            tmp_path, '[checks.web]\ntype = "verdict"\n[checks.web.alerting]\nfire_after_cycles = 1\nunknown_after_cycles = 5\n'
        ),
        clock,
    )
    assert observe(p, clock, run("web", verdict(Status.CRITICAL, "HTTP 503"), check_type="verdict")) == [
        "FIRING critical web01 web status HTTP 503 since 14:14"
    ]
    assert observe(p, clock, run("web", verdict(Status.UNKNOWN, "plugin timed out"), check_type="verdict")) == []
    assert p.states[AlertKey("web", "", "status")].phase == Phase.FIRING


def test_a_discovered_subject_that_disappears_is_resolved_as_no_longer_present(tmp_path: Path, clock: Clock) -> None:
    p = open_pipeline(config(tmp_path, '[checks.disks]\ntype = "disk"\n[checks.disks.alerting]\nfire_after_cycles = 1\n'), clock)
    var = Result(subject="/var", metrics=(Metric("used_percent", 97.0, "%"),), discovered=True)
    srv = Result(subject="/srv", metrics=(Metric("used_percent", 10.0, "%"),), discovered=True)
    assert observe(p, clock, run("disks", var, srv, check_type="disk")) == [
        "FIRING critical web01 disks /var used_percent 97% (>= 95%) since 14:14"
    ]
    assert observe(p, clock, run("disks", srv, check_type="disk")) == [
        "RESOLVED web01 disks /var used_percent 97% (was critical since 14:14) (no longer present)"
    ]
    assert AlertKey("disks", "/var", "used_percent") not in p.states


def test_a_removed_check_is_resolved_as_check_removed_and_reload_keeps_the_others(tmp_path: Path, clock: Clock) -> None:
    cfg = config(tmp_path, LOAD + '\n[checks.other]\ntype = "gauge"\n[checks.other.alerting]\nfire_after_cycles = 1\n')
    p = open_pipeline(cfg, clock)
    values(p, clock, "load", 95, 95)
    values(p, clock, "other", 95)
    p.reload(config(tmp_path, '[checks.other]\ntype = "gauge"\n[checks.other.alerting]\nfire_after_cycles = 5\n'))
    assert drain(p.store) == ["RESOLVED web01 load value 95 (was critical since 14:14) (check removed)"]
    assert values(p, clock, "other", 95) == []  # the incident was kept: no second FIRING
    assert p.states[AlertKey("other", "", "value")].phase == Phase.FIRING


def test_the_first_run_summary_of_crash_dumps_says_how_many_where_and_their_dates_newest_first(
    tmp_path: Path, clock: Clock
) -> None:
    p = open_pipeline(config(tmp_path, '[checks.crash]\ntype = "kdump"\n'), clock)
    days = [1_780_000_000.0, 1_760_000_000.0, 1_770_000_000.0]
    old = [Occurrence(f"d{i}", "panic", time=t, facts={"dump_path": f"/var/crash/{i}"}) for i, t in enumerate(days)]
    now, mono = clock.step()
    p.observe([run("crash", occurrences(*old), check_type="kdump")], now, mono)
    (notice,) = outbox(p.store)
    assert drain(p.store) == [
        "NOTICE critical web01 crash 3 crash dumps already in /var/crash when monagent first ran "
        "(not announced one by one): 2026-05-28, 2026-02-02, 2025-10-09",
    ]
    assert Formatter("zh", "UTC").text(notice.reason) == (
        "monagent 首次运行时 /var/crash 中已有 3 个崩溃转储（未逐条通知）：2026-05-28、2026-02-02、2025-10-09"
    )


def test_occurrences_are_summarised_on_the_first_run_and_announced_once_afterwards(tmp_path: Path, clock: Clock) -> None:
    p = open_pipeline(config(tmp_path, '[checks.crash]\ntype = "kdump"\n'), clock)
    old = [Occurrence(f"dump-{i}", f"kernel panic {i}", time=float(i)) for i in range(3)]
    fresh = Occurrence("dump-9", "kernel BUG at mm/slub.c", announce_on_first_run=True)
    assert observe(p, clock, run("crash", occurrences(*old, fresh), check_type="kdump")) == [
        "OCCURRENCE critical web01 crash /var/crash kernel BUG at mm/slub.c",
        "NOTICE critical web01 crash 3 earlier events already there when monagent first ran (not announced one by one); "
        "newest: kernel panic 2",
    ]
    assert observe(p, clock, run("crash", occurrences(*old, fresh), check_type="kdump")) == []
    new = Occurrence("dump-10", "Oops in ext4", severity=Status.WARNING)
    assert observe(p, clock, run("crash", occurrences(*old, fresh, new), check_type="kdump")) == [
        "OCCURRENCE warning web01 crash /var/crash Oops in ext4"
    ]
    updated = Occurrence("dump-10", "Oops in ext4 (dump complete)", severity=Status.WARNING, revision="complete")
    assert observe(p, clock, run("crash", occurrences(updated), check_type="kdump")) == [
        "OCCURRENCE warning web01 crash /var/crash Oops in ext4 (dump complete)"
    ]


def test_an_empty_first_run_means_the_next_occurrence_is_announced(tmp_path: Path, clock: Clock) -> None:
    p = open_pipeline(config(tmp_path, '[checks.crash]\ntype = "kdump"\n'), clock)
    assert observe(p, clock, run("crash", occurrences(), check_type="kdump")) == []
    assert observe(p, clock, run("crash", occurrences(Occurrence("d1", "panic")), check_type="kdump")) == [
        "OCCURRENCE critical web01 crash /var/crash panic"
    ]


def test_a_reboot_is_noticed_once_with_the_last_seen_time_when_reboots_are_not_explained(tmp_path: Path, clock: Clock) -> None:
    cfg = config(tmp_path, LOAD + "\n[reboot]\nenabled = false\n")
    p = open_pipeline(cfg, clock, boot_id="boot-a")
    values(p, clock, "load", 10)
    p.close(clean=True)
    p.store.close()
    clock.step(600)
    p = open_pipeline(cfg, clock, boot_id="boot-b")
    assert drain(p.store) == [
        "NOTICE warning web01 host rebooted; the previous boot was last seen alive at 2026-09-21 14:14:20 UTC"
    ]
    p.close(clean=True)
    p.store.close()
    p = open_pipeline(cfg, clock, boot_id="boot-b")
    assert drain(p.store) == []


def test_an_unclean_stop_is_noticed_at_the_next_start(tmp_path: Path, clock: Clock) -> None:
    cfg = config(tmp_path, LOAD)
    p = open_pipeline(cfg, clock)
    values(p, clock, "load", 10)
    p.store.close()  # killed: close() never ran
    p = open_pipeline(cfg, clock)
    assert drain(p.store) == [
        "NOTICE warning web01 monagent restarted after an unclean stop; it was last seen alive at 2026-09-21 14:14:20 UTC"
    ]


def test_a_problem_that_started_during_a_silence_is_announced_after_it(tmp_path: Path, clock: Clock) -> None:
    p = open_pipeline(config(tmp_path, LOAD), clock)
    silence = p.add_silence(["check=load"], ends_at=clock.wall + 300, author="ops", comment="deploy", now=clock.wall)
    assert values(p, clock, "load", 95, 95, 95) == []
    p.expire_silence(silence.id, now=clock.wall)
    assert values(p, clock, "load", 95) == [
        f"FIRING critical web01 load value 95 (>= 90) since 14:14 (started during silence {silence.id})"
    ]


def test_a_problem_that_ended_during_a_silence_is_closed_after_it(tmp_path: Path, clock: Clock) -> None:
    p = open_pipeline(config(tmp_path, LOAD), clock)
    values(p, clock, "load", 95, 95)
    silence = p.add_silence(["check=load"], ends_at=clock.wall + 300, now=clock.wall)
    assert values(p, clock, "load", 10, 10, 10, 10) == []
    assert values(p, clock, "load", 10) == [
        f"RESOLVED web01 load value 10 (was critical since 14:14) (while silence {silence.id})"
    ]


def test_resolve_after_suppression_false_closes_silently(tmp_path: Path, clock: Clock) -> None:
    p = open_pipeline(config(tmp_path, LOAD + "resolve_after_suppression = false\n"), clock)
    values(p, clock, "load", 95, 95)
    p.add_silence(["check=load"], ends_at=clock.wall + 150, now=clock.wall)
    assert values(p, clock, "load", 10, 10, 10, 10) == []
    assert not p.heard[AlertKey("load", "", "value")]["console"].firing()


def test_a_maintenance_window_in_its_time_zone_mutes_the_key(tmp_path: Path, clock: Clock) -> None:
    window = (
        '\n[[alerting.maintenance]]\nname = "patching"\nweekdays = ["mon"]\ntimes = ["22:00-23:00"]\n'
        'time_zone = "Asia/Shanghai"\nmatch = { check = "load" }\n'
    )
    p = open_pipeline(config(tmp_path, LOAD, window), clock)  # 14:14 UTC is 22:14 in Shanghai
    assert values(p, clock, "load", 95, 95) == []
    clock.step(3600)
    assert values(p, clock, "load", 95) == [
        "FIRING critical web01 load value 95 (>= 90) since 14:14 (started during maintenance patching)"
    ]


def test_a_read_only_mount_inhibits_the_space_alert_of_the_same_mount_only(tmp_path: Path, clock: Clock) -> None:
    p = open_pipeline(config(tmp_path, '[checks.disks]\ntype = "disk"\n[checks.disks.alerting]\nfire_after_cycles = 1\n'), clock)
    var = Result(subject="/var", metrics=(Metric("used_percent", 97.0, "%"), Metric("read_only", 1.0)))
    srv = Result(subject="/srv", metrics=(Metric("used_percent", 97.0, "%"),))
    assert observe(p, clock, run("disks", var, srv, check_type="disk")) == [
        "FIRING critical web01 disks /var read_only 1 (>= 1) since 14:14",
        "FIRING critical web01 disks /srv used_percent 97% (>= 95%) since 14:14",
    ]


def test_an_ack_stops_reminders_and_an_escalation_breaks_it(tmp_path: Path, clock: Clock) -> None:
    alerting = 'repeat_interval = { critical = "10m", warning = "10m" }\n'
    p = open_pipeline(config(tmp_path, LOAD, alerting), clock)
    values(p, clock, "load", 85, 85)
    now, mono = clock.step(600)
    p.tick(now, mono)
    assert drain(p.store) == ["REMINDER warning web01 load value 85 (>= 80) since 14:14"]
    p.ack("load value", author="ops", comment="on it", now=clock.wall)
    now, mono = clock.step(1200)
    p.tick(now, mono)
    assert drain(p.store) == []
    assert values(p, clock, "load", 95) == ["ESCALATED critical web01 load value 95 (>= 90) since 14:14"]
    assert AlertKey("load", "", "value") not in p.acks


def test_reminders_stop_at_max_reminders(tmp_path: Path, clock: Clock) -> None:
    alerting = 'repeat_interval = "5m"\nmax_reminders = 2\n'
    p = open_pipeline(config(tmp_path, LOAD, alerting), clock)
    values(p, clock, "load", 95, 95)
    kinds = []
    for _ in range(6):
        now, mono = clock.step(300)
        p.tick(now, mono)
        kinds += [e.kind for e in outbox(p.store)]
        drain(p.store)
    assert kinds == [EventKind.REMINDER, EventKind.REMINDER]


def test_startup_grace_defers_firing_until_it_ends(tmp_path: Path, clock: Clock) -> None:
    p = open_pipeline(config(tmp_path, LOAD, 'startup_grace = "3m"\n'), clock)
    assert values(p, clock, "load", 95, 95) == []
    assert values(p, clock, "load", 95) == ["FIRING critical web01 load value 95 (>= 90) since 14:14"]


def test_a_restart_within_the_tolerance_keeps_the_pending_streak(tmp_path: Path, clock: Clock) -> None:
    cfg = config(tmp_path, LOAD)
    p = open_pipeline(cfg, clock)
    values(p, clock, "load", 95)
    p.close(clean=True)
    p.store.close()
    p = open_pipeline(cfg, clock)
    assert values(p, clock, "load", 95) == ["FIRING critical web01 load value 95 (>= 90) since 14:14"]


def test_a_restart_after_a_long_outage_starts_pending_again(tmp_path: Path, clock: Clock) -> None:
    cfg = config(tmp_path, LOAD)
    p = open_pipeline(cfg, clock)
    values(p, clock, "load", 95)
    p.close(clean=True)
    p.store.close()
    clock.step(7200)
    p = open_pipeline(cfg, clock)
    assert values(p, clock, "load", 95) == []


def test_flapping_sends_one_notice_and_one_message_when_it_settles(tmp_path: Path, clock: Clock) -> None:
    cfg = config(
        tmp_path, '[checks.load]\ntype = "gauge"\n[checks.load.alerting]\nfire_after_cycles = 1\nclear_after_cycles = 1\n'
    )
    p = open_pipeline(cfg, clock)
    lines = values(p, clock, "load", *([95, 10] * 6), *([95] * 22))
    assert lines[6:] == [
        "FLAPPING critical web01 load value is flapping (36% state change); notifications paused until it settles",
        "SETTLED critical web01 load value stopped flapping (16% state change); now firing",
        "FIRING critical web01 load value 95 (>= 90) since 14:26 (started during flapping)",
    ]
    assert [line.split()[0] for line in lines[:6]] == ["FIRING", "RESOLVED"] * 3


def test_a_metric_without_a_threshold_makes_no_alert_key(tmp_path: Path, clock: Clock) -> None:
    p = open_pipeline(config(tmp_path, LOAD), clock)
    observe(p, clock, run("load", Result(metrics=(Metric("other", 1e9),))))
    assert p.states == {}


def test_the_store_is_committed_before_observe_returns(tmp_path: Path, clock: Clock) -> None:
    cfg = config(tmp_path, LOAD)
    p = open_pipeline(cfg, clock)
    now, mono = clock.step()
    p.observe([run("load", value(95))], now, mono)
    assert p.observe([run("load", value(95))], *clock.step()) == 1
    other = Store.open(cfg.agent.state_dir)
    try:
        assert [e.kind for e in outbox(other)] == [EventKind.FIRING]
    finally:
        other.close()


def test_an_ack_also_mutes_the_de_escalation(tmp_path: Path, clock: Clock) -> None:
    p = open_pipeline(config(tmp_path, LOAD), clock)
    values(p, clock, "load", 95, 95)
    p.ack("load value", author="ops", now=clock.wall)
    assert values(p, clock, "load", 85, 85) == []
    assert p.heard[AlertKey("load", "", "value")]["console"].severity == Status.WARNING
    assert values(p, clock, "load", 10, 10) == ["RESOLVED web01 load value 10 (was warning since 14:14)"]
    assert p.acks == {}


def test_notify_deescalation_false_keeps_quiet_about_a_lower_severity(tmp_path: Path, clock: Clock) -> None:
    p = open_pipeline(config(tmp_path, LOAD + "notify_deescalation = false\n"), clock)
    values(p, clock, "load", 95, 95)
    assert values(p, clock, "load", 85, 85, 85) == []
    assert values(p, clock, "load", 95) == ["ESCALATED critical web01 load value 95 (>= 90) since 14:14"]


def test_an_expiring_ack_lets_reminders_resume(tmp_path: Path, clock: Clock) -> None:
    p = open_pipeline(config(tmp_path, LOAD, 'repeat_interval = "10m"\n'), clock)
    values(p, clock, "load", 95, 95)
    p.ack("load value", author="ops", expires_at=clock.wall + 900, now=clock.wall)
    now, mono = clock.step(600)
    p.tick(now, mono)
    assert drain(p.store) == []
    now, mono = clock.step(600)
    p.tick(now, mono)
    assert drain(p.store) == ["REMINDER critical web01 load value 95 (>= 90) since 14:14"]


def test_removing_a_threshold_retires_its_key(tmp_path: Path, clock: Clock) -> None:
    disks = '[checks.disks]\ntype = "disk"\n[checks.disks.alerting]\nfire_after_cycles = 1\n'
    p = open_pipeline(config(tmp_path, disks), clock)
    assert observe(
        p, clock, run("disks", Result(subject="/", metrics=(Metric("used_percent", 99.0, "%"),)), check_type="disk")
    ) == ["FIRING critical web01 disks / used_percent 99% (>= 95%) since 14:14"]
    p.reload(config(tmp_path, disks.replace('type = "disk"\n', 'type = "verdict"\n')))
    assert drain(p.store) == ["RESOLVED web01 disks / used_percent 99% (was critical since 14:14) (threshold removed)"]


def test_idle_inactive_keys_and_old_seen_ids_are_pruned(tmp_path: Path, clock: Clock) -> None:
    p = open_pipeline(config(tmp_path, LOAD + '[checks.crash]\ntype = "kdump"\n', 'retention = "1h"\nseen_ttl = "2h"\n'), clock)
    values(p, clock, "load", 95, 10)
    observe(p, clock, run("crash", occurrences(Occurrence("d1", "panic")), check_type="kdump"))
    now, mono = clock.step(3 * 3600)
    p.tick(now, mono)
    assert p.states == {}
    assert all(not seen for seen in p.seen.values())
    reopened = Store.open(tmp_path / "state")
    try:
        snapshot = reopened.load()
        assert (snapshot.alerts, snapshot.seen) == ({}, {})
    finally:
        reopened.close()


def test_the_default_startup_grace_is_twice_each_checks_interval_and_at_least_a_minute(tmp_path: Path, clock: Clock) -> None:
    checks = (
        '[checks.fast]\ntype = "gauge"\ninterval = "10s"\n[checks.fast.alerting]\nfire_after_cycles = 1\n'
        '[checks.slow]\ntype = "gauge"\ninterval = "2m"\n[checks.slow.alerting]\nfire_after_cycles = 1\n'
    )
    p = open_pipeline(config(tmp_path, checks, grace=True), clock)
    fired = []
    for _ in range(4):
        lines = observe(p, clock, run("fast", value(95)), run("slow", value(95)))
        fired.append([line.split()[3] for line in lines])
    assert fired == [["fast"], [], [], ["slow"]]  # runs 60 s apart; grace: fast 60 s, slow 240 s


def test_an_unreadable_alert_row_starts_that_key_fresh_and_keeps_the_others(
    tmp_path: Path, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    cfg = config(tmp_path, LOAD)
    p = open_pipeline(cfg, clock)
    values(p, clock, "load", 95, 95)
    p.store.conn.execute("INSERT INTO alerts VALUES ('x\x1f\x1fvalue', '{\"phase\": \"exploded\"}')")
    p.close(clean=True)
    p.store.close()
    p = open_pipeline(cfg, clock)
    assert list(p.states) == [AlertKey("load", "", "value")]
    assert (
        "alert state 'x\\x1f\\x1fvalue' in the store cannot be read ('exploded' is not a valid Phase); "
        "that key starts fresh" in caplog.text
    )


def test_a_check_removed_while_the_agent_was_down_is_resolved_at_start(tmp_path: Path, clock: Clock) -> None:
    p = open_pipeline(config(tmp_path, LOAD), clock)
    values(p, clock, "load", 95, 95)
    p.close(clean=True)
    p.store.close()
    p = open_pipeline(config(tmp_path, '[checks.other]\ntype = "gauge"\n'), clock)
    assert drain(p.store) == ["RESOLVED web01 load value 95 (was critical since 14:14) (check removed)"]
    assert p.states == {}


def test_a_silence_of_warnings_lets_the_escalation_to_critical_through(tmp_path: Path, clock: Clock) -> None:
    p = open_pipeline(config(tmp_path, LOAD), clock)
    silence = p.add_silence(["type=gauge", "severity=warning"], ends_at=clock.wall + 3600, now=clock.wall)
    assert values(p, clock, "load", 85, 85, 85) == []
    assert values(p, clock, "load", 95) == [
        f"FIRING critical web01 load value 95 (>= 90) since 14:14 (started during silence {silence.id})"
    ]


def test_ticking_only_when_next_timer_says_sends_what_ticking_every_5_s_sends(tmp_path: Path) -> None:
    """The agent's loop sleeps until ``next_timer`` instead of ticking every 5 s (#17). Two pipelines see the
    same samples, acks and silences on the same 5-s grid of time; one ticks at every point, the other only at
    the points ``next_timer`` has reached (and after each observe, as the loop does). They must send the same
    reminders at the same times, and the second must tick rarely."""
    alerting = 'repeat_interval = { critical = "10m", warning = "7m" }\nmax_reminders = 20\n'
    pipelines, clocks, ticks, heard = [], [], [0, 0], [[], []]
    for name in ("every", "timer"):
        (tmp_path / name).mkdir()
        clocks.append(Clock())
        pipelines.append(open_pipeline(config(tmp_path / name, LOAD, alerting), clocks[-1]))
    script = {0: 95, 1: 95, 40: 85, 41: 85, 42: 85, 60: 95, 61: 95, 150: 10, 151: 10}
    for step in range(0, 180 * 12):  # three hours in 5-s steps; a sample every minute
        for i, (p, clock) in enumerate(zip(pipelines, clocks)):
            now, mono = clock.step(5.0)
            minute, sample_now = divmod(step, 12)
            if sample_now == 0:
                latest = [v for m, v in sorted(script.items()) if m <= minute][-1]
                p.observe([run("load", value(latest))], now, mono)
                if minute == 25:
                    p.ack("load value", author="ops", expires_at=now + 17 * 60, now=now)
                if minute == 100:
                    p.add_silence(["check=load"], ends_at=now + 12 * 60, author="ops", now=now)
                ticks[i] += 1
                p.tick(now, mono)
            elif i == 0 or p.next_timer(now, mono) <= mono:
                ticks[i] += 1
                p.tick(now, mono)
            heard[i] += [(step, line) for line in drain(p.store)]
    reminders = [line for _, line in heard[0] if line.startswith("REMINDER")]
    assert len(reminders) >= 4, heard[0]  # the script does exercise reminders, acks and the silence
    assert heard[1] == heard[0]
    # apart from the ticks after each observe, it ticks every 5 s only while a due reminder is muted (the silence)
    assert ticks[1] - 180 - 12 * 12 < (ticks[0] - 180) / 20
