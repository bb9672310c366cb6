"""Configuration errors are user-facing text: asserted verbatim."""

from __future__ import annotations

from pathlib import Path

import pytest

from monagent.api import Direction, Threshold
from monagent.config import load, loads
from monagent.confread import ConfigError, Secret, locate_keys, parse_duration

ENV = {"HOME": "/tmp/monagent-test-home"}


def problems(text: str, environ=None, file: str = "agent.toml") -> list:
    with pytest.raises(ConfigError) as info:
        loads(text, file, environ if environ is not None else ENV)
    return [str(p) for p in info.value.problems]


def test_a_threshold_given_as_text_names_file_line_and_dotted_key():
    text = """[agent]
hostname = "web01"

[checks.root_disk]
type = "disk"
mounts = ["/"]

[checks.root_disk.thresholds]
used_percent = { warning = 85, critical = "95%" }
"""
    assert problems(text) == [
        'agent.toml:9: checks.root_disk.thresholds.used_percent.critical: must be a number from 0 to 100, got "95%"'
    ]


def test_every_problem_is_reported_at_once():
    text = """[agent]
interval = "5x"
splay = 3

[alerting]
fire_after_cyles = 2

[checks.cpu]
type = "cpu"
intreval = "30s"
"""
    assert problems(text) == [
        'agent.toml:2: agent.interval: must be a duration such as "30s", "5m" or "4h" (units ms, s, m, h, d), got "5x"',
        'agent.toml:3: agent.splay: must be a duration such as "30s", "5m" or "4h", got 3 '
        '(a number has no unit: write "3s" for seconds)',
        'agent.toml:6: alerting.fire_after_cyles: unknown key (did you mean "fire_after_cycles"?)',
        'agent.toml:10: checks.cpu.intreval: unknown option for check type "cpu" (did you mean "interval"?); '
        "this check type takes no options of its own",
    ]


def test_unknown_top_level_section_suggests_the_close_one():
    assert problems("[notifier.console]\nenabled = true\n") == ['agent.toml:1: notifier: unknown key (did you mean "notifiers"?)']


def test_unknown_check_type_lists_what_is_available():
    (message,) = problems('[checks.x]\ntype = "dsk"\n')
    assert message.startswith('agent.toml:2: checks.x.type: unknown check type "dsk" (did you mean "disk"?); available: ')
    assert "cpu" in message and "process" in message


def test_a_check_without_type_is_reported():
    assert problems('[checks.x]\ninterval = "1m"\n') == ["agent.toml:1: checks.x.type: is required"]


def test_a_duration_given_as_a_float_suggests_the_seconds_spelling():
    assert problems('[checks.cpu]\ntype = "cpu"\ninterval = 2.5\n') == [
        'agent.toml:3: checks.cpu.interval: must be a duration such as "30s", "5m" or "4h", got 2.5 '
        '(a number has no unit: write "2.5s" for seconds)'
    ]


def test_invalid_toml_names_the_line_first_like_every_other_problem():
    assert problems('[agent]\nhostname = "web01\n') == [
        "agent.toml:2: invalid TOML: Illegal character '\\n' at column 18 (a string's closing quote is missing)"
    ]
    assert problems("[agent]\n[agent]\n") == ["agent.toml:2: invalid TOML: Cannot declare ('agent',) twice at column 7"]


def test_invalid_toml_at_the_end_of_the_file_keeps_the_parsers_words():
    assert problems("[agent]\nhostname = ") == ["agent.toml:2: invalid TOML: Invalid value (at end of document)"]


def test_unreadable_file_is_a_problem_not_a_traceback(tmp_path):
    with pytest.raises(ConfigError) as info:
        load(tmp_path / "missing.toml")
    assert str(info.value) == f"{tmp_path / 'missing.toml'}: cannot read the configuration: No such file or directory"


def test_thresholds_default_from_the_check_type_and_merge_with_config():
    config = loads(
        """
[checks.root_disk]
type = "disk"
[checks.root_disk.thresholds]
used_percent = { warning = 80, critical = 90, warning_clear = 75 }
""",
        environ=ENV,
    )
    check = config.check("root_disk")
    assert check is not None
    assert check.thresholds["used_percent"] == Threshold(80, 90, 75, None, Direction.ABOVE)
    assert "inodes_percent" in check.thresholds  # the type's default stays


