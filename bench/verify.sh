#!/usr/bin/env bash
# Benchmark: what `wayback verify` adds to PostgreSQL's own start, and how ten jobs in parallel compare
# with one.
#
#     sudo bench/verify.sh            # BENCH_N=5 repetitions (median); BENCH_JOBS=10
#
# A PostgreSQL cluster (the newest under /usr/lib/postgresql, a table of 1000 rows) on a loop btrfs pool,
# snapshotted read-only. Each repetition measures:
#   verify   `wayback verify pg --snapshot @1`: clone, network namespace, container, PostgreSQL's start
#            and readiness, a `tcp` check and a `sql` check (psql inside the instance through `wayback
#            exec`), teardown, history row; wall time of the command;
#   pg       the database's own share of that: on a writable snapshot of the same snapshot, `pg_ctl start
#            -w` (crash recovery included, as in the instance), the same query with psql, `pg_ctl stop -m
#            fast`; wall time of these three;
#   overhead = median(verify) - median(pg). Target: <= 0.5 s.
#   parallel BENCH_JOBS jobs on the same snapshot, `[verify] parallel = BENCH_JOBS`, `verify --all
#            --snapshot @1`; wall time against median(verify). Target: <= 2x. For scale, the same number
#            of clusters started, queried and stopped by hand at once (each on its own writable snapshot).
#
# Output: a markdown table on stdout (progress on stderr). Everything lives in a temp dir named wbtb* and
# is removed at the end, also on error. Needs root, btrfs-progs, systemd-container, postgresql.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
N="${BENCH_N:-5}"
JOBS="${BENCH_JOBS:-10}"
WORK="$(mktemp -d "${TMPDIR:-/var/tmp}/wbtb$$-XXXX")"
IMG="$WORK/wbtb.img"
MNT="$WORK/mnt"
CFG="$WORK/config.toml"
SOCK="$WORK/sock"

# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"

cleanup() {
    set +e
    [ -f "$CFG" ] && [ -n "${WAYBACK:-}" ] && "$WAYBACK" -q --config "$CFG" gc >/dev/null 2>&1
    if [ -n "${PGBIN:-}" ] && [ -d "$MNT/work" ]; then
        runuser -u postgres -- "$PGBIN/pg_ctl" -D "$MNT/work/$PGREL" -m immediate stop >/dev/null 2>&1
    fi
    for d in "$MNT"/w[0-9]*; do
        [ -d "$d/$PGREL" ] && runuser -u postgres -- "$PGBIN/pg_ctl" -D "$d/$PGREL" -m immediate stop >/dev/null 2>&1
    done
    pool_remove
    rm -rf "$WORK"
}
trap cleanup EXIT

need_root btrfs mkfs.btrfs losetup systemd-nspawn runuser
PGV=$(ls /usr/lib/postgresql | sort -n | tail -1)
PGBIN="/usr/lib/postgresql/$PGV/bin"
[ -x "$PGBIN/postgres" ] || die "PostgreSQL not installed (/usr/lib/postgresql/*/bin/postgres)"
PGREL="var/lib/postgresql/$PGV/bench"
wayback_binary

ms_since() { echo $(( ($(now_ns) - $1) / 1000000 )); }

log "pool and cluster in $WORK"
chmod 755 "$WORK"
pool_create 2G
mkdir "$SOCK" "$WORK/jobs"
chown postgres:postgres "$SOCK"
btrfs subvolume create "$MNT/live" >/dev/null
mkdir -p "$MNT/live/var/lib/postgresql/$PGV"
chown -R postgres:postgres "$MNT/live/var/lib/postgresql"
(cd "$WORK" && runuser -u postgres -- "$PGBIN/initdb" -D "$MNT/live/$PGREL" -U postgres --auth=trust \
    --no-sync -E UTF8 --locale=C >/dev/null)
printf "listen_addresses = '127.0.0.1'\nport = 5432\n" >>"$MNT/live/$PGREL/postgresql.conf"
(cd "$WORK" && runuser -u postgres -- "$PGBIN/postgres" --single -D "$MNT/live/$PGREL" postgres >/dev/null 2>&1 <<'SQL'
CREATE TABLE invoices (id int PRIMARY KEY, customer text NOT NULL);
INSERT INTO invoices SELECT i, 'customer ' || i FROM generate_series(1, 1000) AS i;
SQL
)
mkdir "$MNT/snaps"
btrfs subvolume snapshot -r "$MNT/live" "$MNT/snaps/s1" >/dev/null

cat >"$CFG" <<CONFIG
state_dir = "$WORK/state"
runtime_dir = "$WORK/run"
address_pool = "10.213.248.0/22"
[verify]
jobs_dir = "$WORK/jobs"
parallel = $JOBS
CONFIG
job() {
    cat >"$WORK/jobs/$1.toml" <<JOB
root = "$MNT/snaps"
[run]
profile = "postgresql"
[[check]]
name = "port"
tcp = 5432
[[check]]
name = "invoices"
sql = "SELECT count(*) FROM invoices"
client = "psql"
min = 1000
JOB
}
job pg
wb() { "$WAYBACK" -q --config "$CFG" "$@"; }

