"""The SQLite store: schema and migrations, the outbox protocol and its bound, corruption, restore,
read-only access for the CLI, and a full or read-only state directory (in a private mount namespace)."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import List

import events_factory
import pytest
from alerting_helpers import Clock, config, drain, open_pipeline, run, value
from conftest import NOBODY, ROOT, run_as
from outboxes import queue

from monagent.alerting.codec import event_to_json
from monagent.api import Formatter
from monagent.events import Event, ReceiverHealth
from monagent.store import MIGRATIONS, SCHEMA_VERSION, Bounds, Changes, OutboxRow, Store


def event(n: int, t: float = 1000.0) -> Event:
    return events_factory.event(check="load", subject="", metric="value", time=t, incident="i-1", seq=n, summary=f"event {n}")


def enqueue(store: Store, *events: Event, receiver: str = "console", now: float = 1000.0) -> int:
    return queue(store, receiver, *events, now=now)


def texts(rows: List[OutboxRow]) -> List[str]:
    return [row.text for row in rows]


def test_a_new_store_uses_wal_full_sync_and_the_current_schema(tmp_path: Path) -> None:
    store = Store.open(tmp_path)
    try:
        assert store.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert store.conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
        assert store.conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 3
    finally:
        store.close()


def test_a_version_1_database_is_migrated_and_keeps_its_rows(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "state.db")
    conn.executescript(MIGRATIONS[0] + "PRAGMA user_version = 1;")
    conn.execute("INSERT INTO alerts VALUES ('load\x1f\x1fvalue', '{\"phase\": \"firing\"}')")
    conn.execute("INSERT INTO receiver_health VALUES ('console', '{\"sent\": 4}')")
    conn.commit()
    conn.close()
    store = Store.open(tmp_path)
    try:
        assert store.conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert store.load().alerts == {"load\x1f\x1fvalue": '{"phase": "firing"}'}
        assert store.health("console") == ReceiverHealth("console", sent=4)
        store.kv_set("alertmanager", "load", {"startsAt": 1.0})
        assert store.kv_get("alertmanager", "load") == {"startsAt": 1.0}
    finally:
        store.close()


def _newer_schema(db: Path) -> None:
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE future (x)")
    conn.execute("PRAGMA user_version = 99")
    conn.close()


def _missing_table(db: Path) -> None:
    Store.open(db.parent).close()
    conn = sqlite3.connect(db)
    conn.execute("DROP TABLE silences")
    conn.close()


@pytest.mark.parametrize(
    "damage, why",
    [(_newer_schema, "schema version 99 is newer than this monagent understands"), (_missing_table, "table silences missing")],
    ids=["newer-schema", "missing-table"],
)
def test_a_database_this_monagent_cannot_use_is_moved_aside_with_the_reset_notice(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, damage, why
) -> None:
    """Not a traceback and exit 1 at every start (a restart loop): moved aside like a corrupt file."""
    cfg = config(tmp_path, '[checks.load]\ntype = "gauge"\n')
    state = cfg.agent.state_dir
    state.mkdir(parents=True)
    damage(state / "state.db")
    pipeline = open_pipeline(cfg, Clock())
    moved = pipeline.store.moved_to
    lines = drain(pipeline.store)
    pipeline.store.close()
    assert moved is not None and moved.exists()
    assert lines == [f"NOTICE warning web01 state was reset: the state database could not be read and was moved to {moved}"]
    assert any(r.message.startswith("STATE RESET") and why in r.message for r in caplog.records)
    assert os.stat(state / "state.db").st_mode & 0o777 == 0o600


def test_a_new_state_database_and_its_wal_are_created_0600(tmp_path: Path) -> None:
    umask = os.umask(0o022)
    store = Store.open(tmp_path)
    try:
        store.commit(Changes(meta={"x": "1"}), time.time())
        modes = {p.name: p.stat().st_mode & 0o777 for p in tmp_path.iterdir() if p.name.startswith("state.db")}
    finally:
        store.close()
        os.umask(umask)
    assert modes["state.db"] == 0o600 and set(modes.values()) == {0o600}, modes


def test_a_corrupt_database_is_moved_aside_and_the_reset_is_announced_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cfg = config(tmp_path, '[checks.load]\ntype = "gauge"\n')
    state = cfg.agent.state_dir
    state.mkdir(parents=True)
    (state / "state.db").write_bytes(b"this is not a database" * 100)
    clock = Clock()
    pipeline = open_pipeline(cfg, clock)
    lines = drain(pipeline.store)
    moved = pipeline.store.moved_to
    pipeline.store.close()
    assert moved is not None and moved.read_bytes().startswith(b"this is not a database")
    assert lines == [f"NOTICE warning web01 state was reset: the state database could not be read and was moved to {moved}"]
    assert any(
        r.message.startswith(f"STATE RESET: the state database {state / 'state.db'} could not be read") for r in caplog.records
    )
    pipeline = open_pipeline(cfg, clock)
    assert drain(pipeline.store) == [
        "NOTICE warning web01 monagent restarted after an unclean stop; it was last "
        "seen alive at " + Formatter("en").time(clock.wall)
    ]
    pipeline.store.close()


def test_the_outbox_bound_drops_the_oldest_entries_and_counts_them(tmp_path: Path) -> None:
    store = Store.open(tmp_path, Bounds(max_entries=3))
    try:
        assert enqueue(store, *(event(n) for n in range(5))) == 2
        assert texts(store.pending_rows("console", 2000.0)) == [event_to_json(event(n)) for n in (2, 3, 4)]
        assert store.take_dropped_count("console") == 2
        assert store.take_dropped_count("console") == 0
        assert store.health("console").dropped == 2
        assert store.queued_count("other") == 0
    finally:
        store.close()


def test_entries_older_than_the_age_bound_are_dropped(tmp_path: Path) -> None:
    store = Store.open(tmp_path, Bounds(max_age=3600.0))
    try:
        enqueue(store, event(1, t=1000.0), now=1000.0)
        enqueue(store, event(2, t=5000.0), now=5000.0)
        assert texts(store.pending_rows("console", 9000.0)) == [event_to_json(event(2, t=5000.0))]
        assert store.take_dropped_count("console") == 1
    finally:
        store.close()


def test_the_outbox_protocol_defer_complete_drop_and_health(tmp_path: Path) -> None:
    store = Store.open(tmp_path)
    try:
        enqueue(store, event(1), event(2), event(3))
        first, second, third = store.pending_rows("console", 1000.0)
        store.defer("console", [first.seq], not_before=1500.0)
        assert [e.seq for e in store.pending_rows("console", 1000.0)] == [second.seq, third.seq]
        (later,) = [e for e in store.pending_rows("console", 1500.0) if e.seq == first.seq]
        assert (later.attempts, later.not_before, later.text) == (1, 1500.0, event_to_json(event(1)))
        store.complete("console", [second.seq])
        store.drop("console", [third.seq], "payload rejected")
        assert store.queued_count("console") == 1
        assert store.take_dropped_count("console") == 1
        store.set_health(ReceiverHealth("console", last_success=1.0, last_error="boom", broken=True, sent=3))
        assert store.health("console") == ReceiverHealth(
            "console", last_success=1.0, last_error="boom", broken=True, sent=3, dropped=1
        )
    finally:
        store.close()


def test_the_outbox_keeps_the_committed_text_as_it_is_without_reading_it(tmp_path: Path) -> None:
    """The store deals in rows: what an entry means is the alerting layer's business, so text no
    decoder understands goes in and comes back unchanged, beside the others, and never raises."""
    store = Store.open(tmp_path)
    try:
        store.commit(Changes(outbox=[("ops", "{not json", 1000.0), ("ops", '{"format": 99}', 1000.0)]), 1000.0)
        rows = store.pending_rows("ops", 1000.0)
        assert [(r.receiver, r.text, r.attempts, r.not_before, r.durable) for r in rows] == [
            ("ops", "{not json", 0, 0.0, True),
            ("ops", '{"format": 99}', 0, 0.0, True),
        ]
        assert rows[0].seq < rows[1].seq and store.queued_count("ops") == 2
    finally:
        store.close()


def test_rows_held_in_memory_are_read_back_not_durable_settled_in_memory_and_committed_with_the_next_cycle(
    tmp_path: Path,
) -> None:
    """While the database refuses writes the pipeline holds entries in memory (Store.hold_volatile): they
    come back after the committed rows with a negative seq and ``durable`` False; complete and defer
    settle them in memory; whatever is left goes into the outbox with the next commit, oldest first."""
    store = Store.open(tmp_path)
    try:
        enqueue(store, event(1))
        store.hold_volatile("console", "held 1", 1001.0)
        store.hold_volatile("console", "held 2", 1002.0)
        store.hold_volatile("console", "held 3", 1003.0)
        committed, one, two, three = store.pending_rows("console", 1000.0)
        assert committed.durable and committed.seq > 0
        assert [(r.text, r.durable) for r in (one, two, three)] == [("held 1", False), ("held 2", False), ("held 3", False)]
        assert max(one.seq, two.seq, three.seq) < 0 and store.queued_count("console") == 4
        store.complete("console", [one.seq])
        store.defer("console", [two.seq], 1500.0)
        assert texts(store.pending_rows("console", 1000.0)) == [committed.text, "held 3"]
        (deferred,) = [r for r in store.pending_rows("console", 1500.0) if r.text == "held 2"]
        assert (deferred.attempts, deferred.not_before) == (1, 1500.0)
        store.commit(Changes(outbox=[("console", "this cycle", 1010.0)]), 1010.0)
        rows = store.pending_rows("console", float("inf"))
        assert texts(rows) == [committed.text, "held 2", "held 3", "this cycle"]
        assert all(r.durable and r.seq > 0 for r in rows)
    finally:
        store.close()


def test_a_delivery_thread_and_the_scheduler_share_the_store(tmp_path: Path) -> None:
    store = Store.open(tmp_path)
    delivered: List[int] = []
    stop = threading.Event()

    def deliver() -> None:
        while not stop.is_set() or store.queued_count("console"):
            entries = store.pending_rows("console", float("inf"))
            store.complete("console", [e.seq for e in entries])
            delivered.extend(e.seq for e in entries)

    thread = threading.Thread(target=deliver)
    thread.start()
    for n in range(200):
        enqueue(store, event(n))
    stop.set()
    thread.join(10)
    store.close()
    assert len(delivered) == len(set(delivered)) == 200


def _open_readonly_and_list(directory: str) -> List[str]:
    store = Store.open_readonly(Path(directory))
    try:
        assert len(store.load().alerts) == 1
    finally:
        store.close()
    return sorted(os.listdir(directory))


def _fired_state(directory: Path) -> None:
    cfg = config(directory, '[checks.load]\ntype = "gauge"\n[checks.load.alerting]\nfire_after_cycles = 1\n')
    clock = Clock()
    pipeline = open_pipeline(cfg, clock)
    pipeline.observe([run("load", value(95))], *clock.step())
    pipeline.close(clean=True)
    pipeline.store.close()


def test_status_as_another_user_reads_the_store_and_creates_no_file(public_tmp: Path) -> None:
    _fired_state(public_tmp)
    state = public_tmp / "state"
    os.chmod(state, 0o755)
    os.chmod(state / "state.db", 0o644)
    assert sorted(os.listdir(state)) == ["state.db"]
    assert run_as(NOBODY, _open_readonly_and_list, str(state)) == ["state.db"]


def test_status_while_the_agent_writes_creates_no_file(tmp_path: Path) -> None:
    _fired_state(tmp_path)
    writer = Store.open(tmp_path / "state")
    try:
        before = sorted(os.listdir(tmp_path / "state"))
        assert _open_readonly_and_list(str(tmp_path / "state")) == before
    finally:
        writer.close()


SCRIPT = """
import json, os, subprocess, sys
sys.path[:0] = [{tests!r}, {root!r}]
from pathlib import Path
from alerting_helpers import Clock, config, open_pipeline, run, value
from monagent.alerting.outbox import EventOutbox
from monagent.notify.console import format_line
directory = Path(sys.argv[1])
mode = sys.argv[2]
deliver = sys.argv[3] == "deliver"
cfg = config(directory, '[checks.load]\\ntype = "gauge"\\n[checks.load.alerting]\\nfire_after_cycles = 1\\n'
             '[notifiers.console]\\n[notifiers.webhook.ops]\\nurl = "http://127.0.0.1:9/"\\n')
