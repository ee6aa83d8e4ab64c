#!/usr/bin/env bash
# Benchmark: `wayback find` across 100 snapshots, `wayback versions` across 1000, `wayback restore` of a
# 1 GiB file, and `wayback diff` of two snapshots of a big tree against rsync's dry run on the same pair.
#
#     sudo bench/find_diff.sh            # BENCH_N=5 repetitions (median); BENCH_FILES=200000
#
#   find     `wayback find PATH --root LIVE` over 100 snapper snapshots (a literal path, and a `**` glob
#            under the same prefix). Target: <= 1 s.
#   versions `wayback versions PATH` over 1000 snapper snapshots of a file with 4 versions, two of them
#            of equal size and mtime (so one boundary is hashed). Target: <= 100 ms.
#   restore  `wayback restore PATH --from @N --to DEST` of a 1 GiB file (a reflink). Target: <= 50 ms.
#   diff     two pairs of read-only snapshots of a tree of BENCH_FILES files (200 directories), each pair
#            ~1% apart (half appended to, a quarter deleted, a quarter added): once clustered in 10% of
#            the directories (a spool, an app's data dir), once scattered evenly over all of them (the
#            worst case: nearly every metadata leaf differs). `wayback diff A B` (btrfs metadata: tree
#            search) versus `rsync -a -n --delete --itemize-changes B/ A/` in the same run, both warm
#            (one untimed run first). Targets: wayback >= 20x faster clustered, >= 10x scattered.
#            `diff --method send` (the send stream) and `diff --walk` are shown too.
#
# Output: a markdown table on stdout (progress on stderr). Everything lives in a temp dir named wbtb*
# (a loop-file btrfs pool) and is removed at the end, also on error. Needs root, btrfs-progs, rsync.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
N="${BENCH_N:-5}"
FILES="${BENCH_FILES:-200000}"
WORK="$(mktemp -d "${TMPDIR:-/var/tmp}/wbtb$$-XXXX")"
IMG="$WORK/wbtb.img"
MNT="$WORK/mnt"
CFG="$WORK/config.toml"

# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"

cleanup() {
    set +e
    pool_remove
    rm -rf "$WORK"
}
trap cleanup EXIT

need_root btrfs mkfs.btrfs losetup rsync mountpoint
wayback_binary
printf 'state_dir = "%s/state"\nruntime_dir = "%s/run"\n' "$WORK" "$WORK" >"$CFG"
wb() { "$WAYBACK" --config "$CFG" "$@"; }

# time_ms CMD...: run CMD (stdout discarded), print milliseconds
time_ms() {
    local t0 t1
    t0=$(now_ns)
    "$@" >/dev/null 2>&1
    t1=$(now_ns)
    echo $(( (t1 - t0) / 1000000 ))
}
# bench_ms CMD...: one warm-up run, then the median of N runs
bench_ms() {
    "$@" >/dev/null 2>&1
    for _ in $(seq "$N"); do time_ms "$@"; done | median
}
# cpu_ms CMD...: the median over N runs of the CPU time (user + system, all threads) CMD used: unlike
# wall time, it does not grow when other work on the machine competes for the cores
cpu_ms() {
    local TIMEFORMAT='%3U %3S'
    for _ in $(seq "$N"); do
        { time "$@" >/dev/null 2>&1; } 2>&1 | awk '{ printf "%d\n", ($1 + $2) * 1000 }'
    done | median
}

log "pool in $WORK"
pool_create 8G

# --- find: 100 snapper snapshots; the file exists in #40..#70 --------------------------------------------
LIVE="$MNT/live"
btrfs subvolume create "$LIVE" >/dev/null
btrfs subvolume create "$LIVE/.snapshots" >/dev/null
mkdir -p "$LIVE/var/lib/app/files/q3"
for d in $(seq -w 0 19); do mkdir -p "$LIVE/var/lib/app/files/d$d"; (cd "$LIVE/var/lib/app/files/d$d" && touch f{000..049}); done
log "making 100 snapshots"
for i in $(seq 1 100); do
    [ "$i" -eq 40 ] && echo report >"$LIVE/var/lib/app/files/q3/report-final.odt"
    [ "$i" -eq 71 ] && rm "$LIVE/var/lib/app/files/q3/report-final.odt"
    echo "$i" >"$LIVE/var/lib/app/counter"
    mkdir "$LIVE/.snapshots/$i"
    btrfs subvolume snapshot -r "$LIVE" "$LIVE/.snapshots/$i/snapshot" >/dev/null
    printf '<?xml version="1.0"?>\n<snapshot>\n  <type>single</type>\n  <num>%d</num>\n  <date>%s</date>\n  <description>timeline</description>\n  <cleanup>timeline</cleanup>\n</snapshot>\n' \
        "$i" "$(date -u -d "@$((1793491200 + i * 3600))" '+%Y-%m-%d %H:%M:%S')" >"$LIVE/.snapshots/$i/info.xml"
