#!/usr/bin/env bash
# See wayback work, on a fresh Debian 12 machine, as root:
#
#     sudo demo/demo.sh
#
# The story: a live PostgreSQL server keeps its data on btrfs, and backups are read-only btrfs snapshots.
# A user deletes an invoice. We resurrect last night's snapshot as a temporary, isolated PostgreSQL of its
# own (`wayback up`), read the deleted row from it on a published port while the live server keeps running
# unchanged, and throw the copy away (`wayback down`).
#
# Everything lives under /var/tmp/wayback-demo (a 2 GiB sparse loop-backed btrfs pool) and in a network
# namespace "wbdemo-live" (the "production" server, so it does not clash with anything on port 5432). The
# script installs packages, builds wayback (release), and removes everything it made when it ends, also on
# error or Ctrl-C. Running it again starts from scratch.
#
# Options (environment): WAYBACK_DEMO_SKIP_INSTALL=1 (packages already there), WAYBACK_DEMO_PORT=15432,
# WAYBACK=/path/to/wayback (skip the build).
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
WORK=/var/tmp/wayback-demo
IMG="$WORK/pool.img"
MNT="$WORK/pool"
NS=wbdemo-live
NAME=demo-invoices
PORT="${WAYBACK_DEMO_PORT:-15432}"
CFG="$WORK/config.toml"
CLUSTER=demo
UP_PID=""

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
die() { echo "demo: $*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "run as root (it mounts a btrfs pool and creates network namespaces and containers)"

# --- packages and build --------------------------------------------------------------------------------
# shellcheck source=../scripts/packages.sh
. "$ROOT/scripts/packages.sh"
if [ "${WAYBACK_DEMO_SKIP_INSTALL:-}" != 1 ]; then
    missing=()
    for p in "${WAYBACK_PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    if [ "${#missing[@]}" -gt 0 ]; then
        say "Installing ${missing[*]}"
        # Debian convention: no service starts on install while a policy-rc.d says 101.
        policy=""
        if [ ! -e /usr/sbin/policy-rc.d ]; then
            printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod 755 /usr/sbin/policy-rc.d; policy=1
        fi
        DEBIAN_FRONTEND=noninteractive apt-get update -q
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
        [ -z "$policy" ] || rm -f /usr/sbin/policy-rc.d
    fi
fi

if [ -z "${WAYBACK:-}" ]; then
    say "Building wayback (cargo build --release)"
    command -v cargo >/dev/null || PATH="${HOME:-/root}/.cargo/bin:$PATH"
    (cd "$ROOT" && cargo build --release -p wayback)
    WAYBACK="$ROOT/target/release/wayback"
fi
[ -x "$WAYBACK" ] || die "no wayback binary at $WAYBACK"

PGV="$(ls /usr/lib/postgresql | sort -n | tail -1)"
PGBIN="/usr/lib/postgresql/$PGV/bin"
[ -x "$PGBIN/postgres" ] || die "PostgreSQL binaries not found under /usr/lib/postgresql"
[ ! -e "/etc/postgresql/$PGV/$CLUSTER" ] || die "/etc/postgresql/$PGV/$CLUSTER exists; the demo cluster must use its own config"
DATA="$MNT/live/var/lib/postgresql/$PGV/$CLUSTER"

# --- cleanup: on every exit, and first of all (a previous run may have been killed) ---------------------
cleanup() {
    local opts=$-
    set +e
    if [ -n "$UP_PID" ] && kill -0 "$UP_PID" 2>/dev/null; then
        kill -TERM "$UP_PID"; wait "$UP_PID" 2>/dev/null
    fi
    if [ -f "$CFG" ]; then
        "$WAYBACK" --config "$CFG" down --all >/dev/null 2>&1
        "$WAYBACK" --config "$CFG" gc >/dev/null 2>&1
    fi
    if [ -f "$DATA/postmaster.pid" ]; then
        runuser -u postgres -- "$PGBIN/pg_ctl" -D "$DATA" -m fast -w stop >/dev/null 2>&1
    fi
    [ -e "/run/netns/$NS" ] && ip netns del "$NS"
    if mountpoint -q "$MNT" 2>/dev/null; then umount "$MNT" 2>/dev/null || umount -l "$MNT"; fi
    if [ -e "$IMG" ]; then
        for dev in $(losetup -j "$IMG" -O NAME --noheadings 2>/dev/null); do losetup -d "$dev"; done
    fi
    rm -rf "$WORK"
    case $opts in *e*) set -e ;; esac
}
cleanup
trap 'status=$?; trap - EXIT; cleanup; exit $status' EXIT
trap 'exit 130' INT TERM

if ss -ltnH "sport = :$PORT" 2>/dev/null | grep -q .; then
    die "port 127.0.0.1:$PORT is in use; set WAYBACK_DEMO_PORT to a free port"
fi

# --- the "production" setup ------------------------------------------------------------------------------
say "A 2 GiB btrfs pool on a loop file: $MNT"
mkdir -p "$WORK" "$MNT"
chmod 755 "$WORK"
truncate -s 2G "$IMG"
mkfs.btrfs -q "$IMG" >/dev/null 2>&1 || die "mkfs.btrfs $IMG failed"
LOOP="$(losetup --find --show "$IMG")"
mount "$LOOP" "$MNT"
btrfs subvolume create "$MNT/live" >/dev/null
mkdir -p "$MNT/live/var/lib/postgresql/$PGV" "$MNT/snapshots"
chown -R postgres:postgres "$MNT/live/var/lib/postgresql"

say "The live PostgreSQL $PGV server (cluster $CLUSTER, in network namespace $NS)"
runuser -u postgres -- "$PGBIN/initdb" -D "$DATA" -U postgres --auth=trust -E UTF8 --locale=C >/dev/null
printf "\nlisten_addresses = '127.0.0.1'\nport = 5432\n" >> "$DATA/postgresql.conf"
printf 'local all all trust\nhost all all 127.0.0.1/32 trust\n' > "$DATA/pg_hba.conf"
mkdir -p "$WORK/sock" "$WORK/pglog"; chown postgres:postgres "$WORK/sock" "$WORK/pglog"
ip netns add "$NS"
ip -n "$NS" link set lo up
ip netns exec "$NS" runuser -u postgres -- "$PGBIN/pg_ctl" -D "$DATA" -l "$WORK/pglog/live.log" \
    -o "-k $WORK/sock" -w -t 60 start >/dev/null

live_sql() { ip netns exec "$NS" "$PGBIN/psql" -X -q -h 127.0.0.1 -U postgres -d postgres -v ON_ERROR_STOP=1 "$@"; }
copy_sql() { "$PGBIN/psql" -X -q -h 127.0.0.1 -p "$PORT" -U postgres -d postgres -v ON_ERROR_STOP=1 "$@"; }

live_sql -c "CREATE TABLE invoices (id int PRIMARY KEY, customer text NOT NULL, amount numeric NOT NULL);
             INSERT INTO invoices VALUES (1, 'ada', 120.50), (2, 'grace', 99.00), (3, 'linus', 7.25);"
live_sql -c "TABLE invoices ORDER BY id"

SNAP="$MNT/snapshots/live.$(date +%Y%m%dT%H%M%S)"
say "Last night's backup: a read-only snapshot, taken while the server runs"
btrfs subvolume snapshot -r "$MNT/live" "$SNAP"
btrfs property get -ts "$SNAP" ro

say "The user deletes invoice 2 on the live server"
live_sql -c "DELETE FROM invoices WHERE id = 2"
live_sql -c "TABLE invoices ORDER BY id"

# --- wayback -------------------------------------------------------------------------------------------
cat > "$CFG" <<EOF
state_dir = "$WORK/state"
runtime_dir = "$WORK/run"
base_domain = "wayback.localhost"
default_ttl = "1h"
[proxy]
listen = "127.0.0.1:18480"
EOF

say "wayback up $SNAP --profile postgresql --publish 127.0.0.1:$PORT:5432"
"$WAYBACK" --config "$CFG" up "$SNAP" --name "$NAME" --profile postgresql \
    --publish "127.0.0.1:$PORT:5432" > "$WORK/up.out" 2> "$WORK/up.err" &
UP_PID=$!
for _ in $(seq 1 900); do
    grep -q '^ready ' "$WORK/up.out" && break
    kill -0 "$UP_PID" 2>/dev/null || { cat "$WORK/up.err" >&2; die "wayback up exited before it was ready"; }
    sleep 0.1
done
grep -q '^ready ' "$WORK/up.out" || { cat "$WORK/up.err" >&2; die "wayback up was not ready within 90 s"; }
cat "$WORK/up.err"
cat "$WORK/up.out"
"$WAYBACK" --config "$CFG" ls

say "Before/after"
echo "--- the resurrected copy (snapshot), 127.0.0.1:$PORT:"
copy_sql -c "TABLE invoices ORDER BY id"
echo "--- the live server:"
live_sql -c "TABLE invoices ORDER BY id"
old="$(copy_sql -At -c "SELECT customer || ' ' || amount FROM invoices WHERE id = 2")"
now="$(live_sql -At -c "SELECT count(*) FROM invoices WHERE id = 2")"
echo "invoice 2 in the snapshot copy: ${old:-MISSING}; on the live server: $now row(s)"
[ "$old" = "grace 99.00" ] && [ "$now" = 0 ] || die "unexpected result"

say "wayback down $NAME"
"$WAYBACK" --config "$CFG" down "$NAME"
if wait "$UP_PID"; then UP_PID=""; else rc=$?; UP_PID=""; die "wayback up exited $rc after down"; fi
echo "clones left: $(ls -A "$MNT/.wayback" 2>/dev/null | wc -l); netns wb-$NAME: $([ -e /run/netns/wb-$NAME ] && echo present || echo gone)"
echo "snapshot still read-only: $(btrfs property get -ts "$SNAP" ro)"

say "Done: removing the demo pool"
