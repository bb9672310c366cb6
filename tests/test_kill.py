"""50 SIGKILLs at random moments while alerts fire and resolve (the agent as a real process, a real
webhook receiver on loopback, a Nagios plugin running): nothing is lost, at most the batch in
flight at a kill arrives twice, and no plugin outlives the agent that started it."""

from __future__ import annotations

import collections
import json
import os
import random
import signal
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import List, Set, Tuple

import pytest
from harness import AgentProcess
from test_agent import agent_config

from monagent.control import agent_running
from monagent.store import Store

KILLS = 50


class Receiver:
    """A webhook endpoint on loopback that keeps every event it is sent, in order."""

    def __init__(self) -> None:
        self.events: List[dict] = []
        self.batches = 0
        self.sent: List[List[Tuple[str, str]]] = []  # each request's events, as (kind, incident)
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                time.sleep(random.uniform(0, 0.05))  # a kill may land while the reply is on its way
                receiver.batches += 1
                receiver.sent.append([(e["kind"], e["incident"]) for e in body["events"]])
                receiver.events.extend(body["events"])
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _start(config: Path) -> AgentProcess:
    """One agent; what every agent logged is kept in agent.log, shown if one exits."""
    return AgentProcess(config, log=config.parent / "agent.log")


def _survivors(pids_dir: Path, timeout: float = 5.0) -> List[int]:
    deadline = time.monotonic() + timeout
    while True:
        pids = [int(p.name) for p in pids_dir.iterdir()]
        alive = [pid for pid in pids if _alive(pid)]
        if not alive or time.monotonic() >= deadline:
            return alive
        time.sleep(0.05)