done
wb find var/lib/app/files/q3/report-final.odt --root "$LIVE" | grep -q 'present in #40–#70, gone from #71 on' \
    || die "find reported the wrong range"
FIND_MS=$(bench_ms wb find var/lib/app/files/q3/report-final.odt --root "$LIVE")
GLOB_MS=$(bench_ms wb find 'var/lib/app/**/report*.odt' --root "$LIVE")

# --- versions: 1000 snapper snapshots; report.odt has 4 versions (v3 = v2's size and mtime) ----------------
HIST="$MNT/hist"
btrfs subvolume create "$HIST" >/dev/null
btrfs subvolume create "$HIST/.snapshots" >/dev/null
mkdir -p "$HIST/var/lib/app"
log "making 1000 snapshots"
for i in $(seq 1 1000); do
    case $i in
        100) echo one >"$HIST/var/lib/app/report.odt" ;;
        400) printf 'two-%04d\n' 1 >"$HIST/var/lib/app/report.odt"; touch -d @1793000000 "$HIST/var/lib/app/report.odt" ;;
        600) printf 'TWO-%04d\n' 1 >"$HIST/var/lib/app/report.odt"; touch -d @1793000000 "$HIST/var/lib/app/report.odt" ;;
        800) echo four >>"$HIST/var/lib/app/report.odt" ;;
        950) rm "$HIST/var/lib/app/report.odt" ;;
    esac
    mkdir "$HIST/.snapshots/$i"
    btrfs subvolume snapshot -r "$HIST" "$HIST/.snapshots/$i/snapshot" >/dev/null
    printf '<?xml version="1.0"?>\n<snapshot>\n  <type>single</type>\n  <num>%d</num>\n  <date>%s</date>\n</snapshot>\n' \
        "$i" "$(date -u -d "@$((1793491200 + i * 3600))" '+%Y-%m-%d %H:%M:%S')" >"$HIST/.snapshots/$i/info.xml"
done
wb versions "$HIST/var/lib/app/report.odt" | grep -q '4 versions in 1000 snapshots' || die "versions reported the wrong count"
VERSIONS_MS=$(bench_ms wb versions "$HIST/var/lib/app/report.odt")

# --- restore: a 1 GiB file, as a reflink ------------------------------------------------------------------
log "writing a 1 GiB file"
dd if=/dev/urandom of="$HIST/big.bin" bs=1M count=1024 status=none
mkdir "$HIST/.snapshots/1001"
btrfs subvolume snapshot -r "$HIST" "$HIST/.snapshots/1001/snapshot" >/dev/null
printf '<?xml version="1.0"?>\n<snapshot>\n  <type>single</type>\n  <num>1001</num>\n  <date>2027-01-01 00:00:00</date>\n</snapshot>\n' >"$HIST/.snapshots/1001/info.xml"
restore_once() { wb restore "$HIST/big.bin" --from @1001 --to "$HIST/big.restored" && rm -f "$HIST/big.restored"; }
RESTORE_METHOD=$(wb restore "$HIST/big.bin" --from @1001 --to "$HIST/big.restored" --json | grep '"method"' | tr -d ' ",' | cut -d: -f2)
rm -f "$HIST/big.restored"
RESTORE_MS=$(for _ in $(seq "$N"); do t0=$(now_ns); restore_once >/dev/null 2>&1; t1=$(now_ns); echo $(( (t1 - t0) / 1000000 )); done | median)

# --- diff: FILES files, ~1% changed ----------------------------------------------------------------------
BIG="$MNT/big"
btrfs subvolume create "$BIG" >/dev/null
PER=$(( FILES / 200 ))
log "making $FILES files"
for d in $(seq -w 0 199); do
    mkdir "$BIG/d$d"
    (cd "$BIG/d$d" && seq -f 'f%06g' 1 "$PER" | xargs -r touch)
done
mkdir -p "$MNT/snaps"
btrfs subvolume snapshot -r "$BIG" "$MNT/snaps/A" >/dev/null
sleep 1  # so appended files get a new mtime second as well
# ~1% of the files, clustered: in 10% of the directories, half of each one's files appended to, a quarter
# deleted, a quarter as many added (a spool or an application's data directory).
log "changing ~1%, clustered"
CL=$(( FILES / 100 / 20 ))
for d in $(seq -f '%03g' 0 19); do
    for j in $(seq 1 $(( CL / 2 ))); do echo x >>"$BIG/d$d/$(printf 'f%06d' "$j")"; done
    for j in $(seq 1 $(( CL / 4 ))); do rm -f "$BIG/d$d/$(printf 'f%06d' $(( PER + 1 - j )))"; done
    (cd "$BIG/d$d" && seq -f 'new%06g' 1 $(( CL / 4 )) | xargs -r touch)
