"""The console receiver: one exact line per event, and a dispatcher that sends all pending at once."""

from __future__ import annotations

import io
import time
from pathlib import Path
from typing import Any, Dict, Iterator, Optional

import pytest
from events_factory import event
from outboxes import queue

from monagent.alerting.outbox import EventOutbox
from monagent.api import Status
from monagent.events import Event, EventKind, OutcomeKind
from monagent.notify.console import ConsoleDispatcher, ConsoleReceiver, format_line
from monagent.store import Bounds, Store

T = 1_790_000_000.0  # 14:13:20 UTC


@pytest.fixture(autouse=True)
def utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def ev(kind: EventKind, **kw: Any) -> Event:
    """An event that carries its value in its summary only (an entry of format 1), root_disk /var."""
    base: Dict[str, Any] = {"check": "root_disk", "id": "a-1:1", "incident": "", "time": T + 600, "since": T}
    base.update(summary="93% (>= 90)", check_type="", value=None, unit="", threshold=None, operator="")
    base.update(kw)
    return event(kind, **base)


@pytest.mark.parametrize(
    ("event", "line"),
    [
        (ev(EventKind.FIRING), "FIRING critical web01 root_disk /var used_percent 93% (>= 90) since 14:13"),
        (ev(EventKind.ESCALATED), "ESCALATED critical web01 root_disk /var used_percent 93% (>= 90) since 14:13"),
        (
            ev(EventKind.DEESCALATED, severity=Status.WARNING, summary="86% (>= 85)"),
            "DEESCALATED warning web01 root_disk /var used_percent 86% (>= 85) since 14:13",
        ),
        (ev(EventKind.REMINDER), "REMINDER critical web01 root_disk /var used_percent 93% (>= 90) since 14:13"),
        (
            ev(EventKind.RESOLVED, summary="71%", note="check removed"),
            "RESOLVED web01 root_disk /var used_percent 71% (was critical since 14:13) (check removed)",
        ),
        (
            ev(
                EventKind.OCCURRENCE,
                check="kdump",
                subject="/var/crash",
                metric="occurrence",
                summary="kernel panic: Fatal exception",
                since=None,
            ),
            "OCCURRENCE critical web01 kdump /var/crash kernel panic: Fatal exception",
        ),
        (
            ev(EventKind.FLAP_START, summary="is flapping (36% state change); notifications paused until it settles", since=None),
            "FLAPPING critical web01 root_disk /var used_percent is flapping (36% state change); "
            "notifications paused until it settles",
        ),
        (
            ev(
                EventKind.NOTICE,
                check="monagent",
                subject="",
                metric="host",
                severity=Status.WARNING,
                summary="host rebooted; the previous boot was last seen alive at 2026-09-21 14:13:20",
            ),
            "NOTICE warning web01 host rebooted; the previous boot was last seen alive at 2026-09-21 14:13:20",
        ),
    ],
    ids=lambda x: x.kind.value if isinstance(x, Event) else "",
)
def test_each_kind_of_event_is_one_readable_line(event: Event, line: str) -> None:
    assert format_line(event) == line


def _store(tmp_path: Path, *events: Event, bounds: Optional[Bounds] = None) -> Store:
    store = Store.open(tmp_path, bounds)
    queue(store, "console", *events, now=T + 600)
    return store


def test_the_dispatcher_prints_everything_pending_and_marks_it_delivered(tmp_path: Path) -> None:
    out = io.StringIO()
    store = _store(tmp_path, ev(EventKind.FIRING), ev(EventKind.RESOLVED, id="a-1:2", summary="12%"))
    try:
        ConsoleDispatcher(ConsoleReceiver(stream=out)).pump(EventOutbox(store), T + 601)
        assert out.getvalue().splitlines() == [
            "FIRING critical web01 root_disk /var used_percent 93% (>= 90) since 14:13",
            "RESOLVED web01 root_disk /var used_percent 12% (was critical since 14:13)",
        ]
        assert store.queued_count("console") == 0
        health = store.health("console")
        assert (health.sent, health.last_success) == (2, T + 601)
    finally:
        store.close()


def test_dropped_entries_are_reported_before_the_next_lines(tmp_path: Path) -> None:
    out = io.StringIO()
    store = _store(tmp_path, *(ev(EventKind.REMINDER, id=f"a-1:{n}") for n in range(4)), bounds=Bounds(max_entries=2))
    try:
        ConsoleDispatcher(ConsoleReceiver(stream=out)).pump(EventOutbox(store), T + 601)
        assert out.getvalue().splitlines()[0] == ("NOTICE 2 events were dropped for receiver console (outbox bound reached)")
        assert len(out.getvalue().splitlines()) == 3
    finally:
        store.close()


class Broken(io.StringIO):
    def write(self, text: str) -> int:
        raise BrokenPipeError(32, "Broken pipe")


def test_a_console_that_cannot_be_written_keeps_the_entries_queued(tmp_path: Path) -> None:
    store = _store(tmp_path, ev(EventKind.FIRING))
    receiver = ConsoleReceiver(stream=Broken())
    try:
        outcome = receiver.send(EventOutbox(store).pending("console", T + 601), T + 601)
        assert (outcome.kind, outcome.reason) == (OutcomeKind.RETRY, "cannot write to the console: Broken pipe")
        ConsoleDispatcher(receiver).pump(EventOutbox(store), T + 601)
        assert store.queued_count("console") == 1
        assert EventOutbox(store).pending("console", T + 602) == []
        assert store.health("console").last_error == "cannot write to the console: Broken pipe"
    finally:
        store.close()
