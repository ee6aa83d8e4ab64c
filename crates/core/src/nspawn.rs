//! The systemd-nspawn command line for an instance (pure). The `wayback` binary launches it.
//!
//! Host mode: the container's root is a fresh tmpfs (`--volatile=yes`), the host's /usr comes in read-only
//! with it, the host's /etc and any other configured host paths are bound read-only, /run and /tmp are fresh
//! tmpfs, and only the clone's bind paths are writable. The payload is wayback's own small init (the running
//! binary, bound read-only), which starts the profile's processes and stops them in order on SIGTERM.
//!
//! Snapshot software (`up --software snapshot`): the same, but the root is a tmpfs wayback lays out like the
//! snapshot's top level (see [`SnapshotRoot`]): the snapshot's own /usr, /etc, /nix… read-only from the
//! clone instead of the host's. wayback's init is the host's binary, linked against the host's C library,
//! which an older (or a NixOS) userland may not have: it runs through the host's own dynamic loader and
//! libraries, bound read-only at [`HOST_LIB_DIR`] (`ld.so --library-path /.wayback-host /.wayback-init …`).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Where wayback's init and its spec appear inside the container.
pub const INIT_PATH: &str = "/.wayback-init";
pub const SPEC_PATH: &str = "/.wayback-spec.json";
/// Where wayback's init reports, in one file of the instance's directory bound writable, that every
/// process has started (`started`) or why the start failed (`failed: …`); the host waits for it.
pub const STATE_PATH: &str = "/.wayback-state";
/// Where the host's dynamic loader and the libraries wayback's init needs appear when the container's /usr
/// is the snapshot's.
pub const HOST_LIB_DIR: &str = "/.wayback-host";

/// A file of the host bound read-only into [`HOST_LIB_DIR`] under `name` (its soname, or the loader's name).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostLib {
    pub name: String,
    pub path: PathBuf,
}

/// `--software snapshot`: the container's root is a tmpfs that wayback mounts at `dir` (in the instance's
/// directory, in the container's launch namespace only) and lays out like the snapshot's top level: its
/// software directories bound read-only from the clone (each resolved inside it), its top-level symlinks
/// (`/bin -> usr/bin`, `/lib64 -> usr/lib64`) recreated as they are. nspawn runs on that directory as it
/// runs on the host's `/` in host mode; data binds, /run and /tmp are the same.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotRoot {
    pub dir: PathBuf,
    /// The snapshot's /usr, /etc, /nix, /opt, and /bin, /lib… where they are real directories.
    pub binds: Vec<MountBind>,
    /// The snapshot's top-level symlinks: (path, target as written in the snapshot).
    pub links: Vec<(PathBuf, PathBuf)>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MountBind {
    /// What nspawn binds. For data of a clone: a mount point in the instance's directory on which wayback,
    /// in the container's launch namespace, mounts the path found *inside* the clone (never a path looked
    /// up on the host, so a symlink in the snapshot cannot lead out of it).
    pub source: PathBuf,
    pub dest: PathBuf,
    pub readonly: bool,
    /// Where the data comes from, for binds of a clone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clone: Option<CloneData>,
    /// Why it is bound, when wayback chose it (e.g. "StateDirectory=redis of redis-server.service").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// A path inside a clone, as the user asked for it and as it resolved inside the snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CloneData {
    /// The clone's root on the host (a btrfs snapshot or an overlay mount wayback made).
    pub root: PathBuf,
    /// The path asked for, absolute inside the clone.
    pub path: PathBuf,
    /// Where it leads inside the snapshot (differs from `path` when symlinks in the snapshot were followed).
    pub resolved: PathBuf,
}

