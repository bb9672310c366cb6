"""Reading the installed unit for the secrets it hands the service (monagent.credentials)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from monagent import credentials
from monagent.credentials import ServiceCredentials, find_unit


@pytest.fixture
def unit_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "system"
    directory.mkdir()
    return directory


def write_unit(directory: Path, text: str, *dropins: str) -> Path:
    unit = directory / "monagent.service"
    unit.write_text("[Unit]\nDescription=x\n\n[Service]\nExecStart=/bin/true\n" + text)
    for number, dropin in enumerate(dropins, start=10):
        (directory / "monagent.service.d").mkdir(exist_ok=True)
        (directory / "monagent.service.d" / f"{number}-local.conf").write_text("[Service]\n" + dropin)
    return unit


def test_a_drop_in_overrides_the_unit_and_an_empty_assignment_resets_the_list(tmp_path: Path, unit_dir: Path) -> None:
    (tmp_path / "old").write_text("old-value\n")
    (tmp_path / "new").write_text("new-value\n")
    unit = write_unit(
        unit_dir,
        f"LoadCredential=hook:{tmp_path / 'old'}\nEnvironment=A=1 'B=two words'\n",
        f"LoadCredential=\nLoadCredential=hook:{tmp_path / 'new'}\n",
    )
    found = ServiceCredentials(find_unit(str(unit)))
    assert found.credential("hook") == (
        "new-value\n",
        f"LoadCredential=hook:{tmp_path / 'new'} in {unit_dir / 'monagent.service.d' / '10-local.conf'}",
    )
    assert found.variable("B") == ("two words", f"Environment= in {unit}")
    assert found.credential("other") is None


def test_a_credential_without_a_path_comes_from_the_credential_stores(
    tmp_path: Path, unit_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = tmp_path / "credstore"
    store.mkdir()
    (store / "dingtalk-secret").write_text("SECfromstore")
    (store / "renamed").write_text("SECrenamed")
    monkeypatch.setattr(credentials, "CREDSTORES", (tmp_path / "missing", store))
    unit = write_unit(unit_dir, "LoadCredential=dingtalk-secret\nLoadCredential=other:renamed\n")
    found = ServiceCredentials(find_unit(str(unit)))
    assert found.credential("dingtalk-secret") == (
        "SECfromstore",
        f"{store / 'dingtalk-secret'} (LoadCredential=dingtalk-secret in {unit})",
    )
    assert found.credential("other") == ("SECrenamed", f"{store / 'renamed'} (LoadCredential=other:renamed in {unit})")


def test_an_encrypted_credential_is_decrypted_with_systemd_creds(
    tmp_path: Path, unit_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "systemd-creds"
    fake.write_text('#!/bin/sh\n[ "$1 $2" = "decrypt --name=hook" ] && printf "plain-%s" "$(cat "$3")"\n')
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    (tmp_path / "hook.cred").write_text("cipher")
    unit = write_unit(unit_dir, f"LoadCredentialEncrypted=hook:{tmp_path / 'hook.cred'}\n")
    value, where = ServiceCredentials(find_unit(str(unit))).credential("hook") or ("", "")
    assert value == "plain-cipher"
    assert where == f"LoadCredentialEncrypted=hook:{tmp_path / 'hook.cred'} in {unit}"


def test_an_environment_file_wins_over_environment_and_an_unreadable_one_is_named(tmp_path: Path, unit_dir: Path) -> None:
    env_file = tmp_path / "monagent.env"
    env_file.write_text('# comment\nexport DINGTALK_SECRET="SECfile"\n')
    unit = write_unit(unit_dir, f"Environment=DINGTALK_SECRET=SECinline\nEnvironmentFile=-{env_file}\n")
    found = ServiceCredentials(find_unit(str(unit)))
    assert found.variable("DINGTALK_SECRET") == ("SECfile", f"EnvironmentFile={env_file} in {unit}")
    env_file.unlink()
    assert found.variable("DINGTALK_SECRET") == ("SECinline", f"Environment= in {unit}")
    assert found.variable_source("NOT_SET") == f"EnvironmentFile={env_file} in {unit}"  # it may be in there


def test_no_installed_unit_finds_nothing(tmp_path: Path) -> None:
    found = ServiceCredentials(find_unit(str(tmp_path / "none.service")))
    assert (found.credential("x"), found.variable("X"), found.variable_source("X")) == (None, None, None)
