//! `wayback diff` mechanics: find the live subvolume a snapshot was taken from (UUID tree search +
//! INO_LOOKUP path resolution + mountinfo), make temporary read-only snapshots (SNAP_CREATE_V2) of
//! writable sides in wayback's clone dir and always delete them again (SNAP_DESTROY_V2, also on error
//! and Ctrl-C), run `btrfs send --no-data -p A B | btrfs receive --dump`, and turn the candidates the
//! stream names into changes by `lstat`ing both sides. [`diff_walk`] is the plain fallback.
//!
//! Never writes to A or B: the only writes are the temporary snapshots, in `<fs>/<clone_dir>`.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::ffi::CString;
use std::fs::File;
use std::io::Read;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;

use btrfs_uapi::{inode, send_receive, subvolume};
use wayback_core::change::{classify, within, Change, FileType, Hints, Meta};
use wayback_core::sendstream;

use crate::sys::walk::{self, walk_tree, Tree};
use crate::sys::{btrfs, mountinfo, owned_dir};

#[derive(Debug, thiserror::Error)]
pub enum DiffError {
    #[error(
        "{path} has no parent subvolume (it is not a snapshot), so it has no live side: give B"
    )]
    NoParent { path: PathBuf },
    #[error("the live subvolume {uuid} that {path} was taken from is not visible under any mount (deleted, or its part of the filesystem is not mounted): give B")]
    LiveNotFound { path: PathBuf, uuid: String },
    #[error("cannot make a temporary read-only snapshot of {source_path} in {dir}: {source}")]
    TempSnapshot {
        source_path: PathBuf,
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error("btrfs send/receive: {0}")]
    Send(String),
    #[error("interrupted")]
    Interrupted,
}

/// Pids of the `btrfs` processes this process started, so Ctrl-C can stop them.
static CHILDREN: Mutex<Vec<i32>> = Mutex::new(Vec::new());
static COUNTER: AtomicU32 = AtomicU32::new(0);

/// Stop a running diff: walks return early and our own `btrfs` children get SIGTERM. The temporary
/// snapshots are deleted as the diff unwinds.
pub fn interrupt() {
    walk::CANCELLED.store(true, Ordering::SeqCst);
    let children = CHILDREN
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    for pid in children.iter() {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(*pid),
            nix::sys::signal::Signal::SIGTERM,
        );
    }
}

fn io(e: nix::Error) -> std::io::Error {
    std::io::Error::from_raw_os_error(e as i32)
}

/// The subvolume `snapshot` was taken from, as a path under some mount of the same filesystem.
pub fn live_of(snapshot: &Path) -> Result<PathBuf, DiffError> {
    let none = || DiffError::NoParent {
        path: snapshot.into(),
    };
    let dir = File::open(snapshot).map_err(|_| none())?;
    let info = subvolume::subvolume_info(dir.as_fd()).map_err(|_| none())?;
    if info.parent_uuid.is_nil() {
        return Err(none());
    }
    let uuid = info.parent_uuid.to_string();
    let missing = || DiffError::LiveNotFound {
        path: snapshot.into(),
        uuid: uuid.clone(),
    };
    let id = send_receive::subvolume_search_by_uuid(dir.as_fd(), &info.parent_uuid)
        .map_err(|_| missing())?;
    let rel = PathBuf::from(inode::subvolid_resolve(dir.as_fd(), id).map_err(|_| missing())?);
    let mounts = mountinfo::read_self().map_err(|_| missing())?;
    let canon = std::fs::canonicalize(snapshot).map_err(|_| missing())?;
    let source = mountinfo::mount_of(&mounts, &canon)
        .map(|m| m.source.clone())
        .ok_or_else(missing)?;
    for m in mounts
        .iter()
        .filter(|m| m.fs_type == "btrfs" && m.source == source)
    {
        let root = m.root.strip_prefix("/").unwrap_or(&m.root);
        if let Ok(rest) = rel.strip_prefix(root) {
            let cand = m.mount_point.join(rest);
            if walk::subvol_meta(&cand).and_then(|s| s.uuid).as_deref() == Some(uuid.as_str()) {
                return Ok(cand);
            }
        }
    }
    Err(missing())
}

