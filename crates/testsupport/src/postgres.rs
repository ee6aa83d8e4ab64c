//! `LivePostgres`: a live PostgreSQL cluster on a pool subvolume, in its own network namespace.

#![allow(dead_code, unused_imports)]

use super::*;

/// The newest PostgreSQL version installed under /usr/lib/postgresql (e.g. "15").
pub fn pg_version() -> String {
    let mut versions: Vec<u32> = fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL is not installed (/usr/lib/postgresql missing)")
        .flatten()
        .filter(|e| e.path().join("bin/postgres").exists())
        .filter_map(|e| e.file_name().to_string_lossy().parse().ok())
        .collect();
    versions.sort_unstable();
    versions
        .last()
        .expect("no /usr/lib/postgresql/<v>/bin/postgres")
        .to_string()
}

pub fn pg_bin(tool: &str) -> PathBuf {
    Path::new("/usr/lib/postgresql")
        .join(pg_version())
        .join("bin")
        .join(tool)
}

/// Run `sql` with psql (no psqlrc, unaligned, tuples only) against `host:port` as user postgres, from the
/// host's network namespace. Returns stdout, or Err with psql's stderr.
pub fn psql_at(addr: SocketAddr, sql: &str) -> Result<String, String> {
    let mut c = Command::new(pg_bin("psql"));
    c.args([
        "-X",
        "-A",
        "-t",
        "-q",
        "-v",
        "ON_ERROR_STOP=1",
        "-U",
        "postgres",
        "-d",
        "postgres",
    ])
    .arg("-h")
    .arg(addr.ip().to_string())
    .arg("-p")
    .arg(addr.port().to_string())
    .arg("-c")
    .arg(sql)
    .env("PGCONNECT_TIMEOUT", "10");
    let out = output_timeout(&mut c, Duration::from_secs(60))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        Err(show(&out))
    }
}

/// A live PostgreSQL server on a pool subvolume, running in a network namespace of its own (so its port
/// 5432 clashes with nothing on the host). Cluster `wbt` of the newest installed version, data directory
/// `<subvolume>/var/lib/postgresql/<v>/wbt`, config inside the data directory (there is no
/// /etc/postgresql/<v>/wbt), listening on 127.0.0.1 with `trust` for 127.0.0.1/32.
pub struct LivePostgres {
    pub netns: String,
    pub version: String,
    pub data_dir: PathBuf,
    tmp: TempDir,
    log: PathBuf,
    sock_dir: PathBuf,
    running: bool,
}

pub const LIVE_CLUSTER: &str = "wbt";

