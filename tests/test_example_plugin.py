"""The example plugin examples/checks.d/nginx_up.py, installed as a user would and run against a real
HTTP server on loopback."""

from __future__ import annotations

import shutil
import socket
import textwrap
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar, Dict, Iterator, Tuple

import pytest

from monagent.api import Formatter, Status, Text
from monagent.confread import ConfigError
from monagent.loader import Registry
from monagent.testing import FakeContext, run_check

EN, ZH = Formatter("en"), Formatter("zh")
EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "checks.d" / "nginx_up.py"

# nginx's own layout, trailing spaces included
STUB_STATUS = (
    "Active connections: 291 \n"
    "server accepts handled requests\n"
    " 16630948 16630948 {requests} \n"
    "Reading: 6 Writing: 179 Waiting: 106 \n"
)


class FakeNginx(BaseHTTPRequestHandler):
    """/nginx_status like nginx's stub_status module; /health says ok; /broken is a 503."""

    state: ClassVar[Dict[str, int]] = {}

    def do_GET(self) -> None:
        if self.path == "/nginx_status":
            self.state["requests"] += 1
            self._send(200, STUB_STATUS.format(requests=self.state["requests"]))
        elif self.path == "/health":
            self._send(200, "ok\n")
        elif self.path == "/broken":
            self._send(503, "<html>503 Service Temporarily Unavailable</html>")
        else:
            self._send(404, "not found")

    def _send(self, code: int, body: str) -> None:
        data = body.encode()
        self.send_response(code)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def nginx() -> Iterator[Tuple[str, Dict[str, int]]]:
    state = {"requests": 31070465}
    handler = type("Handler", (FakeNginx,), {"state": state})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", state
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture
def nginx_up(tmp_path) -> type:
    """The example installed the way docs/writing-checks.md says, and loaded by the agent's loader."""
    checks_d = tmp_path / "checks.d"
    checks_d.mkdir(mode=0o755)
    checks_d.chmod(0o755)
    installed = checks_d / "nginx_up.py"
    shutil.copyfile(EXAMPLE, installed)
    installed.chmod(0o644)
    registry = Registry([checks_d])
    cls = registry.resolve("nginx_up")
    assert registry.infos["nginx_up"].error == ""
    assert cls is not None and cls.__name__ == "NginxUp"
    return cls


def test_the_loader_finds_the_example_by_its_file_name(nginx_up, tmp_path):
    rows = Registry([tmp_path / "checks.d"]).available()
    assert rows == [*Registry([]).available(), ("nginx_up", str(tmp_path / "checks.d" / "nginx_up.py"))]


def test_a_stub_status_page_gives_connections_latency_and_after_a_second_run_the_request_rate(nginx_up, nginx):
    base, state = nginx
    check = nginx_up(url=f"{base}/nginx_status")
    ctx = FakeContext()
    first = run_check(check, context=ctx)
    assert first.result().status == Status.OK
    assert EN.text(first.result().reason).startswith("HTTP 200 in ")
    assert (first.value("active_connections"), first.value("waiting_connections")) == (291, 106)
    assert first.value("requests_per_second") is None  # no earlier count to compare with
    latency = first.value("latency_seconds")
    assert latency is not None and latency >= 0
    state["requests"] += 299  # 300 more requests, counting the next check's own, in 30 s
    second = run_check(check, context=ctx.tick(30))
    assert second.value("requests_per_second") == 10.0
    assert second.statuses[("", "status")] == Status.OK


def test_an_error_status_is_critical_with_the_code_and_the_url(nginx_up, nginx):
    base, _ = nginx
    report = run_check(nginx_up, {"url": f"{base}/broken"})
    assert report.status == Status.CRITICAL
    assert EN.text(report.result().reason) == f"HTTP 503 from {base}/broken (expected 200)"
    assert ZH.text(report.result().reason) == f"{base}/broken 返回 HTTP 503（应为 200）"
    assert report.result().details == "<html>503 Service Temporarily Unavailable</html>"


def test_a_health_page_without_the_expected_text_is_critical(nginx_up, nginx):
    base, _ = nginx
    good = run_check(nginx_up, {"url": f"{base}/health", "contains": "ok"})
    bad = run_check(nginx_up, {"url": f"{base}/health", "contains": "ready"})
    assert good.status == Status.OK
    assert [m.name for m in good.result().metrics] == ["latency_seconds"]
    assert (bad.status, EN.text(bad.result().reason)) == (Status.CRITICAL, f'the page at {base}/health does not contain "ready"')


def test_nginx_not_listening_is_critical_and_says_why(nginx_up):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    report = run_check(nginx_up, {"url": f"http://127.0.0.1:{port}/nginx_status"})
    assert report.status == Status.CRITICAL
    assert EN.text(report.result().reason) == f"no answer from http://127.0.0.1:{port}/nginx_status: Connection refused"


def test_the_plugins_own_texts_speak_chinese_and_travel_with_the_stored_event(nginx_up, nginx):
    base, _ = nginx
    reason = run_check(nginx_up, {"url": f"{base}/health", "contains": "ready"}).result().reason
    assert isinstance(reason, Text) and reason.id == "nginx_up.missing_text"
    assert ZH.text(reason) == f"{base}/health 的页面中没有“ready”"
    # the outbox keeps the texts with the reason: a message still reads right after the plugin is gone
    stored = Text.from_json(reason.to_json())
    assert ZH.text(Text(stored.id, stored.args, stored.texts)) == ZH.text(reason)
    assert ZH.text(Text("nginx_up.gone", {"url": base})) == "nginx_up.gone"  # no text anywhere: the id


def test_a_slow_answer_crosses_the_latency_threshold(nginx_up, nginx):
    base, _ = nginx
    report = run_check(nginx_up, {"url": f"{base}/nginx_status"}, thresholds={"latency_seconds": {"warning": 0}})
    assert report.status_of("latency_seconds") == Status.WARNING
    assert ("", "active_connections") not in report.statuses  # no threshold configured: not an alert key


def test_the_agent_toml_stanza_of_the_docs_is_valid_and_a_wrong_option_is_reported(nginx_up, tmp_path):
    from monagent.config import loads

    checks_d = tmp_path / "checks.d"
    stanza = textwrap.dedent(f"""\
        [agent]
        plugin_dirs = ["{checks_d}"]

        [checks.nginx]
        type = "nginx_up"
        url = "http://127.0.0.1/nginx_status"

        [checks.nginx.thresholds]
        latency_seconds = {{ warning = 0.5, critical = 2 }}
        active_connections = {{ warning = 800, critical = 1000 }}
        """)
    config = loads(stanza, str(tmp_path / "agent.toml"), environ={})
    nginx = config.check("nginx")
    assert nginx is not None and dict(nginx.options) == {"url": "http://127.0.0.1/nginx_status"}
    assert (nginx.interval, nginx.thresholds["latency_seconds"].critical) == (30.0, 2)
    with pytest.raises(ConfigError) as error:
        loads(stanza.replace("url =", "ulr ="), str(tmp_path / "agent.toml"), environ={})
    assert str(error.value) == (
        f'{tmp_path}/agent.toml:6: checks.nginx.ulr: unknown option for check type "nginx_up" (did you mean "url"?); '
        "accepted options: contains, expect_status, request_timeout, url"
    )


def test_a_url_that_is_not_http_is_refused(nginx_up):
    with pytest.raises(ConfigError) as error:
        run_check(nginx_up, {"url": "file:///etc/shadow"})
    assert str(error.value) == '<run_check>: checks.test: url: must start with http:// or https://, got "file:///etc/shadow"'
