#!/usr/bin/env bash
# tools/build-deb.sh - build the Debian package of Pinwheel with dpkg-deb.
#
# Builds the workspace in release mode (cargo build --release --workspace
# --locked), lays the files out under target/deb/root and packs them with
# dpkg-deb (always present on Debian) into target/deb/pinwheel_VERSION_ARCH.deb,
# whose path it prints last. The package holds:
#   /usr/sbin/pinwheeld, /usr/bin/pinwheelctl, /usr/bin/pinwheel-mobile
#   /usr/lib/pinwheel/plugins/libpinwheel_{transport_smtp,transport_http,directory_ldap}.so
#     (the spool transport is built into the daemon)
#   /etc/pinwheel/pinwheel.toml (a conffile: kept on upgrade; in a git checkout
#     the committed version, `git show HEAD:etc/pinwheel.toml`, so local edits
#     such as secrets never end up in the package; a note says when they differ)
#   /usr/lib/systemd/system/pinwheeld.service, /usr/lib/sysusers.d/pinwheel.conf,
#   /usr/lib/tmpfiles.d/pinwheel.conf, /usr/share/doc/pinwheel/ (README.md,
#     admin-guide.md, plugins.md, ARCHITECTURE.md; examples/ with the
#     etc/*.example.toml plugin configs and the socket-activation unit),
#   /usr/share/man/man8/pinwheeld.8.gz, /usr/share/man/man1/pinwheelctl.1.gz,
#   /usr/share/man/man1/pinwheel-mobile.1.gz (generated from --help)
# and packaging/debian/{conffiles,postinst,prerm,postrm}.
# Needs: cargo, dpkg-deb, gzip; git in a checkout; strip (binutils) if present.
# Set SKIP_CARGO_BUILD=1 to pack an existing release build.
set -euo pipefail
cd "$(dirname "$0")/.."

version=$(sed -n '/^\[workspace.package\]/,/^\[/ s/^version = "\(.*\)"/\1/p' Cargo.toml)
arch=$(dpkg --print-architecture)
[ -n "$version" ] || { echo "build-deb: no [workspace.package] version in Cargo.toml" >&2; exit 1; }

if [ "${SKIP_CARGO_BUILD:-0}" != 1 ]; then
    cargo build --release --workspace --locked
fi
rel=target/release
for f in pinwheeld pinwheelctl pinwheel-mobile libpinwheel_transport_smtp.so \
         libpinwheel_transport_http.so libpinwheel_directory_ldap.so; do
    [ -f "$rel/$f" ] || { echo "build-deb: $rel/$f missing after the release build" >&2; exit 1; }
done

out=target/deb
root=$out/root
rm -rf "$root"
mkdir -p "$root/DEBIAN"
install -D -m 0755 "$rel/pinwheeld" "$root/usr/sbin/pinwheeld"
install -D -m 0755 "$rel/pinwheelctl" "$root/usr/bin/pinwheelctl"
install -D -m 0755 "$rel/pinwheel-mobile" "$root/usr/bin/pinwheel-mobile"
for p in transport_smtp transport_http directory_ldap; do
    # Root-owned, not writable by others: the plugin host refuses anything else.
    install -D -m 0644 "$rel/libpinwheel_$p.so" "$root/usr/lib/pinwheel/plugins/libpinwheel_$p.so"
