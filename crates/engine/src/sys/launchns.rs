//! The mount namespace a container is launched from.
//!
//! systemd-nspawn is not started from the host's mount namespace but from a private one that wayback makes
//! for it on a dedicated thread (a tokio worker never changes namespace):
//!
//! 1. `unshare(CLONE_NEWNS)`, then `/` recursively `MS_SLAVE` (on hosts whose mounts are shared, as under
//!    systemd, the host's unmounts still reach it; nothing made in it reaches the host).
//! 2. Each bind path of a clone is resolved *inside* the clone (`sys::inroot`: a symlink in the snapshot can
//!    never lead to a host path) and that descriptor is bind-mounted on a mount point in the instance's own
//!    directory, which is what nspawn's `--bind=` then names.
//! 3. Every host mount the container does not need is detached (`umount2(MNT_DETACH)`), so the container's
//!    namespace holds no copy of it: a filesystem the host unmounts while the instance runs is really
//!    released (its loop device detaches), and other instances' network namespaces and clones are not kept
//!    alive by this one.
//! 4. The host's secrets under the paths the container shows (/etc/shadow, SSH host keys, …) are covered
//!    by empty read-only nodes — in this namespace only, so the host is untouched; nspawn's recursive
//!    `--bind-ro=/etc` carries them into the container, whose root cannot unmount them (no CAP_SYS_ADMIN).
//!    Every instance's network namespace is mounted under one directory (`/run/netns`): it is detached as
//!    a whole and the instance's own namespace mounted again at the same path on a fresh tmpfs, so the
//!    work here does not grow with the number of instances, and namespaces made later do not propagate
//!    into this one.
//! 5. nspawn is spawned from that thread and inherits the namespace, which lives as long as nspawn does.
//!
//! With the snapshot's own software (`up --software snapshot`), the container's root is made here too: a
//! fresh tmpfs in the instance's directory holding the snapshot's top-level symlinks ([`RootFs`]), on which
//! the snapshot's software directories are staged read-only like any other path of the clone (step 2).
//!
//! Syscalls: unshare, mount (MS_SLAVE, MS_BIND, MS_REMOUNT|MS_RDONLY, tmpfs), umount2(MNT_DETACH), openat2,
//! open_tree(OPEN_TREE_CLONE), move_mount, symlink.

use std::fs;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::Child;

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{unshare, CloneFlags};

use crate::sys::initbin;
use crate::sys::inroot::{InRootError, Tree};
use crate::sys::mountinfo::{self, Mount};
use crate::sys::nspawn::NspawnError;

/// A path of a clone to mount on a mount point before nspawn starts.
#[derive(Debug, Clone)]
pub struct Stage {
    /// The clone's root on the host.
    pub clone: PathBuf,
    /// The path inside the clone (resolved inside it).
    pub path: PathBuf,
    /// The mount point, in wayback's own instance directory.
    pub at: PathBuf,
    pub readonly: bool,
}

/// Host secrets covered, in the launch namespace only, by an empty read-only node (`empty`: an empty file
/// for files; a fresh read-only tmpfs for directories), which the container's recursive binds carry along.
#[derive(Debug, Clone, Default)]
pub struct Masks {
    pub paths: Vec<PathBuf>,
    /// An empty file (mode 0) in wayback's own directory, bound over masked files.
    pub empty: PathBuf,
}

/// Boot mode: the instance's network namespace, which nspawn is started inside (it cannot join one itself
/// together with a user namespace). Unprivileged ports start at 0 in every instance's network namespace,
/// which matters here: the booted root is root only in its own user namespace, not in the one owning the
/// network namespace.
#[derive(Debug, Clone)]
pub struct JoinNetns(pub PathBuf);

/// `--software snapshot`: the container's root, a tmpfs mounted at `dir` (a directory in the instance's own
/// directory) holding the snapshot's top-level symlinks as written (`/bin -> usr/bin`); they resolve inside
/// the container. Its software directories are stages whose mount points lie in it.
#[derive(Debug, Clone)]
pub struct RootFs {
    pub dir: PathBuf,
    pub links: Vec<(PathBuf, PathBuf)>,
}

