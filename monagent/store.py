"""The durable store: one SQLite database in the state directory (docs/design/alerting.md d.8).

WAL mode with ``synchronous=FULL``; the schema has a version (``PRAGMA user_version``)
and migrations. It holds alert states, what each receiver heard, the outbox per
receiver, silences, acks, the occurrence seen set, agent metadata, receiver health
and a small key-value table for receivers. One connection behind a lock serves the
scheduler thread (one transaction per cycle, :meth:`Store.commit`) and the delivery
thread (:meth:`Store.pending_rows`, :meth:`Store.complete`, :meth:`Store.defer` ...).

The store keeps rows, never the things in them: an outbox entry is committed as text and
read back as an :class:`OutboxRow` with that text. What the text means (the event format) is
the alerting layer's business (``monagent.alerting.outbox`` decodes rows into events).

A database that cannot be read is moved aside with a loud log line and the store
starts empty (``was_reset``). A failed write (disk full, read-only directory)
raises :class:`StoreUnavailable`; the caller keeps its changes and tries again.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Sequence, Set, Tuple

from monagent.lazylog import get_logger
from monagent.records import record

if TYPE_CHECKING:
    import sqlite3

    from monagent.events import ReceiverHealth

log = get_logger(__name__)

DB_NAME = "state.db"

MIGRATIONS: Tuple[str, ...] = (
    # 1: the core tables
    """
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE alerts (key TEXT PRIMARY KEY, state TEXT NOT NULL);
    CREATE TABLE heard (key TEXT NOT NULL, receiver TEXT NOT NULL, state TEXT NOT NULL,
                        PRIMARY KEY (key, receiver));
    CREATE TABLE outbox (seq INTEGER PRIMARY KEY AUTOINCREMENT, receiver TEXT NOT NULL, event TEXT NOT NULL,
                         created REAL NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,
                         not_before REAL NOT NULL DEFAULT 0);
    CREATE INDEX outbox_receiver ON outbox (receiver, seq);
    CREATE TABLE silences (id TEXT PRIMARY KEY, data TEXT NOT NULL, ends_at REAL NOT NULL);
    CREATE TABLE acks (key TEXT PRIMARY KEY, data TEXT NOT NULL);
    CREATE TABLE seen (check_name TEXT NOT NULL, id TEXT NOT NULL, revision TEXT NOT NULL,
                       first_seen REAL NOT NULL, last_seen REAL NOT NULL, PRIMARY KEY (check_name, id));
    CREATE TABLE receiver_health (receiver TEXT PRIMARY KEY, data TEXT NOT NULL);
    """,
    # 2: drop counters per receiver and a key-value table for receivers (Alertmanager's re-post state)
    """
    ALTER TABLE receiver_health ADD COLUMN dropped_total INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE receiver_health ADD COLUMN dropped_unreported INTEGER NOT NULL DEFAULT 0;
    CREATE TABLE kv (namespace TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL,
                     PRIMARY KEY (namespace, key));
    """,
    # 3: events carry structure (a reason by message id, typed facts: alerting/codec.py EVENT_FORMAT 2);
    # queued entries written before are marked format 1 and are still delivered as they were written
    """
    UPDATE outbox SET event = json_set(event, '$.format', 1) WHERE json_extract(event, '$.format') IS NULL;
    """,
)
SCHEMA_VERSION = len(MIGRATIONS)


class StoreError(Exception):
    """The store cannot be used at all (a schema newer than this monagent, no state directory)."""


class StoreUnavailable(StoreError):
    """A write failed (disk full, read-only state directory); nothing of it was kept."""


class StoreBroken(StoreError):
    """A write failed for a reason other than space or permissions (a constraint, a bug): nothing of it
    was kept, and retrying the same changes will fail again. Delivery has stopped; say so loudly."""


# What SQLite says when the disk or the directory refuses a write: waiting may cure these.
_DISK_TROUBLE = ("disk", "full", "readonly", "read-only", "unable to open", "i/o", "locked", "busy", "out of memory")


def _disk_trouble(exc: Exception) -> bool:
    import sqlite3

    return isinstance(exc, sqlite3.OperationalError) and any(word in str(exc).lower() for word in _DISK_TROUBLE)


@dataclass
class Changes:
    """One cycle's writes, applied in one transaction by :meth:`Store.commit`. None deletes."""

    alerts: Dict[str, Optional[str]] = field(default_factory=dict)
    heard: Dict[str, Dict[str, str]] = field(default_factory=dict)  # key -> receiver -> json (replaces all)
    outbox: List[Tuple[str, str, float]] = field(default_factory=list)  # receiver, entry text, created
    seen: Dict[Tuple[str, str], Optional[Tuple[str, float, float]]] = field(default_factory=dict)
    silences: Dict[str, Optional[Tuple[str, float]]] = field(default_factory=dict)  # id -> (json, ends_at)
    acks: Dict[str, Optional[str]] = field(default_factory=dict)
    meta: Dict[str, str] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return any((self.alerts, self.heard, self.outbox, self.seen, self.silences, self.acks, self.meta))


