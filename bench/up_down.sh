#!/usr/bin/env bash
# Benchmark: what wayback adds to a service's own start, and whether it depends on the snapshot's size.
#
#     sudo bench/up_down.sh            # N=5 repetitions; BENCH_N=9 for more
#
# For a 100 MiB and a 5 GiB source subvolume (real random data in 64 MiB files, plus a web root), each
# repetition measures:
#   up     time from starting `wayback up SNAP --profile nginx-static --host H` to the first HTTP 200 through
#          wayback's proxy (polled with curl, Host: H);
#   nginx  the service's own start: the same command the profile runs (`/usr/sbin/nginx -g 'daemon off;'`, the
#          host's /etc/nginx config) on the same state (a writable snapshot of the same source bound at
#          /var/www), in a fresh network namespace with private tmpfs /run, /var/log/nginx and /var/lib/nginx,
#          from launch to its first HTTP 200 (polled with curl inside that namespace);
#   down   `wayback down NAME` until it returns (and the foreground `up` has exited).
# overhead = median(up) - median(nginx). The ratio overhead(5 GiB) / overhead(100 MiB) should be ~1: a btrfs
# snapshot is O(1) in the data size.
#
# Output: a markdown table on stdout (progress on stderr). Everything lives under /var/tmp/wayback-bench and
# is removed at the end (also on error). Needs root, curl, btrfs-progs, systemd-container, nginx.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
N="${BENCH_N:-5}"
WORK=/var/tmp/wayback-bench
IMG="$WORK/pool.img"
MNT="$WORK/pool"
CFG="$WORK/config.toml"
PORT="${BENCH_PROXY_PORT:-18481}"
NS=wbbench-nginx
UP_PID=""
NGINX_PID=""
# BENCH_SIZES overrides the sources (LABEL:MIB ...), e.g. for a quick check: BENCH_SIZES="1MiB:1 2MiB:2".
SIZES=(${BENCH_SIZES:-100MiB:100 5GiB:5120})
POOL_MIB=3072
for spec in "${SIZES[@]}"; do POOL_MIB=$(( POOL_MIB + ${spec##*:} )); done

# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"
need_root curl btrfs mkfs.btrfs losetup systemd-nspawn nginx ip unshare
wayback_binary

cleanup() {
    local opts=$-
    set +e
    if [ -n "$UP_PID" ] && kill -0 "$UP_PID" 2>/dev/null; then kill -TERM "$UP_PID"; wait "$UP_PID" 2>/dev/null; fi
    if [ -n "$NGINX_PID" ] && kill -0 "$NGINX_PID" 2>/dev/null; then kill -QUIT "$NGINX_PID"; wait "$NGINX_PID" 2>/dev/null; fi
    instances_remove
    [ -e "/run/netns/$NS" ] && ip netns del "$NS"
    if [ -d "$MNT" ]; then
        for c in "$MNT"/baseline-*; do [ -e "$c" ] && btrfs subvolume delete "$c" >/dev/null; done
    fi
    pool_remove
    rm -rf "$WORK"
    case $opts in *e*) set -e ;; esac
}
cleanup
trap 'status=$?; trap - EXIT; cleanup; exit $status' EXIT
trap 'exit 130' INT TERM

# --- the pool and the two sources ------------------------------------------------------------------------
mkdir -p "$WORK"
pool_create "${POOL_MIB}M"
cat > "$CFG" <<EOF
state_dir = "$WORK/state"
runtime_dir = "$WORK/run"
base_domain = "bench.test"
default_ttl = "1h"
[proxy]
listen = "127.0.0.1:$PORT"
EOF

# make_source NAME MIB: a subvolume with a web root and MIB MiB of random data, and a read-only snapshot.
make_source() {
    local name=$1 mib=$2 src="$MNT/$1" left chunk i=0
    btrfs subvolume create "$src" >/dev/null
    mkdir -p "$src/var/www/html" "$src/srv/data"
    echo "<h1>wayback bench $name</h1>" > "$src/var/www/html/index.html"
    left=$mib
    while [ "$left" -gt 0 ]; do
        chunk=$(( left < 64 ? left : 64 ))
        head -c "$(( chunk * 1024 * 1024 ))" /dev/urandom > "$src/srv/data/blob.$i"
        left=$(( left - chunk )); i=$(( i + 1 ))
    done
    btrfs filesystem sync "$MNT"
    mkdir -p "$MNT/snaps"
    btrfs subvolume snapshot -r "$src" "$MNT/snaps/$name" >/dev/null
}

ms() { awk -v ns="$1" 'BEGIN {printf "%.1f", ns/1e6}'; }

# time_up SNAP NAME: sets R_UP and R_DOWN (ns). Runs in the main shell, so cleanup knows UP_PID. Returns 1
# (after showing why) if `up` exits without ever serving; the caller counts and retries that.
time_up() {
    local snap=$1 name=$2 host="$2.bench.test" t0 t1 t2 t3 code
    t0=$(now_ns)
    "$WAYBACK" --config "$CFG" up "$snap" --name "$name" --profile nginx-static --host "$host" --ttl 10m \
        > "$WORK/up.out" 2> "$WORK/up.err" &
    UP_PID=$!
    while :; do
        code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 -H "Host: $host" "http://127.0.0.1:$PORT/" || true)
        [ "$code" = 200 ] && break
        if ! kill -0 "$UP_PID" 2>/dev/null; then
            wait "$UP_PID" || true; UP_PID=""
            log "wayback up $name exited before serving:"; sed 's/^/    /' "$WORK/up.err" >&2
            return 1
        fi
        if [ $(( $(now_ns) - t0 )) -gt 120000000000 ]; then cat "$WORK/up.err" >&2; die "no HTTP 200 within 120 s"; fi
    done
    t1=$(now_ns)
    t2=$(now_ns)
    "$WAYBACK" --config "$CFG" down "$name" > /dev/null 2>> "$WORK/down.err" || die "wayback down $name failed"
    wait "$UP_PID" || die "wayback up exited non-zero after down"
    UP_PID=""
    t3=$(now_ns)
    R_UP=$(( t1 - t0 )); R_DOWN=$(( t3 - t2 ))
}

# time_nginx SNAP: the service alone on the same state; sets R_NGX (ns).
time_nginx() {
    local snap=$1 clone="$MNT/baseline-$$" t0 t1 code
    btrfs subvolume snapshot "$snap" "$clone" >/dev/null
    ip netns add "$NS"
    ip -n "$NS" link set lo up
    t0=$(now_ns)
    ip netns exec "$NS" unshare -m --propagation private sh -c '
        mount -t tmpfs tmpfs /run && mkdir -p /var/log/nginx /var/lib/nginx &&
        mount -t tmpfs tmpfs /var/log/nginx && mount -t tmpfs tmpfs /var/lib/nginx &&
        mount --bind "$1/var/www" /var/www && exec /usr/sbin/nginx -g "daemon off;"' sh "$clone" \
        > /dev/null 2> "$WORK/nginx.err" &
    NGINX_PID=$!
    while :; do
        code=$(ip netns exec "$NS" curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://127.0.0.1/" || true)
        [ "$code" = 200 ] && break
        if ! kill -0 "$NGINX_PID" 2>/dev/null; then cat "$WORK/nginx.err" >&2; die "baseline nginx exited"; fi
        if [ $(( $(now_ns) - t0 )) -gt 60000000000 ]; then die "baseline nginx: no HTTP 200 within 60 s"; fi
    done
    t1=$(now_ns)
    kill -QUIT "$NGINX_PID"; wait "$NGINX_PID" || true
    NGINX_PID=""
    ip netns del "$NS"
    btrfs subvolume delete "$clone" >/dev/null
    R_NGX=$(( t1 - t0 ))
}

# A failed start is reported, counted and retried (at most 3 times per repetition): the numbers are of
# successful starts, and the failure count goes into the results.
FAILED_UPS=0
up_retry() {
    local tries=0
    until time_up "$1" "$2"; do
        FAILED_UPS=$(( FAILED_UPS + 1 )); tries=$(( tries + 1 ))
        [ "$tries" -lt 3 ] || die "wayback up $2 failed 3 times in a row"
    done
}

declare -A UP DOWN NGX OVER
LABELS=()
for spec in "${SIZES[@]}"; do
    label=${spec%%:*}; mib=${spec##*:}; LABELS+=("$label")
    log "creating the $label source ($mib MiB of random data)"
    make_source "src-$label" "$mib"
    snap="$MNT/snaps/src-$label"
    ups=(); downs=(); ngxs=()
    # One warm-up of each (page cache, binaries), not counted.
    up_retry "$snap" "bench-warm"
    time_nginx "$snap"
    for i in $(seq 1 "$N"); do
        up_retry "$snap" "bench-$i"; u=$R_UP; d=$R_DOWN
        time_nginx "$snap"; g=$R_NGX
        log "$label run $i: up->200 $(ms "$u") ms, nginx alone $(ms "$g") ms, down $(ms "$d") ms"
        ups+=("$u"); downs+=("$d"); ngxs+=("$g")
    done
    UP[$label]=$(printf '%s\n' "${ups[@]}" | median)
    DOWN[$label]=$(printf '%s\n' "${downs[@]}" | median)
    NGX[$label]=$(printf '%s\n' "${ngxs[@]}" | median)
    OVER[$label]=$(awk -v a="${UP[$label]}" -v b="${NGX[$label]}" 'BEGIN {print a - b}')
done

first=${LABELS[0]}; last=${LABELS[${#LABELS[@]}-1]}
ratio=$(awk -v a="${OVER[$last]}" -v b="${OVER[$first]}" 'BEGIN {if (b > 0) printf "%.2f", a / b; else print "n/a"}')
cpu=$(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)
echo
echo "wayback up/down, median of $N runs ($(date -u +%Y-%m-%d), kernel $(uname -r), $(nproc) x ${cpu:-cpu}, btrfs on a loop file)"
echo
echo "| source | up → first proxied 200 | nginx alone → first 200 | wayback overhead | down |"
echo "|---|---:|---:|---:|---:|"
for label in "${LABELS[@]}"; do
    echo "| ${label%?iB} ${label: -3} | $(ms "${UP[$label]}") ms | $(ms "${NGX[$label]}") ms | $(ms "${OVER[$label]}") ms | $(ms "${DOWN[$label]}") ms |"
done
echo
echo "Overhead ratio ${last%?iB} ${last: -3} / ${first%?iB} ${first: -3}: $ratio"
echo "Failed starts (retried, not in the medians): $FAILED_UPS"
