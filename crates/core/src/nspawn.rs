//! The systemd-nspawn command line for an instance (pure). The `wayback` binary launches it.
//!
//! Host mode: the container's root is a fresh tmpfs (`--volatile=yes`), the host's /usr comes in read-only
//! with it, the host's /etc and any other configured host paths are bound read-only, /run and /tmp are fresh
//! tmpfs, and only the clone's bind paths are writable. The payload is wayback's own small init (the running
//! binary, bound read-only), which starts the profile's processes and stops them in order on SIGTERM.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Where wayback's init and its spec appear inside the container.
pub const INIT_PATH: &str = "/.wayback-init";
pub const SPEC_PATH: &str = "/.wayback-spec.json";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MountBind {
    pub source: PathBuf,
    pub dest: PathBuf,
    pub readonly: bool,
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
    /// Register with systemd-machined (only when systemd runs as PID 1).
    pub register: bool,
    /// Boot mode: boot this whole-root clone with its own init instead of host mode.
    #[serde(default)]
    pub boot_root: Option<PathBuf>,
}

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
            a.extend([
                format!("--directory={}", root.display()),
                "--boot".into(),
                "--resolv-conf=off".into(),
                "--timezone=off".into(),
                "--link-journal=no".into(),
                "--console=passive".into(),
                "--kill-signal=SIGRTMIN+3".into(),
                format!("--network-namespace-path={}", self.netns_path.display()),
            ]);
            self.registration(&mut a);
            return a;
        }
        a.extend([
            "--directory=/".into(),
            "--volatile=yes".into(),
            "--resolv-conf=off".into(),
            "--timezone=off".into(),
            "--link-journal=no".into(),
            "--console=pipe".into(),
            // Our init is PID 1 and stops the services in order on SIGTERM.
            "--kill-signal=SIGTERM".into(),
            format!("--network-namespace-path={}", self.netns_path.display()),
        ]);
        self.registration(&mut a);
        for p in &self.host_ro {
            a.push(format!("--bind-ro={}", p.display()));
        }
        for b in &self.binds {
            let flag = if b.readonly { "--bind-ro" } else { "--bind" };
            a.push(format!("{flag}={}:{}", escape(&b.source), escape(&b.dest)));
        }
        a.push(format!("--bind-ro={}:{INIT_PATH}", escape(&self.init_exe)));
        a.push(format!("--bind-ro={}:{SPEC_PATH}", escape(&self.spec_file)));
        a.push("--".into());
        a.push(INIT_PATH.into());
        a.push("__init".into());
        a.push(SPEC_PATH.into());
        // Names the container on the init's own command line, so it can be found even if nspawn is gone.
        a.push(self.machine.clone());
        a
    }
}

impl ContainerSpec {
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
            }],
            init_exe: "/usr/bin/wayback".into(),
            spec_file: "/var/lib/wayback/instances/pg/init.json".into(),
            register: false,
            boot_root: None,
        };
        let a = s.argv();
        assert!(a.contains(
            &"--bind=/mnt/.wayback/pg/var/lib/postgresql:/var/lib/postgresql".to_string()
        ));
        assert!(a.contains(&"--keep-unit".to_string()));
        assert_eq!(a.last().unwrap(), "wb-pg");
        assert_eq!(escape(std::path::Path::new("/a:b")), "/a\\:b");
    }
}
