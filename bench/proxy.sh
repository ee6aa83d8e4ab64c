#!/usr/bin/env bash
# Benchmark: wayback's built-in HTTP proxy against nginx `proxy_pass` (upstream keepalive) to the same backend,
# in the same run, gate off and on. Loopback only.
#
#     bench/proxy.sh                  # BENCH_DURATION=10 s per run, BENCH_ROUNDS=3, BENCH_CONNECTIONS=64
#
# Pieces, all started here with their own config in a temp dir (never the system nginx) and stopped at the end:
#   backend  nginx, 1 worker, serving a 1 KiB static file;
#   nginx    nginx proxy_pass to the backend (upstream keepalive 64, HTTP/1.1, X-Forwarded-* like wayback),
#            one worker per core; gate on = auth_basic (apr1 hash) / a static cookie comparison;
#   wayback  crates/proxy/examples/bench_proxy (release build): serve_http with one route, as wayback runs
#            it: one single-threaded runtime per core on its own SO_REUSEPORT listener; gate on = basic auth (bcrypt hash, verified once then cached) / share-link session
#            cookie (HMAC-verified on every request).
# Load: wrk, BENCH_WRK_THREADS (default 1) threads, BENCH_CONNECTIONS keep-alive connections, after a warm-up.
# The gate variants alternate between nginx and wayback within each round; the table shows medians.
# Besides throughput and p99, each run records the proxy's CPU time per request (user+system of the wayback
# process, or of the nginx proxy's worker processes, from /proc, divided by the requests wrk completed): on a
# machine where other work competes for the cores, this is the steadier measure of the proxy's own cost.
# BENCH_MULTI=1 runs wayback as one multi-threaded tokio runtime on one listener instead (the model before
# issue 18); BENCH_PROXY_BIN=PATH runs another build of bench_proxy (e.g. an older one, to compare).
# Output: a markdown table on stdout (progress on stderr). Needs nginx, wrk, curl, openssl, cargo.
#
#     sudo bench/proxy.sh instance    # the backend is a real `wayback up` instance; peers nginx and Caddy
#                                     # (see bench/proxy_instance.sh)
set -euo pipefail

[ "${1:-}" = instance ] && exec "$(dirname "$0")/proxy_instance.sh"

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
DUR="${BENCH_DURATION:-10}"
ROUNDS="${BENCH_ROUNDS:-3}"
CONNS="${BENCH_CONNECTIONS:-64}"
WRK_THREADS="${BENCH_WRK_THREADS:-1}"
BASE_PORT="${BENCH_BASE_PORT:-18500}"
HOST=bench.test
CRED_USER=bench
CRED_PASS=bench-password
CORES="$(nproc)"

P_BACKEND=$((BASE_PORT + 0))
P_NGINX=$((BASE_PORT + 1))      # +1 off, +2 basic, +3 cookie
P_WAYBACK=$((BASE_PORT + 11))   # +11 off, +12 basic, +13 share

PER_CORE=()
[ "${BENCH_MULTI:-0}" = 1 ] && PER_CORE=(multi)

# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"
need_tools nginx wrk curl openssl
cargo_on_path

