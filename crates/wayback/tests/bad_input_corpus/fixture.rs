//! The corpus's world: a btrfs pool whose snapshot holds every kind of bad bind path (symlinks out of it, a
//! symlinked parent, a link into the live subvolume, a loop, a fifo, a nested subvolume's stand-in), the same
//! pool mounted read-only a second time, secret-looking files and bad profiles and configs to point options
//! at, two canary trees, and one running instance with an IDNA hostname, whose name and hostname the rows
//! try to take and whose state they must never touch.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use wayback_testsupport::*;

const SERVER: &str = "exec python3 -m http.server 8000 --bind 127.0.0.1 --directory /srv/www";
pub const BODY: &str = "the bad-input corpus's running instance\n";
/// Every secret-looking file carries this; no row's output may contain it.
pub const SECRET: &str = "wbtSECRET";

/// A read-only bind mount of the pool (a subvolume on a read-only mount), unmounted when dropped.
pub struct RoMount(PathBuf);

impl RoMount {
    fn new(src: &Path, at: &Path) -> RoMount {
        fs::create_dir_all(at).unwrap();
        let at_s = path_str(at);
        cmd_ok("mount", &["--bind", path_str(src), at_s]);
        let m = RoMount(at.to_path_buf());
        cmd_ok("mount", &["--make-private", at_s]);
        cmd_ok("mount", &["-o", "remount,bind,ro", at_s]);
        m
    }
}

impl Drop for RoMount {
    fn drop(&mut self) {
        let at = path_str(&self.0);
        if !cmd("umount", &[at]).status.success() {
            eprintln!("cleanup: lazy unmount of {at}");
            let _ = cmd("umount", &["-l", at]);
        }
    }
}

/// Paths and names the rows refer to.
pub struct Cx {
    pub snap: String,
    pub pool_root: String,
    /// A directory on the pool that is not a subvolume.
    pub plain: String,
    /// A directory, and a file, on a filesystem that is not btrfs.
    pub not_btrfs: String,
    pub file: String,
    /// The snapshot through the read-only mount, and a clone_dir on that mount.
    pub ro_snap: String,
    pub ro_clone_dir: String,
    /// The running instance, its hostname as given and as canonical.
    pub run: String,
    pub run_host: String,
    pub tmp: PathBuf,
    pub state_dir: PathBuf,
    pub runtime_dir: PathBuf,
    pub proxy_port: u16,
    pub shop_yaml: String,
}

impl Cx {
    /// `<tmp>/<rel>` as a string.
    pub fn at(&self, rel: &str) -> String {
        path_str(&self.tmp.join(rel)).to_string()
    }
}

/// Fields drop in order: the running instance, the read-only mount, wayback's safety net, the pool.
pub struct Fixture {
    pub up: Option<UpHandle>,
    _ro: RoMount,
    pub wb: Wayback,
    pub pool: BtrfsPool,
    pub cx: Cx,
    pub canaries: Vec<PathBuf>,
}

impl Fixture {
    pub fn new() -> Fixture {
        let pool = BtrfsPool::new();
        snapshot_tree(&pool);
        let wb = Wayback::with_extra_config("ready_timeout = \"20s\"");
        let tmp = wb.tmp().to_path_buf();
        let ro = RoMount::new(pool.mount(), &pool.dir().join("ro"));
        let not_btrfs = tmp.join("notbtrfs");
        fs::create_dir_all(not_btrfs.join("var/www/html")).unwrap();
        let fstype = cmd_ok("stat", &["-f", "-c", "%T", path_str(&not_btrfs)]);
        assert_ne!(fstype.trim(), "btrfs", "the temp dir must not be on btrfs");
        fs::write(tmp.join("afile"), "not a snapshot\n").unwrap();
        let run = unique("wbtbi");
        let cx = Cx {
            snap: path_str(&pool.path("snaps/s1")).into(),
            pool_root: path_str(pool.mount()).into(),
            plain: path_str(&pool.path("plain")).into(),
            not_btrfs: path_str(&not_btrfs).into(),
            file: path_str(&tmp.join("afile")).into(),
            ro_snap: path_str(&pool.dir().join("ro/snaps/s1")).into(),
            ro_clone_dir: path_str(&pool.dir().join("ro/clones")).into(),
            run_host: format!("xn--bcher-kva.{run}.test"),
            run,
            tmp: tmp.clone(),
            state_dir: wb.state_dir(),
            runtime_dir: wb.runtime_dir(),
            proxy_port: wb.proxy_addr().port(),
            shop_yaml: concat!(env!("CARGO_MANIFEST_DIR"), "/../k8s/testdata/shop.yaml").into(),
        };
        write_inputs(&tmp);
        let mut f = Fixture {
            up: None,
            _ro: ro,
            wb,
            pool,
            cx,
            canaries: Vec::new(),
        };
        f.canaries = vec![f.cx.tmp.join("canary"), f.cx.state_dir.join("x")];
        for c in &f.canaries {
            fs::create_dir_all(c.join("sub")).unwrap();
            fs::write(c.join("file"), "canary\n").unwrap();
            fs::write(c.join("sub/deeper"), "canary 2\n").unwrap();
            std::os::unix::fs::symlink("../file", c.join("sub/link")).unwrap();
        }
        f
    }

