//! `up` rows: boot mode, units, --exec and --user, egress holes, id maps, environment, and
//! --dry-run/--export/--detach.

use crate::fixture::Cx;
use crate::rows::{up, Row, EXIT};

/// Boot mode, units, --exec and --user, egress, ids, env, --dry-run/--export/--detach.
pub fn modes(cx: &Cx) -> Vec<Row> {
    let s = cx.snap.as_str();
    let e = |label: &str, extra: &[&str], has: &[&str]| {
        let mut args = vec![s];
        args.extend_from_slice(extra);
        up(label, &args).has(has)
    };
    let ex = |label: &str, extra: &[&str], has: &[&str]| {
        let mut args = vec!["--exec", EXIT];
        args.extend_from_slice(extra);
        e(label, &args, has)
    };
    vec![
        e(
            "--boot with --exec",
            &["--boot", "--exec", EXIT],
            &["'--boot' cannot be used with '--exec"],
        ),
        e(
            "--boot with --unit",
            &["--boot", "--unit", "nginx"],
            &["cannot be used with"],
        ),
        e(
            "--boot with --user",
            &["--boot", "--user", "root", "--dry-run"],
            &["--user needs --exec"],
        ),
        e(
            "--mask without --boot",
            &["--profile", "nginx-static", "--mask", "cron"],
            &["--boot"],
        ),
        ex(
            "--mask next to --exec",
            &["--mask", "cron"],
            &["--mask is for boot mode", "--boot"],
        ),
        ex(
            "--no-default-masks next to --exec",
            &["--no-default-masks"],
            &["--no-default-masks is for boot mode"],
        ),
        e(
            "--mask walking out",
            &[
                "--boot",
                "--mask",
                "../../../wbt-escape.service",
                "--dry-run",
            ],
            &["invalid --mask \"../../../wbt-escape.service\""],
        ),
        e(
            "--mask with a slash",
            &["--boot", "--mask", "a/b.service", "--dry-run"],
            &["invalid --mask \"a/b.service\""],
        ),
        e(
            "--mask empty",
            &["--boot", "--mask", "", "--dry-run"],
            &["invalid --mask \"\""],
        ),
        e(
            "--mask ..",
            &["--boot", "--mask", "..", "--dry-run"],
            &["invalid --mask \"..\""],
        ),
        e(
            "--unit unknown",
            &["--unit", "wbt-no-such-unit"],
            &["unit wbt-no-such-unit.service not found", "systemctl cat"],
        ),
        e(
            "--unit with ..",
            &["--unit", "foo/../bar"],
            &["invalid unit name \"foo/../bar\""],
        ),
        e("--unit empty", &["--unit", ""], &["invalid unit name \"\""]),
        e(
            "--unit not a service",
            &["--unit", "wbt.socket"],
            &["wbt.socket is not a service"],
        ),
        e(
            "--unit template",
            &["--unit", "getty@.service"],
            &["is a template"],
        ),
        e(
            "--unit with --exec",
            &["--unit", "nginx", "--exec", EXIT],
            &["cannot be used with"],
        ),
        e(
            "--unit with --user",
            &["--unit", "nginx", "--user", "www-data", "--dry-run"],
            &["--user needs --exec"],
        ),
        e(
            "--user without --exec",
            &["--profile", "nginx-static", "--user", "root"],
            &["--exec <CMD>"],
        ),
        ex(
            "--user unknown",
            &["--user", "wbtnosuchuser"],
            &["\"wbtnosuchuser\"", "does not exist on this host", "--user"],
        ),
        e(
            "--exec empty",
            &["--exec", ""],
            &["--exec number 1 is empty"],
        ),
        e(
            "--exec blank second",
            &["--exec", EXIT, "--exec", "   "],
            &["--exec number 2 is empty"],
        ),
        ex(
            "--allow-egress without port",
            &["--allow-egress", "1.2.3.4"],
            &["\"1.2.3.4\"", "not an address with a port"],
        ),
        ex(
            "--allow-egress port 0",
            &["--allow-egress", "tcp:1.2.3.4:0"],
            &["port 0"],
        ),
        ex(
            "--allow-egress protocol",
            &["--allow-egress", "icmp:1.2.3.4:5"],
            &["must be tcp: or udp:"],
        ),
        ex(
            "--allow-egress a name",
            &["--allow-egress", "example.com:80"],
            &["IP address literal"],
        ),
        ex(
            "--allow-egress empty",
            &["--allow-egress", ""],
            &["--allow-egress"],
        ),
        ex(
            "--map-uid without user",
            &["--map-uid", "991"],
            &["expected ID:NAME, got \"991\""],
        ),
        ex(
            "--map-uid not numeric",
            &["--map-uid", "abc:root"],
            &["\"abc\" is not a numeric id"],
        ),
        ex(
            "--map-uid too big",
            &["--map-uid", "99999999999:root"],
            &["is not a numeric id"],
        ),
        ex(
            "--map-uid unknown user",
            &["--map-uid", "991:wbtnosuchuser"],
            &["no user \"wbtnosuchuser\" on this host"],
        ),
        ex(
            "--map-gid unknown group",
            &["--map-gid", "991:wbtnosuchgroup"],
            &["no group \"wbtnosuchgroup\" on this host"],
        ),
        ex(
            "--env without =",
            &["--env", "NOEQ"],
            &["expected KEY=VALUE, got \"NOEQ\""],
        ),
        ex("--env empty key", &["--env", "=v"], &["expected KEY=VALUE"]),
        ex(
            "--env key with space",
            &["--env", "A B=1"],
            &["expected KEY=VALUE"],
        ),
        ex(
            "--detach with --dry-run",
            &["--detach", "--dry-run"],
            &["cannot be used with"],
        ),
        ex(
            "--export without --dry-run",
            &["--export", "nixos"],
            &["--dry-run"],
        ),
        ex(
            "--export with --detach",
            &["--detach", "--export", "nixos"],
            &["cannot be used with"],
        ),
        ex(
            "--export unknown format",
            &["--dry-run", "--export", "yaml"],
            &["'yaml'", "nixos, nginx"],
        ),
        ex(
            "--tls-cert without --tls-key",
            &[
                "--port",
                "8000",
                "--dry-run",
                "--export",
                "nginx",
                "--tls-cert",
                "/x",
            ],
            &["--tls-key <FILE>"],
        ),
    ]
}