/// Which host mounts the launch namespace keeps; every other one is detached.
#[derive(Debug, Clone, Default)]
pub struct Keep {
    /// Mounts at or below these stay (what the container shows of the host: /usr, /etc, host paths, and
    /// /proc, /sys, /dev for nspawn itself).
    pub trees: Vec<PathBuf>,
    /// The mounts holding these paths stay (the netns file, the instance directory, the init binary, the
    /// clones); mounts below them do not.
    pub paths: Vec<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    #[error("cannot make the container's mount namespace ({step}): {source}")]
    Namespace {
        step: &'static str,
        source: nix::Error,
    },
    #[error("cannot bind {path} of the clone {clone}: {source}")]
    Stage {
        clone: PathBuf,
        path: PathBuf,
        source: io::Error,
    },
    #[error("cannot mask the host's {path} in the container: {source}")]
    Mask { path: PathBuf, source: io::Error },
    #[error("cannot make the container's root at {path}: {source}")]
    Root { path: PathBuf, source: io::Error },
    #[error(transparent)]
    InRoot(#[from] InRootError),
    #[error(transparent)]
    Spawn(#[from] NspawnError),
    #[error("cannot mount wayback's own binary as the container's init at {path}: {source}")]
    Init { path: PathBuf, source: io::Error },
    #[error("the thread launching the container panicked")]
    Thread,
}

/// Everything the launch namespace is made of.
#[derive(Debug, Clone)]
pub struct Launch {
    /// With `--software snapshot`: the container's root, made first (stages below it mount on it).
    pub root: Option<RootFs>,
    pub stages: Vec<Stage>,
    pub masks: Masks,
    pub keep: Keep,
    /// Boot mode: the network namespace nspawn is started in.
    pub netns: Option<JoinNetns>,
    /// The instance's network namespace file (`/run/netns/wb-NAME`), which nspawn is given by path. The
    /// directory holding every instance's namespace is detached as a whole and this one file mounted again
    /// at the same path on a fresh tmpfs ([`own_netns`]).
    pub netns_file: PathBuf,
    /// Where the container's init binary is mounted: the one this process holds ([`initbin`]), so a
    /// container always runs the init of the wayback that started it — also when a package upgrade has
    /// replaced the file meanwhile.
    pub init_at: PathBuf,
}

/// Make the launch namespace on a new thread and run `spawn` (which starts nspawn) in it.
pub fn launch<F>(l: Launch, spawn: F) -> Result<Child, LaunchError>
where
    F: FnOnce() -> Result<Child, NspawnError> + Send + 'static,
{
    std::thread::Builder::new()
        .name("wayback-launch".into())
        .spawn(move || {
            // Taken before unsharing: the executable's mount belongs to the host's namespace.
            let exe = initbin::clone_mount().map_err(|source| LaunchError::Init {
                path: l.init_at.clone(),
                source,
            })?;
            prepare(&l, &exe)?;
            if let Some(n) = &l.netns {
                join_netns(n)?;
            }
            Ok(spawn()?)
        })
        .map_err(|_| LaunchError::Thread)?
        .join()
        .map_err(|_| LaunchError::Thread)?
}

fn prepare(l: &Launch, exe: &OwnedFd) -> Result<(), LaunchError> {
    let ns = |step| move |source| LaunchError::Namespace { step, source };
    unshare(CloneFlags::CLONE_NEWNS).map_err(ns("unshare"))?;
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_SLAVE,
        None::<&str>,
    )
    .map_err(ns("make / a slave"))?;
    // A detached copy of the instance's own namespace mount, taken before its directory goes.
    let netns = clone_tree(&l.netns_file).map_err(ns("clone the network namespace's mount"))?;
    if let Some(r) = &l.root {
        root_fs(r)?;
    }
    pin_init(exe, &l.init_at)?;
    for s in &l.stages {
        stage(s)?;
    }
    if !l.masks.paths.is_empty() {
        mask(&l.masks)?;
    }
    let mounts = mountinfo::read(Path::new("/proc/thread-self/mountinfo")).map_err(|e| {
        LaunchError::Namespace {
            step: "read mountinfo",
            source: nix::Error::try_from(e).unwrap_or(nix::Error::EIO),
        }
    })?;
    let mut keep = l.keep.clone();
    keep.paths.extend(l.stages.iter().map(|s| s.at.clone()));
    keep.paths.push(l.init_at.clone());
    keep.paths.extend(l.root.as_ref().map(|r| r.dir.clone()));
    for point in unneeded(&mounts, &keep) {
        // Already gone with a detached parent: fine.
        let _ = umount2(&point, MntFlags::MNT_DETACH);
    }
    own_netns(&netns, &l.netns_file).map_err(ns("mount the network namespace again"))
}

fn clone_tree(path: &Path) -> nix::Result<OwnedFd> {
    use rustix::mount::OpenTreeFlags;
    rustix::mount::open_tree(
        rustix::fs::CWD,
        path,
        OpenTreeFlags::OPEN_TREE_CLONE | OpenTreeFlags::OPEN_TREE_CLOEXEC,
    )
    .map_err(|e| nix::Error::from_raw(e.raw_os_error()))
}

/// Mount the instance's network namespace (`clone`, its detached mount) at `file` again, on a fresh
/// tmpfs over the namespaces' directory: nspawn finds it by the path it is given, and this namespace holds
/// no other instance's namespace — neither those there now (their directory was detached in one call) nor
/// those made later (the host's mounts there no longer propagate into it). The tmpfs and the mount exist
/// in this namespace only.
fn own_netns(clone: &OwnedFd, file: &Path) -> nix::Result<()> {
    let dir = file.parent().ok_or(nix::Error::EINVAL)?;
    let name = file.file_name().ok_or(nix::Error::EINVAL)?;
    let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    mount(
        Some("tmpfs"),
        dir,
        Some("tmpfs"),
        flags,
        Some("mode=0755,size=4k"),
    )?;
    let at = dir.join(name);
    fs::File::options()
        .write(true)
        .create_new(true)
        .open(&at)
        .map_err(|e| nix::Error::try_from(e).unwrap_or(nix::Error::EIO))?;
    rustix::mount::move_mount(
        clone,
        "",
        rustix::fs::CWD,
        &at,
        rustix::mount::MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
    )
    .map_err(|e| nix::Error::from_raw(e.raw_os_error()))
}

/// The container's root: a tmpfs with the snapshot's top-level links (no device nodes, no setuid files of
/// its own; those of the snapshot's /usr come with its bind).
fn root_fs(r: &RootFs) -> Result<(), LaunchError> {
    let err = |source: io::Error| LaunchError::Root {
        path: r.dir.clone(),
        source,
    };
    fs::create_dir_all(&r.dir).map_err(err)?;
    mount(
        Some("tmpfs"),
        &r.dir,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some("mode=0755"),
    )
    .map_err(|e| err(e.into()))?;
    for (link, target) in &r.links {
        let name = link.strip_prefix("/").unwrap_or(link);
        if name.components().count() != 1 {
            continue; // top-level links only
        }
        std::os::unix::fs::symlink(target, r.dir.join(name)).map_err(err)?;
    }
    // nspawn takes a directory without /usr for no OS tree (a NixOS root may have none of its own).
    match fs::create_dir(r.dir.join("usr")) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(err(e)),
    }
}

