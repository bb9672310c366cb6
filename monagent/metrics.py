"""The Prometheus exposition of the running agent (``[metrics]``).

The agent hands over an :class:`AgentSnapshot` (frozen, built after each cycle);
:class:`SnapshotCollector` turns the newest one into metric families on every scrape,
and :class:`MetricsServer` serves them over HTTP from a daemon thread. prometheus_client
writes the text format and adds the process metrics (``process_resident_memory_bytes``);
it is imported only when the listener starts or :func:`render` is called, and so is
``http.server`` (with ssl, email and the rest it pulls in: several MiB of the agent's RSS).

Metric names follow the Prometheus conventions: a ``monagent_`` prefix, base units in the
name (``_seconds``), ``_total`` on counters. A check's own values keep their unit in a
``unit`` label, because one gauge holds every check's metrics.
"""

from __future__ import annotations

import socket
import threading
from bisect import bisect_left
from dataclasses import field
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, List, Mapping, Optional, Sequence, Tuple

from monagent.api import Metric, Status
from monagent.lazylog import get_logger
from monagent.metrics_config import MetricsConfig, split_listen
from monagent.records import record

if TYPE_CHECKING:
    from http.server import ThreadingHTTPServer

    from prometheus_client.registry import CollectorRegistry

log = get_logger(__name__)

CYCLE_BUCKETS: Tuple[float, ...] = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


# ---------------------------------------------------------------- the snapshot


@record
class CheckSnapshot:
    """The latest result of one check instance about one subject."""

    check: str
    type: str
    subject: str
    status: Status
    metrics: Sequence[Metric] = ()


@record
class AlertSnapshot:
    """One alert key that is not inactive; ``phase`` is the state machine's phase name (``"firing"``)."""

    check: str
    subject: str
    metric: str
    phase: str
    severity: Status
    since: Optional[float] = None


@record
class HistogramSnapshot:
    """Cumulative counts per upper bound (``+Inf`` is ``count``), plus the sum of observations."""

    buckets: Sequence[Tuple[float, int]] = tuple((bound, 0) for bound in CYCLE_BUCKETS)
    count: int = 0
    total: float = 0.0


@record
class AgentSnapshot:
    """Everything the exposition shows, as of one moment. Built by the agent; read by scrapes."""

    host: str
    started_at: float
    checks: Sequence[CheckSnapshot] = ()
    alerts: Sequence[AlertSnapshot] = ()
    outbox: Mapping[str, int] = field(default_factory=dict)  # receiver -> queued entries
    notifier_sends: Mapping[str, int] = field(default_factory=dict)  # receiver -> successful sends
    notifier_failures: Mapping[Tuple[str, str], int] = field(default_factory=dict)  # (receiver, class) -> count
    cycle_seconds: HistogramSnapshot = HistogramSnapshot()
    skipped_runs: Mapping[str, int] = field(default_factory=dict)  # check -> runs skipped (still running)
    alertmanager_up: Mapping[str, bool] = field(default_factory=dict)  # Alertmanager URL -> last post accepted
    version: str = ""


class CycleHistogram:
    """A thread-safe accumulator of cycle durations for :attr:`AgentSnapshot.cycle_seconds`."""

    def __init__(self, buckets: Sequence[float] = CYCLE_BUCKETS) -> None:
        self._bounds = tuple(sorted(buckets))
        self._counts = [0] * len(self._bounds)
        self._count = 0
        self._total = 0.0
        self._lock = threading.Lock()

    def observe(self, seconds: float) -> None:
        with self._lock:
            index = bisect_left(self._bounds, seconds)
            if index < len(self._counts):
                self._counts[index] += 1
            self._count += 1
            self._total += seconds

    def snapshot(self) -> HistogramSnapshot:
        with self._lock:
            cumulative, running = [], 0
            for bound, count in zip(self._bounds, self._counts):
                running += count
                cumulative.append((bound, running))
            return HistogramSnapshot(tuple(cumulative), self._count, self._total)


# ---------------------------------------------------------------- the collector


class SnapshotCollector:
    """A prometheus_client collector: every scrape reads the newest snapshot."""

    def __init__(self, snapshot: Callable[[], AgentSnapshot]) -> None:
        self._snapshot = snapshot

    def describe(self) -> List[Any]:
        return []  # registering must not call the agent; names are checked by promtool in the tests

    def collect(self) -> Iterator[Any]:
        snap = self._snapshot()
        yield from _agent_families(snap)
        yield from _check_families(snap)
        yield from _alert_families(snap)
        yield from _delivery_families(snap)