WORK="$(mktemp -d /tmp/wayback-bench-proxy.XXXXXX)"
PIDS=()
cleanup() {
    set +e
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null; done
    for f in "$WORK"/*.pid; do [ -f "$f" ] && kill -QUIT "$(cat "$f")" 2>/dev/null; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null; done
    sleep 0.3
    rm -rf "$WORK"
}
trap 'status=$?; trap - EXIT; cleanup; exit $status' EXIT
trap 'exit 130' INT TERM

if [ -n "${BENCH_PROXY_BIN:-}" ]; then
    BIN="$BENCH_PROXY_BIN"
else
    log "building the bench proxy (release)"
    (cd "$ROOT" && cargo build --release -q -p wayback-proxy --example bench_proxy) >&2
    BIN="$ROOT/target/release/examples/bench_proxy"
fi

chmod 755 "$WORK"
mkdir -p "$WORK/www" "$WORK/tmp"
head -c 1024 /dev/zero | tr '\0' 'x' > "$WORK/www/index.html"
printf '%s:%s\n' "$CRED_USER" "$(openssl passwd -apr1 "$CRED_PASS")" > "$WORK/htpasswd"
USER_LINE=""
[ "$(id -u)" -eq 0 ] && USER_LINE="user root;"

common_http() {
    cat <<EOF
    access_log off;
    keepalive_requests 1000000;
    client_body_temp_path $WORK/tmp/body;
    proxy_temp_path $WORK/tmp/proxy;
    fastcgi_temp_path $WORK/tmp/fastcgi;
    uwsgi_temp_path $WORK/tmp/uwsgi;
    scgi_temp_path $WORK/tmp/scgi;
EOF
}

cat > "$WORK/backend.conf" <<EOF
$USER_LINE
worker_processes 1;
pid $WORK/backend.pid;
error_log $WORK/backend-error.log;
events { worker_connections 4096; }
http {
$(common_http)
    server { listen 127.0.0.1:$P_BACKEND; root $WORK/www; }
}
EOF

# The cookie nginx compares is filled in once wayback has issued one (see below).
write_nginx_proxy() {
    cat > "$WORK/proxy.conf" <<EOF
$USER_LINE
worker_processes $CORES;
pid $WORK/proxy.pid;
error_log $WORK/proxy-error.log;
events { worker_connections 4096; }
http {
$(common_http)
    upstream backend { server 127.0.0.1:$P_BACKEND; keepalive 64; }
    proxy_http_version 1.1;
    proxy_set_header Connection "";
    proxy_set_header Host \$http_host;
    proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
    proxy_set_header X-Forwarded-Host \$http_host;
    proxy_set_header X-Forwarded-Proto \$scheme;
    server { listen 127.0.0.1:$((P_NGINX + 0)); location / { proxy_pass http://backend; } }
    server { listen 127.0.0.1:$((P_NGINX + 1)); location / {
        auth_basic "bench"; auth_basic_user_file $WORK/htpasswd; proxy_pass http://backend; } }
    server { listen 127.0.0.1:$((P_NGINX + 2)); location / {
        if (\$cookie_wayback_session != "$1") { return 403; } proxy_pass http://backend; } }
}
EOF
}

wait_port() {
    for _ in $(seq 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.05
    done
    die "nothing listens on port $1"
}

log "starting backend nginx, wayback proxies"
nginx -p "$WORK" -c "$WORK/backend.conf" -g 'daemon on;'
wait_port "$P_BACKEND"
"$BIN" "127.0.0.1:$((P_WAYBACK + 0))" "127.0.0.1:$P_BACKEND" "$HOST" off "${PER_CORE[@]}" "$CORES" & PIDS+=($!)
"$BIN" "127.0.0.1:$((P_WAYBACK + 1))" "127.0.0.1:$P_BACKEND" "$HOST" basic "$CRED_USER:$CRED_PASS" "${PER_CORE[@]}" "$CORES" &
PIDS+=($!)
"$BIN" "127.0.0.1:$((P_WAYBACK + 2))" "127.0.0.1:$P_BACKEND" "$HOST" share "${PER_CORE[@]}" "$CORES" > "$WORK/token" &
PIDS+=($!)
for i in 0 1 2; do wait_port $((P_WAYBACK + i)); done
TOKEN="$(cat "$WORK/token")"

# Exchange the share link for the session cookie, as a browser would.
COOKIE="$(curl -sS -i -H "Host: $HOST" "http://127.0.0.1:$((P_WAYBACK + 2))/?wayback-token=$TOKEN" \
    | tr -d '\r' | sed -n 's/^[Ss]et-[Cc]ookie: \([^;]*\).*/\1/p')"
[ -n "$COOKIE" ] || die "the share link did not yield a cookie"
write_nginx_proxy "${COOKIE#wayback_session=}"
nginx -p "$WORK" -c "$WORK/proxy.conf" -g 'daemon on;'
for i in 0 1 2; do wait_port $((P_NGINX + i)); done

AUTH="Authorization: Basic $(printf '%s:%s' "$CRED_USER" "$CRED_PASS" | base64)"
# mode → (port offset, extra header)
header_for() {
    case "$1" in
        off) echo "X-Bench: 1" ;;
        basic) echo "$AUTH" ;;
        cookie) echo "Cookie: $COOKIE" ;;
    esac
}
offset_for() { case "$1" in off) echo 0 ;; basic) echo 1 ;; cookie) echo 2 ;; esac; }
# The processes doing the proxy's work: wayback's bench process for that mode, or nginx's proxy workers.
pids_for() {
    if [ "$1" = nginx ]; then pgrep -P "$(cat "$WORK/proxy.pid")" | tr '\n' ' '; else echo "${PIDS[$(offset_for "$2")]}"; fi
}
cpu_ticks() { # sum of utime+stime over the given pids
    local t=0 u s
    for p in "$@"; do read -r u s < <(awk '{ print $14, $15 }' "/proc/$p/stat"); t=$((t + u + s)); done
    echo "$t"
}
HZ="$(getconf CLK_TCK)"
port_for() { if [ "$1" = nginx ]; then echo $((P_NGINX + $(offset_for "$2"))); else echo $((P_WAYBACK + $(offset_for "$2"))); fi; }

