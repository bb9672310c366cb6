"""One agent per state directory: a second one refuses to start instead of sending everything twice."""

from __future__ import annotations

import os

import pytest
from harness import AgentProcess
from test_agent import agent_config

from monagent.statelock import StateDirBusy, claim


def test_a_second_claim_on_the_same_state_directory_names_the_holder(tmp_path):
    first = claim(tmp_path / "state")
    try:
        with pytest.raises(StateDirBusy) as info:
            claim(tmp_path / "state")
        assert str(info.value) == (
            f"another monagent (pid {os.getpid()}) is running on the state directory "
            f"{tmp_path / 'state'}; stop it first, or give this one its own [agent] state_dir"
        )
    finally:
        first.release()


def test_the_directory_is_free_again_once_released(tmp_path):
    claim(tmp_path / "state").release()
    again = claim(tmp_path / "state")
    again.release()
    assert (tmp_path / "state" / "agent.lock").read_text() == f"{os.getpid()}\n"


def test_a_state_directory_that_cannot_be_created_is_left_to_the_store_to_report(tmp_path):
    (tmp_path / "file").write_text("")
    claim(tmp_path / "file" / "state").release()  # no exception: the store names the real problem


def test_a_second_agent_on_the_same_state_directory_exits_without_a_false_unclean_stop_notice(tmp_path):
    config = agent_config(tmp_path)
    first = AgentProcess(config)
    try:
        first.wait_for("monagent started: 1 checks")
        second = AgentProcess(config)
        assert second.proc.wait(30) == 75  # EX_TEMPFAIL: the state may be free again later
        second.stop()
        assert [line.split(" ", 2)[2] for line in second.lines] == [
            f"ERROR monagent.agent: another monagent (pid {first.proc.pid}) is running on the state directory "
            f"{tmp_path / 'state'}; stop it first, or give this one its own [agent] state_dir"
        ]
        assert first.proc.poll() is None
        assert not any("unclean" in line for line in first.lines)
    finally:
        assert first.stop() == 0
