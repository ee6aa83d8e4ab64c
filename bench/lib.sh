# Shared by the bench scripts (sourced, not run): logging, the root and tool checks, the wayback build,
# medians, and the loop-mounted btrfs pool a bench works in. A script sets ROOT (the repository) and, for
# the pool and instance helpers, IMG, MNT and CFG before calling them.

log() { echo "bench: $*" >&2; }
die() { echo "bench: $*" >&2; exit 1; }
now_ns() { date +%s%N; }

# The median of the numbers on stdin, one per line or separated by spaces: the middle one, the mean of
# the middle two for an even count, "-" for none.
median() {
    tr ' ' '\n' | grep -v '^$' | sort -g |
        awk '{a[NR]=$1} END {if (NR==0) print "-"; else if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'
}

# need_tools TOOL...: stop unless every tool is on PATH.
need_tools() {
    local t
    for t in "$@"; do
        command -v "$t" >/dev/null || die "$t not found (install: see scripts/packages.sh)"
    done
}

# need_root TOOL...: stop unless run as root with every tool on PATH.
need_root() {
    [ "$(id -u)" -eq 0 ] || die "run as root"
    need_tools "$@"
}

# cargo on PATH, at rustup's default place when the environment's PATH lacks it.
cargo_on_path() {
    command -v cargo >/dev/null || PATH="${HOME:-/root}/.cargo/bin:$PATH"
}

# Sets WAYBACK to a release build of this tree, unless WAYBACK names a binary already (another build, for
# a before/after in one session).
wayback_binary() {
    [ -n "${WAYBACK:-}" ] && return 0
    cargo_on_path
    log "building wayback (release)"
    (cd "$ROOT" && cargo build --release -q -p wayback) >&2
    WAYBACK="$ROOT/target/release/wayback"
}

# pool_create SIZE: a btrfs file system of SIZE (truncate's syntax) in $IMG, loop-mounted at $MNT.
pool_create() {
    local dev
    truncate -s "$1" "$IMG" || die "truncate $IMG failed"
    mkfs.btrfs -q -f "$IMG" >/dev/null 2>&1 || die "mkfs.btrfs $IMG failed"
    mkdir -p "$MNT"
    dev="$(losetup --find --show "$IMG")" || die "no loop device for $IMG"
    mount "$dev" "$MNT" || die "mounting $dev at $MNT failed"
}

# pool_remove: $MNT unmounted and $IMG's loop devices detached; nothing to do when they are not there.
pool_remove() {
    local dev
    if mountpoint -q "$MNT" 2>/dev/null; then umount "$MNT" 2>/dev/null || umount -l "$MNT"; fi
    if [ -e "$IMG" ]; then
        for dev in $(losetup -j "$IMG" -O NAME --noheadings 2>/dev/null); do losetup -d "$dev"; done
    fi
}

# instances_remove: every instance of the config $CFG taken down and gc run, when there is a config and a
# binary.
instances_remove() {
    [ -f "$CFG" ] && [ -n "${WAYBACK:-}" ] || return 0
    "$WAYBACK" -q --config "$CFG" down --all >/dev/null 2>&1
    "$WAYBACK" -q --config "$CFG" gc >/dev/null 2>&1
}
