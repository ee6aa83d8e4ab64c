//! Tier-0 tests of the catalogs: real-format snapper info.xml (and odd ones), btrbk names, discovery on
//! an in-memory fixture tree.

use super::*;
use crate::civil::ParsedTime;
use std::collections::{BTreeMap, BTreeSet};

/// The shape snapper writes (snapper 0.10).
const INFO_FULL: &str = r#"<?xml version="1.0"?>
<snapshot>
  <type>single</type>
  <num>11921</num>
  <date>2026-11-14 10:00:01</date>
  <description>timeline</description>
  <cleanup>timeline</cleanup>
  <userdata>
    <key>important</key>
    <value>yes</value>
  </userdata>
  <userdata>
    <key>by</key>
    <value>zypp &amp; friends</value>
  </userdata>
</snapshot>
"#;

const INFO_POST_NO_DESCRIPTION: &str = r#"<?xml version="1.0"?>
<snapshot>
  <type>post</type>
  <num>12</num>
  <date>2026-01-02 03:04:05</date>
  <pre_num>11</pre_num>
</snapshot>
"#;

#[test]
fn snapper_info_full() {
    let i = parse_snapper_info(INFO_FULL).unwrap();
    assert_eq!(i.num, 11921);
    assert_eq!(civil::format_utc(i.date), "2026-11-14 10:00:01");
    assert_eq!(i.kind, "single");
    assert_eq!(i.description.as_deref(), Some("timeline"));
    assert_eq!(i.cleanup.as_deref(), Some("timeline"));
    assert_eq!(i.userdata["important"], "yes");
    assert_eq!(i.userdata["by"], "zypp & friends");
}

#[test]
fn snapper_info_odd_ones() {
    let i = parse_snapper_info(INFO_POST_NO_DESCRIPTION).unwrap();
    assert_eq!(i.description, None);
    assert_eq!(i.cleanup, None);
    assert_eq!(i.pre_num, Some(11));
    assert!(i.userdata.is_empty());
    // An empty description is no description.
    let x = "<snapshot><type>single</type><num>1</num><date>2026-01-01 00:00:00</date>\
             <description></description><userdata><key>k</key></userdata></snapshot>";
    let i = parse_snapper_info(x).unwrap();
    assert_eq!(i.description, None);
    assert_eq!(i.userdata["k"], "");
    // The date is UTC whatever the local zone: snapper writes UTC, and TZ must not matter here.
    let x = "<snapshot><type>single</type><num>1</num><date>2026-07-01 00:30:00</date></snapshot>";
    assert_eq!(parse_snapper_info(x).unwrap().date, 1_782_865_800);
    for (bad, why) in [
        ("<snapshot><num>1</num>", "XML"),
        ("<snap/>", "<snapshot>"),
        ("<snapshot><type>single</type><date>2026-01-01 00:00:00</date></snapshot>", "<num>"),
        ("<snapshot><type>single</type><num>x</num><date>2026-01-01 00:00:00</date></snapshot>", "not a number"),
        ("<snapshot><type>single</type><num>1</num><date>2026-01-01T00:00:00+01:00</date></snapshot>", "UTC"),
        ("<snapshot><type>single</type><num>1</num><date>yesterday</date></snapshot>", "<date>"),
        ("<snapshot><num>1</num><date>2026-01-01 00:00:00</date></snapshot>", "<type>"),
        ("", "XML"),
    ] {
        let e = parse_snapper_info(bad).unwrap_err();
        assert!(e.contains(why), "{bad}: {e}");
    }
}

fn btrbk(s: &str) -> (String, String, Option<i32>, u32) {
    let b = parse_btrbk_name(s).unwrap().unwrap();
    let t = ParsedTime {
        offset: None,
        ..b.time
    };
    (
        b.name,
        civil::format_utc(t.start_utc()),
        b.time.offset.map(jiff::tz::Offset::seconds),
        b.seq,
    )
}

#[test]
fn btrbk_names() {
    let day = "2026-11-14 00:00:00".to_string();
    let ten = "2026-11-14 10:00:00".to_string();
    assert_eq!(
        btrbk("home.20261114"),
        ("home".into(), day.clone(), None, 0)
    );
    assert_eq!(btrbk("home.20261114_2"), ("home".into(), day, None, 2));
    assert_eq!(
        btrbk("home.20261114T1000"),
        ("home".into(), ten.clone(), None, 0)
    );
    assert_eq!(btrbk("home.20261114T1000_1"), ("home".into(), ten, None, 1));
    assert_eq!(
        btrbk("home.20261114T100030"),
        ("home".into(), "2026-11-14 10:00:30".into(), None, 0)
    );
    assert_eq!(
        btrbk("my.root.20261114T100000+0100"),
        (
            "my.root".into(),
            "2026-11-14 10:00:00".into(),
            Some(3600),
            0
        )
    );
    assert_eq!(btrbk("x.20261114T100000-0530_3").2, Some(-19_800));
    let b = parse_btrbk_name("home.20261114T100000+0100")
        .unwrap()
        .unwrap();
    assert_eq!(civil::format_utc(b.time.start_utc()), "2026-11-14 09:00:00");
    // Not btrbk-shaped: plain subvolumes.
    for plain in [
        "home",
        "home.old",
        ".20261114",
        "home.2026111",
        "@home",
        "v1.2",
    ] {
        assert_eq!(parse_btrbk_name(plain), Ok(None), "{plain}");
    }
    // btrbk-shaped but broken: warnings.
    for bad in [
        "home.20261399",
        "home.20261114T2500",
        "home.20261114X1000",
        "home.20261114T10",
        "home.20261114_x",
        "home.20261114T1000+01",
        "home.20261114_",
    ] {
        assert!(parse_btrbk_name(bad).is_err(), "{bad} accepted");
    }
}

