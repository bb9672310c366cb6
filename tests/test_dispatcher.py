"""The chat dispatcher driving the real DingTalk receiver against the fake robot, on a fake clock."""

from __future__ import annotations

import re
import threading
from typing import List

import pytest
from dingtalk_helpers import parse_robot
from events_factory import T0, event
from fake_dingtalk import LOCKOUT, FakeDingTalk, Fault
from harness import FakeClock
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from outboxes import MemoryOutbox

from monagent.api import Status
from monagent.events import DELIVERED, EventKind
from monagent.notify.delivery import Delivery
from monagent.notify.dingtalk import DingTalkReceiver
from monagent.notify.dispatcher import ChatDispatcher
from monagent.notify.ratelimit import SlidingWindow

SECRET = "SECdispatcher0123456789"


class Rig:
    """Fake clock + fake robot + real receiver + dispatcher + in-memory outbox."""

    def __init__(self, fake: FakeDingTalk, clock: FakeClock, **options) -> None:
        self.fake, self.clock = fake, clock
        settings_ = {
            "webhook": fake.webhook("tok"),
            "secret": SECRET,
            "language": "en",
            "timezone": "UTC",
            "group_wait": "10s",
            **options,
        }
        self.config = parse_robot(settings_)
        self.receiver = DingTalkReceiver(self.config)
        self.outbox = MemoryOutbox()
        self.dispatcher = self.new_dispatcher()

    def new_dispatcher(self) -> ChatDispatcher:
        return ChatDispatcher(self.receiver, self.config.delivery, monotonic=self.clock.monotonic, rand=lambda: 1.0)

    def add(self, *events):
        return self.outbox.add(self.receiver.name, *events)

    def pump(self) -> None:
        self.dispatcher.pump(self.outbox, self.clock.time())

    def run(self, seconds: float, step: float = 1.0) -> None:
        end = self.clock.time() + seconds
        while self.clock.time() < end:
            self.pump()
            self.clock.advance(step)
        self.pump()

    @property
    def titles(self):
        return [m.title for m in self.fake.accepted]

    @property
    def health(self):
        return self.outbox.health(self.receiver.name)


@pytest.fixture
def clock():
    return FakeClock(T0)


@pytest.fixture
def fake(clock):
    with FakeDingTalk(clock.time) as server:
        server.add_robot("tok", secret=SECRET)
        yield server


@pytest.fixture
def rig(fake, clock):
    rig = Rig(fake, clock)
    yield rig
    rig.receiver.close()


def fire(n: int, **fields):
    return event(subject=f"/mnt/{n}", incident=f"i{n}", **fields)


def test_alerts_that_fire_together_arrive_in_one_message_after_group_wait(rig):
    rig.add(fire(1))
    rig.pump()
    rig.clock.advance(5)
    rig.add(fire(2, severity=Status.WARNING))
    rig.pump()
    assert rig.titles == []
    assert rig.dispatcher.next_due(rig.clock.time()) == rig.clock.time() + 5
    rig.clock.advance(5)
    rig.pump()
    assert rig.titles == ["[FIRING:2] web01 disk /mnt/1 93%"]
    assert rig.outbox.queued_count(rig.receiver.name) == 0
    assert rig.dispatcher.next_due(rig.clock.time()) is None


def test_an_alert_after_the_outbox_emptied_waits_group_wait_again(rig):
    rig.add(fire(1))
    rig.run(10)
    rig.add(fire(2))
    rig.pump()
    assert len(rig.titles) == 1
    rig.run(10)
    assert len(rig.titles) == 2


def test_a_firing_and_its_resolve_that_the_group_never_saw_cancel_out(rig):
    rig.add(fire(1), event(EventKind.RESOLVED, subject="/mnt/1", incident="i1", seq=2))
    rig.run(15)
    assert rig.fake.accepted == []
    assert rig.outbox.queued_count(rig.receiver.name) == 0
    assert rig.outbox.take_dropped_count(rig.receiver.name) == 0


def test_several_reminders_become_one(rig):
    rig.add(*[fire(1, kind=EventKind.REMINDER, seq=s) for s in (2, 3, 4)])
    rig.run(10)
    assert rig.titles == ["[FIRING:1] web01 disk /mnt/1 93%"]
    assert "**<font color=#FF0000>CRITICAL</font> still firing ×3** disk /mnt/1 93%" in rig.fake.accepted[0].text


