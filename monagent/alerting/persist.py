"""Between the pipeline's memory and the store: what changed since the last commit, and the restore.

The pipeline marks what it changes in a :class:`Dirty`; :func:`changes` turns that into
one :class:`~monagent.store.Changes` (serialised at that moment, so a commit that failed
is retried later with the newest values). :func:`restore` rebuilds the memory at start.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Dict, List, Set, Tuple

from monagent.alerting import codec
from monagent.alerting.machine import AlertState
from monagent.alerting.machine import restore as restore_state
from monagent.alerting.occurrences import SeenEntry
from monagent.alerting.policy import Heard
from monagent.alerting.suppress import Ack, Silence
from monagent.events import AlertKey, Event
from monagent.store import Changes, Snapshot

if TYPE_CHECKING:
    from monagent.alerting.pipeline import AlertPipeline

log = logging.getLogger(__name__)


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


@dataclass
class Restored:
    states: Dict[AlertKey, AlertState]
    heard: Dict[AlertKey, Dict[str, Heard]]
    silences: Dict[str, Silence]
    acks: Dict[AlertKey, Ack]
    seen: Dict[str, Dict[str, SeenEntry]]
    gap: float


def restore(snapshot: Snapshot, now: float, mono: float, tolerance: float) -> Restored:
    """Wall-clock times on disk become monotonic ones; the outage gap is applied (d.8)."""
    offset = now - mono
    last = float(snapshot.meta.get("last_eval_at", now))
    gap = max(0.0, now - last)  # a clock stepped backwards counts as no gap
    states: Dict[AlertKey, AlertState] = {}
    for key_id, text in snapshot.alerts.items():
        try:
            states[AlertKey.from_id(key_id)] = restore_state(codec.state_from_json(text, offset), gap, tolerance)
        except (ValueError, KeyError, TypeError, IndexError) as exc:  # one bad row must not stop the agent
            log.error("alert state %r in the store cannot be read (%s); that key starts fresh", key_id, exc)
    heard = {AlertKey.from_id(k): {r: codec.heard_from_json(t) for r, t in by_receiver.items()}
             for k, by_receiver in snapshot.heard.items()}
    silences = {s.id: s for s in (Silence.from_json(codec.json_loads(t)) for t in snapshot.silences.values())}
    acks = {a.key: a for a in (Ack.from_json(codec.json_loads(t)) for t in snapshot.acks.values())}
    seen: Dict[str, Dict[str, SeenEntry]] = {}
    for (check, ident), (revision, first, last_seen) in snapshot.seen.items():
        seen.setdefault(check, {})[ident] = SeenEntry(revision, first, last_seen)
    return Restored(states, heard, silences, acks, seen, gap)


def changes(dirty: Dirty, memory: AlertPipeline, offset: float) -> Changes:
    """The writes for everything marked dirty, from the pipeline's current memory."""
    result = Changes(meta=dict(dirty.meta))
    for key in dirty.keys:
        state = memory.states.get(key)
        result.alerts[key.as_id()] = None if state is None else codec.state_to_json(state, offset)
        result.heard[key.as_id()] = {r: codec.heard_to_json(h) for r, h in memory.heard.get(key, {}).items()}
    for key in dirty.acks:
        ack = memory.acks.get(key)
        result.acks[key.as_id()] = None if ack is None else codec.json_dumps(ack.to_json())
    for ident in dirty.silences:
        silence = memory.silences.get(ident)
        result.silences[ident] = None if silence is None else (codec.json_dumps(silence.to_json()), silence.ends_at)
    for check, ident in dirty.seen:
        entry = memory.seen.get(check, {}).get(ident)
        result.seen[(check, ident)] = None if entry is None else (entry.revision, entry.first_seen, entry.last_seen)
    result.outbox = [(r, codec.event_to_json(e), e.time) for r, e in dirty.outbox]
    return result
