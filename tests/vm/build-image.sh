#!/bin/bash
# build-image.sh - (from ../shared/vm, the kdump VM rig; the crash-once driver left out: monagent's
# scenario driver comes in through customize.sh) build a minimal Debian (bookworm) VM with kdump-tools as an
# ext4 image, without mounting it (debootstrap + chroot + mke2fs -d).
#
# Output (all under $WORK, default /tmp/kdump-vm):
#   rootfs/            the configured root filesystem tree
#   disk.img           raw ext4 image of rootfs (the VM's /dev/vda)
#   vmlinuz, initrd.img   the guest kernel and its normal initrd (for qemu -kernel/-initrd)
#   guest-packages.txt    dpkg -l of the interesting guest packages
#   guest-kernel-version  e.g. 6.1.0-50-amd64
#   cache/base-*.tar      debootstrap result, reused by later builds (FRESH=1 ignores it)
#
# Extension points (environment, see config.sh): EXTRA_PACKAGES, EXTRA_DEBS,
# EXTRA_TREES (SRC:DEST ...), CUSTOMIZE (host scripts called with the rootfs path);
# for an agent under test: AGENT_WHEELS (offline pip install into the venv AGENT_VENV),
# AGENT_FILES (tree copied over /), AGENT_UNITS (enabled), ROBOT_RECEIVER (stand-in webhook).
#   agent-venv-freeze.txt   pip freeze of AGENT_VENV (when AGENT_WHEELS is set)
# Needs root, debootstrap, e2fsprogs (mke2fs -d), and an apt mirror reachable
# from this machine (read from the machine's apt sources unless MIRROR is set).
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$HERE/config.sh"