def test_an_escalation_supersedes_a_queued_firing(rig):
    rig.add(
        fire(1, severity=Status.WARNING, value=91.0),
        fire(1, kind=EventKind.ESCALATED, seq=2, severity=Status.CRITICAL, value=96.0, threshold=95.0),
    )
    rig.run(10)
    assert rig.titles == ["[FIRING:1] web01 disk /mnt/1 96%"]
    assert "**<font color=#FF0000>CRITICAL</font> firing** disk /mnt/1 96%" in rig.fake.accepted[0].text


def test_a_resolve_supersedes_queued_reminders(rig):
    rig.add(fire(1, kind=EventKind.REMINDER, seq=2), fire(1, kind=EventKind.RESOLVED, seq=3, value=50.0))
    rig.run(10)
    assert rig.titles == ["[RESOLVED] web01 disk /mnt/1 50%"]


def test_when_the_window_is_full_the_rest_waits_for_one_digest(fake, clock):
    rig = Rig(fake, clock, group_wait="0", max_sends_per_minute=5)
    try:
        for n in range(12):  # one alert every 2 s: 5 go out at once, 7 wait
            rig.add(fire(n))
            rig.run(2)
        rig.run(60)
    finally:
        rig.receiver.close()
    assert len(rig.titles) == 6
    assert rig.titles[-1] == "[DIGEST] web01 7 firing"
    assert "7 events since" in fake.accepted[-1].text and "held back by the rate limit" in fake.accepted[-1].text
    assert max(_per_minute(fake.requests)) <= 5


def _per_minute(times):
    return [sum(1 for u in times if t <= u < t + 60) for t in times] or [0]


def test_a_lockout_stops_every_send_then_one_digest_carries_everything(rig):
    rig.fake.fail_next(Fault("errcode", 410100, "send too fast"))
    rig.add(fire(1))
    rig.run(10)
    locked_at = rig.clock.time()
    assert rig.health.locked_until == pytest.approx(locked_at + 600 + 60)
    for n in range(2, 6):
        rig.add(fire(n))
        rig.run(60)
    assert len(rig.fake.requests) == 1
    rig.run(420)
    assert len(rig.fake.requests) == 2
    assert rig.fake.requests[1] >= locked_at + 600
    assert rig.titles == ["[DIGEST] web01 5 firing"]
    assert "held back by a rate-limit lockout" in rig.fake.accepted[0].text


def test_a_lockout_recorded_before_a_restart_still_holds(rig):
    rig.fake.fail_next(Fault("errcode", 410100, "send too fast"))
    rig.add(fire(1))
    rig.run(10)
    rig.dispatcher = rig.new_dispatcher()  # the agent restarted
    rig.run(300)
    assert len(rig.fake.requests) == 1
    rig.run(400)
    assert len(rig.fake.requests) == 2 and rig.titles == ["[FIRING:1] web01 disk /mnt/1 93%"]


def test_entries_deferred_before_a_restart_are_pumped_when_due_not_polled(rig):
    rig.fake.fail_next(Fault("http500"))
    rig.add(fire(1))
    rig.run(10)  # group_wait, then a failed send: deferred 5 s
    assert len(rig.fake.requests) == 1
    [entry] = rig.outbox.entries[rig.receiver.name].values()
    rig.dispatcher = rig.new_dispatcher()  # the agent restarted: the backoff is gone, the deferral is stored
    rig.pump()
    now = rig.clock.time()
    due = rig.dispatcher.next_due(now)
    # the delivery lane sleeps until the entry falls due (it polled every 50 ms before)
    assert due is not None and due == pytest.approx(entry.not_before) and due > now
    rig.clock.advance(due - now)
    rig.run(10)
    assert len(rig.fake.requests) == 2 and rig.outbox.queued_count(rig.receiver.name) == 0


def test_transient_failures_back_off_exponentially_up_to_the_cap(rig):
    rig.fake.fail_always(Fault("http500"))
    rig.add(fire(1))
    rig.run(10 + 1200)
    gaps = [round(b - a) for a, b in zip(rig.fake.requests, rig.fake.requests[1:])]
    assert gaps[:8] == [5, 10, 20, 40, 80, 160, 300, 300]
    assert rig.health.last_error == "HTTP 500 without a DingTalk answer"
    assert rig.outbox.queued_count(rig.receiver.name) == 1


