//! `up` rows: profiles (missing, invalid, secret files, bad processes) and bind paths (relative, '..', missing,
//! symlinks out of the snapshot, reserved destinations), and the host paths the container sees.

use crate::fixture::Cx;
use crate::rows::{up, Row, EXIT};

pub fn profiles(cx: &Cx) -> Vec<Row> {
    let s = cx.snap.as_str();
    let p = |n: &str| cx.at(&format!("profiles/{n}.toml"));
    let mut v = vec![
        up("nothing to run", &[s]).has(&["nothing to run", "--profile", "--exec"]),
        up("unknown profile", &[s, "--profile", "wbtnosuchprofile"]).has(&[
            "unknown profile \"wbtnosuchprofile\"",
            "available",
            "nginx-static",
        ]),
        up(
            "profile file missing",
            &[s, "--profile", &cx.at("profiles/none.toml")],
        )
        .has(&["cannot read profile", &cx.at("profiles/none.toml")]),
        up(
            "profile is a directory",
            &[s, "--profile", &p("a-directory")],
        )
        .has(&["cannot read profile", &p("a-directory")]),
        up("profile: invalid TOML", &[s, "--profile", &p("bad-toml")]).has(&[
            "invalid profile",
            &p("bad-toml"),
            "line 1",
        ]),
        up("profile: unknown key", &[s, "--profile", &p("unknown-key")])
            .has(&["unknown field `processes`", "line 2"]),
        up(
            "profile: unknown process user",
            &[s, "--profile", &p("unknown-user")],
        )
        .has(&[
            "\"wbtnosuchuser\"",
            "does not exist on this host",
            "process web",
        ]),
        up(
            "profile: unknown process group",
            &[s, "--profile", &p("unknown-group")],
        )
        .has(&["\"wbtnosuchgroup\"", "does not exist on this host"]),
        up(
            "profile: relative bind",
            &[s, "--profile", &p("relative-bind")],
        )
        .has(&["bind srv must be an absolute path"]),
        up(
            "profile: bind missing in the snapshot",
            &[s, "--profile", &p("missing-bind")],
        )
        .has(&["/var/lib/wbt-none", "does not exist in snapshot"]),
        up(
            "profile: bind through a symlink out",
            &[s, "--profile", &p("link-bind")],
        )
        .has(&["/srv/abs-link", "symlink to /root"]),
        up(
            "profile: bind onto /proc",
            &[s, "--profile", &p("proc-bind")],
        )
        .has(&["/proc", "the container's own"]),
        up("profile: no processes", &[s, "--profile", &p("no-process")])
            .has(&["nothing to run", "\"p\""]),
        up("profile: command and shell", &[s, "--profile", &p("both")])
            .has(&["exactly one of `command` or `shell`"]),
        up("profile: mode not octal", &[s, "--profile", &p("bad-mode")])
            .has(&["\"9z\" is not octal"]),
        up(
            "built-in profile's bind missing",
            &[s, "--profile", "postgresql"],
        )
        .has(&["/var/lib/postgresql", "does not exist in snapshot"]),
        up(
            "--profile with --unit",
            &[s, "--profile", "nginx-static", "--unit", "nginx"],
        )
        .has(&["--unit", "cannot be used with"]),
    ];
    for (name, _) in crate::fixture::secrets() {
        let file = cx.at(&format!("secrets/{name}"));
        v.push(
            up(
                &format!("--profile {name} (a secret)"),
                &[s, "--profile", &file],
            )
            .has(&["invalid profile", &file, "line"]),
        );
    }
    v
}

