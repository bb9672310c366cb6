"""At the first start in a new boot: every source read, exactly one message about the previous boot.

Real parts: the kdump check over a real dump tree, run by the real scheduler; pstore files; a
stand-in journalctl child process; the store and its outbox. Only the boot (its id and start time)
is given, since this machine cannot be rebooted by a test.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, List

import pytest
from alerting_helpers import drain
from harness import run_in_process_until_observed
from journal_helpers import FAKE, journal_dir
from kdump_helpers import SYSRQ, dump_dir
from test_pstore import efi_name, kernel_chunks

from monagent import testing
from monagent.alerting.pipeline import AlertPipeline
from monagent.bootend import BootEnd
from monagent.bootinquiry import explain_previous_boot
from monagent.config import Config, loads
from monagent.loader import Registry
from monagent.scheduler import Scheduler, build_instances
from monagent.store import Store

NOW = time.time()
BOOT = NOW - 120.0  # this boot began two minutes ago
PREVIOUS_START = NOW - 4000.0  # the agent started in the previous boot
DUMP_FILES = {"dmesg.202601211250": SYSRQ, "dump.202601211250": b"KDUMP   " + b"\0" * 60}


class Facts:
    """SystemFacts' one method the inquiry uses, at a given boot."""

    def __init__(self, boot_id: str, boot_time: float) -> None:
        self.boot_id, self.boot_time = boot_id, boot_time

    def cycle(self, now: float, monotonic: float) -> testing.FakeContext:
        return testing.FakeContext(hostname="web01", now=now, boot_id=self.boot_id, boot_time=self.boot_time)


def config(tmp_path: Path, reboot: str = "") -> Config:
    text = f"""
[agent]
hostname = "web01"
state_dir = "{tmp_path / "state"}"
runtime_dir = "{tmp_path / "run"}"
plugin_dirs = []

[alerting]
startup_grace = "0"

[reboot]
journalctl = "{FAKE}"
pstore_dirs = ["{tmp_path / "pstore"}", "{tmp_path / "archive"}"]
journal_timeout = "5s"
{reboot}

[checks.crash_dumps]
type = "kdump"
roots = ["{tmp_path / "crash"}"]
read_kdump_config = false
"""
    return loads(text, str(tmp_path / "agent.toml"), environ={})


def previous_boot_ran(cfg: Config, boot_id: str = "boot-a", clean: bool = False, checks: bool = False) -> List[str]:
    """The agent's life in the previous boot: started, (its checks ran once,) stopped or killed."""
    store = Store.open(cfg.agent.state_dir)
    pipeline = AlertPipeline(cfg, store, now=PREVIOUS_START, monotonic=100.0, boot_id=boot_id)
    if checks:
        facts = Facts(boot_id, PREVIOUS_START - 60)
        scheduler = Scheduler(build_instances(cfg.checks, Registry.for_agent(cfg.agent)), facts.cycle, monotonic=100.0)
        began = time.monotonic()
        clock = lambda: (PREVIOUS_START, 100.0 + time.monotonic() - began)  # noqa: E731
        runs = scheduler.run_all_once(PREVIOUS_START, 100.0, time.sleep, clock)
        scheduler.close()
        pipeline.observe(runs, PREVIOUS_START, 101.0)
    told = drain(store)
    pipeline.close(clean=clean)
    store.close()
    return told


def start(cfg: Config, boot_id: str = "boot-b", boot_time: float = BOOT) -> tuple:
    store = Store.open(cfg.agent.state_dir)
    pipeline = AlertPipeline(cfg, store, now=NOW, monotonic=5000.0, boot_id=boot_id)
    scheduler = Scheduler(
        build_instances(cfg.checks, Registry.for_agent(cfg.agent)), Facts(boot_id, boot_time).cycle, monotonic=5000.0
    )
    verdict = explain_previous_boot(cfg, scheduler, pipeline, Facts(boot_id, boot_time))
    scheduler.close()
    messages = drain(store)
    meta = store.load().meta
    pipeline.close(clean=True)
    store.close()
    return verdict, messages, meta


@pytest.fixture
def journal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    def use(case: str) -> None:
        monkeypatch.setenv("FAKE_JOURNAL_DIR", str(journal_dir(tmp_path, case)))

    return use


