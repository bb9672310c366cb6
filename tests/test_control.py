"""The control socket and the status/silence/ack commands, with and without a running agent."""

from __future__ import annotations

import json
import os
import socket
import stat
import time
from pathlib import Path
from typing import Iterator, Tuple

import pytest
from alerting_helpers import Clock, run, value
from conftest import NOBODY, run_as, run_monagent

from monagent.alerting.control_handler import ControlHandler
from monagent.alerting.matchers import Matcher
from monagent.alerting.pipeline import AlertPipeline
from monagent.alerting.silence_ack import Decision
from monagent.alerting.suppress import Silence
from monagent.config import Config, load
from monagent.control import AgentNotRunning, ControlServer, request
from monagent.events import AlertKey
from monagent.store import Store

PLUGIN = """
from monagent.api import Check, MetricSpec, Result


class Gauge(Check):
    metrics = {"value": MetricSpec(unit="%", warning=80, critical=90)}

    def run(self, ctx):
        return Result()
"""


def _inactive_times() -> str:
    """The maintenance window's hours, chosen so it is not open while the tests run (it was, every
    Saturday and Sunday 02:00-04:00 in Shanghai, and the alert it silences never reached the outbox)."""
    from datetime import datetime
    from zoneinfo import ZoneInfo

    hour = datetime.now(ZoneInfo("Asia/Shanghai")).hour
    return "14:00-16:00" if 1 <= hour < 5 else "02:00-04:00"


TIMES = _inactive_times()
CONFIG = """
[agent]
hostname = "web01"
state_dir = "{root}/state"
runtime_dir = "{root}/run"
plugin_dirs = ["{root}/plugins"]

[alerting]
startup_grace = "0"

[[alerting.maintenance]]
name = "patching"
weekdays = ["sat-sun"]
times = ["{times}"]
time_zone = "Asia/Shanghai"
match = {{ check = "load" }}

[checks.load]
type = "gauge"
[checks.load.alerting]
fire_after_cycles = 1
"""


@pytest.fixture
def agent_files(public_tmp: Path) -> Iterator[Tuple[Path, Config]]:
    tmp_path = public_tmp
    plugins = tmp_path / "plugins"
    plugins.mkdir(mode=0o755)
    os.chmod(plugins, 0o755)
    (plugins / "gauge.py").write_text(PLUGIN)
    os.chmod(plugins / "gauge.py", 0o644)
    path = tmp_path / "agent.toml"
    path.write_text(CONFIG.format(root=tmp_path, times=TIMES))
    yield path, load(path)


def firing_pipeline(cfg: Config) -> AlertPipeline:
    clock = Clock(wall=time.time() - 120)
    store = Store.open(cfg.agent.state_dir)
    pipeline = AlertPipeline(cfg, store, now=clock.wall, monotonic=clock.mono, boot_id="b")
    pipeline.observe([run("load", value(95, unit="%"))], *clock.step())
    return pipeline


@pytest.fixture
def running(agent_files: Tuple[Path, Config]) -> Iterator[Tuple[Path, AlertPipeline]]:
    path, cfg = agent_files
    pipeline = firing_pipeline(cfg)
    server = ControlServer(cfg.agent.runtime_dir / "control.sock", ControlHandler(pipeline))
    server.start()
    try:
        yield path, pipeline
    finally:
        server.stop()
        pipeline.store.close()


def test_the_socket_is_group_writable_only_and_answers_json_lines(running: Tuple[Path, AlertPipeline]) -> None:
    _, pipeline = running
    sock = pipeline.config.agent.runtime_dir / "control.sock"
    assert stat.S_IMODE(sock.stat().st_mode) == 0o660
    assert request(sock, {"op": "ping"}) == {"ok": True}
    assert request(sock, {"op": "reboot"}) == {
        "ok": False,
        "error": "unknown request 'reboot'; known: ack, paths, ping, silence_add, silence_expire",
    }
    raw = socket.socket(socket.AF_UNIX)
    raw.connect(str(sock))
    raw.sendall(b"not json\n")
    assert json.loads(raw.recv(1000)) == {"ok": False, "error": "bad request: send one JSON object on one line"}
    raw.close()


