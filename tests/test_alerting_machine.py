"""Every transition of the lifecycle table (docs/design/alerting.md d.4), hysteresis (d.3) and flapping (d.5)."""

from __future__ import annotations

from dataclasses import replace
from typing import Tuple

import pytest

from monagent.alerting import flap
from monagent.alerting.config import AlertingOverrides
from monagent.alerting.machine import AlertState, Change, Phase, level_of, restore, step, unknown
from monagent.api import Direction, Status, Threshold

OK, WARN, CRIT = Status.OK, Status.WARNING, Status.CRITICAL
P = AlertingOverrides(fire_after_cycles=2, clear_after_cycles=2, flap_enabled=False)

INACTIVE = AlertState()
PENDING = AlertState(phase=Phase.PENDING, latched=WARN, bad_streak=1, pending_since=0.0)
FIRING_W = AlertState(
    phase=Phase.FIRING, latched=WARN, severity=WARN, incident="k-1", incidents=1, firing_since=0.0, bad_streak=3
)
FIRING_C = replace(FIRING_W, latched=CRIT, severity=CRIT)
RESOLVING_W = replace(FIRING_W, phase=Phase.RESOLVING, latched=OK, good_streak=1, bad_streak=0, resolving_since=50.0)

# (name, state, level, params, expected phase, expected changes, expected severity)
TABLE = [
    ("inactive stays inactive on a good sample", INACTIVE, OK, P, Phase.INACTIVE, (), OK),
    ("inactive goes pending on a bad sample", INACTIVE, WARN, P, Phase.PENDING, (), OK),
    (
        "inactive fires at once with one cycle and no duration",
        INACTIVE,
        CRIT,
        replace(P, fire_after_cycles=1),
        Phase.FIRING,
        (Change.FIRE,),
        CRIT,
    ),
    ("pending fires when the streak reaches fire_after_cycles", PENDING, WARN, P, Phase.FIRING, (Change.FIRE,), WARN),
    ("pending stays pending while the streak is short", PENDING, WARN, replace(P, fire_after_cycles=3), Phase.PENDING, (), OK),
    (
        "pending waits for fire_after even when the streak is long",
        PENDING,
        WARN,
        replace(P, fire_after=120.0),
        Phase.PENDING,
        (),
        OK,
    ),
    ("pending goes back to inactive silently on a good sample", PENDING, OK, P, Phase.INACTIVE, (), OK),
    (
        "window mode keeps pending while a bad flag is left",
        replace(PENDING, window=(True,)),
        OK,
        replace(P, fire_window=(2, 4)),
        Phase.PENDING,
        (),
        OK,
    ),
    (
        "window mode fires with N bad among the last M",
        replace(PENDING, window=(True, False, False)),
        WARN,
        replace(P, fire_window=(2, 4)),
        Phase.FIRING,
        (Change.FIRE,),
        WARN,
    ),
    (
        "window mode goes inactive when no bad flag is left",
        replace(PENDING, window=(False, False, False)),
        OK,
        replace(P, fire_window=(2, 3)),
        Phase.INACTIVE,
        (),
        OK,
    ),
    ("firing stays firing at the same severity", FIRING_W, WARN, P, Phase.FIRING, (), WARN),
    ("firing escalates at once", FIRING_W, CRIT, P, Phase.FIRING, (Change.ESCALATE,), CRIT),
    (
        "firing escalates only after escalate_after_cycles",
        FIRING_W,
        CRIT,
        replace(P, escalate_after_cycles=2),
        Phase.FIRING,
        (),
        WARN,
    ),
    (
        "firing de-escalates after the confirmation",
        replace(FIRING_C, down_streak=1),
        WARN,
        P,
        Phase.FIRING,
        (Change.DEESCALATE,),
        WARN,
    ),
    ("firing does not de-escalate on the first lower sample", FIRING_C, WARN, P, Phase.FIRING, (), CRIT),
    (
        "firing resolves at once when the clear condition holds immediately",
        FIRING_W,
        OK,
        replace(P, clear_after_cycles=1),
        Phase.INACTIVE,
        (Change.RESOLVE,),
        OK,
    ),
    ("firing goes resolving on a good sample", FIRING_W, OK, P, Phase.RESOLVING, (), WARN),
    ("resolving resolves when the clear condition holds", RESOLVING_W, OK, P, Phase.INACTIVE, (Change.RESOLVE,), OK),
    ("resolving waits for keep_firing_for", RESOLVING_W, OK, replace(P, keep_firing_for=600.0), Phase.RESOLVING, (), WARN),
    ("resolving goes back to firing silently on a bad sample", RESOLVING_W, WARN, P, Phase.FIRING, (), WARN),
    ("resolving back to firing escalates when worse", RESOLVING_W, CRIT, P, Phase.FIRING, (Change.ESCALATE,), CRIT),
]