/// Enter the instance's network namespace (this thread only; its unprivileged ports start at 0, as
/// `wayback_net::netns::create` made it).
fn join_netns(n: &JoinNetns) -> Result<(), LaunchError> {
    let ns = |step| move |source| LaunchError::Namespace { step, source };
    let f = fs::File::open(&n.0).map_err(|e| LaunchError::Namespace {
        step: "open the network namespace",
        source: nix::Error::try_from(e).unwrap_or(nix::Error::EIO),
    })?;
    nix::sched::setns(&f, CloneFlags::CLONE_NEWNET).map_err(ns("join the network namespace"))
}

/// Mount the init binary (a detached clone of its mount, taken before unsharing) on `at`.
fn pin_init(exe: &OwnedFd, at: &Path) -> Result<(), LaunchError> {
    let err = |source: io::Error| LaunchError::Init {
        path: at.to_path_buf(),
        source,
    };
    match fs::File::options().write(true).create_new(true).open(at) {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(err(e)),
    }
    rustix::mount::move_mount(
        exe,
        "",
        rustix::fs::CWD,
        at,
        rustix::mount::MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
    )
    .map_err(|e| err(e.into()))
}

/// Resolve the stage's path inside its clone and bind-mount that very object on the mount point.
fn stage(s: &Stage) -> Result<(), LaunchError> {
    let err = |source: io::Error| LaunchError::Stage {
        clone: s.clone.clone(),
        path: s.path.clone(),
        source,
    };
    let found = Tree::open(&s.clone)?.resolve(&s.path)?;
    if let Some(parent) = s.at.parent() {
        fs::create_dir_all(parent).map_err(err)?;
    }
    let made = if found.is_dir() {
        fs::create_dir(&s.at)
    } else if found.is_file() {
        fs::File::options()
            .write(true)
            .create_new(true)
            .open(&s.at)
            .map(drop)
    } else {
        return Err(err(io::Error::other(
            "only directories and regular files can be bound",
        )));
    };
    match made {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(err(e)),
    }
    let source = format!("/proc/self/fd/{}", found.fd.as_raw_fd());
    mount(
        Some(source.as_str()),
        &s.at,
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .map_err(|e| err(e.into()))?;
    if s.readonly {
        let flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY;
        mount(None::<&str>, &s.at, None::<&str>, flags, None::<&str>).map_err(|e| err(e.into()))?;
    }
    Ok(())
}

/// Cover each masked host path with an empty read-only node.
fn mask(masks: &Masks) -> Result<(), LaunchError> {
    let err = |path: &Path, source: io::Error| LaunchError::Mask {
        path: path.into(),
        source,
    };
    match fs::File::options()
        .write(true)
        .create_new(true)
        .open(&masks.empty)
    {
        Ok(f) => f
            .set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o000))
            .map_err(|e| err(&masks.empty, e))?,
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(err(&masks.empty, e)),
    }
    let ro = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC | MsFlags::MS_RDONLY;
    for p in &masks.paths {
        let Ok(meta) = fs::metadata(p) else {
            continue; // gone from the host since planning: nothing to hide
        };
        let made = if meta.is_dir() {
            mount(
                Some("tmpfs"),
                p,
                Some("tmpfs"),
                ro,
                Some("mode=000,size=4k"),
            )
        } else {
            mount(
                Some(&masks.empty),
                p,
                None::<&str>,
                MsFlags::MS_BIND,
                None::<&str>,
            )
            .and_then(|()| {
                let flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | ro;
                mount(None::<&str>, p, None::<&str>, flags, None::<&str>)
            })
        };
        made.map_err(|e| err(p, e.into()))?;
    }
    Ok(())
}

