"""An outbox written by the monagent before events carried structure still delivers after the upgrade.

tests/data/outbox/v2-state.db was written by that code (schema 2, event format 1: prose summaries,
string facts): a disk alert, a resolved memory alert, a process verdict and a test crash, queued for
the console and a DingTalk robot. The upgraded store migrates it in place and every entry reaches
the real fake robot (signature and rate limit checked), worded as it was queued.
"""

from __future__ import annotations

import shutil
import sqlite3
import time
from pathlib import Path

from fake_dingtalk import FakeDingTalk

from monagent.alerting.outbox import EventOutbox
from monagent.alerting.route import Route
from monagent.confread import Secret
from monagent.notify.chat_config import DingTalkConfig
from monagent.notify.console import ConsoleDispatcher, ConsoleReceiver
from monagent.notify.delivery import Delivery
from monagent.notify.dingtalk import DingTalkReceiver
from monagent.notify.dispatcher import ChatDispatcher
from monagent.store import SCHEMA_VERSION, Store

OLD = Path(__file__).resolve().parent / "data" / "outbox" / "v2-state.db"
SECRET = "SECupgrade0123456789abcdef"


def test_an_outbox_written_by_the_previous_version_is_migrated_and_every_entry_is_delivered(tmp_path):
    shutil.copy(OLD, tmp_path / "state.db")
    store = Store.open(tmp_path)
    outbox = EventOutbox(store)
    assert store.conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 3
    formats = [row[0] for row in store.conn.execute("SELECT json_extract(event, '$.format') FROM outbox")]
    assert formats == [1] * 8
    with FakeDingTalk() as fake:
        delivery = Delivery(group_wait=0.0)
        config = DingTalkConfig("ops", Secret(fake.webhook("tok")), Secret(SECRET), Route(), language="zh",
                                timezone="Asia/Shanghai", delivery=delivery)  # fmt: skip
        fake.add_robot("tok", SECRET)
        dispatcher = ChatDispatcher(DingTalkReceiver(config), delivery)
        deadline = time.monotonic() + 20
        while store.queued_count("dingtalk:ops") and time.monotonic() < deadline:
            dispatcher.pump(outbox, time.time())
            time.sleep(0.05)
        assert store.queued_count("dingtalk:ops") == 0
        text = "\n".join(r.text for r in fake.accepted)
    assert "96.5%（阈值 >= 95%）" in text  # the disk alert, its value in the formatter's units
    assert "0 running, expected >= 1" in text  # a format-1 verdict: its prose as it was queued
    assert "Kernel panic - not syncing: sysrq triggered crash" in text
    assert "1.2 GiB" in text and "扁平格式，需先 makedumpfile -R 再用 crash 分析" in text
    assert "(test crash) (测试触发)" not in text
    lines = []
    ConsoleDispatcher(ConsoleReceiver(stream=_Lines(lines))).pump(outbox, time.time())
    assert len(lines) == 4 and store.queued_count("console") == 0
    store.close()
    assert sqlite3.connect(OLD).execute("PRAGMA user_version").fetchone()[0] == 2  # the test data is untouched


class _Lines:
    def __init__(self, lines):
        self.lines = lines

    def write(self, text):
        self.lines.extend(t for t in text.splitlines() if t)

    def flush(self):
        pass
