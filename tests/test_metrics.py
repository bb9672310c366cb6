"""The Prometheus exposition: exact samples, promtool's lint, the HTTP listener and [metrics]."""

from __future__ import annotations

import socket
import subprocess
import sys
import urllib.error
import urllib.request
from typing import Dict, Optional

import pytest
from conftest_fleet import PROMTOOL, free_port, http_error_code, need_binary, run_tool, toml
from harness import SUBPROCESS_CWD

from monagent.api import Metric, Status
from monagent.confread import ConfigError, Document, Section
from monagent.metrics import (
    AgentSnapshot,
    AlertSnapshot,
    CheckSnapshot,
    CycleHistogram,
    MetricsServer,
    MetricsServerError,
    render,
)
from monagent.metrics_config import MetricsConfig, parse_metrics


def fast(config: MetricsConfig, source) -> MetricsServer:
    return MetricsServer(config, source, poll_interval=0.02)


def snapshot(**changes) -> AgentSnapshot:
    cycles = CycleHistogram()
    for seconds in (0.04, 0.2, 3.0):
        cycles.observe(seconds)
    fields = dict(
        host="web1",
        started_at=1764340800.0,
        version="0.1.0",
        checks=(
            CheckSnapshot(
                "root_disk",
                "disk",
                "/",
                Status.CRITICAL,
                (Metric("used_percent", 96.5, "%"), Metric("inodes_percent", 12.0, "%")),
            ),
            CheckSnapshot("cpu", "cpu", "", Status.OK, (Metric("usage_percent", None, "%"),)),
            CheckSnapshot("nginx", "process", "nginx", Status.UNKNOWN),
        ),
        alerts=(AlertSnapshot("root_disk", "/", "used_percent", "firing", Status.CRITICAL, 1764340900.0),),
        outbox={"alertmanager": 0, "dingtalk:ops": 3},
        notifier_sends={"alertmanager": 12, "dingtalk:ops": 4},
        notifier_failures={("dingtalk:ops", "locked_out"): 1, ("dingtalk:ops", "retry"): 2},
        cycle_seconds=cycles.snapshot(),
        skipped_runs={"slow_nagios": 2},
        alertmanager_up={"http://am1:9093": True, "http://am2:9093": False},
    )
    fields.update(changes)
    return AgentSnapshot(**fields)


def samples(text: bytes) -> list:
    return [line for line in text.decode().splitlines() if line and not line.startswith("#")]


def test_the_exposition_shows_checks_alerts_delivery_and_the_agent_itself():
    assert samples(render(snapshot(), process=False)) == [
        'monagent_build_info{host="web1",version="0.1.0"} 1.0',
        "monagent_start_time_seconds 1.7643408e+09",
        'monagent_cycle_duration_seconds_bucket{le="0.01"} 0.0',
        'monagent_cycle_duration_seconds_bucket{le="0.025"} 0.0',
        'monagent_cycle_duration_seconds_bucket{le="0.05"} 1.0',
        'monagent_cycle_duration_seconds_bucket{le="0.1"} 1.0',
        'monagent_cycle_duration_seconds_bucket{le="0.25"} 2.0',
        'monagent_cycle_duration_seconds_bucket{le="0.5"} 2.0',
        'monagent_cycle_duration_seconds_bucket{le="1.0"} 2.0',
        'monagent_cycle_duration_seconds_bucket{le="2.5"} 2.0',
        'monagent_cycle_duration_seconds_bucket{le="5.0"} 3.0',
        'monagent_cycle_duration_seconds_bucket{le="10.0"} 3.0',
        'monagent_cycle_duration_seconds_bucket{le="30.0"} 3.0',
        'monagent_cycle_duration_seconds_bucket{le="60.0"} 3.0',
        'monagent_cycle_duration_seconds_bucket{le="+Inf"} 3.0',
        "monagent_cycle_duration_seconds_count 3.0",
        "monagent_cycle_duration_seconds_sum 3.24",
        'monagent_check_skipped_runs_total{check="slow_nagios"} 2.0',
        'monagent_check_value{check="root_disk",host="web1",metric="used_percent",subject="/",unit="%"} 96.5',
        'monagent_check_value{check="root_disk",host="web1",metric="inodes_percent",subject="/",unit="%"} 12.0',
        'monagent_check_status{check="root_disk",host="web1",subject="/",type="disk"} 2.0',
        'monagent_check_status{check="cpu",host="web1",subject="",type="cpu"} 0.0',
        'monagent_check_status{check="nginx",host="web1",subject="nginx",type="process"} 3.0',
        'monagent_alert_phase{check="root_disk",host="web1",metric="used_percent",phase="firing",subject="/"} 1.0',
        'monagent_alert_severity{check="root_disk",host="web1",metric="used_percent",subject="/"} 2.0',
        'monagent_alert_since_timestamp_seconds{check="root_disk",host="web1",metric="used_percent",subject="/"} 1.7643409e+09',
        'monagent_outbox_entries{receiver="alertmanager"} 0.0',
        'monagent_outbox_entries{receiver="dingtalk:ops"} 3.0',
        'monagent_notifier_sends_total{receiver="alertmanager"} 12.0',
        'monagent_notifier_sends_total{receiver="dingtalk:ops"} 4.0',
        'monagent_notifier_failures_total{class="locked_out",receiver="dingtalk:ops"} 1.0',
        'monagent_notifier_failures_total{class="retry",receiver="dingtalk:ops"} 2.0',
        'monagent_alertmanager_up{url="http://am1:9093"} 1.0',
        'monagent_alertmanager_up{url="http://am2:9093"} 0.0',
    ]