/// Mount points to detach: every mount that is not `/`, not at or below a kept tree, and not on the way to
/// a kept path or tree — but only the top of each such subtree, since `umount2(MNT_DETACH)` takes a mount's
/// whole subtree along: one call for all of `/run/netns`, however many instances' namespaces are mounted
/// there. A mount stacked on an unneeded one at the same point is listed too (a path names only the
/// topmost mount there, so each of the stack needs its own call), later-mounted ones first.
pub fn unneeded(mounts: &[Mount], keep: &Keep) -> Vec<PathBuf> {
    let needed = |m: &Mount| {
        let p = &m.mount_point;
        p == Path::new("/")
            || keep.trees.iter().any(|t| p.starts_with(t))
            || keep
                .paths
                .iter()
                .chain(&keep.trees)
                .any(|k| k.starts_with(p))
    };
    let gone: std::collections::HashMap<u32, &Path> = mounts
        .iter()
        .filter(|m| !needed(m))
        .map(|m| (m.id, m.mount_point.as_path()))
        .collect();
    mounts
        .iter()
        .rev()
        .filter(|m| gone.contains_key(&m.id) && m.id != m.parent)
        .filter(|m| gone.get(&m.parent).is_none_or(|p| *p == m.mount_point))
        .map(|m| m.mount_point.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Mounts by (id, parent id, mount point).
    fn table(rows: &[(u32, u32, &str)]) -> Vec<Mount> {
        rows.iter()
            .map(|&(id, parent, point)| Mount {
                id,
                parent,
                root: "/".into(),
                mount_point: point.into(),
                fs_type: "x".into(),
                source: "x".into(),
                options: "rw".into(),
                dev: "0:1".into(),
            })
            .collect()
    }

    fn keep() -> Keep {
        let paths = |ps: &[&str]| ps.iter().map(PathBuf::from).collect();
        Keep {
            trees: paths(&["/usr", "/proc", "/sys", "/dev", "/etc", "/srv/tool"]),
            paths: paths(&[
                "/tmp/pool/.wayback/a",
                "/var/lib/wayback/instances/a",
                "/run",
            ]),
        }
    }

    #[test]
    fn detaches_only_the_top_of_each_unneeded_subtree() {
        let mounts = table(&[
            (1, 0, "/"),
            (2, 1, "/proc"),
            (3, 1, "/sys"),
            (4, 3, "/sys/fs/cgroup"),
            (5, 1, "/dev"),
            (6, 5, "/dev/shm"),
            (7, 1, "/run/netns"),
            (8, 7, "/run/netns/wb-a"),
            (9, 7, "/run/netns/wb-b"),
            (10, 1, "/run/user/1000"),
            (11, 1, "/srv"),
            (12, 11, "/srv/tool"),
            (13, 11, "/srv/other"),
            (14, 1, "/mnt/backup-ext4"),
            (15, 1, "/tmp/pool"),
            (16, 15, "/tmp/pool/nested-fs"),
            (17, 1, "/etc/secret-fs"),
            (18, 7, "/run/netns/wb-c"),
        ]);
        let gone = unneeded(&mounts, &keep());
        let want: Vec<PathBuf> = [
            "/tmp/pool/nested-fs",
            "/mnt/backup-ext4",
            "/srv/other",
            "/run/user/1000",
            "/run/netns",
        ]
        .iter()
        .map(PathBuf::from)
        .collect();
        assert_eq!(gone, want);
    }

    #[test]
    fn the_work_does_not_grow_with_the_number_of_instances() {
        let mut rows = vec![(1, 0, "/".to_string()), (2, 1, "/run/netns".to_string())];
        for i in 0..200 {
            rows.push((3 + i, 2, format!("/run/netns/wb-i{i}")));
        }
        let rows: Vec<(u32, u32, &str)> =
            rows.iter().map(|(a, b, c)| (*a, *b, c.as_str())).collect();
        assert_eq!(
            unneeded(&table(&rows), &keep()),
            vec![PathBuf::from("/run/netns")]
        );
    }

    #[test]
    fn every_mount_of_a_stack_is_detached() {
        // Two mounts at /mnt/x, the second on top of the first, and one below the upper one.
        let mounts = table(&[
            (1, 0, "/"),
            (2, 1, "/mnt/x"),
            (3, 2, "/mnt/x"),
            (4, 3, "/mnt/x/y"),
        ]);
        let gone = unneeded(&mounts, &keep());
        assert_eq!(gone, vec![PathBuf::from("/mnt/x"), PathBuf::from("/mnt/x")]);
    }
}