done
# Debian ships binaries stripped (the release profile keeps line tables).
if command -v strip >/dev/null; then
    strip --strip-unneeded --remove-section=.comment "$root/usr/sbin/pinwheeld" \
        "$root/usr/bin/pinwheelctl" "$root/usr/bin/pinwheel-mobile" "$root"/usr/lib/pinwheel/plugins/*.so
fi
# The conffile: the committed etc/pinwheel.toml, never the working copy the
# README walkthrough has you edit (agent secret, SMTP host ...).
install -d -m 0755 "$root/etc/pinwheel"
if git rev-parse --is-inside-work-tree >/dev/null 2>&1 \
        && git cat-file -e HEAD:etc/pinwheel.toml 2>/dev/null; then
    git show HEAD:etc/pinwheel.toml > "$root/etc/pinwheel/pinwheel.toml"
    if ! cmp -s etc/pinwheel.toml "$root/etc/pinwheel/pinwheel.toml"; then
        echo "build-deb: note: etc/pinwheel.toml differs from the committed version;" \
             "the package ships the committed one (git show HEAD:etc/pinwheel.toml), not your local edits" >&2
    fi
else
    echo "build-deb: warning: not a git checkout (or etc/pinwheel.toml is not committed):" \
         "packaging etc/pinwheel.toml as it is; make sure it holds no local secrets or hosts" >&2
    cat etc/pinwheel.toml > "$root/etc/pinwheel/pinwheel.toml"
fi
chmod 0640 "$root/etc/pinwheel/pinwheel.toml"
install -D -m 0644 systemd/pinwheeld.service "$root/usr/lib/systemd/system/pinwheeld.service"
install -D -m 0644 systemd/pinwheel.sysusers.conf "$root/usr/lib/sysusers.d/pinwheel.conf"
install -D -m 0644 systemd/pinwheel.tmpfiles.conf "$root/usr/lib/tmpfiles.d/pinwheel.conf"
install -D -m 0644 systemd/pinwheeld.socket "$root/usr/share/doc/pinwheel/examples/pinwheeld.socket"
for f in README.md docs/admin-guide.md docs/plugins.md docs/ARCHITECTURE.md; do
    install -D -m 0644 "$f" "$root/usr/share/doc/pinwheel/$(basename "$f")"
done
# The plugin config examples etc/pinwheel.toml points at.
for f in etc/*.example.toml; do
    install -D -m 0644 "$f" "$root/usr/share/doc/pinwheel/examples/$(basename "$f")"
done
printf 'Pinwheel\nLicense: Apache-2.0\nOn Debian systems the license text is in /usr/share/common-licenses/Apache-2.0.\n' \
    > "$root/usr/share/doc/pinwheel/copyright"

# Man pages from the binaries' own --help, so the two always match.
manpage() { # NAME SECTION BINARY "ONE-LINE DESCRIPTION" "FILES" (FILES may be empty)
    local name=$1 section=$2 bin=$3 what=$4 files=$5
    {
        printf '.TH %s %s "" "pinwheel %s" "Pinwheel"\n' "${name^^}" "$section" "$version"
        printf '.SH NAME\n%s \\- %s\n' "$name" "$what"
        printf '.SH DESCRIPTION\n.nf\n'
        "$bin" --help | sed -e 's/\\/\\\\/g' -e 's/^\./\\\&./'
        printf '.fi\n'
        if [ -n "$files" ]; then printf '.SH FILES\n%s\n' "$files"; fi
        printf '.SH SEE ALSO\npinwheeld(8), pinwheelctl(1), pinwheel-mobile(1),\n'
        printf '/usr/share/doc/pinwheel/README.md, /usr/share/doc/pinwheel/admin-guide.md\n'
    } | gzip -9n > "$root/usr/share/man/man$section/$name.$section.gz"
}
mkdir -p "$root/usr/share/man/man8" "$root/usr/share/man/man1"
daemon_files="/etc/pinwheel/pinwheel.toml, /var/lib/pinwheel, /run/pinwheel/admin.sock"
manpage pinwheeld 8 "$rel/pinwheeld" \
    "Pinwheel two-factor authentication daemon (RADIUS, provisioning API, web pages, plugins)" "$daemon_files"
manpage pinwheelctl 1 "$rel/pinwheelctl" \
    "administer a running Pinwheel daemon over its admin socket (users, provision codes, tokens, RADIUS clients, audit, backup)" "$daemon_files"
manpage pinwheel-mobile 1 "$rel/pinwheel-mobile" \
    "$(sed -n 's/^description = "\(.*\)"/\1/p' tools/mobile/Cargo.toml | head -n 1)" \
    '$HOME/.local/state/pinwheel-mobile/state.json ($XDG_STATE_HOME/pinwheel-mobile/state.json when set; --state FILE or $PINWHEEL_MOBILE_STATE for another)'

for f in conffiles postinst prerm postrm; do
    install -m "$([ "$f" = conffiles ] && echo 0644 || echo 0755)" "packaging/debian/$f" "$root/DEBIAN/$f"
done
size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
sed -e "s/@VERSION@/$version/" -e "s/@ARCH@/$arch/" -e "s/@SIZE@/$size/" \
    packaging/debian/control.in > "$root/DEBIAN/control"

deb="$out/pinwheel_${version}_${arch}.deb"
dpkg-deb --root-owner-group --build "$root" "$deb" >/dev/null
echo "$deb"
