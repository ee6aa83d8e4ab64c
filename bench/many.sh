#!/usr/bin/env bash
# Benchmark: many instances at once, handed to the daemon (`wayback serve`), which also runs the proxy.
#
#     sudo bench/many.sh                       # levels 1 50 100 200
#     BENCH_LEVELS="1 10" sudo bench/many.sh   # a quick check
#
# Every instance is a small HTTP service (`busybox httpd` on a one-line page, so each has a proxy route)
# started with `up --detach`. The service's own memory is not counted: everything measured is wayback's
# cost. One more instance, `wbtfroute` (the `nginx-static` profile: keep-alive, so the proxy's own cost
# shows), is started first and not counted; it is what the routing measurement asks for. When the number
# running reaches each level, the bench reports:
#   up (ms)       mean wall time of the `up --detach` calls that brought it there (until the instance
#                 answers through its namespace and the command returns);
#   probe up/down one more instance started and removed at that level (`up --detach`, then `down`);
#   memory        the daemon's anonymous memory growth per instance (over the daemon with only `wbtfroute`),
#                 plus the mean PSS of an instance's systemd-nspawn process and of wayback's init in the
#                 container (PSS: pages shared between instances are split between them);
#   daemon fds    open file descriptors of the daemon (the per-process limit here is 20,000);
#   route req/s   wrk through the daemon's proxy to `wbtfroute`, 16 connections, BENCH_WRK_SECONDS (3) s:
#                 the proxy's routing with that many routes + 1 (median of 3; the line "0" is 1 route).
# Finally `down --all`. Root only; everything under a temp dir, removed at exit (also on error).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"
LEVELS=(${BENCH_LEVELS:-1 50 100 200})
WRK_S="${BENCH_WRK_SECONDS:-3}"
need_root btrfs systemd-nspawn wrk busybox python3
wayback_binary
W="$WAYBACK"
work=$(mktemp -d /tmp/wbtfm.XXXXXX)
IMG="$work/wbtfm.img"; MNT="$work/mnt"; CFG="$work/config.toml"
daemon=""
cleanup() {
    set +e
    "$W" -q --config "$CFG" down --all >/dev/null 2>&1
    [ -n "$daemon" ] && kill -TERM "$daemon" 2>/dev/null && wait "$daemon" 2>/dev/null
    "$W" -q --config "$CFG" gc >/dev/null 2>&1
    pool_remove
    rm -rf "$work"
}
trap cleanup EXIT
pool_create 1G
btrfs -q subvolume create "$work/mnt/live"; mkdir -p "$work/mnt/live/srv" "$work/mnt/live/var/www/html" "$work/mnt/snaps"
echo "<h1>wbtf many</h1>" > "$work/mnt/live/srv/index.html"
echo "<h1>wbtf many route</h1>" > "$work/mnt/live/var/www/html/index.html"
btrfs -q subvolume snapshot -r "$work/mnt/live" "$work/mnt/snaps/s1"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
printf 'state_dir = "%s/state"\nruntime_dir = "%s/run"\nbase_domain = "many.test"\naddress_pool = "10.213.240.0/22"\n[proxy]\nlisten = "127.0.0.1:%s"\n' \
    "$work" "$work" "$port" > "$work/config.toml"
"$W" --config "$work/config.toml" serve 2>"$work/serve.log" & daemon=$!
for _ in $(seq 100); do [ -S "$work/run/wayback.sock" ] && break; sleep 0.1; done
pss() { awk '/^Pss:/ {print $2}' "/proc/$1/smaps_rollup" 2>/dev/null || echo 0; }
# The daemon's own growth: its anonymous memory (heap, stacks). Its PSS would fall as instances are added,
# since every init is the same binary and shares its pages.
anon() { awk '/^Anonymous:/ {print $2}' "/proc/$1/smaps_rollup" 2>/dev/null || echo 0; }
up() { # NAME: up --detach an HTTP instance; prints its wall time in µs; its progress in $work/NAME.err
    local t0 t1
    t0=$(now_ns)
    "$W" --config "$work/config.toml" up "$work/mnt/snaps/s1" --name "$1" --bind /srv --port 8000 \
        --exec 'exec busybox httpd -f -p 8000 -h /srv' --detach >/dev/null 2>"$work/$1.err"
    t1=$(now_ns)
    echo $(( (t1 - t0) / 1000 ))
}
route_rps() {
    local out rs=()
    for _ in 1 2 3; do
        out=$(wrk -t1 -c16 -d"${WRK_S}s" -H "Host: wbtfroute.many.test" "http://127.0.0.1:$port/index.html")
        grep -q "Non-2xx" <<<"$out" && { echo "$out" >&2; exit 1; }
        rs+=("$(awk '/^Requests\/sec:/ { printf "%d", $2 }' <<<"$out")")
    done
    printf '%s\n' "${rs[@]}" | median
}

