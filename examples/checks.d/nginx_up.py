"""nginx_up: is nginx answering, how fast, and how busy is it (from its stub_status page).

An example monagent plugin, kept in the repository and exercised by its tests
(tests/test_example_plugin.py); docs/writing-checks.md walks through it.

Install: copy this file to /etc/monagent/checks.d/nginx_up.py, owned by root and not
writable by group or others (``install -m 0644 -o root nginx_up.py /etc/monagent/checks.d/``).
The file name is the check type name. Then, in agent.toml::

    [checks.nginx]
    type = "nginx_up"
    url = "http://127.0.0.1/nginx_status"   # nginx: location /nginx_status { stub_status; allow 127.0.0.1; deny all; }

    [checks.nginx.thresholds]
    latency_seconds = { warning = 0.5, critical = 2 }
    active_connections = { warning = 800, critical = 1000 }

It reports one result: a verdict (CRITICAL when nginx does not answer as expected) and,
when it answers, the response time and, from a stub_status page, the connection
counts and the request rate. Any health URL works; ``contains`` checks its body.
Its reasons are message ids with their texts in English and Chinese (``texts``), so a
Chinese DingTalk group reads them in Chinese and an English one in English.
"""

from __future__ import annotations

import re
import time
import urllib.error
import urllib.request
from typing import ClassVar, Dict, Optional, Tuple

from monagent.api import Check, Context, Metric, MetricSpec, Result, Status

_STUB_STATUS = re.compile(
    r"Active connections:\s*(?P<active>\d+)\s+server accepts handled requests\s+"
    r"(?P<accepts>\d+)\s+(?P<handled>\d+)\s+(?P<requests>\d+)\s+"
    r"Reading:\s*(?P<reading>\d+)\s+Writing:\s*(?P<writing>\d+)\s+Waiting:\s*(?P<waiting>\d+)"
)
_BODY_LIMIT = 65536


class NginxUp(Check):
    """HTTP GET of ``url``: CRITICAL unless it answers ``expect_status`` (and contains ``contains``)."""

    interval: ClassVar[float] = 30.0
    timeout: ClassVar[float] = 15.0
    metrics: ClassVar[Dict[str, MetricSpec]] = {
        "latency_seconds": MetricSpec(unit="s", description="time to fetch the whole page", warning=1.0, critical=5.0, minimum=0),
        "active_connections": MetricSpec(description="open client connections, idle ones included", minimum=0),
        "waiting_connections": MetricSpec(description="idle keep-alive connections", minimum=0),
        "requests_per_second": MetricSpec(unit="/s", description="requests served per second since the last run", minimum=0),
    }
    # The check's own words, by message id, in each language monagent speaks. A field's spec
    # says what it holds ({latency:s} is seconds, shown as "12 ms"); {url} is shown as it is.
    texts: ClassVar[Dict[str, Dict[str, str]]] = {
        "nginx_up.no_answer": {"en": "no answer from {url}: {why}", "zh": "{url} 无应答：{why}"},
        "nginx_up.bad_status": {
            "en": "HTTP {status} from {url} (expected {expected})",
            "zh": "{url} 返回 HTTP {status}（应为 {expected}）",
        },
        "nginx_up.missing_text": {
            "en": 'the page at {url} does not contain "{text}"',
            "zh": "{url} 的页面中没有“{text}”",
        },
        "nginx_up.ok": {"en": "HTTP {status} in {latency:s}", "zh": "HTTP {status}，耗时 {latency:s}"},
    }

    def __init__(
        self,
        *,
        url: str = "http://127.0.0.1/nginx_status",
        expect_status: int = 200,
        contains: str = "",
        request_timeout: float = 5.0,
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f'url: must start with http:// or https://, got "{url}"')
        self.url = url
        self.expect_status = expect_status
        self.contains = contains
        self.request_timeout = request_timeout
        self.previous: Optional[Tuple[float, int]] = None  # (monotonic, requests) of the last run

    def run(self, ctx: Context) -> Result:
        started = time.monotonic()
        try:
            status, body = self._get()
        except OSError as exc:  # refused, reset, timed out, DNS: nginx is not answering
            return Result(status=Status.CRITICAL, reason=self.text("nginx_up.no_answer", url=self.url, why=_why(exc)))
        latency = time.monotonic() - started
        if status != self.expect_status:
            reason = self.text("nginx_up.bad_status", status=status, url=self.url, expected=self.expect_status)
            return Result(status=Status.CRITICAL, reason=reason, details=body[:500])
        if self.contains and self.contains not in body:
            reason = self.text("nginx_up.missing_text", url=self.url, text=self.contains)
            return Result(status=Status.CRITICAL, reason=reason, details=body[:500])
        metrics = [Metric("latency_seconds", round(latency, 4), "s")]
        metrics.extend(self._stub_status_metrics(body, ctx.monotonic))
        reason = self.text("nginx_up.ok", status=status, latency=latency)
        return Result(status=Status.OK, reason=reason, metrics=tuple(metrics))

    def _get(self) -> Tuple[int, str]:
        request = urllib.request.Request(self.url, headers={"User-Agent": "monagent-nginx_up"})  # noqa: S310 - http(s) only
        try:
            with urllib.request.urlopen(request, timeout=self.request_timeout) as response:  # noqa: S310
                return response.status, response.read(_BODY_LIMIT).decode("utf-8", "replace")
        except urllib.error.HTTPError as exc:  # an answer all the same: judge its status code
            with exc:
                return exc.code, exc.read(_BODY_LIMIT).decode("utf-8", "replace")

    def _stub_status_metrics(self, body: str, now: float) -> Tuple[Metric, ...]:
        match = _STUB_STATUS.search(body)
        if not match:
            return ()
        requests = int(match.group("requests"))
        rate = None
        if self.previous is not None and now > self.previous[0] and requests >= self.previous[1]:
            rate = round((requests - self.previous[1]) / (now - self.previous[0]), 3)
        self.previous = (now, requests)
        return (
            Metric("active_connections", int(match.group("active"))),
            Metric("waiting_connections", int(match.group("waiting"))),
            Metric("requests_per_second", rate, "/s"),
        )


def _why(exc: OSError) -> str:
    reason = getattr(exc, "reason", exc)  # URLError wraps the socket error
    if isinstance(reason, OSError) and reason.strerror:
        return reason.strerror
    return str(reason) or type(reason).__name__