/// A read-only snapshot wayback made for the length of one diff; deleted on drop.
pub struct TempSnapshot {
    pub path: PathBuf,
    source_uuid: String,
    dir: PathBuf,
}

impl TempSnapshot {
    /// Snapshot `source` (read-only) into `dir` (created and marked as wayback's if missing, like the
    /// clone directory of `up`), as `diff-<pid>-<n>`.
    pub fn create(source: &Path, dir: &Path) -> Result<TempSnapshot, DiffError> {
        let err = |source_err: std::io::Error| DiffError::TempSnapshot {
            source_path: source.into(),
            dir: dir.into(),
            source: source_err,
        };
        let source_uuid = walk::subvol_meta(source)
            .and_then(|m| m.uuid)
            .ok_or_else(|| err(std::io::Error::other("not a btrfs subvolume with a UUID")))?;
        owned_dir::create(dir).map_err(err)?;
        let name = format!(
            "diff-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst)
        );
        let mut snap = TempSnapshot {
            path: dir.join(&name),
            source_uuid,
            dir: dir.to_path_buf(),
        };
        let src = File::open(source).map_err(err)?;
        let par = File::open(dir).map_err(err)?;
        let cname = CString::new(name).expect("no NUL in a generated name");
        if let Err(e) = subvolume::snapshot_create(par.as_fd(), src.as_fd(), &cname, true, &[]) {
            snap.path = PathBuf::new(); // nothing to delete
            return Err(err(io(e)));
        }
        Ok(snap)
    }
}

