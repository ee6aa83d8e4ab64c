//! Versions of installed software, as package databases and store paths state them: dpkg's status file
//! (installed packages and their versions), dpkg's file lists (which package owns a path), Debian version
//! comparison (epoch, upstream version, revision; `~` sorts before everything), the upstream part of a
//! version, and a Nix store path's name and version. Pure: the caller reads the files.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A package and its version, as a package database (or a store path's name) states it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Package {
    pub name: String,
    pub version: String,
}

impl std::fmt::Display for Package {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.name, self.version)
    }
}

/// Installed packages (`Status: install ok installed`) of a dpkg status file: name → version. A package
/// installed for several architectures keeps its first entry.
pub fn dpkg_installed(status: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for para in status.split("\n\n") {
        let (mut name, mut version, mut installed) = (None, None, false);
        for line in para.lines() {
            if let Some(v) = line.strip_prefix("Package:") {
                name = Some(v.trim());
            } else if let Some(v) = line.strip_prefix("Version:") {
                version = Some(v.trim());
            } else if let Some(v) = line.strip_prefix("Status:") {
                installed = v.split_whitespace().last() == Some("installed");
            }
        }
        if let (Some(n), Some(v), true) = (name, version, installed) {
            out.entry(n.to_string()).or_insert_with(|| v.to_string());
        }
    }
    out
}

/// Whether a dpkg file list (`/var/lib/dpkg/info/PKG.list`) holds `path`, also under its other name on a
/// merged-/usr system (`/usr/sbin/x` is listed as `/sbin/x` by packages built before the merge, and the
/// other way round).
pub fn list_holds(list: &str, path: &Path) -> bool {
    let alias = usr_alias(path);
    list.lines()
        .map(Path::new)
        .any(|l| l == path || alias.as_deref() == Some(l))
}

/// `/usr/bin/x` ↔ `/bin/x` (also sbin, lib, lib64), else none.
fn usr_alias(path: &Path) -> Option<PathBuf> {
    const MERGED: &[&str] = &["bin", "sbin", "lib", "lib32", "lib64", "libx32"];
    if let Ok(rest) = path.strip_prefix("/usr") {
        let first = rest.components().next()?.as_os_str().to_str()?;
        return MERGED.contains(&first).then(|| Path::new("/").join(rest));
    }
    let first = path.components().nth(1)?.as_os_str().to_str()?;
    let rel = path.strip_prefix("/").ok()?;
    MERGED.contains(&first).then(|| Path::new("/usr").join(rel))
}

/// The upstream part of a Debian version: without the epoch (`1:`) and the Debian revision (`-0+deb12u1`).
pub fn upstream(version: &str) -> &str {
    let v = version.split_once(':').map_or(version, |(_, r)| r);
    v.rsplit_once('-').map_or(v, |(u, _)| u)
}

/// Leading numeric components of a version (`10.11.19-MariaDB` → [10, 11, 19]).
pub fn numbers(version: &str) -> Vec<u64> {
    version
        .split(|c: char| !c.is_ascii_digit() && c != '.')
        .next()
        .unwrap_or("")
        .split('.')
        .map_while(|n| n.parse().ok())
        .collect()
}

/// Debian's version order (deb-version(7)): epoch numerically, then upstream version and revision by
/// `verrevcmp` (non-digits lexically with letters before non-letters and `~` before anything, digits
/// numerically).
pub fn dpkg_cmp(a: &str, b: &str) -> Ordering {
    let split = |v: &str| -> (u64, String, String) {
        let (epoch, rest) = match v.split_once(':') {
            Some((e, r)) if e.chars().all(|c| c.is_ascii_digit()) => (e.parse().unwrap_or(0), r),
            _ => (0, v),
        };
        let (up, rev) = rest.rsplit_once('-').unwrap_or((rest, ""));
        (epoch, up.to_string(), rev.to_string())
    };
    let (ea, ua, ra) = split(a);
    let (eb, ub, rb) = split(b);
    ea.cmp(&eb)
        .then_with(|| verrevcmp(&ua, &ub))
        .then_with(|| verrevcmp(&ra, &rb))
}

fn order(c: Option<u8>) -> i32 {
    match c {
        None => 0,
        Some(b'~') => -1,
        Some(c) if c.is_ascii_digit() => 0,
        Some(c) if c.is_ascii_alphabetic() => i32::from(c),
        Some(c) => i32::from(c) + 256,
    }
}

fn verrevcmp(a: &str, b: &str) -> Ordering {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        while (i < a.len() && !a[i].is_ascii_digit()) || (j < b.len() && !b[j].is_ascii_digit()) {
            let ac = order(a.get(i).copied().filter(|c| !c.is_ascii_digit()));
            let bc = order(b.get(j).copied().filter(|c| !c.is_ascii_digit()));
            if ac != bc {
                return ac.cmp(&bc);
            }
            i += 1;
            j += 1;
        }
        while a.get(i) == Some(&b'0') {
            i += 1;
        }
        while b.get(j) == Some(&b'0') {
            j += 1;
        }
        let mut first = Ordering::Equal;
        while i < a.len() && a[i].is_ascii_digit() && j < b.len() && b[j].is_ascii_digit() {
            if first == Ordering::Equal {
                first = a[i].cmp(&b[j]);
            }
            i += 1;
            j += 1;
        }
        if i < a.len() && a[i].is_ascii_digit() {
            return Ordering::Greater;
        }
        if j < b.len() && b[j].is_ascii_digit() {
            return Ordering::Less;
        }
        if first != Ordering::Equal {
            return first;
        }
    }
    Ordering::Equal
}

