#!/usr/bin/env bash
# The `instance` mode of bench/proxy.sh (run it as `sudo bench/proxy.sh instance`): the backend is a real
# `wayback up` instance — nginx (the `nginx-static` profile: the host's nginx and config) serving a 1 KiB
# file from the snapshot — and three proxies in front of it, in the same run, alternating:
#   wayback  the proxy of the foreground `up` process itself (dials 127.0.0.1:80 inside the instance's
#            network namespace, keep-alive pooled per instance);
#   nginx    `proxy_pass` to the instance's veth address (upstream keepalive 64, HTTP/1.1, X-Forwarded-*
#            like wayback), one worker per core;
#   caddy    `reverse_proxy` to the same address (its default keep-alive pool), GOMAXPROCS = cores.
# Load: wrk -t1 -cBENCH_CONNECTIONS (64) for BENCH_DURATION (10) s per run after a warm-up, BENCH_ROUNDS (5)
# rounds, the three proxies in a different order each round; the table shows medians. CPU µs/request is the
# user+system time of the proxy's own processes (the `up` process; nginx's proxy workers; caddy) from
# /proc, divided by the requests wrk completed. Loopback and the instance's own veth only. Root only;
# everything under /var/tmp/wbtf-proxy, removed at the end (also on error).
# BENCH_PERF=FILE: before the rounds, profile the `up` process (`perf record -g`) during one wayback run
# and write `perf report`'s top symbols (self time) to FILE.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
DUR="${BENCH_DURATION:-10}"
ROUNDS="${BENCH_ROUNDS:-5}"
CONNS="${BENCH_CONNECTIONS:-64}"
BASE_PORT="${BENCH_BASE_PORT:-18520}"
P_WAYBACK=$BASE_PORT
P_NGINX=$((BASE_PORT + 1))
P_CADDY=$((BASE_PORT + 2))
CORES="$(nproc)"
WORK=/var/tmp/wbtf-proxy
IMG="$WORK/pool.img"
MNT="$WORK/pool"
CFG="$WORK/config.toml"
NAME=wbtfpx
HOST="$NAME.bench.test"
UP_PID=""
CADDY_PID=""

# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"
need_root nginx caddy wrk curl btrfs systemd-nspawn
wayback_binary

cleanup() {
    set +e
    [ -f "$WORK/nginx.pid" ] && kill -QUIT "$(cat "$WORK/nginx.pid")" 2>/dev/null
    [ -n "$CADDY_PID" ] && kill -TERM "$CADDY_PID" 2>/dev/null && wait "$CADDY_PID" 2>/dev/null
    if [ -n "$UP_PID" ] && kill -0 "$UP_PID" 2>/dev/null; then kill -TERM "$UP_PID"; wait "$UP_PID" 2>/dev/null; fi
    instances_remove
    sleep 0.3
    pool_remove
    rm -rf "$WORK"
}
cleanup
trap 'status=$?; trap - EXIT; cleanup; exit $status' EXIT
trap 'exit 130' INT TERM

mkdir -p "$WORK/tmp"
pool_create 1G
btrfs subvolume create "$MNT/live" >/dev/null
mkdir -p "$MNT/live/var/www/html" "$MNT/snaps"
head -c 1024 /dev/zero | tr '\0' 'x' > "$MNT/live/var/www/html/index.html"
btrfs subvolume snapshot -r "$MNT/live" "$MNT/snaps/s1" >/dev/null
cat > "$CFG" <<EOF
state_dir = "$WORK/state"
runtime_dir = "$WORK/run"
base_domain = "bench.test"
default_ttl = "1h"
address_pool = "10.213.246.0/24"
[proxy]
listen = "127.0.0.1:$P_WAYBACK"
EOF

log "starting the instance"
"$WAYBACK" --config "$CFG" up "$MNT/snaps/s1" --name "$NAME" --profile nginx-static --host "$HOST" \
    > "$WORK/up.out" 2> "$WORK/up.err" &
UP_PID=$!
for _ in $(seq 600); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 -H "Host: $HOST" "http://127.0.0.1:$P_WAYBACK/")" = 200 ] && break
    kill -0 "$UP_PID" 2>/dev/null || { cat "$WORK/up.err" >&2; die "up exited"; }
    sleep 0.05
done
PEER="$(ip -n "wb-$NAME" -o -4 addr show | awk '$2 != "lo" {sub(/\/.*/, "", $4); print $4; exit}')"
[ -n "$PEER" ] || die "no address inside the instance's namespace"
log "instance $NAME answers; its veth address is $PEER"

