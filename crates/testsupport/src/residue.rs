//! `Residue`: every trace an instance could leave behind (mounts, netns, veth, processes, clone subvolume,
//! state/route files, nftables rules, cgroups), listed and asserted away.

#![allow(dead_code, unused_imports)]

use super::*;

/// Everything an instance `name` could leave behind. Build with [`Residue::new`], add the pool and the
/// wayback runner, then call [`Residue::leftovers`] (or [`Residue::assert_none`]).
pub struct Residue<'a> {
    name: String,
    pool: Option<&'a BtrfsPool>,
    wayback: Option<&'a Wayback>,
}

impl<'a> Residue<'a> {
    pub fn new(name: &str) -> Residue<'a> {
        Residue {
            name: name.to_string(),
            pool: None,
            wayback: None,
        }
    }

    pub fn pool(mut self, pool: &'a BtrfsPool) -> Self {
        self.pool = Some(pool);
        self
    }

    pub fn wayback(mut self, wb: &'a Wayback) -> Self {
        self.wayback = Some(wb);
        self
    }

    /// `wb-<name>`: netns and machine name.
    pub fn netns(&self) -> String {
        format!("wb-{}", self.name)
    }

    /// Possible host-side veth names: the library's derivation (hash-shortened to 15 bytes) and plain
    /// truncation, in case the binary does not use it.
    pub fn host_if_candidates(&self) -> Vec<String> {
        let mut v = Vec::new();
        if let Ok(n) = wayback_core::InstanceName::new(&self.name) {
            v.push(n.host_if());
        }
        let full = format!("wb-{}", self.name);
        let trunc: String = full.chars().take(15).collect();
        if !v.contains(&trunc) {
            v.push(trunc);
        }
        v
    }

    /// Every leftover found, one line each (empty: clean).
    pub fn leftovers(&self) -> Vec<String> {
        let mut left = Vec::new();
        let name = self.name.as_str();
        let netns = self.netns();
        let ifnames = self.host_if_candidates();

        // Mounts: the clone, the netns bind mount, nspawn's propagation dirs, anything naming wb-NAME.
        let clone = self.pool.map(|p| p.clone_path(name));
        if let Ok(mi) = fs::read_to_string("/proc/self/mountinfo") {
            for line in mi.lines() {
                let hit_clone = clone
                    .as_ref()
                    .is_some_and(|c| line.split(' ').any(|f| is_at_or_under(f, path_str(c))));
                if hit_clone || mentions(line, &netns) {
                    left.push(format!("mount: {line}"));
                }
            }
        }

        // Network namespace.
        let ns_path = Path::new("/run/netns").join(&netns);
        if ns_path.exists() {
            left.push(format!("netns file: {}", ns_path.display()));
        }
        let out = cmd("ip", &["netns", "list"]);
        for l in String::from_utf8_lossy(&out.stdout).lines() {
            if l.split_whitespace().next() == Some(netns.as_str()) {
                left.push(format!("netns: {l}"));
            }
        }

        // Host-side veth (or any link named after the instance).
        let out = cmd("ip", &["-o", "link", "show"]);
        for l in String::from_utf8_lossy(&out.stdout).lines() {
            // "7: wb-x@if6: <...>"
            let ifname = l
                .split(": ")
                .nth(1)
                .unwrap_or("")
                .split('@')
                .next()
                .unwrap_or("");
            if ifnames.iter().any(|c| c == ifname) || mentions(ifname, &netns) {
                left.push(format!("link: {l}"));
            }
        }

        // Processes: nspawn with --machine=wb-NAME (or `-M wb-NAME` / `--machine wb-NAME`).
        left.extend(processes_with_machine(&netns));

        // Clone subvolume and directory.
        if let Some(pool) = self.pool {
            let c = pool.clone_path(name);
            if fs::symlink_metadata(&c).is_ok() {
                left.push(format!("clone path exists: {}", c.display()));
            }
            let own = pool.own_subvolumes();
            for sv in pool.subvolumes() {
                // The clone_dir itself may be a subvolume wayback keeps; instances' clones may not.
                if !own.contains(&sv) && sv != ".wayback" {
                    left.push(format!("subvolume: {sv}"));
                }
            }
        }

        // State and runtime files naming the instance.
        if let Some(wb) = self.wayback {
            for root in [wb.state_dir(), wb.runtime_dir()] {
                for p in files_under(&root) {
                    let rel = p
                        .strip_prefix(&root)
                        .unwrap_or(&p)
                        .to_string_lossy()
                        .into_owned();
                    // The logs of a failed start are kept on purpose until `gc` (keep_failed_logs).
                    let kept_logs = root == wb.state_dir() && rel.starts_with("failed/");
                    if mentions(&rel, name) && !kept_logs {
                        left.push(format!("state/runtime file: {}", p.display()));
                    } else if root == wb.runtime_dir()
                        && p.is_file()
                        && fs::metadata(&p).is_ok_and(|m| m.len() < (1 << 20))
                        && fs::read_to_string(&p).is_ok_and(|t| mentions(&t, name))
                    {
                        left.push(format!(
                            "runtime file (route?) mentions instance: {}",
                            p.display()
                        ));
                    }
                }
            }
        }

        // nftables: anything of the instance in `table inet wayback-quarantine` (or an earlier release's
        // `table inet wayback`).
        match Command::new("nft")
            .args(["list", "ruleset"])
            .stdin(Stdio::null())
            .output()
        {
            Ok(out) if out.status.success() => {
                left.extend(nft_leftovers(
                    &String::from_utf8_lossy(&out.stdout),
                    name,
                    &ifnames,
                ));
            }
            Ok(out) => left.push(format!(
                "nft list ruleset failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )),
            Err(_) => eprintln!("note: nft not installed, nftables residue not checked"),
        }

        // cgroups named after the instance (nspawn launchers may get their own).
        for root in ["/sys/fs/cgroup"] {
            for p in dirs_under(Path::new(root), 3) {
                let base = p
                    .file_name()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default();
                if mentions(&base, name) {
                    left.push(format!("cgroup: {}", p.display()));
                }
            }
        }
        left
    }

    /// Panic with the list of leftovers, if any.
    #[track_caller]
    pub fn assert_none(&self) {
        let left = self.leftovers();
        assert!(
            left.is_empty(),
            "instance {} left {} trace(s) behind:\n  {}",
            self.name,
            left.len(),
            left.join("\n  ")
        );
    }
}

pub fn is_at_or_under(field: &str, path: &str) -> bool {
    field == path || field.strip_prefix(path).is_some_and(|r| r.starts_with('/'))
}

/// Processes whose command line selects machine `machine` (`--machine=M`, `--machine M`, `-M M`) or
/// otherwise names the instance (`machine` without its `wb-` prefix).
pub fn processes_with_machine(machine: &str) -> Vec<String> {
    let mut left = Vec::new();
    let me = std::process::id().to_string();
    let Ok(rd) = fs::read_dir("/proc") else {
        return left;
    };
    for e in rd.flatten() {
        let pid = e.file_name().to_string_lossy().into_owned();
        if !pid.bytes().all(|b| b.is_ascii_digit()) || pid == me {
            continue;
        }
        let Ok(raw) = fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let args: Vec<String> = raw
            .split(|b| *b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        let instance = machine.strip_prefix("wb-").unwrap_or(machine);
        // nspawn by machine name, and anything else still running for the instance (a lingering
        // `up --name NAME`, helper processes).
        let hit = args.iter().enumerate().any(|(i, a)| {
            a == &format!("--machine={machine}")
                || ((a == "--machine" || a == "-M")
                    && args.get(i + 1).is_some_and(|n| n == machine))
                || mentions(a, instance)
        });
        if hit {
            left.push(format!("process {pid}: {}", args.join(" ").trim()));
        }
    }
    left
}

/// The parts of an `nft list ruleset` text that belong to instance `name`: inside any `table … wayback`
/// block, lines naming the instance, its netns/machine name or its host interface.
pub fn nft_leftovers(ruleset: &str, name: &str, ifnames: &[String]) -> Vec<String> {
    let mut left = Vec::new();
    let mut table: Option<String> = None;
    let netns = format!("wb-{name}");
    for line in ruleset.lines() {
        if line.starts_with("table ") {
            let t = line.trim_end_matches('{').trim().to_string();
            table = t
                .split_whitespace()
                .nth(2)
                .filter(|n| ["wayback", "wayback-quarantine"].contains(n))
                .map(|_| t.clone());
            continue;
        }
        if line == "}" {
            table = None;
            continue;
        }
        if let Some(t) = &table {
            let hit = mentions(line, name)
                || mentions(line, &netns)
                || ifnames.iter().any(|i| mentions(line, i));
            if hit {
                left.push(format!("nft {t}: {}", line.trim()));
            }
        }
    }
    left
}

pub fn files_under(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(p) = stack.pop() {
        let Ok(rd) = fs::read_dir(&p) else { continue };
        for e in rd.flatten() {
            let path = e.path();
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(path.clone());
            }
            out.push(path);
        }
    }
    out.sort();
    out
}

pub fn dirs_under(root: &Path, depth: usize) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if depth == 0 {
        return out;
    }
    let Ok(rd) = fs::read_dir(root) else {
        return out;
    };
    for e in rd.flatten() {
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            let p = e.path();
            out.extend(dirs_under(&p, depth - 1));
            out.push(p);
        }
    }
    out
}