done
btrfs subvolume snapshot -r "$BIG" "$MNT/snaps/B" >/dev/null
sleep 1
# ~1% again, scattered evenly over all directories (the worst case for the send stream: nearly every
# metadata leaf differs).
log "changing ~1%, scattered"
CHANGE=$(( FILES / 200 )); DEL=$(( FILES / 400 )); ADD=$(( FILES / 400 ))
for d in $(seq -w 0 199); do
    k=$(( RANDOM % (PER / 2) + PER / 4 ))
    for j in $(seq 0 $(( CHANGE / 200 - 1 ))); do
        echo y >>"$BIG/d$d/$(printf 'f%06d' $(( k + j * 7 )))"
    done
    for j in $(seq 1 $(( DEL / 200 ))); do rm -f "$BIG/d$d/$(printf 'f%06d' $(( PER / 2 + j * 3 )))"; done
    (cd "$BIG/d$d" && seq -f 'add%06g' 1 $(( ADD / 200 )) | xargs -r touch)
done
btrfs subvolume snapshot -r "$BIG" "$MNT/snaps/C" >/dev/null

declare -A RES
pair() {  # pair LABEL OLD NEW
    local label=$1 a=$2 b=$3
    RES[$label.changes]=$(wb diff "$a" "$b" 2>/dev/null | tail -n 1)
    RES[$label.rsync_lines]=$(rsync -a -n --delete --itemize-changes "$b/" "$a/" | wc -l)
    RES[$label.method]=$(wb diff --json "$a" "$b" 2>/dev/null | grep '"method"' | tr -d ' ",' | cut -d: -f2)
    RES[$label.diff]=$(bench_ms wb diff "$a" "$b")
    RES[$label.send]=$(bench_ms wb diff --method send "$a" "$b")
    RES[$label.walk]=$(bench_ms wb diff --walk "$a" "$b")
    RES[$label.rsync]=$(bench_ms rsync -a -n --delete --itemize-changes "$b/" "$a/")
    RES[$label.x]=$(awk -v r="${RES[$label.rsync]}" -v w="${RES[$label.diff]}" 'BEGIN { printf "%.1f", r / (w > 0 ? w : 1) }')
    RES[$label.diff_cpu]=$(cpu_ms wb diff "$a" "$b")
    RES[$label.rsync_cpu]=$(cpu_ms rsync -a -n --delete --itemize-changes "$b/" "$a/")
    RES[$label.xcpu]=$(awk -v r="${RES[$label.rsync_cpu]}" -v w="${RES[$label.diff_cpu]}" 'BEGIN { printf "%.1f", r / (w > 0 ? w : 1) }')
}
LOAD=$(cut -d' ' -f1-3 /proc/loadavg)
log "timing diff and rsync (clustered)"
pair clustered "$MNT/snaps/A" "$MNT/snaps/B"
log "timing diff and rsync (scattered)"
pair scattered "$MNT/snaps/B" "$MNT/snaps/C"

verdict() { if awk -v a="$1" -v b="$2" "BEGIN { exit !(a $3 b) }"; then echo yes; else echo NO; fi; }
row() {  # row LABEL DESCRIPTION TARGET
    local l=$1
    echo "| \`diff\` A B, $FILES files, ~1% changed $2 (method: ${RES[$l.method]}) | ${RES[$l.diff]} ms | | |"
    echo "| \`rsync -a -n --delete --itemize-changes\` same pair | ${RES[$l.rsync]} ms | | |"
    echo "| speed-up of \`diff\` over rsync, $2 | ${RES[$l.x]}x | >= ${3}x | $(verdict "${RES[$l.x]}" "$3" '>=') |"
    echo "| CPU time (user + system): \`diff\` / rsync, $2 | ${RES[$l.diff_cpu]} ms / ${RES[$l.rsync_cpu]} ms = ${RES[$l.xcpu]}x | | |"
    echo "| \`diff --method send\` (send stream) same pair | ${RES[$l.send]} ms | | |"
    echo "| \`diff --walk\` (fallback) same pair | ${RES[$l.walk]} ms | | |"
    echo "| changes found, $2: wayback / rsync itemized lines | ${RES[$l.changes]} / ${RES[$l.rsync_lines]} | | |"
}
echo "| measurement | result | target | met |"
echo "| --- | --- | --- | --- |"
echo "| load average (1, 5, 15 min) when the diff timings began | $LOAD | | |"
echo "| \`find\` one path, 100 snapshots (median of $N) | ${FIND_MS} ms | <= 1000 ms | $(verdict "$FIND_MS" 1000 '<=') |"
echo "| \`find\` \`**\` glob, 100 snapshots | ${GLOB_MS} ms | <= 1000 ms | $(verdict "$GLOB_MS" 1000 '<=') |"
echo "| \`versions\` one path, 1000 snapshots, 4 versions (median of $N) | ${VERSIONS_MS} ms | <= 100 ms | $(verdict "$VERSIONS_MS" 100 '<=') |"
echo "| \`restore\` of a 1 GiB file (${RESTORE_METHOD}) | ${RESTORE_MS} ms | <= 50 ms | $(verdict "$RESTORE_MS" 50 '<=') |"
row clustered "(clustered in 10% of the directories)" 20
row scattered "(scattered over all directories)" 10