impl LivePostgres {
    /// initdb into `<pool>/<subvol_rel>/var/lib/postgresql/<v>/wbt` (the subvolume must exist) and start it.
    pub fn start(pool: &BtrfsPool, subvol_rel: &str) -> LivePostgres {
        let version = pg_version();
        let etc = Path::new("/etc/postgresql")
            .join(&version)
            .join(LIVE_CLUSTER);
        assert!(
            !etc.exists(),
            "{} exists: the test cluster must use its data directory's own config",
            etc.display()
        );
        let root = pool.path(subvol_rel);
        let pg_root = root.join("var/lib/postgresql");
        let ver_dir = pg_root.join(&version);
        mkdir_p(&ver_dir);
        cmd_ok("chown", &["-R", "postgres:postgres", path_str(&pg_root)]);
        chmod(&pg_root, 0o755);
        let data_dir = ver_dir.join(LIVE_CLUSTER);

        let tmp = tempfile::Builder::new()
            .prefix(&format!("wbt{}x{}-pg-", std::process::id(), next_counter()))
            .tempdir()
            .expect("tempdir for postgres");
        chmod(tmp.path(), 0o755);
        let sock_dir = tmp.path().join("sock");
        mkdir_p(&sock_dir);
        cmd_ok("chown", &["-R", "postgres:postgres", path_str(tmp.path())]);
        let log = tmp.path().join("postgres.log");

        let initdb = pg_bin("initdb");
        let out = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(&initdb)
            .args([
                "-D",
                path_str(&data_dir),
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--locale=C",
            ])
            .arg("--no-sync")
            .current_dir(tmp.path())
            .stdin(Stdio::null())
            .output()
            .expect("run initdb");
        assert!(out.status.success(), "initdb failed\n{}", show(&out));

        let conf = data_dir.join("postgresql.conf");
        let mut f = fs::OpenOptions::new()
            .append(true)
            .open(&conf)
            .expect("open postgresql.conf");
        writeln!(
            f,
            "\n# wayback test cluster\nlisten_addresses = '127.0.0.1'\nport = 5432"
        )
        .unwrap();
        drop(f);
        fs::write(
            data_dir.join("pg_hba.conf"),
            "local all all trust\nhost all all 127.0.0.1/32 trust\n",
        )
        .expect("write pg_hba.conf");
        cmd_ok(
            "chown",
            &[
                "postgres:postgres",
                path_str(&conf),
                path_str(&data_dir.join("pg_hba.conf")),
            ],
        );

        let netns = format!("wbtlive{}x{}", std::process::id(), next_counter());
        cmd_ok("ip", &["netns", "add", &netns]);
        let mut live = LivePostgres {
            netns,
            version,
            data_dir,
            tmp,
            log,
            sock_dir,
            running: false,
        };
        cmd_ok("ip", &["-n", &live.netns, "link", "set", "lo", "up"]);

        // The socket directory goes on the command line, not into postgresql.conf: the snapshot must not
        // carry a path that only exists on the host.
        let opts = format!("-k {}", live.sock_dir.display());
        let mut c = Command::new("ip");
        c.args([
            "netns",
            "exec",
            &live.netns,
            "runuser",
            "-u",
            "postgres",
            "--",
        ])
        .arg(pg_bin("pg_ctl"))
        .args([
            "-D",
            path_str(&live.data_dir),
            "-l",
            path_str(&live.log),
            "-o",
            &opts,
            "-w",
            "-t",
            "60",
            "start",
        ])
        .current_dir(live.tmp.path());
        let res = output_timeout(&mut c, Duration::from_secs(90));
        // pg_ctl may have started the server even if it reported failure: always try to stop it in Drop.
        live.running = true;
        match res {
            Ok(out) if out.status.success() => {}
            Ok(out) => panic!(
                "pg_ctl start failed\n{}\n--- server log ---\n{}",
                show(&out),
                live.server_log()
            ),
            Err(e) => panic!(
                "pg_ctl start: {e}\n--- server log ---\n{}",
                live.server_log()
            ),
        }
        live
    }

    /// The server's log so far.
    pub fn server_log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Run SQL against the live server (psql inside its netns). Panics on error.
    #[track_caller]
    pub fn psql(&self, sql: &str) -> String {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.netns])
            .arg(pg_bin("psql"))
            .args([
                "-X",
                "-A",
                "-t",
                "-q",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                "127.0.0.1",
                "-p",
                "5432",
            ])
            .args(["-U", "postgres", "-d", "postgres", "-c", sql]);
        let out =
            output_timeout(&mut c, Duration::from_secs(60)).unwrap_or_else(|e| panic!("psql: {e}"));
        assert!(
            out.status.success(),
            "psql {sql:?} against the live server failed\n{}",
            show(&out)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// Stop the server (fast shutdown).
    pub fn stop(&mut self) {
        if !self.running {
            return;
        }
        self.running = false;
        let out = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(pg_bin("pg_ctl"))
            .args([
                "-D",
                path_str(&self.data_dir),
                "-m",
                "fast",
                "-w",
                "-t",
                "60",
                "stop",
            ])
            .current_dir(self.tmp.path())
            .stdin(Stdio::null())
            .output();
        match out {
            Ok(o) if o.status.success() => {}
            Ok(o) => eprintln!("cleanup: pg_ctl stop failed\n{}", show(&o)),
            Err(e) => eprintln!("cleanup: cannot run pg_ctl stop: {e}"),
        }
    }
}

impl Drop for LivePostgres {
    fn drop(&mut self) {
        self.stop();
        cmd_quiet("ip", &["netns", "del", &self.netns]);
    }
}