def test_a_stale_socket_is_replaced_and_a_live_one_refused(tmp_path: Path) -> None:
    path = tmp_path / "control.sock"
    dead = socket.socket(socket.AF_UNIX)
    dead.bind(str(path))
    dead.close()
    server = ControlServer(path, lambda message: {"ok": True})
    server.start()
    try:
        with pytest.raises(OSError, match="another agent is listening"):
            ControlServer(path, lambda message: {"ok": True}).start()
    finally:
        server.stop()
    assert not path.exists()
    with pytest.raises(AgentNotRunning):
        request(path, {"op": "ping"})


def test_silence_add_goes_through_the_running_agent(running: Tuple[Path, AlertPipeline]) -> None:
    path, pipeline = running
    result = run_monagent(
        "silence",
        "add",
        "-c",
        str(path),
        "--match",
        "check=load",
        "--match",
        "subject=",
        "--duration",
        "2h",
        "--comment",
        "disk migration",
        "--author",
        "alice",
    )
    assert result.returncode == 0, result.stderr
    (silence,) = pipeline.silences.values()
    assert result.stdout.startswith(f"silence {silence.id} added: check=load, subject= until ")
    assert result.stdout.endswith(" (2h)\n")
    assert (silence.author, silence.comment) == ("alice", "disk migration")
    listed = run_monagent("silence", "list", "-c", str(path), "--json")
    assert [row["id"] for row in json.loads(listed.stdout)] == [silence.id]
    expired = run_monagent("silence", "expire", "-c", str(path), silence.id)
    assert expired.stdout == f"silence {silence.id} expired\n"
    assert not pipeline.silences[silence.id].active(time.time() + 1)


def test_ack_goes_through_the_running_agent(running: Tuple[Path, AlertPipeline]) -> None:
    path, pipeline = running
    result = run_monagent("ack", "-c", str(path), "load value", "--comment", "cleaning up", "--author", "bob")
    assert result.returncode == 0, result.stderr
    ack = pipeline.acks[AlertKey("load", "", "value")]
    assert result.stdout == (f"acknowledged load value (incident {ack.incident}): no reminders until it resolves or gets worse\n")
    missing = run_monagent("ack", "-c", str(path), "load nothing")
    assert (missing.returncode, missing.stderr) == (
        64,
        "monagent: no firing alert load nothing; `monagent status` lists the firing alerts with their keys\n",
    )


def test_without_an_agent_changes_go_into_the_store_as_its_owner(agent_files: Tuple[Path, Config]) -> None:
    path, cfg = agent_files
    pipeline = firing_pipeline(cfg)
    pipeline.close(clean=True)
    pipeline.store.close()
    state = cfg.agent.state_dir
    for item in (state, *state.iterdir()):
        os.chown(item, NOBODY, NOBODY)
    result = run_monagent("silence", "add", "-c", str(path), "--match", "check=load", "--duration", "30m", "--comment", "reboot")
    assert result.returncode == 0, result.stderr
    acked = run_monagent("ack", "-c", str(path), "load value", "--author", "carol")
    assert acked.returncode == 0, acked.stderr
    assert {item.name: item.stat().st_uid for item in state.iterdir()} == {"state.db": NOBODY}
    status = run_monagent("status", "-c", str(path), "--json")
    data = json.loads(status.stdout)
    assert [(a["key"], a["phase"], a["severity"], a["value"], a["threshold"], a["acked_by"]) for a in data["alerts"]] == [
        ("load value", "firing", "critical", 95.0, 90, "carol")
    ]
    assert [s["comment"] for s in data["silences"]] == ["reboot"]
    assert data["outbox"] == {"console": 1}
    assert data["agent"]["running"] is False


def test_status_prints_alerts_outbox_silences_windows_and_notifiers(running: Tuple[Path, AlertPipeline]) -> None:
    path, pipeline = running
    pipeline.store.set_health(pipeline.store.health("console"))
    env = dict(os.environ, TZ="UTC")
    result = run_monagent("status", "-c", str(path), env=env)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("web01: agent running, last evaluation ")
    assert lines[2:4] == ["Alerts:", lines[3]]
    assert lines[3].startswith("  FIRING    critical load value  95% (>= 90%)  since ")
    assert lines[lines.index("Outbox:") + 1] == "  console: 1 queued"
    assert lines[lines.index("Maintenance windows:") + 1] == (f"  patching: inactive  sat,sun {TIMES} Asia/Shanghai  check=load")
    # nothing delivers in this test: the queued event has never reached the console
    assert lines[lines.index("Notifiers:") + 1] == "  console: NEVER DELIVERED (1 queued), last success -, sent 0"


