#!/usr/bin/env bash
# Makes the Autobahn|TestSuite `wstest` command available on Debian (run as root).
#
# wstest runs on Python 2.7 only, which Debian 12 no longer ships: the interpreter comes
# from the `bullseye` suite, pinned low so that nothing else on the system is taken from
# it, and wstest is installed into that interpreter with pip. Safe to run again: it does
# nothing when `wstest` already works. Works unattended (CI=true, no stdin).
set -euo pipefail

WSTEST_VERSION=0.8.2
PIP_VERSION=20.3.4
# The last releases of the build tools that support Python 2.7 (several dependencies are
# source-only and are built with setup.py).
SETUPTOOLS_VERSION=44.1.1
WHEEL_VERSION=0.37.1
# By absolute path: a `python2.7` earlier on PATH (a version-manager shim) may not run.
PY2=/usr/bin/python2.7
SUITE=bullseye
SOURCE_FILE=/etc/apt/sources.list.d/sockeye-${SUITE}.sources
PIN_FILE=/etc/apt/preferences.d/sockeye-${SUITE}
KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg

log() { printf 'install-wstest: %s\n' "$*" >&2; }

# Prints the path of a working wstest, or fails.
working_wstest() {
    local candidate
    for candidate in "$(command -v wstest 2>/dev/null || true)" /usr/local/bin/wstest; do
        if [[ -n "$candidate" && -x "$candidate" ]] && "$candidate" --help >/dev/null 2>&1; then
            printf '%s\n' "$candidate"
            return 0
        fi
    done
    return 1
}

if path=$(working_wstest); then
    log "wstest already works: $path"
    printf '%s\n' "$path"
    exit 0
fi

if [[ $(id -u) -ne 0 ]]; then
    log "must run as root (installs a Debian package)"
    exit 1
fi

export DEBIAN_FRONTEND=noninteractive

# The Debian mirror this machine already uses (first archive URI that is not the
# security archive), so that no new host is introduced.
debian_mirror() {
    local files=() f uri
    [[ -f /etc/apt/sources.list ]] && files+=(/etc/apt/sources.list)
    for f in /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
        [[ -f "$f" && "$f" != "$SOURCE_FILE" ]] && files+=("$f")
    done
    if ((${#files[@]})); then
        uri=$(
            sed -n -E \
                -e 's#^[[:space:]]*URIs:[[:space:]]*(https?://[^[:space:]]+/debian)/?([[:space:]].*)?$#\1#p' \
                -e 's#^[[:space:]]*deb[[:space:]]+(\[[^]]*\][[:space:]]+)?(https?://[^[:space:]]+/debian)/?[[:space:]].*$#\2#p' \
                "${files[@]}" | head -n 1
        )
    fi
    printf '%s\n' "${uri:-http://deb.debian.org/debian}"
}

# python2.7-dev: some dependencies (wsaccel, ujson) are C extensions built from source.
if [[ ! -x "$PY2" || ! -f /usr/include/python2.7/Python.h ]]; then
    mirror=$(debian_mirror)
    log "adding $SUITE from $mirror (pinned low) for python2.7 and python2.7-dev"
    cat >"$SOURCE_FILE" <<SRC
# Added by conformance/install-wstest.sh: python2.7 for the Autobahn|TestSuite.
Types: deb
URIs: $mirror
Suites: $SUITE
Components: main
Signed-By: $KEYRING
SRC
    # Priority 100: packages found only in this suite can be installed when asked for,
    # but nothing installed from the current release is ever upgraded from it.
    cat >"$PIN_FILE" <<PIN
Package: *
Pin: release n=$SUITE
Pin-Priority: 100
PIN
    apt-get update -q
    apt-get install -y -q --no-install-recommends python2.7 python2.7-dev </dev/null
fi
"$PY2" --version

# pip for Python 2.7: the last release that supports it, run from its own wheel to
# install itself.
if ! "$PY2" -m pip --version >/dev/null 2>&1; then
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    log "bootstrapping pip $PIP_VERSION"
    python3 -m pip download --quiet --no-deps --only-binary=:all: -d "$tmp" "pip==$PIP_VERSION"
    wheel="$tmp/pip-$PIP_VERSION-py2.py3-none-any.whl"
    "$PY2" "$wheel/pip" install --quiet --no-index "$wheel"
fi

"$PY2" -m pip install --quiet --no-warn-script-location \
    "setuptools==$SETUPTOOLS_VERSION" "wheel==$WHEEL_VERSION"

# pip 20.3 picks the last Python 2 releases of every dependency by itself (checked:
# autobahn 0.10.9, Twisted 20.3.0, cryptography 3.3.2, pyOpenSSL 21.0.0), so nothing
# else needs pinning.
log "installing autobahntestsuite $WSTEST_VERSION"
"$PY2" -m pip install --quiet --no-warn-script-location "autobahntestsuite==$WSTEST_VERSION"

if ! path=$(working_wstest); then
    log "wstest was installed but does not run"
    exit 1
fi
log "wstest installed: $path"
printf '%s\n' "$path"
