"""``[notifiers.dingtalk.NAME]`` and ``[notifiers.webhook.NAME]`` through the real config loader."""

from __future__ import annotations

import pytest
from dingtalk_helpers import parse_hook, parse_robot

from monagent import config as config_module
from monagent.confread import ConfigError, Secret
from monagent.notify.chat_config import DINGTALK_SEND_URL, Mentions
from monagent.notify.delivery import Delivery

URL = "https://oapi.dingtalk.com/robot/send?access_token=f0cafe"


def problems(options, **kw):
    with pytest.raises(ConfigError) as info:
        parse_robot(options, **kw)
    return [str(p) for p in info.value.problems]


def test_the_defaults_of_a_robot():
    robot = parse_robot({"webhook": URL})
    assert robot.webhook == Secret(URL) and robot.secret is None
    assert (robot.language, robot.timezone, robot.keywords, robot.timeout) == ("zh", None, (), 10.0)
    assert robot.delivery == Delivery(max_sends_per_minute=18, group_wait=10.0, lockout=600.0, body_budget=20_000)
    assert robot.receiver_name == "dingtalk:ops"


def test_every_option_of_a_robot():
    robot = parse_robot(
        {
            "access_token": "f0cafe",
            "secret": "SECabc",
            "keywords": ["监控"],
            "timeout": "5s",
            "language": "en",
            "timezone": "Asia/Shanghai",
            "max_sends_per_minute": 10,
            "group_wait": "30s",
            "lockout": "15m",
            "body_budget": 15000,
            "retry_initial": "2s",
            "retry_max": "10m",
            "reprobe_interval": "1h",
            "checks": ["kdump*"],
            "severities": ["critical"],
            "mentions": {"critical": {"at_mobiles": ["13800000000", "+852-12345678"], "at_user_ids": ["u1"], "at_all": True}},
        }
    )
    assert robot.webhook.reveal() == f"{DINGTALK_SEND_URL}?access_token=f0cafe"
    assert robot.secret == Secret("SECabc")
    assert robot.mentions == {"critical": Mentions(("13800000000", "+852-12345678"), ("u1",), True)}
    assert robot.delivery == Delivery(10, 30.0, 900.0, 15000, 2.0, 600.0, 3600.0)
    assert robot.route.checks == ("kdump*",) and robot.route.severities == ("critical",)


def test_the_secret_can_come_from_the_environment_a_file_or_a_credential(tmp_path):
    (tmp_path / "secret").write_text("SECfromfile\n")
    assert parse_robot({"webhook": URL, "secret": "${DT_SECRET}"}, environ={"DT_SECRET": "SECenv"}).secret == Secret("SECenv")
    assert parse_robot({"webhook": URL, "secret_file": str(tmp_path / "secret")}).secret == Secret("SECfromfile")
    robot = parse_robot({"webhook": URL, "secret_credential": "secret"}, environ={"CREDENTIALS_DIRECTORY": str(tmp_path)})
    assert robot.secret == Secret("SECfromfile")


def test_the_rate_must_stay_below_dingtalks_cap():
    assert problems({"webhook": URL, "max_sends_per_minute": 20}) == [
        "agent.toml:3: notifiers.dingtalk.ops.max_sends_per_minute: must be below 20, got 20 (DingTalk allows 20 a "
        "minute and locks the robot for 10 minutes past it)"
    ]


def test_a_whole_url_pasted_as_the_access_token_is_explained():
    assert problems({"access_token": URL}) == [
        "agent.toml:2: notifiers.dingtalk.ops.access_token: looks like the whole webhook URL; put it in webhook = "
        '"..." instead (access_token is only the value after access_token=)'
    ]


def test_a_webhook_without_its_token_is_refused():
    assert problems({"webhook": "https://oapi.dingtalk.com/robot/send"}) == [
        "agent.toml:2: notifiers.dingtalk.ops.webhook: has no access_token=… in it; copy the whole webhook URL "
        "from the robot's settings"
    ]


def test_a_robot_needs_a_webhook_or_a_token():
    assert problems({"secret": "SECabc"}) == [
        "agent.toml:1: notifiers.dingtalk.ops.webhook: is required (the robot's webhook URL), or give access_token"
    ]


def test_bad_language_time_zone_keywords_and_mentions_are_each_reported():
    found = problems(
        {
            "webhook": URL,
            "language": "fr",
            "timezone": "Mars/Olympus",
            "keywords": [""] * 11,
            "mentions": {"urgent": {"at_all": True}, "warning": {"at_mobiles": ["138 0000"]}},
        }
    )
    assert found == [
        "agent.toml:5: notifiers.dingtalk.ops.keywords: DingTalk accepts at most 10 keywords, got 11",
        "agent.toml:5: notifiers.dingtalk.ops.keywords: must not contain empty strings",
        'agent.toml:3: notifiers.dingtalk.ops.language: must be one of zh, en; got "fr"',
        'agent.toml:4: notifiers.dingtalk.ops.timezone: unknown time zone "Mars/Olympus"; use an IANA name such as '
        '"Asia/Shanghai"',
        "agent.toml:6: notifiers.dingtalk.ops.mentions.urgent: unknown severity; use one of critical, warning, info",
        'agent.toml:6: notifiers.dingtalk.ops.mentions.warning.at_mobiles: "138 0000" is not a phone number '
        '(overseas: "+852-12345678")',
    ]


def test_a_misspelt_option_gets_a_suggestion():
    assert problems({"webhook": URL, "keyword": ["x"]}) == [
        'agent.toml:3: notifiers.dingtalk.ops.keyword: unknown key (did you mean "keywords"?)'
    ]


def test_the_secret_never_shows_in_the_config_repr():
    robot = parse_robot({"webhook": URL, "secret": "SECverysecret"})
    assert "SECverysecret" not in repr(robot) and "f0cafe" not in repr(robot)


def test_a_webhook_receiver_has_its_own_defaults():
    hook = parse_hook({"url": "https://hooks.example.com/monagent"})
    assert (hook.language, hook.delivery.max_sends_per_minute, hook.delivery.body_budget) == ("en", 60, 1_000_000)
    assert hook.receiver_name == "webhook:hook"


def test_robots_load_through_the_whole_configuration(write_config):
    path = write_config(f"""
[notifiers.dingtalk.ops]
webhook = "{URL}"
secret = "SECabc"

[notifiers.dingtalk.kernel]
access_token = "abc"
checks = ["kdump"]
""")
    config = config_module.load(path)
    assert [r.name for r in config.notifiers.dingtalk] == ["ops", "kernel"]
    assert config.notifiers.receiver_names[-2:] == ("dingtalk:ops", "dingtalk:kernel")
