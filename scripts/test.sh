#!/usr/bin/env bash
# The project's test command (README: "Tests"): formatting, lints, then every test of the workspace.
# The integration tests in crates/wayback/tests need root (btrfs loop mounts, network namespaces,
# systemd-nspawn); without root they print "SKIP: ... needs root", and with CI=true they fail instead.
# Privileged tests name everything uniquely, so they may run in parallel; two threads match the 2-core
# machines this runs on and keep timing-sensitive tests (TTL, readiness) honest.
set -euo pipefail

cd "$(dirname "$0")/.."

# Install what the build and the privileged tests need (skip with WAYBACK_SKIP_INSTALL=1).
if [ "${WAYBACK_SKIP_INSTALL:-}" != 1 ]; then
    scripts/install-deps.sh
fi

# rustup's default location, for environments whose PATH lacks it.
if ! command -v cargo >/dev/null && [ -x "${HOME:-/root}/.cargo/bin/cargo" ]; then
    PATH="${HOME:-/root}/.cargo/bin:$PATH"
fi

echo "== cargo fmt --check"
cargo fmt --all -- --check

echo "== cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings

echo "== the previous release (v0.1.0), for the upgrade tests"
scripts/prev-release.sh

echo "== Debian package: build, install, man page, daemon smoke test, upgrade from the previous release"
scripts/build-deb.sh
scripts/deb-smoke.sh

echo "== cargo test"
cargo test --workspace --no-fail-fast -- --test-threads="${WAYBACK_TEST_THREADS:-2}"
