"""Warnings for config files holding a secret that other users can read."""

from __future__ import annotations

import os
from pathlib import Path

from conftest import NOBODY, run_as

from monagent.permissions import readable_by_others, secret_warnings

DINGTALK = """
[notifiers.dingtalk.ops]
webhook = "https://oapi.dingtalk.com/robot/send?access_token=f0ca11ab1e"
secret = "SEC0123456789"
"""


def write(path: Path, text: str, mode: int) -> Path:
    path.write_text(text, encoding="utf-8")
    os.chmod(path, mode)
    return path


def can_read(path: Path) -> bool:
    try:
        path.read_bytes()
    except PermissionError:
        return False
    return True


def test_a_world_readable_config_with_an_inline_webhook_is_named_with_the_fix(public_tmp):
    config = write(public_tmp / "agent.toml", DINGTALK, 0o644)
    assert secret_warnings(config) == [
        f"{config} holds a secret (notifiers.dingtalk.ops.webhook, notifiers.dingtalk.ops.secret) and other "
        f"users can read it (mode 0644); run: chmod o-r {config}"
    ]
    assert run_as(NOBODY, can_read, config) is True


def test_a_config_readable_by_owner_and_group_only_is_fine(public_tmp):
    config = write(public_tmp / "agent.toml", DINGTALK, 0o640)
    assert secret_warnings(config) == []
    assert run_as(NOBODY, can_read, config) is False


def test_a_world_readable_file_in_a_private_directory_is_not_readable_by_others(public_tmp):
    private = public_tmp / "private"
    private.mkdir(mode=0o700)
    config = write(private / "agent.toml", DINGTALK, 0o644)
    assert not readable_by_others(config)
    assert secret_warnings(config) == []
    assert run_as(NOBODY, can_read, config) is False


def test_secrets_taken_from_the_environment_do_not_make_the_config_secret(public_tmp):
    config = write(
        public_tmp / "agent.toml",
        '[notifiers.dingtalk.ops]\nwebhook = "${DINGTALK_WEBHOOK}"\nsecret = "${DINGTALK_SECRET}"\n',
        0o644,
    )
    assert secret_warnings(config, environ={}) == []


def test_a_world_readable_secret_file_is_named_with_its_key(public_tmp):
    write(public_tmp / "dingtalk.secret", "SEC0123456789\n", 0o644)
    config = write(
        public_tmp / "agent.toml",
        '[notifiers.dingtalk.ops]\nwebhook_credential = "ops"\nsecret_file = "dingtalk.secret"\n',
        0o644,
    )
    assert secret_warnings(config) == [
        f"{public_tmp / 'dingtalk.secret'} holds a secret (notifiers.dingtalk.ops.secret_file) and other users "
        f"can read it (mode 0644); run: chmod o-r {public_tmp / 'dingtalk.secret'}"
    ]


def test_a_secret_file_path_may_use_an_environment_variable(public_tmp):
    write(public_tmp / "am.password", "hunter2\n", 0o604)
    config = write(
        public_tmp / "agent.toml", '[notifiers.alertmanager]\nusername = "am"\npassword_file = "${SECRETS}/am.password"\n', 0o600
    )
    assert secret_warnings(config, environ={"SECRETS": str(public_tmp)}) == [
        f"{public_tmp / 'am.password'} holds a secret (notifiers.alertmanager.password_file) and other users "
        f"can read it (mode 0604); run: chmod o-r {public_tmp / 'am.password'}"
    ]


def test_a_private_secret_file_is_fine(public_tmp):
    write(public_tmp / "dingtalk.secret", "SEC0123456789\n", 0o600)
    config = write(public_tmp / "agent.toml", '[notifiers.dingtalk.ops]\nsecret_file = "dingtalk.secret"\n', 0o644)
    assert secret_warnings(config) == []


def test_a_url_outside_the_notifiers_is_not_a_secret(public_tmp):
    config = write(
        public_tmp / "agent.toml",
        '[checks.site]\ntype = "http"\nurl = "https://example.com/"\n'
        '[notifiers.alertmanager]\nurls = ["http://127.0.0.1:9093"]\n',
        0o644,
    )
    assert secret_warnings(config) == []


def test_an_unreadable_or_broken_config_gives_no_warning(public_tmp):
    assert secret_warnings(public_tmp / "missing.toml") == []
    assert secret_warnings(write(public_tmp / "agent.toml", "[notifiers\n", 0o644)) == []