log() { printf '[build-image %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
[ "$(id -u)" = 0 ] || die "must run as root"
for t in debootstrap mke2fs chroot tar; do command -v "$t" >/dev/null || die "missing tool: $t (apt-get install debootstrap e2fsprogs)"; done

# --- mirror: taken from this machine's apt configuration at run time -------
detect_mirror() {
	{
		# deb822 .sources files
		for f in /etc/apt/sources.list.d/*.sources; do
			[ -r "$f" ] || continue
			awk 'tolower($1)=="uris:" {for (i=2;i<=NF;i++) print $i}' "$f"
		done
		# one-line format
		for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
			[ -r "$f" ] || continue
			awk '$1=="deb" {for (i=2;i<=NF;i++) if ($i ~ /^[a-z+]+:\/\//) {print $i; break}}' "$f"
		done
	} | grep -v -i security | grep -E '/debian/?$' | head -n1
}
MIRROR=${MIRROR:-$(detect_mirror)}
[ -n "$MIRROR" ] || die "no Debian mirror found in the apt sources; set MIRROR"

mkdir -p "$WORK" "$LOGDIR" "$WORK/cache"
MOUNTS=()
cleanup() {
	local i
	for ((i=${#MOUNTS[@]}-1; i>=0; i--)); do umount -l "${MOUNTS[$i]}" 2>/dev/null || true; done
	MOUNTS=()
}
trap cleanup EXIT
mount_chroot() {
	local r=$1
	mount -t proc proc "$r/proc" && MOUNTS+=("$r/proc")
	mount -t sysfs sysfs "$r/sys" && MOUNTS+=("$r/sys")
	mount --bind /dev "$r/dev" && MOUNTS+=("$r/dev")
	mount -t devpts devpts "$r/dev/pts" -o newinstance,ptmxmode=0666 && MOUNTS+=("$r/dev/pts") || true
	mkdir -p "$r/run" && mount -t tmpfs tmpfs "$r/run" && MOUNTS+=("$r/run")
}
in_chroot() { LC_ALL=C DEBIAN_FRONTEND=noninteractive chroot "$ROOTFS" "$@"; }

# --- 1. debootstrap (cached) --------------------------------------------------
key=$(printf '%s %s %s' "$SUITE" "$ARCH" "$BASE_PACKAGES" | md5sum | cut -c1-10)
BASE_TAR=$WORK/cache/base-$SUITE-$ARCH-$key.tar
if [ "${FRESH:-0}" = 1 ] || [ ! -s "$BASE_TAR" ]; then
	log "debootstrap $SUITE ($ARCH) with: $BASE_PACKAGES"
	rm -rf "$WORK/base"
	t0=$(date +%s)
	# a flaky mirror gets three tries, each from scratch; what was downloaded stays in the cache
	mkdir -p "$WORK/cache/debs"
	for try in 1 2 3; do
		rm -rf "$WORK/base"
		timeout 2400 debootstrap --arch="$ARCH" --variant=minbase --cache-dir="$WORK/cache/debs" \
			--include="$(echo $BASE_PACKAGES | tr ' ' ',')" \
			"$SUITE" "$WORK/base" "$MIRROR" >"$LOGDIR/debootstrap.log" 2>&1 && break
		tail -n 30 "$LOGDIR/debootstrap.log" >&2
		[ "$try" -lt 3 ] || die "debootstrap failed $try times (log: $LOGDIR/debootstrap.log)"
		log "debootstrap failed (try $try); again in $((try * 30)) s"
		sleep $((try * 30))
	done
	log "debootstrap done in $(( $(date +%s) - t0 ))s; caching as $BASE_TAR"
	tar --numeric-owner --xattrs --xattrs-include='*' -C "$WORK/base" -cf "$BASE_TAR.tmp" .
	mv "$BASE_TAR.tmp" "$BASE_TAR"
	rm -rf "$WORK/base"
else
	log "reusing cached debootstrap result $BASE_TAR"
fi

# --- 2. fresh rootfs from the cached base -------------------------------------
cleanup
rm -rf "$ROOTFS"
mkdir -p "$ROOTFS"
tar --numeric-owner --xattrs --xattrs-include='*' -C "$ROOTFS" -xpf "$BASE_TAR"
KVER=$(ls "$ROOTFS/lib/modules" | sort -V | tail -n1)
[ -n "$KVER" ] && [ -e "$ROOTFS/boot/vmlinuz-$KVER" ] || die "no guest kernel found in the rootfs"
log "guest kernel: $KVER"
mount_chroot "$ROOTFS"

# keep services from starting inside the chroot
printf '#!/bin/sh\nexit 101\n' > "$ROOTFS/usr/sbin/policy-rc.d"
chmod 755 "$ROOTFS/usr/sbin/policy-rc.d"

# --- 3. basic system configuration -------------------------------------------
echo kdump-vm > "$ROOTFS/etc/hostname"
printf '127.0.0.1\tlocalhost\n127.0.1.1\tkdump-vm\n' > "$ROOTFS/etc/hosts"
printf '# <fs> <mountpoint> <type> <options> <dump> <pass>\n/dev/vda / ext4 errors=remount-ro 0 1\n' > "$ROOTFS/etc/fstab"
in_chroot passwd -d root >/dev/null            # passwordless root login on ttyS0 for debugging
mkdir -p "$ROOTFS/var/log/journal"             # persistent journal (readable later with debugfs)
ln -sf /dev/null "$ROOTFS/etc/systemd/system/apt-daily.timer"
ln -sf /dev/null "$ROOTFS/etc/systemd/system/apt-daily-upgrade.timer"

# kdump-tools: enable it, keep every other setting at the package default
sed -i -E 's/^#?[[:space:]]*USE_KDUMP=.*/USE_KDUMP=1/' "$ROOTFS/etc/default/kdump-tools"
grep -q '^USE_KDUMP=1' "$ROOTFS/etc/default/kdump-tools" || echo 'USE_KDUMP=1' >> "$ROOTFS/etc/default/kdump-tools"

# the scenario driver and the agent come from the CUSTOMIZE hook (customize.sh)
in_chroot systemctl enable kdump-tools.service >/dev/null 2>&1
rm -rf "$ROOTFS/var/lib/kdump-vm"

# --- 4. extension points: the agent under test goes in here ------------------
case "$ROBOT_RECEIVER" in
	auto) [ -n "$AGENT_UNITS$AGENT_WHEELS" ] && ROBOT_RECEIVER=1 || ROBOT_RECEIVER=0 ;;
	0|1) ;;
	*) die "ROBOT_RECEIVER must be auto, 0 or 1" ;;