def test_fifty_sigkills_lose_nothing_repeat_only_batches_in_flight_and_leave_no_plugin(tmp_path: Path) -> None:
    rng = random.Random(13)
    receiver = Receiver()
    pids_dir = tmp_path / "plugin-pids"
    pids_dir.mkdir()
    plugin = tmp_path / "check_slow"
    plugin.write_text(f"#!/bin/sh\necho $$ > {pids_dir}/$$\nexec sleep 30\n")  # still running at every kill
    plugin.chmod(0o755)
    checks = (
        f'\n[checks.slow]\ntype = "nagios"\ncommand = ["{plugin}"]\ninterval = "200ms"\ntimeout = "60s"\n'
        f'\n[notifiers.webhook.hook]\nurl = "{receiver.url}"\ngroup_wait = "0"\nmax_sends_per_minute = 600\n'
        'retry_initial = "100ms"\nretry_max = "200ms"\n'
    )
    config = agent_config(tmp_path, checks=checks)
    text = (
        config.read_text()
        .replace("clear_after_cycles = 2", "clear_after_cycles = 1")
        .replace("fire_after_cycles = 2", "fire_after_cycles = 1")
    )
    config.write_text(text.replace("[alerting]\n", "[alerting]\nflap_enabled = false\n", 1))
    value = tmp_path / "value"
    orphans: List[int] = []
    try:
        for kill in range(KILLS):
            value.write_text("95" if (kill // 3) % 2 == 0 else "10")  # alerts fire and resolve across kills
            agent = _start(config)
            if kill % 4:  # three kills in four hit a running agent, the others one starting up
                _wait_running(tmp_path, agent)
            time.sleep(rng.uniform(0.0, 0.8))
            agent.stop(signal.SIGKILL, timeout=10)
            survivors = _survivors(pids_dir)
            orphans += survivors
            for pid in survivors:  # do not leak them into the rest of the run
                os.kill(pid, signal.SIGKILL)
            for entry in pids_dir.iterdir():
                entry.unlink()
        value.write_text("10")
        agent = _start(config)
        try:
            _wait_running(tmp_path, agent)
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:  # until every alert resolved and the outbox drained
                time.sleep(0.5)
                if _last_kinds(receiver.events) == {"resolved"} and _queued(tmp_path) == 0:
                    break
        finally:
            assert agent.stop(timeout=30) == 0
        orphans += _survivors(pids_dir)
    finally:
        receiver.close()
    assert orphans == []
    delivered = collections.Counter((e["kind"], e["incident"]) for e in receiver.events)
    fired, resolved = _incidents(receiver.events)
    story = [(e["kind"], e["incident"], e.get("merged")) for e in receiver.events]
    assert len(fired) >= 3 and resolved, story  # alerts did fire and resolve across the kills
    # Nothing lost: the receiver's last word on every key is the agent's final state (resolved); an
    # incident it never heard resolve was followed by a newer one of the same key (a resolve and a new
    # firing that wait in one batch are sent as one item, as the dispatcher coalesces them).
    assert _last_kinds(receiver.events) == {"resolved"}, story
    for incident in fired - resolved:
        last = max(i for i, e in enumerate(receiver.events) if e["incident"] == incident)
        followed = [e for e in receiver.events[last + 1 :] if e["incident"] != incident]
        assert followed, f"incident {incident} fired and was never resolved nor followed: {story}"
    # At most the batch in flight at each kill again: a request may carry several events (a resolve and
    # a firing decided together), so repeats are counted by request: one whose events had all been
    # received before is a repeat, and there are at most as many of those as kills.
    seen: Set[Tuple[str, str]] = set()
    repeated_requests = 0
    for request in receiver.sent:
        if request and all(item in seen for item in request):
            repeated_requests += 1
        seen.update(request)
    assert repeated_requests <= KILLS, story
    repeats = sum(count - 1 for count in delivered.values())
    assert repeats <= KILLS * max(len(r) for r in receiver.sent), story
    assert _queued(tmp_path) == 0


def _wait_running(tmp_path: Path, agent: AgentProcess) -> None:
    deadline = time.monotonic() + 30
    while not agent_running(tmp_path / "run" / "control.sock") and time.monotonic() < deadline:
        if agent.proc.poll() is not None:
            log = agent.log_text()
            raise AssertionError(f"the agent exited {agent.proc.returncode}; the agents' log ends:\n{log[-3000:]}")
        time.sleep(0.05)


def _last_kinds(events: List[dict]) -> Set[str]:
    """The last word the receiver heard on each alert key (the agent's own notices aside)."""
    last = {}
    for e in events:
        if e["kind"] != "notice":
            last[(e["check"], e["subject"], e["metric"])] = e["kind"]
    return set(last.values())


def _incidents(events: List[dict]) -> Tuple[Set[str], Set[str]]:
    fired = {e["incident"] for e in events if e["kind"] == "firing"}
    return fired, {e["incident"] for e in events if e["kind"] == "resolved"}


def _queued(tmp_path: Path) -> int:
    store = Store.open_readonly(tmp_path / "state")
    try:
        return store.queued_count("webhook:hook")
    finally:
        store.close()


def _children(pid: int) -> List[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    found.append(int(entry.name))
            except (OSError, IndexError, ValueError):
                continue
    return found


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_a_plugins_background_grandchild_dies_with_the_agent_whatever_stops_it(tmp_path: Path, sig: int) -> None:
    """A Nagios plugin that forks a background child and waits for it: the plugin dies with the agent
    by PR_SET_PDEATHSIG, its grandchild (another process, no death signal of its own) by the warden,
    which SIGKILLs the plugin's process group when the agent's end of its pipe closes (#13)."""
    from monagent import warden

    pids_dir = tmp_path / "pids"
    pids_dir.mkdir()
    plugin = tmp_path / "check_forks"
    plugin.write_text(f"#!/bin/sh\necho $$ > {pids_dir}/$$\nsleep 300 &\necho $! > {pids_dir}/$!\nwait\n")
    plugin.chmod(0o755)
    checks = f'\n[checks.forks]\ntype = "nagios"\ncommand = ["{plugin}"]\ninterval = "1s"\ntimeout = "60s"\n'
    agent = _start(agent_config(tmp_path, checks=checks))
    try:
        _wait_running(tmp_path, agent)
        deadline = time.monotonic() + 30
        while len(list(pids_dir.iterdir())) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        started = sorted(int(p.name) for p in pids_dir.iterdir())
        assert len(started) == 2, "the plugin and its grandchild never ran"
        wardens = [pid for pid in _children(agent.pid) if warden.NAME in Path(f"/proc/{pid}/cmdline").read_text()]
        assert len(wardens) == 1
        (pids_dir / str(wardens[0])).touch()  # the warden must not outlive its agent either
        agent.stop(sig, timeout=30)
        survivors = _survivors(pids_dir)
        for pid in survivors:
            os.kill(pid, signal.SIGKILL)
        assert survivors == [], f"outlived the agent ({signal.Signals(sig).name}): {survivors}"
    finally:
        agent.close()
