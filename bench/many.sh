#!/usr/bin/env bash
# Benchmark: N instances (default 50) of a small service at once, handed to the daemon.
# Reports, per instance and beyond the service itself: wall time of `up --detach` (until the instance
# answers), and memory — the daemon's PSS growth per instance plus the PSS of the instance's systemd-nspawn
# process and of wayback's init inside the container. The service is `sleep` (no memory of its own worth
# counting), so everything measured is wayback's cost. Root only; everything under a temp dir, removed at exit.
set -euo pipefail
cd "$(dirname "$0")/.."
N="${BENCH_INSTANCES:-50}"
cargo build --release -q -p wayback
W="$PWD/target/release/wayback"
work=$(mktemp -d /tmp/wbtbm.XXXXXX)
daemon=""; loopdev=""
cleanup() {
    set +e
    "$W" -q --config "$work/config.toml" down --all >/dev/null 2>&1
    [ -n "$daemon" ] && kill -TERM "$daemon" 2>/dev/null && wait "$daemon" 2>/dev/null
    "$W" -q --config "$work/config.toml" gc >/dev/null 2>&1
    mountpoint -q "$work/mnt" && umount "$work/mnt"
    [ -n "$loopdev" ] && losetup -d "$loopdev"
    rm -rf "$work"
}
trap cleanup EXIT
truncate -s 1G "$work/wbtbm.img"; mkfs.btrfs -q "$work/wbtbm.img" >/dev/null 2>&1
loopdev=$(losetup --find --show "$work/wbtbm.img"); mkdir "$work/mnt"; mount "$loopdev" "$work/mnt"
btrfs -q subvolume create "$work/mnt/live"; mkdir -p "$work/mnt/live/srv" "$work/mnt/snaps"
btrfs -q subvolume snapshot -r "$work/mnt/live" "$work/mnt/snaps/s1"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
printf 'state_dir = "%s/state"\nruntime_dir = "%s/run"\naddress_pool = "10.213.240.0/22"\n[proxy]\nlisten = "127.0.0.1:%s"\n' \
    "$work" "$work" "$port" > "$work/config.toml"
"$W" --config "$work/config.toml" serve 2>"$work/serve.log" & daemon=$!
for _ in $(seq 100); do [ -S "$work/run/wayback.sock" ] && break; sleep 0.1; done
pss() { awk '/^Pss:/ {print $2}' "/proc/$1/smaps_rollup" 2>/dev/null || echo 0; }
before=$(pss "$daemon")
start=$(date +%s%N)
for i in $(seq "$N"); do
    "$W" -q --config "$work/config.toml" up "$work/mnt/snaps/s1" --name "wbtbm$i" --bind /srv \
        --exec 'exec sleep 100000' --detach >/dev/null
done
end=$(date +%s%N)
after=$(pss "$daemon")
nspawn_total=0; init_total=0; count=0
for pid in $(pgrep -f -- "--machine=wb-wbtbm" || true); do
    nspawn_total=$((nspawn_total + $(pss "$pid")))
    child=$(pgrep -P "$pid" | head -1)   # the container's PID 1: wayback's init
    [ -n "$child" ] && init_total=$((init_total + $(pss "$child")))
    count=$((count + 1))
done
running=$("$W" --config "$work/config.toml" ls --json | grep -c '"state": "running"' || true)
ms_per=$(( (end - start) / N / 1000000 ))
daemon_kib=$(( (after - before) / N ))
nspawn_kib=$(( nspawn_total / (count > 0 ? count : 1) ))
init_kib=$(( init_total / (count > 0 ? count : 1) ))
total_kib=$(( daemon_kib + nspawn_kib + init_kib ))
echo
echo "| instances running | time per up (ms) | daemon PSS per instance (KiB) | nspawn PSS (KiB) | init PSS (KiB) | total per instance (MiB) |"
echo "|---:|---:|---:|---:|---:|---:|"
printf '| %d/%d | %d | %d | %d | %d | %d.%02d |\n' "$running" "$N" "$ms_per" "$daemon_kib" "$nspawn_kib" "$init_kib" \
    $((total_kib / 1024)) $(( (total_kib % 1024) * 100 / 1024 ))
t0=$(date +%s%N); "$W" -q --config "$work/config.toml" down --all; t1=$(date +%s%N)
echo; echo "down --all of $N instances: $(( (t1 - t0) / 1000000 )) ms ($(( (t1 - t0) / N / 1000000 )) ms each)"
