//! Owners of the bind paths vs the users on this host. Host mode runs the host's software as the host's
//! users; if the snapshot's files belong to other uids (the snapshot came from another machine, or uids moved
//! — the seed's admin pinned nextcloud=991 and mysql=84 by hand), the service would start on files it cannot
//! read or write. This module finds such mismatches and the uid/gid mapping that fixes them in the clone
//! (`up --chown`). Pure: passwd/group texts and stat results come from the caller.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// name → id and id → name, from an /etc/passwd or /etc/group text.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IdTable {
    by_name: BTreeMap<String, u32>,
    by_id: BTreeMap<u32, String>,
}

impl IdTable {
    /// Parse `name:x:id:...` lines (passwd and group share the first three fields). Bad lines are skipped.
    pub fn parse(text: &str) -> IdTable {
        let mut t = IdTable::default();
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let mut f = line.split(':');
            let (Some(name), Some(_), Some(id)) = (f.next(), f.next(), f.next()) else {
                continue;
            };
            let Ok(id) = id.parse::<u32>() else { continue };
            t.by_name.entry(name.to_string()).or_insert(id);
            t.by_id.entry(id).or_insert_with(|| name.to_string());
        }
        t
    }
    pub fn id(&self, name: &str) -> Option<u32> {
        self.by_name.get(name).copied()
    }
    pub fn name(&self, id: u32) -> Option<&str> {
        self.by_id.get(&id).map(String::as_str)
    }
}

/// Who owns a bind path in the snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathOwner {
    pub path: PathBuf,
    pub uid: u32,
    pub gid: u32,
}

/// One owner that does not fit this host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mismatch {
    pub path: PathBuf,
    pub kind: IdKind,
    pub id: u32,
    /// The owner's name in the snapshot's own /etc/passwd (or group), when the snapshot has one.
    pub name: Option<String>,
    /// The id of that name on this host, when it exists here.
    pub host_id: Option<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IdKind {
    User,
    Group,
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.kind {
            IdKind::User => "owner",
            IdKind::Group => "group",
        };
        match (&self.name, self.host_id) {
            (Some(n), Some(h)) => write!(
                f,
                "{} is {what} {n} ({}) in the snapshot, but {n} is {h} on this host",
                self.path.display(),
                self.id
            ),
            (Some(n), None) => write!(
                f,
                "{} is {what} {n} ({}) in the snapshot, and this host has no {n}",
                self.path.display(),
                self.id
            ),
            (None, _) => write!(
                f,
                "{} is {what} {} in the snapshot, which no {} on this host has",
                self.path.display(),
                self.id,
                if self.kind == IdKind::User {
                    "user"
                } else {
                    "group"
                }
            ),
        }
    }
}

/// Host tables, and the snapshot's own when it contains /etc/passwd and /etc/group.
pub struct Tables<'a> {
    pub host_users: &'a IdTable,
    pub host_groups: &'a IdTable,
    pub snap_users: Option<&'a IdTable>,
    pub snap_groups: Option<&'a IdTable>,
}

/// Owners (uid, and gid) of the bind paths that do not fit the host. Root (0) always fits.
pub fn check(owners: &[PathOwner], t: &Tables) -> Vec<Mismatch> {
    let mut out = Vec::new();
    for o in owners {
        for (kind, id, host, snap) in [
            (IdKind::User, o.uid, t.host_users, t.snap_users),
            (IdKind::Group, o.gid, t.host_groups, t.snap_groups),
        ] {
            if id == 0 {
                continue;
            }
            let name = snap.and_then(|s| s.name(id)).map(str::to_string);
            let host_id = name.as_deref().and_then(|n| host.id(n));
            let fits = match &name {
                Some(_) => host_id == Some(id),
                None => host.name(id).is_some(),
            };
            if !fits {
                out.push(Mismatch {
                    path: o.path.clone(),
                    kind,
                    id,
                    name,
                    host_id,
                });
            }
        }
    }
    out
}

