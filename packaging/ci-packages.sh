#!/usr/bin/env bash
# CI stage after the unit suite (.ci/run): build, lint, install and use every artefact.
#   1. packaging/build-all.sh: wheel + sdist (no warnings, twine check), .deb (lintian
#      --pedantic), .rpm (rpmlint)
#   2. the .deb installed on this machine: `monagent validate`, `monagent check --json` (as root
#      and as the monagent user), `systemd-analyze verify` of the installed unit, the config's
#      mode and group, man page and completion; the NRPE recipe as the nagios user; an upgrade
#      to a newer version keeps config and state; purge removes them
#   3. the wheel in a clean venv, and the test suite run against it (from the sdist's tests)
# The machine is left as found: the package purged, and the monagent/nagios users removed if
# this script created them. Run as root on Debian/Ubuntu (tests/run.sh installs what it needs).
set -euo pipefail
cd "$(dirname "$0")/.."
SRC=$PWD
PY=${PY:-$SRC/.venv/bin/python}
OUT=$(mktemp -d /var/tmp/monagent-packages.XXXXXX)
chmod 755 "$OUT" # the tests drop privileges and must still reach the venv
export DEBIAN_FRONTEND=noninteractive
start=$SECONDS
step() { printf '\n== %s (%ss)\n' "$*" "$((SECONDS - start))"; }
fail() {
    echo "ci-packages: $*" >&2
    exit 1
}

had_monagent_user=$(getent passwd monagent >/dev/null && echo yes || echo no)
had_monagent_group=$(getent group monagent >/dev/null && echo yes || echo no)
had_nagios_user=$(getent passwd nagios >/dev/null && echo yes || echo no)
had_nagios_group=$(getent group nagios >/dev/null && echo yes || echo no)
had_policy=$([ -e /usr/sbin/policy-rc.d ] && echo yes || echo no)
restore_users() {
    # Debian keeps a package's system user after purge; this machine gets back what it had.
    [ "$had_nagios_user" = yes ] || ! getent passwd nagios >/dev/null || userdel nagios
    [ "$had_nagios_group" = yes ] || ! getent group nagios >/dev/null || groupdel nagios
    [ "$had_monagent_user" = yes ] || ! getent passwd monagent >/dev/null || userdel monagent
    [ "$had_monagent_group" = yes ] || ! getent group monagent >/dev/null || groupdel monagent
}
cleanup() {
    set +e
    if dpkg -s monagent >/dev/null 2>&1; then apt-get purge -y -q monagent >/dev/null; fi
    restore_users
    [ "$had_policy" = yes ] || rm -f /usr/sbin/policy-rc.d
    rm -rf "$OUT"
}
trap cleanup EXIT

# Debian packages start their daemons in postinst; there is no systemd here to start one anyway.
if [ "$had_policy" = no ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
fi

step "build and lint: wheel, sdist, .deb, .rpm"
if [ -n "${PACKAGES_FROM:-}" ]; then # local iteration: artefacts build-all.sh made already
    cp "$PACKAGES_FROM"/monagent[-_]* "$OUT"/
else
    PY=$PY bash packaging/build-all.sh "$OUT"
fi

step "install the .deb"
dpkg -s monagent >/dev/null 2>&1 && fail "monagent is already installed on this machine; not touching it"
apt-get install -y -q --no-install-recommends "$OUT"/monagent_*_all.deb >/dev/null
[ "$(command -v monagent)" = /usr/bin/monagent ] || fail "monagent is not /usr/bin/monagent"
[ "$(stat -c '%a %U %G' /etc/monagent/agent.toml)" = "640 root monagent" ] ||
    fail "/etc/monagent/agent.toml is $(stat -c '%a %U %G' /etc/monagent/agent.toml), not 640 root monagent"
getent passwd monagent >/dev/null || fail "no monagent user after install"
[ -d /etc/monagent/checks.d ] || fail "no /etc/monagent/checks.d"
man -w monagent >/dev/null || fail "no monagent(8)"
[ -f /usr/share/bash-completion/completions/monagent ] || fail "no bash completion"
bash -n /usr/share/bash-completion/completions/monagent
grep -qx 'ExecStart=/usr/bin/monagent run --config /etc/monagent/agent.toml' /lib/systemd/system/monagent.service ||
    fail "the installed unit does not run /usr/bin/monagent"
[ -L /etc/systemd/system/multi-user.target.wants/monagent.service ] || fail "the service is not enabled"
(cd / && /usr/bin/python3 -c 'import monagent, sys; sys.exit(not monagent.__file__.startswith("/usr/lib/python3/dist-packages/"))') ||
    fail "the system python does not import the packaged monagent"

step "use the installed package"
monagent --version
monagent validate
monagent check --json >"$OUT/check.json" || [ $? -le 2 ] # a busy CI host may be WARNING/CRITICAL
python3 -m json.tool "$OUT/check.json" >/dev/null || fail "monagent check --json printed no JSON"
# As the service runs it: the unit's user, reading the root:monagent config.
setpriv --reuid monagent --regid monagent --init-groups monagent check --json >/dev/null || [ $? -le 2 ]
systemd-analyze verify /lib/systemd/system/monagent.service
systemd-analyze security --offline=true --threshold=30 /lib/systemd/system/monagent.service | tail -1

step "the NRPE/Icinga recipe, as the nagios user (README.Debian)"
if [ "$had_nagios_user" = no ]; then
    useradd --system --user-group --no-create-home --home-dir /var/lib/nagios --shell /usr/sbin/nologin nagios
fi
set +e
# The memory check: disks would also report whatever another job has mounted on this machine.
out=$(setpriv --reuid nagios --regid nagios --init-groups monagent check memory --nagios 2>&1)
code=$?
set -e
# Any exit status above 2 is UNKNOWN to NRPE and Icinga.
[ "$code" -gt 2 ] || fail "before the recipe, the nagios user got exit $code (expected UNKNOWN): $out"
echo "nagios before the recipe: exit $code: $out"
case "$out" in *"permission denied"* | *"Permission denied"* | *"cannot read"*) ;; *) fail "unclear error for nagios: $out" ;; esac
usermod -a -G monagent nagios
set +e
out=$(setpriv --reuid nagios --regid nagios --init-groups monagent check memory --nagios)
code=$?
set -e
echo "nagios: exit $code: $out"
[ "$code" -le 2 ] || fail "the NRPE recipe fails for the nagios user (exit $code): $out"
case "$out" in "memory OK: "* | "memory WARNING: "* | "memory CRITICAL: "*) ;; *) fail "not a Nagios line: $out" ;; esac

