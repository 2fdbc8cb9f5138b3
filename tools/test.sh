#!/usr/bin/env bash
# tools/test.sh - run every Pinwheel test on this machine.
#
# Installs the real peers the integration tests talk to (Debian's
# freeradius-utils for radclient, python3-pyrad for a second, independent
# RADIUS client, slapd and ldap-utils for LDAP, chromium and chromium-driver
# for the browser test, systemd for systemd-analyze; aiosmtpd from PyPI as an SMTP
# sink, and schemathesis from PyPI to fuzz the REST API against
# docs/openapi.yaml) without letting any package start a system service, builds
# the whole workspace, then runs unit and integration tests.
# Needs: a Rust toolchain (cargo >= 1.85, e.g. from rustup), apt-get, and root
# or sudo for the package install. Every server the tests start is private to
# the test, on 127.0.0.1, on ports chosen at run time.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

command -v cargo >/dev/null || {
    echo "cargo not found: install Rust >= 1.85 (https://rustup.rs) and run this again" >&2
    exit 1
}

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

install_packages() {
    local missing=()
    command -v radclient >/dev/null || missing+=(freeradius-utils)
    # Debian's interpreter, where the package installs (not a pyenv or venv python3).
    /usr/bin/python3 -c 'import pyrad' 2>/dev/null || missing+=(python3-pyrad)
    # OpenLDAP's server and tools, for the LDAP directory plugin's tests.
    command -v slapd >/dev/null || [ -x /usr/sbin/slapd ] || missing+=(slapd)
    command -v ldapadd >/dev/null || missing+=(ldap-utils)
    # systemd-analyze (verify, security) and systemd-socket-activate for the
    # unit and socket-activation tests.
    command -v systemd-analyze >/dev/null || missing+=(systemd)
    # Headless Chromium and its WebDriver, for the browser test of the pages.
    command -v chromium >/dev/null || missing+=(chromium)
    command -v chromedriver >/dev/null || missing+=(chromium-driver)
    [ ${#missing[@]} -eq 0 ] && return 0
    step "installing ${missing[*]} (system services kept from starting)"
    local made_policy=0
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
        $SUDO chmod 755 /usr/sbin/policy-rc.d
        made_policy=1
        # Never leave the policy behind, even when interrupted.
        trap '$SUDO rm -f /usr/sbin/policy-rc.d' EXIT
    fi
    local rc=0
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq || rc=$?
    if [ $rc -eq 0 ]; then
        $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" || rc=$?
    fi
    if [ $made_policy = 1 ]; then $SUDO rm -f /usr/sbin/policy-rc.d; fi
    if [ $rc -ne 0 ]; then
        echo "apt-get failed (exit $rc) installing ${missing[*]}" >&2
        exit $rc
    fi
}

install_pip_packages() {
    # aiosmtpd: the SMTP sink the SMTP transport's tests deliver to;
    # schemathesis (its `st` command): the property-based checker run against
    # docs/openapi.yaml.
    local missing=()
    python3 -c 'import aiosmtpd' 2>/dev/null || missing+=(aiosmtpd)
    python3 -c 'import schemathesis' 2>/dev/null || missing+=(schemathesis)
    [ ${#missing[@]} -eq 0 ] && return 0
    step "installing ${missing[*]} (pip)"
    python3 -m pip install --quiet --disable-pip-version-check "${missing[@]}" || {
        echo "pip failed installing ${missing[*]}" >&2
        exit 1
    }
}

install_packages
install_pip_packages

step "building the workspace"
cargo build --workspace --locked

step "running unit and integration tests"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
cargo test --workspace --locked --no-fail-fast 2>&1 | tee "$log" || status=$?
# One closing line for the whole run (cargo prints one per test binary).
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     END { printf "tests: %d passed, %d failed\n", p, f }' "$log"

# The Debian package: build, install, run, upgrade, purge (tools/test-package.sh).
step "testing the Debian package"
pkg_status=0
$SUDO tools/test-package.sh || pkg_status=$?
if [ $pkg_status -ne 0 ]; then
    echo "package test: FAIL (exit $pkg_status)"
    [ $status -ne 0 ] || status=$pkg_status
else
    echo "package test: PASS"
fi
exit $status
