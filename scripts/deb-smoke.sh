#!/usr/bin/env bash
# Install the Debian package built by scripts/build-deb.sh, check the man page and completions are there,
# and smoke-test the installed daemon: `wayback serve` from /usr/bin, an instance handed to it with
# `up --detach` from a snapshot on a small loop-backed btrfs pool, `ls`, `down --all`. Purges the package and
# removes everything it made on exit. Root only.
set -euo pipefail
cd "$(dirname "$0")/.."

deb=$(ls -t target/debian/wayback_*.deb 2>/dev/null | head -1)
[ -n "$deb" ] || { echo "deb-smoke: no package; run scripts/build-deb.sh first" >&2; exit 1; }
work=$(mktemp -d /tmp/wbtdeb.XXXXXX)
daemon=""
loopdev=""
cleanup() {
    set +e
    [ -n "$daemon" ] && kill -TERM "$daemon" 2>/dev/null && wait "$daemon" 2>/dev/null
    if [ -x /usr/bin/wayback ] && [ -f "$work/config.toml" ]; then
        /usr/bin/wayback -q --config "$work/config.toml" down --all >/dev/null 2>&1
        /usr/bin/wayback -q --config "$work/config.toml" gc >/dev/null 2>&1
    fi
    mountpoint -q "$work/mnt" && umount "$work/mnt"
    [ -n "$loopdev" ] && losetup -d "$loopdev" 2>/dev/null
    dpkg -P wayback >/dev/null 2>&1
    rm -rf "$work"
}
trap cleanup EXIT

dpkg -i "$deb" >/dev/null
test -x /usr/bin/wayback
test -x /usr/bin/wayback-init
test -f /lib/systemd/system/wayback.service
test -d /etc/wayback/verify.d
# The verify units as installed (with their man page present): systemd-analyze runs without systemd as PID 1.
systemd-analyze verify /lib/systemd/system/wayback-verify.service /lib/systemd/system/wayback-verify.timer
test -f /etc/wayback/config.toml
test -f /usr/share/bash-completion/completions/wayback
test -f /usr/share/zsh/vendor-completions/_wayback
test -f /usr/share/fish/vendor_completions.d/wayback.fish
man -P cat wayback 2>/dev/null | grep -q "wayback - Resurrect a btrfs snapshot" \
    || man -P cat wayback 2>/dev/null | grep -qi "resurrect" || { echo "deb-smoke: man wayback shows no page" >&2; exit 1; }
echo "deb-smoke: installed $(/usr/bin/wayback --version); man page and completions present"

# A small btrfs pool with a snapshot.
truncate -s 512M "$work/wbtdeb.img"
mkfs.btrfs -q "$work/wbtdeb.img" >/dev/null 2>&1
loopdev=$(losetup --find --show "$work/wbtdeb.img")
mkdir "$work/mnt"
mount "$loopdev" "$work/mnt"
btrfs -q subvolume create "$work/mnt/live"
mkdir -p "$work/mnt/live/srv/data" "$work/mnt/snaps"
echo "old" > "$work/mnt/live/srv/data/file"
btrfs -q subvolume snapshot -r "$work/mnt/live" "$work/mnt/snaps/s1"

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat > "$work/config.toml" <<CONFIG
state_dir = "$work/state"
runtime_dir = "$work/run"
base_domain = "wbt.test"
address_pool = "10.213.251.0/24"
[proxy]
listen = "127.0.0.1:$port"
CONFIG
/usr/bin/wayback --config "$work/config.toml" serve 2>"$work/serve.log" &
daemon=$!
for _ in $(seq 100); do [ -S "$work/run/wayback.sock" ] && break; sleep 0.1; done
[ -S "$work/run/wayback.sock" ] || { cat "$work/serve.log"; echo "deb-smoke: daemon did not start" >&2; exit 1; }
/usr/bin/wayback -q --config "$work/config.toml" up "$work/mnt/snaps/s1" --name wbtdeb --bind /srv/data \
    --exec 'exec sleep 1000' --detach
/usr/bin/wayback --config "$work/config.toml" ls | grep -q "wbtdeb *running" \
    || { /usr/bin/wayback --config "$work/config.toml" ls; echo "deb-smoke: instance not running" >&2; exit 1; }
/usr/bin/wayback -q --config "$work/config.toml" down --all
[ -z "$(ls "$work/state/instances")" ] || { echo "deb-smoke: instance left behind" >&2; exit 1; }
echo "deb-smoke: installed daemon served an instance and removed it"

# Upgrade from the previous release (scripts/prev-release.sh builds it): its daemon hosts an instance, the
# new package is installed over it, the daemon is restarted under the new binary (what the postinst does
# with systemd), and the instance is still there, adopted, extended and removed by the new release.
prev=$(ls -t target/prev-release/wayback_0.1.0_*.deb 2>/dev/null | head -1)
if [ -z "$prev" ]; then
    if [ "${CI:-}" = true ]; then echo "deb-smoke: no previous release package (scripts/prev-release.sh)" >&2; exit 1; fi
    echo "deb-smoke: SKIP upgrade: no previous release package (run scripts/prev-release.sh)"
    exit 0
fi
kill -TERM "$daemon"; wait "$daemon" || true; daemon=""
rm -f "$work/run/wayback.sock"
dpkg -P wayback >/dev/null
dpkg -i "$prev" >/dev/null
echo "deb-smoke: installed the previous release $(/usr/bin/wayback --version)"
/usr/bin/wayback --config "$work/config.toml" serve 2>"$work/serve-old.log" &
daemon=$!
for _ in $(seq 100); do [ -S "$work/run/wayback.sock" ] && break; sleep 0.1; done
/usr/bin/wayback -q --config "$work/config.toml" up "$work/mnt/snaps/s1" --name wbtdebold --bind /srv/data \
    --exec 'exec sleep 1000' --detach
dpkg -i "$deb" >/dev/null
echo "deb-smoke: upgraded to $(/usr/bin/wayback --version) under a running instance"
kill -TERM "$daemon"; wait "$daemon" || true
pgrep -f -- "--machine=wb-wbtdebold" >/dev/null || { echo "deb-smoke: the daemon's stop took the instance with it" >&2; exit 1; }
rm -f "$work/run/wayback.sock"
/usr/bin/wayback --config "$work/config.toml" serve 2>"$work/serve-new.log" &
daemon=$!
for _ in $(seq 100); do [ -S "$work/run/wayback.sock" ] && break; sleep 0.1; done
grep -q "adopted wbtdebold" "$work/serve-new.log" \
    || { cat "$work/serve-new.log"; echo "deb-smoke: the new daemon did not adopt the old instance" >&2; exit 1; }
/usr/bin/wayback --config "$work/config.toml" ls | grep -q "wbtdebold *running" \
    || { /usr/bin/wayback --config "$work/config.toml" ls; echo "deb-smoke: old instance not running" >&2; exit 1; }
/usr/bin/wayback -q --config "$work/config.toml" extend wbtdebold 2h >/dev/null
/usr/bin/wayback -q --config "$work/config.toml" down wbtdebold
[ -z "$(ls "$work/state/instances")" ] || { echo "deb-smoke: old instance left behind" >&2; exit 1; }
ip link show | grep -q "wb-wbtdebold" && { echo "deb-smoke: veth left behind" >&2; exit 1; }
echo "deb-smoke: the new release adopted, extended and removed the previous release's instance"