cat > "$WORK/nginx.conf" <<EOF
user root;
worker_processes $CORES;
pid $WORK/nginx.pid;
error_log $WORK/nginx-error.log;
events { worker_connections 4096; }
http {
    access_log off;
    keepalive_requests 1000000;
    client_body_temp_path $WORK/tmp/body;
    proxy_temp_path $WORK/tmp/proxy;
    fastcgi_temp_path $WORK/tmp/fastcgi;
    uwsgi_temp_path $WORK/tmp/uwsgi;
    scgi_temp_path $WORK/tmp/scgi;
    upstream instance { server $PEER:80; keepalive 64; }
    proxy_http_version 1.1;
    proxy_set_header Connection "";
    proxy_set_header Host \$http_host;
    proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
    proxy_set_header X-Forwarded-Host \$http_host;
    proxy_set_header X-Forwarded-Proto \$scheme;
    server { listen 127.0.0.1:$P_NGINX; location / { proxy_pass http://instance; } }
}
EOF
nginx -p "$WORK" -c "$WORK/nginx.conf" -g 'daemon on;'
cat > "$WORK/Caddyfile" <<EOF
{
    admin off
    auto_https off
}
http://:$P_CADDY {
    bind 127.0.0.1
    reverse_proxy $PEER:80
}
EOF
GOMAXPROCS=$CORES XDG_DATA_HOME="$WORK/caddy" XDG_CONFIG_HOME="$WORK/caddy" \
    caddy run --config "$WORK/Caddyfile" --adapter caddyfile > "$WORK/caddy.log" 2>&1 &
CADDY_PID=$!

port_for() { case "$1" in wayback) echo "$P_WAYBACK" ;; nginx) echo "$P_NGINX" ;; caddy) echo "$P_CADDY" ;; esac; }
pids_for() {
    case "$1" in
        wayback) echo "$UP_PID" ;;
        nginx) pgrep -P "$(cat "$WORK/nginx.pid")" | tr '\n' ' ' ;;
        caddy) echo "$CADDY_PID" ;;
    esac
}
for target in wayback nginx caddy; do
    got=""
    for _ in $(seq 100); do
        got="$(curl -s -o /dev/null -w '%{http_code} %{size_download}' -H "Host: $HOST" \
            "http://127.0.0.1:$(port_for "$target")/index.html" || true)"
        [ "$got" = "200 1024" ] && break
        sleep 0.05
    done
    [ "$got" = "200 1024" ] || { [ -f "$WORK/caddy.log" ] && tail -5 "$WORK/caddy.log" >&2; die "$target: expected 200 with 1024 bytes, got $got"; }
done

HZ="$(getconf CLK_TCK)"
cpu_ticks() {
    local t=0 u s
    for p in "$@"; do read -r u s < <(awk '{ print $14, $15 }' "/proc/$p/stat"); t=$((t + u + s)); done
    echo "$t"
}
to_ms() {
    awk -v v="$1" 'BEGIN { n = v + 0; u = v; sub(/^[0-9.]+/, "", u);
        if (u == "us") n /= 1000; else if (u == "s") n *= 1000; printf "%.2f", n }'
}
run_wrk() { # target seconds → "rps p50ms p99ms cpu_us_per_request"
    local out pids t0 t1 rps p50 p99 n cpu
    read -r -a pids <<<"$(pids_for "$1")"
    t0="$(cpu_ticks "${pids[@]}")"
    out="$(wrk -t1 -c"$CONNS" -d"$2"s --latency -H "Host: $HOST" "http://127.0.0.1:$(port_for "$1")/index.html")"
    t1="$(cpu_ticks "${pids[@]}")"
    if grep -q "Non-2xx\|Socket errors" <<<"$out"; then log "$1: errors under load:"; echo "$out" >&2; fi
    rps="$(awk '/^Requests\/sec:/ { printf "%d", $2 }' <<<"$out")"
    p50="$(awk '$1 == "50%" { print $2 }' <<<"$out")"
    p99="$(awk '$1 == "99%" { print $2 }' <<<"$out")"
    n="$(awk '/requests in/ { print $1 }' <<<"$out")"
    cpu="$(awk -v t=$((t1 - t0)) -v n="$n" -v hz="$HZ" 'BEGIN { printf "%.1f", t / hz * 1e6 / n }')"
    echo "$rps $(to_ms "$p50") $(to_ms "$p99") $cpu"
}

log "warm-up"
for target in wayback nginx caddy; do run_wrk "$target" 2 >/dev/null; done
if [ -n "${BENCH_PERF:-}" ]; then
    log "profiling the up process (perf record -g, ${DUR}s)"
    perf record -q -g -o "$WORK/perf.data" -p "$UP_PID" -- sleep "$DUR" >/dev/null 2>&1 &
    perf_pid=$!
    run_wrk wayback "$DUR" >/dev/null
    wait "$perf_pid" || true
    perf report -i "$WORK/perf.data" --no-children -g none --sort dso,symbol --stdio 2>/dev/null \
        | grep -v '^$' | grep -v '^#' | grep '%' | head -80 > "$BENCH_PERF" || true
    perf report -i "$WORK/perf.data" --no-children -g none --sort dso --stdio 2>/dev/null \
        | grep '%' | head -12 >> "$BENCH_PERF" || true
fi
declare -A RPS P50 P99 CPU
orders=("wayback nginx caddy" "nginx caddy wayback" "caddy wayback nginx")
for r in $(seq "$ROUNDS"); do
    for target in ${orders[$(( (r - 1) % 3 ))]}; do
        read -r rps p50 p99 cpu <<<"$(run_wrk "$target" "$DUR")"
        RPS[$target]+="$rps "; P50[$target]+="$p50 "; P99[$target]+="$p99 "; CPU[$target]+="$cpu "
        log "round $r $target: $rps req/s, p50 $p50 ms, p99 $p99 ms, $cpu µs CPU/request"
    done
done

echo
echo "Proxy through a real instance: $(date -u +%Y-%m-%d), $CORES cores, $(nginx -v 2>&1 | sed 's/.*: //'), caddy $(caddy version | cut -d' ' -f1), wrk -t1 -c$CONNS -d${DUR}s, median of $ROUNDS rounds; backend: nginx in a \`wayback up\` instance serving 1 KiB; load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)."
echo
echo "| proxy | req/s | vs nginx | p50 (ms) | p99 (ms) | CPU µs/request |"
echo "|---|---:|---:|---:|---:|---:|"
n_rps="$(median <<<"${RPS[nginx]}")"
for target in nginx caddy wayback; do
    rps="$(median <<<"${RPS[$target]}")"
    echo "| $target | $rps | $(awk -v a="$rps" -v b="$n_rps" 'BEGIN { printf "%.2f×", a / b }') | $(median <<<"${P50[$target]}") | $(median <<<"${P99[$target]}") | $(median <<<"${CPU[$target]}") |"
done