clock = Clock()
state = str(cfg.agent.state_dir)
if mode == "readonly":
    os.makedirs(state)
    subprocess.run(["mount", "--bind", state, state], check=True)
    subprocess.run(["mount", "-o", "remount,bind,ro", state], check=True)
pipeline = open_pipeline(cfg, clock)
if mode == "full":
    fd = os.open(directory / "filler", os.O_WRONLY | os.O_CREAT)
    try:
        while True:
            os.write(fd, b"x" * 4096)
    except OSError:
        os.close(fd)
committed = pipeline.observe([run("load", value(95))], *clock.step())
held = len(pipeline._dirty.outbox)
store = pipeline.store
outbox = EventOutbox(store)
console = outbox.pending("console", float("inf"))
during = [format_line(e.event) for e in console]
during_webhook = [e.event.kind.value for e in outbox.pending("webhook:ops", float("inf"))]
if deliver:
    store.complete("console", [e.seq for e in console])
if mode == "full":
    os.unlink(directory / "filler")
else:
    subprocess.run(["umount", state], check=True)
after = pipeline.tick(*clock.step())
kinds = [e.event.kind.value for e in outbox.pending("console", float("inf"))]
kinds_webhook = [e.event.kind.value for e in outbox.pending("webhook:ops", float("inf"))]
print(json.dumps({{"committed": committed, "held": held, "during": during, "during_webhook": during_webhook,
                  "after": after, "kinds": kinds, "kinds_webhook": kinds_webhook, "writable": store.writable}}))
