//! Tier-1 tests of file history — `versions`, `versions --deleted`, `show`, `diff PATH --from`, `restore`
//! — on a loop btrfs pool (`wbt…`) with a snapper layout of 30 read-only snapshots, in which
//! `var/lib/app/report.odt` is absent (#1–#4), has three distinct versions (v1 #5–#12; v2 #13–#19;
//! v3 #20–#25, of v2's size and mtime but other content) and is deleted (#26–#30). Restores are checked
//! for content, owner, mode, times, xattrs and the POSIX ACL, and for sharing their extents (FIEMAP);
//! `--overwrite` keeps the replaced file; a symlink pointing out of the snapshot comes back as that
//! symlink; a symlink on the way in live is refused. Ends with zero residue (no temporary entry, no
//! subvolume but the test's own, the pool unmounted and its loop device detached).

use std::ffi::CString;
use std::fs;
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde_json::Value;
use wayback_testsupport::{path_str, BtrfsPool, Wayback};

const SNAPSHOTS: u32 = 30;
/// 128 KiB: big enough to live in data extents (not inline in metadata), so sharing shows in FIEMAP.
const SIZE: usize = 128 * 1024;
/// v2's and v3's mtime.
const MTIME: i64 = 1_793_000_000;

fn text(tag: &str) -> Vec<u8> {
    let mut s = String::new();
    let mut i = 0;
    while s.len() < SIZE {
        s.push_str(&format!("line {i:06} of the report\n"));
        i += 1;
    }
    s.truncate(SIZE - 1);
    s.push('\n');
    // One line differs between versions, keeping the size.
    s.replace_range(27 * 100..27 * 100 + 2, tag);
    s.into_bytes()
}

