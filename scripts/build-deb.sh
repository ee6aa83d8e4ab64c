#!/usr/bin/env bash
# Build the Debian package: target/debian/wayback_<version>_<arch>.deb with the binary, the systemd unit,
# the default config, bash/zsh/fish completions, the man page (generated from the clap definitions) and docs.
# Equivalent to what `cargo deb` would produce, without needing cargo-deb installed.
set -euo pipefail
cd "$(dirname "$0")/.."

# WAYBACK_BIN: package that binary instead (the upgrade tests package the previous release's);
# WAYBACK_DEB_DIR: where the package goes [default: target/debian].
if [ -n "${WAYBACK_BIN:-}" ]; then
    bin=$WAYBACK_BIN
else
    cargo build --release -p wayback
    bin=target/release/wayback
fi
version=$("$bin" --version | awk '{print $2}')
arch=$(dpkg --print-architecture)
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT

install -Dm755 "$bin" "$stage/usr/bin/wayback"
# The containers' init, a binary of its own since 0.3 (earlier releases ran `wayback __init`).
init="$(dirname "$bin")/wayback-init"
if [ -f "$init" ]; then install -Dm755 "$init" "$stage/usr/bin/wayback-init"; fi
install -Dm644 packaging/wayback.service "$stage/lib/systemd/system/wayback.service"
install -Dm644 packaging/wayback-verify.service "$stage/lib/systemd/system/wayback-verify.service"
install -Dm644 packaging/wayback-verify.timer "$stage/lib/systemd/system/wayback-verify.timer"
install -d "$stage/etc/wayback/verify.d"
install -Dm644 packaging/config.toml "$stage/etc/wayback/config.toml"
install -d "$stage/etc/wayback/profiles"
install -d "$stage/usr/share/man/man1"
"$bin" manpage | gzip -9n > "$stage/usr/share/man/man1/wayback.1.gz"
install -d "$stage/usr/share/bash-completion/completions" "$stage/usr/share/zsh/vendor-completions" "$stage/usr/share/fish/vendor_completions.d"
"$bin" completions bash > "$stage/usr/share/bash-completion/completions/wayback"
"$bin" completions zsh > "$stage/usr/share/zsh/vendor-completions/_wayback"
"$bin" completions fish > "$stage/usr/share/fish/vendor_completions.d/wayback.fish"
install -d "$stage/usr/share/doc/wayback"
cp README.md docs/*.md "$stage/usr/share/doc/wayback/"

install -d "$stage/DEBIAN"
size=$(du -sk "$stage" | cut -f1)
cat > "$stage/DEBIAN/control" <<CONTROL
Package: wayback
Version: $version
Architecture: $arch
Maintainer: wayback developers <wayback@example.invalid>
Installed-Size: $size
Depends: systemd-container, btrfs-progs, nftables, iproute2, libc6
Recommends: man-db
Section: admin
Priority: optional
Description: resurrect a btrfs snapshot as a live, isolated, temporary service
 wayback turns a read-only btrfs snapshot into a running, network-isolated copy of a
 service (PostgreSQL, nginx, a web app) on its own hostname, in one command, and
 removes every trace of it afterwards.
CONTROL
echo /etc/wayback/config.toml > "$stage/DEBIAN/conffiles"
# Upgrades never disturb instances: the old daemon keeps running while dpkg replaces the binary (its
# instances' containers are separate processes, KillMode=process, machined scopes), and is restarted under the
# new one afterwards, which adopts them. Removal stops the instances first, and says so.
cat > "$stage/DEBIAN/postinst" <<'POSTINST'
#!/bin/sh
set -e
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload >/dev/null 2>&1 || true
    if [ "$1" = configure ] && [ -n "$2" ]; then
        # An upgrade from $2: restart a running daemon under the new binary; it adopts the instances.
        systemctl try-restart wayback.service >/dev/null 2>&1 || true
    fi
fi
POSTINST
cat > "$stage/DEBIAN/prerm" <<'PRERM'
#!/bin/sh
set -e
case "$1" in
    remove)
        n=$(/usr/bin/wayback ls --json 2>/dev/null | grep -c '"name":' || true)
        if [ "$n" -gt 0 ]; then
            echo "wayback: removing the package stops its $n instance(s) and removes everything they made:"
            /usr/bin/wayback ls 2>/dev/null || true
            /usr/bin/wayback down --all || true
        fi
        if [ -d /run/systemd/system ]; then systemctl stop wayback.service >/dev/null 2>&1 || true; fi
        ;;
    upgrade|failed-upgrade|deconfigure) ;; # instances keep running; postinst restarts the daemon
esac
PRERM
cat > "$stage/DEBIAN/postrm" <<'POSTRM'
#!/bin/sh
set -e
if [ "$1" = purge ] && [ -d /var/lib/wayback ]; then
    echo "wayback: purging removes its state directory /var/lib/wayback (logs of failed starts, verify history)"
    rm -rf /var/lib/wayback
fi
if [ -d /run/systemd/system ]; then systemctl daemon-reload >/dev/null 2>&1 || true; fi
POSTRM
chmod 755 "$stage/DEBIAN/postinst" "$stage/DEBIAN/prerm" "$stage/DEBIAN/postrm"
debdir=${WAYBACK_DEB_DIR:-target/debian}
mkdir -p "$debdir"
out="$debdir/wayback_${version}_${arch}.deb"
dpkg-deb --root-owner-group --build "$stage" "$out" >/dev/null
echo "$out"
