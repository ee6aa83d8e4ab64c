#!/usr/bin/env bash
# Install everything wayback's build, tests, demo and benchmarks need on a fresh Debian 12 machine (root, no
# stdin). Packaged services are not left running: the tests start their own, in their own namespaces.
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive

if [ "$(id -u)" -ne 0 ]; then
    echo "install-deps: must run as root" >&2
    exit 1
fi

# Packaged services must not start on install (Debian's convention: policy-rc.d exit 101). Keep an existing
# policy; otherwise install one for the duration of this run.
policy_installed=""
if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    policy_installed=1
fi
cleanup_policy() { if [ -n "$policy_installed" ]; then rm -f /usr/sbin/policy-rc.d; fi; }
trap cleanup_policy EXIT

# shellcheck source=packages.sh
. scripts/packages.sh

apt-get update -q
apt-get install -y -q --no-install-recommends "${WAYBACK_PACKAGES[@]}"
cleanup_policy
trap - EXIT

# No packaged service may be left running: the tests use port 5432/80 inside their own namespaces only, and
# must not find a stray server. (Nothing started them here, but a reused machine might have them up.)
for svc in postgresql nginx mariadb; do
    if [ -x "/etc/init.d/$svc" ]; then
        "/etc/init.d/$svc" stop >/dev/null 2>&1 || true
    fi
done

if ! command -v cargo >/dev/null && [ -x "${HOME:-/root}/.cargo/bin/cargo" ]; then
    PATH="${HOME:-/root}/.cargo/bin:$PATH"
fi

# Facts the tests rely on; fail early and clearly.
for tool in mkfs.btrfs btrfs losetup systemd-nspawn nft ip nginx runuser cargo; do
    command -v "$tool" >/dev/null || { echo "install-deps: $tool not found after install" >&2; exit 1; }
done
ls /usr/lib/postgresql/*/bin/postgres >/dev/null
echo "kernel $(uname -r); $(systemd-nspawn --version | head -1); $(cargo --version)"
