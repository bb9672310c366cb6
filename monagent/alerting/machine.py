"""The alert lifecycle state machine (docs/design/alerting.md d.3-d.5): pure, no I/O, no clock reads.

:func:`step` takes one alert key's state, the level of one VALUE sample (already
latched with hysteresis by :func:`level_of`), the monotonic time and the key's
parameters, and returns the new state and the transitions it made. UNKNOWN
samples go through :func:`unknown`, which changes nothing but the unknown streak.
"""

from __future__ import annotations

import enum
import hashlib
from dataclasses import field, fields
from typing import Any, List, Mapping, Optional, Tuple

from monagent.alerting import flap
from monagent.alerting.config import AlertingOverrides
from monagent.api import Fact, Status, Threshold
from monagent.events import AlertKey
from monagent.formatting import Words
from monagent.records import record


class Phase(str, enum.Enum):
    INACTIVE = "inactive"
    PENDING = "pending"
    FIRING = "firing"
    RESOLVING = "resolving"

    @property
    def open(self) -> bool:
        """The group should consider this incident open (it fired and has not resolved)."""
        return self in (Phase.FIRING, Phase.RESOLVING)


class Change(str, enum.Enum):
    FIRE = "fire"
    ESCALATE = "escalate"
    DEESCALATE = "deescalate"
    RESOLVE = "resolve"
    FLAP_START = "flap_start"
    FLAP_END = "flap_end"


@record
class Transition:
    change: Change
    incident: str
    severity: Status


@record
class AlertState:
    """Everything the machine and the policy remember about one key; times are monotonic seconds."""

    phase: Phase = Phase.INACTIVE
    latched: Status = Status.OK
    severity: Status = Status.OK
    incident: str = ""
    incidents: int = 0  # how many incidents this key has had: the next id's number
    seq: int = 0  # events made for this key, ever: the second half of event ids
    bad_streak: int = 0
    good_streak: int = 0
    up_streak: int = 0
    down_streak: int = 0
    unknown_streak: int = 0
    pending_since: Optional[float] = None
    resolving_since: Optional[float] = None
    firing_since: Optional[float] = None  # when the problem began (the start of PENDING)
    window: Tuple[bool, ...] = ()
    flap_hist: Tuple[int, ...] = ()
    flapping: bool = False
    reminders_sent: int = 0
    last_notified_at: Optional[float] = None
    stale: bool = False
    suppressed: str = ""  # why notifications were last suppressed ("" = not suppressed)
    last_sample_at: Optional[float] = None
    # the last sample, for messages and ``monagent status``
    check_type: str = ""
    value: Optional[float] = None
    unit: str = ""
    threshold: Optional[Threshold] = None
    reason: Words = ""
    facts: Mapping[str, Fact] = field(default_factory=dict)
    details: str = ""
    trend: Tuple[float, ...] = ()
    discovered: bool = False


_FIELDS = frozenset(f.name for f in fields(AlertState))


def evolve(state: AlertState, **changes: Any) -> AlertState:
    """A copy of ``state`` with ``changes``: ``dataclasses.replace`` without its cost (it rebuilds all ~35
    fields through ``__init__``; every sample makes two or three new states, and this is the hot path)."""
    assert _FIELDS.issuperset(changes), f"AlertState has no field {set(changes) - _FIELDS}"
    new = object.__new__(AlertState)
    values = new.__dict__
    values.update(state.__dict__)
    values.update(changes)
    return new


def incident_prefix(key: AlertKey) -> str:
    return hashlib.sha1(key.as_id().encode(), usedforsecurity=False).hexdigest()[:8]


def level_of(state: AlertState, value: Optional[float], threshold: Optional[Threshold], verdict: Optional[Status]) -> Status:
    """The latched level of a VALUE sample: a verdict as given, a value through the Schmitt trigger."""
    if verdict is not None:
        return verdict if verdict != Status.UNKNOWN else state.latched
    if threshold is None or value is None:
        return state.latched
    return threshold.latch(value, state.latched)


def unknown(state: AlertState) -> AlertState:
    """An UNKNOWN sample keeps the last state (an error never resolves an alert)."""
    return evolve(state, unknown_streak=state.unknown_streak + 1)


@record
class _Sample:
    level: Status
    mono: float
    params: AlertingOverrides
    prefix: str
    hold: bool

    @property
    def bad(self) -> bool:
        return self.level >= Status.WARNING


def step(
    state: AlertState, level: Status, mono: float, params: AlertingOverrides, *, prefix: str, hold_fire: bool = False
) -> Tuple[AlertState, Tuple[Transition, ...]]:
    """One VALUE sample at ``level``. ``hold_fire`` (startup grace) defers any move into FIRING."""
    x = _Sample(level, mono, params, prefix, hold_fire)
    changes: List[Transition] = []
    s = _bookkeep(state, x, changes)
    if s.phase == Phase.INACTIVE:
        s = _from_inactive(s, x, changes)
    elif s.phase == Phase.PENDING:
        s = _from_pending(s, x, changes)
    elif s.phase == Phase.FIRING:
        s = _from_firing(s, x, changes)
    else:
        s = _from_resolving(s, x, changes)
    return s, tuple(changes)


