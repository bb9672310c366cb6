#!/usr/bin/env bash
# Build every artefact ops install from, into OUT (default: dist/), and check each one:
#   wheel + sdist       python -m build (warnings are errors), twine check --strict
#   monagent_*.deb      dpkg-buildpackage from the sdist as the .orig tarball + debian/, lintian
#   monagent-*.rpm      rpmbuild from the sdist + packaging/rpm/monagent.spec, rpmlint
# The sdist is built from a clean export of the tree (tracked and new files, no caches), and the
# distribution packages are built from the sdist: a file the sdist lacks breaks their build.
# Needs: git, python3 with build + twine (the .venv), debhelper, dh-python, lintian, rpm, rpmlint.
set -euo pipefail
cd "$(dirname "$0")/.."
SRC=$PWD
PY=${PY:-$SRC/.venv/bin/python}
OUT=$(realpath -m "${1:-dist}")
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$OUT"
rm -f "$OUT"/monagent[-_]* "$OUT"/*.log

step() { printf '== %s (%ss)\n' "$*" "$SECONDS"; }

step "sdist and wheel"
mkdir "$WORK/tree"
git ls-files -z --cached --others --exclude-standard | xargs -0 -I{} sh -c 'test -e "{}" && echo "{}"' \
    | tar -cf - -T - | tar -xf - -C "$WORK/tree"
# A warning here is a packaging bug; byte-compiling is off only when PYTHONDONTWRITEBYTECODE is set.
env -u PYTHONDONTWRITEBYTECODE "$PY" -m build -o "$OUT" "$WORK/tree" > "$OUT/build.log" 2>&1 || { cat "$OUT/build.log"; exit 1; }
if grep -i 'warning' "$OUT/build.log"; then
    echo "python -m build printed warnings (above); fix them" >&2
    exit 1
fi
"$PY" -m twine check --strict "$OUT"/monagent-*.whl "$OUT"/monagent-*.tar.gz
SDIST=$(ls "$OUT"/monagent-*.tar.gz)
VERSION=$(basename "$SDIST" .tar.gz | sed 's/^monagent-//')

if command -v dpkg-buildpackage >/dev/null; then
    step "Debian package"
    cp "$SDIST" "$WORK/monagent_$VERSION.orig.tar.gz"
    tar -xzf "$SDIST" -C "$WORK"
    cp -a debian "$WORK/monagent-$VERSION/"
    # The system toolchain only (not a pyenv or venv python that may come first in PATH). -d: an
    # Architecture: all package needs no compiler, so build-essential is not required; tests/run.sh
    # installs every Build-Depends (tests/test_packaging.py keeps the two lists in step).
    (cd "$WORK/monagent-$VERSION" && PATH=/usr/sbin:/usr/bin:/sbin:/bin dpkg-buildpackage -d -us -uc -b > "$OUT/deb.log" 2>&1) || { tail -60 "$OUT/deb.log"; exit 1; }
    cp "$WORK"/monagent_*.deb "$WORK"/monagent_*.changes "$WORK"/monagent_*.buildinfo "$OUT"/
    step "lintian (pedantic; overrides in debian/*.lintian-overrides say why)"
    lintian --pedantic --fail-on warning,pedantic --display-info --tag-display-limit 0 "$OUT"/monagent_*.changes
fi

if command -v rpmbuild >/dev/null; then
    step "RPM"
    mkdir -p "$WORK/rpm/SOURCES"
    cp "$SDIST" "$WORK/rpm/SOURCES/"
    tar -xzf "$SDIST" -C "$WORK/rpm/SOURCES" --strip-components=2 "monagent-$VERSION/systemd/monagent-sysusers.conf"
    # Debian's rpm lacks Fedora's python and systemd macro packages: packaging/rpm/macros.ci
    # defines the few the spec uses, as Fedora does. --nodeps: the BuildRequires are Fedora's.
    rpmbuild -bb --nodeps --define "_topdir $WORK/rpm" --define "ci_python $PY" --load packaging/rpm/macros.ci \
        packaging/rpm/monagent.spec > "$OUT/rpm.log" 2>&1 || { tail -60 "$OUT/rpm.log"; exit 1; }
    cp "$WORK"/rpm/RPMS/noarch/monagent-*.rpm "$OUT"/
    step "rpmlint"
    rpmlint -c packaging/rpm/rpmlint.toml -r packaging/rpm/monagent.rpmlintrc packaging/rpm/monagent.spec "$OUT"/monagent-*.noarch.rpm
fi
step "done"
ls -l "$OUT"