    /// The running instance: its hostname given in Unicode with upper case and a trailing dot.
    pub fn start(&mut self) {
        let host = format!("BÜcher.{}.test.", self.cx.run);
        let up = self.wb.up_background(&[
            &self.cx.snap,
            "--name",
            &self.cx.run,
            "--bind",
            "/srv",
            "--exec",
            SERVER,
            "--port",
            "8000",
            "--host",
            &host,
        ]);
        assert_eq!(up.ready["host"], self.cx.run_host.as_str(), "{}", up.ready);
        self.up = Some(up);
    }

    /// The running instance still answers through the proxy, `status` says it runs, and its `up` lives.
    pub fn assert_running(&mut self) {
        let (code, body) = HttpGet::get_retry(
            self.wb.proxy_addr(),
            &self.cx.run_host,
            "/",
            Duration::from_secs(10),
        )
        .unwrap_or_else(|e| panic!("GET {}: {e}", self.cx.run_host));
        assert_eq!((code, body.as_str()), (200, BODY));
        let s: serde_json::Value =
            serde_json::from_str(&self.wb.run_ok(&["status", &self.cx.run, "--json"])).unwrap();
        assert_eq!(s["state"], "running", "{s}");
        let up = self.up.as_mut().expect("started");
        assert!(
            up.wait_exit(Duration::ZERO).is_none(),
            "the running instance's up exited\n{}",
            up.describe()
        );
    }

    /// The running instance goes; nothing of it may stay.
    pub fn stop(&mut self) {
        let out = self.wb.run(&["down", &self.cx.run]);
        assert!(out.status.success(), "down failed\n{}", show(&out));
        let mut up = self.up.take().expect("started");
        let st = up.wait_exit(Duration::from_secs(60));
        assert!(
            st.is_some_and(|s| s.success()),
            "up exited {st:?}\n{}",
            up.describe()
        );
        drop(up);
        Residue::new(&self.cx.run)
            .pool(&self.pool)
            .wayback(&self.wb)
            .assert_none();
    }
}

/// live: /srv/www (served), /var/www/html (nginx-static's bind), bad bind paths, a nested subvolume;
/// snapshot snaps/s1 of it; /plain, a directory that is no subvolume.
fn snapshot_tree(pool: &BtrfsPool) {
    let live = pool.subvolume_create("live");
    for d in ["srv/www", "var/www/html", "srv/dir"] {
        fs::create_dir_all(live.join(d)).unwrap();
    }
    fs::write(live.join("srv/www/index.html"), BODY).unwrap();
    fs::write(live.join("var/www/html/index.html"), "static\n").unwrap();
    let link = |target: &str, at: &str| std::os::unix::fs::symlink(target, live.join(at)).unwrap();
    link("/root", "srv/abs-link");
    link("../../../root", "srv/rel-link");
    link("/root", "lnk");
    link(path_str(&live.join("srv")), "srv/live-link");
    link("loop2", "srv/loop1");
    link("loop1", "srv/loop2");
    cmd_ok("mkfifo", &[path_str(&live.join("srv/fifo"))]);
    pool.subvolume_create("live/var/lib/nested");
    pool.snapshot_ro("live", "snaps/s1");
    fs::create_dir_all(pool.path("plain/var/www/html")).unwrap();
}