@record
class StoredState:
    """Everything the pipeline restores at start (and ``monagent status`` shows)."""

    alerts: Dict[str, str]
    heard: Dict[str, Dict[str, str]]
    silences: Dict[str, str]
    acks: Dict[str, str]
    seen: Dict[Tuple[str, str], Tuple[str, float, float]]
    meta: Dict[str, str]


@record
class OutboxRow:
    """One queued outbox entry as the store keeps it: ``text`` is what was committed, unread.

    ``durable`` is False for an entry held in memory while the database refused writes (its
    ``seq`` is negative): delivered from memory, or committed with the next successful commit."""

    seq: int
    receiver: str
    text: str
    attempts: int = 0
    not_before: float = 0.0
    durable: bool = True


@record
class Bounds:
    max_entries: int = 10_000
    max_age: float = 7 * 86400.0


def _connect(uri: str) -> sqlite3.Connection:
    import sqlite3

    conn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False, timeout=10.0)
    return conn


class Store:
    """The SQLite store. Its outbox methods deal in rows; ``monagent.alerting.outbox.EventOutbox``
    makes them the :class:`~monagent.notify.base.Outbox` delivery uses."""

    def __init__(
        self,
        path: Path,
        conn: sqlite3.Connection,
        *,
        read_only: bool = False,
        was_reset: bool = False,
        moved_to: Optional[Path] = None,
    ) -> None:
        self.path = path
        self._conn: Optional[sqlite3.Connection] = conn
        self._lock = threading.RLock()
        self.read_only = read_only
        self.was_reset = was_reset
        self.moved_to = moved_to
        self.bounds = Bounds()
        self.writable = not read_only
        self._done: Dict[str, Set[int]] = {}  # completed or dropped while the disk refused writes
        # Entries that could not be committed, handed to receivers that need no durable outbox
        # (negative seqs) with their creation time; whatever is still here at the next successful
        # commit goes into the outbox.
        self._volatile: Dict[str, List[Tuple[OutboxRow, float]]] = {}
        self._volatile_seq = 0

    # ------------------------------------------------------------ opening
    @classmethod
    def open(cls, state_dir: Path, bounds: Optional[Bounds] = None) -> Store:
        """Open (creating or migrating) the database; a corrupt one is moved aside and replaced."""
        state_dir = Path(state_dir)
        try:
            if not state_dir.is_dir():
                state_dir.mkdir(parents=True, exist_ok=True, mode=0o750)
        except OSError as exc:
            raise StoreError(f"cannot create the state directory {state_dir}: {exc.strerror or exc}") from None
        path = state_dir / DB_NAME
        try:
            store = cls(path, cls._open_rw(path))
        except _Corrupt as exc:
            moved = _move_aside(path)
            log.error(
                "STATE RESET: the state database %s could not be read (%s); it was moved to %s and monagent "
                "starts with empty state",
                path,
                exc,
                moved,
            )
            store = cls(path, cls._open_rw(path), was_reset=True, moved_to=moved)
        except _Unwritable as exc:
            log.error(
                "the state database %s cannot be written (%s); checks keep running and events are held in memory until it can",
                path,
                exc,
            )
            store = cls(path, cls._open_ro_or_memory(path), read_only=False)
            store.writable = False
        if bounds is not None:
            store.bounds = bounds
        return store

    @classmethod
    def _open_rw(cls, path: Path) -> sqlite3.Connection:
        import sqlite3

        try:
            # Created 0600 (SQLite gives its -wal and -shm the same mode): alerts, silences and
            # receiver errors are nobody else's business.
            os.close(os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600))
        except FileExistsError:
            pass
        except OSError as exc:
            raise _Unwritable(exc.strerror or str(exc)) from None
        try:
            conn = _connect(f"file:{path}?mode=rwc")
        except sqlite3.OperationalError as exc:
            raise _Unwritable(str(exc)) from None
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            if conn.execute("PRAGMA quick_check").fetchone()[0] != "ok":
                raise _Corrupt("integrity check failed")
            _migrate(conn, path)
        except sqlite3.OperationalError as exc:
            conn.close()
            if "readonly" in str(exc) or "disk" in str(exc) or "unable to open" in str(exc):
                raise _Unwritable(str(exc)) from None
            raise _Corrupt(str(exc)) from None
        except sqlite3.DatabaseError as exc:
            conn.close()
            raise _Corrupt(str(exc)) from None
        except (_Corrupt, StoreError):
            conn.close()
            raise
        return conn

    @classmethod
    def _open_ro_or_memory(cls, path: Path) -> sqlite3.Connection:
        import sqlite3

        if path.exists():
            try:
                conn = _connect(f"file:{path}?mode=ro")
                conn.execute("SELECT count(*) FROM alerts").fetchone()
                return conn
            except sqlite3.Error:
                pass
        conn = _connect(":memory:")
        _migrate(conn, path)
        return conn

    @classmethod
    def open_readonly(cls, state_dir: Path) -> Store:
        """For ``monagent status``: never creates a file in the state directory (no -wal, no -shm)."""
        import sqlite3

        path = Path(state_dir) / DB_NAME
        if not path.exists():
            raise StoreError(f"no state database at {path} (has the agent run yet?)")
        wal_files = Path(f"{path}-wal").exists() and Path(f"{path}-shm").exists()
        uri = f"file:{path}?mode=ro" if wal_files else f"file:{path}?immutable=1"
        try:
            conn = _connect(uri)
            version = conn.execute("PRAGMA user_version").fetchone()[0]
        except sqlite3.Error as exc:
            raise StoreError(f"cannot read the state database {path}: {exc}") from None
        if version != SCHEMA_VERSION:
            conn.close()
            raise StoreError(
                f"the state database {path} has schema version {version}; this monagent reads "
                f"version {SCHEMA_VERSION} (run the agent once to migrate it)"
            )
        return cls(path, conn, read_only=True)

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    @property
    def conn(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StoreError("the store is closed")
        return self._conn

    # ------------------------------------------------------------ writing a cycle
    def commit(self, changes: Changes, now: float) -> int:
        """Apply ``changes`` in one transaction; returns how many outbox entries the bound dropped."""
        import sqlite3

        with self._lock:
            if not self.writable and not self._reopen():
                raise StoreUnavailable(f"{self.path} is still not writable")
            try:
                self.conn.execute("BEGIN IMMEDIATE")
                volatile = self._volatile_rows()  # older than this cycle's entries: they go in first
                self.conn.executemany("INSERT INTO outbox (receiver, event, created) VALUES (?, ?, ?)", volatile)
                self._apply(changes)
                dropped = self._enforce_bounds({r for r, _, _ in changes.outbox + volatile}, now)
                self._flush_done()
                self.conn.execute("COMMIT")
            except sqlite3.Error as exc:
                self._rollback()
                if not _disk_trouble(exc):
                    raise StoreBroken(f"{type(exc).__name__}: {exc}") from None
                if self.writable:
                    log.error(
                        "the state database %s cannot be written (%s); events are held in memory until it can", self.path, exc
                    )
                self.writable = False
                raise StoreUnavailable(str(exc)) from None
            if not self.writable:
                log.warning("the state database %s is writable again; held events were committed", self.path)
            self.writable = True
            self._volatile.clear()
            return dropped

    # ------------------------------------------------------------ delivery without a durable outbox
    def hold_volatile(self, receiver: str, text: str, created: float) -> None:
        """Queue an entry (``text``, as an outbox row of :class:`Changes` has it) in memory for ``receiver``
        while the database refuses writes: read back with ``durable`` False, or committed to the outbox
        with the next successful commit."""
        with self._lock:
            self._volatile_seq -= 1
            row = OutboxRow(self._volatile_seq, receiver, text, durable=False)
            self._volatile.setdefault(receiver, []).append((row, created))

    def _volatile_rows(self) -> List[Tuple[str, str, float]]:
        return [(row.receiver, row.text, created) for held in self._volatile.values() for row, created in held]

    def _volatile_pending(self, receiver: str, now: float) -> List[OutboxRow]:
        return [row for row, _ in self._volatile.get(receiver, ()) if row.not_before <= now]

    def _settle_volatile(self, receiver: str, seqs: Sequence[int], not_before: Optional[float] = None) -> List[int]:
        """Complete (or defer) the volatile ones among ``seqs``; returns the durable rest."""
        from dataclasses import replace

        mine = {s for s in seqs if s < 0}
        if mine and receiver in self._volatile:
            if not_before is None:
                self._volatile[receiver] = [(r, c) for r, c in self._volatile[receiver] if r.seq not in mine]
            else:
                self._volatile[receiver] = [
                    (replace(r, attempts=r.attempts + 1, not_before=not_before) if r.seq in mine else r, c)
                    for r, c in self._volatile[receiver]
                ]
        return [s for s in seqs if s >= 0]

    def _rollback(self) -> None:
        import sqlite3

        try:
            self.conn.execute("ROLLBACK")
        except sqlite3.Error:
            pass  # no transaction was open

    def _reopen(self) -> bool:
        """After a failed write: replace the connection (read-only, in memory, or failing) by a writable one."""
        try:
            conn = self._open_rw(self.path)
        except (_Unwritable, _Corrupt, StoreError):
            return False
        old, self._conn = self._conn, conn
        if old is not None:
            old.close()
        return True

    def _apply(self, c: Changes) -> None:
        db = self.conn
        for key, text in c.alerts.items():
            if text is None:
                db.execute("DELETE FROM alerts WHERE key = ?", (key,))
            else:
                db.execute("INSERT OR REPLACE INTO alerts (key, state) VALUES (?, ?)", (key, text))
        for key, by_receiver in c.heard.items():
            db.execute("DELETE FROM heard WHERE key = ?", (key,))
            db.executemany(
                "INSERT INTO heard (key, receiver, state) VALUES (?, ?, ?)", [(key, r, t) for r, t in by_receiver.items()]
            )
        db.executemany("INSERT INTO outbox (receiver, event, created) VALUES (?, ?, ?)", c.outbox)
        for (check, ident), row in c.seen.items():
            if row is None:
                db.execute("DELETE FROM seen WHERE check_name = ? AND id = ?", (check, ident))
            else:
                db.execute("INSERT OR REPLACE INTO seen VALUES (?, ?, ?, ?, ?)", (check, ident, *row))
        for ident, silence in c.silences.items():
            if silence is None:
                db.execute("DELETE FROM silences WHERE id = ?", (ident,))
            else:
                db.execute("INSERT OR REPLACE INTO silences VALUES (?, ?, ?)", (ident, *silence))
        for key, text in c.acks.items():
            if text is None:
                db.execute("DELETE FROM acks WHERE key = ?", (key,))
            else:
                db.execute("INSERT OR REPLACE INTO acks VALUES (?, ?)", (key, text))
        db.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)", list(c.meta.items()))

    def _enforce_bounds(self, receivers: Set[str], now: float) -> int:
        db = self.conn
        total = 0
        for (receiver,) in db.execute("SELECT DISTINCT receiver FROM outbox").fetchall():
            old = db.execute(
                "DELETE FROM outbox WHERE receiver = ? AND created < ?", (receiver, now - self.bounds.max_age)
            ).rowcount
            extra = 0
            if receiver in receivers:
                count = db.execute("SELECT count(*) FROM outbox WHERE receiver = ?", (receiver,)).fetchone()[0]
                if count > self.bounds.max_entries:
                    extra = db.execute(
                        "DELETE FROM outbox WHERE seq IN (SELECT seq FROM outbox WHERE receiver = ? ORDER BY seq LIMIT ?)",
                        (receiver, count - self.bounds.max_entries),
                    ).rowcount
            if old + extra:
                log.warning("outbox of receiver %s over its bound: %d oldest entries dropped", receiver, old + extra)
                self._count_dropped(receiver, old + extra)
                total += old + extra
        return total

    def _count_dropped(self, receiver: str, count: int) -> None:
        self.conn.execute(
            "INSERT INTO receiver_health (receiver, data, dropped_total, dropped_unreported) VALUES (?, '{}', ?, ?) "
            "ON CONFLICT(receiver) DO UPDATE SET dropped_total = dropped_total + excluded.dropped_total, "
            "dropped_unreported = dropped_unreported + excluded.dropped_unreported",
            (receiver, count, count),
        )

    def _flush_done(self) -> None:
        for receiver, seqs in list(self._done.items()):
            self.conn.executemany("DELETE FROM outbox WHERE receiver = ? AND seq = ?", [(receiver, s) for s in seqs])
        self._done.clear()

    # ------------------------------------------------------------ reading
    def load(self) -> StoredState:
        with self._lock:
            db = self.conn
            heard: Dict[str, Dict[str, str]] = {}
            for key, receiver, text in db.execute("SELECT key, receiver, state FROM heard"):
                heard.setdefault(key, {})[receiver] = text
            return StoredState(
                alerts=dict(db.execute("SELECT key, state FROM alerts").fetchall()),
                heard=heard,
                silences=dict(db.execute("SELECT id, data FROM silences").fetchall()),
                acks=dict(db.execute("SELECT key, data FROM acks").fetchall()),
                seen={(c, i): (r, f, last) for c, i, r, f, last in db.execute("SELECT * FROM seen")},
                meta=dict(db.execute("SELECT key, value FROM meta").fetchall()),
            )

    def meta(self) -> Dict[str, str]:
        """The ``meta`` rows alone (boot id, how the last boot ended): what ``monagent check`` shows
        without reading every alert, silence and seen record as :meth:`load` does."""
        with self._lock:
            return dict(self.conn.execute("SELECT key, value FROM meta").fetchall())

    def receivers_with_entries(self) -> List[str]:
        with self._lock:
            return [r for (r,) in self.conn.execute("SELECT DISTINCT receiver FROM outbox ORDER BY receiver")]

    # ------------------------------------------------------------ the outbox, for delivery
    def pending_rows(self, receiver: str, now: float, limit: int = 10_000) -> List[OutboxRow]:
        """Queued rows of ``receiver`` whose ``not_before`` <= now, oldest first; the ones held in
        memory (not durable) after the committed ones."""
        with self._lock:
            rows = self.conn.execute(
                "SELECT seq, event, attempts, not_before FROM outbox WHERE receiver = ? AND not_before <= ? ORDER BY seq LIMIT ?",
                (receiver, now, limit),
            ).fetchall()
            done = self._done.get(receiver, set())
            volatile = self._volatile_pending(receiver, now)
        return [
            OutboxRow(seq, receiver, text, attempts, not_before) for seq, text, attempts, not_before in rows if seq not in done
        ] + volatile

    def queued_count(self, receiver: str) -> int:
        with self._lock:
            count = self.conn.execute("SELECT count(*) FROM outbox WHERE receiver = ?", (receiver,)).fetchone()[0]
            return int(count) - len(self._done.get(receiver, ())) + len(self._volatile.get(receiver, ()))

    def next_not_before(self, receiver: str, now: float) -> Optional[float]:
        """The earliest ``not_before`` after ``now`` among ``receiver``'s queued rows (None: none deferred)."""
        with self._lock:
            done = self._done.get(receiver, set())
            rows = self.conn.execute(
                "SELECT seq, not_before FROM outbox WHERE receiver = ? AND not_before > ? ORDER BY not_before",
                (receiver, now),
            ).fetchall()
            times = [nb for seq, nb in rows if seq not in done][:1]
            times += [row.not_before for row, _ in self._volatile.get(receiver, ()) if row.not_before > now]
        return min(times) if times else None

    def complete(self, receiver: str, seqs: Sequence[int]) -> None:
        with self._lock:
            seqs = self._settle_volatile(receiver, seqs)
        self._write_or_hold(
            receiver,
            seqs,
            lambda db: db.executemany("DELETE FROM outbox WHERE receiver = ? AND seq = ?", [(receiver, s) for s in seqs]),
        )

    def defer(self, receiver: str, seqs: Sequence[int], not_before: float) -> None:
        import sqlite3

        with self._lock:
            seqs = self._settle_volatile(receiver, seqs, not_before)
            try:
                self.conn.executemany(
                    "UPDATE outbox SET attempts = attempts + 1, not_before = ? WHERE receiver = ? AND seq = ?",
                    [(not_before, receiver, s) for s in seqs],
                )
            except sqlite3.Error as exc:
                log.warning("cannot record a retry time in %s (%s); the entries stay due", self.path, exc)

    def drop(self, receiver: str, seqs: Sequence[int], reason: str) -> None:
        def delete(db: Any) -> None:
            count = sum(db.execute("DELETE FROM outbox WHERE receiver = ? AND seq = ?", (receiver, s)).rowcount for s in seqs)
            self._count_dropped(receiver, count)

        if seqs:
            log.warning("dropping %d outbox entries of receiver %s: %s", len(seqs), receiver, reason)
        with self._lock:
            seqs = self._settle_volatile(receiver, seqs)
        self._write_or_hold(receiver, seqs, delete)

    def _write_or_hold(self, receiver: str, seqs: Sequence[int], write: Any) -> None:
        import sqlite3

        if not seqs:
            return
        with self._lock:
            try:
                self.conn.execute("BEGIN IMMEDIATE")
                write(self.conn)
                self.conn.execute("COMMIT")
            except sqlite3.Error as exc:
                self._rollback()
                log.warning("cannot remove delivered entries from %s (%s); they are held until it is writable", self.path, exc)
                self._done.setdefault(receiver, set()).update(seqs)

    def take_dropped_count(self, receiver: str) -> int:
        import sqlite3

        with self._lock:
            row = self.conn.execute("SELECT dropped_unreported FROM receiver_health WHERE receiver = ?", (receiver,)).fetchone()
            if not row or not row[0]:
                return 0
            try:
                self.conn.execute("UPDATE receiver_health SET dropped_unreported = 0 WHERE receiver = ?", (receiver,))
            except sqlite3.Error:
                return 0  # said next time, when the store can record that it was said
            return int(row[0])

    def health(self, receiver: str) -> ReceiverHealth:
        from monagent.events import ReceiverHealth  # here: `monagent check` opens the store, never the health

        with self._lock:
            row = self.conn.execute("SELECT data, dropped_total FROM receiver_health WHERE receiver = ?", (receiver,)).fetchone()
        if row is None:
            return ReceiverHealth(receiver)
        data = json.loads(row[0])
        data.pop("receiver", None)
        data["dropped"] = int(row[1])
        return ReceiverHealth(receiver, **data)

    def set_health(self, health: ReceiverHealth) -> None:
        import sqlite3

        from monagent.events import failure_streak

        with self._lock:
            try:
                since = failure_streak(self.health(health.receiver), health)
                data = {k: v for k, v in health.__dict__.items() if k not in ("receiver", "dropped")}
                data["failing_since"] = since
                self.conn.execute(
                    "INSERT INTO receiver_health (receiver, data) VALUES (?, ?) "
                    "ON CONFLICT(receiver) DO UPDATE SET data = excluded.data",
                    (health.receiver, json.dumps(data)),
                )
            except sqlite3.Error as exc:
                log.warning("cannot record the health of %s in %s (%s)", health.receiver, self.path, exc)

    # ------------------------------------------------------------ key-value for receivers
    def kv_get(self, namespace: str, key: str) -> Any:
        with self._lock:
            row = self.conn.execute("SELECT value FROM kv WHERE namespace = ? AND key = ?", (namespace, key)).fetchone()
        return None if row is None else json.loads(row[0])

    def kv_items(self, namespace: str) -> Dict[str, Any]:
        with self._lock:
            rows = self.conn.execute("SELECT key, value FROM kv WHERE namespace = ?", (namespace,)).fetchall()
        return {k: json.loads(v) for k, v in rows}

    def kv_set(self, namespace: str, key: str, value: Any) -> None:
        """Store a JSON value (None deletes it); committed before it returns, or logged when it cannot be."""
        import sqlite3

        with self._lock:
            try:
                if value is None:
                    self.conn.execute("DELETE FROM kv WHERE namespace = ? AND key = ?", (namespace, key))
                else:
                    self.conn.execute("INSERT OR REPLACE INTO kv VALUES (?, ?, ?)", (namespace, key, json.dumps(value)))
            except sqlite3.Error as exc:
                log.warning("cannot record %s/%s in %s (%s)", namespace, key, self.path, exc)