@pytest.mark.parametrize(
    ("name", "state", "level", "params", "phase", "changes", "severity"), TABLE, ids=[row[0] for row in TABLE]
)
def test_lifecycle_transition(  # noqa: PLR0917 - one argument per table column
    name: str,
    state: AlertState,
    level: Status,
    params: AlertingOverrides,
    phase: Phase,
    changes: Tuple[Change, ...],
    severity: Status,
) -> None:
    new, made = step(state, level, 100.0, params, prefix="k")
    assert new.phase == phase
    assert tuple(t.change for t in made) == changes
    assert new.severity == severity


def test_a_new_incident_gets_a_new_id_and_resets_its_reminders() -> None:
    state = replace(INACTIVE, incidents=4, reminders_sent=3)
    new, made = step(state, CRIT, 5.0, replace(P, fire_after_cycles=1), prefix="ab12")
    assert new.incident == "ab12-5" and made[0].incident == "ab12-5"
    assert new.reminders_sent == 0 and new.firing_since == 5.0


def test_resolving_clears_the_incident_but_keeps_the_count() -> None:
    new, made = step(RESOLVING_W, OK, 100.0, P, prefix="k")
    assert made[0].incident == "k-1"
    assert (new.incident, new.incidents, new.reminders_sent) == ("", 1, 0)


def test_startup_grace_defers_firing_but_keeps_counting() -> None:
    state, made = step(PENDING, WARN, 100.0, P, prefix="k", hold_fire=True)
    assert state.phase == Phase.PENDING and state.bad_streak == 2 and made == ()
    state, made = step(state, WARN, 160.0, P, prefix="k")
    assert state.phase == Phase.FIRING and made[0].change == Change.FIRE


def test_unknown_keeps_the_last_state_and_counts() -> None:
    state = unknown(unknown(FIRING_W))
    assert state.phase == Phase.FIRING and state.unknown_streak == 2
    state, _ = step(state, WARN, 10.0, P, prefix="k")
    assert state.unknown_streak == 0


def test_an_unknown_verdict_keeps_the_latched_level() -> None:
    assert level_of(FIRING_C, None, None, Status.UNKNOWN) == CRIT


HYST = Threshold(warning=85, critical=95, warning_clear=75, critical_clear=90)


@pytest.mark.parametrize(
    ("value", "previous", "expected"),
    [
        (86, OK, WARN),
        (84, OK, OK),
        (84, WARN, WARN),
        (76, WARN, WARN),
        (75, WARN, OK),
        (95, WARN, CRIT),
        (91, CRIT, CRIT),
        (90, CRIT, WARN),
        (70, CRIT, OK),
    ],
)
def test_hysteresis_latches_until_past_the_clear_value(value: float, previous: Status, expected: Status) -> None:
    assert HYST.latch(value, previous) == expected


def test_hysteresis_mirrors_for_direction_below() -> None:
    below = Threshold(warning=10, critical=5, warning_clear=20, critical_clear=8, direction=Direction.BELOW)
    assert [below.latch(v, p) for v, p in ((9, OK), (15, WARN), (20, WARN), (4, OK), (7, CRIT), (8, CRIT))] == [
        WARN,
        WARN,
        OK,
        CRIT,
        CRIT,
        WARN,
    ]


def test_a_value_hovering_at_the_warning_line_fires_once_and_resolves_only_below_the_clear_value() -> None:
    state = AlertState()
    events = []
    for v in (86, 84, 86, 84, 86, 84, 80, 76, 74, 70):
        state, made = step(state, level_of(state, v, HYST, None), 0.0, P, prefix="k")
        events += [t.change for t in made]
    assert events == [Change.FIRE, Change.RESOLVE]


def test_flap_percent_follows_the_nagios_weights() -> None:
    steady = flap.push((), 0)
    assert flap.percent_state_change(steady) == 0.0
    alternating = tuple(i % 2 for i in range(21))
    assert flap.percent_state_change(alternating) == pytest.approx(100.0)
    newest_only = (*((0,) * 20), 1)
    assert flap.percent_state_change(newest_only) == pytest.approx(100 * 1.25 / 20)


def test_flapping_starts_at_the_high_and_stops_at_the_low_threshold() -> None:
    params = replace(P, flap_enabled=True)
    state = AlertState()
    changes = []
    for level in [WARN, OK] * 5 + [OK] * 20:
        state, made = step(state, level, 0.0, params, prefix="k")
        changes += [t.change for t in made if t.change in (Change.FLAP_START, Change.FLAP_END)]
    assert changes == [Change.FLAP_START, Change.FLAP_END]
    assert not state.flapping


def test_restore_within_the_outage_tolerance_moves_pending_since_forward() -> None:
    assert restore(PENDING, 300.0, 3600.0).pending_since == 300.0
    assert restore(FIRING_W, 300.0, 3600.0) == FIRING_W


def test_restore_after_a_long_outage_drops_pending_and_marks_firing_stale() -> None:
    assert restore(PENDING, 7200.0, 3600.0).phase == Phase.INACTIVE
    stale = restore(FIRING_W, 7200.0, 3600.0)
    assert stale.phase == Phase.FIRING and stale.stale
