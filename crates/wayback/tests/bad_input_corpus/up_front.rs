//! `up` rows: publishes, ports, hostnames, durations, the access gate, the hostname masquerade, and
//! the running instance's hostname taken in every spelling.

use crate::fixture::Cx;
use crate::rows::{up, Row, EXIT, GATE, HOST_RULE};
use wayback_testsupport::free_port;

/// Publishes, ports, hostnames and durations.
pub fn network(cx: &Cx) -> Vec<Row> {
    let s = cx.snap.as_str();
    // --allow-empty: these rows are about the network, not about what is bound.
    let e = |label: &str, extra: &[&str], has: &[&str]| {
        let mut args = vec![s, "--exec", EXIT, "--allow-empty"];
        args.extend_from_slice(extra);
        up(label, &args).has(has)
    };
    let proxy = format!("127.0.0.1:{}:80", cx.proxy_port);
    let free = free_port();
    let (twice_a, twice_b) = (format!("{free}:80"), format!("{free}:81"));
    vec![
        e(
            "--publish without container port",
            &["--publish", "80"],
            &[
                "invalid value '80' for '--publish",
                "missing container port",
            ],
        ),
        e(
            "--publish host port 0",
            &["--publish", "0:80"],
            &["\"0:80\"", "host port must be 1-65535"],
        ),
        e(
            "--publish container port 0",
            &["--publish", "15432:0"],
            &["container port must be 1-65535"],
        ),
        e(
            "--publish port too big",
            &["--publish", "99999:5432"],
            &["host port must be 1-65535"],
        ),
        e(
            "--publish bad address",
            &["--publish", "a:1:2"],
            &["bad listen address"],
        ),
        e(
            "--publish bad IPv4",
            &["--publish", "1.2.3.4.5:80:80"],
            &["bad listen address"],
        ),
        e("--publish empty", &["--publish", ""], &["--publish"]),
        e(
            "--publish on the proxy's port",
            &["--publish", &proxy],
            &[&proxy[..proxy.len() - 3], "in use"],
        ),
        e(
            "--publish one port twice",
            &["--publish", &twice_a, "--publish", &twice_b],
            &[&format!("127.0.0.1:{free}"), "in use"],
        ),
        e(
            "--port 0",
            &["--port", "0"],
            &["invalid value '0' for '--port", "0 is not in 1..=65535"],
        ),
        e(
            "--port too big",
            &["--port", "70000"],
            &["'70000'", "--port"],
        ),
        e("--port a name", &["--port", "http"], &["'http'", "--port"]),
        e(
            "--port negative",
            &["--port", "-1"],
            &["unexpected argument '-1'"],
        ),
        e(
            "--host invalid",
            &["--port", "8000", "--host", "bad_host!"],
            &["invalid hostname \"bad_host!\"", HOST_RULE],
        ),
        e(
            "--host empty label",
            &["--port", "8000", "--host", "a..b"],
            &["invalid hostname \"a..b\""],
        ),
        e(
            "--host too long",
            &[
                "--port",
                "8000",
                "--host",
                &format!("{}.example", "a".repeat(300)),
            ],
            &["invalid hostname", "253 characters"],
        ),
        e(
            "--host bad punycode",
            &["--port", "8000", "--host", "xn--.example"],
            &["invalid hostname \"xn--.example\""],
        ),
        e(
            "--host with a port",
            &["--port", "8000", "--host", "a.example:80"],
            &["invalid hostname \"a.example:80\""],
        ),
        e(
            "--host without a route",
            &["--host", "ok.example"],
            &["--host ok.example", "--port PORT"],
        ),
        e(
            "--ttl unit",
            &["--ttl", "5x"],
            &["invalid duration \"5x\"", "examples: 90s"],
        ),
        e(
            "--ttl zero",
            &["--ttl", "0s"],
            &["\"0s\"", "longer than zero"],
        ),
        e("--ttl empty", &["--ttl", ""], &["invalid duration \"\""]),
        e(
            "--ttl overflow",
            &["--ttl", "99999999999999999999w"],
            &["number too large"],
        ),
        e(
            "--ttl missing unit",
            &["--ttl", "1h5"],
            &["\"1h5\"", "missing unit"],
        ),
        e(
            "--ttl negative",
            &["--ttl", "-5m"],
            &["unexpected argument '-5'"],
        ),
        e(
            "--idle without a route",
            &["--idle", "10m"],
            &["--idle needs an HTTP route"],
        ),
        e(
            "--idle zero",
            &["--port", "8000", "--idle", "0s"],
            &["--idle", "longer than zero"],
        ),
    ]
}

