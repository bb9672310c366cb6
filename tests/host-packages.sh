#!/usr/bin/env bash
# Install the Debian packages the tests use for real (the names are the arguments), as root on
# Debian/Ubuntu, and leave the host as it was found:
# - packages already installed are not touched;
# - no daemon is started: a policy-rc.d that refuses every start (exit 101) is in place during the
#   install, created only if there is none, and removed again on exit whatever happens (trap);
# - what the new packages enabled at boot (systemd *.wants links, SysV rc?.d links) is disabled
#   again; links that existed before are kept. The tests start the daemons they need themselves,
#   on loopback ports of their own.
# POLICY_RC_D and HOST_ETC name other places (the test of this script uses a scratch tree).
set -euo pipefail

POLICY_RC_D=${POLICY_RC_D:-/usr/sbin/policy-rc.d}
ETC=${HOST_ETC:-/etc}

if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
    exit 0
fi
missing=""
for pkg in "$@"; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing="$missing $pkg"
done
if [ -z "$missing" ]; then
    exit 0
fi

boot_links() {
    { find "$ETC/systemd/system" "$ETC"/rc[0-6S].d -type l 2>/dev/null || true; } | sort  # a missing rc?.d is fine
}
before=$(boot_links)

disable_new_links() {
    comm -13 <(printf '%s\n' "$before") <(boot_links) | while read -r link; do
        case "$link" in
            "$ETC"/systemd/system/*.wants/* | "$ETC"/systemd/system/*.requires/* | "$ETC"/systemd/system/*.upholds/*)
                unit=$(basename "$link")
                if command -v deb-systemd-helper >/dev/null; then
                    deb-systemd-helper disable "$unit" >/dev/null 2>&1 || true  # so an upgrade does not enable it again
                fi
                rm -f "$link"
                echo "disabled at boot again: $unit (enabled by a package installed for the tests)"
                ;;
            "$ETC"/rc*.d/*)
                rm -f "$link"
                echo "removed the boot link $link (made by a package installed for the tests)"
                ;;
        esac
    done
}

created_policy=""
cleanup() {
    disable_new_links
    if [ -n "$created_policy" ]; then
        rm -f "$POLICY_RC_D"
    fi
}
trap cleanup EXIT  # also when the install fails half-way
if [ ! -e "$POLICY_RC_D" ] && [ ! -L "$POLICY_RC_D" ]; then
    printf '#!/bin/sh\n# monagent tests/host-packages.sh: no daemon starts while it installs packages; removed on exit\nexit 101\n' \
        > "$POLICY_RC_D"
    chmod 755 "$POLICY_RC_D"
    created_policy=1
fi

echo "== installing for the tests:$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
# shellcheck disable=SC2086 # one word per package
apt-get install -y -q --no-install-recommends $missing