"""


def _in_private_mount(tmp_path: Path, mode: str, deliver: str = "keep") -> dict:
    script = tmp_path / "script.py"
    script.write_text(SCRIPT.format(tests=str(ROOT / "tests"), root=str(ROOT)))
    target = tmp_path / "fs"
    target.mkdir()
    shell = f"mount -t tmpfs -o size=4m tmpfs {target} && exec {sys.executable} {script} {target} {mode} {deliver}"
    result = subprocess.run(["unshare", "-m", "sh", "-c", shell], capture_output=True, text=True, timeout=60)
    if result.returncode != 0 and "unshare failed" in result.stderr:
        pytest.skip("no permission for a private mount namespace here")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


UNWRITABLE = (
    "NOTICE warning web01 the state directory {state} cannot be written ({why}); alerts are held in memory and only "
    "the console gets them until it can (not durable: the state directory cannot be written)"
)


def _expected_during(tmp_path: Path, why: str) -> list:
    return [
        UNWRITABLE.format(state=tmp_path / "fs" / "state", why=why.format(state=tmp_path / "fs" / "state")),
        "FIRING critical web01 load value 95 (>= 90) since 14:14 (not durable: the state directory cannot be written)",
    ]


@pytest.mark.parametrize(
    "mode, why", [("full", "database or disk is full"), ("readonly", "{state}/state.db is still not writable")]
)
def test_while_the_state_directory_refuses_writes_the_console_still_gets_every_event_not_durable(
    tmp_path: Path, mode: str, why: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A full /var must not hide its own alert: the console gets everything from memory, every other
    receiver the agent's notice; once writable, what was not delivered goes into the outbox."""
    monkeypatch.setenv("TZ", "UTC")
    outcome = _in_private_mount(tmp_path, mode)
    assert outcome["during"] == _expected_during(tmp_path, why)
    assert outcome["during_webhook"] == ["notice"]
    assert outcome["committed"] >= 1  # handed to the console: the agent wakes delivery
    assert outcome["held"] == 1  # the firing for the webhook waits in memory
    assert (outcome["kinds"], outcome["kinds_webhook"], outcome["writable"]) == (["notice", "firing"], ["notice", "firing"], True)


def test_what_the_console_got_while_the_disk_was_full_is_not_sent_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "UTC")
    outcome = _in_private_mount(tmp_path, "full", "deliver")
    assert len(outcome["during"]) == 2
    assert (outcome["kinds"], outcome["kinds_webhook"]) == ([], ["notice", "firing"])


def test_meta_reads_the_meta_rows_alone_from_a_read_only_store(tmp_path: Path) -> None:
    store = Store.open(tmp_path)
    store.commit(Changes(meta={"boot_id": "b1", "last_boot_end": '{"kind": "clean"}'}), time.time())
    enqueue(store, event(1))
    store.close()
    reader = Store.open_readonly(tmp_path)
    try:
        meta = reader.meta()
        assert meta["boot_id"] == "b1" and meta["last_boot_end"] == '{"kind": "clean"}'
        assert meta == reader.load().meta
    finally:
        reader.close()