fn setxattr(p: &Path, name: &str, value: &[u8]) {
    let (cp, cn) = (
        CString::new(p.as_os_str().as_bytes()).unwrap(),
        CString::new(name).unwrap(),
    );
    // SAFETY: NUL-terminated strings and a valid buffer for the call's duration.
    let r = unsafe {
        libc::lsetxattr(
            cp.as_ptr(),
            cn.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    assert_eq!(
        r,
        0,
        "setxattr {name} on {}: {}",
        p.display(),
        std::io::Error::last_os_error()
    );
}

fn getxattr(p: &Path, name: &str) -> Option<Vec<u8>> {
    let (cp, cn) = (
        CString::new(p.as_os_str().as_bytes()).unwrap(),
        CString::new(name).unwrap(),
    );
    let mut buf = vec![0u8; 4096];
    // SAFETY: NUL-terminated strings and a valid writable buffer of the given length.
    let n =
        unsafe { libc::lgetxattr(cp.as_ptr(), cn.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    (n >= 0).then(|| {
        buf.truncate(n as usize);
        buf
    })
}

/// A POSIX ACL xattr value: user::rw-, user:1234:r--, group::r--, mask::r--, other::---.
fn acl() -> Vec<u8> {
    let mut v = 2u32.to_le_bytes().to_vec();
    for (tag, perm, id) in [
        (1u16, 6u16, u32::MAX),
        (2, 4, 1234),
        (4, 4, u32::MAX),
        (0x10, 4, u32::MAX),
        (0x20, 0, u32::MAX),
    ] {
        v.extend(tag.to_le_bytes());
        v.extend(perm.to_le_bytes());
        v.extend(id.to_le_bytes());
    }
    v
}

fn set_mtime(p: &Path, secs: i64) {
    let t = nix::sys::time::TimeSpec::new(secs, 0);
    nix::sys::stat::utimensat(
        nix::fcntl::AT_FDCWD,
        p,
        &t,
        &t,
        nix::sys::stat::UtimensatFlags::NoFollowSymlink,
    )
    .unwrap();
}

/// The changes to live before snapshot `i` (and `i = 99`: after the last one).
fn mutate(live: &Path, outside: &Path, i: u32) {
    let app = live.join("var/lib/app");
    let report = app.join("report.odt");
    fs::create_dir_all(&app).unwrap();
    fs::write(app.join("counter"), format!("{i}\n")).unwrap();
    match i {
        5 => fs::write(&report, b"version one\n").unwrap(),
        13 => {
            fs::write(&report, text("v2")).unwrap();
            nix::unistd::chown(&report, Some(1234.into()), Some(2345.into())).unwrap();
            setxattr(&report, "user.origin", b"v2");
            setxattr(&report, "system.posix_acl_access", &acl());
            fs::set_permissions(&report, fs::Permissions::from_mode(0o640)).unwrap();
            set_mtime(&report, MTIME);
            symlink("/etc/passwd", app.join("link-out")).unwrap();
            fs::create_dir_all(app.join("sub/deeper")).unwrap();
            fs::write(app.join("sub/f"), "in sub\n").unwrap();
            fs::write(app.join("sub/deeper/g"), "deeper\n").unwrap();
            fs::hard_link(app.join("sub/f"), app.join("sub/f-link")).unwrap();
            symlink("../../../../../../../etc", app.join("sub/up")).unwrap();
        }
        20 => {
            // Same size and mtime as v2, other content.
            fs::write(&report, text("v3")).unwrap();
            set_mtime(&report, MTIME);
        }
        26 => fs::remove_file(&report).unwrap(),
        99 => {
            fs::remove_file(app.join("link-out")).unwrap();
            fs::remove_dir_all(app.join("sub")).unwrap();
            symlink(outside, app.join("sub")).unwrap();
        }
        _ => {}
    }
}

fn json(wb: &Wayback, args: &[&str]) -> Value {
    serde_json::from_str(&wb.run_ok(args)).expect("json")
}

fn shared_bytes(p: &Path) -> u64 {
    let f = fs::File::open(p).unwrap();
    btrfs_uapi::fiemap::file_extents(f.as_fd())
        .unwrap()
        .shared_bytes
}

/// Entries under `dir` whose name marks them as wayback's temporaries.
fn temporaries(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if e.file_name().to_string_lossy().contains(".wayback-tmp") {
                out.push(p.clone());
            }
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(p);
            }
        }
    }
    out
}

#[test]
fn versions_show_diff_and_restore_on_a_snapper_layout() {
    if !wayback_testsupport::require_root("versions_show_diff_and_restore_on_a_snapper_layout") {
        return;
    }
    let pool = BtrfsPool::new();
    let wb = Wayback::new();
    let live = pool.subvolume_create("live");
    pool.subvolume_create("live/.snapshots");
    let outside = pool.dir().join("outside");
    fs::create_dir(&outside).unwrap();
    for i in 1..=SNAPSHOTS {
        mutate(&live, &outside, i);
        let snap = pool.snapshot_ro("live", &format!("live/.snapshots/{i}/snapshot"));
        let (d, h) = (1 + (i - 1) / 24, (i - 1) % 24);
        fs::write(
            snap.parent().unwrap().join("info.xml"),
            format!("<?xml version=\"1.0\"?>\n<snapshot>\n  <type>single</type>\n  <num>{i}</num>\n  <date>2026-11-{d:02} {h:02}:00:00</date>\n  <description>step {i}</description>\n</snapshot>\n"),
        )
        .unwrap();
    }
    mutate(&live, &outside, 99);
    let live_s = path_str(&live).to_string();
    let report = live.join("var/lib/app/report.odt");
    let report_s = path_str(&report).to_string();

    // versions: exactly three versions and the deletion; the hash only where size and mtime tie.
    for args in [
        vec!["versions", &report_s, "--json"],
        vec![
            "versions",
            "var/lib/app/report.odt",
            "--root",
            &live_s,
            "--json",
        ],
    ] {
        let v = json(&wb, &args);
        let spans: Vec<(String, u64, u64)> = v["spans"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                let state = match s["state"].as_str().unwrap() {
                    "present" => format!("v{}", s["version"]),
                    _ if s["deleted"] == true => "deleted".into(),
                    _ => "absent".into(),
                };
                (
                    state,
                    s["first"]["id"].as_u64().unwrap(),
                    s["last"]["id"].as_u64().unwrap(),
                )
            })
            .collect();
        let want: Vec<(String, u64, u64)> = vec![
            ("absent".into(), 1, 4),
            ("v1".into(), 5, 12),
            ("v2".into(), 13, 19),
            ("v3".into(), 20, 25),
            ("deleted".into(), 26, 30),
        ];
        assert_eq!(spans, want, "{v:#}");
        let vs = v["versions"].as_array().unwrap();
        assert_eq!(vs.len(), 3);
        assert_eq!(
            (vs[1]["size"].as_u64(), vs[2]["size"].as_u64()),
            (Some(SIZE as u64), Some(SIZE as u64))
        );
        assert_eq!(vs[1]["mtime"], vs[2]["mtime"]);
        assert!(vs[0]["sha256"].is_null());
        assert!(vs[1]["sha256"].is_string() && vs[2]["sha256"].is_string());
        assert_ne!(vs[1]["sha256"], vs[2]["sha256"]);
        assert_eq!(v["hashed"], 2, "only the v2/v3 boundary is hashed");
        assert_eq!(v["live"]["state"], "absent");
    }
    // --in narrows the snapshots: #10..#22 hold v1, v2 and v3.
    let v = json(&wb, &["versions", &report_s, "--in", "@10..@22", "--json"]);
    assert_eq!(v["snapshots"], 13, "{v:#}");
    assert_eq!(v["versions"].as_array().unwrap().len(), 3, "{v:#}");
    assert_eq!(v["spans"][0]["first"]["id"], 10, "{v:#}");
    let out = wb.run_ok(&["versions", &report_s]);
    assert!(out.contains("3 versions in 30 snapshots"), "{out}");
    assert!(out.contains("deleted  #26–#30"), "{out}");

    // --deleted finds it (last in #25), and what went with the snapshot's sub/ and link-out.
    let v = json(
        &wb,
        &[
            "versions",
            "--deleted",
            &format!("{live_s}/var/lib/app"),
            "--json",
        ],
    );
    let gone: Vec<(&str, u64)> = v["deleted"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["path"].as_str().unwrap(),
                d["last"]["id"].as_u64().unwrap(),
            )
        })
        .collect();
    assert!(gone.contains(&("var/lib/app/report.odt", 25)), "{v:#}");
    assert!(gone.contains(&("var/lib/app/link-out", 30)), "{v:#}");
    assert!(gone.contains(&("var/lib/app/sub/f", 30)), "{v:#}");
    assert!(!gone.iter().any(|(p, _)| p.ends_with("counter")), "{v:#}");

    // show and diff of one file.
    let shown = wb.run_ok(&["show", &report_s, "--from", "@15"]);
    assert_eq!(shown.as_bytes(), &text("v2")[..]);
    let out = wb.run_ok(&["diff", &report_s, "--from", "@15", "--to", "@22"]);
    assert!(
        out.contains("\n-line 000103 of the repv2t\n+line 000103 of the repv3t\n"),
        "{out}"
    );
    assert_eq!(
        out.lines()
            .filter(|l| l.starts_with('-') && !l.starts_with("---"))
            .count(),
        1,
        "{out}"
    );
    let v = json(&wb, &["diff", &report_s, "--from", "@22", "--json"]);
    assert_eq!(
        (v["same"].as_bool(), v["b"]["present"].as_bool()),
        (Some(false), Some(false)),
        "{v:#}"
    );

    // restore v2 beside live, as a reflink, with owner, mode, times, xattrs and the ACL.
    let beside = live.join("var/lib/app/report.v2.odt");
    let dry = wb.run_ok(&[
        "restore",
        &report_s,
        "--from",
        "@15",
        "--to",
        path_str(&beside),
        "--dry-run",
    ]);
    assert!(
        dry.contains("would restore") && dry.contains("reflink"),
        "{dry}"
    );
    assert!(!beside.exists(), "--dry-run wrote");
    let v = json(
        &wb,
        &[
            "restore",
            &report_s,
            "--from",
            "@15",
            "--to",
            path_str(&beside),
            "--json",
        ],
    );
    assert_eq!(v["method"], "reflink", "{v:#}");
    assert_eq!(fs::read(&beside).unwrap(), text("v2"));
    let m = fs::symlink_metadata(&beside).unwrap();
    assert_eq!(
        (m.mode() & 0o7777, m.uid(), m.gid(), m.mtime()),
        (0o640, 1234, 2345, MTIME)
    );
    assert_eq!(
        getxattr(&beside, "user.origin").as_deref(),
        Some(&b"v2"[..])
    );
    assert_eq!(getxattr(&beside, "system.posix_acl_access"), Some(acl()));
    assert_eq!(
        shared_bytes(&beside),
        SIZE as u64,
        "the restored file shares its extents"
    );

    // Back in its place (absent in live); then once more: refused, and --overwrite keeps the old one.
    wb.run_ok(&["restore", &report_s, "--from", "@15"]);
    assert_eq!(fs::read(&report).unwrap(), text("v2"));
    let out = wb.run(&["restore", &report_s, "--from", "@22"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        wayback_testsupport::show(&out)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("--overwrite"));
    assert_eq!(fs::read(&report).unwrap(), text("v2"));
    let v = json(
        &wb,
        &[
            "restore",
            &report_s,
            "--from",
            "@22",
            "--overwrite",
            "--json",
        ],
    );
    let kept = PathBuf::from(v["kept"].as_str().unwrap());
    assert!(
        kept.file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("report.odt.wayback-"),
        "{kept:?}"
    );
    assert_eq!(fs::read(&kept).unwrap(), text("v2"));
    assert_eq!(fs::read(&report).unwrap(), text("v3"));

    // A symlink pointing out of the snapshot comes back as that symlink.
    let link = live.join("var/lib/app/link-out");
    wb.run_ok(&["restore", path_str(&link), "--from", "@15"]);
    assert!(fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(fs::read_link(&link).unwrap(), Path::new("/etc/passwd"));

    // A symlink on the way in live (sub -> outside) is not restored through.
    let f = live.join("var/lib/app/sub/f");
    let out = wb.run(&["restore", path_str(&f), "--from", "@15"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        wayback_testsupport::show(&out)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("symlink"));
    assert_eq!(
        fs::read_dir(&outside).unwrap().count(),
        0,
        "written through a symlink"
    );

    // A directory tree, elsewhere: files, a hard link, a symlink climbing out, kept as they are.
    let to = pool.dir().join("restored-sub");
    wb.run_ok(&[
        "restore",
        &format!("{live_s}/var/lib/app/sub"),
        "--from",
        "@15",
        "--to",
        path_str(&to),
    ]);
    assert_eq!(fs::read_to_string(to.join("deeper/g")).unwrap(), "deeper\n");
    assert_eq!(
        fs::metadata(to.join("f")).unwrap().ino(),
        fs::metadata(to.join("f-link")).unwrap().ino()
    );
    assert_eq!(
        fs::read_link(to.join("up")).unwrap(),
        Path::new("../../../../../../../etc")
    );

    // Bad input is exit 2: a path in no snapshot, an unknown snapshot.
    let nowhere = format!("{live_s}/var/lib/app/nothing");
    assert_eq!(
        wb.run(&["restore", &nowhere, "--from", "@15"])
            .status
            .code(),
        Some(2)
    );
    assert_eq!(
        wb.run(&["show", &report_s, "--from", "@99"]).status.code(),
        Some(2)
    );

    // Zero residue.
    assert!(temporaries(&live).is_empty() && temporaries(pool.dir()).is_empty());
    let own = pool.own_subvolumes();
    let extra: Vec<String> = pool
        .subvolumes()
        .into_iter()
        .filter(|s| !own.contains(s))
        .collect();
    assert!(extra.is_empty(), "subvolumes left: {extra:?}");
    fs::remove_dir_all(&to).unwrap();
    let id = pool.id.clone();
    drop(pool);
    assert!(
        wayback_testsupport::loop_devices_with(&id).is_empty(),
        "loop device left"
    );
    let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mounts.contains(&id), "mount left");
}