/// The id changes that fix `mismatches` (snapshot id → host id), by name. Explicit `user_map` entries
/// (`UID:USER` from the command line) win. Returns the mismatches nothing maps.
pub fn mapping(
    mismatches: &[Mismatch],
    explicit: &[(u32, u32, IdKind)],
) -> (BTreeMap<u32, u32>, BTreeMap<u32, u32>, Vec<Mismatch>) {
    let (mut uids, mut gids, mut unmapped) = (BTreeMap::new(), BTreeMap::new(), Vec::new());
    for (from, to, kind) in explicit {
        match kind {
            IdKind::User => uids.insert(*from, *to),
            IdKind::Group => gids.insert(*from, *to),
        };
    }
    for m in mismatches {
        let table = match m.kind {
            IdKind::User => &mut uids,
            IdKind::Group => &mut gids,
        };
        if table.contains_key(&m.id) {
            continue;
        }
        match m.host_id {
            Some(h) => {
                table.insert(m.id, h);
            }
            None => unmapped.push(m.clone()),
        }
    }
    (uids, gids, unmapped)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOST_PW: &str = "root:x:0:0::/root:/bin/sh\npostgres:x:106:110::/var/lib/postgresql:/bin/bash\nwww-data:x:33:33::/var/www:/usr/sbin/nologin\n";
    const HOST_GR: &str = "root:x:0:\npostgres:x:110:\nwww-data:x:33:\n";
    const SNAP_PW: &str = "root:x:0:0::/root:/bin/sh\npostgres:x:4242:4242::/var/lib/postgresql:/bin/bash\nghost:x:777:777::/:/bin/false\n";
    const SNAP_GR: &str = "root:x:0:\npostgres:x:4242:\nghost:x:777:\n";

    #[test]
    fn finds_and_maps_by_name() {
        let (hu, hg, su, sg) = (
            IdTable::parse(HOST_PW),
            IdTable::parse(HOST_GR),
            IdTable::parse(SNAP_PW),
            IdTable::parse(SNAP_GR),
        );
        let t = Tables {
            host_users: &hu,
            host_groups: &hg,
            snap_users: Some(&su),
            snap_groups: Some(&sg),
        };
        let owners = [
            PathOwner {
                path: "/var/lib/postgresql".into(),
                uid: 4242,
                gid: 4242,
            },
            PathOwner {
                path: "/var/www".into(),
                uid: 0,
                gid: 0,
            },
            PathOwner {
                path: "/srv/ghost".into(),
                uid: 777,
                gid: 777,
            },
        ];
        let m = check(&owners, &t);
        assert_eq!(m.len(), 4);
        assert_eq!(m[0].to_string(), "/var/lib/postgresql is owner postgres (4242) in the snapshot, but postgres is 106 on this host");
        assert!(m[2].to_string().contains("this host has no ghost"));
        let (uids, gids, unmapped) = mapping(&m, &[]);
        assert_eq!(uids.get(&4242), Some(&106));
        assert_eq!(gids.get(&4242), Some(&110));
        assert_eq!(unmapped.len(), 2, "ghost has no host user");
        let (uids, _, unmapped) = mapping(&m, &[(777, 33, IdKind::User), (777, 33, IdKind::Group)]);
        assert_eq!(uids.get(&777), Some(&33));
        assert!(unmapped.is_empty());
    }

    #[test]
    fn without_snapshot_tables_only_unknown_ids_mismatch() {
        let (hu, hg) = (IdTable::parse(HOST_PW), IdTable::parse(HOST_GR));
        let t = Tables {
            host_users: &hu,
            host_groups: &hg,
            snap_users: None,
            snap_groups: None,
        };
        let owners = [
            PathOwner {
                path: "/a".into(),
                uid: 106,
                gid: 110,
            },
            PathOwner {
                path: "/b".into(),
                uid: 991,
                gid: 33,
            },
        ];
        let m = check(&owners, &t);
        assert_eq!(m.len(), 1);
        assert_eq!(
            m[0].to_string(),
            "/b is owner 991 in the snapshot, which no user on this host has"
        );
    }
}
