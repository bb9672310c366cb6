"""The process check on the captured process table and on real processes spawned for the test."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import List

import pytest
from monagent.checks.process import ProcessCheck

from monagent.api import CheckError, Formatter, Result, Status
from monagent.context import CycleContext, SystemFacts
from monagent.procfs import CLOCK_TICKS, PAGE_SIZE

DATA = Path(__file__).resolve().parent.parent / "data" / "proc"

EN = Formatter("en")


def said(result) -> str:
    """The result's reason as an English output shows it."""
    return EN.text(result.reason)


class Counting(CycleContext):
    """The captured tree, counting command-line reads."""

    def __init__(self, proc_root: Path = DATA, monotonic: float = 50.0) -> None:
        super().__init__(SystemFacts("web-01", proc_root=proc_root), 1000.0 + monotonic, monotonic)
        self.cmdline_reads: List[int] = []

    def cmdline(self, pid: int):
        self.cmdline_reads.append(pid)
        return super().cmdline(pid)


def values(result: Result) -> dict:
    return {m.name: m.value for m in result.metrics}


def live() -> CycleContext:
    return SystemFacts("here").cycle(time.time(), time.monotonic())


def test_a_name_rule_counts_running_processes_and_their_zombies_without_reading_command_lines():
    ctx = Counting()
    result = ProcessCheck(name="nginx").run(ctx)
    assert values(result) == {"count": 3, "cpu_percent": None, "rss_bytes": 30720 * PAGE_SIZE, "zombies": 1}
    assert result.status == Status.OK
    assert result.subject == "nginx"
    assert said(result) == f"3 running; max RSS {EN.bytes(30720 * PAGE_SIZE)} (pid 814); 1 zombie"
    assert result.facts == {"pids": "812, 813, 814"}
    assert ctx.cmdline_reads == []


def test_no_matching_process_is_critical_with_the_expected_minimum():
    result = ProcessCheck(name="apache2").run(Counting())
    assert (result.status, said(result)) == (Status.CRITICAL, "0 running, expected at least 1")
    assert values(result) == {"count": 0, "cpu_percent": None, "rss_bytes": None, "zombies": 0}


def test_too_many_processes_are_critical_with_the_expected_maximum():
    result = ProcessCheck(name="nginx", max_count=2, label="web server").run(Counting())
    assert result.status == Status.CRITICAL
    assert said(result).startswith("3 running, expected at most 2; max RSS ")
    assert result.subject == "web server"


def test_a_user_narrows_a_name_rule():
    assert values(ProcessCheck(name="nginx", user="www-data").run(Counting()))["count"] == 2
    assert values(ProcessCheck(name="nginx", user="0").run(Counting()))["count"] == 1


def test_a_name_longer_than_the_kernels_15_bytes_is_confirmed_by_argv0():
    ctx = Counting()
    result = ProcessCheck(name="gunicorn-worker-pool").run(ctx)
    assert values(result)["count"] == 1 and result.facts == {"pids": "1200"}
    assert sorted(ctx.cmdline_reads) == [1200, 1201]  # only the two whose comm matched


def test_a_command_line_rule_reads_command_lines_only_of_processes_that_pass_the_other_criteria():
    ctx = Counting()
    result = ProcessCheck(cmdline=r"worker\.py --queue emails", user="1000").run(ctx)
    assert values(result)["count"] == 1 and result.facts == {"pids": "1400"}
    assert sorted(set(ctx.cmdline_reads)) == [1200, 1201, 1300, 1400]


def test_a_pidfile_rule_counts_the_process_it_names(tmp_path):
    pidfile = tmp_path / "nginx.pid"
    pidfile.write_text("812\n")
    result = ProcessCheck(name="nginx", pidfile=str(pidfile)).run(Counting())
    assert values(result)["count"] == 1 and said(result).startswith("1 running; max RSS")


def test_a_missing_or_stale_pidfile_says_so(tmp_path):
    pidfile = tmp_path / "nginx.pid"
    result = ProcessCheck(pidfile=str(pidfile), label="nginx").run(Counting())
    assert said(result) == f"0 running, expected at least 1; pidfile {pidfile} not found"
    pidfile.write_text("4242\n")
    result = ProcessCheck(pidfile=str(pidfile), label="nginx").run(Counting())
    assert said(result) == f"0 running, expected at least 1; pidfile {pidfile} names pid 4242, which is not running"


def test_per_process_cpu_is_measured_between_runs_and_forgets_a_reused_pid(tmp_path):
    root = tmp_path / "proc"
    shutil.copytree(DATA, root)
    check = ProcessCheck(name="nginx", user="www-data")
    assert values(check.run(Counting(root, 50.0)))["cpu_percent"] is None
    stat = root / "814" / "stat"
    stat.write_text(stat.read_text().replace(" 5120 2001 ", f" {5120 + 3 * CLOCK_TICKS // 2} 2001 "))
    result = check.run(Counting(root, 110.0))
    assert values(result)["cpu_percent"] == 2.5  # 1.5 s of CPU in 60 s
    assert "max CPU 2% (pid 814)" in said(result) or "max CPU 3% (pid 814)" in said(result)
    stat.write_text(stat.read_text().replace(" 1841 ", " 9999 "))  # same pid, another process
    assert values(check.run(Counting(root, 170.0)))["cpu_percent"] == 0.0  # only 813 has a baseline


