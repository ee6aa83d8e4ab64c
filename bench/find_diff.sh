#!/usr/bin/env bash
# Benchmark: `wayback find` across 100 snapshots, and `wayback diff` of two snapshots of a big tree
# against rsync's dry run on the same pair.
#
#     sudo bench/find_diff.sh            # BENCH_N=5 repetitions (median); BENCH_FILES=200000
#
#   find   `wayback find PATH --root LIVE` over 100 snapper snapshots (a literal path, and a `**` glob
#          under the same prefix). Target: <= 1 s.
#   diff   two pairs of read-only snapshots of a tree of BENCH_FILES files (200 directories), each pair
#          ~1% apart (half appended to, a quarter deleted, a quarter added): once clustered in 10% of
#          the directories (a spool, an app's data dir), once scattered evenly over all of them (the
#          worst case for the send stream: nearly every metadata leaf differs). `wayback diff A B`
#          (btrfs send stream) versus `rsync -a -n --delete --itemize-changes B/ A/` in the same run,
#          both warm (one untimed run first). Target: wayback >= 5x faster. `diff --walk` shown too.
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

log() { echo "bench: $*" >&2; }
die() { echo "bench: $*" >&2; exit 1; }
now_ns() { date +%s%N; }

cleanup() {
    set +e
    if mountpoint -q "$MNT" 2>/dev/null; then umount "$MNT" || umount -l "$MNT"; fi
    for dev in $(losetup -j "$IMG" 2>/dev/null | cut -d: -f1); do losetup -d "$dev"; done
    rm -rf "$WORK"
}
trap cleanup EXIT

[ "$(id -u)" -eq 0 ] || die "run as root"
for t in btrfs mkfs.btrfs losetup rsync mountpoint; do
    command -v "$t" >/dev/null || die "$t not found"
done
if [ -z "${WAYBACK:-}" ]; then
    command -v cargo >/dev/null || PATH="${HOME:-/root}/.cargo/bin:$PATH"
    log "building wayback (release)"
    (cd "$ROOT" && cargo build --release -q -p wayback) >&2
    WAYBACK="$ROOT/target/release/wayback"
fi
printf 'state_dir = "%s/state"\nruntime_dir = "%s/run"\n' "$WORK" "$WORK" >"$CFG"
wb() { "$WAYBACK" --config "$CFG" "$@"; }

# median of the numbers on stdin
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
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

log "pool in $WORK"
truncate -s 8G "$IMG"
mkfs.btrfs -q -f "$IMG" >/dev/null
mkdir "$MNT"
mount -o loop "$IMG" "$MNT"

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

# --- diff: FILES files, ~1% changed ----------------------------------------------------------------------
BIG="$MNT/big"
btrfs subvolume create "$BIG" >/dev/null
PER=$(( FILES / 200 ))
log "making $FILES files"
for d in $(seq -w 0 199); do
    mkdir "$BIG/d$d"
    (cd "$BIG/d$d" && seq -f 'f%06g' 1 "$PER" | xargs touch)
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
    (cd "$BIG/d$d" && seq -f 'new%06g' 1 $(( CL / 4 )) | xargs touch)
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
    (cd "$BIG/d$d" && seq -f 'add%06g' 1 $(( ADD / 200 )) | xargs touch)
done
btrfs subvolume snapshot -r "$BIG" "$MNT/snaps/C" >/dev/null

declare -A RES
pair() {  # pair LABEL OLD NEW
    local label=$1 a=$2 b=$3
    RES[$label.changes]=$(wb diff "$a" "$b" 2>/dev/null | tail -n 1)
    RES[$label.rsync_lines]=$(rsync -a -n --delete --itemize-changes "$b/" "$a/" | wc -l)
    RES[$label.diff]=$(bench_ms wb diff "$a" "$b")
    RES[$label.walk]=$(bench_ms wb diff --walk "$a" "$b")
    RES[$label.rsync]=$(bench_ms rsync -a -n --delete --itemize-changes "$b/" "$a/")
    RES[$label.x]=$(awk -v r="${RES[$label.rsync]}" -v w="${RES[$label.diff]}" 'BEGIN { printf "%.1f", r / (w > 0 ? w : 1) }')
}
log "timing diff and rsync (clustered)"
pair clustered "$MNT/snaps/A" "$MNT/snaps/B"
log "timing diff and rsync (scattered)"
pair scattered "$MNT/snaps/B" "$MNT/snaps/C"

verdict() { if awk -v a="$1" -v b="$2" "BEGIN { exit !(a $3 b) }"; then echo yes; else echo NO; fi; }
row() {  # row LABEL DESCRIPTION
    local l=$1
    echo "| \`diff\` A B, $FILES files, ~1% changed $2 (send stream) | ${RES[$l.diff]} ms | | |"
    echo "| \`rsync -a -n --delete --itemize-changes\` same pair | ${RES[$l.rsync]} ms | | |"
    echo "| speed-up of \`diff\` over rsync, $2 | ${RES[$l.x]}x | >= 5x | $(verdict "${RES[$l.x]}" 5 '>=') |"
    echo "| \`diff --walk\` (fallback) same pair | ${RES[$l.walk]} ms | | |"
    echo "| changes found, $2: wayback / rsync itemized lines | ${RES[$l.changes]} / ${RES[$l.rsync_lines]} | | |"
}
echo "| measurement | result | target | met |"
echo "| --- | --- | --- | --- |"
echo "| \`find\` one path, 100 snapshots (median of $N) | ${FIND_MS} ms | <= 1000 ms | $(verdict "$FIND_MS" 1000 '<=') |"
echo "| \`find\` \`**\` glob, 100 snapshots | ${GLOB_MS} ms | <= 1000 ms | $(verdict "$GLOB_MS" 1000 '<=') |"
row clustered "(clustered in 10% of the directories)"
row scattered "(scattered over all directories)"
