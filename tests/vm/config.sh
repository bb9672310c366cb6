# config.sh - shared settings for the kdump VM scripts (sourced, not run).
# Every value can be overridden from the environment, e.g.
#   WORK=/tmp/other MEM_MB=3072 CRASHKERNEL=512M ./all.sh

# Where everything that is built lives (rootfs, image, kernel, logs).
WORK=${WORK:-/tmp/monagent-vm}
SUITE=${SUITE:-bookworm}
ARCH=${ARCH:-amd64}

# Packages for the guest (debootstrap --include).  Dependencies are resolved
# by debootstrap; Recommends are not, hence the explicit list.
BASE_PACKAGES=${BASE_PACKAGES:-"linux-image-amd64 kdump-tools kexec-tools makedumpfile systemd-sysv udev initramfs-tools zstd procps kmod dbus busybox"}

# Extension points for the agent under test (see README.md):
#   EXTRA_PACKAGES  space separated Debian package names, apt-get installed in the rootfs
#   EXTRA_DEBS      space separated paths of local .deb files, installed in the rootfs
#   EXTRA_TREES     space separated SRC:DEST pairs; host dir/file SRC is copied to DEST in the guest
#   CUSTOMIZE       space separated host scripts run as "script ROOTFS" before the image is made
EXTRA_PACKAGES=${EXTRA_PACKAGES:-}
EXTRA_DEBS=${EXTRA_DEBS:-}
EXTRA_TREES=${EXTRA_TREES:-}
CUSTOMIZE=${CUSTOMIZE:-}

# An agent under test installed from wheels, offline (see README.md, e2e-agent.sh):
#   AGENT_WHEELS        host directory of .whl files (the agent and all its dependencies, for
#                       CPython 3.11 manylinux x86_64); copied in and pip-installed with
#                       --no-index into the venv AGENT_VENV in the chroot, at image-build time
#   AGENT_REQUIREMENTS  what to pip install from there (default: every wheel in AGENT_WHEELS)
#   AGENT_VENV          the venv's path in the guest
#   AGENT_FILES         host directory laid out like the guest's /, copied over it
#                       (config, systemd units: AGENT_FILES/etc/systemd/system/x.service)
#   AGENT_UNITS         systemd units to enable in the guest; they are ordered after (and pull in)
#                       robot-receiver.service, and the crash driver is ordered after them
#   AGENT_PACKAGES      Debian packages the above needs (apt-get installed like EXTRA_PACKAGES)
#   AGENT_WAIT, AGENT_SETTLE  guest-side waits of kdump-vm-agent-collect (seconds): boot 2 waits
#                       up to AGENT_WAIT for the first robot message, both boots then AGENT_SETTLE
AGENT_WHEELS=${AGENT_WHEELS:-}
AGENT_REQUIREMENTS=${AGENT_REQUIREMENTS:-}
AGENT_VENV=${AGENT_VENV:-/opt/agent/venv}
AGENT_FILES=${AGENT_FILES:-}
AGENT_UNITS=${AGENT_UNITS:-}
AGENT_PACKAGES=${AGENT_PACKAGES:-"python3 python3-venv"}
AGENT_WAIT=${AGENT_WAIT:-180}
AGENT_SETTLE=${AGENT_SETTLE:-15}
# Stand-in DingTalk robot in the guest (robot/fake_dingtalk.py as robot-receiver.service on
# 127.0.0.1:ROBOT_PORT, log /var/log/robot.jsonl).  auto = on when AGENT_UNITS or AGENT_WHEELS is set.
# The agent's webhook URL: http://127.0.0.1:$ROBOT_PORT/robot/send?access_token=$ROBOT_TOKEN
# ROBOT_ARGS: more fake_dingtalk.py options, e.g. "--secret SEC... --keyword monagent".
ROBOT_RECEIVER=${ROBOT_RECEIVER:-auto}
ROBOT_PORT=${ROBOT_PORT:-18080}
ROBOT_TOKEN=${ROBOT_TOKEN:-kdump-vm-e2e}
ROBOT_ARGS=${ROBOT_ARGS:-}

# Where the kdump initrd (/var/lib/kdump/initrd.img-<ver>) is generated:
#   firstboot - inside the guest on its first boot, by kdump-tools' own
#               "kdump-config load" (it runs the kernel hook when the initrd is missing;
#               MODULES=dep then sees the real virtio disk).  Costs ~2 min under TCG.
#   chroot    - in the build chroot, by kdump-tools' kernel hook with the guest version
#               (MODULES=dep then looks at the build host's root device)
KDUMP_INITRD_AT=${KDUMP_INITRD_AT:-firstboot}

# Root filesystem image.
IMAGE_SIZE=${IMAGE_SIZE:-4G}

# VM settings.
MEM_MB=${MEM_MB:-2048}
SMP=${SMP:-2}
CRASHKERNEL=${CRASHKERNEL:-384M}
APPEND=${APPEND:-"root=/dev/vda rw console=ttyS0 crashkernel=${CRASHKERNEL}"}
# auto | kvm | tcg
ACCEL=${ACCEL:-auto}
# Hard limit (seconds) for the whole crash-and-reboot run.
RUN_TIMEOUT=${RUN_TIMEOUT:-3600}
# Seconds the guest waits for /sys/kernel/kexec_crash_loaded to become 1.
KEXEC_WAIT=${KEXEC_WAIT:-900}
# 1: the guest powers itself off once it has booted again after the dump.
AUTO_POWEROFF=${AUTO_POWEROFF:-1}

ROOTFS=$WORK/rootfs
IMAGE=$WORK/disk.img
LOGDIR=$WORK/logs
