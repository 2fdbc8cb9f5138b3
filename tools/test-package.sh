#!/usr/bin/env bash
# tools/test-package.sh - build the Debian package and test it on this machine.
#
# Builds the .deb (tools/build-deb.sh: release build + dpkg-deb), checks that
# `dpkg-deb --contents` lists every file the package must ship (binaries,
# plugins, unit, man pages, docs and the example configs) and that the
# conffile is the committed etc/pinwheel.toml, installs it with `dpkg -i`
# (without systemd postinst must say how to start pinwheeld), checks the
# pinwheel user, the state folder and the config,
# runs `pinwheeld --version`, `pinwheelctl --version` and the config check,
# runs `systemd-analyze verify` on the installed unit, starts the packaged
# daemon by hand as root with the packaged config (it must drop to the
# pinwheel user: checked in /proc/PID/status) and asks it a real radclient
# Status-Server on 127.0.0.1:1812 (secret testing123), adds a user, reinstalls
# the package as an upgrade (database and user kept), puts an admin's file in
# /var/lib/pinwheel/backup/, then `dpkg --purge`: that file must survive (and
# the purge says why it kept the folder) while the database, master key and
# spool are gone; it removes the file, installs and purges once more and
# checks that nothing is left behind. The pinwheel user must go with the
# purge if the package created it, and stay if it existed before the test. Prints PASS or FAIL; exits non-zero on
# failure. Needs root, dpkg, radclient (freeradius-utils) and systemd-analyze
# (systemd): tools/test.sh installs them. Uses the fixed ports of the packaged
# config (1812, 1813, 8080): fails clearly if they are taken.
set -euo pipefail
cd "$(dirname "$0")/.."

fail() { echo "test-package: FAIL: $*" >&2; exit 1; }
step() { printf '\n==> test-package: %s\n' "$*"; }

[ "$(id -u)" = 0 ] || fail "must run as root (dpkg -i, the privilege drop); run tools/test.sh as root"
command -v radclient >/dev/null || fail "radclient not found: run tools/test.sh (installs freeradius-utils)"
command -v systemd-analyze >/dev/null || fail "systemd-analyze not found: run tools/test.sh (installs systemd)"
if dpkg-query -W -f='${Status}' pinwheel 2>/dev/null | grep -q 'ok installed'; then
    fail "the pinwheel package is already installed here; remove it first (dpkg --purge pinwheel)"
fi
if command -v ss >/dev/null; then
    for port in 1812 1813; do
        ss -Hlnu "sport = :$port" | grep -q . && fail "udp port $port is taken on this machine; the packaged config needs it"
    done
    ss -Hlnt "sport = :8080" | grep -q . && fail "tcp port 8080 is taken on this machine; the packaged config needs it"
fi

daemon_pid=""
admin_file=/var/lib/pinwheel/backup/test-package-admin-file.db
admin_file_made=""
cleanup() {
    if [ -n "$daemon_pid" ] && kill -0 "$daemon_pid" 2>/dev/null; then
        kill -TERM "$daemon_pid" 2>/dev/null || true
        wait "$daemon_pid" 2>/dev/null || true
    fi
    if dpkg-query -W pinwheel >/dev/null 2>&1; then dpkg --purge pinwheel >/dev/null 2>&1 || true; fi
    if [ -n "$admin_file_made" ]; then
        rm -f "$admin_file"
        rmdir /var/lib/pinwheel/backup /var/lib/pinwheel 2>/dev/null || true
    fi
}
# A pinwheel user made before the package (README step 1) must survive the purge.
user_before=no
getent passwd pinwheel >/dev/null && user_before=yes
trap cleanup EXIT

step "building the package (release build)"
start=$(date +%s)
deb=$(tools/build-deb.sh | tail -n 1)
echo "built $deb in $(( $(date +%s) - start )) s ($(du -h "$deb" | cut -f1))"