def _agent_families(snap: AgentSnapshot) -> Iterator[Any]:
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

    info = GaugeMetricFamily("monagent_build_info", "monagent version (always 1)", labels=["host", "version"])
    info.add_metric([snap.host, snap.version], 1)
    yield info
    yield GaugeMetricFamily(
        "monagent_start_time_seconds", "when the agent started, seconds since the epoch", value=snap.started_at
    )
    hist = snap.cycle_seconds
    cycle = HistogramMetricFamily("monagent_cycle_duration_seconds", "wall time of one check cycle")
    buckets = [(_le(bound), count) for bound, count in hist.buckets] + [("+Inf", hist.count)]
    cycle.add_metric([], buckets, hist.total)
    yield cycle
    skipped = CounterMetricFamily(
        "monagent_check_skipped_runs", "runs skipped because the previous run of the check was still going", labels=["check"]
    )
    for check, count in sorted(snap.skipped_runs.items()):
        skipped.add_metric([check], count)
    yield skipped


def _le(bound: float) -> str:
    from prometheus_client.utils import floatToGoString

    return str(floatToGoString(bound))  # type: ignore[no-untyped-call]  # untyped in prometheus_client


def _numbered(statuses: Iterable[Status]) -> str:
    """``0 OK, 1 WARNING, ...``: the gauge's values and what they mean (the one table's labels, Nagios case)."""
    return ", ".join(f"{int(s)} {s.label.upper()}" for s in sorted(statuses))


def _check_families(snap: AgentSnapshot) -> Iterator[Any]:
    from prometheus_client.core import GaugeMetricFamily

    value = GaugeMetricFamily(
        "monagent_check_value",
        "the latest value of each check metric, in its unit label",
        labels=["host", "check", "subject", "metric", "unit"],
    )
    status = GaugeMetricFamily(
        "monagent_check_status",
        f"the latest status of each check subject: {_numbered(Status)}",
        labels=["host", "check", "subject", "type"],
    )
    for check in snap.checks:
        status.add_metric([snap.host, check.check, check.subject, check.type], int(check.status))
        for metric in check.metrics:
            if metric.value is not None:
                value.add_metric([snap.host, check.check, check.subject, metric.name, metric.unit], metric.value)
    yield value
    yield status


def _alert_families(snap: AgentSnapshot) -> Iterator[Any]:
    from prometheus_client.core import GaugeMetricFamily

    keys = ["host", "check", "subject", "metric"]
    phase = GaugeMetricFamily(
        "monagent_alert_phase", "1 for the phase each alert key is in (inactive keys are absent)", labels=[*keys, "phase"]
    )
    severity = GaugeMetricFamily(
        "monagent_alert_severity",
        f"the severity of each alert key: {_numbered(s for s in Status if s != Status.OK)}",
        labels=keys,
    )
    since = GaugeMetricFamily(
        "monagent_alert_since_timestamp_seconds", "when each alert key entered its phase, seconds since the epoch", labels=keys
    )
    for alert in snap.alerts:
        labels = [snap.host, alert.check, alert.subject, alert.metric]
        phase.add_metric([*labels, str(getattr(alert.phase, "value", alert.phase))], 1)
        severity.add_metric(labels, int(alert.severity))
        if alert.since is not None:
            since.add_metric(labels, alert.since)
    yield phase
    yield severity
    yield since


def _delivery_families(snap: AgentSnapshot) -> Iterator[Any]:
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

    outbox = GaugeMetricFamily("monagent_outbox_entries", "events queued for each receiver", labels=["receiver"])
    for receiver, count in sorted(snap.outbox.items()):
        outbox.add_metric([receiver], count)
    yield outbox
    sends = CounterMetricFamily("monagent_notifier_sends", "deliveries each receiver accepted", labels=["receiver"])
    for receiver, count in sorted(snap.notifier_sends.items()):
        sends.add_metric([receiver], count)
    yield sends
    failures = CounterMetricFamily(
        "monagent_notifier_failures",
        "failed delivery attempts by outcome class (retry, locked_out, rejected, too_large, broken)",
        labels=["receiver", "class"],
    )
    for (receiver, kind), count in sorted(snap.notifier_failures.items()):
        failures.add_metric([receiver, kind], count)
    yield failures
    am_up = GaugeMetricFamily(
        "monagent_alertmanager_up", "1 when the last post to this Alertmanager was accepted", labels=["url"]
    )
    for url, up in sorted(snap.alertmanager_up.items()):
        am_up.add_metric([url], 1 if up else 0)
    yield am_up