def test_status_with_a_broken_config_warns_and_reads_the_state_anyway(tmp_path: Path) -> None:
    path = tmp_path / "agent.toml"
    path.write_text(f'[agent]\nstate_dir = "{tmp_path / "state"}"\n[alerting]\nfire_after_cycles = 0\n')
    result = run_monagent("status", "-c", str(path))
    assert result.stderr.splitlines() == [
        f"warning: {path}:4: alerting.fire_after_cycles: must be an integer of at least 1, got 0 (ignored by "
        "`monagent status`; `monagent validate` lists every problem)",
        f"monagent: no state database at {tmp_path / 'state' / 'state.db'} (has the agent run yet?)",
    ]
    assert result.returncode == 75  # the state comes once the agent has run


def test_a_probe_that_sends_nothing_gets_no_answer_and_no_traceback(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "control.sock"
    server = ControlServer(path, lambda message: {"ok": True})
    server.start()
    try:
        for _ in range(3):
            probe = socket.socket(socket.AF_UNIX)
            probe.connect(str(path))
            probe.close()
        assert request(path, {"op": "ping"}) == {"ok": True}
    finally:
        server.stop()
    assert capsys.readouterr().err == ""


def silence_add(path: Path, *options: str):
    return run_monagent("silence", "add", "-c", str(path), *options, "--comment", "test")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (
            ("--match", "nonsense", "--duration", "2h"),
            'monagent: --match: bad matcher "nonsense": use LABEL=GLOB with LABEL one of check, subject, metric, '
            "check_type, type, severity\n",
        ),
        (
            ("--match", "host=web01", "--duration", "2h"),
            'monagent: --match: bad matcher "host=web01": use LABEL=GLOB with LABEL one of check, subject, metric, '
            "check_type, type, severity\n",
        ),
        (
            ("--match", "check=load", "--duration", "2 hours"),
            'monagent: --duration: bad duration "2 hours": use e.g. "30m", "2h", "1d", "1h30m"\n',
        ),
        (("--match", "check=load", "--duration", "0"), 'monagent: --duration: the duration must be more than 0, got "0"\n'),
    ],
)
def test_silence_add_with_a_bad_match_or_duration_is_a_usage_error(
    agent_files: Tuple[Path, Config], options: Tuple[str, ...], message: str
) -> None:
    path, _ = agent_files
    result = silence_add(path, *options)
    assert (result.returncode, result.stderr, result.stdout) == (64, message, "")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ("load",),
            'monagent: bad KEY "load": a KEY is CHECK [SUBJECT] METRIC as `monagent status` prints it, e.g. '
            '"disks /var used_percent"\n',
        ),
        (
            ("  ",),
            'monagent: bad KEY "  ": a KEY is CHECK [SUBJECT] METRIC as `monagent status` prints it, e.g. '
            '"disks /var used_percent"\n',
        ),
        (("load value", "--expires", "soon"), 'monagent: --expires: bad duration "soon": use e.g. "30m", "2h", "1d", "1h30m"\n'),
    ],
)
def test_ack_with_a_malformed_key_or_expiry_is_a_usage_error(
    agent_files: Tuple[Path, Config], args: Tuple[str, ...], message: str
) -> None:
    path, _ = agent_files
    result = run_monagent("ack", "-c", str(path), *args)
    assert (result.returncode, result.stderr) == (64, message)


def test_silence_expire_refuses_a_malformed_id_and_names_an_unknown_one(running: Tuple[Path, AlertPipeline]) -> None:
    path, _ = running
    bad = run_monagent("silence", "expire", "-c", str(path), "last-one")
    assert (bad.returncode, bad.stderr) == (
        64,
        'monagent: bad silence ID "last-one": an ID is 8 hex digits as `monagent silence list` shows it, e.g. 1a2b3c4d\n',
    )
    unknown = run_monagent("silence", "expire", "-c", str(path), "DEADBEEF")
    assert (unknown.returncode, unknown.stderr) == (
        64,
        "monagent: no silence with ID deadbeef; `monagent silence list --all` shows the IDs\n",
    )


