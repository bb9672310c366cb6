"""At-least-once delivery through the real SQLite store: SIGKILL during a send loses nothing.

A child process pumps a real :class:`monagent.store.Store` outbox into the fake robot. The
robot hangs the first request; the child is killed with SIGKILL while it waits; a second
child starts on the same state directory and finishes. Every event reaches the group, and
only the batch that was in flight at the kill may arrive twice.
"""

from __future__ import annotations

import collections
import re
import signal
import subprocess
import sys
import textwrap
import time

from events_factory import event
from fake_dingtalk import FakeDingTalk, Fault
from outboxes import queue

from monagent.alerting.outbox import EventOutbox
from monagent.api import Status
from monagent.events import EventKind
from monagent.notify.dispatcher import ChatDispatcher
from monagent.store import Store

RECEIVER = "dingtalk:ops"
SECRET = "SECcrash0123456789abcdef"

CHILD = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from monagent.confread import Secret
    from monagent.notify.dingtalk import DingTalkReceiver
    from monagent.notify.chat_config import DingTalkConfig
    from monagent.notify.delivery import Delivery
    from monagent.notify.dispatcher import ChatDispatcher
    from monagent.alerting.outbox import EventOutbox
    from monagent.alerting.route import Route
    from monagent.store import Store

    state_dir, webhook, secret = sys.argv[1:4]
    delivery = Delivery(group_wait=0.0)
    config = DingTalkConfig("ops", Secret(webhook), Secret(secret), Route(), language="en", timezone="UTC",
                            delivery=delivery)
    store = Store.open(Path(state_dir))
    dispatcher = ChatDispatcher(DingTalkReceiver(config), delivery)
    deadline = time.monotonic() + 30
    while store.queued_count("dingtalk:ops") and time.monotonic() < deadline:
        dispatcher.pump(EventOutbox(store), time.time())
        time.sleep(0.02)
    print(store.queued_count("dingtalk:ops"))
    store.close()
""")


def events(now: float):
    out = [event(subject=f"/srv/{n}", incident=f"i{n}", time=now, severity=Status.WARNING) for n in range(40)]
    out += [event(EventKind.RESOLVED, subject=f"/old/{n}", incident=f"o{n}", time=now) for n in range(10)]
    return out


def child(tmp_path, fake):
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, str(tmp_path), fake.webhook("tok"), SECRET],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def subjects(text: str):
    return re.findall(r"^\*\*.*?\*\* disk (/\S+) ", text, re.M)


def test_sigkill_during_a_send_then_a_restart_delivers_every_event_and_repeats_only_the_batch_in_flight(tmp_path):
    now = time.time()
    store = Store.open(tmp_path)
    queue(store, RECEIVER, *events(now), now=now)
    store.close()
    with FakeDingTalk() as fake:
        fake.add_robot("tok", secret=SECRET)
        fake.fail_next(Fault("hang"))
        first = child(tmp_path, fake)
        assert fake.hanging.wait(20), first.stderr.read() if first.poll() is not None else "no request"
        first.send_signal(signal.SIGKILL)
        first.communicate(timeout=10)
        fake.release.set()  # the hung request is accepted after all: the group saw that batch
        deadline = time.monotonic() + 10
        while not fake.accepted and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(fake.accepted) == 1
        later = [event(subject=f"/new/{n}", incident=f"n{n}", time=now) for n in range(5)]
        store = Store.open(tmp_path)
        queue(store, RECEIVER, *later, now=now)
        store.close()
        second = child(tmp_path, fake)
        out, err = second.communicate(timeout=60)
        assert second.returncode == 0, err
        assert out.strip() == "0"
    assert not [m for m in fake.accepted if " more (" in m.text]  # every event is listed by name
    in_flight = set(subjects(fake.accepted[0].text))
    seen = collections.Counter(s for message in fake.accepted for s in subjects(message.text))
    expected = {f"/srv/{n}" for n in range(40)} | {f"/old/{n}" for n in range(10)} | {f"/new/{n}" for n in range(5)}
    assert set(seen) == expected
    assert in_flight == expected - {f"/new/{n}" for n in range(5)}
    assert {s for s, count in seen.items() if count > 1} <= in_flight
    assert max(seen.values()) == 2
    store = Store.open(tmp_path)
    try:
        assert store.queued_count(RECEIVER) == 0
    finally:
        store.close()


def test_a_lockout_survives_a_restart_through_the_store(tmp_path):
    from dingtalk_helpers import parse_robot
    from harness import FakeClock

    from monagent.notify.dingtalk import DingTalkReceiver

    clock = FakeClock()
    store = Store.open(tmp_path)
    queue(store, RECEIVER, *events(clock.time())[:3], now=clock.time())
    outbox = EventOutbox(store)
    try:
        with FakeDingTalk(clock.time) as fake:
            fake.add_robot("tok", secret=SECRET)
            fake.fail_next(Fault("errcode", 410100, "send too fast"))
            config = parse_robot({"webhook": fake.webhook("tok"), "secret": SECRET, "group_wait": "0"})
            receiver = DingTalkReceiver(config)
            try:
                ChatDispatcher(receiver, config.delivery, monotonic=clock.monotonic).pump(outbox, clock.time())
                restarted = ChatDispatcher(receiver, config.delivery, monotonic=clock.monotonic)
                for _ in range(60):  # ten minutes after the restart: still locked out
                    clock.advance(10)
                    restarted.pump(outbox, clock.time())
                assert len(fake.requests) == 1
                assert store.health(RECEIVER).locked_until is not None
                for _ in range(12):
                    clock.advance(10)
                    restarted.pump(outbox, clock.time())
            finally:
                receiver.close()
        assert len(fake.requests) == 2 and len(fake.accepted) == 1
        assert store.queued_count(RECEIVER) == 0
    finally:
        store.close()
