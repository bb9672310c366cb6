"""The command line's own parts: logging setup."""

from __future__ import annotations

import logging

import pytest
from fake_dingtalk import FakeDingTalk

from monagent.logsetup import setup_logging


@pytest.fixture
def restore_logging():
    root = logging.getLogger()
    saved = (root.handlers[:], root.level, logging.getLogger("urllib3").level)
    yield
    for handler in root.handlers[:]:
        if handler not in saved[0]:
            root.removeHandler(handler)
            handler.close()
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])
    logging.getLogger("urllib3").setLevel(saved[2])


def test_debug_logging_never_shows_a_webhooks_access_token(restore_logging, capsys):
    import requests

    setup_logging("debug")
    with FakeDingTalk() as fake, requests.Session() as session:
        fake.add_robot("tok3n5ecret")
        session.post(fake.webhook("tok3n5ecret"), json={"msgtype": "text", "text": {"content": "x"}}, timeout=5).close()
    logging.getLogger("monagent.test").debug("debug lines are shown")
    err = capsys.readouterr().err
    assert "DEBUG monagent.test: debug lines are shown" in err
    assert "tok3n5ecret" not in err


def test_urllib3_warnings_still_follow_the_chosen_level(restore_logging):
    setup_logging("error")
    assert not logging.getLogger("urllib3").isEnabledFor(logging.WARNING)
    setup_logging("debug")
    assert logging.getLogger("urllib3").isEnabledFor(logging.WARNING)


def _status(config: str) -> tuple:
    import contextlib
    import io

    from monagent.cli import main

    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = main(["status", "-c", config])
    return code, err.getvalue()


def test_a_state_directory_the_user_cannot_read_is_a_one_line_error_not_a_traceback(public_tmp):
    from conftest import NOBODY, run_as

    state = public_tmp / "state"
    state.mkdir(mode=0o700)
    (state / "state.db").write_bytes(b"")
    config = public_tmp / "agent.toml"
    config.write_text(f'[agent]\nstate_dir = "{state}"\nruntime_dir = "{public_tmp / "run"}"\n')
    config.chmod(0o644)
    _status(str(config))  # as root first: the child cannot import from a root-only interpreter dir
    code, err = run_as(NOBODY, _status, str(config))
    assert (code, err) == (
        77,
        f"monagent: permission denied: {state / 'state.db'}; run this as root or as the user the agent runs as\n",
    )


def test_every_command_has_its_owner_and_a_named_command_builds_only_its_group():
    """cli.COMMAND_OWNERS must name every command build_parser() registers, or that command would
    parse differently alone; and `validate` alone imports no other command group (#17)."""
    import argparse

    from monagent.cli import COMMAND_OWNERS, _command_of, build_parser

    def commands(parser):
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        return set(sub.choices)

    assert commands(build_parser()) == set(COMMAND_OWNERS)
    assert commands(build_parser(["-c", "x.toml", "validate", "--strict"])) == {"run", "check", "validate", "plugins"}
    assert commands(build_parser(["--config", "status", "silence", "list"])) == {"status", "silence", "ack"}
    assert commands(build_parser(["frobnicate"])) == set(COMMAND_OWNERS)  # an unknown word: every choice in the error
    assert _command_of(["-c", "check", "--json"]) is None
