"""Between the pipeline's memory and the store: what changed since the last commit, and the restore.

The pipeline marks what it may have changed in a :class:`Dirty`; :func:`changes` turns that
into one :class:`~monagent.store.Changes` (serialised at that moment, so a commit that
failed is retried later with the newest values). :func:`restore` rebuilds the memory at start.

Not every sample is worth a write. A :class:`Ledger` remembers, per key, what the store
holds as of the last commit that worked. A key goes into a cycle's transaction when a field
that decides what happens after a crash changed (phase, latched level, severity, incident
and seq, the streaks the machine will read, the pending/resolving/firing times, window, flap
history, reminders, suppression, what each receiver heard, ...: :func:`matters`). The fields that only describe the last sample
(:data:`VALUE_ONLY`: value, trend, facts, reason, details, last_sample_at) are written with
the next such write, else at most every :data:`VALUE_FLUSH_EVERY` seconds and at close; so is
the ``last_seen`` time of an occurrence seen again (it only feeds the 180-day ``seen_ttl``),
while a new occurrence or revision goes in with the outbox entry that announces it. After
a crash the restored keys then lose nothing but a last value at most that old, which the
next sample replaces; the lifecycle, the incidents and the reminder clock are exact. Meta
``last_eval_at`` (which the outage gap is measured from) is written with the first evaluation
after start, with any other write, and else with the periodic flush: a quiet agent commits about
once a minute, and a crash overstates the gap by at most that minute (``outage_tolerance`` is an hour).
"""

from __future__ import annotations

import operator
from dataclasses import dataclass, field, fields
from typing import Any, Callable, Dict, List, Mapping, Optional, Protocol, Set, Tuple

from monagent.alerting import codec
from monagent.alerting.machine import AlertState, Phase
from monagent.alerting.machine import restore as restore_state
from monagent.alerting.occurrences import SeenEntry
from monagent.alerting.policy import Heard
from monagent.alerting.silence_ack import Decision
from monagent.alerting.suppress import Ack, Silence
from monagent.events import AlertKey, Event
from monagent.lazylog import get_logger
from monagent.records import record
from monagent.store import Changes, StoredState


class Memory(Protocol):
    """What the pipeline holds in memory, as :func:`changes` reads it (the pipeline is one)."""

    states: Dict[AlertKey, AlertState]
    heard: Dict[AlertKey, Dict[str, Heard]]
    silences: Dict[str, Silence]
    acks: Dict[AlertKey, Ack]
    seen: Dict[str, Dict[str, SeenEntry]]


log = get_logger(__name__)

VALUE_FLUSH_EVERY = 60.0  # seconds between writes of keys whose last-sample fields alone changed
CLOCK_TOLERANCE = 1.0  # seconds the wall clock may move against the monotonic one before every key is rewritten
# Describe the last sample; nothing in the lifecycle or the notification policy reads them back.
VALUE_ONLY = ("value", "trend", "facts", "reason", "details", "last_sample_at")
# Compared to decide whether a value-only write is due; last_sample_at moves on every sample and only
# feeds the 7-day retention, so alone it is never worth a write (it rides along with any other).
_SHOWN = ("value", "trend", "facts", "reason", "details")


def _getter(names: Tuple[str, ...]) -> Callable[[AlertState], Tuple[Any, ...]]:
    get = operator.attrgetter(*names)
    return get if len(names) > 1 else (lambda state: (get(state),))


# The streaks the machine reads in only one phase (bad_streak: the fire condition in PENDING; good_streak: the
# clear condition in RESOLVING, entered with good_streak = 1). Elsewhere the next sample resets or overwrites
# them before any read, so a steady healthy key (good_streak + 1 every cycle) or a steady firing one
# (bad_streak + 1) is not rewritten every cycle; tests/test_alerting_persist.py pins this down.
_PHASE_STREAKS = ("bad_streak", "good_streak")
_BASE = _getter(tuple(f.name for f in fields(AlertState) if f.name not in VALUE_ONLY + _PHASE_STREAKS))
_SHOWN_OF = _getter(_SHOWN)


def matters(state: AlertState) -> Tuple[Any, ...]:
    """The fields whose stored copy must be current for a restart after a crash to behave as no crash."""
    return (
        *_BASE(state),
        state.bad_streak if state.phase == Phase.PENDING else None,
        state.good_streak if state.phase == Phase.RESOLVING else None,
    )


@dataclass
class Dirty:
    keys: Set[AlertKey] = field(default_factory=set)
    acks: Set[AlertKey] = field(default_factory=set)
    silences: Set[str] = field(default_factory=set)
    seen: Set[Tuple[str, str]] = field(default_factory=set)
    outbox: List[Tuple[str, Event]] = field(default_factory=list)
    meta: Dict[str, str] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return any((self.keys, self.acks, self.silences, self.seen, self.outbox, self.meta))


@record
class Written:
    """What the store holds for one key: the fields that matter, the shown ones, the heard records."""

    matters: Tuple[Any, ...]
    shown: Tuple[Any, ...]
    heard: Mapping[str, Heard]


@dataclass
class Ledger:
    """Per key, what the last commit that worked wrote (None: deleted); updated only after it worked."""

    flushed_at: float  # monotonic time of the last commit that wrote every value-only change
    offset: float  # wall - monotonic when every key was last written: the frame of the times on disk
    written: Dict[AlertKey, Written] = field(default_factory=dict)
    seen_behind: Set[Tuple[str, str]] = field(default_factory=set)  # seen entries whose last_seen alone moved

    def flush_due(self, mono: float) -> bool:
        return mono - self.flushed_at >= VALUE_FLUSH_EVERY

    def clock_moved(self, offset: float) -> bool:
        """The wall clock stepped (or drifted) by a second or more since every key was written: the times on
        disk are wall-clock seconds, so every key has to be written again in the new frame."""
        if abs(offset - self.offset) < CLOCK_TOLERANCE:
            return False
        self.written.clear()
        return True

    def record(self, update: Mapping[AlertKey, Optional[Written]], flushed: bool, mono: float, offset: float) -> None:
        for key, written in update.items():
            if written is None:
                self.written.pop(key, None)
            else:
                self.written[key] = written
        if flushed:
            self.flushed_at = mono
            self.seen_behind.clear()
            if not self.written.keys() - update.keys():  # every key in this frame
                self.offset = offset


