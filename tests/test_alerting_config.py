"""``[alerting]``, ``[checks.NAME.alerting]``, ``[[alerting.maintenance]]`` and ``[[alerting.inhibit]]``."""

from __future__ import annotations

from pathlib import Path
from typing import List

import pytest
from alerting_helpers import config

from monagent.alerting.config import BUILTIN_INHIBIT, AlertingConfig, AlertingOverrides, TimeRange
from monagent.alerting.matchers import Matcher
from monagent.api import Status
from monagent.confread import ConfigError
from monagent.events import AlertKey

FULL = """
fire_after_cycles = 4
fire_after = "2m"
fire_window = "3 of 5"
clear_after_cycles = 3
keep_firing_for = "5m"
escalate_after_cycles = 2
deescalate_after_cycles = 4
notify_deescalation = false
repeat_interval = { critical = "30m", warning = "4h" }
max_reminders = 5
unknown_after_cycles = 6
flap_enabled = false
flap_low = 10
flap_high = 40
resolve_after_suppression = false
outage_tolerance = "30m"
group_wait = "5s"
max_sends_per_minute = 15
lockout = "11m"
body_budget_bytes = 16000
mention_after_reminders = 2
notify_transients = true
seen_ttl = "30d"
retention = "3d"
outbox_max_entries = 500
outbox_max_age = "2d"
builtin_inhibit = false
"""


def problems(tmp_path: Path, extra: str = "", alerting: str = "") -> List[str]:
    with pytest.raises(ConfigError) as err:
        config(tmp_path, extra, alerting)
    return [str(p).split("agent.toml", 1)[1] for p in err.value.problems]


def test_the_defaults_are_those_of_the_design(tmp_path: Path) -> None:
    cfg = config(tmp_path, '[checks.load]\ntype = "gauge"\n', 'startup_grace = "1m"\n')
    assert cfg.alerting == AlertingConfig(startup_grace=60.0)
    d = cfg.alerting.defaults
    assert (d.fire_after_cycles, d.clear_after_cycles, d.deescalate_cycles, d.max_reminders) == (3, 2, 2, 24)
    assert (d.repeat_interval(Status.CRITICAL), d.repeat_interval(Status.WARNING)) == (3600.0, 0.0)
    assert cfg.alerting.inhibit == BUILTIN_INHIBIT
    assert cfg.checks[0].alerting == d


def test_every_option_is_read(tmp_path: Path) -> None:
    cfg = config(tmp_path, "", 'startup_grace = "90s"\n' + FULL)
    assert cfg.alerting == AlertingConfig(
        defaults=AlertingOverrides(4, 120.0, (3, 5), 3, 300.0, 2, 4, False, 1800.0, 14400.0, 5, 6, False, 10, 40, False),
        outage_tolerance=1800.0,
        startup_grace=90.0,
        group_wait=5.0,
        max_sends_per_minute=15,
        lockout=660.0,
        body_budget_bytes=16000,
        mention_after_reminders=2,
        notify_transients=True,
        seen_ttl=30 * 86400.0,
        retention=3 * 86400.0,
        outbox_max_entries=500,
        outbox_max_age=2 * 86400.0,
        maintenance=(),
        inhibit=(),
    )


def test_a_check_overrides_the_defaults_it_names_and_inherits_the_rest(tmp_path: Path) -> None:
    cfg = config(
        tmp_path,
        '[checks.load]\ntype = "gauge"\n[checks.load.alerting]\nfire_after_cycles = 1\nrepeat_interval = "10m"\n',
        "clear_after_cycles = 5\n",
    )
    overrides = cfg.checks[0].alerting
    assert (overrides.fire_after_cycles, overrides.clear_after_cycles) == (1, 5)
    assert (overrides.repeat_critical, overrides.repeat_warning) == (600.0, 600.0)


