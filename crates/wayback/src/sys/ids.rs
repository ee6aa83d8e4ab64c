//! Owners of the bind paths and the host's users: gathers what `wayback_core::ownership` compares (stat of
//! each bind path in the snapshot, the host's and the snapshot's /etc/passwd and /etc/group), and applies the
//! resulting id changes to the clone (lchown over the bind trees; the source is never touched).

use std::fs;
use std::io;
use std::os::unix::fs::{lchown, MetadataExt};
use std::path::Path;

use wayback_core::ownership::{self, IdTable, Mismatch, PathOwner, Tables};
use wayback_core::plan::Chown;
use wayback_core::Plan;

fn table(path: &Path) -> Option<IdTable> {
    fs::read_to_string(path).ok().map(|t| IdTable::parse(&t))
}

/// Mismatches between the owners of the plan's bind paths (as they are in the snapshot) and this host.
pub fn mismatches(plan: &Plan) -> Vec<Mismatch> {
    let host_users = table(Path::new("/etc/passwd")).unwrap_or_default();
    let host_groups = table(Path::new("/etc/group")).unwrap_or_default();
    let snap_users = table(&plan.source.path.join("etc/passwd"));
    let snap_groups = table(&plan.source.path.join("etc/group"));
    let owners: Vec<PathOwner> = plan
        .container
        .binds
        .iter()
        .filter_map(|b| {
            // The bind's source inside whichever clone it comes from, stat'ed in that clone's snapshot.
            let sources = std::iter::once((&plan.clone, &plan.source.path))
                .chain(plan.extra.iter().map(|e| (&e.clone, &e.source.path)));
            let (rel, snap) = sources
                .into_iter()
                .find_map(|(c, s)| Some((b.source.strip_prefix(c).ok()?, s)))?;
            let m = fs::symlink_metadata(snap.join(rel)).ok()?;
            Some(PathOwner {
                path: b.dest.clone(),
                uid: m.uid(),
                gid: m.gid(),
            })
        })
        .collect();
    ownership::check(
        &owners,
        &Tables {
            host_users: &host_users,
            host_groups: &host_groups,
            snap_users: snap_users.as_ref(),
            snap_groups: snap_groups.as_ref(),
        },
    )
}

/// Change mapped owners under `root` (one bind path of the clone). Returns how many entries changed.
/// Does not follow symlinks and does not leave the filesystem (a nested subvolume's stand-in is empty anyway).
pub fn chown_tree(root: &Path, chown: &Chown) -> io::Result<u64> {
    let dev = fs::symlink_metadata(root)?.dev();
    let mut changed = 0;
    let mut stack = vec![root.to_path_buf()];
    while let Some(p) = stack.pop() {
        let m = fs::symlink_metadata(&p)?;
        if m.dev() != dev {
            continue;
        }
        let uid = chown.uids.get(&m.uid()).copied();
        let gid = chown.gids.get(&m.gid()).copied();
        if uid.is_some() || gid.is_some() {
            lchown(&p, uid, gid)?;
            // chown clears setuid/setgid bits: put the mode back for regular files and directories.
            if !m.file_type().is_symlink() && m.mode() & 0o6000 != 0 {
                use std::os::unix::fs::PermissionsExt;
                fs::set_permissions(&p, fs::Permissions::from_mode(m.mode() & 0o7777))?;
            }
            changed += 1;
        }
        if m.is_dir() {
            for e in fs::read_dir(&p)? {
                stack.push(e?.path());
            }
        }
    }
    Ok(changed)
}
