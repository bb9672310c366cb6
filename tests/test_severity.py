"""One severity vocabulary (monagent.api.SEVERITIES): every output that names a status gives the table's
answer, UNKNOWN included (it used to read as a warning in chat, as info to a route, as unknown elsewhere)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from alerting_helpers import Clock, config, feed, open_pipeline
from events_factory import event
from monagent.checks.nagios import NagiosCheck

from monagent import wording
from monagent.alerting.machine import AlertState, Phase
from monagent.alerting.pipeline import severity_label
from monagent.alerting.route import Route
from monagent.alerting.status import gather
from monagent.api import LEVELS, SEVERITIES, Status
from monagent.catalogue import en, zh
from monagent.events import EventKind
from monagent.notify.alertmanager import event_labels
from monagent.notify.chat_config import MENTION_SEVERITIES
from monagent.notify.chat_text import Style, render
from monagent.notify.coalesce import Batch, Item
from monagent.notify.console import format_line
from monagent.notify.webhook import event_json

ROOT = Path(__file__).resolve().parent.parent
EN, ZH = en.MESSAGES, zh.MESSAGES
EXPECTED = {
    # status: (label, level, notification word)
    Status.OK: ("ok", "info", "info"),
    Status.WARNING: ("warning", "warning", "warning"),
    Status.CRITICAL: ("critical", "critical", "critical"),
    Status.UNKNOWN: ("unknown", "warning", "unknown"),
}


def test_the_table_names_every_status_once() -> None:
    assert {s: (v.label, v.level, v.word) for s, v in SEVERITIES.items()} == EXPECTED
    assert sorted(Status, key=lambda s: s.rank) == [Status.OK, Status.WARNING, Status.UNKNOWN, Status.CRITICAL]
    assert all(Status.from_label(s.label) is s and s.name == s.label.upper() for s in Status)
    assert set(LEVELS) == {v.level for v in SEVERITIES.values()} and MENTION_SEVERITIES == LEVELS
    assert all(s.label in EN and s.label in ZH and s.word in EN and s.word in ZH for s in Status)


@pytest.mark.parametrize("status", list(Status), ids=lambda s: s.name)
def test_every_output_names_a_status_by_the_table(status: Status) -> None:
    label, level, word = EXPECTED[status]
    firing = event(EventKind.FIRING, severity=status)
    item = Item(firing, (1,))
    # machine labels: Alertmanager, the severity a matcher sees, Nagios timeout_state
    assert dict(event_labels(firing, {}))["severity"] == label
    assert severity_label(AlertState(phase=Phase.FIRING, severity=status)) == label
    assert NagiosCheck(command=["/bin/true"], timeout_state=label).timeout_state is status
    # the notification level: routes, the webhook, the badge's colour and mentions
    assert [lv for lv in LEVELS if Route(severities=(lv,)).matches("disk", status)] == [level]
    assert event_json(item)["severity"] == level
    # the words people read: the chat badge in each language, the console line, the status word
    for style, words in ((Style("en", "UTC"), EN), (Style("zh", "UTC"), ZH)):
        badge = render(Batch((item,)), style).text.splitlines()[2]
        assert f">{words[word]}</font>" in badge, badge
    assert format_line(firing).split()[1] == word
    assert wording.severity_word(wording.ENGLISH, status) == EN[label]


def test_monagent_status_shows_an_open_alerts_severity_by_its_label(tmp_path: Path) -> None:
    cfg = config(tmp_path, '[checks.load]\ntype = "gauge"\n[checks.load.alerting]\nfire_after_cycles = 1\n')
    clock = Clock()
    pipeline = open_pipeline(cfg, clock)
    feed(pipeline, clock, "load", [95, 95])
    try:
        rows = gather(cfg, pipeline.store, clock.wall, running=True)["alerts"]
    finally:
        pipeline.store.close()
    assert [row["severity"] for row in rows] == [Status.CRITICAL.label]


def test_the_metrics_help_numbers_the_statuses_by_the_table() -> None:
    from monagent.metrics import _numbered

    assert _numbered(Status) == ", ".join(f"{int(s)} {s.label.upper()}" for s in sorted(Status))


def _sources():
    for package in ("monagent", "checks"):
        yield from sorted((ROOT / package).rglob("*.py"))


def test_no_module_names_a_status_by_itself() -> None:
    """``.name.lower()`` of a Status, or a literal tuple of the levels, is a second vocabulary: use the table."""
    wrong = []
    levels = {frozenset(("critical", "warning", "info")), frozenset(("warning", "critical", "info"))}
    for path in _sources():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in ("lower", "upper")
                and isinstance(node.func.value, ast.Attribute)
                and node.func.value.attr == "name"
            ):
                wrong.append(f"{path.relative_to(ROOT)}:{node.lineno}: .name.{node.func.attr}()")
            if isinstance(node, ast.Tuple) and all(isinstance(e, ast.Constant) for e in node.elts):
                values = frozenset(e.value for e in node.elts)  # type: ignore[attr-defined]
                if values in levels and path.name != "api.py":
                    wrong.append(f"{path.relative_to(ROOT)}:{node.lineno}: a literal tuple of the levels")
    assert not wrong, "\n".join(wrong)
