"""Benchmark of DingTalk delivery: the real store, dispatcher and receiver against the fake robot.

Scenarios (fake clock, so an hour of traffic takes seconds):

1. 500 alerts fire at once.
2. 1,000 events a minute for 5 minutes (60 % firing, 30 % resolving earlier ones, 10 % reminders).

For each: HTTP messages sent, events delivered (listed by name, summed up in a "+N more" line,
or cancelled because they fired and resolved unseen), the largest body, the most sends in any
rolling minute, lockouts, and the time to deliver (fake seconds from an event's arrival to the
confirmation of the message that carried it: median and worst) plus the wall time of the run.

Run: python bench/bench_dingtalk.py
"""

from __future__ import annotations

import random
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Sequence

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from dingtalk_helpers import parse_robot  # test helpers live in tests/
from events_factory import T0, event
from fake_dingtalk import FakeDingTalk
from harness import FakeClock

from monagent.alerting.codec import event_to_json
from monagent.alerting.outbox import EventOutbox
from monagent.api import Status
from monagent.events import EventKind, OutboxEntry
from monagent.notify.dingtalk import DingTalkReceiver
from monagent.notify.dispatcher import ChatDispatcher
from monagent.store import Changes, Store

RECEIVER = "dingtalk:ops"
SECRET = "SECbench0123456789"


class Recording:
    """The store's outbox (as the agent reads it: monagent.alerting.outbox), noting when each event id
    was confirmed (fake time)."""

    def __init__(self, store: EventOutbox, clock: FakeClock) -> None:
        self.store, self.clock = store, clock
        self.ids: Dict[int, str] = {}
        self.done: Dict[str, float] = {}

    def pending(self, receiver: str, now: float, limit: int = 10_000) -> Sequence[OutboxEntry]:
        entries = self.store.pending(receiver, now, limit)
        self.ids.update((e.seq, e.event.id) for e in entries)
        return entries

    def complete(self, receiver: str, seqs: Sequence[int]) -> None:
        self.store.complete(receiver, seqs)
        for seq in seqs:
            self.done[self.ids[seq]] = self.clock.time()

    def __getattr__(self, name: str):
        return getattr(self.store, name)


def run(name: str, arrivals: Dict[int, List], horizon: int) -> None:
    clock = FakeClock(T0)
    with tempfile.TemporaryDirectory() as tmp, FakeDingTalk(clock.time) as fake:
        fake.add_robot("tok", secret=SECRET)
        config = parse_robot({"webhook": fake.webhook("tok"), "secret": SECRET, "language": "zh"})
        receiver = DingTalkReceiver(config)
        store = Store.open(Path(tmp))
        outbox = Recording(EventOutbox(store), clock)
        dispatcher = ChatDispatcher(receiver, config.delivery, monotonic=clock.monotonic)
        arrived: Dict[str, float] = {}
        started = time.perf_counter()
        for second in range(horizon):
            batch = arrivals.get(second, [])
            if batch:
                store.commit(Changes(outbox=[(RECEIVER, event_to_json(e), clock.time()) for e in batch]), clock.time())
                arrived.update((e.id, clock.time()) for e in batch)
            dispatcher.pump(outbox, clock.time())
            clock.advance(1)
            if second > max(arrivals) and store.queued_count(RECEIVER) == 0:
                break
        wall = time.perf_counter() - started
        receiver.close()
        queued = store.queued_count(RECEIVER)
        store.close()
    report(name, fake, arrived, outbox.done, queued=queued, wall=wall)


def report(name: str, fake: FakeDingTalk, arrived: Dict[str, float], done: Dict[str, float], *, queued: int, wall: float) -> None:
    latencies = sorted(done[i] - arrived[i] for i in done)
    listed = sum(len(re.findall(r"^- <font", m.text, re.M)) + len(re.findall(r"^\*\*<font", m.text, re.M)) for m in fake.accepted)
    summed = sum(int(n) for m in fake.accepted for n in re.findall(r"^\+(\d+) ", m.text, re.M))
    per_minute = max(sum(1 for u in fake.requests if t <= u < t + 60) for t in fake.requests)
    lockouts = sum(1 for _, _, code in fake.answers if code in (410100, 130101))
    print(f"== {name}")
    print(f"  events: {len(arrived)}; delivered (confirmed): {len(done)}; still queued: {queued}")
    print(
        f"  messages sent: {len(fake.requests)} (accepted {len(fake.accepted)}); items listed {listed}, "
        f"summed up in '+N more' {summed}, cancelled or merged {len(done) - listed - summed}"
    )
    print(
        f"  largest body: {max(m.size for m in fake.accepted)} bytes; most sends in a rolling minute: "
        f"{per_minute}; lockouts: {lockouts}"
    )
    print(
        f"  time to deliver (fake s): median {statistics.median(latencies):.0f}, worst {latencies[-1]:.0f}; "
        f"wall time of the run: {wall:.2f} s"
    )


def burst() -> Dict[int, List]:
    return {
        0: [
            event(subject=f"/data/{n}", incident=f"b{n}", time=T0, severity=Status.CRITICAL if n % 4 == 0 else Status.WARNING)
            for n in range(500)
        ]
    }


def stream(rng: random.Random) -> Dict[int, List]:
    arrivals: Dict[int, List] = {}
    open_incidents: List[str] = []
    count = 0
    for second in range(300):
        for _ in range(1000 // 60 + (1 if rng.random() < (1000 % 60) / 60 else 0)):
            count += 1
            roll = rng.random()
            now = T0 + second
            if roll < 0.3 and open_incidents:
                inc = open_incidents.pop(rng.randrange(len(open_incidents)))
                e = event(EventKind.RESOLVED, subject=f"/v/{inc}", incident=inc, seq=2, time=now, value=50.0)
            elif roll < 0.4 and open_incidents:
                inc = rng.choice(open_incidents)
                e = event(EventKind.REMINDER, subject=f"/v/{inc}", incident=inc, seq=100 + count, time=now)
            else:
                inc = f"s{count}"
                open_incidents.append(inc)
                e = event(subject=f"/v/{inc}", incident=inc, time=now)
            arrivals.setdefault(second, []).append(e)
    return arrivals


def main() -> None:
    run("500 alerts firing at once", burst(), horizon=3600)
    run("1,000 events a minute for 5 minutes", stream(random.Random(4)), horizon=3600)


if __name__ == "__main__":
    main()
