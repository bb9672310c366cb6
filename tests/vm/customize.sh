#!/bin/bash
# customize.sh ROOTFS - build-image.sh's CUSTOMIZE hook for monagent's VM stage: the agent from
# its wheel (dependencies from Debian: python3-psutil, -requests, -prometheus-client), its
# hardened unit as shipped (MONAGENT_UNIT, made by run.sh: ExecStart pointed at the venv), its
# system user, the guest config, the stand-in robot and the scenario driver.  MONAGENT_WHEEL
# names the wheel on the host.
set -euo pipefail
ROOTFS=$1
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
in_chroot() { LC_ALL=C DEBIAN_FRONTEND=noninteractive chroot "$ROOTFS" "$@"; }
cp "$MONAGENT_WHEEL" "$ROOTFS/tmp/"
in_chroot python3 -m venv --system-site-packages /opt/monagent/venv
in_chroot /opt/monagent/venv/bin/pip install -q --no-index --no-deps --disable-pip-version-check "/tmp/$(basename "$MONAGENT_WHEEL")"
in_chroot /opt/monagent/venv/bin/monagent --version || true
install -D -m 644 "$REPO/monagent/data/monagent-sysusers.conf" "$ROOTFS/etc/sysusers.d/monagent.conf"
in_chroot systemd-sysusers /etc/sysusers.d/monagent.conf
install -m 644 "$MONAGENT_UNIT" "$ROOTFS/etc/systemd/system/monagent.service"
install -D -m 640 "$HERE/files/etc/monagent/agent.toml" "$ROOTFS/etc/monagent/agent.toml"
in_chroot chgrp monagent /etc/monagent/agent.toml
in_chroot /opt/monagent/venv/bin/monagent validate -c /etc/monagent/agent.toml
# the stand-in robot (started before the agent), the driver (after it)
install -D -m 755 "$HERE/robot/fake_dingtalk.py" "$ROOTFS/usr/local/lib/robot-receiver/fake_dingtalk.py"
install -m 755 "$HERE/guest/robot-receiver-wait" "$ROOTFS/usr/local/lib/robot-receiver/wait-port"
install -m 644 "$HERE/guest/robot-receiver.service" "$ROOTFS/etc/systemd/system/"
printf 'ROBOT_PORT=18080\nROBOT_TOKEN=kdump-vm-e2e\nROBOT_ARGS=""\n' > "$ROOTFS/etc/default/robot-receiver"
mkdir -p "$ROOTFS/etc/systemd/system/monagent.service.d"
printf '[Unit]\nWants=robot-receiver.service\nAfter=robot-receiver.service\n' > "$ROOTFS/etc/systemd/system/monagent.service.d/10-vm-robot.conf"
install -m 755 "$HERE/guest/monagent-vm-driver" "$ROOTFS/usr/local/sbin/monagent-vm-driver"
install -m 644 "$HERE/guest/monagent-vm-driver.service" "$ROOTFS/etc/systemd/system/"
install -m 755 "$HERE/guest/monagent-vm-update" "$ROOTFS/usr/local/sbin/monagent-vm-update"
install -m 644 "$HERE/guest/monagent-vm-update.service" "$ROOTFS/etc/systemd/system/"
# ramoops, only when the command line reserves its memory (the pstore scenario)
cat > "$ROOTFS/etc/systemd/system/ramoops-load.service" <<'UNIT'
[Unit]
Description=Load ramoops when the kernel command line reserves memory for it
ConditionKernelCommandLine=ramoops.mem_address
DefaultDependencies=no
Before=systemd-pstore.service sysinit.target
[Service]
Type=oneshot
ExecStart=/sbin/modprobe ramoops
[Install]
WantedBy=sysinit.target
UNIT
in_chroot systemctl enable robot-receiver.service monagent-vm-driver.service monagent-vm-update.service ramoops-load.service >/dev/null 2>&1
in_chroot systemctl disable kdump-vm-crash-once.service >/dev/null 2>&1 || true
rm -f "$ROOTFS/etc/systemd/system/kdump-vm-crash-once.service" "$ROOTFS/usr/local/sbin/kdump-vm-crash-once"
rm -f "$ROOTFS/tmp/"*.whl