# Sanity: every path serves the file with the gate's credentials, and refuses without them.
for target in nginx wayback; do
    for mode in off basic cookie; do
        port="$(port_for "$target" "$mode")"
        got="$(curl -sS -o /dev/null -w '%{http_code} %{size_download}' -H "Host: $HOST" -H "$(header_for "$mode")" \
            "http://127.0.0.1:$port/index.html")"
        [ "$got" = "200 1024" ] || die "$target/$mode: expected 200 with 1024 bytes, got $got"
        if [ "$mode" != off ]; then
            code="$(curl -sS -o /dev/null -w '%{http_code}' -H "Host: $HOST" "http://127.0.0.1:$port/index.html")"
            case "$code" in 401 | 403) ;; *) die "$target/$mode: no credentials should be refused, got $code" ;; esac
        fi
    done
done

# wrk's latency value (e.g. 850.12us, 1.23ms, 1.01s) in milliseconds.
to_ms() {
    awk -v v="$1" 'BEGIN {
        n = v + 0; u = v; sub(/^[0-9.]+/, "", u);
        if (u == "us") n /= 1000; else if (u == "s") n *= 1000; else if (u == "m") n *= 60000;
        printf "%.2f", n }'
}

run_wrk() { # target mode seconds → "rps p99ms cpu_us_per_request"
    local out pids t0 t1
    read -r -a pids <<<"$(pids_for "$1" "$2")"
    t0="$(cpu_ticks "${pids[@]}")"
    out="$(wrk -t"$WRK_THREADS" -c"$CONNS" -d"$3"s --latency -H "Host: $HOST" -H "$(header_for "$2")" \
        "http://127.0.0.1:$(port_for "$1" "$2")/index.html")"
    if grep -q "Non-2xx" <<<"$out"; then die "$1/$2: non-2xx responses under load:\n$out"; fi
    t1="$(cpu_ticks "${pids[@]}")"
    local rps p99 n cpu
    rps="$(awk '/^Requests\/sec:/ { printf "%d", $2 }' <<<"$out")"
    p99="$(awk '$1 == "99%" { print $2 }' <<<"$out")"
    n="$(awk '/requests in/ { print $1 }' <<<"$out")"
    cpu="$(awk -v t=$((t1 - t0)) -v n="$n" -v hz="$HZ" 'BEGIN { printf "%.1f", t / hz * 1e6 / n }')"
    echo "$rps $(to_ms "$p99") $cpu"
}

log "warm-up"
for target in nginx wayback; do for mode in off basic cookie; do run_wrk "$target" "$mode" 2 >/dev/null; done; done

declare -A RPS P99 CPU
for r in $(seq "$ROUNDS"); do
    for mode in off basic cookie; do
        for target in nginx wayback; do
            read -r rps p99 cpu <<<"$(run_wrk "$target" "$mode" "$DUR")"
            RPS[$target.$mode]+="$rps "
            P99[$target.$mode]+="$p99 "
            CPU[$target.$mode]+="$cpu "
            log "round $r $mode $target: $rps req/s, p99 ${p99} ms, ${cpu} µs CPU/request"
        done
    done
done


echo "Proxy benchmark: $(date -u +%Y-%m-%d), $CORES cores, $(nginx -v 2>&1 | sed 's/.*: //'), wrk -t$WRK_THREADS -c$CONNS -d${DUR}s, median of $ROUNDS rounds, 1 KiB static file from an nginx backend$([ "${#PER_CORE[@]}" -gt 0 ] && echo ", wayback on one multi-threaded runtime"); load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)."
echo
echo "| gate | nginx req/s | wayback req/s | throughput ratio | nginx p99 (ms) | wayback p99 (ms) | nginx CPU µs/req | wayback CPU µs/req |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|"
for mode in off basic cookie; do
    n="$(median <<<"${RPS[nginx.$mode]}")"; w="$(median <<<"${RPS[wayback.$mode]}")"
    np="$(median <<<"${P99[nginx.$mode]}")"; wp="$(median <<<"${P99[wayback.$mode]}")"
    nc="$(median <<<"${CPU[nginx.$mode]}")"; wc="$(median <<<"${CPU[wayback.$mode]}")"
    case "$mode" in
        off) label="off" ;;
        basic) label="basic auth (nginx: apr1 per request; wayback: bcrypt once, then cached)" ;;
        cookie) label="session cookie (nginx: static compare; wayback: HMAC check)" ;;
    esac
    ratio="$(awk -v w="$w" -v n="$n" 'BEGIN { printf "%.2f×", w / n }')"
    echo "| $label | $n | $w | $ratio | $np | $wp | $nc | $wc |"
done