pub fn binds(cx: &Cx) -> Vec<Row> {
    let s = cx.snap.as_str();
    let b = |label: &str, bind: &str, has: &[&str]| {
        up(label, &[s, "--exec", EXIT, "--bind", bind]).has(has)
    };
    vec![
        b("bind relative", "srv", &["invalid bind srv", "absolute"]),
        b(
            "bind with ..",
            "/srv/../etc",
            &["invalid bind /srv/../etc", "'..'"],
        ),
        b("bind empty", "", &["invalid bind", "absolute"]),
        b(
            "bind missing",
            "/wbt-none",
            &["/wbt-none", "does not exist in snapshot", s],
        ),
        b(
            "bind: absolute symlink out",
            "/srv/abs-link",
            &["/srv/abs-link", "symlink to /root", "followed only inside"],
        ),
        b(
            "bind: relative symlink out",
            "/srv/rel-link",
            &["/srv/rel-link", "symlink to ../../../root"],
        ),
        b(
            "bind: symlinked parent",
            "/lnk/x",
            &["/lnk/x", "/lnk is a symlink to /root"],
        ),
        b(
            "bind: link into the live subvolume",
            "/srv/live-link",
            &["/srv/live-link", "does not exist in snapshot"],
        ),
        b(
            "bind: symlink loop",
            "/srv/loop1",
            &["/srv/loop1", "cannot be used"],
        ),
        b(
            "bind: a fifo",
            "/srv/fifo",
            &["/srv/fifo", "only directories and regular files"],
        ),
        b(
            "bind: nested subvolume",
            "/var/lib/nested",
            &["/var/lib/nested", "separate btrfs subvolume"],
        ),
        b(
            "bind dest relative",
            "/srv:relative",
            &["invalid bind relative"],
        ),
        b(
            "bind dest with ..",
            "/srv:/srv/../etc",
            &["invalid bind /srv/../etc"],
        ),
        b(
            "bind dest /",
            "/srv:/",
            &["bind /srv cannot go to /:", "the container's own"],
        ),
        b("bind dest /proc", "/srv:/proc", &["cannot go to /proc"]),
        b(
            "bind dest under /sys",
            "/srv:/sys/x",
            &["cannot go to /sys/x"],
        ),
        b("bind dest /run", "/srv:/run", &["cannot go to /run"]),
        b("bind dest /dev", "/srv:/dev", &["cannot go to /dev"]),
        b(
            "bind: too many parts",
            "/srv:/srv:/x:/y",
            &["/srv:/srv:/x:/y", "more than three"],
        ),
        b(
            "bind: selector without root",
            "@999:/srv",
            &["@999", "ROOT@999"],
        ),
        b(
            "bind: selector under a missing root",
            "/wbt-none@2w:/srv",
            &["/wbt-none"],
        ),
        up("--boot with --bind", &[s, "--boot", "--bind", "/srv"])
            .has(&["'--boot' cannot be used with '--bind"]),
    ]
}

pub fn host_view(cx: &Cx) -> Vec<Row> {
    let s = cx.snap.as_str();
    let ex = |label: &str, extra: &[&str], has: &[&str]| {
        let mut args = vec![s, "--exec", EXIT];
        args.extend_from_slice(extra);
        up(label, &args).has(has)
    };
    vec![
        ex(
            "--host-path relative",
            &["--host-path", "srv/app"],
            &["host path srv/app must be absolute"],
        ),
        ex(
            "--host-path with ..",
            &["--host-path", "/srv/../etc"],
            &["host path /srv/../etc must be absolute and without '..'"],
        ),
        ex(
            "--host-path missing",
            &["--host-path", "/wbt-none"],
            &["host path /wbt-none does not exist"],
        ),
        ex(
            "--host-path /usr",
            &["--host-path", "/usr"],
            &["host path /usr", "the container's own"],
        ),
        ex(
            "--host-path /",
            &["--host-path", "/"],
            &["host path / cannot be shown"],
        ),
        ex(
            "--host-path /proc",
            &["--host-path", "/proc"],
            &["host path /proc cannot be shown"],
        ),
        ex(
            "--no-host-path not shown",
            &["--no-host-path", "/etcc"],
            &["--no-host-path /etcc", "does not show it"],
        ),
        ex(
            "--no-host-path relative",
            &["--no-host-path", "etc"],
            &["host path etc must be absolute"],
        ),
        ex(
            "--unmask nothing masked",
            &["--unmask", "/etc/shadoww"],
            &["--unmask /etc/shadoww", "nothing masked", "/etc/shadow"],
        ),
        ex(
            "--unmask a file in a masked directory",
            &["--unmask", "/etc/ssl/private/x.key"],
            &["--unmask /etc/ssl/private/x.key", "nothing masked"],
        ),
        ex(
            "--unmask relative",
            &["--unmask", "etc/shadow"],
            &["host path etc/shadow must be absolute"],
        ),
        up(
            "snapshot on a read-only mount",
            &[&cx.ro_snap, "--exec", EXIT, "--allow-empty"],
        )
        .has(&["mounted read-only", "--overlay", &cx.ro_snap]),
    ]
}