def test_twenty_rules_cost_one_scan_of_the_process_table(monkeypatch):
    from monagent import procfs

    scans = []
    real = procfs.read_processes
    monkeypatch.setattr(procfs, "read_processes", lambda root, *args, **kwargs: scans.append(root) or real(root, *args, **kwargs))
    ctx = Counting()
    for n in range(20):
        ProcessCheck(name=f"daemon{n}").run(ctx)
    assert len(scans) == 1


def test_a_name_rule_reads_the_stat_of_its_matches_only(monkeypatch):
    from monagent import procfs

    reads: List[str] = []
    real = procfs.read_small

    def counting(path: str) -> bytes:
        reads.append(path)
        return real(path)

    monkeypatch.setattr(procfs, "read_small", counting)
    result = ProcessCheck(name="nginx").run(Counting())
    assert values(result)["zombies"] == 1
    assert sorted(path for path in reads if not path.endswith("/comm")) == [f"{DATA}/{pid}/stat" for pid in (812, 813, 814, 815)]


def test_a_matching_process_gone_before_its_stat_is_read_is_neither_running_nor_a_zombie(tmp_path):
    root = tmp_path / "proc"
    shutil.copytree(DATA, root)
    ctx = Counting(root)
    ctx.processes()  # the cycle's table has every nginx
    shutil.rmtree(root / "814")
    shutil.rmtree(root / "815")  # the zombie was reaped
    result = ProcessCheck(name="nginx").run(ctx)
    assert values(result) == {"count": 2, "cpu_percent": None, "rss_bytes": 21504 * PAGE_SIZE, "zombies": 0}
    assert result.facts == {"pids": "812, 813"}


def test_a_pidfiles_process_gone_before_its_stat_is_read_is_not_running(tmp_path):
    root = tmp_path / "proc"
    shutil.copytree(DATA, root)
    pidfile = tmp_path / "nginx.pid"
    pidfile.write_text("812\n")
    ctx = Counting(root)
    ctx.processes()
    shutil.rmtree(root / "812")
    result = ProcessCheck(pidfile=str(pidfile), label="nginx").run(ctx)
    assert said(result) == f"0 running, expected at least 1; pidfile {pidfile} names pid 812, which is not running"


def test_bad_rules_are_refused_when_the_check_is_built():
    with pytest.raises(ValueError, match=r"^a process rule needs at least one of name, cmdline, user, pidfile$"):
        ProcessCheck()
    with pytest.raises(ValueError, match=r"^cmdline: invalid regular expression '\(nginx': "):
        ProcessCheck(cmdline="(nginx")
    with pytest.raises(ValueError, match=r"^min_count must be >= 0 and max_count >= min_count, got 3 and 1$"):
        ProcessCheck(name="x", min_count=3, max_count=1)


def test_an_unknown_user_is_a_check_error():
    with pytest.raises(CheckError, match=r'^user "no-such-user-x" does not exist$'):
        ProcessCheck(user="no-such-user-x").run(Counting())


# -- real processes ---------------------------------------------------------------------------------


@pytest.fixture
def spawned():
    procs: List[subprocess.Popen] = []

    def spawn(argv: List[str], executable: str = "/bin/sleep") -> subprocess.Popen:
        proc = subprocess.Popen(argv, executable=executable)
        procs.append(proc)
        wait_for_exec(proc.pid, argv[0])
        return proc

    yield spawn
    for proc in procs:
        proc.kill()
        proc.wait()


def wait_for_state(pid: int, state: str) -> None:
    deadline = time.monotonic() + 10
    while Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1][0] != state:
        assert time.monotonic() < deadline, f"pid {pid} never reached state {state}"
        time.sleep(0.01)


def wait_for_exec(pid: int, argv0: str) -> None:
    """Popen returns while exec may still be setting up argv: the scan is quick enough to see that."""
    deadline = time.monotonic() + 10
    while not Path(f"/proc/{pid}/cmdline").read_bytes().startswith(argv0.encode() + b"\0"):
        if Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1][0] == "Z":
            return  # it ran and exited already
        assert time.monotonic() < deadline, f"pid {pid} never ran {argv0}"
        time.sleep(0.01)


def test_real_processes_are_counted_by_their_command_line_until_they_are_killed(spawned):
    tag = f"monagent-test-{uuid.uuid4().hex[:8]}"
    first = spawned([tag, "1000"])
    spawned([tag, "1001"])
    check = ProcessCheck(cmdline=f"^{tag} ", min_count=2, label=tag)
    result = check.run(live())
    assert (result.status, values(result)["count"]) == (Status.OK, 2)
    assert values(result)["rss_bytes"] > 0
    first.kill()
    first.wait()
    result = check.run(live())
    assert (result.status, said(result).split(";")[0]) == (Status.CRITICAL, "1 running, expected at least 2")


