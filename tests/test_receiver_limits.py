"""Hostile receivers as real servers on loopback: one that drips its reply, one that answers 1.5 GB,
one that redirects elsewhere. Each request ends by its deadline, reads at most 64 KiB, follows no
redirect; and with one delivery lane per receiver a stuck one delays only itself."""

from __future__ import annotations

import socket
import threading
import time
from typing import Callable, List

import pytest
from dingtalk_helpers import parse_hook
from events_factory import T0, event
from outboxes import MemoryOutbox

from monagent.agent import Delivery
from monagent.events import OutcomeKind
from monagent.notify.dispatcher import ChatDispatcher
from monagent.notify.webhook import WebhookReceiver


class RawServer:
    """A TCP server on loopback whose every connection is handled by ``behave(conn)`` in a thread."""

    def __init__(self, behave: Callable[[socket.socket], None]) -> None:
        self.behave = behave
        self.sent = 0
        self.requests: List[bytes] = []
        self.stop = threading.Event()
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.1)
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}/alerts"

    def _accept(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except socket.timeout:
                continue
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            data = b""
            conn.settimeout(5)
            try:
                while b"\r\n\r\n" not in data:
                    data += conn.recv(65536)
                self.requests.append(data)
                self.behave(conn)
            except OSError:
                pass  # the client hung up: what a deadline or a size cap does

    def send(self, conn: socket.socket, data: bytes) -> None:
        conn.sendall(data)
        self.sent += len(data)

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)
        self.sock.close()


@pytest.fixture
def servers():
    started: List[RawServer] = []

    def start(behave: Callable[[RawServer, socket.socket], None]) -> RawServer:
        holder: List[RawServer] = []
        server = RawServer(lambda conn: behave(holder[0], conn))
        holder.append(server)
        started.append(server)
        return server

    yield start
    for server in started:
        server.close()


def drip_body(server: RawServer, conn: socket.socket) -> None:
    server.send(conn, b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n")
    while not server.stop.is_set():
        server.send(conn, b"x")
        time.sleep(0.3)


def drip_headers(server: RawServer, conn: socket.socket) -> None:
    for byte in b"HTTP/1.1 200 OK\r\nX-Slow: " + b"y" * 100000:
        if server.stop.is_set():
            return
        server.send(conn, bytes([byte]))
        time.sleep(0.3)


def huge(server: RawServer, conn: socket.socket) -> None:
    size = 1536 * 1024 * 1024
    server.send(conn, f"HTTP/1.1 200 OK\r\nContent-Length: {size}\r\n\r\n".encode())
    chunk = b"\0" * 65536
    for _ in range(size // len(chunk)):
        server.send(conn, chunk)


def ok(server: RawServer, conn: socket.socket) -> None:
    server.send(conn, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")


def post_once(url: str, timeout: str = "1s"):
    receiver = WebhookReceiver(parse_hook({"url": url, "timeout": timeout}))
    try:
        return receiver.post(b"{}", T0)
    finally:
        receiver.close()


def within(seconds: float, func: Callable[[], object]) -> object:
    """``func()``, run in a thread; fails when it has not returned after ``seconds`` (it would hang forever)."""
    box: List[object] = []
    thread = threading.Thread(target=lambda: box.append(func()), daemon=True)
    thread.start()
    thread.join(seconds)
    assert box, f"still waiting after {seconds} s"
    return box[0]


@pytest.mark.parametrize("behave", [drip_body, drip_headers], ids=["body", "headers"])
def test_a_receiver_that_drips_its_reply_is_cut_off_at_the_deadline(servers, behave):
    server = servers(behave)
    outcome = within(15, lambda: post_once(server.url))
    assert outcome.kind == OutcomeKind.RETRY  # type: ignore[attr-defined]
    assert outcome.reason == "network error: no complete reply within 1s"  # type: ignore[attr-defined]


def test_a_receiver_that_answers_gigabytes_is_read_no_further_than_64_kib(servers):
    server = servers(huge)
    outcome = within(30, lambda: post_once(server.url, "20s"))
    assert outcome.kind == OutcomeKind.RETRY  # type: ignore[attr-defined]
    assert outcome.reason == "the reply is larger than 64 KiB; it was cut off unread"  # type: ignore[attr-defined]
    time.sleep(0.2)
    assert server.sent < 64 * 1024 * 1024  # the sender stopped once the client hung up, far from 1.5 GB


def test_a_redirect_to_another_host_is_not_followed_and_is_an_error_naming_the_target(servers):
    elsewhere = servers(ok)
    target = elsewhere.url.replace("127.0.0.1", "localhost") + "?token=s3cret"

    def redirect(server: RawServer, conn: socket.socket) -> None:
        server.send(conn, f"HTTP/1.1 307 Temporary Redirect\r\nLocation: {target}\r\nContent-Length: 0\r\n\r\n".encode())

    origin = servers(redirect)
    outcome = post_once(origin.url)
    assert outcome.kind == OutcomeKind.BROKEN
    where = target.split("?")[0]
    assert outcome.reason == f"HTTP 307 redirect to {where} is not followed: configure the final URL (check the webhook url)"
    assert "s3cret" not in outcome.reason
    assert elsewhere.requests == []


def test_a_stuck_receiver_delays_only_itself(servers):
    stuck, good = servers(drip_body), servers(ok)
    outbox = MemoryOutbox()
    dispatchers = []
    for name, url in (("stuck", stuck.url), ("good", good.url)):
        config = parse_hook({"url": url, "timeout": "30s", "group_wait": "0"}, name=name)
        dispatchers.append(ChatDispatcher(WebhookReceiver(config), config.delivery))
        outbox.add(f"webhook:{name}", event())
    delivery = Delivery(outbox, dispatchers)
    delivery.start()
    try:
        deadline = time.monotonic() + 10
        while outbox.queued_count("webhook:good") and time.monotonic() < deadline:
            time.sleep(0.05)
        assert outbox.queued_count("webhook:good") == 0  # delivered while the other still drips
        assert outbox.queued_count("webhook:stuck") == 1 and len(stuck.requests) == 1
    finally:
        stuck.stop.set()
        delivery.stop(time.monotonic() + 5)
