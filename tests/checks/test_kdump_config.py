"""Dump roots named by the host's kdump configuration (Debian, RHEL/Fedora, SUSE)."""

from __future__ import annotations

from pathlib import Path

from kdump_helpers import put
from monagent.checks.kdump_config import configured_roots


def no_mounts(_spec: str):
    return None


def test_no_configuration_files_add_no_roots(tmp_path: Path):
    assert configured_roots(str(tmp_path), no_mounts) == []


def test_the_last_debian_assignment_wins_and_comments_are_ignored(tmp_path: Path):
    put(
        tmp_path / "default/kdump-tools",
        "# KDUMP_COREDIR=/nope\nKDUMP_COREDIR=/srv/a\nKDUMP_COREDIR='/srv/crash dumps'  # moved\n",
    )
    assert configured_roots(str(tmp_path), no_mounts) == ["/srv/crash dumps"]


def test_kdump_conf_path_is_relative_to_a_mounted_filesystem_target(tmp_path: Path):
    put(tmp_path / "kdump.conf", "xfs UUID=0f3c-11\npath /crash\ncore_collector makedumpfile -l -d 31\n")
    mounts = {"UUID=0f3c-11": "/mnt/dumps"}
    assert configured_roots(str(tmp_path), mounts.get) == ["/mnt/dumps/crash"]


def test_an_unmounted_filesystem_target_adds_nothing(tmp_path: Path):
    put(tmp_path / "kdump.conf", "ext4 /dev/sdb1\npath /var/crash\n")
    assert configured_roots(str(tmp_path), no_mounts) == []


def test_a_remote_target_keeps_the_local_path_for_dump_to_rootfs(tmp_path: Path):
    put(tmp_path / "kdump.conf", "nfs server:/export/tmp\npath /var/crash/remote\nfailure_action dump_to_rootfs\n")
    assert configured_roots(str(tmp_path), no_mounts) == ["/var/crash/remote"]


def test_suse_savedir_counts_only_when_local(tmp_path: Path):
    put(tmp_path / "sysconfig/kdump", 'KDUMP_SAVEDIR="file:///var/log/dump"\n')
    assert configured_roots(str(tmp_path), no_mounts) == ["/var/log/dump"]
    put(tmp_path / "sysconfig/kdump", 'KDUMP_SAVEDIR="ssh://dumps@server/var/crash"\n')
    assert configured_roots(str(tmp_path), no_mounts) == []
