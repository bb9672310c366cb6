"""The notify protocol against a real AF_UNIX datagram socket, the way systemd listens."""

from __future__ import annotations

import os
import socket
import time
from typing import Iterator, List, Tuple

import pytest

from monagent.sdnotify import SystemdNotifier, WatchdogGate, child_environ, socket_address, status_line


@pytest.fixture
def listener(tmp_path) -> Iterator[Tuple[str, socket.socket]]:
    """A datagram socket bound to a path, like systemd's /run/systemd/notify."""
    path = str(tmp_path / "notify")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(5)
    yield path, sock
    sock.close()


def received(sock: socket.socket) -> List[str]:
    return sock.recv(4096).decode("utf-8").split("\n")


def test_ready_sends_ready_and_the_status_in_one_datagram(listener):
    path, sock = listener
    notifier = SystemdNotifier.from_environ({"NOTIFY_SOCKET": path})
    assert notifier.ready(status_line(checks=12, firing=1, outbox=0))
    assert received(sock) == ["READY=1", "STATUS=12 checks, 1 firing, outbox 0"]


def test_status_is_flattened_to_one_line(listener):
    path, sock = listener
    SystemdNotifier(path).status("reload failed:\n  agent.toml:3: checks.x.type: is required")
    assert received(sock) == ["STATUS=reload failed: agent.toml:3: checks.x.type: is required"]


def test_status_line_counts_one_check_in_the_singular():
    assert status_line(checks=1, firing=0, outbox=3) == "1 check, 0 firing, outbox 3"


def test_stopping_and_watchdog_each_send_their_key(listener):
    path, sock = listener
    notifier = SystemdNotifier(path)
    notifier.watchdog()
    notifier.stopping()
    assert received(sock) == ["WATCHDOG=1"]
    assert received(sock) == ["STOPPING=1", "STATUS=stopping: finishing in-flight sends"]


def test_reloading_carries_the_monotonic_clock_in_microseconds(listener):
    path, sock = listener
    SystemdNotifier(path, monotonic_usec=lambda: 123456789).reloading()
    assert received(sock) == ["RELOADING=1", "MONOTONIC_USEC=123456789", "STATUS=reloading configuration"]


def test_reloading_uses_clock_monotonic_by_default(listener):
    path, sock = listener
    before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    SystemdNotifier(path).reloading(status=None)
    after = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    lines = received(sock)
    assert lines[0] == "RELOADING=1"
    assert before <= int(lines[1].removeprefix("MONOTONIC_USEC=")) <= after


def test_an_abstract_socket_name_starting_with_at_is_reached(tmp_path):
    name = f"@monagent-test-{os.getpid()}-{id(tmp_path)}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name[1:])
    sock.settimeout(5)
    try:
        assert SystemdNotifier.from_environ({"NOTIFY_SOCKET": name}).ready()
        assert received(sock) == ["READY=1"]
    finally:
        sock.close()


def test_socket_address_turns_the_at_sign_into_a_nul_byte():
    assert socket_address("@/org/freedesktop/systemd1/notify") == "\0/org/freedesktop/systemd1/notify"
    assert socket_address("/run/systemd/notify") == "/run/systemd/notify"


def test_without_notify_socket_every_call_is_a_silent_no_op():
    notifier = SystemdNotifier.from_environ({})
    assert not notifier.enabled
    assert notifier.ready("x") is False
    assert notifier.watchdog() is False
    assert notifier.watchdog_interval() is None


def test_a_vanished_socket_warns_once_and_never_raises(tmp_path, caplog):
    notifier = SystemdNotifier(str(tmp_path / "gone"))
    assert notifier.ready() is False
    assert notifier.status("x") is False
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert warnings == [f"cannot notify systemd at {tmp_path / 'gone'}: No such file or directory"]


def test_from_environ_can_unset_the_supervision_variables_so_children_do_not_inherit_them(listener):
    path, _sock = listener
    env = {"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "60000000", "WATCHDOG_PID": "42", "LISTEN_FDS": "1", "PATH": "/usr/bin"}
    notifier = SystemdNotifier.from_environ(env, pid=42, unset=True)
    assert env == {"PATH": "/usr/bin"}
    assert notifier.enabled
    assert notifier.watchdog_interval() == 30.0


def test_child_environ_strips_notify_watchdog_and_listen_variables():
    env = {
        "NOTIFY_SOCKET": "/run/systemd/notify",
        "WATCHDOG_USEC": "1",
        "WATCHDOG_PID": "1",
        "LISTEN_PID": "1",
        "LISTEN_FDS": "1",
        "LISTEN_FDNAMES": "x",
        "LANG": "C.UTF-8",
        "PATH": "/bin",
    }
    assert child_environ(env) == {"LANG": "C.UTF-8", "PATH": "/bin"}


def test_watchdog_interval_is_half_of_watchdog_usec():
    env = {"NOTIFY_SOCKET": "/run/systemd/notify", "WATCHDOG_USEC": "60000000"}
    assert SystemdNotifier.from_environ(env).watchdog_interval() == 30.0


def test_watchdog_meant_for_another_pid_is_ignored():
    env = {"NOTIFY_SOCKET": "/run/systemd/notify", "WATCHDOG_USEC": "60000000", "WATCHDOG_PID": "1"}
    assert SystemdNotifier.from_environ(env, pid=4242).watchdog_interval() is None


@pytest.mark.parametrize("usec", ["", "0", "-5", "sixty"])
def test_a_missing_or_invalid_watchdog_usec_means_no_watchdog(usec):
    env = {"NOTIFY_SOCKET": "/run/systemd/notify", "WATCHDOG_USEC": usec}
    assert SystemdNotifier.from_environ(env).watchdog_interval() is None


def pings(gate: WatchdogGate, times, progress_until: float) -> List[int]:
    """The times at which the gate lets WATCHDOG=1 out, the scheduler progressing until ``progress_until``."""
    sent = []
    for now in times:
        if now <= progress_until:
            gate.progress(float(now))
        if gate.due(float(now)):
            sent.append(now)
    return sent


def test_watchdog_gate_pings_every_half_period_while_the_scheduler_makes_progress():
    notifier = SystemdNotifier("/run/systemd/notify", watchdog_usec=20_000_000)
    gate = WatchdogGate(notifier.watchdog_interval())
    assert pings(gate, range(0, 41), progress_until=1000) == [0, 10, 20, 30, 40]


def test_watchdog_gate_stops_pinging_once_progress_is_older_than_stall_after():
    gate = WatchdogGate(10.0, stall_after=25.0)
    assert pings(gate, range(0, 61, 5), progress_until=5) == [0, 10, 20, 30]


def test_watchdog_gate_by_default_allows_one_interval_without_progress():
    gate = WatchdogGate(10.0)
    assert pings(gate, range(0, 61, 5), progress_until=5) == [0, 10]


def test_watchdog_gate_resumes_when_progress_resumes():
    gate = WatchdogGate(10.0)
    gate.progress(0.0)
    assert gate.due(0.0)
    assert not gate.due(40.0)
    gate.progress(41.0)
    assert gate.due(41.0)


def test_watchdog_gate_waits_for_the_first_progress():
    gate = WatchdogGate(10.0)
    assert not gate.due(0.0)


def test_watchdog_gate_does_nothing_without_a_watchdog():
    gate = WatchdogGate(SystemdNotifier("/run/systemd/notify").watchdog_interval())
    assert pings(gate, range(100), progress_until=1000) == []