def _bookkeep(state: AlertState, x: _Sample, changes: List[Transition]) -> AlertState:
    params = x.params
    hist = flap.push(state.flap_hist, int(x.level))
    flapping = flap.update(state.flapping, hist, params.flap_low, params.flap_high) if params.flap_enabled else False
    if flapping != state.flapping:
        changes.append(Transition(Change.FLAP_START if flapping else Change.FLAP_END, state.incident, x.level))
    window = (*state.window, x.bad)[-params.fire_window[1] :] if params.fire_window else ()
    return evolve(
        state,
        latched=x.level,
        flap_hist=hist,
        flapping=flapping,
        window=window,
        unknown_streak=0,
        stale=False,
        last_sample_at=x.mono,
        bad_streak=state.bad_streak + 1 if x.bad else 0,
        good_streak=state.good_streak + 1 if not x.bad else 0,
    )


def _fire_condition(s: AlertState, x: _Sample) -> bool:
    if x.hold:
        return False
    if x.params.fire_window:
        return sum(s.window) >= x.params.fire_window[0]
    since = x.mono if s.pending_since is None else s.pending_since
    return s.bad_streak >= x.params.fire_after_cycles and x.mono - since >= x.params.fire_after


def _clear_condition(s: AlertState, x: _Sample) -> bool:
    since = x.mono if s.resolving_since is None else s.resolving_since
    return s.good_streak >= x.params.clear_after_cycles and x.mono - since >= x.params.keep_firing_for


def _fire(s: AlertState, x: _Sample, changes: List[Transition]) -> AlertState:
    number = s.incidents + 1
    incident = f"{x.prefix}-{number}"
    changes.append(Transition(Change.FIRE, incident, x.level))
    since = x.mono if s.pending_since is None else s.pending_since
    return evolve(
        s,
        phase=Phase.FIRING,
        incident=incident,
        incidents=number,
        severity=x.level,
        firing_since=since,
        reminders_sent=0,
        up_streak=0,
        down_streak=0,
        resolving_since=None,
    )


def _to_inactive(s: AlertState) -> AlertState:
    return evolve(
        s,
        phase=Phase.INACTIVE,
        severity=Status.OK,
        incident="",
        pending_since=None,
        resolving_since=None,
        reminders_sent=0,
        up_streak=0,
        down_streak=0,
        stale=False,
        last_notified_at=None,
    )


def _from_inactive(s: AlertState, x: _Sample, changes: List[Transition]) -> AlertState:
    if not x.bad:
        return s
    s = evolve(s, phase=Phase.PENDING, pending_since=x.mono, bad_streak=1)
    return _fire(s, x, changes) if _fire_condition(s, x) else s


def _from_pending(s: AlertState, x: _Sample, changes: List[Transition]) -> AlertState:
    if x.bad:
        return _fire(s, x, changes) if _fire_condition(s, x) else s
    if x.params.fire_window and any(s.window):
        return s
    return evolve(s, phase=Phase.INACTIVE, pending_since=None)


def _severity_change(s: AlertState, x: _Sample, changes: List[Transition]) -> AlertState:
    """A bad sample while the incident is open: escalate at once, de-escalate when confirmed."""
    level = x.level
    if level > s.severity:
        if s.up_streak + 1 >= x.params.escalate_after_cycles:
            changes.append(Transition(Change.ESCALATE, s.incident, level))
            return evolve(s, severity=level, up_streak=0, down_streak=0)
        return evolve(s, up_streak=s.up_streak + 1, down_streak=0)
    if level < s.severity:
        if s.down_streak + 1 >= x.params.deescalate_cycles:
            changes.append(Transition(Change.DEESCALATE, s.incident, level))
            return evolve(s, severity=level, up_streak=0, down_streak=0)
        return evolve(s, down_streak=s.down_streak + 1, up_streak=0)
    return evolve(s, up_streak=0, down_streak=0)


def _resolve(s: AlertState, changes: List[Transition]) -> AlertState:
    changes.append(Transition(Change.RESOLVE, s.incident, s.severity))
    return _to_inactive(s)


def _from_firing(s: AlertState, x: _Sample, changes: List[Transition]) -> AlertState:
    if x.bad:
        return _severity_change(s, x, changes)
    s = evolve(s, phase=Phase.RESOLVING, resolving_since=x.mono, good_streak=1, up_streak=0, down_streak=0)
    return _resolve(s, changes) if _clear_condition(s, x) else s


def _from_resolving(s: AlertState, x: _Sample, changes: List[Transition]) -> AlertState:
    if x.bad:
        return _severity_change(evolve(s, phase=Phase.FIRING, resolving_since=None), x, changes)
    return _resolve(s, changes) if _clear_condition(s, x) else s


def restore(state: AlertState, gap: float, tolerance: float) -> AlertState:
    """After a restart ``gap`` seconds after the last evaluation (d.8)."""
    if gap > tolerance:
        if state.phase == Phase.PENDING:
            return evolve(state, phase=Phase.INACTIVE, pending_since=None, bad_streak=0, window=())
        return evolve(state, stale=state.phase.open)
    if state.phase == Phase.PENDING and state.pending_since is not None:
        return evolve(state, pending_since=state.pending_since + gap)  # downtime does not count
    return state