step "upgrade to a newer version keeps config and state"
echo '# local change' >>/etc/monagent/agent.toml
echo kept >/var/lib/monagent/ci-marker
chown monagent:monagent /var/lib/monagent/ci-marker
# The same package as version 0.1.0-1+ci1: dpkg runs the upgrade path (postinst configure OLD).
mkdir "$OUT/next"
dpkg-deb -R "$OUT"/monagent_*_all.deb "$OUT/next/root"
sed -i 's/^Version: \(.*\)$/Version: \1+ci1/' "$OUT/next/root/DEBIAN/control"
dpkg-deb -b --root-owner-group "$OUT/next/root" "$OUT/next/monagent_next_all.deb" >/dev/null
apt-get install -y -q -o Dpkg::Options::=--force-confold "$OUT/next/monagent_next_all.deb" >/dev/null
dpkg-query -W -f='${Version}\n' monagent | grep -q '+ci1$' || fail "the upgrade did not happen"
grep -q '^# local change$' /etc/monagent/agent.toml || fail "the upgrade lost a local config change"
[ "$(cat /var/lib/monagent/ci-marker)" = kept ] || fail "the upgrade lost the state"
[ "$(stat -c '%a %G' /etc/monagent/agent.toml)" = "640 monagent" ] || fail "the upgrade reset the config's mode"
monagent validate

step "remove keeps config and state; purge removes them"
apt-get remove -y -q monagent >/dev/null
[ -f /etc/monagent/agent.toml ] && [ -f /var/lib/monagent/ci-marker ] || fail "remove took config or state"
apt-get purge -y -q monagent >/dev/null
[ ! -e /etc/monagent/agent.toml ] || fail "purge kept /etc/monagent/agent.toml"
[ ! -e /var/lib/monagent ] || fail "purge kept /var/lib/monagent"
dpkg-statoverride --list /etc/monagent/agent.toml >/dev/null && fail "purge kept the statoverride"
restore_users

step "the wheel in a clean venv, and the test suite against it"
python3 -m venv "$OUT/venv"
"$OUT/venv/bin/pip" install -q --disable-pip-version-check "$OUT"/monagent-*.whl
# The test tools, as the project's [test] extra names them (the package is not reinstalled).
"$OUT/venv/bin/pip" install -q --disable-pip-version-check \
    $("$PY" -c 'import tomllib,sys; print(" ".join(tomllib.load(open(sys.argv[1],"rb"))["project"]["optional-dependencies"]["test"]))' pyproject.toml)
# The tests and their data from the sdist, without the source packages: monagent is the wheel's.
mkdir "$OUT/sdist"
tar -xzf "$OUT"/monagent-*.tar.gz -C "$OUT/sdist" --strip-components=1
rm -rf "$OUT/sdist/monagent" "$OUT/sdist/checks"
(cd "$OUT/sdist" && "$OUT/venv/bin/python" -c 'import monagent, sys; sys.exit(not monagent.__file__.startswith(sys.prefix))') ||
    fail "the venv does not import the wheel's monagent"
# test_hygiene's source-layout tests look at monagent/ in the tree, which this run removes on purpose.
(cd "$OUT/sdist" && "$OUT/venv/bin/python" -m pytest -q -p no:cacheprovider \
    --deselect tests/test_hygiene.py::test_every_package_in_the_tree_is_in_the_wheel \
    --deselect tests/test_hygiene.py::test_agent_toml_is_stored_once_and_the_package_ships_that_file \
    --deselect tests/test_hygiene.py::test_the_project_files_a_contributor_needs_are_there \
    --deselect tests/test_one_formatter.py::test_the_allowed_places_still_need_their_exception "$@")

step "done"
