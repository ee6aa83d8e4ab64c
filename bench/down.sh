#!/usr/bin/env bash
# Benchmark: where `wayback down` spends its time, per undo step.
#
#     sudo bench/down.sh              # N=9 repetitions; BENCH_N=15 for more
#
# Each repetition starts `wayback up SNAP --profile nginx-static` in the foreground, waits for its first
# HTTP 200 through the proxy, then times `wayback down NAME` until it returns and the foreground `up` has
# exited (the command to zero residue: `up` removes the instance directory last). The `up` process notes
# every undo step with its duration ("removed ... (N ms)", see teardown.rs); the table gives the median of
# each step and of the whole `down`. Residue (netns, veth, nft chain, clone, processes) is checked after
# every repetition. Everything lives under /var/tmp/wbtf-down and is removed at the end (also on error).
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
N="${BENCH_N:-9}"
WORK=/var/tmp/wbtf-down
IMG="$WORK/pool.img"
MNT="$WORK/pool"
CFG="$WORK/config.toml"
PORT="${BENCH_PROXY_PORT:-18482}"
UP_PID=""

# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"
need_root
wayback_binary

cleanup() {
    set +e
    if [ -n "$UP_PID" ] && kill -0 "$UP_PID" 2>/dev/null; then kill -TERM "$UP_PID"; wait "$UP_PID" 2>/dev/null; fi
    instances_remove
    pool_remove
    rm -rf "$WORK"
}
cleanup
trap 'status=$?; trap - EXIT; cleanup; exit $status' EXIT
trap 'exit 130' INT TERM

mkdir -p "$WORK"
pool_create 1G
btrfs subvolume create "$MNT/live" >/dev/null
mkdir -p "$MNT/live/var/www/html" "$MNT/snaps"
echo "<h1>wbtf down bench</h1>" > "$MNT/live/var/www/html/index.html"
btrfs subvolume snapshot -r "$MNT/live" "$MNT/snaps/s1" >/dev/null
cat > "$CFG" <<EOF
state_dir = "$WORK/state"
runtime_dir = "$WORK/run"
base_domain = "bench.test"
default_ttl = "1h"
address_pool = "10.213.244.0/24"
[proxy]
listen = "127.0.0.1:$PORT"
EOF

residue() {
    local name=$1 r=""
    [ -e "/run/netns/wb-$name" ] && r+=" netns"
    ip link show "wb-$name" >/dev/null 2>&1 && r+=" veth"
    nft list chain inet wayback-quarantine "wb-$name" >/dev/null 2>&1 && r+=" nft-chain"
    nft list chain inet wayback "wb-$name" >/dev/null 2>&1 && r+=" nft-chain(old)"
    [ -e "$MNT/.wayback/$name" ] && r+=" clone"
    pgrep -f -- "--machine=wb-$name" >/dev/null && r+=" nspawn"
    [ -e "$WORK/state/instances/$name" ] && r+=" instance-dir"
    echo "$r"
}

declare -A STEPS
downs=()
for i in $(seq 0 "$N"); do
    name="wbtfd$i"; host="$name.bench.test"
    "$WAYBACK" --config "$CFG" up "$MNT/snaps/s1" --name "$name" --profile nginx-static --host "$host" --ttl 10m \
        > "$WORK/up.out" 2> "$WORK/up.err" &
    UP_PID=$!
    t0=$(now_ns)
    until [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 -H "Host: $host" "http://127.0.0.1:$PORT/" || true)" = 200 ]; do
        kill -0 "$UP_PID" 2>/dev/null || { cat "$WORK/up.err" >&2; die "up $name exited before serving"; }
        [ $(( $(now_ns) - t0 )) -lt 60000000000 ] || die "no HTTP 200 within 60 s"
        sleep 0.02
    done
    t2=$(now_ns)
    "$WAYBACK" -q --config "$CFG" down "$name" || die "down $name failed"
    wait "$UP_PID" || die "up exited non-zero after down"
    t3=$(now_ns)
    UP_PID=""
    r=$(residue "$name"); [ -z "$r" ] || die "residue after down $name:$r"
    [ "$i" -eq 0 ] && continue   # warm-up
    d=$(( (t3 - t2) / 1000 ))
    downs+=("$d")
    log "run $i: down $(awk -v u="$d" 'BEGIN {printf "%.1f", u/1000}') ms"
    # "wayback: removed <what> (<N> ms)": <what> reduced to its kind (first word).
    while IFS=$'\t' read -r kind ms; do STEPS[$kind]+="$ms "; done < <(
        sed -n 's/^wayback: removed \([^ ]*\).* (\([0-9]*\) ms)$/\1\t\2/p' "$WORK/up.err")
done

echo
echo "wayback down, median of $N runs ($(date -u +%Y-%m-%d), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg))"
echo
echo "| step | median (ms) |"
echo "|---|---:|"
for k in $(printf '%s\n' "${!STEPS[@]}" | sort); do
    echo "| $k | $(printf '%s\n' ${STEPS[$k]} | median) |"
done
echo "| **down, command to zero residue** | **$(printf '%s\n' "${downs[@]}" | median | awk '{printf "%.1f", $1/1000}')** |"