/// The store path a path lies in (`/nix/store/HASH-NAME`), when it is one.
pub fn store_path(path: &Path) -> Option<PathBuf> {
    let mut c = path.components();
    let (root, nix, store, entry) = (c.next()?, c.next()?, c.next()?, c.next()?);
    (root == std::path::Component::RootDir
        && nix.as_os_str() == "nix"
        && store.as_os_str() == "store")
        .then(|| Path::new("/nix/store").join(entry))
}

/// Name and version of a Nix store path (`/nix/store/<32 chars>-nginx-1.24.0/bin/nginx` → nginx 1.24.0):
/// the version starts at the first `-` followed by a digit, as Nix's `parseDrvName` splits names.
pub fn store_package(path: &Path) -> Option<Package> {
    let entry = store_path(path)?;
    let entry = entry.file_name()?.to_str()?;
    let (hash, rest) = entry.split_once('-')?;
    if hash.len() != 32 {
        return None;
    }
    let cut = rest
        .match_indices('-')
        .find(|(i, _)| rest[i + 1..].starts_with(|c: char| c.is_ascii_digit()))
        .map(|(i, _)| i)?;
    Some(Package {
        name: rest[..cut].to_string(),
        version: rest[cut + 1..].to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dpkg_status_and_lists() {
        let status = "Package: nginx\nStatus: install ok installed\nVersion: 1.22.1-9+deb12u1\n\n\
                      Package: gone\nStatus: deinstall ok config-files\nVersion: 1.0\n\n\
                      Package: libc6\nStatus: install ok installed\nArchitecture: amd64\nVersion: 2.36-9\n\n\
                      Package: libc6\nStatus: install ok installed\nArchitecture: i386\nVersion: 2.36-8\n";
        let got = dpkg_installed(status);
        assert_eq!(
            got.get("nginx").map(String::as_str),
            Some("1.22.1-9+deb12u1")
        );
        assert_eq!(got.get("libc6").map(String::as_str), Some("2.36-9"));
        assert!(!got.contains_key("gone"));
        let nginx = "/.\n/usr\n/usr/sbin\n/usr/sbin/nginx\n";
        assert!(list_holds(nginx, Path::new("/usr/sbin/nginx")));
        assert!(!list_holds(
            "/.\n/etc/nginx\n",
            Path::new("/usr/sbin/nginx")
        ));
        assert!(
            list_holds("/bin/ls\n", Path::new("/usr/bin/ls")),
            "merged /usr"
        );
        assert!(!list_holds(nginx, Path::new("/usr/sbin/none")));
    }

    #[test]
    fn debian_version_order() {
        use Ordering::*;
        for (a, b, want) in [
            ("1.22.1-9", "1.18.0-6.1", Greater),
            ("1:10.11.6-0+deb12u1", "10.11.6-0+deb12u1", Greater),
            ("1.0~rc1-1", "1.0-1", Less),
            ("1.0-1", "1.0-1", Equal),
            ("2.36-9+deb12u4", "2.36-9", Greater),
            ("1.0a", "1.0", Greater),
            ("1.0.1", "1.0a", Greater),
            ("15+248", "15+248+deb12u2", Less),
            ("9.6", "15", Less),
        ] {
            assert_eq!(dpkg_cmp(a, b), want, "{a} vs {b}");
            assert_eq!(dpkg_cmp(b, a), want.reverse(), "{b} vs {a}");
        }
        assert_eq!(upstream("1:10.11.19-0+deb12u1"), "10.11.19");
        assert_eq!(upstream("8.0.39"), "8.0.39");
        assert_eq!(numbers("10.11.19-MariaDB"), [10, 11, 19]);
        assert_eq!(numbers("9.6"), [9, 6]);
    }

    #[test]
    fn store_names() {
        let p = Path::new("/nix/store/0123456789abcdfghijklmnpqrsvwxyz-nginx-1.24.0/bin/nginx");
        assert_eq!(
            store_package(p),
            Some(Package {
                name: "nginx".into(),
                version: "1.24.0".into()
            })
        );
        let p = Path::new(
            "/nix/store/0123456789abcdfghijklmnpqrsvwxyz-php-with-extensions-8.2.20/bin/php",
        );
        assert_eq!(store_package(p).unwrap().name, "php-with-extensions");
        assert_eq!(
            store_package(Path::new(
                "/nix/store/0123456789abcdfghijklmnpqrsvwxyz-unit-script/x"
            )),
            None
        );
        assert_eq!(store_package(Path::new("/usr/sbin/nginx")), None);
        assert_eq!(
            store_path(p).unwrap(),
            Path::new("/nix/store/0123456789abcdfghijklmnpqrsvwxyz-php-with-extensions-8.2.20")
        );
    }
}