/// The gate, the masquerade, the proxy driver, and the running instance's hostname in every spelling.
pub fn gate(cx: &Cx) -> Vec<Row> {
    let s = cx.snap.as_str();
    let e = |label: &str, extra: &[&str], has: &[&str]| {
        let mut args = vec![s, "--exec", EXIT];
        args.extend_from_slice(extra);
        up(label, &args).has(has)
    };
    let taken = format!(
        "hostname {} is already used by instance {}",
        cx.run_host, cx.run
    );
    let down = format!("`wayback down {}`", cx.run);
    let upper = format!("XN--BCHER-KVA.{}.TEST.", cx.run.to_uppercase());
    let unicode = format!("bücher.{}.test", cx.run);
    let fullwidth = format!("ｂüｃｈｅｒ。{}。test", cx.run);
    let pw = |n: &str| cx.at(&format!("pw/{n}"));
    let mut v = vec![
        e(
            "--share zero",
            &["--port", "8000", "--share", "0s"],
            &["--share", "longer than zero"],
        ),
        e(
            "--share garbage",
            &["--port", "8000", "--share", "soon"],
            &["invalid duration \"soon\""],
        ),
        e("--share without a route", &["--share"], &[GATE]),
        e(
            "--allow without a route",
            &["--allow", "10.0.0.0/8"],
            &[GATE],
        ),
        e(
            "--allow prefix too long",
            &["--port", "8000", "--allow", "10.0.0.0/33"],
            &["'10.0.0.0/33'", "--allow"],
        ),
        e(
            "--allow garbage",
            &["--port", "8000", "--allow", "localnet"],
            &["'localnet'", "--allow"],
        ),
        e(
            "--basic-auth without a route",
            &["--basic-auth", "u", "--basic-auth-file", &pw("ok")],
            &[GATE],
        ),
        e(
            "--basic-auth user with ':'",
            &[
                "--port",
                "8000",
                "--basic-auth",
                "a:b",
                "--basic-auth-file",
                &pw("long"),
            ],
            &["invalid --basic-auth user \"a:b\"", "':'"],
        ),
        e(
            "--basic-auth empty user",
            &[
                "--port",
                "8000",
                "--basic-auth",
                "",
                "--basic-auth-file",
                &pw("long"),
            ],
            &["invalid --basic-auth user \"\""],
        ),
        e(
            "--basic-auth password over 72 bytes",
            &[
                "--port",
                "8000",
                "--basic-auth",
                "u",
                "--basic-auth-file",
                &pw("long"),
            ],
            &["password is 99 bytes long", "at most 72"],
        )
        .lacks(&["-password-pppp"]),
        e(
            "--basic-auth-file empty",
            &[
                "--port",
                "8000",
                "--basic-auth",
                "u",
                "--basic-auth-file",
                &pw("empty"),
            ],
            &[&pw("empty"), "is empty"],
        ),
        e(
            "--basic-auth-file missing",
            &[
                "--port",
                "8000",
                "--basic-auth",
                "u",
                "--basic-auth-file",
                &pw("none"),
            ],
            &["cannot read", &pw("none")],
        ),
        e(
            "--basic-auth-file a directory",
            &[
                "--port",
                "8000",
                "--basic-auth",
                "u",
                "--basic-auth-file",
                &pw("dir"),
            ],
            &["cannot read", &pw("dir")],
        ),
        e(
            "--basic-auth without a terminal",
            &["--port", "8000", "--basic-auth", "u"],
            &["no terminal", "--basic-auth-file"],
        ),
        e(
            "--basic-auth-file without --basic-auth",
            &["--port", "8000", "--basic-auth-file", &pw("long")],
            &["--basic-auth <USER>"],
        ),
        e(
            "--original-host without a route",
            &["--original-host", "cloud.example.org"],
            &["--original-host cloud.example.org", "needs an HTTP route"],
        ),
        e(
            "--no-rewrite-bodies alone",
            &["--port", "8000", "--no-rewrite-bodies"],
            &["--original-host <HOST|auto>"],
        ),
        e(
            "--proxy unknown driver",
            &["--port", "8000", "--proxy", "apache"],
            &["'apache'", "builtin, nginx, caddy"],
        ),
    ];
    for origin in [
        "ftp://x.example",
        "http://",
        "",
        "http://x.example:0",
        "http://x.example:99999",
        "http://x.example/app",
        "x_y.example",
    ] {
        let said = format!("invalid --original-host {origin:?}");
        v.push(
            up(
                &format!("--original-host {origin:?}"),
                &[
                    s,
                    "--exec",
                    EXIT,
                    "--port",
                    "8000",
                    "--original-host",
                    origin,
                ],
            )
            .has(&[&said, "http://HOST[:PORT]"]),
        );
    }
    for host in [
        format!("BÜcher.{}.test.", cx.run),
        cx.run_host.clone(),
        upper,
        unicode,
        fullwidth,
    ] {
        v.push(
            up(
                &format!("--host {host} (taken)"),
                &[
                    s, "--bind", "/srv", "--exec", EXIT, "--port", "8000", "--host", &host,
                ],
            )
            .has(&[&taken, &down]),
        );
    }
    v
}
