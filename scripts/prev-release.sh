#!/usr/bin/env bash
# Build the previous release (v0.1.0, commit 7afbd30: the last one before state files carried a format
# version) for the upgrade tests: target/prev-release/wayback and target/prev-release/wayback_0.1.0_*.deb.
# Cached: nothing is rebuilt when the binary for that commit is there. Needs the commit in this checkout's git
# history (a full clone; `git fetch --unshallow` in a shallow one). Prints the binary's path.
set -euo pipefail
cd "$(dirname "$0")/.."

commit=7afbd30
out=target/prev-release
if [ -x "$out/wayback" ] && [ "$(cat "$out/COMMIT" 2>/dev/null)" = "$commit" ]; then
    echo "$PWD/$out/wayback"
    exit 0
fi
if ! git cat-file -e "$commit^{commit}" 2>/dev/null; then
    git fetch --unshallow >/dev/null 2>&1 || true
fi
git cat-file -e "$commit^{commit}" 2>/dev/null || {
    echo "prev-release: commit $commit (v0.1.0) is not in this checkout's history; the upgrade tests need a full clone" >&2
    exit 1
}
mkdir -p "$out"
src=$(mktemp -d "${TMPDIR:-/tmp}/wbtprev.XXXXXX")
trap 'git worktree remove --force "$src" >/dev/null 2>&1; rm -rf "$src"' EXIT
git worktree add --detach --force "$src" "$commit" >/dev/null 2>&1
# Its own target dir (its profile differs from this tree's), kept between runs.
CARGO_TARGET_DIR="$PWD/$out/target" cargo build -q -p wayback --manifest-path "$src/Cargo.toml" >&2
cp "$out/target/debug/wayback" "$out/wayback"
echo "$commit" > "$out/COMMIT"
WAYBACK_BIN="$out/wayback" WAYBACK_DEB_DIR="$out" scripts/build-deb.sh >&2
echo "$PWD/$out/wayback"