impl Drop for TempSnapshot {
    fn drop(&mut self) {
        if !self.path.as_os_str().is_empty() {
            // A send that was just killed may hold the subvolume for a moment: retry briefly.
            let mut last = None;
            for _ in 0..50 {
                match btrfs::delete_clone(&self.path, &self.source_uuid) {
                    Ok(()) => {
                        last = None;
                        break;
                    }
                    Err(e) => last = Some(e),
                }
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            if let Some(e) = last {
                eprintln!("wayback: could not delete the temporary snapshot: {e}");
            }
        }
        // Removed only when wayback made it and nothing else (an instance's clone) is in it.
        let _ = owned_dir::remove_if_unused(&self.dir);
    }
}

/// Run `btrfs send --no-data -q -p A B | btrfs receive --dump` and return the dump text.
pub fn send_dump(a: &Path, b: &Path) -> Result<Vec<u8>, DiffError> {
    let fail = |what: &str, e: std::io::Error| DiffError::Send(format!("{what}: {e}"));
    let mut send = Command::new("btrfs")
        .args(["send", "--no-data", "-q", "-p"])
        .arg(a)
        .arg(b)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| fail("cannot run btrfs send (is btrfs-progs installed?)", e))?;
    let pipe = send.stdout.take().expect("piped");
    let recv = Command::new("btrfs")
        .args(["receive", "--dump"])
        .stdin(Stdio::from(pipe))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let recv = match recv {
        Ok(r) => r,
        Err(e) => {
            let _ = send.kill();
            let _ = send.wait();
            return Err(fail("cannot run btrfs receive", e));
        }
    };
    let pids = [send.id() as i32, recv.id() as i32];
    CHILDREN
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .extend(pids);
    let out = recv.wait_with_output();
    let mut send_err = String::new();
    if let Some(mut e) = send.stderr.take() {
        let _ = e.read_to_string(&mut send_err);
    }
    let send_status = send.wait();
    CHILDREN
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .retain(|p| !pids.contains(p));
    if walk::cancelled() {
        return Err(DiffError::Interrupted);
    }
    let out = out.map_err(|e| fail("btrfs receive --dump", e))?;
    // receive may exit as soon as it has read the end of the stream, so send can die of SIGPIPE after
    // everything it had to say was said: that is success when receive itself succeeded.
    let sigpipe = |s: &std::process::ExitStatus| {
        std::os::unix::process::ExitStatusExt::signal(s) == Some(libc::SIGPIPE)
    };
    match send_status {
        Ok(s) if s.success() || (sigpipe(&s) && out.status.success()) => {}
        Ok(s) => {
            return Err(DiffError::Send(format!(
                "btrfs send {s}: {}",
                send_err.trim()
            )))
        }
        Err(e) => return Err(fail("btrfs send", e)),
    }
    if !out.status.success() {
        return Err(DiffError::Send(format!(
            "btrfs receive --dump {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(out.stdout)
}

/// Compare everything below `rel` in both trees (both subtrees walked).
fn compare_subtrees(a: &Path, b: &Path, rel: &Path, out: &mut BTreeMap<PathBuf, Change>) {
    // Only through real directories: a symlinked parent must not lead the walk out of the tree.
    let walk = |root: &Path| {
        if Tree::new(root).is_dir_path(rel) {
            walk_tree(root, rel).unwrap_or_default()
        } else {
            Default::default()
        }
    };
    // Both trees at once: the walk is bound by per-entry syscalls, and there are two cores or more.
    let (ta, tb) = std::thread::scope(|s| {
        let other = s.spawn(|| walk(b));
        let ta = walk(a);
        (ta, other.join().unwrap_or_default())
    });
    for p in ta.keys().chain(tb.keys()) {
        if let Some(c) = classify(p, ta.get(p), tb.get(p), Hints::default()) {
            out.insert(p.clone(), c);
        }
    }
}

fn is_dir(m: Option<&Meta>) -> bool {
    m.is_some_and(|m| m.kind == FileType::Dir)
}

/// Other names of multiply-linked files among `paths`, in A and in B (INO_PATHS): the stream mentions
/// only one name of an inode it changes.
fn hard_link_siblings(a: &Path, b: &Path, paths: &BTreeSet<PathBuf>) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for root in [a, b] {
        let Ok(fd) = File::open(root) else { continue };
        let mut tree = Tree::new(root);
        for p in paths {
            let Some(m) = tree.lstat(p) else {
                continue;
            };
            if m.kind == FileType::File && m.nlink > 1 {
                if let Ok(names) = inode::ino_paths(fd.as_fd(), m.ino) {
                    out.extend(
                        names
                            .iter()
                            .map(|n| PathBuf::from(n.trim_start_matches('/'))),
                    );
                }
            }
        }
    }
    out
}

/// Changes from A to B, both read-only subvolumes of one filesystem, using the send stream.
pub fn diff_send(a: &Path, b: &Path, prefix: Option<&Path>) -> Result<Vec<Change>, DiffError> {
    let text = send_dump(a, b)?;
    let dump = sendstream::parse_dump(&text).map_err(|e| DiffError::Send(e.to_string()))?;
    let cand = sendstream::candidates(&dump);
    // Keep ancestors of the prefix too: a renamed parent changes everything below it.
    let keep = |p: &Path| within(p, prefix) || prefix.is_some_and(|x| x.starts_with(p));
    let mut paths: BTreeSet<PathBuf> = cand.paths.iter().filter(|p| keep(p)).cloned().collect();
    paths.extend(
        hard_link_siblings(a, b, &paths)
            .into_iter()
            .filter(|p| keep(p)),
    );
    let (mut tb, ino) = (Tree::new(b), |t: &mut Tree, p: &PathBuf| {
        t.lstat(p).map(|m| m.ino)
    });
    let mut inos = |set: &BTreeSet<PathBuf>| -> HashSet<u64> {
        set.iter().filter_map(|p| ino(&mut tb, p)).collect()
    };
    let (content, xattr, acl) = (inos(&cand.content), inos(&cand.xattr), inos(&cand.acl));
    judge(a, b, &paths, &content, &xattr, &acl, prefix)
}

/// The changes among candidate `paths` (names in A and in B) from `lstat`ing both sides, with what the
/// metadata said about inodes (by inode number: what happened to an inode happened under every name of
/// it); a directory replaced by another (or by a non-directory) has both subtrees compared.
pub fn judge(
    a: &Path,
    b: &Path,
    paths: &BTreeSet<PathBuf>,
    content: &HashSet<u64>,
    xattr: &HashSet<u64>,
    acl: &HashSet<u64>,
    prefix: Option<&Path>,
) -> Result<Vec<Change>, DiffError> {
    // Two threads: each path costs two `lstat`s, and there are two cores or more.
    let all: Vec<&PathBuf> = paths.iter().collect();
    let half = all.len().div_ceil(2).max(1);
    let parts: Vec<Result<BTreeMap<PathBuf, Change>, DiffError>> = std::thread::scope(|s| {
        let hs: Vec<_> = all
            .chunks(half)
            .map(|c| s.spawn(move || judge_some(a, b, c, content, xattr, acl)))
            .collect();
        hs.into_iter()
            .map(|h| h.join().unwrap_or(Err(DiffError::Interrupted)))
            .collect()
    });
    let mut out = BTreeMap::new();
    for p in parts {
        out.extend(p?);
    }
    Ok(out
        .into_values()
        .filter(|c| within(&c.path, prefix))
        .collect())
}

fn judge_some(
    a: &Path,
    b: &Path,
    paths: &[&PathBuf],
    content: &HashSet<u64>,
    xattr: &HashSet<u64>,
    acl: &HashSet<u64>,
) -> Result<BTreeMap<PathBuf, Change>, DiffError> {
    let (mut ta, mut tb) = (Tree::new(a), Tree::new(b));
    let mut out = BTreeMap::new();
    for p in paths.iter().copied() {
        if walk::cancelled() {
            return Err(DiffError::Interrupted);
        }
        let (ma, mb) = (ta.lstat(p), tb.lstat(p));
        let ino = mb.map(|m| m.ino);
        let hints = Hints {
            content: ino.is_some_and(|i| content.contains(&i)),
            xattr: ino.is_some_and(|i| xattr.contains(&i)),
            acl: ino.is_some_and(|i| acl.contains(&i)),
        };
        if let Some(c) = classify(p, ma.as_ref(), mb.as_ref(), hints) {
            out.insert(p.clone(), c);
        }
        match (ma, mb) {
            (Some(x), Some(y)) if is_dir(Some(&x)) && is_dir(Some(&y)) && x.ino != y.ino => {
                compare_subtrees(a, b, p, &mut out);
            }
            (x, y) if is_dir(x.as_ref()) != is_dir(y.as_ref()) => {
                compare_subtrees(a, b, p, &mut out);
            }
            _ => {}
        }
    }
    Ok(out)
}

/// Changes from A to B by walking both trees (any filesystem).
pub fn diff_walk(a: &Path, b: &Path, prefix: Option<&Path>) -> Result<Vec<Change>, DiffError> {
    let start = prefix.unwrap_or(Path::new(""));
    let mut out = BTreeMap::new();
    if !start.as_os_str().is_empty() {
        let (ma, mb) = (Tree::new(a).lstat(start), Tree::new(b).lstat(start));
        if let Some(c) = classify(start, ma.as_ref(), mb.as_ref(), Hints::default()) {
            out.insert(start.to_path_buf(), c);
        }
    }
    compare_subtrees(a, b, start, &mut out);
    if walk::cancelled() {
        return Err(DiffError::Interrupted);
    }
    Ok(out.into_values().collect())
}