def test_the_process_memory_of_the_agent_is_exposed():
    names = {line.split(" ")[0] for line in samples(render(snapshot()))}
    assert {"process_resident_memory_bytes", "process_cpu_seconds_total", "process_open_fds"} <= names


def test_the_exposition_passes_promtool_check_metrics():
    promtool = need_binary(PROMTOOL, "prometheus")
    result = run_tool([promtool, "check", "metrics"], render(snapshot()).decode())
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


def test_an_empty_agent_still_passes_promtool_check_metrics():
    promtool = need_binary(PROMTOOL, "prometheus")
    result = run_tool([promtool, "check", "metrics"], render(AgentSnapshot("web1", 0.0)).decode())
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


# ---------------------------------------------------------------- the listener


@pytest.fixture
def server():
    current = {"snapshot": snapshot()}
    running = fast(MetricsConfig(True, "127.0.0.1:0", "/metrics"), lambda: current["snapshot"])
    running.start()
    running.current = current  # type: ignore[attr-defined]
    yield running
    running.stop()


def get(url: str, accept: Optional[str] = None) -> tuple:
    headers: Dict[str, str] = {"Accept": accept} if accept else {}
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=5) as answer:
        return answer.status, answer.headers["Content-Type"], answer.read()


def test_the_listener_serves_the_newest_snapshot_at_every_scrape(server):
    url = f"http://127.0.0.1:{server.address[1]}/metrics"
    status, content_type, body = get(url)
    assert (status, content_type) == (200, "text/plain; version=0.0.4; charset=utf-8")
    assert b'monagent_outbox_entries{receiver="dingtalk:ops"} 3.0' in body

    server.current["snapshot"] = snapshot(outbox={"dingtalk:ops": 7})

    assert b'monagent_outbox_entries{receiver="dingtalk:ops"} 7.0' in get(url)[2]


def test_the_listener_speaks_openmetrics_when_asked(server):
    url = f"http://127.0.0.1:{server.address[1]}/metrics"
    _, content_type, body = get(url, "application/openmetrics-text; version=1.0.0")
    assert content_type.startswith("application/openmetrics-text")
    assert body.endswith(b"# EOF\n")


def test_other_paths_are_not_found_and_the_root_links_to_the_metrics(server):
    base = f"http://127.0.0.1:{server.address[1]}"
    assert http_error_code(base + "/other") == 404
    assert b'<a href="/metrics">' in get(base + "/")[2]