/// An in-memory filesystem: directories, files, subvolumes, symlinks and mount points of other
/// filesystems (the last two are never searched, like the real probe's).
#[derive(Default)]
pub(super) struct Fixture {
    pub(super) dirs: BTreeMap<PathBuf, BTreeSet<OsString>>,
    pub(super) files: BTreeMap<PathBuf, String>,
    pub(super) subvols: BTreeMap<PathBuf, SubvolMeta>,
    pub(super) symlinks: BTreeSet<PathBuf>,
    pub(super) mounts: BTreeSet<PathBuf>,
}

impl Fixture {
    pub(super) fn add(&mut self, path: &str) {
        let p = PathBuf::from(path);
        let mut cur = p.as_path();
        while let Some(parent) = cur.parent() {
            self.dirs
                .entry(parent.into())
                .or_default()
                .insert(cur.file_name().unwrap().into());
            cur = parent;
        }
    }
    pub(super) fn dir(&mut self, path: &str) {
        self.add(path);
        self.dirs.entry(path.into()).or_default();
    }
    pub(super) fn file(&mut self, path: &str, text: &str) {
        self.add(path);
        self.files.insert(path.into(), text.into());
    }
    fn subvol(&mut self, path: &str, otime: i64, readonly: bool) {
        self.subvol_of(path, otime, readonly, Some("live"));
    }
    /// A subvolume with uuid `uuid-PATH` and the given parent uuid.
    pub(super) fn subvol_of(
        &mut self,
        path: &str,
        otime: i64,
        readonly: bool,
        parent: Option<&str>,
    ) {
        self.dir(path);
        self.subvols.insert(
            path.into(),
            SubvolMeta {
                otime,
                readonly,
                uuid: Some(format!("uuid-{path}")),
                parent_uuid: parent.map(str::to_string),
            },
        );
    }
    /// `path` is a symlink (to anywhere): listed in its parent, never searched.
    pub(super) fn symlink(&mut self, path: &str) {
        self.add(path);
        self.symlinks.insert(path.into());
    }
    pub(super) fn snapper(&mut self, dir: &str, n: u64, date: &str) {
        self.snapper_rw(dir, n, date, true);
    }
    pub(super) fn snapper_rw(&mut self, dir: &str, n: u64, date: &str, readonly: bool) {
        self.file(
            &format!("{dir}/{n}/info.xml"),
            &format!("<?xml version=\"1.0\"?>\n<snapshot>\n  <type>single</type>\n  <num>{n}</num>\n  <date>{date}</date>\n  <description>timeline</description>\n  <cleanup>timeline</cleanup>\n</snapshot>\n"),
        );
        self.subvol(&format!("{dir}/{n}/snapshot"), 0, readonly);
    }
}

impl Probe for Fixture {
    fn list_dir(&self, dir: &Path) -> std::io::Result<Vec<OsString>> {
        self.dirs
            .get(dir)
            .map(|s| s.iter().cloned().collect())
            .ok_or_else(|| std::io::Error::from(std::io::ErrorKind::NotFound))
    }
    fn read_file(&self, path: &Path) -> std::io::Result<String> {
        self.files
            .get(path)
            .cloned()
            .ok_or_else(|| std::io::Error::from(std::io::ErrorKind::NotFound))
    }
    fn subvolume(&self, path: &Path) -> Option<SubvolMeta> {
        self.subvols.get(path).cloned()
    }
    fn node(&self, path: &Path) -> Node {
        if self.symlinks.contains(path) || self.mounts.contains(path) {
            Node::Other
        } else if let Some(m) = self.subvols.get(path) {
            Node::Subvolume(m.clone())
        } else if self.dirs.contains_key(path) {
            Node::Dir
        } else {
            Node::Other
        }
    }
    /// A fixed zone one hour east of UTC.
    fn local_to_unix(&self, c: &Civil) -> i64 {
        civil::unix_utc(c) - 3600
    }
}

