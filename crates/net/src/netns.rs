//! Named network namespaces, made the way `ip netns add` / `ip netns del` make them: a file under a
//! directory (normally [`NETNS_RUN_DIR`]) onto which the namespace's nsfs inode is bind-mounted, so the
//! namespace outlives the thread that created it and can be entered by path (`setns`,
//! `systemd-nspawn --network-namespace-path=`).
//!
//! Syscalls: `mkdir`, `mount(MS_SHARED|MS_REC)` / `mount(MS_BIND|MS_REC)` on the directory, `open(O_CREAT|
//! O_EXCL)`, `unshare(CLONE_NEWNET)` and `mount(MS_BIND)` of `/proc/thread-self/ns/net` on a dedicated
//! thread (never a tokio worker, never fork), `ioctl(SIOCGIFFLAGS/SIOCSIFFLAGS)` on a socket created in the
//! new namespace to bring `lo` up, a write to its `/proc/sys/net/ipv4/ip_unprivileged_port_start` (0),
//! `umount2(MNT_DETACH)` + `unlink` to delete, `statfs` to check.

use std::ffi::CStr;
use std::fs::{self, DirBuilder, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use nix::errno::Errno;
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{unshare, CloneFlags};
use nix::sys::socket::{socket, AddressFamily, SockFlag, SockType};
use nix::sys::statfs::{statfs, NSFS_MAGIC};

use crate::NetError;

/// Where `ip netns` keeps named network namespaces.
pub const NETNS_RUN_DIR: &str = "/run/netns";

/// Serialises the "make the directory a shared mount" dance within this process, so two concurrent
/// `create` calls cannot stack two bind mounts of the directory onto itself.
static RUN_DIR_LOCK: Mutex<()> = Mutex::new(());

/// Create a named network namespace at `<dir>/<name>` (like `ip netns add`), with `lo` up inside it and
/// unprivileged ports from 0 ([`UNPRIVILEGED_PORTS`]).
///
/// Everything runs on a dedicated std::thread: `unshare(CLONE_NEWNET)` only moves that thread, and the
/// namespace is pinned by bind-mounting `/proc/thread-self/ns/net` onto the new file. Fails with
/// [`NetError::Exists`] if the path exists; on any later failure the file (and mount) are removed again.
/// Blocks the caller for about a millisecond (it joins the helper thread); from async code that is
/// acceptable, or use `spawn_blocking`.
pub fn create(dir: &Path, name: &str) -> Result<PathBuf, NetError> {
    validate_name(name)?;
    let path = dir.join(name);
    let (dir, target) = (dir.to_path_buf(), path.clone());
    let worker = std::thread::Builder::new()
        .name("wb-netns-create".into())
        .spawn(move || create_on_this_thread(&dir, &target))
        .map_err(|source| NetError::Thread {
            what: "creating a network namespace",
            source,
        })?;
    worker.join().map_err(|_| NetError::Thread {
        what: "creating a network namespace",
        source: io::Error::other("thread panicked"),
    })??;
    Ok(path)
}

/// Undo [`create`]: `umount2(path, MNT_DETACH)` then unlink. `Ok(())` if the path is already gone or
/// not mounted. Processes still inside the namespace (or holding an fd to it) keep it alive.
pub fn delete(path: &Path) -> Result<(), NetError> {
    match umount2(path, MntFlags::MNT_DETACH) {
        Ok(()) | Err(Errno::EINVAL | Errno::ENOENT) => {}
        Err(e) => {
            return Err(NetError::Umount {
                path: path.to_path_buf(),
                source: e.into(),
            })
        }
    }
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(NetError::Remove {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Whether a file exists at `path` with a namespace (nsfs) mounted on it.
pub fn exists(path: &Path) -> bool {
    statfs(path).is_ok_and(|s| s.filesystem_type() == NSFS_MAGIC)
}

/// A namespace name must be a single, non-special path component.
fn validate_name(name: &str) -> Result<(), NetError> {
    let reason = if name.is_empty() {
        "empty"
    } else if name == "." || name == ".." {
        "not a file name"
    } else if name.contains('/') || name.contains('\0') {
        "contains '/' or NUL"
    } else if name.len() > 255 {
        "longer than 255 bytes"
    } else {
        return Ok(());
    };
    Err(NetError::InvalidName {
        name: name.to_string(),
        reason,
    })
}

/// The body of [`create`]; must run on a thread of its own (it leaves that thread in the new netns).
fn create_on_this_thread(dir: &Path, path: &Path) -> Result<(), NetError> {
    ensure_shared_dir(dir)?;
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o444)
        .open(path)
        .map_err(|source| match source.kind() {
            io::ErrorKind::AlreadyExists => NetError::Exists {
                path: path.to_path_buf(),
            },
            _ => NetError::CreateFile {
                path: path.to_path_buf(),
                source,
            },
        })?;
    let undo_file = |err: NetError| {
        let _ = fs::remove_file(path);
        err
    };
    unshare(CloneFlags::CLONE_NEWNET).map_err(|e| {
        undo_file(NetError::Unshare {
            path: path.to_path_buf(),
            source: e.into(),
        })
    })?;
    mount(
        Some("/proc/thread-self/ns/net"),
        path,
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .map_err(|e| {
        undo_file(NetError::BindMount {
            path: path.to_path_buf(),
            source: e.into(),
        })
    })?;
    if let Err(source) = loopback_up() {
        let _ = delete(path);
        return Err(NetError::LoopbackUp {
            path: path.to_path_buf(),
            source,
        });
    }
    // /proc/sys/net is the calling thread's network namespace's: this one.
    if let Err(source) = fs::write(format!("/proc/sys/net/{UNPRIVILEGED_PORTS}"), "0") {
        let _ = delete(path);
        return Err(NetError::Sysctl {
            path: path.to_path_buf(),
            sysctl: UNPRIVILEGED_PORTS,
            source,
        });
    }
    Ok(())
}

/// Set to 0 in every namespace made here: a namespace belongs to one instance, whose service may run as
/// an unprivileged `User=` and bind port 80 (systemd grants that with
/// `AmbientCapabilities=CAP_NET_BIND_SERVICE`; a booted root is root only in its own user namespace).
/// The ports exist only inside the namespace.
pub const UNPRIVILEGED_PORTS: &str = "ipv4/ip_unprivileged_port_start";

/// Create `dir` (0755) if missing and make it a shared mount, bind-mounting it onto itself first if it
/// is not a mount point yet — exactly iproute2's `netns_add` preparation. Tolerates it being one already.
fn ensure_shared_dir(dir: &Path) -> Result<(), NetError> {
    let _guard = RUN_DIR_LOCK
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    match DirBuilder::new().recursive(true).mode(0o755).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists && dir.is_dir() => {}
        Err(source) => {
            return Err(NetError::CreateDir {
                path: dir.to_path_buf(),
                source,
            })
        }
    }
    let shared_err = |e: Errno| NetError::SharedMount {
        path: dir.to_path_buf(),
        source: e.into(),
    };
    let mut bound = false;
    loop {
        let flags = MsFlags::MS_SHARED | MsFlags::MS_REC;
        match mount(Some("none"), dir, Some("none"), flags, None::<&str>) {
            Ok(()) => return Ok(()),
            // EINVAL: not a mount point yet; make it one (once) and retry.
            Err(Errno::EINVAL) if !bound => {
                let flags = MsFlags::MS_BIND | MsFlags::MS_REC;
                mount(Some(dir), dir, Some("none"), flags, None::<&str>).map_err(shared_err)?;
                bound = true;
            }
            Err(e) => return Err(shared_err(e)),
        }
    }
}

/// `ip link set lo up` for the calling thread's network namespace, via the classic interface ioctls.
fn loopback_up() -> io::Result<()> {
    let sock = socket(
        AddressFamily::Inet,
        SockType::Datagram,
        SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    // SAFETY: `ifreq` is a plain C struct (char array + union of integers/structs); all-zero is a valid value.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    let name: &CStr = c"lo";
    for (dst, src) in ifr.ifr_name.iter_mut().zip(name.to_bytes_with_nul()) {
        *dst = *src as libc::c_char;
    }
    // SAFETY: `sock` is an open socket fd for the duration of the call and `ifr` is a valid, writable
    // `ifreq` with a NUL-terminated name, which is what SIOCGIFFLAGS reads and fills in.
    let rc = unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut ifr) };
    Errno::result(rc)?;
    // SAFETY: SIOCGIFFLAGS succeeded, so the kernel initialised the `ifru_flags` member of the union.
    let flags = unsafe { ifr.ifr_ifru.ifru_flags };
    if flags & libc::IFF_UP as libc::c_short != 0 {
        return Ok(());
    }
    ifr.ifr_ifru.ifru_flags = flags | libc::IFF_UP as libc::c_short;
    // SAFETY: as above; SIOCSIFFLAGS only reads `ifr` (name + flags).
    let rc = unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &ifr) };
    Errno::result(rc)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_must_be_one_plain_component() {
        for bad in ["", ".", "..", "a/b", "/abs", "nul\0"] {
            assert!(
                matches!(validate_name(bad), Err(NetError::InvalidName { .. })),
                "{bad:?}"
            );
        }
        for good in ["wb-x", "wbtn123-0", "a.b"] {
            validate_name(good).unwrap();
        }
    }

    #[test]
    fn missing_path_is_not_a_namespace_and_deletes_fine() {
        let dir = std::env::temp_dir().join(format!("wbtn-unit-{}", std::process::id()));
        assert!(!exists(&dir.join("nope")));
        // umount2 resolves the path first, so this is ENOENT (tolerated) even without privileges.
        delete(&dir.join("nope")).unwrap();
    }

    #[test]
    fn a_plain_file_is_not_a_namespace() {
        let f = std::env::temp_dir().join(format!("wbtn-plain-{}", std::process::id()));
        fs::write(&f, b"").unwrap();
        assert!(!exists(&f));
        fs::remove_file(&f).unwrap();
    }
}