def write_pstore(directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for number, chunk in enumerate(kernel_chunks(SYSRQ, "Panic", 700), start=1):
        (directory / efi_name(number)).write_text(chunk)


def test_a_crash_with_a_dump_is_one_message_the_crash_card(tmp_path: Path, journal: Any) -> None:
    cfg = config(tmp_path)
    journal("unplanned")
    previous_boot_ran(cfg)
    dump_dir(
        tmp_path / "crash",
        "202601211250",
        DUMP_FILES,
        when=BOOT - 60,
    )
    verdict, messages, meta = start(cfg)
    assert verdict.end == BootEnd.CRASH_DUMP
    assert len(messages) == 1
    assert messages[0].startswith("OCCURRENCE critical web01 crash_dumps ")
    assert "Kernel panic - not syncing: sysrq triggered crash" in messages[0]
    assert json.loads(meta["last_boot_end"])["end"] == "crash_dump"


def test_a_crash_without_a_dump_is_one_message_from_pstore_remembered_afterwards(tmp_path: Path, journal: Any) -> None:
    cfg = config(tmp_path)
    journal("unplanned")
    previous_boot_ran(cfg)
    write_pstore(tmp_path / "pstore")
    verdict, messages, _ = start(cfg)
    assert messages == [
        "NOTICE critical web01 kernel crash, no dump (pstore efi record): Kernel panic - not syncing: sysrq triggered crash"
    ]
    before = sorted(p.name for p in (tmp_path / "pstore").iterdir())
    # a restart in the same boot says nothing more
    assert start(cfg)[:2] == (None, [])
    # the next boot ends in order; the old record (still there, never moved by us) is not news
    assert sorted(p.name for p in (tmp_path / "pstore").iterdir()) == before
    journal("planned-reboot")
    verdict, messages, _ = start(cfg, boot_id="boot-c")
    assert verdict.end == BootEnd.PLANNED
    assert messages == [
        "NOTICE warning web01 planned reboot: the previous boot shut down in order, "
        "requested by ops via sudo: /usr/bin/systemctl reboot"
    ]


def test_records_present_at_the_first_start_ever_are_remembered_not_announced(tmp_path: Path, journal: Any) -> None:
    cfg = config(tmp_path)
    write_pstore(tmp_path / "archive" / "17690000")
    assert start(cfg, boot_id="boot-a")[:2] == (None, [])
    journal("unplanned")
    verdict, messages, _ = start(cfg, boot_id="boot-b")
    assert verdict.end == BootEnd.UNPLANNED and len(messages) == 1
    assert messages[0].startswith("NOTICE critical web01 unplanned reboot: the previous boot ended without a shutdown")


def test_planned_reboots_can_be_silent_and_are_still_recorded(tmp_path: Path, journal: Any) -> None:
    cfg = config(tmp_path, 'planned = "silent"')
    journal("planned-reboot")
    previous_boot_ran(cfg, clean=True)
    _verdict, messages, meta = start(cfg)
    assert messages == []
    assert json.loads(meta["last_boot_end"])["summary"].startswith("planned reboot: the previous boot shut down in order")


def test_an_old_dump_already_announced_does_not_explain_this_boot(tmp_path: Path, journal: Any) -> None:
    cfg = config(tmp_path)
    journal("unplanned")
    dump_dir(
        tmp_path / "crash",
        "202601201000",
        {k.replace("1250", "1000"): v for k, v in DUMP_FILES.items()},
        when=PREVIOUS_START - 86400,
    )
    told = previous_boot_ran(cfg, checks=True)
    assert [m.split(" ")[0] for m in told] == ["NOTICE"]  # the first run's summary of the old dump
    verdict, messages, _ = start(cfg)
    assert verdict.end == BootEnd.UNPLANNED
    assert len(messages) == 1 and messages[0].startswith("NOTICE critical web01 unplanned reboot:")


def test_unreadable_pstore_is_named_in_the_message(tmp_path: Path, journal: Any) -> None:
    cfg = config(tmp_path)
    (tmp_path / "pstore").write_text("not a directory")
    journal("nojournal")
    previous_boot_ran(cfg)
    verdict, messages, _meta = start(cfg)
    assert verdict.end == BootEnd.UNPLANNED
    assert verdict.facts["unreadable"] == f"cannot read {tmp_path / 'pstore'}: Not a directory"
    assert len(messages) == 1 and messages[0].endswith("(no persistent journal to say more)")


def test_monagent_check_shows_how_the_last_boot_ended(tmp_path: Path, journal: Any) -> None:
    from monagent.commands.core import last_boot_line

    cfg = config(tmp_path)
    assert last_boot_line(cfg).startswith("last boot: unknown (no state database at ")
    journal("planned-reboot")
    previous_boot_ran(cfg)
    assert last_boot_line(cfg) == "last boot: not classified yet (the agent has not started since a reboot)"
    first = config(tmp_path / "first")  # an agent whose first start on record is in this very boot
    previous_boot_ran(first, boot_id=Path("/proc/sys/kernel/random/boot_id").read_text().strip())
    assert last_boot_line(first) == "last boot: nothing to explain (the agent's first start on record was in this boot)"
    verdict, _, _ = start(cfg)
    from monagent.wording import ENGLISH

    seen = verdict.facts["last_seen_alive"]
    assert isinstance(seen, float)
    assert last_boot_line(cfg) == (
        "last boot: planned reboot: the previous boot shut down in order, requested by ops via sudo: "
        f"/usr/bin/systemctl reboot (last seen alive {ENGLISH.time(seen)})"
    )


def test_reboot_settings_are_validated_with_file_line_and_key(tmp_path: Path) -> None:
    from monagent.confread import ConfigError

    with pytest.raises(ConfigError) as err:
        config(tmp_path, 'planned = "loud"\nwait = "soon"')
    problems = [str(p) for p in err.value.problems]
    assert any("reboot.planned" in p and "loud" in p for p in problems), problems
    assert any("reboot.wait" in p and "soon" in p for p in problems), problems


def test_a_fault_while_explaining_the_previous_boot_leaves_the_agent_watching_this_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    """The inquiry is one more reader of outside sources; whatever it raises, the checks run and the agent stops cleanly."""
    import monagent.bootinquiry
    from monagent.agent import Agent

    def broken(*args: Any) -> None:
        raise ModuleNotFoundError("No module named 'monagent.checks'")  # what a wrong sys.path once gave

    monkeypatch.setattr(monagent.bootinquiry, "explain_previous_boot", broken)
    path = tmp_path / "agent.toml"
    path.write_text(
        f'[agent]\nhostname = "web01"\nstate_dir = "{tmp_path / "state"}"\nruntime_dir = "{tmp_path / "run"}"\n'
        'plugin_dirs = []\n[checks.memory]\ntype = "memory"\ninterval = "1s"\n'
    )
    assert run_in_process_until_observed(lambda: Agent(path, environ={}), "memory", monkeypatch), (
        "the check never ran after the inquiry failed"
    )
    assert "the previous boot could not be explained" in capfd.readouterr().err