def test_bad_values_are_reported_with_file_line_and_key(tmp_path: Path) -> None:
    alerting = (
        'fire_window = "5 of 3"\nflap_low = 50\nrepeat_interval = { critical = "1h", warnin = "0" }\nmax_sends_per_minute = 25\n'
    )
    assert problems(tmp_path, '[checks.load]\ntype = "gauge"\n[checks.load.alerting]\nlockout = "1m"\n', alerting) == [
        ':12: alerting.repeat_interval.warnin: unknown key (did you mean "warning"?)',
        ':10: alerting.fire_window: must be "N of M" with 1 <= N <= M <= 64, got "5 of 3"',
        ":11: alerting.flap_low: must not be above flap_high (30)",
        ":13: alerting.max_sends_per_minute: must be an integer from 1 to 19, got 25",
        ":18: checks.load.alerting.lockout: unknown key; accepted keys: clear_after_cycles, deescalate_after_cycles, "
        "escalate_after_cycles, fire_after, fire_after_cycles, fire_window, flap_enabled, flap_high, flap_low, "
        "keep_firing_for, max_reminders, notify_deescalation, repeat_interval, resolve_after_suppression, "
        "unknown_after_cycles",
    ]


WINDOW = """
[[alerting.maintenance]]
name = "nightly backup"
weekdays = ["fri-mon"]
times = ["02:00-04:00", "23:30-24:00"]
time_zone = "Asia/Shanghai"
match = { check = ["root_disk", "backup*"], subject = "/var" }
"""


def test_a_maintenance_window_reads_weekday_ranges_times_zone_and_matchers(tmp_path: Path) -> None:
    (window,) = config(tmp_path, "", WINDOW).alerting.maintenance
    assert window.weekdays == (0, 4, 5, 6)
    assert window.times == (TimeRange(120, 240), TimeRange(1410, 1440))
    assert window.matcher == Matcher((("check", ("root_disk", "backup*")), ("subject", ("/var",))))
    assert window.matcher.matches(AlertKey("backup_disk", "/var", "used_percent"))
    assert not window.matcher.matches(AlertKey("root_disk", "/srv", "used_percent"))
    monday_0300_shanghai = 1_789_930_800.0  # Sunday 2026-09-20 19:00 UTC
    assert window.active(monday_0300_shanghai)
    assert not window.active(monday_0300_shanghai + 3600)
    tuesday_0300_shanghai = monday_0300_shanghai + 86400
    assert not window.active(tuesday_0300_shanghai)


def test_bad_maintenance_windows_and_inhibit_rules_are_reported(tmp_path: Path) -> None:
    alerting = (
        '[[alerting.maintenance]]\nweekdays = ["funday"]\ntimes = ["04:00-02:00"]\ntime_zone = "Mars/Base"\n'
        'match = { host = "x" }\n[[alerting.inhibit]]\nsource = { metric = "read_only" }\n'
    )
    assert problems(tmp_path, "", alerting) == [
        ':11: alerting.maintenance.0.weekdays: must name days as mon..sun or ranges such as "mon-fri", got "funday"',
        ':12: alerting.maintenance.0.times: must be ranges such as "02:00-04:00" (start before end, up to 24:00), '
        'got "04:00-02:00"',
        ':13: alerting.maintenance.0.time_zone: unknown IANA time zone "Mars/Base" (e.g. "Asia/Shanghai", "UTC")',
        ":14: alerting.maintenance.0.match.host: unknown label; use check, subject, metric, check_type, type, severity",
        ":15: alerting.inhibit.0: needs both source and target matchers",
    ]


def test_inhibit_rules_add_to_the_builtin_one_unless_it_is_turned_off(tmp_path: Path) -> None:
    rule = '\n[[alerting.inhibit]]\nsource = { metric = "#unknown" }\ntarget = { metric = "*" }\nequal = ["check"]\n'
    with_builtin = config(tmp_path, "", rule).alerting.inhibit
    assert with_builtin[0] == BUILTIN_INHIBIT[0] and len(with_builtin) == 2
    assert with_builtin[1].equal == ("check",)
    assert config(tmp_path, "", "builtin_inhibit = false\n" + rule).alerting.inhibit == with_builtin[1:]