/// Secret-looking files, profiles, passwords and configs the rows point at.
fn write_inputs(tmp: &Path) {
    let w = |rel: &str, text: &str| {
        let p = tmp.join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, text).unwrap();
    };
    for (name, text) in secrets() {
        w(&format!("secrets/{name}"), &text);
    }
    let process = "[[process]]\nname = \"web\"\nshell = \"exit 3\"\n";
    for (name, text) in [
        (
            "unknown-user",
            format!("name = \"p\"\n{process}user = \"wbtnosuchuser\"\n"),
        ),
        (
            "unknown-group",
            format!("name = \"p\"\n{process}group = \"wbtnosuchgroup\"\n"),
        ),
        (
            "relative-bind",
            format!("name = \"p\"\nbinds = [\"srv\"]\n{process}"),
        ),
        (
            "missing-bind",
            format!("name = \"p\"\nbinds = [\"/var/lib/wbt-none\"]\n{process}"),
        ),
        (
            "link-bind",
            format!("name = \"p\"\nbinds = [\"/srv/abs-link\"]\n{process}"),
        ),
        (
            "proc-bind",
            format!("name = \"p\"\nbinds = [{{ path = \"/srv\", dest = \"/proc\" }}]\n{process}"),
        ),
        ("no-process", "name = \"p\"\n".into()),
        (
            "both",
            "name = \"p\"\n[[process]]\nname = \"web\"\nshell = \"x\"\ncommand = [\"x\"]\n".into(),
        ),
        (
            "bad-mode",
            format!("name = \"p\"\n[[dirs]]\npath = \"/var/x\"\nmode = \"9z\"\n{process}"),
        ),
        ("bad-toml", "name = \n".into()),
        (
            "unknown-key",
            format!("name = \"p\"\nprocesses = []\n{process}"),
        ),
    ] {
        w(&format!("profiles/{name}.toml"), &text);
    }
    fs::create_dir_all(tmp.join("profiles/a-directory.toml")).unwrap();
    w(
        "pw/long",
        &format!("{SECRET}-password-{}\n", "p".repeat(80)),
    );
    w("pw/empty", "");
    w("pw/ok", "a fine passphrase\n");
    fs::create_dir_all(tmp.join("pw/dir")).unwrap();
}

/// Files of the kinds an admin might pass by mistake, each holding [`SECRET`].
pub fn secrets() -> Vec<(&'static str, String)> {
    vec![
        (
            "shadow",
            format!(
                "root:$6${SECRET}salt$Zq8WQ1pN0:19700:0:99999:7:::\ndaemon:*:19700:0:99999:7:::\n"
            ),
        ),
        ("pgpass", format!("*:*:*:postgres:{SECRET}pg\n")),
        ("dotenv", format!("DB_PASSWORD=\"{SECRET}env\"\n")),
        (
            "key.pem",
            format!("-----BEGIN PRIVATE KEY-----\nMIIEv{SECRET}pem\n-----END PRIVATE KEY-----\n"),
        ),
        (
            "docker.json",
            format!("{{\"auths\": {{\"registry\": {{\"auth\": \"{SECRET}json\"}}}}}}\n"),
        ),
        (
            "netrc",
            format!("machine example.org login admin password {SECRET}netrc\n"),
        ),
        ("my.cnf", format!("[client]\npassword={SECRET}cnf\n")),
    ]
}

/// A config like the fixture's (same state and runtime dirs, proxy, pool) with `replace` keys swapped or
/// added at the top level (a value of `None` drops the key) and `proxy` lines added to `[proxy]`.
pub fn config_text(wb: &Wayback, replace: &[(&str, Option<&str>)], proxy: &str) -> String {
    let mut keys: Vec<(String, String)> = [
        ("state_dir", format!("{:?}", path_str(&wb.state_dir()))),
        ("runtime_dir", format!("{:?}", path_str(&wb.runtime_dir()))),
        ("base_domain", "\"wbt.test\"".into()),
        ("default_ttl", "\"30m\"".into()),
        ("address_pool", format!("{:?}", wb.address_pool())),
        ("clone_dir", "\".wayback\"".into()),
        ("ready_timeout", "\"20s\"".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    for (k, v) in replace {
        keys.retain(|(x, _)| x != k);
        if let Some(v) = v {
            keys.push((k.to_string(), v.to_string()));
        }
    }
    let mut text: String = keys.iter().map(|(k, v)| format!("{k} = {v}\n")).collect();
    text.push_str(&format!(
        "[proxy]\nlisten = \"{}\"\n{proxy}\n",
        wb.proxy_addr()
    ));
    text
}