def test_without_an_agent_an_unknown_silence_id_gets_the_same_answer(agent_files: Tuple[Path, Config]) -> None:
    path, cfg = agent_files
    pipeline = firing_pipeline(cfg)
    pipeline.close(clean=True)
    pipeline.store.close()
    unknown = run_monagent("silence", "expire", "-c", str(path), "deadbeef")
    assert (unknown.returncode, unknown.stderr) == (
        64,
        "monagent: no silence with ID deadbeef; `monagent silence list --all` shows the IDs\n",
    )


def test_a_silence_for_no_configured_check_warns_and_is_added_anyway(running: Tuple[Path, AlertPipeline]) -> None:
    path, pipeline = running
    typo = silence_add(path, "--match", "check=laod", "--duration", "1h")
    assert typo.returncode == 0, typo.stderr
    assert typo.stderr == (
        "warning: no configured check matches check=laod; configured: load; adding the silence "
        "anyway (it applies once one exists)\n"
    )
    assert [s.matcher.describe() for s in pipeline.silences.values()] == ["check=laod"]
    wrong_type = silence_add(path, "--match", "check=l*", "--match", "type=disk", "--match", "severity=crit", "--duration", "1h")
    assert wrong_type.stderr.splitlines() == [
        "warning: no configured check matches check=l*, type=disk; configured: load (gauge); adding the silence "
        "anyway (it applies once one exists)",
        "warning: no severity matches severity=crit; severities: warning, critical; adding the silence anyway "
        "(it applies once one exists)",
    ]
    for fine in (
        ("--match", "check=lo*"),
        ("--match", "check=monagent"),
        ("--match", "type=gauge"),
        ("--match", "severity=warning"),
        ("--match", "subject=/var"),
    ):
        result = silence_add(path, *fine, "--duration", "1h")
        assert (result.returncode, result.stderr) == (0, "")


def test_the_positional_arguments_of_ack_and_silence_expire_are_explained_in_help() -> None:
    ack = run_monagent("ack", "--help").stdout
    assert "KEY the alert's key as the Alerts section of `monagent status` prints it" in " ".join(ack.split())
    expire = run_monagent("silence", "expire", "--help").stdout
    assert (
        "ID the silence's 8-hex-digit ID, as `monagent silence add` printed it and `monagent silence list` shows it"
    ) in " ".join(expire.split())


def _raw(sock: Path, payload: bytes) -> dict:
    from monagent.control import _connect

    raw = socket.socket(socket.AF_UNIX)
    raw.settimeout(10)
    _connect(raw, sock, time.monotonic() + 10)
    try:
        try:
            raw.sendall(payload)
        except (BrokenPipeError, ConnectionResetError):
            pass  # a busy server answers and closes without reading
        data = b""
        while not data.endswith(b"\n"):
            chunk = raw.recv(65536)
            if not chunk:
                break
            data += chunk
    finally:
        raw.close()
    return json.loads(data)


