//! Old data, new software (issue 21), tier 1: the snapshot's state against the software that would run it,
//! and `up --software snapshot`, which runs the snapshot's own /usr, /etc and /nix instead of the host's.
//!
//! - A PostgreSQL data directory whose `PG_VERSION` names a major the host lacks is refused in planning
//!   (exit 2) with both versions and the options named; nothing is created.
//! - A debootstrapped Debian root whose own nginx serves a site from a config snippet that exists only in
//!   the snapshot's /etc is served with `--software snapshot` (the snapshot's unit, config and nginx); with
//!   the host's software and the snapshot's nginx config (`--bind-config`), nginx refuses it with its own
//!   message and `up` fails and rolls back.
//! - A NixOS-like root holding its own store (a busybox patched to the snapshot's store glibc, unit files
//!   linking into the store, a system profile) runs the snapshot's unit from its store with
//!   `--software snapshot`, as the snapshot's own user; the host, which has neither the unit nor the store
//!   paths, is refused with a hint.
//!
//! Zero residue after each. Needs root (skips otherwise; fails under CI=true); the Debian test downloads
//! from deb.debian.org exactly as tests/boot.rs does; the NixOS one needs busybox and patchelf.

use std::fs;
use std::os::unix::fs::{chown, symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use wayback_testsupport::*;

/// Write `text` at `rel` inside the tree `root` without ever following a symlink of the tree (a
/// debootstrapped root links into absolute paths such as /etc/nginx/sites-available/…: written through, they
/// would change the host). A link at `rel` itself is replaced; a linked parent is refused.
fn write_in(root: &Path, rel: &str, text: &str) {
    let target = root.join(rel);
    let mut at = root.to_path_buf();
    for c in Path::new(rel).parent().unwrap().components() {
        at.push(c);
        match fs::symlink_metadata(&at) {
            Ok(m) => assert!(
                m.is_dir() && !m.file_type().is_symlink(),
                "{} is not a real directory of the tree",
                at.display()
            ),
            Err(_) => fs::create_dir(&at).unwrap(),
        }
    }
    if fs::symlink_metadata(&target).is_ok_and(|m| m.file_type().is_symlink()) {
        fs::remove_file(&target).unwrap();
    }
    fs::write(&target, text).unwrap();
}

/// Majors of PostgreSQL this host has (`/usr/lib/postgresql/<major>/bin/postgres`).
fn host_pg_majors() -> Vec<String> {
    fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().join("bin/postgres").is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

#[test]
fn a_postgres_major_the_host_lacks_is_refused_in_planning() {
    if !require_root("a_postgres_major_the_host_lacks_is_refused_in_planning") {
        return;
    }
    let majors = host_pg_majors();
    assert!(
        !majors.iter().any(|m| m == "9"),
        "this host has PostgreSQL 9: the test needs a major it lacks"
    );
    let pool = BtrfsPool::new();
    let root = pool.subvolume_create("pgroot");
    // A cluster of PostgreSQL 9 (its PG_VERSION is what counts), and that version's binary in the snapshot.
    write_in(&root, "var/lib/postgresql/9/main/PG_VERSION", "9\n");
    write_in(
        &root,
        "usr/lib/postgresql/9/bin/postgres",
        "#!/bin/sh\nexit 1\n",
    );
    write_in(
        &root,
        "etc/passwd",
        "root:x:0:0::/root:/bin/sh\npostgres:x:70:70::/var/lib/postgresql:/bin/sh\n",
    );
    write_in(&root, "etc/group", "root:x:0:\npostgres:x:70:\n");
    let snap = pool.snapshot_ro("pgroot", "snaps/1");
    // Another snapshot, of no whole root (no /etc): `--software snapshot` cannot use it.
    let data = pool.subvolume_create("pgdata");
    write_in(&data, "var/lib/postgresql/9/main/PG_VERSION", "9\n");
    let data_snap = pool.snapshot_ro("pgdata", "snaps/2");
    let snap_s = path_str(&snap);
    let wb = Wayback::new();

    let mut runs: Vec<(&str, Vec<&str>)> =
        vec![("--profile postgresql", vec!["--profile", "postgresql"])];
    let unit = Path::new("/lib/systemd/system/postgresql@.service").is_file();
    if unit {
        runs.push((
            "--unit postgresql@9-main",
            vec!["--unit", "postgresql@9-main"],
        ));
    }
    for (how, extra) in runs {
        let name = unique("wbtpgold");
        let mut args = vec!["up", snap_s, "--name", &name];
        args.extend(extra);
        let out = wb.run(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{how}: exit 2\n{}", show(&out));
        assert!(
            err.contains("version 9 (its PG_VERSION)") || err.contains("is PostgreSQL 9"),
            "{how}: the data's version\n{err}"
        );
        for m in &majors {
            assert!(
                err.contains(&format!("PostgreSQL {m}")),
                "{how}: the host's PostgreSQL {m}\n{err}"
            );
        }
        assert!(
            err.contains("`--software snapshot`") && err.contains("postgresql-9"),
            "{how}: the options\n{err}"
        );
        Residue::new(&name).pool(&pool).wayback(&wb).assert_none();
        assert!(
            !wb.state_dir().join("instances").join(&name).exists(),
            "{how}: nothing created"
        );
    }
    // The snapshot's own software has PostgreSQL 9: the plan says so.
    let out = wb.run(&[
        "up",
        snap_s,
        "--profile",
        "postgresql",
        "--software",
        "snapshot",
        "--dry-run",
    ]);
    let plan = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", show(&out));
    assert!(
        plan.contains("ok       PostgreSQL 9 data in /var/lib/postgresql/9/main, run by the snapshot's /usr/lib/postgresql/9/bin/postgres"),
        "{plan}"
    );
    // Of a snapshot that is no whole root: refused, naming what it holds.
    let out = wb.run(&[
        "up",
        path_str(&data_snap),
        "--profile",
        "postgresql",
        "--software",
        "snapshot",
        "--dry-run",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("not a whole root filesystem") && err.contains("it holds /var"),
        "{err}"
    );
    let out = wb.run(&["up", path_str(&data_snap), "--profile", "postgresql"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    assert!(
        err.contains("cannot help") && err.contains("postgresql-9"),
        "{err}"
    );
    assert!(is_readonly_subvolume(&snap));
}

/// A minimal Debian root with nginx, debootstrapped into `root` (as tests/boot.rs does).
fn debootstrap(root: &Path) {
    let out = Command::new("debootstrap")
        .args(["--variant=minbase", "--include=nginx-light", "bookworm"])
        .arg(root)
        .arg("http://deb.debian.org/debian")
        .output()
        .expect("run debootstrap (package debootstrap)");
    assert!(out.status.success(), "debootstrap failed\n{}", show(&out));
}

const SNAP_PAGE: &str = "the snapshot's own nginx serves this\n";

#[test]
fn a_debian_roots_own_nginx_serves_a_config_the_hosts_rejects() {
    if !require_root("a_debian_roots_own_nginx_serves_a_config_the_hosts_rejects") {
        return;
    }
    assert!(
        !Path::new("/etc/wbt-snippets").exists(),
        "the host has /etc/wbt-snippets: not this test's"
    );
    let pool = BtrfsPool::with_size(3 << 30);
    let root = pool.subvolume_create("osroot");
    debootstrap(&root);
    // The site's root comes from a snippet only the snapshot's /etc has.
    write_in(
        &root,
        "etc/wbt-snippets/site.conf",
        "root /srv/wbtsite;\nindex index.html;\n",
    );
    write_in(
        &root,
        "etc/nginx/sites-enabled/default",
        "server {\n    listen 80 default_server;\n    include /etc/wbt-snippets/site.conf;\n}\n",
    );
    write_in(&root, "srv/wbtsite/index.html", SNAP_PAGE);
    let snap = pool.snapshot_ro("osroot", "snaps/1");
    write_in(&root, "srv/wbtsite/index.html", "changed live since\n");
    let before = tree_manifest(&snap.join("srv"));
    let snap_s = path_str(&snap);
    let wb = Wayback::new();

    // The plan: the snapshot's software, its root laid out from the snapshot, the init through the loader.
    let out = wb.run(&[
        "up",
        snap_s,
        "--unit",
        "nginx",
        "--port",
        "80",
        "--software",
        "snapshot",
        "--dry-run",
    ]);
    let plan = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "dry run\n{}", show(&out));
    for want in [
        "software   the snapshot's own (--software snapshot)",
        "root /srv/wbtsite in /etc/wbt-snippets/site.conf:1",
        "the snapshot's /etc",
        "/.wayback-host/ld-linux",
        "--library-path /.wayback-host /.wayback-init __init",
    ] {
        assert!(plan.contains(want), "the plan lacks {want:?}:\n{plan}");
    }
    assert!(!plan.contains("--volatile=yes"), "{plan}");

    let name = unique("wbtsw");
    let host = format!("{name}.wbt.test");
    let mut up = wb.up_background(&[
        snap_s,
        "--unit",
        "nginx",
        "--port",
        "80",
        "--software",
        "snapshot",
        "--name",
        &name,
        "--host",
        &host,
    ]);
    let (code, body) =
        HttpGet::get_retry(wb.proxy_addr(), &host, "/", Duration::from_secs(20)).unwrap();
    assert_eq!(
        (code, body.as_str()),
        (200, SNAP_PAGE),
        "the snapshot's page\n{}",
        up.describe()
    );
    // Inside: the snapshot's /etc; its PID 1 is wayback's init through the host's loader.
    let inside = wb.run_ok(&["exec", &name, "--", "cat", "/etc/wbt-snippets/site.conf"]);
    assert!(inside.contains("root /srv/wbtsite;"), "{inside}");
    let cmdline = wb.run_ok(&["exec", &name, "--", "cat", "/proc/1/cmdline"]);
    assert!(
        cmdline.starts_with("/.wayback-host/ld-linux")
            && cmdline.contains("/.wayback-init\0__init"),
        "{cmdline:?}"
    );
    drop(up);
    Residue::new(&name).pool(&pool).wayback(&wb).assert_none();

    // With the host's software and config, `up` says that the snapshot's site config differs from the
    // host's one it would run with (a dry run: nothing is made).
    let out = wb.run_timeout(
        &["up", snap_s, "--unit", "nginx", "--port", "80", "--dry-run"],
        Duration::from_secs(60),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{}", show(&out));
    assert!(
        err.lines().any(
            |l| l.starts_with("wayback: warning: the instance runs with the host's ")
                && l.contains("/etc/nginx/sites-enabled/default")
                && l.contains("--bind-config uses the snapshot's")
        ),
        "a drift warning naming the site config\n{err}"
    );

    // The host's nginx with the snapshot's config: nginx itself refuses the snippet the host lacks.
    let name = unique("wbtsw");
    let out = wb.run_timeout(
        &[
            "up",
            snap_s,
            "--unit",
            "nginx",
            "--port",
            "80",
            "--bind-config",
            "--name",
            &name,
        ],
        Duration::from_secs(180),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "host software must fail\n{}",
        show(&out)
    );
    assert!(
        err.contains("open() \"/etc/wbt-snippets/site.conf\" failed"),
        "nginx's own message\n{err}"
    );
    Residue::new(&name).pool(&pool).wayback(&wb).assert_none();
    assert!(!Path::new("/etc/wbt-snippets").exists());
    assert_eq!(
        tree_manifest(&snap.join("srv")),
        before,
        "the snapshot is unchanged"
    );
    assert!(is_readonly_subvolume(&snap));
}

/// A Nix-looking store path name: 32 characters of Nix's base-32 alphabet, unique to this run and `name`.
fn store(name: &str) -> String {
    const ALPHABET: &[u8] = b"0123456789abcdfghijklmnpqrsvwxyz";
    let mut state: u64 = 0xcbf2_9ce4_8422_2325 ^ u64::from(std::process::id());
    let mut out = String::new();
    for round in 0u8..8 {
        for b in name.bytes().chain([round]) {
            state = (state ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
        let mut s = state;
        for _ in 0..4 {
            out.push(ALPHABET[(s & 31) as usize] as char);
            s >>= 5;
        }
    }
    format!("/nix/store/{out}-{name}")
}

/// Inside the tree `root`: a link at `at` (absolute inside the tree) to `target`.
fn link_in(root: &Path, target: &str, at: &str) {
    let p = root.join(at.trim_start_matches('/'));
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    symlink(target, p).unwrap();
}

/// The NixOS-like root: busybox in the snapshot's store, patched to the store's own glibc; the unit and
/// `/etc/static` as store links; a system profile; the snapshot's own passwd with the service's user.
fn nixos_root(root: &Path, uid: u32) {
    let glibc = format!("{}/lib", store("glibc-2.36"));
    let bb_dir = store("busybox-1.35.0");
    let busybox = format!("{bb_dir}/bin/busybox");
    let host_bb = fs::canonicalize(cmd_ok("sh", &["-c", "command -v busybox"]).trim()).unwrap();
    let interp = cmd_ok("patchelf", &["--print-interpreter", path_str(&host_bb)])
        .trim()
        .to_string();
    let inside = |p: &str| root.join(p.trim_start_matches('/'));
    fs::create_dir_all(inside(&glibc)).unwrap();
    let interp_name = Path::new(&interp)
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    fs::copy(&interp, inside(&glibc).join(&interp_name)).unwrap();
    for line in cmd_ok("ldd", &[path_str(&host_bb)]).lines() {
        if let Some((soname, rest)) = line.trim().split_once(" => ") {
            let file = rest.split_whitespace().next().unwrap_or("");
            if file.starts_with('/') {
                fs::copy(file, inside(&glibc).join(soname.trim())).unwrap();
            }
        }
    }
    fs::create_dir_all(inside(&bb_dir).join("bin")).unwrap();
    fs::copy(&host_bb, inside(&busybox)).unwrap();
    cmd_ok(
        "patchelf",
        &[
            "--set-interpreter",
            &format!("{glibc}/{interp_name}"),
            "--set-rpath",
            &glibc,
            path_str(&inside(&busybox)),
        ],
    );
    fs::set_permissions(inside(&busybox), fs::Permissions::from_mode(0o555)).unwrap();
    link_in(root, &busybox, &format!("{bb_dir}/bin/sh"));
    let tools = store("wbtnix-coreutils");
    for t in ["cat", "id", "head"] {
        link_in(root, &busybox, &format!("{tools}/bin/{t}"));
    }
    // The running system and its profile link.
    let system = store("nixos-system-wbtnix-24.05");
    write_in(
        root,
        &format!("{}/nixos-version", system.trim_start_matches('/')),
        "24.05.wbt\n",
    );
    link_in(root, &system, "/nix/var/nix/profiles/system-1-link");
    link_in(root, "system-1-link", "/nix/var/nix/profiles/system");
    // The unit, its pre-start script and /etc/static, in the store.
    let pre = format!(
        "{}/bin/wbtnix-httpd-pre-start",
        store("unit-script-wbtnix-httpd-pre-start")
    );
    write_in(
        root,
        pre.trim_start_matches('/'),
        &format!(
            "#!{bb_dir}/bin/sh -e\n{{\n  echo \"system=$(cat /run/current-system/nixos-version)\"\n  echo \"uid=$(id -u)\"\n}} > /var/lib/wbtnix/www/prestart.txt\n"
        ),
    );
    fs::set_permissions(inside(&pre), fs::Permissions::from_mode(0o555)).unwrap();
    let unit = format!(
        "{}/wbtnix-httpd.service",
        store("unit-wbtnix-httpd.service")
    );
    write_in(
        root,
        unit.trim_start_matches('/'),
        &format!(
            "[Unit]\nDescription=wbtnix: busybox httpd from the snapshot's store\n\n[Service]\n\
             Environment=\"PATH={tools}/bin\"\nExecStart={busybox} httpd -f -p 8080 -h /var/lib/wbtnix/www\n\
             ExecStartPre={pre}\nStateDirectory=wbtnix\nUser=wbtnix\nGroup=wbtnix\n"
        ),
    );
    let etc = format!("{}/etc", store("etc"));
    link_in(
        root,
        &unit,
        &format!("{etc}/systemd/system/wbtnix-httpd.service"),
    );
    link_in(root, &etc, "/etc/static");
    link_in(
        root,
        "/etc/static/systemd/system/wbtnix-httpd.service",
        "/etc/systemd/system/wbtnix-httpd.service",
    );
    write_in(
        root,
        "etc/passwd",
        &format!("root:x:0:0:root:/root:{bb_dir}/bin/sh\nwbtnix:x:{uid}:{uid}::/var/empty:/run/current-system/sw/bin/nologin\n"),
    );
    write_in(root, "etc/group", &format!("root:x:0:\nwbtnix:x:{uid}:\n"));
    // NixOS: /bin holds only sh, /usr only bin/env.
    link_in(root, &format!("{bb_dir}/bin/sh"), "/bin/sh");
    link_in(root, &busybox, "/usr/bin/env");
}

const NIX_PAGE: &str = "<h1>wbtnix: the snapshot's page</h1>\n";

#[test]
fn a_nixos_roots_own_store_runs_its_unit() {
    if !require_root("a_nixos_roots_own_store_runs_its_unit") {
        return;
    }
    for tool in ["busybox", "patchelf"] {
        assert!(
            Command::new("sh")
                .args(["-c", &format!("command -v {tool}")])
                .output()
                .is_ok_and(|o| o.status.success()),
            "needs {tool} (scripts/packages.sh)"
        );
    }
    // A uid neither the host's passwd nor group uses: only the snapshot's own accounts know it.
    let used = |f: &str| fs::read_to_string(f).unwrap_or_default();
    let (passwd, group) = (used("/etc/passwd"), used("/etc/group"));
    let uid = (61600..62600)
        .find(|id| !passwd.contains(&format!(":{id}:")) && !group.contains(&format!(":{id}:")))
        .unwrap();
    let pool = BtrfsPool::new();
    let root = pool.subvolume_create("nixroot");
    nixos_root(&root, uid);
    write_in(&root, "var/lib/wbtnix/www/index.html", NIX_PAGE);
    let state = root.join("var/lib/wbtnix");
    for p in [
        state.clone(),
        state.join("www"),
        state.join("www/index.html"),
    ] {
        chown(&p, Some(uid), Some(uid)).unwrap();
    }
    let snap = pool.snapshot_ro("nixroot", "snaps/1");
    write_in(&root, "var/lib/wbtnix/www/index.html", "changed live\n");
    let snap_s = path_str(&snap);
    let wb = Wayback::new();

    // The host has neither the unit nor its store paths: refused, pointing at the snapshot's own.
    let name = unique("wbtnixsw");
    let out = wb.run(&[
        "up",
        snap_s,
        "--unit",
        "wbtnix-httpd",
        "--port",
        "8080",
        "--name",
        &name,
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    assert!(
        err.contains("the snapshot has wbtnix-httpd.service")
            && err.contains("--software snapshot"),
        "{err}"
    );
    Residue::new(&name).pool(&pool).wayback(&wb).assert_none();

    let out = wb.run(&[
        "up",
        snap_s,
        "--unit",
        "wbtnix-httpd",
        "--port",
        "8080",
        "--software",
        "snapshot",
        "--dry-run",
    ]);
    let plan = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", show(&out));
    eprintln!("{plan}");
    let system = store("nixos-system-wbtnix-24.05");
    for want in [
        "bind     /var/lib/wbtnix -> /var/lib/wbtnix",
        "StateDirectory=wbtnix",
        "/nix",
        &format!("link     /run/current-system -> {system}"),
        &format!("{}/bin/busybox httpd", store("busybox-1.35.0")),
    ] {
        assert!(plan.contains(want), "the plan lacks {want:?}:\n{plan}");
    }

    let name = unique("wbtnixsw");
    let host = format!("{name}.wbt.test");
    let mut up = wb.up_background(&[
        snap_s,
        "--unit",
        "wbtnix-httpd",
        "--port",
        "8080",
        "--software",
        "snapshot",
        "--name",
        &name,
        "--host",
        &host,
    ]);
    let get = |path: &str| HttpGet::get(wb.proxy_addr(), &host, path).unwrap();
    assert_eq!(
        get("/index.html"),
        (200, NIX_PAGE.to_string()),
        "{}",
        up.describe()
    );
    assert_eq!(
        get("/prestart.txt"),
        (200, format!("system=24.05.wbt\nuid={uid}\n")),
        "the pre-start script: the snapshot's system profile and its own user\n{}",
        up.describe()
    );
    drop(up);
    Residue::new(&name).pool(&pool).wayback(&wb).assert_none();
    assert_eq!(
        fs::read_to_string(snap.join("var/lib/wbtnix/www/index.html")).unwrap(),
        NIX_PAGE
    );
    assert!(!snap.join("var/lib/wbtnix/www/prestart.txt").exists());
    let _: PathBuf = snap;
}