def test_a_custom_path_is_served():
    running = fast(MetricsConfig(True, "127.0.0.1:0", "/monagent/metrics"), snapshot)
    running.start()
    try:
        base = f"http://127.0.0.1:{running.address[1]}"
        assert get(base + "/monagent/metrics")[0] == 200
        assert http_error_code(base + "/metrics") == 404
    finally:
        running.stop()


def test_the_listener_works_on_ipv6_loopback():
    if not socket.has_ipv6:
        pytest.skip("no IPv6 on this machine")
    running = fast(MetricsConfig(True, "[::1]:0"), snapshot)
    try:
        running.start()
    except MetricsServerError as exc:
        pytest.skip(f"::1 not usable here: {exc}")
    try:
        assert get(f"http://[::1]:{running.address[1]}/metrics")[0] == 200
    finally:
        running.stop()


def test_a_taken_port_is_a_clear_error():
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        with pytest.raises(MetricsServerError) as info:
            fast(MetricsConfig(True, f"127.0.0.1:{port}"), snapshot).start()
    assert str(info.value) == f"metrics: cannot listen on 127.0.0.1:{port}: Address already in use"


def test_stop_frees_the_port():
    port = free_port()
    for _ in range(2):
        running = fast(MetricsConfig(True, f"127.0.0.1:{port}"), snapshot)
        running.start()
        running.stop()
    with pytest.raises(urllib.error.URLError):
        get(f"http://127.0.0.1:{port}/metrics")


def test_importing_the_fleet_modules_loads_neither_prometheus_client_nor_requests():
    code = (
        "import sys, monagent.metrics, monagent.metrics_config, monagent.notify.alertmanager; "
        "print(sorted(m for m in ('prometheus_client', 'requests') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=SUBPROCESS_CWD, capture_output=True, text=True, check=True)
    assert result.stdout == "[]\n"


# ---------------------------------------------------------------- [metrics]


def parse(text: str) -> MetricsConfig:
    doc = Document("agent.toml", text, {})
    config = parse_metrics(Section(doc, (), toml(text)).table("metrics"))
    if doc.problems:
        raise ConfigError(doc.problems)
    return config


def test_metrics_are_off_by_default_and_listen_on_loopback():
    config = parse("")
    assert (config.enabled, config.listen, config.path, config.host, config.port) == (
        False,
        "127.0.0.1:9717",
        "/metrics",
        "127.0.0.1",
        9717,
    )


def test_a_remote_listen_address_is_refused_unless_allowed():
    with pytest.raises(ConfigError) as info:
        parse('[metrics]\nenabled = true\nlisten = "0.0.0.0:9717"\n')
    assert str(info.value) == (
        'agent.toml:3: metrics.listen: "0.0.0.0:9717" is not a loopback address: the metrics show every check of '
        "this host to whoever connects; set allow_remote = true to listen there anyway (and firewall it)"
    )
    config = parse('[metrics]\nenabled = true\nlisten = "10.0.0.5:9717"\nallow_remote = true\n')
    assert (config.host, config.port) == ("10.0.0.5", 9717)


@pytest.mark.parametrize(
    ("listen", "message"),
    [
        ("9717", 'must be "host:port", such as "127.0.0.1:9717" or "[::1]:9717"; got "9717"'),
        ("127.0.0.1:99999", 'port must be from 1 to 65535, got 99999; got "127.0.0.1:99999"'),
        ("::1:9717", 'an IPv6 address needs brackets, such as "[::1]:9717"; got "::1:9717"'),
    ],
)
def test_a_malformed_listen_address_says_what_is_expected(listen, message):
    with pytest.raises(ConfigError) as info:
        parse(f'[metrics]\nlisten = "{listen}"\n')
    assert str(info.value) == f"agent.toml:2: metrics.listen: {message}"


def test_ipv6_loopback_and_localhost_are_accepted():
    assert parse('[metrics]\nlisten = "[::1]:9717"\n').host == "::1"
    assert parse('[metrics]\nlisten = "localhost:9100"\n').port == 9100


def test_a_path_must_start_with_a_slash():
    with pytest.raises(ConfigError) as info:
        parse('[metrics]\npath = "metrics"\n')
    assert str(info.value) == 'agent.toml:2: metrics.path: must start with "/" and contain no spaces, got "metrics"'