HOSTILE_REQUESTS = [
    (b'{"op": "silence_add", "matchers": ["check=load"], "ends_at": NaN}\n', "bad request"),
    (b'{"op": "silence_add", "matchers": ["check=load"], "ends_at": Infinity}\n', "bad request"),
    (b'{"op": "silence_add", "matchers": ["check=load"], "ends_at": 1e300}\n', "ends_at must lie between"),
    (b'{"op": "silence_add", "matchers": ["check=load"], "ends_at": "tomorrow"}\n', "ends_at must be a finite number"),
    (b'{"op": "silence_add", "matchers": ["check=load"], "ends_at": true}\n', "ends_at must be a finite number"),
    (b'{"op": "silence_add", "matchers": "check=load", "ends_at": END}\n', "matchers must be a list"),
    (b'{"op": "silence_add", "matchers": [], "ends_at": END}\n', "matchers must be a list"),
    (b'{"op": "silence_add", "matchers": [1], "ends_at": END}\n', "matchers must hold strings"),
    (b'{"op": "silence_add", "matchers": ["check=load"], "ends_at": END, "starts_at": -1e308}\n', "starts_at must"),
    (b'{"op": "silence_add", "matchers": ["check=load"], "ends_at": END, "owner": "root"}\n', "unknown field 'owner'"),
    (
        b'{"op": "silence_add", "matchers": ["check=load"], "ends_at": END, "comment": "' + b"x" * 5000 + b'"}\n',
        "comment must be a string of at most 4096",
    ),
    (b'{"op": "ack", "key": "load value", "expires_at": NaN}\n', "bad request"),
    (b'{"op": "ack", "key": ["load"]}\n', "key must be a string"),
    (b'{"op": "silence_expire"}\n', "id is required"),
    (b'{"op": ["ping"]}\n', "unknown request"),
    (b"[" * 100000 + b"]" * 100000 + b"\n", "bad request"),
    (b"x" * 70000 + b"\n", "at most 65536 bytes"),
]


@pytest.mark.parametrize("payload, error", HOSTILE_REQUESTS, ids=lambda v: str(v)[:40] if isinstance(v, bytes) else None)
def test_a_hostile_request_gets_an_error_and_changes_nothing(
    running: Tuple[Path, AlertPipeline], payload: bytes, error: str
) -> None:
    _, pipeline = running
    sock = pipeline.config.agent.runtime_dir / "control.sock"
    before = dict(pipeline.silences), dict(pipeline.acks)
    answer = _raw(sock, payload.replace(b"END", str(int(time.time()) + 3600).encode()))
    assert answer["ok"] is False and error in answer["error"], answer
    assert (dict(pipeline.silences), dict(pipeline.acks)) == before
    # the store still takes commits: the next cycle's event reaches the outbox
    pipeline.observe([run("load", value(10, unit="%"))], time.time(), time.monotonic() + 1000)
    assert pipeline.delivery_stopped == ""
    assert request(sock, {"op": "ping"}) == {"ok": True}


