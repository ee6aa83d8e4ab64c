//! Which package owns a program, from dpkg's file lists (`/var/lib/dpkg/info/PKG.list`) of one side,
//! read only as far as needed. A Debian host has about a thousand lists (15–40 MB); reading them all on
//! every `up` cost tens of milliseconds of planning. A regular file has one owner, so the search stops at
//! the first list that holds the path, and tries first the packages whose name shares the start of the
//! program's name (`nginx` → `nginx`, `nginx-common`; `php-fpm8.2` → `php8.2-fpm`); a list once read
//! is kept for the next program. The answer is the same as reading every list.

use std::collections::HashMap;
use std::path::Path;

use wayback_core::drift::versions;

use super::compare::Side;

/// dpkg's file lists of one side.
pub(super) struct DpkgLists<'s, 'a> {
    side: &'s Side<'a>,
    /// `PKG.list` file names, in directory order.
    names: Vec<String>,
    /// The lists read so far (`None`: unreadable).
    texts: HashMap<String, Option<String>>,
}

const DIR: &str = "/var/lib/dpkg/info";

impl<'s, 'a> DpkgLists<'s, 'a> {
    pub(super) fn new(side: &'s Side<'a>) -> Self {
        let names = (side.list(Path::new(DIR)).into_iter())
            .filter_map(|(n, is_dir)| n.into_string().ok().filter(|_| !is_dir))
            .filter(|n| n.ends_with(".list"))
            .collect();
        DpkgLists {
            side,
            names,
            texts: HashMap::new(),
        }
    }

    /// The package whose list holds `path` (see [`versions::list_holds`]), `:arch` dropped.
    pub(super) fn owner(&mut self, path: &Path) -> Option<String> {
        let key = name_key(path);
        let likely = |n: &&String| key.as_deref().is_some_and(|k| n.contains(k));
        let order: Vec<String> = (self.names.iter().filter(likely))
            .chain(self.names.iter().filter(|n| !likely(n)))
            .cloned()
            .collect();
        for file in order {
            let side = self.side;
            let text = (self.texts.entry(file.clone()))
                .or_insert_with(|| side.read(&Path::new(DIR).join(&file), super::compare::DB_MAX));
            if text
                .as_deref()
                .is_some_and(|t| versions::list_holds(t, path))
            {
                let pkg = file.strip_suffix(".list").unwrap_or(&file);
                return Some(pkg.split(':').next().unwrap_or(pkg).to_string());
            }
        }
        None
    }
}

/// The first three letters of the program's file name, lowercased (`php-fpm8.2` → `php`), when it
/// starts with three.
fn name_key(path: &Path) -> Option<String> {
    let name = path.file_name()?.to_str()?;
    let key: String = name.chars().take(3).collect();
    (key.len() == 3 && key.chars().all(|c| c.is_ascii_alphabetic())).then(|| key.to_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_is_the_start_of_the_program_name() {
        assert_eq!(
            name_key(Path::new("/usr/sbin/php-fpm8.2")).as_deref(),
            Some("php")
        );
        assert_eq!(
            name_key(Path::new("/usr/sbin/NGINX")).as_deref(),
            Some("ngi")
        );
        assert_eq!(name_key(Path::new("/usr/bin/7z")), None);
        assert_eq!(name_key(Path::new("/")), None);
    }

    /// On this host: the owner found by the ordered search is the one a full scan finds.
    #[test]
    fn the_owner_is_the_one_a_full_scan_finds() {
        if !Path::new(DIR).is_dir() {
            eprintln!("skipped: no {DIR} on this machine");
            return;
        }
        let host = Side::Host;
        let mut lists = DpkgLists::new(&host);
        for program in [
            "/usr/bin/nft",
            "/usr/sbin/nginx",
            "/bin/sh",
            "/usr/bin/systemd-nspawn",
        ] {
            let path = Path::new(program);
            let full = (lists.names.clone().into_iter()).find_map(|f| {
                let text = host.read(&Path::new(DIR).join(&f), super::super::compare::DB_MAX)?;
                let pkg = f.strip_suffix(".list")?;
                versions::list_holds(&text, path)
                    .then(|| pkg.split(':').next().unwrap().to_string())
            });
            assert_eq!(lists.owner(path), full, "{program}");
        }
    }
}
