"""Worker processes with hard timeouts and the registry of stuck calls, with real child processes."""

from __future__ import annotations

import os
import pickle
import sys
import time
from pathlib import Path

import pytest

from monagent.api import StuckCall
from monagent.workers import WorkerDied, WorkerPool, format_since

T0 = 1_790_000_000.0


def sleep_forever() -> None:
    while True:
        time.sleep(3600)


def wait_for_file(path: str) -> str:
    while not os.path.exists(path):
        time.sleep(0.02)
    return "returned"


def fail(message: str) -> None:
    raise ValueError(message)


def chatty(value: int) -> int:
    print("this goes to stderr, not into the protocol")
    sys.stdout.flush()
    return value * 2


def exit_abruptly() -> None:
    os._exit(3)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as handle:
        return handle.read().split(") ")[1][0] != "Z"


def wait_until(condition, what: str, limit: float = 10.0) -> None:
    deadline = time.monotonic() + limit
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.02)


@pytest.fixture
def pool():
    workers = WorkerPool(size=2, clock=lambda: T0)
    yield workers
    workers.close()


def test_a_call_runs_in_another_process_and_returns_its_result(pool):
    pid = pool.call(os.getpid, timeout=10)
    assert pid != os.getpid()
    assert pool.call(os.getpid, timeout=10) == pid  # the worker is long-lived
    assert pool.call(chatty, 21, timeout=10) == 42


def test_an_exception_in_the_function_is_raised_in_the_caller(pool):
    with pytest.raises(ValueError, match=r"^disk on fire$"):
        pool.call(fail, "disk on fire", timeout=10)
    with pytest.raises(FileNotFoundError):
        pool.call(os.stat, "/nonexistent/monagent", timeout=10)


def test_a_call_that_does_not_return_in_time_kills_and_replaces_its_worker(pool):
    first = pool.call(os.getpid, timeout=10)
    with pytest.raises(StuckCall) as caught:
        pool.call(sleep_forever, timeout=0.3)
    assert str(caught.value) == "sleep_forever did not return within 0.3s"
    wait_until(lambda: not alive(first), "the stuck worker to die")
    second = pool.call(os.getpid, timeout=10)
    assert second != first
    assert pool.stuck() == {}


def test_a_keyed_stuck_call_fails_at_once_while_it_is_still_stuck(pool):
    with pytest.raises(StuckCall, match=r"^statfs of /mnt/nfs did not return within 0.3s$"):
        pool.call(sleep_forever, timeout=0.3, key="/mnt/nfs", what="statfs of /mnt/nfs")
    assert pool.stuck() == {"/mnt/nfs": T0}
    started = time.monotonic()
    with pytest.raises(StuckCall) as caught:
        pool.call(sleep_forever, timeout=30, key="/mnt/nfs", what="statfs of /mnt/nfs")
    assert time.monotonic() - started < 25  # refused at once, not after another timeout
    assert str(caught.value) == f"statfs of /mnt/nfs still stuck since {format_since(T0)} (did not return within 30s)"
    # other keys and plain calls still get workers
    assert pool.call(os.getpid, timeout=10, key="/var", what="statfs of /var") > 0


def test_one_stuck_key_costs_one_worker_however_many_cycles_ask(pool):
    with pytest.raises(StuckCall):
        pool.call(sleep_forever, timeout=0.3, key="/mnt/nfs")
    probe_pids = {p for p in _children() if alive(p)}
    for _ in range(5):
        with pytest.raises(StuckCall, match="still stuck"):
            pool.call(sleep_forever, timeout=0.3, key="/mnt/nfs")
    assert {p for p in _children() if alive(p)} == probe_pids


def test_a_stuck_key_clears_when_the_call_finally_returns(pool, tmp_path):
    flag = tmp_path / "server-is-back"
    with pytest.raises(StuckCall):
        pool.call(wait_for_file, str(flag), timeout=0.3, key="/mnt/nfs")
    flag.touch()
    wait_until(lambda: pool.stuck() == {}, "the stuck call to return")
    assert pool.call(wait_for_file, str(flag), timeout=10, key="/mnt/nfs") == "returned"


def test_a_worker_that_dies_mid_call_is_reported_and_replaced(pool):
    with pytest.raises(WorkerDied, match=r"^exit_abruptly: the worker process died \(exit status 3\)$"):
        pool.call(exit_abruptly, timeout=10)
    assert pool.call(chatty, 1, timeout=10) == 2


def test_an_unpicklable_function_fails_before_any_worker_is_used(pool):
    with pytest.raises((pickle.PicklingError, AttributeError)):
        pool.call(lambda: 1, timeout=10)
    assert _children() == []


def test_close_kills_stuck_workers_and_reaps_them(tmp_path):
    workers = WorkerPool(size=1)
    with pytest.raises(StuckCall):
        workers.call(sleep_forever, timeout=0.3, key="/mnt/nfs")
    probes = _children()
    assert probes
    workers.close()
    assert not any(alive(pid) for pid in probes)
    with pytest.raises(RuntimeError, match=r"^the worker pool is closed$"):
        workers.call(os.getpid, timeout=1)


def test_calls_from_several_threads_share_the_pool(pool):
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=6) as executor:
        results = list(executor.map(lambda n: pool.call(chatty, n, timeout=30), range(30)))
    assert results == [n * 2 for n in range(30)]
    assert len(_children()) <= 2


def _children() -> list:
    """Live child processes of this test process that are monagent workers."""
    me = os.getpid()
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            stat = Path(f"/proc/{name}/stat").read_text()
            cmdline = Path(f"/proc/{name}/cmdline").read_bytes()
        except OSError:
            continue
        if int(stat.rsplit(") ", 1)[1].split()[1]) == me and b"monagent.workers" in cmdline:
            if stat.rsplit(") ", 1)[1][0] != "Z":
                found.append(int(name))
    return found
