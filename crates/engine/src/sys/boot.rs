//! Boot mode: prepare a whole-root clone to boot with its own init, and give the container its own cgroup.
//!
//! Masking: units that would reach the outside world or act on their own — every timer, mail transport
//! agents, cron — are masked in the clone (symlinks to /dev/null in its /etc/systemd/system), plus any
//! `--mask UNIT`. Only the clone is touched.
//!
//! Cgroups: without systemd as PID 1, nspawn runs with `--keep-unit` in its launcher's cgroup, and two
//! booted containers in one cgroup disturb each other. Each container's launcher gets its own cgroup in
//! every hierarchy nspawn looks at (the named `systemd` one and the unified one), removed at teardown.
//! Syscalls: symlinkat/unlinkat inside the clone (through `sys::inroot`), mkdir/rmdir in /sys/fs/cgroup.

use std::fs;
use std::io;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use nix::fcntl::readlinkat;
use nix::unistd::{symlinkat, unlinkat, UnlinkatFlags};

use wayback_core::plan::{BootSpec, DEFAULT_MASKED_SERVICES};

use crate::sys::inroot::{InRootError, Tree};

/// Unit directories of an image, relative to its root.
const UNIT_DIRS: &[&str] = &[
    "etc/systemd/system",
    "lib/systemd/system",
    "usr/lib/systemd/system",
];

/// Mask the boot spec's units in `root` (the clone). Returns the masked unit names. Every path is resolved
/// inside the clone (its /etc/systemd/system may be a symlink; it never leads to the host's).
pub fn mask_units(root: &Path, spec: &BootSpec) -> Result<Vec<String>, InRootError> {
    let tree = Tree::open(root)?;
    let mut units: Vec<String> = spec.masks.clone();
    if spec.default_masks {
        for dir in UNIT_DIRS {
            let Ok(entries) = tree.read_dir(Path::new(dir)) else {
                continue;
            };
            for (name, _) in entries {
                let name = name.to_string_lossy().into_owned();
                if name.ends_with(".timer") || DEFAULT_MASKED_SERVICES.contains(&name.as_str()) {
                    units.push(name);
                }
            }
        }
    }
    units.sort();
    units.dedup();
    let etc = Path::new("/etc/systemd/system");
    let dir = tree.dir(etc, true)?;
    let io_err = |u: &str, e: nix::Error| InRootError::Io {
        root: root.into(),
        path: etc.join(u),
        source: e.into(),
    };
    for u in &units {
        if readlinkat(dir.as_fd(), u.as_str()).is_ok_and(|t| t == *"/dev/null") {
            continue;
        }
        match unlinkat(dir.as_fd(), u.as_str(), UnlinkatFlags::NoRemoveDir) {
            Ok(()) | Err(nix::Error::ENOENT) => {}
            Err(e) => return Err(io_err(u, e)),
        }
        symlinkat("/dev/null", dir.as_fd(), u.as_str()).map_err(|e| io_err(u, e))?;
    }
    Ok(units)
}

/// The cgroup directories a container launcher should get: `wb-NAME` in the hierarchies nspawn uses.
pub fn cgroup_paths(cgroup_root: &Path, machine: &str) -> Vec<PathBuf> {
    let named = cgroup_root.join("systemd");
    let unified = cgroup_root.join("unified");
    if named.is_dir() || unified.is_dir() {
        [named, unified]
            .into_iter()
            .filter(|p| p.is_dir())
            .map(|p| p.join(machine))
            .collect()
    } else {
        // A pure cgroup2 host: one hierarchy at the root.
        vec![cgroup_root.join(machine)]
    }
}

/// Create the cgroup directories (existing ones are fine).
pub fn create_cgroups(paths: &[PathBuf]) -> io::Result<()> {
    for p in paths {
        match fs::create_dir(p) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Remove the cgroup directories, with the sub-cgroups nspawn and the booted init made in them (payload,
/// supervisor, init.scope, …), deepest first. Processes still in them (a container being killed, or left
/// behind when the process hosting it was killed) are waited for, then killed: these cgroups are wayback's
/// own, made for this container, so whatever is in them belongs to it. Gone: Ok.
pub fn remove_cgroups(paths: &[PathBuf]) -> io::Result<()> {
    const WAIT: std::time::Duration = std::time::Duration::from_secs(3);
    const GIVE_UP: std::time::Duration = std::time::Duration::from_secs(30);
    for p in paths {
        let start = std::time::Instant::now();
        // A cgroup is busy for a moment after its last process exits (until it is reaped): look again
        // soon, then less often (1, 2, 4 … 64 ms).
        let mut pause = std::time::Duration::from_millis(1);
        loop {
            match remove_tree(p) {
                Ok(()) => break,
                Err(e) if e.kind() == io::ErrorKind::NotFound => break,
                Err(e) if start.elapsed() >= GIVE_UP => return Err(e),
                Err(_) => {
                    if start.elapsed() >= WAIT {
                        for pid in members(p) {
                            let _ = nix::sys::signal::kill(
                                nix::unistd::Pid::from_raw(pid),
                                nix::sys::signal::Signal::SIGKILL,
                            );
                        }
                    }
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(std::time::Duration::from_millis(64));
                }
            }
        }
    }
    Ok(())
}

/// The processes in a cgroup and its sub-cgroups.
fn members(p: &Path) -> Vec<i32> {
    let mut out: Vec<i32> = fs::read_to_string(p.join("cgroup.procs"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect();
    for e in fs::read_dir(p).into_iter().flatten().flatten() {
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            out.extend(members(&e.path()));
        }
    }
    out
}

/// rmdir a cgroup and its sub-cgroups (cgroup directories hold only control files, which rmdir ignores).
fn remove_tree(p: &Path) -> io::Result<()> {
    for e in fs::read_dir(p)? {
        let e = e?;
        if e.file_type()?.is_dir() {
            remove_tree(&e.path())?;
        }
    }
    fs::remove_dir(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_timers_mailers_and_named_units_in_the_image_only() {
        let t = tempfile::tempdir().unwrap();
        let lib = t.path().join("lib/systemd/system");
        fs::create_dir_all(&lib).unwrap();
        for u in [
            "apt-daily.timer",
            "postfix.service",
            "nginx.service",
            "cron.service",
        ] {
            fs::write(lib.join(u), "[Unit]\n").unwrap();
        }
        let spec = BootSpec {
            masks: vec!["custom.service".into()],
            default_masks: true,
        };
        let masked = mask_units(t.path(), &spec).unwrap();
        assert_eq!(
            masked,
            [
                "apt-daily.timer",
                "cron.service",
                "custom.service",
                "postfix.service"
            ]
        );
        let etc = t.path().join("etc/systemd/system");
        assert_eq!(
            fs::read_link(etc.join("apt-daily.timer")).unwrap(),
            Path::new("/dev/null")
        );
        assert!(!etc.join("nginx.service").exists());
        assert_eq!(
            mask_units(t.path(), &spec).unwrap().len(),
            4,
            "masking twice is fine"
        );
    }

    #[test]
    fn cgroup_layouts() {
        let t = tempfile::tempdir().unwrap();
        assert_eq!(cgroup_paths(t.path(), "wb-x"), vec![t.path().join("wb-x")]);
        fs::create_dir(t.path().join("systemd")).unwrap();
        fs::create_dir(t.path().join("unified")).unwrap();
        assert_eq!(cgroup_paths(t.path(), "wb-x").len(), 2);
    }
}
