"""tests/host-packages.sh (what tests/run.sh runs as root) leaves the host as it found it.

The script runs for real, with stand-ins on PATH for the commands that would change this machine:
an ``apt-get`` whose "postinst" starts its daemon unless policy-rc.d refuses (exit 101) and enables
it at boot (a systemd wants link and a SysV rc link), a ``dpkg -s`` that knows what is installed,
and a ``deb-systemd-helper`` that records its calls. /etc is a scratch tree (``HOST_ETC``).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Dict, List

import pytest
from conftest import ROOT

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the script installs only as root")

APT_GET = """#!/bin/sh
[ "$1" = update ] && exit 0
shift 4  # install -y -q --no-install-recommends
for pkg in "$@"; do
    touch "$FAKE/installed/$pkg"
    if "$POLICY_RC_D" "$pkg" start; then echo "$pkg" >> "$FAKE/started"; fi
    mkdir -p "$HOST_ETC/systemd/system/multi-user.target.wants" "$HOST_ETC/rc2.d"
    ln -sf "/lib/systemd/system/$pkg.service" "$HOST_ETC/systemd/system/multi-user.target.wants/$pkg.service"
    ln -sf "../init.d/$pkg" "$HOST_ETC/rc2.d/S01$pkg"
done
[ -z "$FAKE_FAIL" ] || exit 100
"""
DPKG = """#!/bin/sh
[ -e "$FAKE/installed/$2" ]
"""
HELPER = """#!/bin/sh
echo "$*" >> "$FAKE/helper"
"""


@pytest.fixture
def host(tmp_path: Path) -> Dict[str, Path]:
    fake, bin_dir, etc = tmp_path / "fake", tmp_path / "bin", tmp_path / "etc"
    (fake / "installed").mkdir(parents=True)
    bin_dir.mkdir()
    for name, text in (("apt-get", APT_GET), ("dpkg", DPKG), ("deb-systemd-helper", HELPER)):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    wants = etc / "systemd" / "system" / "multi-user.target.wants"
    wants.mkdir(parents=True)
    (wants / "ssh.service").symlink_to("/lib/systemd/system/ssh.service")  # enabled by the admin, before
    (fake / "installed" / "monit").touch()  # already installed
    return {"fake": fake, "bin": bin_dir, "etc": etc, "policy": tmp_path / "policy-rc.d"}


def run_script(host: Dict[str, Path], *packages: str, fail: bool = False) -> subprocess.CompletedProcess:
    env = dict(
        os.environ,
        PATH=f"{host['bin']}:{os.environ['PATH']}",
        FAKE=str(host["fake"]),
        FAKE_FAIL="1" if fail else "",
        HOST_ETC=str(host["etc"]),
        POLICY_RC_D=str(host["policy"]),
    )
    return subprocess.run(
        ["bash", str(ROOT / "tests" / "host-packages.sh"), *packages], env=env, capture_output=True, text=True, timeout=60
    )


def links(etc: Path) -> List[str]:
    return sorted(str(p.relative_to(etc)) for p in etc.rglob("*") if p.is_symlink())


def test_new_packages_are_installed_without_starting_or_enabling_anything(host: Dict[str, Path]) -> None:
    done = run_script(host, "monit", "prometheus", "prometheus-alertmanager")
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in (host["fake"] / "installed").iterdir()) == ["monit", "prometheus", "prometheus-alertmanager"]
    assert not (host["fake"] / "started").exists()  # policy-rc.d refused every start during the install
    assert not host["policy"].exists()  # and was removed afterwards
    assert links(host["etc"]) == ["systemd/system/multi-user.target.wants/ssh.service"]
    assert (host["fake"] / "helper").read_text().splitlines() == [
        "disable prometheus-alertmanager.service",
        "disable prometheus.service",
    ]
    assert "disabled at boot again: prometheus.service" in done.stdout


def test_a_failed_install_still_removes_the_policy_and_the_new_boot_links(host: Dict[str, Path]) -> None:
    done = run_script(host, "prometheus", fail=True)
    assert done.returncode == 100
    assert not host["policy"].exists()
    assert links(host["etc"]) == ["systemd/system/multi-user.target.wants/ssh.service"]


def test_a_policy_the_admin_had_is_kept_and_nothing_is_done_when_all_is_installed(host: Dict[str, Path]) -> None:
    host["policy"].write_text("#!/bin/sh\n# the admin's own\nexit 0\n")
    host["policy"].chmod(0o755)
    assert run_script(host, "monit").returncode == 0
    assert not (host["fake"] / "helper").exists()
    done = run_script(host, "prometheus")
    assert done.returncode == 0, done.stderr
    assert host["policy"].read_text() == "#!/bin/sh\n# the admin's own\nexit 0\n"
    assert (host["fake"] / "started").read_text() == "prometheus\n"  # the admin's policy allows starts: as before
    assert links(host["etc"]) == ["systemd/system/multi-user.target.wants/ssh.service"]