def test_an_hour_long_outage_ends_in_one_digest_that_accounts_for_every_event(rig):
    rig.fake.fail_always(Fault("reset"))
    seqs = []
    for minute in range(60):
        seqs += rig.add(fire(minute, time=rig.clock.time()))
        if minute % 3 == 0:  # a third resolve again within the hour: the group never heard of them
            seqs += rig.add(fire(minute, kind=EventKind.RESOLVED, seq=2, time=rig.clock.time()))
        if minute % 10 == 5:
            seqs += rig.add(fire(minute - 1, kind=EventKind.REMINDER, seq=3, time=rig.clock.time()))
        rig.run(60, step=5)
    rig.fake.fail_always(None)
    rig.run(400, step=5)
    assert len(rig.fake.accepted) == 1
    digest = rig.fake.accepted[0]
    assert digest.title == "[DIGEST] web01 40 firing"
    assert digest.text.startswith(
        "#### [DIGEST] web01 40 firing\n\n86 events since 2026-09-21 14:14:20 UTC, held "
        "back while the receiver was unreachable. Fired and resolved in between (not "
        "listed): 20."
    )
    listed = len(re.findall(r"^- ", digest.text, re.M))
    more = re.search(r"\+(\d+) more", digest.text)
    assert listed + (int(more.group(1)) if more else 0) == 40
    assert sorted(rig.outbox.completed) == sorted(seqs)
    assert rig.outbox.queued_count(rig.receiver.name) == 0


def test_a_rejected_payload_is_retried_once_reduced_then_dropped_and_counted(rig):
    rig.fake.fail_next(Fault("errcode", 430101, "含有不安全的外链"), Fault("errcode", 430101, "含有不安全的外链"))
    rig.add(fire(1, reason="see http://evil.example/x"))
    rig.run(10)
    assert len(rig.fake.requests) == 2 and rig.fake.accepted == []
    assert rig.outbox.queued_count(rig.receiver.name) == 0
    assert rig.health.dropped == 1
    rig.add(fire(2))
    rig.run(10)
    assert "1 earlier events were dropped" in rig.fake.accepted[0].text


def test_the_reduced_form_is_what_goes_out_after_a_rejection(rig):
    rig.fake.fail_next(Fault("errcode", 430101, "含有不安全的外链"))
    rig.add(fire(1, reason="see http://evil.example/x"))
    rig.run(10)
    assert "- Summary: see http\\[:\\]//evil.example/x" in rig.fake.accepted[0].text


def test_too_large_is_truncated_and_resent(rig):
    rig.fake.fail_next(Fault("errcode", 460101, "message too long, exceed 20000 bytes"))
    rig.add(*[fire(n) for n in range(200)])
    rig.run(10)
    assert len(rig.fake.requests) == 2
    assert rig.fake.accepted[0].size <= 10_000
    assert rig.outbox.queued_count(rig.receiver.name) == 0


def test_a_broken_robot_keeps_events_queued_and_is_probed_rarely(fake, clock):
    rig = Rig(fake, clock, reprobe_interval="30m")
    try:
        rig.fake.fail_always(Fault("errcode", 300001, "token is not exist"))
        rig.add(fire(1))
        rig.run(10 + 1700, step=10)
        assert len(rig.fake.requests) == 1
        assert rig.health.broken and "errcode 300001" in rig.health.last_error
        assert rig.outbox.queued_count(rig.receiver.name) == 1
        rig.fake.fail_always(None)
        rig.run(200, step=10)
        assert rig.titles == ["[FIRING:1] web01 disk /mnt/1 93%"]
        assert not rig.health.broken and rig.health.last_success is not None
    finally:
        rig.receiver.close()


def test_a_broken_robot_is_probed_again_on_reload(rig):
    rig.fake.fail_next(Fault("errcode", 400102, "机器人已停用"))
    rig.add(fire(1))
    rig.run(10)
    assert rig.dispatcher.broken
    rig.dispatcher.reprobe()
    rig.pump()
    assert len(rig.titles) == 1


def test_the_broken_error_is_logged_once(rig, caplog):
    rig.fake.fail_always(Fault("errcode", 310000, "keywords not in content"))
    rig.add(fire(1))
    rig.run(10 + 3 * 1800, step=60)
    errors = [r for r in caplog.records if r.levelname == "ERROR"]
    assert len(rig.fake.requests) == 4
    assert len(errors) == 1
    assert "keywords not in content" in errors[0].getMessage()


def test_health_records_the_last_success_and_the_count_sent(rig):
    rig.add(fire(1), fire(2))
    rig.run(10)
    assert (rig.health.last_success, rig.health.sent, rig.health.broken) == (T0 + 10, 2, False)