fn fixture() -> Fixture {
    let mut f = Fixture::default();
    f.subvol("/persist", 100, false);
    f.subvol("/persist/.snapshots", 100, false);
    f.snapper("/persist/.snapshots", 2, "2026-11-14 11:00:00");
    f.snapper("/persist/.snapshots", 1, "2026-11-14 10:00:00");
    f.snapper("/persist/.snapshots", 10, "2026-11-15 10:00:00");
    // Odd ones: no info.xml, garbage, wrong num, info but no subvolume, a non-number.
    f.subvol("/persist/.snapshots/3/snapshot", 0, true);
    f.file("/persist/.snapshots/4/info.xml", "<snapshot><num>4</num>");
    f.snapper("/persist/.snapshots", 5, "2026-11-14 12:00:00");
    f.files.insert(
        "/persist/.snapshots/5/info.xml".into(),
        f.files[Path::new("/persist/.snapshots/5/info.xml")].replace("<num>5<", "<num>6<"),
    );
    f.file(
        "/persist/.snapshots/7/info.xml",
        "<snapshot><type>single</type><num>7</num><date>2026-11-16 00:00:00</date></snapshot>",
    );
    f.file("/persist/.snapshots/grub-snapshot.cfg", "x");
    // btrbk and plain subvolumes beside it, a plain directory, wayback's clone dir.
    f.subvol("/persist/home.20261114T1000", 0, true);
    f.subvol("/persist/home.20261114T1000_1", 0, true);
    f.subvol("/persist/home.20261113", 0, true);
    f.subvol("/persist/home.20261399", 0, true);
    f.subvol("/persist/old-copy", 1_794_639_600, true);
    f.subvol("/persist/.wayback", 0, false);
    f.dir("/persist/data");
    f
}

#[test]
fn discovers_snapper_btrbk_and_plain() {
    let f = fixture();
    let cat = discover(&["/persist".into()], &f).unwrap();
    let got: Vec<String> = cat
        .snapshots
        .iter()
        .map(|s| format!("{} {}", s.label(), s.series()))
        .collect();
    insta::assert_snapshot!(got.join("\n"), @r"
    #1  2026-11-12 23:00:00  /persist/home.20261113 btrbk /persist/home
    #2  2026-11-14 07:00:00  /persist/old-copy plain /persist
    #3  2026-11-14 09:00:00  /persist/home.20261114T1000 btrbk /persist/home
    #4  2026-11-14 09:00:00  /persist/home.20261114T1000_1 btrbk /persist/home
    #1  2026-11-14 10:00:00  /persist/.snapshots/1/snapshot snapper /persist
    #2  2026-11-14 11:00:00  /persist/.snapshots/2/snapshot snapper /persist
    #10  2026-11-15 10:00:00  /persist/.snapshots/10/snapshot snapper /persist
    ");
    let warned: Vec<String> = cat
        .warnings
        .iter()
        .map(|w| format!("{}: {}", w.path.display(), w.message))
        .collect();
    insta::assert_snapshot!(warned.join("\n"), @r#"
    /persist/.snapshots/3/info.xml: skipped: cannot read: entity not found
    /persist/.snapshots/4/info.xml: skipped: not valid XML: the root node was opened but never closed
    /persist/.snapshots/5/info.xml: skipped: <num> is 6 but the directory is 5
    /persist/.snapshots/7/snapshot: skipped: missing or not a btrfs subvolume
    /persist/home.20261399: btrbk-style name "home.20261399": no such date or time
    "#);
    let s = &cat.snapshots[4];
    assert!(s.readonly);
    assert_eq!(s.description.as_deref(), Some("timeline"));
    assert_eq!(s.parent_uuid.as_deref(), Some("live"));
}

#[test]
fn root_can_be_the_snapshots_dir_and_missing_roots_are_errors() {
    let f = fixture();
    let cat = discover(&["/persist/.snapshots".into()], &f).unwrap();
    let ids: Vec<u64> = cat.snapshots.iter().map(|s| s.id).collect();
    assert_eq!(ids, [1, 2, 10]);
    assert!(matches!(
        &cat.snapshots[0].source,
        Source::Snapper { root, .. } if root == Path::new("/persist")
    ));
    let e = discover(&["/nope".into()], &f).unwrap_err();
    assert!(e.to_string().contains("/nope"), "{e}");
    // The same root twice lists each snapshot once.
    let twice = discover(
        &["/persist/.snapshots".into(), "/persist/.snapshots".into()],
        &f,
    );
    assert_eq!(twice.unwrap().snapshots.len(), 3);
}

#[test]
fn json_shape() {
    let f = fixture();
    let cat = discover(&["/persist/.snapshots".into()], &f).unwrap();
    insta::assert_json_snapshot!(cat.snapshots[0], @r#"
    {
      "id": 1,
      "date": 1794650400,
      "source": {
        "kind": "snapper",
        "root": "/persist",
        "type": "single",
        "cleanup": "timeline"
      },
      "description": "timeline",
      "readonly": true,
      "path": "/persist/.snapshots/1/snapshot",
      "root": "/persist/.snapshots",
      "uuid": "uuid-/persist/.snapshots/1/snapshot",
      "parent_uuid": "live"
    }
    "#);
}
