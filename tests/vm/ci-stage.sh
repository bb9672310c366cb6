#!/usr/bin/env bash
# CI stage 3 (.ci/run, after the unit suite and the packages stage): issue #15's end-to-end proof.
# A Debian 12 guest with kdump-tools and monagent under its own hardened unit, one boot ended four
# ways (tests/vm/run.sh: kdump, pstore, reset, reboot); each must end with exactly one message at
# the guest's strict robot and no denial of the agent. Any scenario failing fails the stage.
#
# Installs what it needs (debootstrap, qemu-system-x86, qemu-utils, e2fsprogs), retrying the
# mirror; uses KVM when /dev/kvm really runs a guest, TCG otherwise (run.sh probes by booting).
# Measured on 2 cores under TCG: ~33 minutes in all (see tests/vm/README.md); the whole stage is
# bounded by VM_STAGE_TIMEOUT (default 60 minutes) and fails, never skips, when it runs out.
# Run as root on Debian/Ubuntu. WORK (default /var/tmp/monagent-vm) keeps the debootstrap cache
# and the results (serial logs, verdicts, summary.txt); the images are removed at the end.
set -euo pipefail
cd "$(dirname "$0")/../.."
export WORK=${WORK:-/var/tmp/monagent-vm}
TIMEOUT=${VM_STAGE_TIMEOUT:-3600}
start=$SECONDS
say() { printf '\n== vm-stage: %s (%ss)\n' "$*" "$((SECONDS - start))"; }
fail() {
    echo "vm-stage: FAIL: $*" >&2
    exit 1
}
[ "$(id -u)" = 0 ] || fail "must run as root (debootstrap, chroot, mke2fs -d of a root filesystem)"
command -v apt-get >/dev/null || fail "needs a Debian or Ubuntu host (apt-get, debootstrap)"

say "host packages"
# The mirror may be flaky: up to 4 attempts, with pauses, before the stage fails.
for attempt in 1 2 3 4; do
    if bash tests/host-packages.sh debootstrap qemu-system-x86 qemu-utils e2fsprogs python3-venv python3-pip; then
        break
    fi
    [ "$attempt" -lt 4 ] || fail "could not install debootstrap, qemu-system-x86, qemu-utils, e2fsprogs after $attempt attempts"
    echo "vm-stage: apt-get failed (attempt $attempt); retrying in $((attempt * 30)) s" >&2
    sleep $((attempt * 30))
done

PYTHON=python3
[ -x .venv/bin/python ] && PYTHON=$PWD/.venv/bin/python # the suite's venv (tests/run.sh): pip wheel works there
export PYTHON

say "tests/vm/run.sh kdump pstore reset reboot (WORK=$WORK, at most ${TIMEOUT}s)"
status=0
timeout -k 30 "$TIMEOUT" bash tests/vm/run.sh kdump pstore reset reboot || status=$?
if [ -d "$WORK/results" ]; then
    for verdict in "$WORK"/results/*-verdict.txt; do
        [ -e "$verdict" ] || continue
        echo "---- $(basename "$verdict")"
        cat "$verdict"
    done
fi
rm -rf "$WORK/rootfs" "$WORK"/*.img "$WORK"/*.qcow2 "$WORK/agent-disk" "$WORK/wheel"
case "$status" in
    0) say "PASS: all four scenarios" ;;
    124 | 137) fail "the VM stage did not finish within ${TIMEOUT}s (results so far: $WORK/results/summary.txt)" ;;
    *) fail "a scenario failed (exit $status): $(tr '\n' ';' < "$WORK/results/summary.txt" 2>/dev/null)" ;;
esac