def test_a_real_program_with_a_long_name_is_matched_despite_the_truncated_comm(spawned, tmp_path):
    program = tmp_path / "monagent-long-sleeper-name"
    shutil.copy("/bin/sleep", program)
    spawned([str(program), "1000"], executable=str(program))
    assert values(ProcessCheck(name="monagent-long-sleeper-name").run(live()))["count"] == 1
    assert values(ProcessCheck(name="monagent-long-sleeper-else").run(live()))["count"] == 0


def test_a_real_zombie_is_counted_as_a_zombie_not_as_running(spawned, tmp_path):
    program = tmp_path / "mazombie"
    shutil.copy("/bin/true", program)
    child = spawned([str(program)], executable=str(program))
    wait_for_state(child.pid, "Z")
    result = ProcessCheck(name="mazombie").run(live())
    assert values(result)["count"] == 0 and values(result)["zombies"] == 1
    assert said(result) == "0 running, expected at least 1; 1 zombie"


def test_a_busy_real_process_shows_cpu_from_the_second_run(spawned):
    tag = f"monagent-busy-{uuid.uuid4().hex[:8]}"
    spawned([tag, "-c", "while True: pass"], executable=sys.executable)
    check = ProcessCheck(cmdline=f"^{tag} ")
    assert values(check.run(live()))["cpu_percent"] is None
    time.sleep(0.3)
    assert values(check.run(live()))["cpu_percent"] > 0


def test_a_process_that_exits_between_the_scan_and_its_command_line_read_is_not_counted(spawned):
    tag = f"monagent-test-{uuid.uuid4().hex[:8]}"
    proc = spawned([tag, "1000"])
    ctx = live()
    assert any(p.pid == proc.pid for p in ctx.processes())  # in this cycle's table
    proc.kill()
    proc.wait()
    result = ProcessCheck(cmdline=f"^{tag} ").run(ctx)
    assert values(result)["count"] == 0 and result.status == Status.CRITICAL


def test_a_real_process_that_exits_between_the_name_scan_and_its_stat_read_is_not_counted(spawned, tmp_path):
    program = tmp_path / "magone"
    shutil.copy("/bin/sleep", program)
    proc = spawned([str(program), "1000"], executable=str(program))
    ctx = live()
    assert [p.comm for p in ctx.processes() if p.pid == proc.pid] == ["magone"]  # named in the table
    proc.kill()
    proc.wait()  # reaped: its /proc entry is gone
    result = ProcessCheck(name="magone").run(ctx)
    assert values(result)["count"] == 0 and values(result)["zombies"] == 0
    assert said(result) == "0 running, expected at least 1"


def as_nobody(rule: ProcessCheck, hidepid: bool = False) -> str:
    """Run ``rule`` once in a forked child that dropped root (after mounting a hidepid /proc if asked)."""
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover (the forked child)
        os.close(read)
        answer = "setup failed"
        try:
            if hidepid:
                _private_hidepid_proc()
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            result = rule.run(SystemFacts("here").cycle(time.time(), time.monotonic()))
            answer = f"{result.status.name} | {result.subject}: {said(result).split(';')[0]}"
        except OSError as exc:
            answer = f"setup failed: {exc}"
        finally:
            os.write(write, answer.encode())
            os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        answer = pipe.read().decode()
    os.waitpid(child, 0)
    if answer.startswith("setup failed"):
        pytest.skip(f"cannot mount a private hidepid /proc here: {answer}")
    return answer


def _private_hidepid_proc() -> None:
    import ctypes
    import ctypes.util

    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    clone_newns, ms_rec, ms_private = 0x00020000, 0x4000, 0x40000
    if (
        libc.unshare(clone_newns) != 0
        or libc.mount(b"none", b"/", None, ms_rec | ms_private, None) != 0
        or libc.mount(b"proc", b"/proc", b"proc", 0, b"hidepid=2") != 0
    ):
        raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))


def test_an_unprivileged_agent_counts_another_users_process(spawned):
    tag = f"monagent-test-{uuid.uuid4().hex[:8]}"
    spawned([tag, "1000"])  # runs as root
    assert as_nobody(ProcessCheck(cmdline=f"^{tag} ", label=tag)) == f"OK | {tag}: 1 running"


def test_a_process_table_hidden_by_hidepid_is_unknown_not_critical(spawned):
    tag = f"monagent-test-{uuid.uuid4().hex[:8]}"
    spawned([tag, "1000"])
    assert as_nobody(ProcessCheck(cmdline=f"^{tag} ", label=tag), hidepid=True) == (
        f"UNKNOWN | {tag}: 0 running, but other users' processes are hidden from the agent (/proc mounted with hidepid=)"
    )


def test_the_plugin_test_kit_judges_a_process_rule():
    from monagent.testing import FakeContext, fake_process, run_check

    ctx = FakeContext(processes=[fake_process(10, "nginx"), fake_process(11, "nginx", state="Z")])
    report = run_check(ProcessCheck, {"name": "nginx", "min_count": 2}, ctx)
    assert report.status == Status.CRITICAL
    assert report.summary == "nginx: 1 running, expected at least 2; 1 zombie"