"$W" -q --config "$work/config.toml" up "$work/mnt/snaps/s1" --name wbtfroute --profile nginx-static --detach >/dev/null
sleep 1
before=$(anon "$daemon")
running=0
echo
echo "wayback many instances ($(date -u +%Y-%m-%d), $(nproc) cores, daemon and proxy in one process; load average at the start: $(cut -d" " -f1-3 /proc/loadavg))"
echo
echo "| instances | mean up (ms) | probe up (ms) | probe down (ms) | daemon anon/instance (KiB) | nspawn PSS (KiB) | init PSS (KiB) | total/instance (MiB) | daemon fds | daemon threads | route req/s |"
echo "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
echo "| 0 | | | | | | | | $(ls "/proc/$daemon/fd" | wc -l) | $(awk '/^Threads:/ {print $2}' "/proc/$daemon/status") | $(route_rps) |"
for level in "${LEVELS[@]}"; do
    sum=0; n=0
    while [ "$running" -lt "$level" ]; do
        running=$((running + 1))
        us=$(up "wbtfm$running"); sum=$((sum + us)); n=$((n + 1))
    done
    mean_ms=$(awk -v s="$sum" -v n="$n" 'BEGIN {printf "%.0f", n ? s / n / 1000 : 0}')
    sleep 2   # let the daemon settle (freed memory, finished tasks)
    after=$(anon "$daemon")
    nspawn_total=0; init_total=0; count=0
    for pid in $(pgrep -f -- "--machine=wb-wbtfm[0-9]" || true); do
        nspawn_total=$((nspawn_total + $(pss "$pid")))
        child=$(pgrep -P "$pid" | head -1)   # the container's PID 1: wayback's init
        [ -n "$child" ] && init_total=$((init_total + $(pss "$child")))
        count=$((count + 1))
    done
    [ "$count" -eq "$running" ] || log "warning: $count nspawn processes for $running instances"
    fds=$(ls "/proc/$daemon/fd" | wc -l)
    threads=$(awk '/^Threads:/ {print $2}' "/proc/$daemon/status")
    daemon_kib=$(( (after - before) / running ))
    nspawn_kib=$(( nspawn_total / (count > 0 ? count : 1) ))
    init_kib=$(( init_total / (count > 0 ? count : 1) ))
    total=$(awk -v a="$daemon_kib" -v b="$nspawn_kib" -v c="$init_kib" 'BEGIN {printf "%.2f", (a + b + c) / 1024}')
    rps=$(route_rps)
    probe_up=$(( $(up "wbtfprobe$level") / 1000 ))
    t0=$(now_ns); "$W" -q --config "$work/config.toml" down "wbtfprobe$level"; t1=$(now_ns)
    probe_down=$(( (t1 - t0) / 1000000 ))
    log "level $level done"
    echo "| $running | $mean_ms | $probe_up | $probe_down | $daemon_kib | $nspawn_kib | $init_kib | $total | $fds | $threads | $rps |"
done
echo
echo "Steps of the probe's \`up\` that take 2 ms or more at any level (ms, from its progress lines):"
echo
printf '| step |'; for level in "${LEVELS[@]}"; do printf ' %s |' "$level"; done; echo
printf '|---|'; for _ in "${LEVELS[@]}"; do printf -- '---:|'; done; echo
for level in "${LEVELS[@]}"; do   # "ms<TAB>step", the instance's name and paths taken out
    sed -n 's/^wayback: \(.*\) done (\([0-9]*\) ms)$/\2\t\1/p' "$work/wbtfprobe$level.err" \
        | sed "s/wbtfprobe[0-9]*/NAME/g; s|$work||g" > "$work/steps-$level"
done
cat "$work"/steps-* | awk -F'\t' '$1 >= 2 { print $2 }' | sort -u | while IFS= read -r step; do
    printf '| %s |' "$step"
    for level in "${LEVELS[@]}"; do
        printf ' %s |' "$(awk -F'\t' -v s="$step" '$2 == s { print $1; exit }' "$work/steps-$level")"
    done
    echo
done
t0=$(now_ns); "$W" -q --config "$work/config.toml" down --all; t1=$(now_ns)
echo; echo "down --all of $running instances: $(( (t1 - t0) / 1000000 )) ms ($(( (t1 - t0) / running / 1000000 )) ms each); load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