# ---------------------------------------------------------------- rendering and serving


def build_registry(snapshot: Callable[[], AgentSnapshot], process: bool = True) -> CollectorRegistry:
    """A private registry (not prometheus_client's global one) with the snapshot and process collectors."""
    from prometheus_client import CollectorRegistry, ProcessCollector

    registry = CollectorRegistry()
    registry.register(SnapshotCollector(snapshot))
    if process:
        ProcessCollector(registry=registry)
    return registry


def render(snapshot: AgentSnapshot, process: bool = True) -> bytes:
    """The text exposition (format 0.0.4) of ``snapshot``, as a scrape would get it."""
    from prometheus_client import generate_latest

    return bytes(generate_latest(build_registry(lambda: snapshot, process)))


class MetricsServerError(Exception):
    """The listener could not start (address in use, not permitted); the message says which address."""


class MetricsServer:
    """Serves ``config.path`` on ``config.listen`` from a daemon thread.

    ``snapshot`` is called from the server thread on every scrape: it must be cheap and
    thread-safe (return the newest frozen snapshot the agent stored).
    """

    def __init__(self, config: MetricsConfig, snapshot: Callable[[], AgentSnapshot], *, poll_interval: float = 0.5) -> None:
        self.config = config
        self._snapshot = snapshot
        self.poll_interval = poll_interval  # how soon stop() is noticed; each poll wakes the thread
        self._server: Optional[ThreadingHTTPServer] = None
        self._thread: Optional[threading.Thread] = None

    @property
    def address(self) -> Tuple[str, int]:
        """The bound host and port (the real port when the config asked for port 0)."""
        if self._server is None:
            return split_listen(self.config.listen)
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    def start(self) -> None:
        host, port = _listen_address(self.config.listen)
        handler = _handler_class(build_registry(self._snapshot), self.config.path)
        server_class = _server_class(ipv6=":" in host)
        try:
            self._server = server_class((host, port), handler)
        except OSError as exc:
            raise MetricsServerError(f"metrics: cannot listen on {self.config.listen}: {exc.strerror or exc}") from None
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(self.poll_interval,), name="metrics", daemon=True
        )
        self._thread.start()
        log.info("serving Prometheus metrics on http://%s%s", self.config.listen, self.config.path)

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join()
        self._server, self._thread = None, None


def _listen_address(listen: str) -> Tuple[str, int]:
    """Like :func:`split_listen` but allows port 0 (an ephemeral port, used by tests)."""
    host, _, port = listen.rpartition(":")
    host = host[1:-1] if host.startswith("[") else host
    return host, int(port)


def _server_class(ipv6: bool) -> type:
    from http.server import ThreadingHTTPServer

    class _Server(ThreadingHTTPServer):
        daemon_threads = True
        address_family = socket.AF_INET6 if ipv6 else socket.AF_INET

        def handle_error(self, request: Any, client_address: Any) -> None:
            log.exception("metrics: serving a scrape from %s failed", client_address[0])

    return _Server


def _handler_class(registry: CollectorRegistry, path: str) -> type:
    from http.server import BaseHTTPRequestHandler

    class Handler(BaseHTTPRequestHandler):
        server_version = "monagent"

        def do_GET(self) -> None:
            from prometheus_client.exposition import choose_encoder

            if self.path.split("?", 1)[0] == path:
                encoder, content_type = choose_encoder(self.headers.get("Accept", ""))
                self._reply(200, content_type, encoder(registry))
            elif self.path == "/":
                body = f'<html><body><a href="{path}">monagent metrics</a></body></html>\n'
                self._reply(200, "text/html; charset=utf-8", body.encode())
            else:
                self._reply(404, "text/plain; charset=utf-8", f"not found; the metrics are at {path}\n".encode())

        def _reply(self, code: int, content_type: str, body: bytes) -> None:
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            log.debug("metrics: " + format, *args)

    return Handler


__all__ = [
    "AgentSnapshot",
    "AlertSnapshot",
    "CheckSnapshot",
    "CycleHistogram",
    "HistogramSnapshot",
    "MetricsServer",
    "MetricsServerError",
    "SnapshotCollector",
    "build_registry",
    "render",
]