impl MountBind {
    /// The data's path on the host, for exports to other tools (the resolved path inside the clone).
    pub fn data_path(&self) -> PathBuf {
        match &self.clone {
            Some(c) => c
                .root
                .join(c.resolved.strip_prefix("/").unwrap_or(&c.resolved)),
            None => self.source.clone(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerSpec {
    pub machine: String,
    pub netns_path: PathBuf,
    /// Host paths bound read-only (besides /usr, which --volatile=yes brings).
    pub host_ro: Vec<PathBuf>,
    /// Writable binds from the clone, then wayback's own read-only files.
    pub binds: Vec<MountBind>,
    /// The wayback binary on the host (bound to INIT_PATH).
    pub init_exe: PathBuf,
    /// The init spec on the host (bound to SPEC_PATH).
    pub spec_file: PathBuf,
    /// The init's report file on the host (bound to STATE_PATH; host mode).
    #[serde(default)]
    pub state_file: Option<PathBuf>,
    /// Register with systemd-machined (only when systemd runs as PID 1).
    pub register: bool,
    /// Boot mode: boot this whole-root clone with its own init instead of host mode.
    #[serde(default)]
    pub boot_root: Option<PathBuf>,
    /// Confinement: capabilities taken from the container's root (see [`HOST_MODE_DROPPED`]).
    #[serde(default)]
    pub drop_capabilities: Vec<String>,
    /// Confinement: no process in the container gains privileges through exec (setuid, file capabilities).
    #[serde(default)]
    pub no_new_privileges: bool,
    /// Host paths shown as empty, inaccessible nodes (secrets under /etc). wayback mounts an empty node over
    /// each in the container's launch namespace, so the host is untouched and the recursive `--bind-ro` of
    /// /etc carries the masks into the container (nspawn's own `--inaccessible=` needs systemd as PID 1).
    #[serde(default)]
    pub inaccessible: Vec<PathBuf>,
    /// `--software snapshot`: the root laid out from the snapshot (else the host's `/` with `--volatile=yes`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot_root: Option<SnapshotRoot>,
    /// The init runs through the host's dynamic loader (the first) with these libraries, bound at
    /// [`HOST_LIB_DIR`] (with `snapshot_root`; empty: the init is exec'd directly).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub init_libs: Vec<HostLib>,
}

/// Capabilities the root of a host-mode container does not get. Without CAP_SYS_ADMIN it cannot mount,
/// remount (the host's /etc, /usr and the binds stay read-only or as they are) or unshare; without
/// CAP_MKNOD it cannot make a device node of a host disk (there is no device cgroup without machined);
/// without CAP_DAC_READ_SEARCH it cannot open files by handle (`open_by_handle_at`), which would reach any
/// file of a filesystem a bind lives on, such as the live subvolume next to the clone. The rest have no use
/// for a resurrected service and only widen what a compromised one could do.
/// What stays: CHOWN, DAC_OVERRIDE, FOWNER, FSETID, KILL, SETUID, SETGID, NET_BIND_SERVICE (init prepares
/// runtime directories and stops services running as other users; services drop to their users and bind
/// low ports), NET_RAW (in the instance's own network namespace only) and SYS_CHROOT (sshd, postfix).
/// Measured on PostgreSQL, nginx, php-fpm, MariaDB, Redis and Mosquitto (docs/design.md, "Confinement").
pub const HOST_MODE_DROPPED: &[&str] = &[
    "CAP_SYS_ADMIN",
    "CAP_MKNOD",
    "CAP_DAC_READ_SEARCH",
    "CAP_SYS_PTRACE",
    "CAP_SYS_BOOT",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TTY_CONFIG",
    "CAP_SYS_NICE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_MODULE",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_ADMIN",
    "CAP_NET_BROADCAST",
    "CAP_AUDIT_CONTROL",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_READ",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_IPC_OWNER",
    "CAP_LEASE",
];

/// Capabilities a booted container's root does not get (inside its own user namespace): its systemd needs
/// CAP_SYS_ADMIN, CAP_SYS_CHROOT and CAP_SETPCAP; none of these is needed to boot a Debian root and serve.
pub const BOOT_MODE_DROPPED: &[&str] = &[
    "CAP_MKNOD",
    "CAP_DAC_READ_SEARCH",
    "CAP_SYS_PTRACE",
    "CAP_SYS_BOOT",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TTY_CONFIG",
    "CAP_SYS_RAWIO",
    "CAP_SYS_MODULE",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_ADMIN",
    "CAP_AUDIT_CONTROL",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_READ",
    "CAP_SETFCAP",
    "CAP_IPC_OWNER",
    "CAP_LEASE",
];

impl ContainerSpec {
    /// The full argv, program first.
    pub fn argv(&self) -> Vec<String> {
        let mut a: Vec<String> = vec![
            "systemd-nspawn".into(),
            "--quiet".into(),
            format!("--machine={}", self.machine),
        ];
        if let Some(root) = &self.boot_root {
            // Boot mode: the snapshot's own init; SIGRTMIN+3 asks systemd for an orderly poweroff.
            // Its root is root only in a user namespace of its own (its systemd needs CAP_SYS_ADMIN, which
            // without one would reach the host); the clone is mapped, not chowned. nspawn cannot join a
            // network namespace with a user namespace: wayback starts it inside the instance's netns.
            a.extend([
                format!("--directory={}", root.display()),
                "--boot".into(),
                "--resolv-conf=off".into(),
                "--timezone=off".into(),
                "--link-journal=no".into(),
                "--console=passive".into(),
                "--kill-signal=SIGRTMIN+3".into(),
                "--private-users=pick".into(),
                "--private-users-ownership=map".into(),
            ]);
            self.registration(&mut a);
            self.confinement(&mut a);
            return a;
        }
        match &self.snapshot_root {
            Some(r) => a.push(format!("--directory={}", r.dir.display())),
            None => a.extend(["--directory=/".into(), "--volatile=yes".into()]),
        }
        a.extend([
            "--resolv-conf=off".into(),
            "--timezone=off".into(),
            "--link-journal=no".into(),
            "--console=pipe".into(),
            // Our init is PID 1 and stops the services in order on SIGTERM.
            "--kill-signal=SIGTERM".into(),
            format!("--network-namespace-path={}", self.netns_path.display()),
        ]);
        self.registration(&mut a);
        self.confinement(&mut a);
        for p in &self.host_ro {
            a.push(format!("--bind-ro={}", p.display()));
        }
        for b in &self.binds {
            let flag = if b.readonly { "--bind-ro" } else { "--bind" };
            a.push(format!("{flag}={}:{}", escape(&b.source), escape(&b.dest)));
        }
        a.push(format!("--bind-ro={}:{INIT_PATH}", escape(&self.init_exe)));
        a.push(format!("--bind-ro={}:{SPEC_PATH}", escape(&self.spec_file)));
        if let Some(state) = &self.state_file {
            a.push(format!("--bind={}:{STATE_PATH}", escape(state)));
        }
        for l in &self.init_libs {
            a.push(format!(
                "--bind-ro={}:{HOST_LIB_DIR}/{}",
                escape(&l.path),
                escape(std::path::Path::new(&l.name))
            ));
        }
        a.push("--".into());
        a.extend(self.init_command());
        a
    }

    /// The init's command line inside the container: `/.wayback-init __init SPEC MACHINE`, through the
    /// host's loader when `init_libs` is set. It names the container, so the init can be found by it even
    /// if nspawn is gone ([`is_init_command`]).
    pub fn init_command(&self) -> Vec<String> {
        let mut a: Vec<String> = Vec::new();
        if let Some(loader) = self.init_libs.first() {
            a.extend([
                format!("{HOST_LIB_DIR}/{}", loader.name),
                "--library-path".into(),
                HOST_LIB_DIR.into(),
            ]);
        }
        a.extend([
            INIT_PATH.into(),
            "__init".into(),
            SPEC_PATH.into(),
            self.machine.clone(),
        ]);
        a
    }
}

/// Whether a command line (`/proc/PID/cmdline` split at NULs) is wayback's init, exec'd directly or
/// through the host's loader in [`HOST_LIB_DIR`]; its last argument is the machine name.
pub fn is_init_command(args: &[&[u8]]) -> bool {
    let init = |rest: &[&[u8]]| {
        rest.first() == Some(&INIT_PATH.as_bytes()) && rest.get(1) == Some(&&b"__init"[..])
    };
    let loader = args.first().is_some_and(|a| {
        a.strip_prefix(HOST_LIB_DIR.as_bytes())
            .is_some_and(|r| r.starts_with(b"/") && !r[1..].contains(&b'/'))
    }) && args.get(1) == Some(&&b"--library-path"[..])
        && args.get(2) == Some(&HOST_LIB_DIR.as_bytes());
    init(args) || (loader && init(&args[3..]))
}

impl ContainerSpec {
    /// Whether wayback starts nspawn inside the instance's network namespace (boot mode: nspawn cannot
    /// join one itself together with a user namespace) instead of passing `--network-namespace-path`.
    pub fn joins_netns(&self) -> bool {
        self.boot_root.is_some()
    }

    fn confinement(&self, a: &mut Vec<String>) {
        if !self.drop_capabilities.is_empty() {
            a.push(format!(
                "--drop-capability={}",
                self.drop_capabilities.join(",")
            ));
        }
        if self.no_new_privileges {
            a.push("--no-new-privileges=yes".into());
        }
    }

    /// With systemd as PID 1, register with machined; without, nspawn needs both flags.
    fn registration(&self, a: &mut Vec<String>) {
        if self.register {
            a.push("--register=yes".into());
        } else {
            a.push("--register=no".into());
            a.push("--keep-unit".into());
        }
    }
}

/// nspawn separates bind source and destination with ':'; a literal ':' is written as '\:'.
fn escape(p: &std::path::Path) -> String {
    p.display().to_string().replace(':', "\\:")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argv_shape() {
        let s = ContainerSpec {
            machine: "wb-pg".into(),
            netns_path: "/run/netns/wb-pg".into(),
            host_ro: vec!["/etc".into()],
            binds: vec![MountBind {
                source: "/mnt/.wayback/pg/var/lib/postgresql".into(),
                dest: "/var/lib/postgresql".into(),
                readonly: false,
                clone: None,
                reason: None,
            }],
            init_exe: "/usr/bin/wayback".into(),
            spec_file: "/var/lib/wayback/instances/pg/init.json".into(),
            state_file: None,
            register: false,
            boot_root: None,
            drop_capabilities: vec!["CAP_SYS_ADMIN".into(), "CAP_MKNOD".into()],
            no_new_privileges: true,
            inaccessible: vec!["/etc/shadow".into()],
            snapshot_root: None,
            init_libs: vec![],
        };
        let a = s.argv();
        assert!(a.contains(
            &"--bind=/mnt/.wayback/pg/var/lib/postgresql:/var/lib/postgresql".to_string()
        ));
        assert!(a.contains(&"--keep-unit".to_string()));
        assert!(a.contains(&"--drop-capability=CAP_SYS_ADMIN,CAP_MKNOD".to_string()));
        assert!(a.contains(&"--no-new-privileges=yes".to_string()));
        assert!(
            !a.iter().any(|x| x.starts_with("--inaccessible")),
            "masks are mounted by wayback in the launch namespace"
        );
        assert_eq!(a.last().unwrap(), "wb-pg");
        assert_eq!(escape(std::path::Path::new("/a:b")), "/a\\:b");
    }

    #[test]
    fn snapshot_software_argv_and_init_through_the_loader() {
        let mut s: ContainerSpec = serde_json::from_value(serde_json::json!({
            "machine": "wb-old", "netns_path": "/run/netns/wb-old", "host_ro": [], "binds": [],
            "init_exe": "/usr/bin/wayback", "spec_file": "/s/init.json", "register": false
        }))
        .unwrap();
        let direct = s.argv();
        assert!(direct.contains(&"--volatile=yes".to_string()));
        let words = |v: &[String]| v.iter().map(|a| a.as_bytes().to_vec()).collect::<Vec<_>>();
        let w = words(&s.init_command());
        assert!(is_init_command(
            &w.iter().map(Vec::as_slice).collect::<Vec<_>>()
        ));
        s.snapshot_root = Some(SnapshotRoot {
            dir: "/var/lib/wayback/instances/old/root".into(),
            binds: vec![],
            links: vec![("/bin".into(), "usr/bin".into())],
        });
        s.init_libs = vec![
            HostLib {
                name: "ld-linux-x86-64.so.2".into(),
                path: "/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2".into(),
            },
            HostLib {
                name: "libc.so.6".into(),
                path: "/usr/lib/x86_64-linux-gnu/libc.so.6".into(),
            },
        ];
        let a = s.argv();
        assert!(a.contains(&"--directory=/var/lib/wayback/instances/old/root".to_string()));
        assert!(!a
            .iter()
            .any(|x| x == "--volatile=yes" || x == "--directory=/"));
        assert!(a.contains(
            &"--bind-ro=/usr/lib/x86_64-linux-gnu/libc.so.6:/.wayback-host/libc.so.6".to_string()
        ));
        let cmd = s.init_command();
        assert_eq!(
            cmd,
            [
                "/.wayback-host/ld-linux-x86-64.so.2",
                "--library-path",
                "/.wayback-host",
                "/.wayback-init",
                "__init",
                "/.wayback-spec.json",
                "wb-old"
            ]
        );
        assert!(a.ends_with(&cmd));
        let w = words(&cmd);
        assert!(is_init_command(
            &w.iter().map(Vec::as_slice).collect::<Vec<_>>()
        ));
        for bad in [
            vec!["/bin/sh", "/.wayback-init", "__init"],
            vec![
                "/.wayback-host/x",
                "--library-path",
                "/tmp",
                "/.wayback-init",
                "__init",
            ],
            vec![
                "/.wayback-host/a/b",
                "--library-path",
                "/.wayback-host",
                "/.wayback-init",
                "__init",
            ],
            vec!["/.wayback-init"],
        ] {
            let b: Vec<&[u8]> = bad.iter().map(|s| s.as_bytes()).collect();
            assert!(!is_init_command(&b), "{bad:?}");
        }
    }
}
