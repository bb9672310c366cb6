"""monagent.lazylog: a module's logger that imports logging at its first use, and is that logger."""

from __future__ import annotations

import logging
import subprocess
import sys

import pytest
from harness import SUBPROCESS_CWD

from monagent.lazylog import get_logger


def test_logging_is_imported_at_the_first_line_logged_not_before() -> None:
    code = (
        "import sys\n"
        "from monagent.lazylog import get_logger\n"
        "log = get_logger('monagent.example')\n"
        "before = 'logging' in sys.modules\n"
        "log.warning('the first line')\n"
        "print(before, 'logging' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=SUBPROCESS_CWD, capture_output=True, text=True, check=False)
    assert done.stdout.split() == ["False", "True"], done.stdout + done.stderr
    assert "the first line" in done.stderr  # logging's last-resort handler printed it


def test_lines_go_to_the_named_logger_with_its_level_and_handlers(caplog: pytest.LogCaptureFixture) -> None:
    log = get_logger("monagent.test_lazylog")
    caplog.set_level(logging.INFO, logger="monagent.test_lazylog")
    log.info("kept %s", 1)
    log.debug("dropped")
    logging.getLogger("monagent.test_lazylog").setLevel(logging.ERROR)  # set on the real one, seen at once
    log.warning("dropped too")
    log.error("kept %s", 2)
    assert [(r.name, r.getMessage()) for r in caplog.records] == [
        ("monagent.test_lazylog", "kept 1"),
        ("monagent.test_lazylog", "kept 2"),
    ]
    assert log.isEnabledFor(logging.ERROR) and not log.isEnabledFor(logging.WARNING)
    assert log.name == "monagent.test_lazylog"


def test_exception_keeps_the_traceback(caplog: pytest.LogCaptureFixture) -> None:
    log = get_logger("monagent.test_lazylog.exc")
    try:
        raise ValueError("boom")
    except ValueError:
        log.exception("failed")
    assert caplog.records[-1].exc_info is not None and caplog.records[-1].exc_info[0] is ValueError


def test_settings_on_the_stand_in_are_refused_not_silently_lost() -> None:
    log = get_logger("monagent.test_lazylog.settings")
    with pytest.raises(AttributeError, match=r"logging\.getLogger"):
        log.disabled = True
    assert not logging.getLogger("monagent.test_lazylog.settings").disabled
