"""The receiver table (monagent/notify/registry.py): every kind of receiver the configuration knows is a
row, and config parsing, receiver names, routes and dispatchers all come from it."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from monagent.config import loads
from monagent.confread import ConfigError
from monagent.notify.alertmanager import MemoryKeyValue
from monagent.notify.build import build_dispatchers
from monagent.notify.config import NotifiersConfig
from monagent.notify.registry import NAMED, ONE, OPTIONAL, RECEIVERS

ROOT = Path(__file__).resolve().parent.parent
TABLE = re.compile(r"\[notifiers\.([a-z_]+)")


def kinds_named_in(path: Path) -> set:
    return set(TABLE.findall(path.read_text(encoding="utf-8")))


def test_every_receiver_kind_the_shipped_config_and_the_docs_name_is_in_the_table() -> None:
    kinds = {row.kind for row in RECEIVERS}
    documented = kinds_named_in(ROOT / "agent.toml")
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]:
        documented |= kinds_named_in(doc)
    assert documented - kinds == set(), "receiver kinds documented but missing from registry.RECEIVERS"
    assert kinds_named_in(ROOT / "agent.toml") == kinds, "the shipped agent.toml shows every receiver kind"


def test_the_table_and_the_config_type_agree() -> None:
    fields = {f.name: f for f in dataclasses.fields(NotifiersConfig)}
    assert [row.field for row in RECEIVERS] == list(fields)
    assert len({row.kind for row in RECEIVERS}) == len(RECEIVERS)
    for row in RECEIVERS:
        assert row.shape in (ONE, OPTIONAL, NAMED)
        default = fields[row.field].default
        assert row.shape == ONE or default == (() if row.shape == NAMED else None), row.kind


CONFIG = """
[agent]
hostname = "web01"
state_dir = "{tmp}/state"
runtime_dir = "{tmp}/run"
plugin_dirs = []

[notifiers.console]
severities = ["critical"]

[notifiers.dingtalk.ops]
webhook = "https://oapi.dingtalk.com/robot/send?access_token=abc123"
checks = ["disk*"]

[notifiers.dingtalk.dba]
webhook = "https://oapi.dingtalk.com/robot/send?access_token=def456"

[notifiers.webhook.hook]
url = "http://127.0.0.1:9/hook"
severities = ["warning"]

[notifiers.alertmanager]
urls = ["http://127.0.0.1:9"]
"""


def test_each_row_parses_names_routes_and_builds_its_receivers(tmp_path: Path) -> None:
    config = loads(CONFIG.format(tmp=tmp_path), str(tmp_path / "agent.toml"), environ={})
    notifiers = config.notifiers
    names = ("console", "dingtalk:ops", "dingtalk:dba", "webhook:hook", "alertmanager")
    assert notifiers.receiver_names == names
    routes = {r.name: r.route for r in notifiers.recipients()}
    assert (routes["console"].severities, routes["dingtalk:ops"].checks, routes["webhook:hook"].severities) == (
        ("critical",),
        ("disk*",),
        ("warning",),
    )
    dispatchers = build_dispatchers(notifiers, "web01", MemoryKeyValue(), started_at=0.0)
    try:
        assert tuple(d.receiver_name for d in dispatchers) == names
    finally:
        for dispatcher in dispatchers:
            dispatcher.close(0.0)


def test_a_disabled_console_and_no_alertmanager_name_no_receiver(tmp_path: Path) -> None:
    text = CONFIG.format(tmp=tmp_path).split("[notifiers.console]")[0] + "[notifiers.console]\nenabled = false\n"
    notifiers = loads(text, str(tmp_path / "agent.toml"), environ={}).notifiers
    assert notifiers.receiver_names == ()
    assert build_dispatchers(notifiers, "web01", MemoryKeyValue(), started_at=0.0) == []


def test_a_kind_not_in_the_table_is_a_config_error_naming_it(tmp_path: Path) -> None:
    text = CONFIG.format(tmp=tmp_path) + '\n[notifiers.pagerduty.ops]\nkey = "x"\n'
    with pytest.raises(ConfigError) as info:
        loads(text, str(tmp_path / "agent.toml"), environ={})
    assert any(p.key == "notifiers.pagerduty" for p in info.value.problems), str(info.value)
