"""The command line's own parts: logging setup."""

from __future__ import annotations

import logging

import pytest
from fake_dingtalk import FakeDingTalk

from monagent.cli import setup_logging


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
        session.post(fake.webhook("tok3n5ecret"), json={"msgtype": "text", "text": {"content": "x"}},
                     timeout=5).close()
    logging.getLogger("monagent.test").debug("debug lines are shown")
    err = capsys.readouterr().err
    assert "DEBUG monagent.test: debug lines are shown" in err
    assert "tok3n5ecret" not in err


def test_urllib3_warnings_still_follow_the_chosen_level(restore_logging):
    setup_logging("error")
    assert not logging.getLogger("urllib3").isEnabledFor(logging.WARNING)
    setup_logging("debug")
    assert logging.getLogger("urllib3").isEnabledFor(logging.WARNING)
