"""Two small implementations of :class:`monagent.notify.base.Outbox` for the notifier tests:
one in memory, one in SQLite (for the SIGKILL test: survives the process).

Both follow the protocol exactly: ``pending`` returns queued entries whose ``not_before``
has passed, oldest first; ``complete`` removes; ``defer`` sets ``not_before`` and increments
``attempts``; ``drop`` removes and counts; ``take_dropped_count`` returns and resets the count.
tests/test_outbox_contract.py holds both, and the real store, to the same contract tests.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import asdict, replace
from pathlib import Path
from typing import Dict, List, Sequence

from monagent.api import Status
from monagent.events import AlertKey, Event, EventKind, OutboxEntry, ReceiverHealth


class MemoryOutbox:
    def __init__(self) -> None:
        self.entries: Dict[str, Dict[int, OutboxEntry]] = {}
        self.dropped: Dict[str, int] = {}
        self.dropped_reasons: List[str] = []
        self.completed: List[int] = []
        self.healths: Dict[str, ReceiverHealth] = {}
        self._seq = 0

    def add(self, receiver: str, *events: Event) -> List[int]:
        seqs = []
        for event in events:
            self._seq += 1
            self.entries.setdefault(receiver, {})[self._seq] = OutboxEntry(self._seq, receiver, event)
            seqs.append(self._seq)
        return seqs

    def pending(self, receiver: str, now: float, limit: int = 10_000) -> Sequence[OutboxEntry]:
        queued = sorted(self.entries.get(receiver, {}).values(), key=lambda e: e.seq)
        return [e for e in queued if e.not_before <= now][:limit]

    def queued_count(self, receiver: str) -> int:
        return len(self.entries.get(receiver, {}))

    def complete(self, receiver: str, seqs: Sequence[int]) -> None:
        for seq in seqs:
            if self.entries.get(receiver, {}).pop(seq, None) is not None:
                self.completed.append(seq)

    def defer(self, receiver: str, seqs: Sequence[int], not_before: float) -> None:
        queue = self.entries.get(receiver, {})
        for seq in seqs:
            if seq in queue:
                queue[seq] = replace(queue[seq], attempts=queue[seq].attempts + 1, not_before=not_before)

    def drop(self, receiver: str, seqs: Sequence[int], reason: str) -> None:
        queue = self.entries.get(receiver, {})
        gone = [seq for seq in seqs if queue.pop(seq, None) is not None]
        self.dropped[receiver] = self.dropped.get(receiver, 0) + len(gone)
        self.dropped_reasons.append(reason)

    def take_dropped_count(self, receiver: str) -> int:
        return self.dropped.pop(receiver, 0)

    def health(self, receiver: str) -> ReceiverHealth:
        return self.healths.get(receiver, ReceiverHealth(receiver))

    def set_health(self, health: ReceiverHealth) -> None:
        self.healths[health.receiver] = health


def event_to_json(event: Event) -> str:
    data = asdict(event)
    data["kind"] = event.kind.value
    data["severity"] = int(event.severity)
    data["key"] = event.key.as_id()
    data["trend"] = list(event.trend)
    data["facts"] = dict(event.facts)
    return json.dumps(data)


def event_from_json(text: str) -> Event:
    data = json.loads(text)
    data["kind"] = EventKind(data["kind"])
    data["severity"] = Status(data["severity"])
    data["key"] = AlertKey.from_id(data["key"])
    data["trend"] = tuple(data["trend"])
    return Event(**data)


class SqliteOutbox:
    """Every method commits before it returns (as the store's outbox does)."""

    def __init__(self, path: Path) -> None:
        self.conn = sqlite3.connect(str(path), isolation_level=None, timeout=10)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=FULL")
        self.conn.execute(
            "CREATE TABLE IF NOT EXISTS outbox (seq INTEGER PRIMARY KEY, receiver TEXT, event TEXT, "
            "attempts INTEGER DEFAULT 0, not_before REAL DEFAULT 0)"
        )
        self.conn.execute("CREATE TABLE IF NOT EXISTS dropped (receiver TEXT PRIMARY KEY, n INTEGER)")
        self.conn.execute("CREATE TABLE IF NOT EXISTS health (receiver TEXT PRIMARY KEY, data TEXT)")

    def close(self) -> None:
        self.conn.close()

    def add(self, receiver: str, *events: Event) -> None:
        with self.conn:
            self.conn.executemany(
                "INSERT INTO outbox (receiver, event) VALUES (?, ?)", [(receiver, event_to_json(e)) for e in events]
            )

    def pending(self, receiver: str, now: float, limit: int = 10_000) -> Sequence[OutboxEntry]:
        rows = self.conn.execute(
            "SELECT seq, event, attempts, not_before FROM outbox WHERE receiver = ? AND not_before <= ? ORDER BY seq LIMIT ?",
            (receiver, now, limit),
        ).fetchall()
        return [OutboxEntry(seq, receiver, event_from_json(ev), att, nb) for seq, ev, att, nb in rows]

    def queued_count(self, receiver: str) -> int:
        return int(self.conn.execute("SELECT count(*) FROM outbox WHERE receiver = ?", (receiver,)).fetchone()[0])

    def complete(self, receiver: str, seqs: Sequence[int]) -> None:
        with self.conn:
            self.conn.executemany("DELETE FROM outbox WHERE receiver = ? AND seq = ?", [(receiver, s) for s in seqs])

    def defer(self, receiver: str, seqs: Sequence[int], not_before: float) -> None:
        with self.conn:
            self.conn.executemany(
                "UPDATE outbox SET attempts = attempts + 1, not_before = ? WHERE receiver = ? AND seq = ?",
                [(not_before, receiver, s) for s in seqs],
            )

    def drop(self, receiver: str, seqs: Sequence[int], reason: str) -> None:
        with self.conn:
            self.complete(receiver, seqs)
            self.conn.execute(
                "INSERT INTO dropped VALUES (?, ?) ON CONFLICT(receiver) DO UPDATE SET n = n + ?",
                (receiver, len(seqs), len(seqs)),
            )

    def take_dropped_count(self, receiver: str) -> int:
        with self.conn:
            row = self.conn.execute("SELECT n FROM dropped WHERE receiver = ?", (receiver,)).fetchone()
            self.conn.execute("DELETE FROM dropped WHERE receiver = ?", (receiver,))
        return int(row[0]) if row else 0

    def health(self, receiver: str) -> ReceiverHealth:
        row = self.conn.execute("SELECT data FROM health WHERE receiver = ?", (receiver,)).fetchone()
        return ReceiverHealth(**json.loads(row[0])) if row else ReceiverHealth(receiver)

    def set_health(self, health: ReceiverHealth) -> None:
        with self.conn:
            self.conn.execute("INSERT OR REPLACE INTO health VALUES (?, ?)", (health.receiver, json.dumps(asdict(health))))