class _Corrupt(Exception):
    pass


class _Unwritable(Exception):
    pass


TABLES = frozenset(re.findall(r"CREATE TABLE (\w+)", "".join(MIGRATIONS)))


def _migrate(conn: sqlite3.Connection, path: Path) -> None:
    """Bring the schema up to date; a schema this monagent cannot use is :class:`_Corrupt` (moved aside)."""
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        raise _Corrupt(f"schema version {version} is newer than this monagent understands ({SCHEMA_VERSION})")
    for number in range(version, SCHEMA_VERSION):
        conn.execute("BEGIN IMMEDIATE")
        for statement in MIGRATIONS[number].split(";"):
            if statement.strip():
                conn.execute(statement)
        conn.execute(f"PRAGMA user_version = {number + 1}")
        conn.execute("COMMIT")
        if version:
            log.info("state database %s migrated to schema version %d", path, number + 1)
    present = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    missing = sorted(TABLES - present)
    if missing:
        raise _Corrupt(f"table {', '.join(missing)} missing")


def _move_aside(path: Path) -> Path:
    stamp = time.strftime("%Y%m%dT%H%M%S")
    target = path.with_name(f"{path.name}.corrupt-{stamp}")
    for suffix in ("", "-wal", "-shm"):
        source = Path(f"{path}{suffix}")
        if source.exists():
            os.replace(source, Path(f"{target}{suffix}"))
    return target


__all__ = ["Bounds", "Changes", "OutboxRow", "Store", "StoreBroken", "StoreError", "StoreUnavailable", "StoredState"]
