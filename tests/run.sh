#!/usr/bin/env bash
# Install everything the test suite needs, then run all of it:
# ruff, mypy, a Python 3.9 compatibility check (vermin), then pytest (which also runs
# systemd-analyze verify/security on the unit, promtool, Alertmanager and the Nagios plugins).
# As root on Debian/Ubuntu it also installs the Debian packages the tests run for real
# (monitoring-plugins, prometheus-alertmanager, promtool, monit, systemd-analyze, fuse3), and
# leaves the host as it found it: no daemon started, nothing new enabled at boot, no policy-rc.d
# left behind (tests/host-packages.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

DEBS="python3-venv monitoring-plugins-basic monitoring-plugins-standard prometheus-alertmanager prometheus monit systemd fuse3 libfuse2 util-linux procps"
# As root on Debian/Ubuntu: install what is missing, start nothing, enable nothing at boot.
# shellcheck disable=SC2086 # one word per package
bash tests/host-packages.sh $DEBS

python3 -m venv .venv
.venv/bin/pip install -q --upgrade pip
.venv/bin/pip install -q -e '.[test]'

echo "== ruff"
.venv/bin/ruff check .
echo "== mypy"
.venv/bin/mypy
echo "== vermin (Python 3.9 compatibility)"
.venv/bin/vermin --target=3.9- --violations --eval-annotations --no-tips --exclude-regex '^\.venv' monagent checks
echo "== systemd-analyze on the unit as installed (ExecStart must exist; exposure at most 3.0)"
if command -v systemd-analyze >/dev/null; then
    unit_root=$(mktemp -d)
    .venv/bin/monagent install --root "$unit_root" >/dev/null
    systemd-analyze verify "$unit_root/etc/systemd/system/monagent.service"
    systemd-analyze security --offline=true --threshold=30 "$unit_root/etc/systemd/system/monagent.service" | tail -1
    rm -rf "$unit_root"
fi
echo "== pytest"
exec .venv/bin/python -m pytest -q "$@"
