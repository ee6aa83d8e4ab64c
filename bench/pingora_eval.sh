#!/usr/bin/env bash
# Evaluation (issue 18): Cloudflare's pingora-proxy against wayback's proxy and nginx, same run.
#
#     bench/pingora_eval.sh        # BENCH_DURATION=10 s, BENCH_ROUNDS=3, BENCH_CONNECTIONS=64
#
# A backend nginx serves a 1 KiB file on loopback; in front of it, each forwarding every request with
# upstream keep-alive: nginx `proxy_pass` (one worker per core), wayback's proxy crate as wayback runs it
# (`examples/bench_proxy`, one single-threaded runtime per core, gate off) and a minimal pingora-proxy
# (bench/pingora: `ProxyHttp` with one upstream peer, one worker thread per core). `wrk -t1 -cN -dD`, the
# order rotated every round; medians. CPU µs/request: user+system of the proxy's processes over the run.
# Everything under a temp dir, removed at exit; traffic on 127.0.0.1 only.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
DUR="${BENCH_DURATION:-10}"; ROUNDS="${BENCH_ROUNDS:-3}"; CONNS="${BENCH_CONNECTIONS:-64}"
CORES="$(nproc)"; P_BACKEND=18540; P_NGINX=18541; P_WAYBACK=18542; P_PINGORA=18543
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"
need_tools nginx wrk curl cmake
cargo_on_path
log "building the bench proxies (release)"
(cd "$ROOT" && cargo build --release -q -p wayback-proxy --example bench_proxy) >&2
(cd "$ROOT/bench/pingora" && cargo build --release -q) >&2
WB="$ROOT/target/release/examples/bench_proxy"; PG="$ROOT/bench/pingora/target/release/pingora-eval"
WORK="$(mktemp -d /tmp/wayback-bench-pingora.XXXXXX)"; PIDS=()
cleanup() {
    set +e
    for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
    for f in "$WORK"/*.pid; do [ -f "$f" ] && kill -QUIT "$(cat "$f")" 2>/dev/null; done
    sleep 0.3; rm -rf "$WORK"
}
trap 'status=$?; trap - EXIT; cleanup; exit $status' EXIT
chmod 755 "$WORK"; mkdir -p "$WORK/www" "$WORK/tmp"
head -c 1024 /dev/zero | tr '\0' x > "$WORK/www/index.html"
nginx_conf() { # name workers server-block
    cat > "$WORK/$1.conf" <<EOC
user root; worker_processes $2; pid $WORK/$1.pid; error_log $WORK/$1-error.log;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 1000000; client_body_temp_path $WORK/tmp/b; proxy_temp_path $WORK/tmp/p;
  fastcgi_temp_path $WORK/tmp/f; uwsgi_temp_path $WORK/tmp/u; scgi_temp_path $WORK/tmp/s;
  $3 }
EOC
    nginx -p "$WORK" -c "$WORK/$1.conf" -g 'daemon on;'
}
wait_port() { for _ in $(seq 200); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.05; done; log "nothing on $1"; exit 1; }
nginx_conf backend 1 "server { listen 127.0.0.1:$P_BACKEND; root $WORK/www; }"
nginx_conf proxy "$CORES" "upstream b { server 127.0.0.1:$P_BACKEND; keepalive 64; } proxy_http_version 1.1;
  proxy_set_header Connection \"\"; proxy_set_header Host \$http_host;
  server { listen 127.0.0.1:$P_NGINX; location / { proxy_pass http://b; } }"
"$WB" "127.0.0.1:$P_WAYBACK" "127.0.0.1:$P_BACKEND" bench.test off "$CORES" & PIDS+=($!)
"$PG" "127.0.0.1:$P_PINGORA" "127.0.0.1:$P_BACKEND" "$CORES" 2>"$WORK/pingora.log" & PIDS+=($!)
for p in $P_BACKEND $P_NGINX $P_WAYBACK $P_PINGORA; do wait_port "$p"; done
pids_of() { case "$1" in nginx) pgrep -P "$(cat "$WORK/proxy.pid")" | tr '\n' ' ' ;; wayback) echo "${PIDS[0]}" ;; pingora) echo "${PIDS[1]}" ;; esac; }
port_of() { case "$1" in nginx) echo $P_NGINX ;; wayback) echo $P_WAYBACK ;; pingora) echo $P_PINGORA ;; esac; }
ticks() { local t=0 u s; for p in "$@"; do read -r u s < <(awk '{print $14, $15}' "/proc/$p/stat"); t=$((t+u+s)); done; echo "$t"; }
HZ="$(getconf CLK_TCK)"
for t in nginx wayback pingora; do
    got="$(curl -sS -o /dev/null -w '%{http_code} %{size_download}' -H 'Host: bench.test' "http://127.0.0.1:$(port_of $t)/index.html")"
    [ "$got" = "200 1024" ] || { log "$t: expected 200 with 1024 bytes, got $got"; exit 1; }
done
declare -A RPS P99 CPU
order=(nginx wayback pingora)
for r in $(seq "$ROUNDS"); do
    for t in "${order[@]}"; do
        # shellcheck disable=SC2046
        before=$(ticks $(pids_of "$t"))
        out="$(wrk -t1 -c"$CONNS" -d"${DUR}s" --latency -H 'Host: bench.test' "http://127.0.0.1:$(port_of "$t")/index.html")"
        # shellcheck disable=SC2046
        after=$(ticks $(pids_of "$t"))
        rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
        p99=$(awk '$1=="99%" {v=$2; if (v ~ /us$/) {sub(/us/,"",v); v/=1000} else if (v ~ /ms$/) sub(/ms/,"",v); else if (v ~ /s$/) {sub(/s/,"",v); v*=1000}; print v}' <<<"$out")
        reqs=$(awk '/requests in/ {print $1}' <<<"$out")
        cpu=$(awk -v t=$((after-before)) -v hz="$HZ" -v n="$reqs" 'BEGIN {printf "%.1f", t/hz*1e6/n}')
        log "round $r $t: $rps req/s, p99 $p99 ms, $cpu µs CPU/request"
        RPS[$t]+="$rps "; P99[$t]+="$p99 "; CPU[$t]+="$cpu "
    done
    order=("${order[@]:1}" "${order[0]}")
done
n_rps=$(median <<<"${RPS[nginx]}")
echo
echo "pingora-proxy evaluation: $(date -u +%Y-%m-%d), $CORES cores, wrk -t1 -c$CONNS -d${DUR}s, median of $ROUNDS rounds; load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "| proxy | req/s | vs nginx | p99 (ms) | CPU µs/request | CPU vs nginx |"
echo "|---|---:|---:|---:|---:|---:|"
n_cpu=$(median <<<"${CPU[nginx]}")
for t in nginx wayback pingora; do
    rps=$(median <<<"${RPS[$t]}"); cpu=$(median <<<"${CPU[$t]}")
    echo "| $t | $rps | $(awk -v a="$rps" -v b="$n_rps" 'BEGIN {printf "%.2f×", a/b}') | $(median <<<"${P99[$t]}") | $cpu | $(awk -v a="$cpu" -v b="$n_cpu" 'BEGIN {printf "%.2f×", a/b}') |"
done