def test_close_waits_for_the_send_in_flight(rig):
    rig.fake.fail_next(Fault("hang"))
    rig.add(fire(1))
    rig.run(9)
    rig.clock.advance(1)
    worker = threading.Thread(target=rig.pump)
    worker.start()
    assert rig.fake.hanging.wait(5)
    closer = threading.Thread(target=rig.dispatcher.close, args=(__import__("time").monotonic() + 5,))
    closer.start()
    closer.join(0.2)
    assert closer.is_alive()
    rig.fake.release.set()
    worker.join(5)
    closer.join(5)
    assert not closer.is_alive() and rig.titles == ["[FIRING:1] web01 disk /mnt/1 93%"]


replies = st.sampled_from([0, 0, 0, 0, 410100, 130101, -1, 460101])


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    arrivals=st.lists(st.integers(0, 1200), min_size=1, max_size=60),
    answers=st.lists(replies, max_size=40),
    limit=st.integers(1, 19),
)
def test_no_rolling_minute_exceeds_the_limit_and_nothing_is_sent_during_a_lockout(fake, clock, arrivals, answers, limit):
    fake.requests.clear()
    fake.answers.clear()
    fake.robots["tok"].sends.clear()
    fake.robots["tok"].locked_until = 0.0
    start = clock.time()
    fake.fail_next(*[Fault("errcode", a, "injected") for a in answers if a])
    rig = Rig(fake, clock, group_wait="0", max_sends_per_minute=limit, lockout="10m")
    try:
        due = sorted(arrivals)
        for second in range(0, 1200 + 700 * len(answers) + 900, 5):  # long enough to outlast every lockout
            while due and due[0] <= second:
                rig.add(fire(len(due) + 1000 * second))
                due.pop(0)
            rig.pump()
            clock.advance(5)
    finally:
        rig.receiver.close()
        remaining = len(fake.faults)
        fake.faults.clear()
    times = fake.requests
    assert max(_per_minute(times)) <= limit
    lockouts = [t for t, _, code in fake.answers if code in (410100, 130101)]
    for locked in lockouts:
        assert not [t for t in times if locked < t < locked + LOCKOUT]
    assert rig.outbox.queued_count(rig.receiver.name) == 0 or remaining
    assert clock.time() > start


def test_dispatchers_rebuilt_on_reload_keep_counting_sends_to_the_same_robot(write_config, fake):
    from monagent import config as config_module
    from monagent.notify.alertmanager import MemoryKeyValue
    from monagent.notify.build import build_dispatchers

    def build_chat_dispatchers(notifiers):
        return [d for d in build_dispatchers(notifiers, "web01", MemoryKeyValue()) if d.receiver_name != "console"]

    path = write_config(f"""
[notifiers.dingtalk.ops]
webhook = "{fake.webhook("tok")}&reload=1"
max_sends_per_minute = 3

[notifiers.dingtalk.same_robot]
webhook = "{fake.webhook("tok")}&reload=1"
max_sends_per_minute = 3

[notifiers.webhook.hook]
url = "http://127.0.0.1:9/hook"
""")
    notifiers = config_module.load(path).notifiers
    first = build_chat_dispatchers(notifiers)
    assert [d.receiver_name for d in first] == ["dingtalk:ops", "dingtalk:same_robot", "webhook:hook"]
    first[0]._window.record(100.0)
    first[1]._window.record(101.0)
    rebuilt = build_chat_dispatchers(notifiers)
    assert rebuilt[0]._window.count(102.0) == 2
    assert rebuilt[2]._window.count(102.0) == 0
    for dispatcher in first + rebuilt:
        dispatcher.receiver.close()


class _Stamping:
    name = "dingtalk:stamp"

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.sent_at: List[float] = []

    def deliver(self, batch, now):
        self.sent_at.append(self.clock.mono)  # the request goes out now
        return DELIVERED

    def close(self) -> None:
        pass


def test_the_rate_window_counts_a_send_when_the_request_goes_out_not_when_it_was_decided():
    clock = FakeClock(reading_cost=2.0)  # every reading of the clock takes 2 s, as a loaded machine's pump would see it
    receiver = _Stamping(clock)
    window = SlidingWindow(18)

    class SlowOutbox(MemoryOutbox):
        def pending(self, receiver, now, limit=10_000):
            clock.advance(3.0)  # reading and coalescing the queue takes time on a loaded machine
            return super().pending(receiver, now, limit)

    outbox = SlowOutbox()
    dispatcher = ChatDispatcher(receiver, Delivery(group_wait=0.0), monotonic=clock.monotonic, window=window)
    outbox.add(receiver.name, fire(1))
    dispatcher.pump(outbox, T0)
    assert receiver.sent_at and list(window._sends) == receiver.sent_at