def test_threshold_order_is_validated_for_the_direction():
    text = """
[checks.nginx]
type = "process"
name = "nginx"
[checks.nginx.thresholds]
count = { warning = 1, critical = 2, direction = "below" }
"""
    assert problems(text) == [
        'agent.toml:6: checks.nginx.thresholds.count.critical: must not be less severe than warning (1) for direction = "below"'
    ]


def test_unknown_metric_in_thresholds_is_an_error_with_suggestion():
    text = '[checks.d]\ntype = "disk"\n[checks.d.thresholds]\nused_percnt = { critical = 90 }\n'
    (message,) = problems(text)
    assert message.startswith('agent.toml:4: checks.d.thresholds.used_percnt: unknown metric (did you mean "used_percent"?)')


def test_durations_accept_units_and_compounds():
    assert parse_duration("30s") == 30
    assert parse_duration("5m") == 300
    assert parse_duration("1h30m") == 5400
    assert parse_duration("250ms") == 0.25
    assert parse_duration("0") == 0
    for bad in ("5", "m", "1x", "-1s", "1h 2"):
        with pytest.raises(ValueError):
            parse_duration(bad)


def test_environment_references_are_expanded_and_missing_ones_reported():
    text = '[notifiers.webhook.ops]\nurl = "${HOOK_URL}"\n'
    config = loads(text, environ={**ENV, "HOOK_URL": "https://hooks.example/x"})
    assert config.notifiers.webhooks[0].url.reveal() == "https://hooks.example/x"
    assert problems(text) == ["agent.toml:2: notifiers.webhook.ops.url: environment variable HOOK_URL is not set"]


def test_secret_from_systemd_credentials_directory(tmp_path):
    (tmp_path / "hook").write_text("https://hooks.example/cred\n")
    text = '[notifiers.webhook.ops]\nurl_credential = "hook"\n'
    config = loads(text, environ={**ENV, "CREDENTIALS_DIRECTORY": str(tmp_path)})
    assert config.notifiers.webhooks[0].url.reveal() == "https://hooks.example/cred"


def test_secret_file_relative_to_the_config_and_never_in_repr(tmp_path):
    (tmp_path / "url.txt").write_text("https://hooks.example/file")
    path = tmp_path / "agent.toml"
    path.write_text('[notifiers.webhook.ops]\nurl_file = "url.txt"\n')
    config = load(path, environ=ENV)
    secret = config.notifiers.webhooks[0].url
    assert secret.reveal() == "https://hooks.example/file"
    assert "hooks.example" not in repr(config)
    assert repr(Secret("abc")) == "Secret('(redacted)')"


def test_missing_secret_file_is_reported_with_its_key(tmp_path):
    path = tmp_path / "agent.toml"
    path.write_text('[notifiers.webhook.ops]\nurl_file = "/nonexistent/url"\n')
    with pytest.raises(ConfigError) as info:
        load(path, environ=ENV)
    assert [str(p) for p in info.value.problems] == [
        f"{path}:2: notifiers.webhook.ops.url_file: cannot read /nonexistent/url: No such file or directory"
    ]


def test_key_locator_handles_headers_dotted_keys_inline_tables_and_arrays():
    lines = locate_keys("""# c
[agent]
hostname = "x"
[checks.a.thresholds]
used = { warning = 1,
  critical = 2 }
a.b = 3
[[alerting.maintenance]]
name = "w1"
[[alerting.maintenance]]
name = "w2"
""")
    assert lines[("agent", "hostname")] == 3
    assert lines[("checks", "a", "thresholds", "used", "warning")] == 5
    assert lines[("checks", "a", "thresholds", "a", "b")] == 7
    assert lines[("alerting", "maintenance", "1", "name")] == 11


def test_the_shipped_agent_toml_is_valid():
    root = Path(__file__).resolve().parent.parent
    config = load(root / "agent.toml", environ=ENV)
    assert config.checks
    assert "console" in config.notifiers.receiver_names


def test_a_check_may_ask_for_a_splay_of_its_own():
    config = loads('[checks.cpu]\ntype = "cpu"\n\n[checks.mem]\ntype = "memory"\nsplay = "20s"\n', "agent.toml", ENV)
    assert config.check("cpu").splay is None  # the agent's shared grid
    assert config.check("mem").splay == 20.0
    assert problems('[checks.mem]\ntype = "memory"\nsplay = 5\n') == [
        'agent.toml:3: checks.mem.splay: must be a duration such as "30s", "5m" or "4h", got 5 '
        '(a number has no unit: write "5s" for seconds)'
    ]