def test_idle_connections_time_out_and_past_the_cap_are_refused(
    running: Tuple[Path, AlertPipeline], monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading

    from monagent import control

    monkeypatch.setattr(control._Connection, "timeout", 1.0)
    _, pipeline = running
    sock = pipeline.config.agent.runtime_dir / "control.sock"
    threads_before = threading.active_count()
    idle: list = []
    try:
        for _ in range(control.MAX_CONNECTIONS):
            conn = socket.socket(socket.AF_UNIX)
            idle.append(conn)
            conn.connect(str(sock))
        deadline = time.monotonic() + 5
        while threading.active_count() < threads_before + control.MAX_CONNECTIONS and time.monotonic() < deadline:
            time.sleep(0.01)
        assert _raw(sock, b'{"op": "ping"}\n') == {"ok": False, "error": "busy: too many control connections"}
        for _ in range(200):  # more idle clients get no thread at all
            extra = socket.socket(socket.AF_UNIX)
            idle.append(extra)
            extra.connect(str(sock))
        assert threading.active_count() <= threads_before + control.MAX_CONNECTIONS
        deadline = time.monotonic() + 10
        answer: dict = {}
        while time.monotonic() < deadline:  # the idle ones are dropped after the read timeout
            answer = _raw(sock, b'{"op": "ping"}\n')
            if answer.get("ok"):
                break
            time.sleep(0.1)
        assert answer == {"ok": True}
    finally:
        for conn in idle:
            conn.close()


def test_silence_add_with_an_absurd_duration_is_a_usage_error_and_stores_nothing(
    agent_files: Tuple[Path, Config],
) -> None:
    path, cfg = agent_files
    firing_pipeline(cfg).store.close()
    result = run_monagent(
        "silence", "add", "-c", str(path), "--match", "check=load", "--duration", "99999999999999999999d", "--comment", "x"
    )
    assert result.returncode == 64, result.stderr
    assert "longer than 3650d" in result.stderr
    listing = run_monagent("silence", "list", "-c", str(path))
    assert listing.returncode == 0 and "Traceback" not in listing.stderr
    status = run_monagent("status", "-c", str(path))
    assert status.returncode == 0 and "Traceback" not in status.stderr
    store = Store.open_readonly(cfg.agent.state_dir)
    try:
        assert store.load().silences == {}
    finally:
        store.close()


def test_a_commit_that_fails_for_a_bug_stops_delivery_loudly(
    running: Tuple[Path, AlertPipeline], caplog: pytest.LogCaptureFixture
) -> None:
    """A commit refused for a reason other than disk space is a bug: ERROR, the ping and `status` say
    "delivery stopped", the events stay held; it is not retried silently as a full disk would be."""
    path, pipeline = running
    sock = pipeline.config.agent.runtime_dir / "control.sock"
    # a silence no request can make any more (silence_ack refuses a NaN end), as a bug might store one
    pipeline.record(Decision(silence=Silence("0badc0de", Matcher.parse(["check=load"]), time.time(), float("nan"), "", "")))
    assert pipeline.delivery_stopped.startswith("delivery stopped: the state database refused a commit (IntegrityError")
    assert any(r.levelname == "ERROR" and "delivery stopped" in r.getMessage() for r in caplog.records)
    assert request(sock, {"op": "ping"})["problem"] == pipeline.delivery_stopped
    status = run_monagent("status", "-c", str(path))
    assert "delivery stopped: the state database refused a commit" in status.stdout.splitlines()[1], status.stdout


def test_a_runtime_directory_another_user_created_is_refused_by_the_agent_and_the_cli(
    agent_files: Tuple[Path, Config],
) -> None:
    """Without XDG_RUNTIME_DIR a user's agent uses /tmp/monagent-UID, which another user may create
    first and listen in: the agent refuses the directory, the CLI sends nothing there."""
    if os.geteuid() != 0:
        pytest.skip("needs root to create a directory owned by another user")
    import threading

    path, cfg = agent_files
    firing_pipeline(cfg).store.close()
    runtime = cfg.agent.runtime_dir
    runtime.mkdir(mode=0o755)
    os.chown(runtime, 1, 1)  # daemon got there first
    with pytest.raises(OSError, match=f"the runtime directory {runtime} is owned by uid 1, not by the agent's user"):
        ControlServer(runtime / "control.sock", lambda message: {"ok": True}).start()
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(runtime / "control.sock"))
    listener.listen(4)
    listener.settimeout(0.2)
    heard: list = []

    def listen() -> None:
        for _ in range(40):
            try:
                conn, _ = listener.accept()
            except socket.timeout:
                continue
            heard.append(conn.recv(65536))
            conn.sendall(b'{"ok": true, "silence": {"id": "evil", "matchers": [], "ends_at": 0}}\n')
            conn.close()

    thread = threading.Thread(target=listen, daemon=True)
    thread.start()
    try:
        added = run_monagent(
            "silence", "add", "-c", str(path), "--match", "check=load", "--duration", "1h", "--comment", "maintenance"
        )
        status = run_monagent("status", "-c", str(path))
    finally:
        thread.join(10)
        listener.close()
    assert heard == []
    assert added.returncode == 0, added.stderr
    assert f"warning: the runtime directory {runtime} is owned by uid 1" in added.stderr
    assert "agent not running" in status.stdout.splitlines()[0]
    assert f"the runtime directory {runtime} is owned by uid 1" in status.stdout.splitlines()[1]
    store = Store.open_readonly(cfg.agent.state_dir)
    try:
        assert len(store.load().silences) == 1  # written to the store directly, as with no agent running
    finally:
        store.close()


def test_a_users_runtime_directory_is_created_0700(public_tmp: Path) -> None:
    sock = public_tmp / "run" / "control.sock"
    if os.geteuid() == 0:
        os.chmod(public_tmp, 0o777)
        assert run_as(NOBODY, _start_and_mode, str(sock)) == 0o700
    else:
        assert _start_and_mode(str(sock)) == 0o700


def _start_and_mode(sock: str) -> int:
    server = ControlServer(Path(sock), lambda message: {"ok": True})
    server.start()
    try:
        return stat.S_IMODE(os.stat(Path(sock).parent).st_mode)
    finally:
        server.stop()