step "checking its contents"
contents=$(dpkg-deb --contents "$deb")
for path in ./usr/sbin/pinwheeld ./usr/bin/pinwheelctl ./usr/bin/pinwheel-mobile \
            ./usr/lib/pinwheel/plugins/libpinwheel_transport_smtp.so \
            ./usr/lib/pinwheel/plugins/libpinwheel_transport_http.so \
            ./usr/lib/pinwheel/plugins/libpinwheel_directory_ldap.so \
            ./etc/pinwheel/pinwheel.toml ./usr/lib/systemd/system/pinwheeld.service \
            ./usr/lib/sysusers.d/pinwheel.conf ./usr/lib/tmpfiles.d/pinwheel.conf \
            ./usr/share/man/man8/pinwheeld.8.gz ./usr/share/man/man1/pinwheelctl.1.gz \
            ./usr/share/man/man1/pinwheel-mobile.1.gz \
            ./usr/share/doc/pinwheel/README.md ./usr/share/doc/pinwheel/admin-guide.md \
            ./usr/share/doc/pinwheel/plugins.md \
            $(for f in etc/*.example.toml; do echo "./usr/share/doc/pinwheel/examples/${f#etc/}"; done); do
    grep -q " $path\$" <<<"$contents" || fail "dpkg-deb --contents lacks $path"
done
dpkg-deb --info "$deb" conffiles | grep -qx /etc/pinwheel/pinwheel.toml || fail "pinwheel.toml is not a conffile"
if git cat-file -e HEAD:etc/pinwheel.toml 2>/dev/null; then
    cmp -s <(dpkg-deb --fsys-tarfile "$deb" | tar -xOf - ./etc/pinwheel/pinwheel.toml) \
        <(git show HEAD:etc/pinwheel.toml) \
        || fail "the packaged pinwheel.toml is not the committed etc/pinwheel.toml (local edits must not be packaged)"
fi
zcat <(dpkg-deb --fsys-tarfile "$deb" | tar -xOf - ./usr/share/man/man1/pinwheelctl.1.gz) \
    | grep -q '^pinwheelctl \\- administer' || fail "the pinwheelctl man page does not describe pinwheelctl"
grep ' ./usr/lib/pinwheel/plugins/.*\.so$' <<<"$contents" | grep -v -- '^-rw-r--r-- root/root' \
    && fail "plugins must be root-owned and not writable by others"

step "installing it (dpkg -i)"
install_log=$(dpkg -i "$deb" 2>&1) || { echo "$install_log"; fail "dpkg -i failed"; }
echo "$install_log"
if [ ! -d /run/systemd/system ]; then
    grep -qF 'systemd is not running: start pinwheeld yourself: /usr/sbin/pinwheeld --config /etc/pinwheel/pinwheel.toml' \
        <<<"$install_log" || fail "without systemd, dpkg -i does not say how to start pinwheeld"
fi
getent passwd pinwheel >/dev/null || fail "the pinwheel user was not created"
[ "$(stat -c '%U %a' /var/lib/pinwheel)" = "pinwheel 700" ] || fail "/var/lib/pinwheel is $(stat -c '%U %a' /var/lib/pinwheel), not pinwheel 700"
[ "$(stat -c '%U:%G %a' /etc/pinwheel/pinwheel.toml)" = "root:pinwheel 640" ] || fail "/etc/pinwheel/pinwheel.toml is $(stat -c '%U:%G %a' /etc/pinwheel/pinwheel.toml)"
/usr/sbin/pinwheeld --version | grep -q '^pinwheeld ' || fail "pinwheeld --version"
/usr/bin/pinwheelctl --version | grep -q '^pinwheelctl ' || fail "pinwheelctl --version"
/usr/bin/pinwheel-mobile --version >/dev/null || fail "pinwheel-mobile --version"
if /usr/bin/pinwheelctl config check --help >/dev/null 2>&1; then
    /usr/bin/pinwheelctl config check /etc/pinwheel/pinwheel.toml || fail "pinwheelctl config check"
else
    echo "(pinwheelctl config check not there yet: using pinwheeld --check-config)"
fi
/usr/sbin/pinwheeld --config /etc/pinwheel/pinwheel.toml --check-config || fail "pinwheeld --check-config"

step "systemd-analyze verify on the installed unit"
verify=$(systemd-analyze verify /usr/lib/systemd/system/pinwheeld.service 2>&1) || fail "systemd-analyze verify: $verify"
if grep -i pinwheel <<<"$verify"; then fail "systemd-analyze verify complains about the unit"; fi
systemd-analyze security --offline=yes /usr/lib/systemd/system/pinwheeld.service 2>/dev/null | tail -n 1 || true

step "starting the packaged daemon by hand as root"
log=$(mktemp)
/usr/sbin/pinwheeld --config /etc/pinwheel/pinwheel.toml >"$log" 2>&1 &
daemon_pid=$!
for _ in $(seq 1 100); do
    grep -q 'serving' "$log" && break
    if ! kill -0 "$daemon_pid" 2>/dev/null; then
        cat "$log"
        grep -q 'in use' "$log" && fail "ports 1812, 1813 or 8080 are taken on this machine; the packaged config needs them"
        fail "the packaged daemon exited"
    fi
    sleep 0.1
done
grep -q 'serving' "$log" || { cat "$log"; fail "the packaged daemon did not start within 10 s"; }
uid=$(id -u pinwheel)
grep -Eq "^Uid:\s+$uid\s+$uid\s+$uid\s+$uid$" "/proc/$daemon_pid/status" \
    || { grep -E '^(Uid|Gid):' "/proc/$daemon_pid/status"; fail "the daemon did not drop to user pinwheel"; }
echo "running as: $(grep -E '^Uid:' "/proc/$daemon_pid/status" | tr -s '\t ' ' ')"
answer=$(echo 'Message-Authenticator = 0x00' | radclient -x -r 2 -t 3 127.0.0.1 status testing123 2>&1) \
    || { echo "$answer"; cat "$log"; fail "radclient Status-Server got no Access-Accept"; }
grep -q 'Received Access-Accept' <<<"$answer" || { echo "$answer"; fail "Status-Server: no Access-Accept"; }
echo "Status-Server: Access-Accept"
/usr/bin/pinwheelctl user add packaged --email packaged@example.org --pin 1234 >/dev/null \
    || fail "pinwheelctl user add against the packaged daemon"
kill -TERM "$daemon_pid"
wait "$daemon_pid" || { cat "$log"; fail "the daemon did not exit 0 on SIGTERM"; }
daemon_pid=""

step "upgrading (reinstalling the package): the database is kept"
echo '# local change' >> /etc/pinwheel/pinwheel.toml
dpkg -i "$deb" >/dev/null || fail "dpkg -i (upgrade) failed"
grep -q '^# local change' /etc/pinwheel/pinwheel.toml || fail "the conffile was overwritten on upgrade"
[ -s /var/lib/pinwheel/pinwheel.db ] || fail "the database is gone after the upgrade"
/usr/sbin/pinwheeld --config /etc/pinwheel/pinwheel.toml >"$log" 2>&1 &
daemon_pid=$!
for _ in $(seq 1 100); do grep -q 'serving' "$log" && break; sleep 0.1; done
/usr/bin/pinwheelctl user show packaged >/dev/null || { cat "$log"; fail "the user added before the upgrade is gone"; }
kill -TERM "$daemon_pid"; wait "$daemon_pid" || true
daemon_pid=""
rm -f "$log"

step "purging (dpkg --purge) with an admin's backup in /var/lib/pinwheel/backup"
install -d -o pinwheel -g pinwheel -m 0700 /var/lib/pinwheel/backup
admin_file_made=yes
echo "kept by the admin" > "$admin_file"
[ -s /var/lib/pinwheel/master.key ] || fail "no master key to see purged"
purge_log=$(dpkg --purge pinwheel 2>&1) || { echo "$purge_log"; fail "dpkg --purge failed"; }
echo "$purge_log"
grep -qx 'kept by the admin' "$admin_file" || fail "purge deleted the admin's $admin_file"
left=$(ls -A /var/lib/pinwheel)
[ "$left" = backup ] || fail "purge left in /var/lib/pinwheel: $(tr '\n' ' ' <<<"$left")(only backup/ may stay)"
grep -qF '/var/lib/pinwheel kept: it holds files the package did not create (backup/)' <<<"$purge_log" \
    || fail "purge does not say why it kept /var/lib/pinwheel"
rm -f "$admin_file"
rmdir /var/lib/pinwheel/backup
admin_file_made=""
rmdir /var/lib/pinwheel    # the folder the purge kept for the backup, empty now

step "installing and purging once more: nothing is left behind"
dpkg -i "$deb" >/dev/null || fail "dpkg -i (second install) failed"
purge_log=$(dpkg --purge pinwheel 2>&1) || { echo "$purge_log"; fail "dpkg --purge failed"; }
echo "$purge_log"
for path in /usr/sbin/pinwheeld /usr/bin/pinwheelctl /usr/bin/pinwheel-mobile /etc/pinwheel \
            /var/lib/pinwheel /run/pinwheel /usr/lib/pinwheel /usr/lib/systemd/system/pinwheeld.service; do
    [ -e "$path" ] && fail "$path is left after purge"
done
if [ "$user_before" = yes ]; then
    getent passwd pinwheel >/dev/null || fail "purge removed a pinwheel user the package did not create"
    grep -qF 'user pinwheel kept: the package did not create it' <<<"$purge_log" \
        || fail "purge does not say it kept the pinwheel user"
else
    getent passwd pinwheel >/dev/null && fail "the pinwheel user is left after purge"
    getent group pinwheel >/dev/null && fail "the pinwheel group is left after purge"
fi
echo "test-package: PASS ($(( $(date +%s) - start )) s in all)"
