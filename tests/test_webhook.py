"""The generic JSON webhook receiver, paced and coalesced by the same dispatcher."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from dingtalk_helpers import parse_hook
from events_factory import T0, event
from harness import FakeClock
from outboxes import MemoryOutbox

from monagent.events import EventKind, OutcomeKind
from monagent.notify.dispatcher import ChatDispatcher
from monagent.notify.webhook import WebhookReceiver, classify


class Hook:
    """A JSON endpoint on loopback that answers the statuses it is told to."""

    def __init__(self) -> None:
        self.bodies = []
        self.statuses = []
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                status = hook.statuses.pop(0) if hook.statuses else 200
                if status == 200:
                    hook.bodies.append(json.loads(body))
                self.send_response(status)
                if status == 429:
                    self.send_header("Retry-After", "120")
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.02,), daemon=True)
        self.thread.start()

    @property
    def url(self):
        return f"http://127.0.0.1:{self.server.server_address[1]}/alerts"

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hook():
    server = Hook()
    yield server
    server.close()


def test_a_batch_is_posted_as_json_with_the_rendered_text_and_every_event(hook):
    clock = FakeClock(T0)
    config = parse_hook({"url": hook.url, "group_wait": "5s", "timezone": "UTC"})
    receiver = WebhookReceiver(config)
    outbox = MemoryOutbox()
    dispatcher = ChatDispatcher(receiver, config.delivery, monotonic=clock.monotonic)
    outbox.add(receiver.name, event(), event(EventKind.RESOLVED, subject="/home", incident="i2", duration=60.0))
    try:
        dispatcher.pump(outbox, clock.time())
        clock.advance(5)
        dispatcher.pump(outbox, clock.time())
    finally:
        receiver.close()
    body = hook.bodies[0]
    assert (body["receiver"], body["status"]) == ("webhook:hook", "firing")
    assert body["title"] == "[FIRING:1] web01 disk /var 93%"
    assert [(e["kind"], e["subject"], e["severity"]) for e in body["events"]] == [
        ("firing", "/var", "critical"),
        ("resolved", "/home", "resolved"),
    ]
    assert body["omitted"] == 0 and outbox.queued_count(receiver.name) == 0


def test_the_same_coalescing_applies_to_webhooks(hook):
    clock = FakeClock(T0)
    config = parse_hook({"url": hook.url, "group_wait": "0"})
    receiver = WebhookReceiver(config)
    outbox = MemoryOutbox()
    outbox.add(receiver.name, event(), event(EventKind.RESOLVED, seq=2))
    try:
        ChatDispatcher(receiver, config.delivery, monotonic=clock.monotonic).pump(outbox, clock.time())
    finally:
        receiver.close()
    assert hook.bodies == [] and outbox.queued_count(receiver.name) == 0


def test_a_server_error_is_retried_and_then_delivered(hook):
    hook.statuses = [503]
    clock = FakeClock(T0)
    config = parse_hook({"url": hook.url, "group_wait": "0"})
    receiver = WebhookReceiver(config)
    outbox = MemoryOutbox()
    outbox.add(receiver.name, event())
    dispatcher = ChatDispatcher(receiver, config.delivery, monotonic=clock.monotonic, rand=lambda: 1.0)
    try:
        dispatcher.pump(outbox, clock.time())
        assert hook.bodies == []
        clock.advance(5)
        dispatcher.pump(outbox, clock.time())
    finally:
        receiver.close()
    assert len(hook.bodies) == 1


def test_events_past_the_body_budget_are_counted_as_omitted(hook):
    config = parse_hook({"url": hook.url, "body_budget": 5000})
    receiver = WebhookReceiver(config)
    from monagent.notify.coalesce import Batch, Item

    items = tuple(Item(event(subject=f"/m/{n}", incident=f"i{n}"), (n,)) for n in range(50))
    body = receiver.body(Batch(items, budget=5000))
    data = json.loads(body)
    assert len(body) <= 5000
    assert len(data["events"]) + data["omitted"] == 50 and data["omitted"] > 0


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (200, OutcomeKind.DELIVERED),
        (204, OutcomeKind.DELIVERED),
        (400, OutcomeKind.REJECTED),
        (401, OutcomeKind.BROKEN),
        (404, OutcomeKind.BROKEN),
        (413, OutcomeKind.TOO_LARGE),
        (429, OutcomeKind.LOCKED_OUT),
        (500, OutcomeKind.RETRY),
        (502, OutcomeKind.RETRY),
    ],
)
def test_http_statuses_map_to_outcomes(status, kind):
    assert classify(status, "", T0).kind == kind


def test_retry_after_sets_the_lockout():
    assert classify(429, "120", T0).not_before == T0 + 120


def test_a_network_error_does_not_reveal_credentials_in_the_url():
    config = parse_hook({"url": "http://user:pa55word@127.0.0.1:9/hook?token=s3cr3t", "timeout": "1s"})
    receiver = WebhookReceiver(config)
    try:
        outcome = receiver.post(b"{}", T0)
    finally:
        receiver.close()
    assert outcome.kind == OutcomeKind.RETRY
    assert "s3cr3t" not in outcome.reason and "pa55word" not in outcome.reason
