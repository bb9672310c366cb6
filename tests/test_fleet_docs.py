"""The configurations in docs/fleet.md work: checked by amtool/promtool and run by the real servers."""

from __future__ import annotations

import json
import re
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Dict, List, Optional

import pytest
from conftest_fleet import (
    ALERTMANAGER,
    AMTOOL,
    PROMETHEUS,
    PROMTOOL,
    Alertmanager,
    AlertmanagerOutbox,
    am_config,
    dispatcher_for,
    event,
    free_port,
    need_binary,
    run_tool,
)

from monagent.api import Metric, Status
from monagent.events import EventKind
from monagent.metrics import AgentSnapshot, CheckSnapshot, MetricsServer
from monagent.metrics_config import MetricsConfig

DOC = Path(__file__).resolve().parent.parent / "docs" / "fleet.md"


def doc_block(first_line: str) -> str:
    """The fenced block of docs/fleet.md whose first line is ``first_line`` (a file name comment)."""
    for block in re.findall(r"```[a-z]*\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S):
        if block.startswith(first_line + "\n"):
            return str(block)
    raise AssertionError(f"docs/fleet.md has no block starting with {first_line!r}")


def until(condition, what: str, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"{what}: not seen within {timeout:.0f} s")


# ---------------------------------------------------------------- the tools' own checks


def test_the_alertmanager_config_passes_amtool(tmp_path):
    amtool = need_binary(AMTOOL, "prometheus-alertmanager")
    path = tmp_path / "alertmanager.yml"
    path.write_text(doc_block("# /etc/prometheus/alertmanager.yml"), encoding="utf-8")
    result = run_tool([amtool, "check-config", str(path)])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_the_prometheus_rules_pass_promtool(tmp_path):
    promtool = need_binary(PROMTOOL, "prometheus")
    path = tmp_path / "monagent.yml"
    path.write_text(doc_block("# /etc/prometheus/rules/monagent.yml"), encoding="utf-8")
    result = run_tool([promtool, "check", "rules", str(path)])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 3 rules found" in result.stdout


def prometheus_config(tmp_path: Path, targets: Optional[str] = None, interval: str = "30s") -> Path:
    rules = tmp_path / "monagent-rules.yml"
    rules.write_text(doc_block("# /etc/prometheus/rules/monagent.yml"), encoding="utf-8")
    text = doc_block("# /etc/prometheus/prometheus.yml").replace("/etc/prometheus/rules/monagent.yml", str(rules))
    text = text.replace('["am1.example.com:9093", "am2.example.com:9093"]', '["127.0.0.1:1"]')
    text = text.replace("scrape_interval: 30s", f"scrape_interval: {interval}")
    text = text.replace("evaluation_interval: 30s", f"evaluation_interval: {interval}")
    if targets is not None:
        text = text.replace('["web1:9717", "web2:9717", "db1:9717"]', targets)
    path = tmp_path / "prometheus.yml"
    path.write_text(text, encoding="utf-8")
    return path


def test_the_prometheus_config_passes_promtool(tmp_path):
    promtool = need_binary(PROMTOOL, "prometheus")
    result = run_tool([promtool, "check", "config", str(prometheus_config(tmp_path))])
    assert result.returncode == 0, result.stdout + result.stderr


# ---------------------------------------------------------------- a real Prometheus scrapes an agent


def test_prometheus_scrapes_an_agent_with_the_documented_job_and_relabelling(tmp_path):
    binary = need_binary(PROMETHEUS, "prometheus")
    source = AgentSnapshot(
        "web1",
        time.time(),
        checks=(CheckSnapshot("root_disk", "disk", "/", Status.CRITICAL, (Metric("used_percent", 96.5, "%"),)),),
    )
    agent = MetricsServer(MetricsConfig(True, "127.0.0.1:0"), lambda: source, poll_interval=0.02)
    agent.start()
    port = free_port()
    config = prometheus_config(tmp_path, f'["127.0.0.1:{agent.address[1]}"]', interval="1s")
    log = open(tmp_path / "prometheus.log", "wb")
    process = subprocess.Popen(
        [binary, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}", f"--web.listen-address=127.0.0.1:{port}"],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        query = urllib.parse.quote('monagent_check_value{job="monagent"}')

        def scraped() -> List[Dict[str, Any]]:
            try:
                url = f"http://127.0.0.1:{port}/api/v1/query?query={query}"
                with urllib.request.urlopen(url, timeout=2) as answer:
                    return list(json.load(answer)["data"]["result"])
            except OSError:
                return []

        [series] = until(scraped, "the agent's metrics in Prometheus")
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()
        agent.stop()
    assert series["metric"] == {
        "__name__": "monagent_check_value",
        "job": "monagent",
        "instance": "127.0.0.1",
        "host": "web1",
        "check": "root_disk",
        "subject": "/",
        "metric": "used_percent",
        "unit": "%",
    }
    assert series["value"][1] == "96.5"


# ---------------------------------------------------------------- a real Alertmanager runs the documented config


class Sink:
    """Stands for prometheus-webhook-dingtalk: records Alertmanager's webhook calls by path."""

    def __init__(self) -> None:
        self.calls: List[tuple] = []
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                sink.calls.append((self.path, json.loads(body)))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.02,), daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def alerts_at(self, path: str) -> List[Dict[str, str]]:
        return [alert["labels"] for p, call in self.calls if p == path for alert in call["alerts"]]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


@pytest.fixture
def documented_alertmanager(tmp_path):
    binary = need_binary(ALERTMANAGER, "prometheus-alertmanager")
    sink = Sink()
    config = doc_block("# /etc/prometheus/alertmanager.yml").replace("http://127.0.0.1:8060", sink.url)
    server = Alertmanager(binary, tmp_path / "am", config.replace("group_wait: 30s", "group_wait: 1s"))
    server.start()
    server.sink = sink  # type: ignore[attr-defined]
    yield server
    server.stop()
    sink.close()


def test_a_critical_alert_reaches_both_dingtalk_robots_and_the_watchdog_reaches_none(documented_alertmanager, closing):
    am = documented_alertmanager
    dispatcher = dispatcher_for(am_config(am.url))
    closing(dispatcher)
    outbox = AlertmanagerOutbox()
    outbox.add("alertmanager", event(EventKind.FIRING, severity=Status.CRITICAL))

    dispatcher.pump(outbox, time.time())

    for path in ("/dingtalk/oncall/send", "/dingtalk/ops/send"):
        [labels] = until(lambda p=path: am.sink.alerts_at(p), f"the alert at {path}")
        assert (labels["alertname"], labels["instance"], labels["severity"]) == ("DiskUsedPercent", "web1", "critical")
    receivers = {a["labels"]["alertname"]: [r["name"] for r in a["receivers"]] for a in am.alerts()}
    assert receivers == {"DiskUsedPercent": ["dingtalk-oncall", "dingtalk-ops"], "MonagentWatchdog": ["deadman"]}


def test_an_ha_pair_gets_every_alert_from_the_agent_and_the_group_gets_one_message(tmp_path, closing):
    binary = need_binary(ALERTMANAGER, "prometheus-alertmanager")
    sink = Sink()
    config = doc_block("# /etc/prometheus/alertmanager.yml").replace("http://127.0.0.1:8060", sink.url)
    config = config.replace("group_wait: 30s", "group_wait: 1s")
    gossip = [free_port(), free_port()]
    timers = [
        "--cluster.peer-timeout=3s",
        "--cluster.settle-timeout=2s",
        "--cluster.gossip-interval=50ms",
        "--cluster.pushpull-interval=1s",
    ]
    members = [
        Alertmanager(
            binary,
            tmp_path / f"am{i}",
            config,
            flags=[f"--cluster.listen-address=127.0.0.1:{gossip[i]}", f"--cluster.peer=127.0.0.1:{gossip[1 - i]}", *timers],
        )
        for i in (0, 1)
    ]
    try:
        for member in members:
            member.start()
        until(lambda: all(len(m.status()["cluster"]["peers"]) == 2 for m in members), "the members peered")
        dispatcher = dispatcher_for(am_config(*(m.url for m in members), watchdog=False))
        closing(dispatcher)
        outbox = AlertmanagerOutbox()
        outbox.add("alertmanager", event(EventKind.FIRING, severity=Status.WARNING))

        dispatcher.pump(outbox, time.time())

        assert [[a["labels"]["alertname"] for a in m.alerts()] for m in members] == [["DiskUsedPercent"]] * 2
        # Both members flush the group; each one's dedup stage runs after its peer wait and reads the
        # notification log the other gossiped.
        until(lambda: all(m.metric("alertmanager_nflog_queries_total") >= 1 for m in members), "both deduplicated")
        sent = [m.metric('alertmanager_notifications_total{integration="webhook"}') for m in members]
    finally:
        for member in members:
            member.stop()
        sink.close()
    assert sorted(sent) == [0.0, 1.0]
    assert [path for path, _ in sink.calls] == ["/dingtalk/ops/send"]


def test_monagent_down_mutes_every_other_alert_of_that_host_only(documented_alertmanager, closing):
    am = documented_alertmanager
    web1 = dispatcher_for(am_config(am.url))
    closing(web1)
    outbox = AlertmanagerOutbox()
    outbox.add("alertmanager", event(EventKind.FIRING, severity=Status.WARNING))
    web1.pump(outbox, time.time())
    web2 = dispatcher_for(am_config(am.url))
    web2.host = "web2"
    closing(web2)
    outbox.add("alertmanager", event(EventKind.FIRING, severity=Status.WARNING, host="web2"))
    web2.pump(outbox, time.time())
    down = {
        "labels": {"alertname": "MonagentDown", "instance": "web1", "job": "monagent", "severity": "critical"},
        "annotations": {"summary": "web1: monagent does not answer"},
    }
    request = urllib.request.Request(
        f"{am.url}/api/v2/alerts", data=json.dumps([down]).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=5):
        pass

    def states() -> Dict[tuple, str]:
        return {(a["labels"]["alertname"], a["labels"]["instance"]): a["status"]["state"] for a in am.alerts()}

    until(lambda: "unprocessed" not in states().values(), "every alert processed")
    assert states() == {
        ("DiskUsedPercent", "web1"): "suppressed",
        ("MonagentWatchdog", "web1"): "suppressed",
        ("MonagentDown", "web1"): "active",
        ("DiskUsedPercent", "web2"): "active",
        ("MonagentWatchdog", "web2"): "active",
    }


@pytest.fixture
def closing():
    made: List[Any] = []
    yield made.append
    for dispatcher in made:
        dispatcher.close(time.monotonic() + 5)