# --- one job: verify against PostgreSQL's own start ---------------------------------------------------------
verify_once() {
    local t0
    t0=$(now_ns)
    wb verify pg --snapshot @1 >"$WORK/one.out" 2>&1 || die "verify failed: $(tail -20 "$WORK/one.out")"
    ms_since "$t0"
}
pg_once() {
    local t0 ms
    btrfs subvolume snapshot "$MNT/snaps/s1" "$MNT/work" >/dev/null
    t0=$(now_ns)
    (cd "$WORK" && runuser -u postgres -- "$PGBIN/pg_ctl" -D "$MNT/work/$PGREL" -s -w -t 60 \
        -o "-k $SOCK -c listen_addresses=''" -l "$SOCK/pg.log" start)
    (cd "$WORK" && runuser -u postgres -- "$PGBIN/psql" -X -A -t -q -h "$SOCK" -U postgres -d postgres \
        -c 'SELECT count(*) FROM invoices' >/dev/null)
    (cd "$WORK" && runuser -u postgres -- "$PGBIN/pg_ctl" -D "$MNT/work/$PGREL" -s -m fast -w stop)
    ms=$(ms_since "$t0")
    btrfs subvolume delete "$MNT/work" >/dev/null
    echo "$ms"
}
log "warm-up"
verify_once >/dev/null
pg_once >/dev/null
log "one job: $N runs each"
V=$(for _ in $(seq "$N"); do verify_once; done | median)
P=$(for _ in $(seq "$N"); do pg_once; done | median)

# --- BENCH_JOBS jobs at once --------------------------------------------------------------------------------
rm "$WORK/jobs/pg.toml"
for i in $(seq "$JOBS"); do job "pg$i"; done
log "$JOBS jobs in parallel: $N runs"
par_once() {
    local t0
    t0=$(now_ns)
    wb verify --all --snapshot @1 >"$WORK/par.out" 2>&1 || die "parallel verify failed: $(tail -20 "$WORK/par.out")"
    ms_since "$t0"
}
PAR=$(for _ in $(seq "$N"); do par_once; done | median)

# The database's own share of that: BENCH_JOBS clusters started, queried and stopped at once.
pg_one_of_many() {
    local i=$1 sock="$SOCK/$1"
    runuser -u postgres -- mkdir -p "$sock"
    (cd "$WORK" && runuser -u postgres -- "$PGBIN/pg_ctl" -D "$MNT/w$i/$PGREL" -s -w -t 120 \
        -o "-k $sock -c listen_addresses=''" -l "$sock/pg.log" start &&
        runuser -u postgres -- "$PGBIN/psql" -X -A -t -q -h "$sock" -U postgres -d postgres \
            -c 'SELECT count(*) FROM invoices' >/dev/null &&
        runuser -u postgres -- "$PGBIN/pg_ctl" -D "$MNT/w$i/$PGREL" -s -m fast -w stop)
}
pg_par_once() {
    local t0 ms i
    for i in $(seq "$JOBS"); do btrfs subvolume snapshot "$MNT/snaps/s1" "$MNT/w$i" >/dev/null; done
    t0=$(now_ns)
    for i in $(seq "$JOBS"); do pg_one_of_many "$i" & done
    wait
    ms=$(ms_since "$t0")
    for i in $(seq "$JOBS"); do btrfs subvolume delete "$MNT/w$i" >/dev/null; done
    echo "$ms"
}
log "$JOBS PostgreSQL clusters alone in parallel: $N runs"
PGPAR=$(for _ in $(seq "$N"); do pg_par_once; done | median)

verdict() { if [ "$1" = 1 ]; then echo "met"; else echo "**not met**"; fi; }
OVER=$((V - P))
RATIO=$(awk -v a="$PAR" -v b="$V" 'BEGIN { printf "%.2f", a / b }')
echo "| measurement | median of $N | target |"
echo "|---|---|---|"
echo "| \`verify\` of one PostgreSQL job (tcp + sql check) | $V ms | — |"
echo "| PostgreSQL's own start + query + stop | $P ms | — |"
echo "| wayback's overhead per job | $OVER ms | ≤ 500 ms ($(verdict $((OVER <= 500)))) |"
echo "| $JOBS jobs in parallel (parallel = $JOBS) | $PAR ms = ${RATIO}× one job | ≤ 2× ($(verdict "$(awk -v r="$RATIO" 'BEGIN { print (r <= 2) }')")) |"
echo "| $JOBS PostgreSQL clusters alone in parallel (start + query + stop) | $PGPAR ms = $(awk -v a="$PGPAR" -v b="$P" 'BEGIN { printf "%.2f", a / b }')× one | — |"
echo "| wayback's overhead with $JOBS in parallel | $((PAR - PGPAR)) ms | — |"
echo
echo "$(nproc) CPUs, $(uname -r), PostgreSQL $PGV, wayback $("$WAYBACK" --version | awk '{print $2}')"
