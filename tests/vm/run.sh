#!/bin/bash
# tests/vm/run.sh [SCENARIO ...] - monagent's VM stage: the agent under its own hardened unit in a
# Debian 12 guest (kdump-tools, systemd-pstore) under QEMU/KVM, one boot ended four ways:
#   kdump  - SysRq-c with kdump loaded         -> exactly one message: the crash card naming the panic
#   pstore - SysRq-c, kdump off, ramoops on    -> exactly one message with the panic reason from pstore
#   reset  - SysRq-b, no record                -> exactly one "unplanned reboot" with the last kernel lines
#   reboot - systemctl reboot                  -> exactly one planned notice
# The image is built once (debootstrap cached in $WORK/cache) plus one preparation boot (the kdump
# initrd is built in the guest, as kdump-tools does it); each scenario boots a qcow2 overlay of it.
# Needs root, debootstrap, qemu-system-x86, qemu-utils, e2fsprogs.  Results: $WORK/results/.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
export WORK=${WORK:-/tmp/monagent-vm}
. "$HERE/config.sh"
PYTHON=${PYTHON:-python3}
SCENARIOS=${*:-kdump pstore reset reboot}
RESULTS=$WORK/results
log() { printf '[vm-stage %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
[ "$(id -u)" = 0 ] || die "must run as root"
mkdir -p "$WORK" "$RESULTS"
T0=$(date +%s)

# --- 1. the wheel and the image (once) ---------------------------------------------------------
rm -rf "$WORK/wheel"
"$PYTHON" -m pip wheel -q --no-deps -w "$WORK/wheel" "$REPO" >/dev/null || die "cannot build the wheel"
export MONAGENT_WHEEL MONAGENT_UNIT=$WORK/agent-disk/monagent.service
MONAGENT_WHEEL=$(ls "$WORK"/wheel/monagent-*.whl)
# What is under test goes on a second disk, installed at every boot by monagent-vm-update.service
# (also baked into the image by customize.sh): the wheel, the config, the shipped hardened unit
# with ExecStart pointed at the guest's venv, the scenario driver.
rm -rf "$WORK/agent-disk" "$WORK/agent.img"; mkdir -p "$WORK/agent-disk"
cp "$MONAGENT_WHEEL" "$HERE/files/etc/monagent/agent.toml" "$HERE/guest/monagent-vm-driver" "$WORK/agent-disk/"
sed 's#^ExecStart=.*#ExecStart=/opt/monagent/venv/bin/monagent run --config /etc/monagent/agent.toml#' \
	"$REPO/systemd/monagent.service" > "$MONAGENT_UNIT"
mke2fs -q -t ext4 -d "$WORK/agent-disk" "$WORK/agent.img" 32M
if [ "${REUSE_IMAGE:-0}" != 1 ] || [ ! -s "$WORK/base.img" ]; then
	EXTRA_PACKAGES="python3 python3-venv python3-psutil python3-requests python3-prometheus-client" \
		CUSTOMIZE="$HERE/customize.sh" KDUMP_INITRD_AT=firstboot "$HERE/build-image.sh" || die "image build failed"
	T_BUILD=$(date +%s)
	log "image built in $((T_BUILD - T0))s"
fi

# --- qemu -------------------------------------------------------------------------------------
QEMU=qemu-system-x86_64
kvm_probe() {
	local out
	out=$(timeout --foreground 20 "$QEMU" -no-user-config -nodefaults -machine q35,accel=kvm -cpu "$1" -m 512 \
		-kernel "$WORK/vmlinuz" -append 'console=ttyS0 root=/dev/null panic=-1' \
		-nic none -display none -monitor none -serial stdio </dev/null 2>/dev/null | head -c 20000 || true)
	grep -q 'Linux version' <<<"$out"
}
ACCEL_ARGS=(-machine q35 -accel tcg,thread=multi -cpu max)
if [ -c /dev/kvm ]; then
	for cpu in host host,-arch-capabilities; do
		if kvm_probe "$cpu"; then ACCEL_ARGS=(-machine q35,accel=kvm -cpu "$cpu"); break; fi
	done
fi
log "qemu: ${ACCEL_ARGS[*]}"

boot() {   # boot DISK FORMAT APPEND SERIAL_LOG TIMEOUT
	# --foreground: qemu stays in this script's process group, so a timeout around the whole
	# stage (ci-stage.sh) ends it too
	timeout --foreground "$5" "$QEMU" -no-user-config -nodefaults "${ACCEL_ARGS[@]}" -smp "$SMP" -m "$MEM_MB" \
		-kernel "$WORK/vmlinuz" -initrd "$WORK/initrd.img" -append "$3" \
		-drive "file=$1,format=$2,if=virtio" -drive "file=$WORK/agent.img,format=raw,if=virtio,readonly=on" -nic none -nographic -monitor none -serial stdio \
		</dev/null 2>"$4.stderr" | stdbuf -oL tr -d '\r' > "$4" || true
}
BASE_APPEND="root=/dev/vda rw console=ttyS0 panic=5"

if [ "${REUSE_IMAGE:-0}" != 1 ] || [ ! -s "$WORK/base.img" ]; then
	log "preparation boot (kdump initrd built in the guest, monagent enabled)"
	t=$(date +%s)
	boot "$IMAGE" raw "$BASE_APPEND crashkernel=$CRASHKERNEL monagent_vm=prep" "$RESULTS/prep-serial.log" 900
	grep -q 'MONAGENT-VM: prep done' "$RESULTS/prep-serial.log" || { tail -n 40 "$RESULTS/prep-serial.log" >&2; die "preparation boot failed"; }
	mv "$IMAGE" "$WORK/base.img"
	log "preparation boot: $(( $(date +%s) - t ))s"
fi

# --- 2. the scenarios --------------------------------------------------------------------------
# ramoops in 1 MiB at 1 GiB of the guest's 2 GiB, reserved from the kernel ($: reserved, not pmem).
# Not at the top of RAM: QEMU's direct kernel boot loads the initrd there again at every reset,
# over the record the panic left (seen: RAMDISK [mem 0x7e29c000-0x7ffcffff], /sys/fs/pstore empty).
RAMOOPS='memmap=1M$0x40000000 ramoops.mem_address=0x40000000 ramoops.mem_size=0x100000 ramoops.record_size=0x1000 ramoops.console_size=0 ramoops.ftrace_size=0 ramoops.pmsg_size=0'
failed=0
: > "$RESULTS/summary.txt"
for scenario in $SCENARIOS; do
	case "$scenario" in
		kdump) append="$BASE_APPEND crashkernel=$CRASHKERNEL" ;;
		pstore) append="$BASE_APPEND $RAMOOPS" ;;
		reset|reboot) append="$BASE_APPEND" ;;
		*) die "unknown scenario $scenario" ;;
	esac
	overlay=$WORK/$scenario.qcow2   # kept until the next run, for a look inside (qemu-nbd)
	rm -f "$overlay"
	qemu-img create -q -f qcow2 -b "$WORK/base.img" -F raw "$overlay"
	log "scenario $scenario"
	t=$(date +%s)
	boot "$overlay" qcow2 "$append monagent_vm=$scenario" "$RESULTS/$scenario-serial.log" "${SCENARIO_TIMEOUT:-1200}"
	seconds=$(( $(date +%s) - t ))
	if "$PYTHON" "$HERE/expect.py" "$scenario" "$RESULTS/$scenario-serial.log" > "$RESULTS/$scenario-verdict.txt" 2>&1; then
		verdict=PASS
	else
		verdict=FAIL; failed=1
	fi
	echo "$scenario: $verdict in ${seconds}s: $(tail -n1 "$RESULTS/$scenario-verdict.txt")" | tee -a "$RESULTS/summary.txt" >&2
done
log "VM stage: $(( $(date +%s) - T0 ))s in all"
cat "$RESULTS/summary.txt"
exit "$failed"
