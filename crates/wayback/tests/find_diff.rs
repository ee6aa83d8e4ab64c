//! Tier-1 tests of `wayback snapshots`, `find` and `diff` on a loop-mounted btrfs image (`wbtf<pid>…`)
//! with a snapper-style layout of 24 read-only snapshots: the listing, the exact range `find` reports,
//! and `diff` (send stream, and the walk fallback) against a reference computed here by a full walk —
//! between two snapshots and against the live subvolume. Ends by checking that no temporary snapshot,
//! mount or loop device is left behind. Needs root (skips otherwise; under CI=true it fails instead).

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

const SNAPSHOTS: u32 = 24;
/// report-final.odt exists in snapshots FIRST..=LAST only.
const FIRST: u32 = 9;
const LAST: u32 = 16;

fn require_root(test: &str) -> bool {
    if nix::unistd::Uid::effective().is_root() {
        return true;
    }
    if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") {
        panic!("{test} needs root, and CI=true: privileged tests must run in CI");
    }
    eprintln!("SKIP: {test} needs root (it mounts a loop btrfs image)");
    println!("SKIP: {test} needs root (it mounts a loop btrfs image)");
    false
}

fn run(program: &str, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"))
}

fn ok(program: &str, args: &[&str]) -> String {
    let out = run(program, args);
    assert!(
        out.status.success(),
        "{program} {args:?} failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A loop-mounted btrfs image in a temp dir; unmounted (which detaches the loop) and removed on drop.
struct Pool {
    dir: tempfile::TempDir,
    mnt: PathBuf,
    img: PathBuf,
    mounted: bool,
}

impl Pool {
    fn new() -> Pool {
        let dir = tempfile::Builder::new()
            .prefix(&format!("wbtf{}-", std::process::id()))
            .tempdir()
            .expect("tempdir");
        let img = dir.path().join("wbtf.img");
        let mnt = dir.path().join("mnt");
        fs::create_dir(&mnt).unwrap();
        fs::File::create(&img).unwrap().set_len(1 << 30).unwrap();
        ok("mkfs.btrfs", &["-q", "-f", img.to_str().unwrap()]);
        ok(
            "mount",
            &["-o", "loop", img.to_str().unwrap(), mnt.to_str().unwrap()],
        );
        Pool {
            dir,
            mnt,
            img,
            mounted: true,
        }
    }

    fn loops(&self) -> String {
        ok("losetup", &["-j", self.img.to_str().unwrap()])
    }

    fn unmount(&mut self) {
        if self.mounted {
            let out = run("umount", &[self.mnt.to_str().unwrap()]);
            if !out.status.success() {
                let _ = run("umount", &["-l", self.mnt.to_str().unwrap()]);
            }
            self.mounted = false;
        }
        for line in self.loops().lines() {
            if let Some(dev) = line.split(':').next() {
                let _ = run("losetup", &["-d", dev]);
            }
        }
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.unmount();
    }
}

fn w(p: &Path, text: &str) {
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(p, text).unwrap();
}

/// The changes applied to live before snapshot `i` is taken (and `i = 99`: after the last one).
fn mutate(live: &Path, i: u32) {
    let app = live.join("var/lib/app");
    w(&app.join("counter"), &format!("version {i}\n"));
    w(&app.join(format!("logs/log-{i:02}")), "x\n");
    if i.is_multiple_of(5) {
        let _ = fs::remove_file(app.join(format!("logs/log-{:02}", i - 3)));
    }
    for k in 0..3 {
        let n = (i * 7 + k * 13) % 40;
        w(
            &app.join(format!("bulk/d{}/f{n}", n % 4)),
            &"y".repeat(i as usize + k as usize),
        );
    }
    match i {
        1 => {
            for n in 0..40 {
                w(&app.join(format!("bulk/d{}/f{n}", n % 4)), "initial\n");
            }
            w(&app.join("proj/src/main.c"), "int main;\n");
            w(&app.join("proj/README"), "readme\n");
            w(&app.join("t2d/x"), "x\n");
            w(&app.join("f2d"), "file\n");
            w(&app.join("with space/ünï"), "u\n");
            symlink("target-1", app.join("link")).unwrap();
            symlink("/etc", app.join("escape")).unwrap();
        }
        FIRST => w(&app.join("files/q3/report-final.odt"), "the report\n"),
        6 => fs::rename(app.join("proj"), app.join("project")).unwrap(),
        7 => fs::set_permissions(app.join("proj-perm"), fs::Permissions::from_mode(0o600))
            .unwrap_or_else(|_| w(&app.join("proj-perm"), "p\n")),
        10 => {
            fs::remove_dir_all(app.join("t2d")).unwrap();
            w(&app.join("t2d"), "now a file\n");
            fs::remove_file(app.join("f2d")).unwrap();
            w(&app.join("f2d/inner/deep"), "now a dir\n");
        }
        12 => {
            fs::remove_file(app.join("link")).unwrap();
            symlink("target-2", app.join("link")).unwrap();
            fs::set_permissions(app.join("proj-perm"), fs::Permissions::from_mode(0o640)).unwrap();
        }
        14 => {
            let f = fs::OpenOptions::new()
                .write(true)
                .open(app.join("project/README"))
                .unwrap();
            f.set_len(2).unwrap();
            nix::unistd::chown(&app.join("with space/ünï"), Some(1000.into()), None).unwrap();
        }
        LAST_PLUS_ONE => fs::remove_file(app.join("files/q3/report-final.odt")).unwrap(),
        18 => fs::hard_link(app.join("counter"), app.join("counter-link")).unwrap(),
        99 => {
            fs::rename(app.join("project/src"), app.join("src-moved")).unwrap();
            w(&app.join("fresh/a/b"), "fresh\n");
            fs::remove_dir_all(app.join("bulk/d3")).unwrap();
        }
        _ => {}
    }
}
const LAST_PLUS_ONE: u32 = LAST + 1;

/// (type, size, mtime, mode, uid, gid) as the reference compares them.
type Key = (char, u64, i64, i64, u32, u32, u32);

fn reference_walk(root: &Path) -> BTreeMap<String, Key> {
    let dev = fs::symlink_metadata(root).unwrap().dev();
    let mut out = BTreeMap::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        for e in fs::read_dir(root.join(&rel)).unwrap() {
            let e = e.unwrap();
            let m = fs::symlink_metadata(e.path()).unwrap();
            let child = rel.join(e.file_name());
            let t = if m.is_dir() {
                'd'
            } else if m.file_type().is_symlink() {
                'l'
            } else {
                'f'
            };
            if m.is_dir() && m.dev() == dev {
                stack.push(child.clone());
            }
            out.insert(
                child.to_string_lossy().into_owned(),
                (
                    t,
                    m.len(),
                    m.mtime(),
                    m.mtime_nsec(),
                    m.mode() & 0o7777,
                    m.uid(),
                    m.gid(),
                ),
            );
        }
    }
    out
}

type Sets = (BTreeSet<String>, BTreeSet<String>, BTreeSet<String>);

/// Added, removed, modified: a different type; for non-directories size or mtime; mode, uid, gid.
fn reference_diff(a: &Path, b: &Path) -> Sets {
    let (ta, tb) = (reference_walk(a), reference_walk(b));
    let mut s: Sets = Default::default();
    for (p, ka) in &ta {
        match tb.get(p) {
            None => {
                s.1.insert(p.clone());
            }
            Some(kb) => {
                let content =
                    ka.0 != kb.0 || (ka.0 != 'd' && (ka.1, ka.2, ka.3) != (kb.1, kb.2, kb.3));
                let meta = (ka.0 != 'l' && ka.4 != kb.4) || (ka.5, ka.6) != (kb.5, kb.6);
                if content || meta {
                    s.2.insert(p.clone());
                }
            }
        }
    }
    s.0 = tb
        .keys()
        .filter(|p| !ta.contains_key(*p))
        .cloned()
        .collect();
    s
}

struct Wb {
    config: PathBuf,
}

impl Wb {
    fn new(dir: &Path) -> Wb {
        let config = dir.join("config.toml");
        fs::write(
            &config,
            format!(
                "state_dir = \"{0}/state\"\nruntime_dir = \"{0}/run\"\n",
                dir.display()
            ),
        )
        .unwrap();
        Wb { config }
    }
    fn run(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_wayback"))
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run wayback")
    }
    fn json(&self, args: &[&str]) -> Value {
        self.json_err(args).0
    }
    /// stdout as JSON, and stderr.
    fn json_err(&self, args: &[&str]) -> (Value, String) {
        let out = self.run(args);
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(
            out.status.success(),
            "wayback {args:?}: {}\n{err}",
            out.status
        );
        (serde_json::from_slice(&out.stdout).expect("json"), err)
    }
    fn diff(&self, args: &[&str]) -> (Sets, String) {
        let (v, err) = self.json_err(&[&["diff", "--json"], args].concat());
        let mut s: Sets = Default::default();
        for c in v["changes"].as_array().unwrap() {
            let p = c["path"].as_str().unwrap().to_string();
            match c["status"].as_str().unwrap() {
                "added" => s.0.insert(p),
                "removed" => s.1.insert(p),
                _ => s.2.insert(p),
            };
        }
        let method = v["method"].as_str().unwrap();
        (
            s,
            format!(
                "{method}{}",
                if method == "send" || method == "tree" {
                    String::new()
                } else {
                    format!(" ({err})")
                }
            ),
        )
    }
}

fn subvolumes(mnt: &Path) -> String {
    ok("btrfs", &["subvolume", "list", "-o", mnt.to_str().unwrap()])
        + &ok("btrfs", &["subvolume", "list", mnt.to_str().unwrap()])
}

#[test]
fn snapshots_find_and_diff_on_a_snapper_layout() {
    if !require_root("snapshots_find_and_diff_on_a_snapper_layout") {
        return;
    }
    let mut pool = Pool::new();
    let wb = Wb::new(pool.dir.path());
    let live = pool.mnt.join("live");
    let live_s = live.to_str().unwrap().to_string();
    ok("btrfs", &["subvolume", "create", &live_s]);
    ok(
        "btrfs",
        &["subvolume", "create", &format!("{live_s}/.snapshots")],
    );
    let t0 = 1_793_491_200i64; // 2026-11-01 00:00:00 UTC
    for i in 1..=SNAPSHOTS {
        mutate(&live, i);
        let dir = live.join(format!(".snapshots/{i}"));
        fs::create_dir(&dir).unwrap();
        let snap = dir.join("snapshot");
        ok(
            "btrfs",
            &[
                "subvolume",
                "snapshot",
                "-r",
                &live_s,
                snap.to_str().unwrap(),
            ],
        );
        let secs = t0 + i64::from(i) * 3600;
        let (h, d) = ((secs - t0) / 3600 % 24, 1 + (secs - t0) / 86_400);
        w(
            &dir.join("info.xml"),
            &format!("<?xml version=\"1.0\"?>\n<snapshot>\n  <type>single</type>\n  <num>{i}</num>\n  <date>2026-11-{d:02} {h:02}:00:00</date>\n  <description>step {i}</description>\n  <cleanup>timeline</cleanup>\n</snapshot>\n"),
        );
    }
    mutate(&live, 99);
    let snap = |i: u32| live.join(format!(".snapshots/{i}/snapshot"));

    // snapshots: all 24, by date, read-only, from snapper.
    let v = wb.json(&["snapshots", &live_s, "--json"]);
    let list = v["snapshots"].as_array().unwrap();
    let ids: Vec<u64> = list.iter().map(|s| s["id"].as_u64().unwrap()).collect();
    assert_eq!(ids, (1..=u64::from(SNAPSHOTS)).collect::<Vec<_>>());
    assert!(list
        .iter()
        .all(|s| s["readonly"] == true && s["source"]["kind"] == "snapper"));
    assert_eq!(list[0]["date_utc"], "2026-11-01 01:00:00");
    assert_eq!(list[0]["description"], "step 1");
    assert!(v["warnings"].as_array().unwrap().is_empty(), "{v}");

    // find: exactly FIRST..=LAST, for the path and for a glob.
    for pattern in [
        "var/lib/app/files/q3/report-final.odt",
        "var/lib/**/report*.odt",
    ] {
        let v = wb.json(&["find", pattern, "--root", &live_s, "--json"]);
        let present: Vec<u64> = v["snapshots"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|o| !o["hits"].as_array().unwrap().is_empty())
            .map(|o| o["id"].as_u64().unwrap())
            .collect();
        assert_eq!(
            present,
            (u64::from(FIRST)..=u64::from(LAST)).collect::<Vec<_>>(),
            "{pattern}"
        );
        let runs = v["runs"].as_array().unwrap();
        assert_eq!(runs.len(), 3, "{v}");
        assert_eq!(
            (runs[1]["first_id"].as_u64(), runs[1]["last_id"].as_u64()),
            (Some(u64::from(FIRST)), Some(u64::from(LAST)))
        );
        assert_eq!(v["last_good"][0]["id"], u64::from(LAST));
        assert_eq!(v["snapshots"][FIRST as usize - 1]["hits"][0]["size"], 11);
    }
    // A symlinked directory in a snapshot is not followed (it would lead to the host's /etc).
    let v = wb.json(&[
        "find",
        "var/lib/app/escape/hostname",
        "--root",
        &live_s,
        "--json",
    ]);
    assert_eq!(v["runs"].as_array().unwrap().len(), 1, "{v}");
    assert_eq!(v["runs"][0]["present"], false);
    let out = wb.run(&[
        "find",
        "var/lib/app/files/q3/report-final.odt",
        "--in",
        &format!("{live_s}@2026-11-01T10:00..@12"),
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("present in #10–#12 (the newest)"), "{text}");

    // diff: snapshot vs snapshot, and snapshot vs live, by send and by walk, against the reference.
    let sel = |i: u32| format!("{live_s}@{i}");
    for (a, b) in [
        (5, 20),
        (1, SNAPSHOTS),
        (FIRST, FIRST + 1),
        (12, 13),
        (20, 5),
    ] {
        let want = reference_diff(&snap(a), &snap(b));
        let (got, method) = wb.diff(&[&sel(a), &sel(b)]);
        assert_eq!(method, "tree");
        assert_eq!(got, want, "diff @{a} @{b} (tree)");
        let (got, method) = wb.diff(&[&sel(a), &sel(b), "--method", "send"]);
        assert_eq!(method, "send");
        assert_eq!(got, want, "diff @{a} @{b} (send)");
        let (got, method) = wb.diff(&[&sel(a), &sel(b), "--walk"]);
        assert!(method.starts_with("walk"), "{method}");
        assert_eq!(got, want, "diff @{a} @{b} (walk)");
    }
    for a in [3, 20, SNAPSHOTS] {
        let want = reference_diff(&snap(a), &live);
        assert!(
            !want.0.is_empty() && !want.1.is_empty() && !want.2.is_empty(),
            "{want:?}"
        );
        let (got, method) = wb.diff(&[&sel(a)]);
        assert_eq!(method, "tree");
        assert_eq!(got, want, "diff @{a} live (tree)");
        let (got, method) = wb.diff(&[&sel(a), "--method", "send"]);
        assert_eq!(method, "send");
        assert_eq!(got, want, "diff @{a} live (send)");
    }
    // --path limits to a subtree.
    let want = reference_diff(&snap(3), &live);
    let only = |s: &BTreeSet<String>| -> BTreeSet<String> {
        s.iter()
            .filter(|p| p.starts_with("var/lib/app/bulk/"))
            .cloned()
            .collect()
    };
    let (got, _) = wb.diff(&[&sel(3), "--path", "var/lib/app/bulk"]);
    assert_eq!(got, (only(&want.0), only(&want.1), only(&want.2)));
    // Bad selectors are exit 2.
    assert_eq!(wb.run(&["diff", &sel(99)]).status.code(), Some(2));
    assert_eq!(wb.run(&["find", "x", "--in", "@5"]).status.code(), Some(2));

    // Ctrl-C at any moment of a diff against live leaves no temporary snapshot behind.
    for delay_ms in [0u64, 5, 15, 30, 60, 120] {
        let child = Command::new(env!("CARGO_BIN_EXE_wayback"))
            .arg("--config")
            .arg(&wb.config)
            .args(["diff", &sel(3)])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT);
        let status = child.wait_with_output().unwrap().status;
        assert!(
            matches!(status.code(), Some(0 | 130)) || status.code().is_none(),
            "{status}"
        );
        let subs = subvolumes(&pool.mnt);
        assert!(
            !subs.contains("diff-"),
            "after Ctrl-C at {delay_ms} ms:\n{subs}"
        );
    }

    // Zero residue: no temporary snapshot, no clone dir; then the image unmounts and its loop detaches.
    let subs = subvolumes(&pool.mnt);
    assert!(!subs.contains("diff-"), "temporary snapshots left:\n{subs}");
    assert!(!pool.mnt.join(".wayback").exists());
    pool.unmount();
    assert!(pool.loops().trim().is_empty(), "loop device still attached");
    let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mounts.contains(pool.mnt.to_str().unwrap()));
}