esac
PACKAGES=$EXTRA_PACKAGES
[ -n "$AGENT_WHEELS" ] || [ "$ROBOT_RECEIVER" = 1 ] && PACKAGES="$PACKAGES $AGENT_PACKAGES"
if [ -n "${PACKAGES// /}$EXTRA_DEBS" ]; then
	log "installing extra packages: $PACKAGES $EXTRA_DEBS"
	debs=()
	for d in $EXTRA_DEBS; do cp "$d" "$ROOTFS/tmp/"; debs+=("/tmp/$(basename "$d")"); done
	for try in 1 2 3; do
		{ in_chroot apt-get -o Acquire::Retries=3 update -qq &&
			in_chroot apt-get -o Acquire::Retries=3 install -y -q --no-install-recommends $PACKAGES "${debs[@]}"; } \
			>"$LOGDIR/extra-packages.log" 2>&1 && break
		tail -n 30 "$LOGDIR/extra-packages.log" >&2
		[ "$try" -lt 3 ] || die "installing extra packages failed $try times"
		log "installing extra packages failed (try $try); again in $((try * 30)) s"
		sleep $((try * 30))
	done
	for d in "${debs[@]}"; do rm -f "$ROOTFS$d"; done
fi

# 4a. the agent's wheels -> a venv in the guest, installed by the guest's own python3 in the
# chroot, from the copied wheels only (--no-index; with no network at all where unshare -n works)
if [ -n "$AGENT_WHEELS" ]; then
	ls "$AGENT_WHEELS"/*.whl >/dev/null 2>&1 || die "AGENT_WHEELS=$AGENT_WHEELS holds no .whl files"
	rm -rf "$ROOTFS/tmp/agent-wheels"; mkdir -p "$ROOTFS/tmp/agent-wheels"
	cp "$AGENT_WHEELS"/*.whl "$ROOTFS/tmp/agent-wheels/"
	reqs=$AGENT_REQUIREMENTS
	[ -n "$reqs" ] || reqs=$(cd "$ROOTFS/tmp/agent-wheels" && for w in *.whl; do printf '/tmp/agent-wheels/%s ' "$w"; done)
	nonet=(); unshare -n true 2>/dev/null && nonet=(unshare -n)
	log "installing into guest venv $AGENT_VENV from $AGENT_WHEELS (offline${nonet:+, no network namespace}): $reqs"
	guest_env=(env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LC_ALL=C.UTF-8 PIP_CONFIG_FILE=/dev/null)
	{
		"${nonet[@]}" chroot "$ROOTFS" "${guest_env[@]}" python3 -m venv "$AGENT_VENV" &&
		"${nonet[@]}" chroot "$ROOTFS" "${guest_env[@]}" "$AGENT_VENV/bin/pip" install --no-index \
			--find-links /tmp/agent-wheels --disable-pip-version-check --no-cache-dir $reqs &&
		chroot "$ROOTFS" "${guest_env[@]}" "$AGENT_VENV/bin/pip" check
	} >"$LOGDIR/agent-wheels.log" 2>&1 || { tail -n 30 "$LOGDIR/agent-wheels.log" >&2; die "installing AGENT_WHEELS failed (log: $LOGDIR/agent-wheels.log)"; }
	chroot "$ROOTFS" "${guest_env[@]}" "$AGENT_VENV/bin/pip" list --format=freeze --disable-pip-version-check > "$WORK/agent-venv-freeze.txt"
	rm -rf "$ROOTFS/tmp/agent-wheels"
	log "guest venv: $(tr '\n' ' ' < "$WORK/agent-venv-freeze.txt")"
fi

# 4b. the agent's files (config, units), laid out like the guest's /
if [ -n "$AGENT_FILES" ]; then
	[ -d "$AGENT_FILES" ] || die "AGENT_FILES=$AGENT_FILES is not a directory"
	log "copying $AGENT_FILES over the guest's /"
	tar -C "$AGENT_FILES" -cf - . | tar -C "$ROOTFS" -xf - --no-same-owner --no-overwrite-dir --keep-directory-symlink
fi

# 4c. the stand-in DingTalk robot the agent posts to (127.0.0.1:ROBOT_PORT)
if [ "$ROBOT_RECEIVER" = 1 ]; then
	log "robot-receiver.service: http://127.0.0.1:$ROBOT_PORT/robot/send?access_token=$ROBOT_TOKEN -> /var/log/robot.jsonl"
	install -D -m 755 "$HERE/robot/fake_dingtalk.py" "$ROOTFS/usr/local/lib/robot-receiver/fake_dingtalk.py"
	install -m 755 "$HERE/guest/robot-receiver-wait" "$ROOTFS/usr/local/lib/robot-receiver/wait-port"
	install -m 644 "$HERE/guest/robot-receiver.service" "$ROOTFS/etc/systemd/system/"
	printf 'ROBOT_PORT=%s\nROBOT_TOKEN=%s\nROBOT_ARGS="%s"\n' "$ROBOT_PORT" "$ROBOT_TOKEN" "$ROBOT_ARGS" > "$ROOTFS/etc/default/robot-receiver"
	in_chroot systemctl enable robot-receiver.service >/dev/null 2>&1 || die "cannot enable robot-receiver.service"
fi
for pair in $EXTRA_TREES; do
	src=${pair%%:*}; dst=${pair#*:}
	[ -e "$src" ] && [ -n "$dst" ] && [ "$src" != "$pair" ] || die "bad EXTRA_TREES entry: $pair"
	log "copying $src -> guest:$dst"
	mkdir -p "$ROOTFS$(dirname "$dst")"
	cp -a "$src" "$ROOTFS$dst"
done
# 4d. enable the agent's units: after the robot, before the crash driver; evidence hooks
if [ -n "$AGENT_UNITS" ]; then
	log "enabling agent units: $AGENT_UNITS"
	in_chroot systemctl enable $AGENT_UNITS >"$LOGDIR/agent-units.log" 2>&1 \
		|| { cat "$LOGDIR/agent-units.log" >&2; die "cannot enable $AGENT_UNITS"; }
	after=$AGENT_UNITS
	if [ "$ROBOT_RECEIVER" = 1 ]; then
		after="robot-receiver.service $after"
		for u in $AGENT_UNITS; do
			mkdir -p "$ROOTFS/etc/systemd/system/$u.d"
			printf '[Unit]\nWants=robot-receiver.service\nAfter=robot-receiver.service\n' \
				> "$ROOTFS/etc/systemd/system/$u.d/10-kdump-vm-robot.conf"
		done
	fi
	mkdir -p "$ROOTFS/etc/systemd/system/kdump-vm-crash-once.service.d"
	printf '[Unit]\nAfter=%s\n' "$after" > "$ROOTFS/etc/systemd/system/kdump-vm-crash-once.service.d/10-agent.conf"
fi
if [ -n "$AGENT_UNITS" ] || [ "$ROBOT_RECEIVER" = 1 ]; then
	install -m 755 "$HERE/guest/kdump-vm-agent-collect" "$ROOTFS/usr/local/sbin/kdump-vm-agent-collect"
	printf 'AGENT_UNITS="%s"\nAGENT_WAIT=%s\nAGENT_SETTLE=%s\nROBOT_LOG=/var/log/robot.jsonl\n' \
		"$AGENT_UNITS" "$AGENT_WAIT" "$AGENT_SETTLE" > "$ROOTFS/etc/default/kdump-vm-agent"
	printf '#!/bin/sh\nexec /usr/local/sbin/kdump-vm-agent-collect pre\n' > "$ROOTFS/etc/kdump-vm/pre-crash.d/90-agent-collect"
	printf '#!/bin/sh\nexec /usr/local/sbin/kdump-vm-agent-collect post\n' > "$ROOTFS/etc/kdump-vm/post-crash.d/90-agent-collect"
	chmod 755 "$ROOTFS/etc/kdump-vm/pre-crash.d/90-agent-collect" "$ROOTFS/etc/kdump-vm/post-crash.d/90-agent-collect"
fi
rm -rf "$ROOTFS/var/lib/kdump-vm-agent" "$ROOTFS/var/log/robot.jsonl"
for hook in $CUSTOMIZE; do
	log "running customize hook $hook"
	"$hook" "$ROOTFS"
done

# --- 5. kdump initrd for the *guest* kernel ----------------------------------
rm -f "$ROOTFS"/var/lib/kdump/initrd.img* "$ROOTFS"/var/lib/kdump/vmlinuz
rm -rf "$ROOTFS/var/lib/kdump/initramfs-tools"
case "$KDUMP_INITRD_AT" in
	chroot)
		# what "kdump-config load" would do, done now: run kdump-tools' kernel hook for
		# the guest version and record the sysctl file, so that the first load in the
		# guest does not throw the initrd away (check_sysctl_change) and rebuild it.
		log "building /var/lib/kdump/initrd.img-$KVER in the chroot"
		in_chroot /usr/sbin/kdump-config symlinks "$KVER"
		[ -s "$ROOTFS/var/lib/kdump/initrd.img-$KVER" ] || die "kdump initrd was not built"
		cp "$ROOTFS/etc/kdump/sysctl.conf" "$ROOTFS/var/lib/kdump/latest_sysctls-$KVER"
		;;
	firstboot)
		# Nothing to do: on the first boot kdump-tools.service runs "kdump-config load",
		# which (check_sysctl_change + kdump_create_symlinks) runs the kernel hook
		# /etc/kernel/postinst.d/kdump-tools for the running kernel inside the guest,
		# i.e. mkinitramfs with MODULES=dep against the real virtio disk.
		log "kdump initrd will be built by kdump-config load on the guest's first boot"
		;;
	*) die "KDUMP_INITRD_AT must be firstboot or chroot" ;;
esac

# --- 6. record versions, clean up, make the image -----------------------------
in_chroot dpkg-query -W -f '${db:Status-Abbrev} ${Package} ${Version} ${Architecture}\n' \
	'linux-image-*' kdump-tools makedumpfile kexec-tools systemd udev initramfs-tools $PACKAGES 2>/dev/null \
	| grep '^ii' > "$WORK/guest-packages.txt" || true
echo "$KVER" > "$WORK/guest-kernel-version"
rm -f "$ROOTFS/usr/sbin/policy-rc.d"
in_chroot apt-get clean
rm -rf "$ROOTFS"/var/lib/apt/lists/* "$ROOTFS"/tmp/* "$ROOTFS"/var/tmp/*
cleanup
# /var/crash is not created here on purpose: kdump-config creates it (mkdir -p) when it runs.

cp "$ROOTFS/boot/vmlinuz-$KVER" "$WORK/vmlinuz"
cp "$ROOTFS/boot/initrd.img-$KVER" "$WORK/initrd.img"
rm -f "$IMAGE"
log "creating $IMAGE ($IMAGE_SIZE, ext4) from the rootfs"
mke2fs -q -t ext4 -L kdumpvm -d "$ROOTFS" -F "$IMAGE" "$IMAGE_SIZE" >"$LOGDIR/mke2fs.log" 2>&1 \
	|| { cat "$LOGDIR/mke2fs.log" >&2; die "mke2fs -d failed"; }
log "done: $IMAGE, kernel $WORK/vmlinuz ($KVER), initrd $WORK/initrd.img"
