"""``monagent notify-test``: a real test message to the fake robot, the outcome and its meaning."""

from __future__ import annotations

import pytest
from fake_dingtalk import FakeDingTalk

from monagent.cli import main

SECRET = "SECnotifytest0123456789"


@pytest.fixture
def fake():
    with FakeDingTalk() as server:
        server.add_robot("good", secret=SECRET)
        yield server


def config(write_config, fake, token="good", secret=SECRET, extra="", *, language="en"):
    return write_config(f"""
[agent]
hostname = "web01"
language = "{language}"

[notifiers.dingtalk.ops]
webhook = "{fake.webhook(token)}"
secret = "{secret}"
language = "en"
{extra}
""")


def test_a_working_robot_gets_the_test_message_and_the_command_says_ok(write_config, fake, capsys):
    code = main(["notify-test", "-c", str(config(write_config, fake))])
    out = capsys.readouterr().out
    port = fake.webhook("x").split("/")[2]
    assert code == 0
    assert out == (
        f"dingtalk:ops: sending a test message to http://{port}/robot/send?access_token=good…(redacted) "
        "(signed)\n  OK: errcode 0 (ok)\n  meaning: the robot accepted the message\n"
    )
    assert [m.title for m in fake.accepted] == ["[TEST] web01 monagent test message"]


def test_a_bad_secret_is_explained_and_never_printed(write_config, fake, capsys):
    code = main(["notify-test", "-c", str(config(write_config, fake, secret="SECwrongwrongwrong"))])
    out = capsys.readouterr().out
    assert code == 1
    assert "  FAILED: errcode 310000 (sign not match)\n" in out
    assert "  meaning: the signature does not match; fix: copy the SEC… secret again from 安全设置 → 加签" in out
    assert "SECwrongwrongwrong" not in out


def test_the_explanation_and_the_fix_are_in_the_configured_language(write_config, fake, capsys):
    code = main(["notify-test", "-c", str(config(write_config, fake, secret="SECwrongwrongwrong", language="zh"))])
    out = capsys.readouterr().out
    assert code == 1
    assert "（已加签）\n  失败：errcode 310000（sign not match）\n" in out
    assert "  说明：签名不匹配；处理办法：从 安全设置 → 加签 重新复制 SEC 开头的密钥" in out
    assert "SECwrongwrongwrong" not in out and "fix:" not in out


def test_an_unknown_token_is_explained(write_config, fake, capsys):
    assert main(["notify-test", "-c", str(config(write_config, fake, token="gonegonegone"))]) == 1
    out = capsys.readouterr().out
    assert "  FAILED: errcode 300001 (token is not exist)\n  meaning: the access token does not exist" in out
    assert "access_token=gonegonegone" not in out


def test_an_unknown_robot_name_lists_the_configured_ones(write_config, fake, capsys):
    assert main(["notify-test", "--robot", "nope", "-c", str(config(write_config, fake))]) == 64
    assert capsys.readouterr().err == 'monagent notify-test: no robot or webhook named "nope"; configured: ops\n'


def test_an_invalid_configuration_exits_78(write_config, fake, capsys):
    path = config(write_config, fake, extra="max_sends_per_minute = 25")
    assert main(["notify-test", "-c", str(path)]) == 78
    assert "max_sends_per_minute: must be below 20, got 25" in capsys.readouterr().err


def closed_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_an_unreachable_robot_is_explained_in_a_few_words_without_the_token(write_config, capsys):
    port = closed_port()
    path = write_config(f"""
[notifiers.dingtalk.ops]
webhook = "http://127.0.0.1:{port}/robot/send?access_token=unreachabletoken"
secret = "{SECRET}"
""")
    assert main(["notify-test", "-c", str(path)]) == 1
    assert capsys.readouterr().out.splitlines()[1:] == [
        "  FAILED: no errcode from DingTalk (the agent would keep the message and retry)",
        f"  meaning: network error: ConnectionError: connection refused by 127.0.0.1:{port} "
        "(nothing listens there, or a proxy is needed)",
    ]


def test_an_unreachable_webhook_says_what_the_agent_would_do(write_config, capsys):
    port = closed_port()
    path = write_config(f'[notifiers.webhook.hooks]\nurl = "http://127.0.0.1:{port}/hook?key=webhookkey"\n')
    assert main(["notify-test", "-c", str(path)]) == 1
    assert capsys.readouterr().out == (
        f"webhook:hooks: sending a test message to http://127.0.0.1:{port}/hook?…(redacted)\n"
        "  FAILED: retry (the agent would keep the message and retry)\n"
        f"  meaning: network error: ConnectionError: connection refused by 127.0.0.1:{port} "
        "(nothing listens there, or a proxy is needed)\n"
    )


def test_a_password_inside_a_webhook_url_is_never_printed(write_config, capsys):
    port = closed_port()
    path = write_config(f'[notifiers.webhook.hooks]\nurl = "http://alice:hunter2pass@127.0.0.1:{port}/hook"\n')
    assert main(["notify-test", "-c", str(path)]) == 1
    captured = capsys.readouterr()
    assert "hunter2pass" not in captured.out + captured.err and "alice" not in captured.out + captured.err
    assert captured.out.splitlines()[0] == f"webhook:hooks: sending a test message to http://…(redacted)@127.0.0.1:{port}/hook"


def test_a_malformed_webhook_url_fails_validate_with_its_line(write_config, capsys):
    path = write_config('[notifiers.webhook.hooks]\nurl = "http://[::1/hook"\n')
    assert main(["validate", "-c", str(path)]) == 78
    assert capsys.readouterr().err.splitlines()[0] == (
        f"{path}:2: notifiers.webhook.hooks.url: must be an http:// or https:// URL (this one cannot be parsed: Invalid IPv6 URL)"
    )
