"""Real Prometheus servers for the fleet tests: Alertmanager processes on loopback, promtool, amtool.

Debian's ``prometheus-alertmanager`` and ``prometheus`` packages provide the binaries. Without
them the tests are skipped with the reason, except in CI (``CI`` set), where they must run.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import events_factory
import pytest
from outboxes import MemoryOutbox

from monagent.api import Status
from monagent.events import Event, EventKind
from monagent.notify.alertmanager import AlertmanagerDispatcher, MemoryKeyValue
from monagent.notify.alertmanager_config import AlertmanagerConfig

try:
    import tomllib  # novermin - tomli below on Python < 3.11
except ImportError:  # Python < 3.11
    import tomli as tomllib  # type: ignore[no-redef]

ALERTMANAGER = os.environ.get("MONAGENT_TEST_ALERTMANAGER", "/usr/bin/prometheus-alertmanager")
PROMTOOL = os.environ.get("MONAGENT_TEST_PROMTOOL", "/usr/bin/promtool")
AMTOOL = os.environ.get("MONAGENT_TEST_AMTOOL", "/usr/bin/amtool")
PROMETHEUS = os.environ.get("MONAGENT_TEST_PROMETHEUS", "/usr/bin/prometheus")
HOST = "web1"

NULL_CONFIG = """\
route:
  receiver: "null"
receivers:
  - name: "null"
"""


def need_binary(path: str, package: str) -> str:
    """The binary's path; skip (outside CI) or fail (in CI) when it is missing."""
    if os.access(path, os.X_OK):
        return path
    found = shutil.which(Path(path).name)
    if found:
        return found
    message = f"{path} is missing: install the Debian package {package} (apt-get install {package})"
    if os.environ.get("CI"):
        pytest.fail(f"{message}; CI must run these tests")
    pytest.skip(message)
    raise AssertionError("unreachable")


def toml(text: str) -> Dict[str, Any]:
    return dict(tomllib.loads(text))


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Alertmanager:
    """One prometheus-alertmanager process on 127.0.0.1 with gossip off; ``stop``/``start`` keep the port."""

    def __init__(
        self,
        binary: str,
        directory: Path,
        config: str = NULL_CONFIG,
        *,
        port: Optional[int] = None,
        flags: Sequence[str] = ("--cluster.listen-address=",),
        auth: str = "",
    ) -> None:
        self.binary = binary
        self.directory = directory
        self.directory.mkdir(parents=True, exist_ok=True)
        self.config_file = directory / "alertmanager.yml"
        self.config_file.write_text(config, encoding="utf-8")
        self.port = port or free_port()
        self.flags = list(flags)  # more flags; the default turns gossip off
        self.auth = auth  # an Authorization header for our own requests, when it requires one
        self.process: Optional[subprocess.Popen] = None
        self._log: Any = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self._log = open(self.directory / "alertmanager.log", "ab")  # closed in stop()
        self.process = subprocess.Popen(
            [
                self.binary,
                f"--config.file={self.config_file}",
                f"--storage.path={self.directory / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                *self.flags,
                "--log.level=warn",
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self.stop()
                raise AssertionError(f"alertmanager exited at start: {self.log_text()}")
            try:
                with self._open("/-/ready", timeout=1) as answer:
                    if answer.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.05)
        self.stop()
        raise AssertionError(f"alertmanager not ready after 30 s: {self.log_text()}")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.process = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def _open(self, path: str, timeout: float = 5) -> Any:
        headers = {"Authorization": self.auth} if self.auth else {}
        return urllib.request.urlopen(urllib.request.Request(self.url + path, headers=headers), timeout=timeout)

    def log_text(self) -> str:
        path = self.directory / "alertmanager.log"
        return path.read_text(errors="replace")[-2000:] if path.exists() else ""

    def alerts(self, **filters: str) -> List[Dict[str, Any]]:
        """``GET /api/v2/alerts``: the alerts it holds that have not ended."""
        query = "&".join(f"{k}={v}" for k, v in filters.items())
        with self._open(f"/api/v2/alerts?{query}") as answer:
            return list(json.load(answer))

    def labels(self, **filters: str) -> List[Dict[str, str]]:
        return sorted((a["labels"] for a in self.alerts(**filters)), key=lambda labels: sorted(labels.items()))

    def status(self) -> Dict[str, Any]:
        with self._open("/api/v2/status") as answer:
            return dict(json.load(answer))

    def metric(self, name_and_labels: str) -> float:
        """One sample of its own /metrics, e.g. ``alertmanager_alerts_received_total{status="resolved",...}``."""
        with self._open("/metrics") as answer:
            for line in answer.read().decode().splitlines():
                if line.startswith(name_and_labels + " "):
                    return float(line.split()[-1])
        return 0.0


def run_tool(argv: Sequence[str], stdin: str = "") -> subprocess.CompletedProcess:
    return subprocess.run(list(argv), input=stdin, capture_output=True, text=True, timeout=60)


def http_error_code(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as exc:
        exc.close()
        return int(exc.code)


# ---------------------------------------------------------------- monagent's side


class AlertmanagerOutbox(MemoryOutbox):
    """The test outbox of tests/outboxes.py (held to the store's contract by tests/test_outbox_contract.py)
    for the Alertmanager dispatcher, which never defers or drops: the active set carries the state."""

    def defer(self, receiver: str, seqs: Sequence[int], not_before: float) -> None:
        raise AssertionError("the Alertmanager dispatcher never defers: the active set carries the state")

    def drop(self, receiver: str, seqs: Sequence[int], reason: str) -> None:
        raise AssertionError("the Alertmanager dispatcher never drops")


def event(
    kind: EventKind,
    *,
    check: str = "root_disk",
    subject: str = "/",
    metric: str = "used_percent",
    severity: Status = Status.CRITICAL,
    at: Optional[float] = None,
    **fields,
) -> Event:
    """tests/events_factory.py's alert as the fleet tests see it: host web1, root_disk / at 96.5% of 95%, at ``at`` (now)."""
    at = time.time() if at is None else at
    defaults = dict(
        id=f"{check}:{kind.value}:{at}",
        incident="",
        host=HOST,
        summary=f"{HOST} {check} {subject} {metric} {kind.value}",
        value=96.5,
        threshold=95.0,
        since=at - 120,
    )
    defaults.update(fields)
    return events_factory.event(kind, check=check, subject=subject, metric=metric, severity=severity, time=at, **defaults)


def am_config(*urls: str, **options) -> AlertmanagerConfig:
    return AlertmanagerConfig(urls=tuple(urls), timeout=5.0, **options)


def dispatcher_for(config: AlertmanagerConfig, kv: Any = None, started_at: float = 0.0) -> AlertmanagerDispatcher:
    """A dispatcher for host web1; ``kv`` is a MemoryKeyValue unless given (a real Store)."""
    return AlertmanagerDispatcher(config, HOST, kv or MemoryKeyValue(), started_at or time.time() - 600)
