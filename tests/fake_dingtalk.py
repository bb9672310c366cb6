"""A DingTalk custom robot on 127.0.0.1, behaving as docs/design/dingtalk-robot.md describes.

It checks, in order: the access token (300001), the signature and its one-hour window
(310000 ``sign not match`` / ``invalid timestamp``), the Content-Type (43004), the body
size (460101 past 20,000 bytes), the rate (20 per rolling minute per robot; the 21st
answers 410100 and the robot then refuses for 10 minutes), the msgtype (400105) and the
keywords (310000 ``keywords not in content``). Every answer is HTTP 200 with an errcode,
as DingTalk's are. Accepted messages are recorded.

Faults can be switched on: HTTP 500, a hang (the handler blocks until released), a
connection reset, or any errcode. The clock is injectable, so a test can move through a
ten-minute lockout or an hour-long signature window without waiting.
"""

from __future__ import annotations

import base64
import collections
import hashlib
import hmac
import json
import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Deque, Dict, List, Optional, Tuple
from urllib.parse import parse_qs, urlsplit

BODY_LIMIT = 20_000
RATE_LIMIT = 20
LOCKOUT = 600.0


@dataclass
class Robot:
    token: str
    secret: Optional[str] = None
    keywords: Tuple[str, ...] = ()
    sends: Deque[float] = field(default_factory=collections.deque)
    locked_until: float = 0.0


@dataclass(frozen=True)
class Received:
    """One accepted message."""

    token: str
    at: float
    body: Dict[str, Any]
    size: int

    @property
    def title(self) -> str:
        return str(self.body.get("markdown", {}).get("title", ""))

    @property
    def text(self) -> str:
        return str(self.body.get("markdown", {}).get("text", ""))


@dataclass(frozen=True)
class Fault:
    kind: str  # "http500" | "hang" | "reset" | "errcode"
    errcode: int = 0
    errmsg: str = ""


class FakeDingTalk:
    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self.robots: Dict[str, Robot] = {}
        self.accepted: List[Received] = []
        self.answers: List[Tuple[float, str, int]] = []  # (time, token, errcode) of every request answered
        self.requests: List[float] = []  # the time of every request received, faults included
        self.faults: Deque[Fault] = collections.deque()
        self.sticky_fault: Optional[Fault] = None
        self.hanging = threading.Event()  # set while a request hangs
        self.release = threading.Event()
        self.lock = threading.RLock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.02,), name="fake-dingtalk", daemon=True)

    # -- setup
    def add_robot(self, token: str, secret: Optional[str] = None, keywords: Tuple[str, ...] = ()) -> Robot:
        robot = Robot(token, secret, tuple(keywords))
        self.robots[token] = robot
        return robot

    def webhook(self, token: str) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/robot/send?access_token={token}"

    def fail_next(self, *faults: Fault) -> None:
        self.faults.extend(faults)

    def fail_always(self, fault: Optional[Fault]) -> None:
        self.sticky_fault = fault

    def __enter__(self) -> FakeDingTalk:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    # -- the robot's rules
    def answer(self, path: str, headers: Any, body: bytes) -> Tuple[int, Dict[str, Any]]:
        query = parse_qs(urlsplit(path).query)
        token = query.get("access_token", [""])[0]
        robot = self.robots.get(token)
        if robot is None:
            return 300001, {"errmsg": "token is not exist"}
        now = self.clock()
        if robot.secret is not None:
            problem = self._check_sign(robot.secret, query, now)
            if problem:
                return 310000, {"errmsg": problem}
        if "application/json" not in headers.get("Content-Type", ""):
            return 43004, {"errmsg": "无效的HTTP HEADER Content-Type"}
        if len(body) > BODY_LIMIT:
            return 460101, {"errmsg": "message too long, exceed 20000 bytes"}
        while robot.sends and robot.sends[0] <= now - 60:
            robot.sends.popleft()
        if now < robot.locked_until:
            return 410100, {"errmsg": "send too fast, exceed 20 times per minute"}
        if len(robot.sends) >= RATE_LIMIT:
            robot.locked_until = now + LOCKOUT
            return 410100, {"errmsg": "send too fast, exceed 20 times per minute"}
        robot.sends.append(now)
        return self._check_content(robot, body, now)

    @staticmethod
    def _check_sign(secret: str, query: Dict[str, List[str]], now: float) -> str:
        timestamp, sign = query.get("timestamp", [""])[0], query.get("sign", [""])[0]
        if not timestamp or not sign or not timestamp.isdigit():
            return "sign not match"
        if abs(int(timestamp) - now * 1000) > 3600 * 1000:
            return "invalid timestamp"
        expected = base64.b64encode(
            hmac.new(secret.encode(), f"{timestamp}\n{secret}".encode(), hashlib.sha256).digest()
        ).decode()
        return "" if hmac.compare_digest(expected, sign) else "sign not match"

    def _check_content(self, robot: Robot, body: bytes, now: float) -> Tuple[int, Dict[str, Any]]:
        try:
            data = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            return 40035, {"errmsg": "缺少参数 json"}
        msgtype = data.get("msgtype")
        if msgtype not in ("text", "markdown", "link", "actionCard", "feedCard"):
            return 400105, {"errmsg": "不支持的消息类型"}
        content = json.dumps(data.get(msgtype, {}), ensure_ascii=False)
        if robot.keywords and not any(k in content for k in robot.keywords):
            return 310000, {"errmsg": "keywords not in content"}
        with self.lock:
            self.accepted.append(Received(robot.token, now, data, len(body)))
        return 0, {"errmsg": "ok"}

    # -- HTTP
    def _handler(self) -> type:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                with fake.lock:
                    fake.requests.append(fake.clock())
                fault = fake.faults.popleft() if fake.faults else fake.sticky_fault
                if fault is not None and fault.kind != "errcode":
                    if self._fault(fault):
                        return
                if fault is not None and fault.kind == "errcode":
                    code, extra = fault.errcode, {"errmsg": fault.errmsg}
                else:
                    with fake.lock:
                        code, extra = fake.answer(self.path, self.headers, body)
                token = parse_qs(urlsplit(self.path).query).get("access_token", [""])[0]
                with fake.lock:
                    fake.answers.append((fake.clock(), token, code))
                self._reply(200, json.dumps({"errcode": code, **extra}, ensure_ascii=False).encode())

            def _fault(self, fault: Fault) -> bool:
                """True when the request was answered (or cut) by the fault."""
                if fault.kind == "http500":
                    self._reply(500, b"<html>Internal Server Error</html>", "text/html")
                    return True
                if fault.kind == "reset":
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    self.close_connection = True
                    self.connection.close()
                    return True
                fake.hanging.set()  # "hang": then answer normally once released
                fake.release.wait(60)
                return False

            def _reply(self, status: int, payload: bytes, ctype: str = "application/json") -> None:
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", ctype)
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except OSError:  # the client is gone (killed mid-request)
                    self.close_connection = True

        return Handler
