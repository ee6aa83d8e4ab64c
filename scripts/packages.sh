# Debian packages wayback's build, tests, demo and benchmarks need (sourced by scripts/install-deps.sh,
# demo/demo.sh and the benchmarks, so there is one list).
# shellcheck disable=SC2034
WAYBACK_PACKAGES=(
    # wayback's own runtime needs
    btrfs-progs systemd-container nftables iproute2 util-linux procps
    # building (bindgen for btrfs ioctls needs libclang)
    libclang-dev clang pkg-config build-essential ca-certificates
    # services used by the profiles and the tests (redis-server, mosquitto: `up --unit` with nothing else)
    postgresql postgresql-client nginx-light mariadb-server redis-server mosquitto mosquitto-clients
    # demo, benchmarks, packaging checks (man page), the ACME test (pebble)
    curl wrk hyperfine man-db pebble debootstrap
    # bench/pingora_eval.sh builds pingora-proxy, whose zlib-ng build needs cmake
    cmake
    # the host proxies wayback drives (tests/drivers.rs) and the MediaWiki end-to-end test
    caddy mediawiki php-fpm php-mysql php-apcu
    # NixOS checks: nix-instantiate for the Nix files, busybox + patchelf for the NixOS-like layout test
    nix-bin busybox patchelf
    # the console's browser tests (tests/console_browser/): headless Chromium driven through chromedriver
    chromium chromium-driver
)