@dataclass
class Restored:
    states: Dict[AlertKey, AlertState]
    heard: Dict[AlertKey, Dict[str, Heard]]
    silences: Dict[str, Silence]
    acks: Dict[AlertKey, Ack]
    seen: Dict[str, Dict[str, SeenEntry]]
    gap: float


def restore(stored: StoredState, now: float, mono: float, tolerance: float) -> Restored:
    """Wall-clock times on disk become monotonic ones; the outage gap is applied (d.8)."""
    offset = now - mono
    last = float(stored.meta.get("last_eval_at", now))
    gap = max(0.0, now - last)  # a clock stepped backwards counts as no gap
    states: Dict[AlertKey, AlertState] = {}
    for key_id, text in stored.alerts.items():
        try:
            states[AlertKey.from_id(key_id)] = restore_state(codec.state_from_json(text, offset), gap, tolerance)
        except (ValueError, KeyError, TypeError, IndexError) as exc:  # one bad row must not stop the agent
            log.error("alert state %r in the store cannot be read (%s); that key starts fresh", key_id, exc)
    heard = {
        AlertKey.from_id(k): {r: codec.heard_from_json(t) for r, t in by_receiver.items()}
        for k, by_receiver in stored.heard.items()
    }
    silences = {s.id: s for s in (Silence.from_json(codec.json_loads(t)) for t in stored.silences.values())}
    acks = {a.key: a for a in (Ack.from_json(codec.json_loads(t)) for t in stored.acks.values())}
    seen: Dict[str, Dict[str, SeenEntry]] = {}
    for (check, ident), (revision, first, last_seen) in stored.seen.items():
        seen.setdefault(check, {})[ident] = SeenEntry(revision, first, last_seen)
    return Restored(states, heard, silences, acks, seen, gap)


def changes(
    dirty: Dirty, memory: Memory, offset: float, ledger: Ledger, flush: bool
) -> Tuple[Changes, Dict[AlertKey, Optional[Written]]]:
    """The writes for everything marked dirty that differs from what the store holds, from the pipeline's
    current memory; with ``flush`` also every key whose shown fields alone changed. Returns them and the
    ledger update to :meth:`Ledger.record` once they are committed."""
    result = Changes(meta=dict(dirty.meta))
    update: Dict[AlertKey, Optional[Written]] = {}
    for key in (set(dirty.keys) | set(memory.states)) if flush else dirty.keys:
        state = memory.states.get(key)
        if state is None:  # retired or pruned (only a dirty key can be missing)
            update[key] = None
            result.alerts[key.as_id()] = None
            result.heard[key.as_id()] = {}
            continue
        written = _due(key, state, memory.heard.get(key, {}), ledger, flush)
        if written is None:
            continue
        update[key] = written
        result.alerts[key.as_id()] = codec.state_to_json(state, offset)
        if key not in ledger.written or written.heard != ledger.written[key].heard:
            result.heard[key.as_id()] = {r: codec.heard_to_json(h) for r, h in written.heard.items()}
    for key in dirty.acks:
        ack = memory.acks.get(key)
        result.acks[key.as_id()] = None if ack is None else ack_row(ack)
    for ident in dirty.silences:
        silence = memory.silences.get(ident)
        result.silences[ident] = None if silence is None else silence_row(silence)
    for check, ident in (dirty.seen | ledger.seen_behind) if flush else dirty.seen:
        entry = memory.seen.get(check, {}).get(ident)
        result.seen[(check, ident)] = None if entry is None else (entry.revision, entry.first_seen, entry.last_seen)
    result.outbox = [outbox_row(r, e) for r, e in dirty.outbox]
    return result, update


def outbox_row(receiver: str, event: Event) -> Tuple[str, str, float]:
    """The store's row of an event queued for ``receiver``: receiver, its JSON, created (the bounds).
    Read back by :class:`monagent.alerting.outbox.EventOutbox`."""
    return receiver, codec.event_to_json(event), event.time


def silence_row(silence: Silence) -> Tuple[str, float]:
    """The store's row of a silence: its JSON and its end (retention)."""
    return codec.json_dumps(silence.to_json()), silence.ends_at


def ack_row(ack: Ack) -> str:
    return codec.json_dumps(ack.to_json())


def decision_changes(decision: Decision) -> Changes:
    """The writes of one decided silence or ack request, as the pipeline's commit would make them."""
    result = Changes()
    if decision.silence is not None:
        result.silences[decision.silence.id] = silence_row(decision.silence)
    if decision.ack is not None:
        result.acks[decision.ack.key.as_id()] = ack_row(decision.ack)
    return result


def _due(key: AlertKey, state: AlertState, heard: Mapping[str, Heard], ledger: Ledger, flush: bool) -> Optional[Written]:
    """The key's new :class:`Written` when it has to be written now, else None."""
    before = ledger.written.get(key)
    matters_now = matters(state)
    if before is not None and matters_now == before.matters and heard == before.heard:
        if not flush:
            return None
        shown = _SHOWN_OF(state)
        if shown == before.shown:
            return None
        return Written(matters_now, shown, dict(heard))
    return Written(matters_now, _SHOWN_OF(state), dict(heard))
