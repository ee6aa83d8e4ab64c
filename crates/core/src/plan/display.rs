//! The plan as text: what `up --dry-run` prints, one line per resource.

use std::fmt;

use super::*;

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "instance {} (profile {}, ttl {}",
            self.name, self.profile, self.ttl
        )?;
        match self.idle {
            Some(idle) => writeln!(f, ", idle {idle})")?,
            None => writeln!(f, ")")?,
        }
        let ro = if self.source.readonly {
            "read-only"
        } else {
            "writable"
        };
        match self.source.kind {
            SourceKind::Btrfs if self.from_live => {
                writeln!(
                    f,
                    "  source     {} (writable subvolume: today's live state, not a snapshot; --from-live)",
                    self.source.path.display()
                )?;
                writeln!(
                    f,
                    "  clone      {} (writable btrfs snapshot: a fork of today's state)",
                    self.clone.display()
                )?;
            }
            SourceKind::Btrfs => {
                writeln!(
                    f,
                    "  source     {} (btrfs subvolume, {ro})",
                    self.source.path.display()
                )?;
                writeln!(
                    f,
                    "  clone      {} (writable btrfs snapshot)",
                    self.clone.display()
                )?;
            }
            SourceKind::Overlay => {
                writeln!(
                    f,
                    "  source     {} (directory, {ro})",
                    self.source.path.display()
                )?;
                writeln!(
                    f,
                    "  clone      {} (overlayfs: writes go to its upper layer only)",
                    self.clone.display()
                )?;
            }
        }
        let when = |d: Option<i64>| {
            d.map(|d| format!(", {} UTC", crate::civil::format_utc(d)))
                .unwrap_or_default()
        };
        if self.main_date.is_some() || !self.extra.is_empty() {
            writeln!(f, "  taken      main source{}", when(self.main_date))?;
        }
        for (i, e) in self.extra.iter().enumerate() {
            writeln!(
                f,
                "  source {}   {} ({}{})",
                i + 2,
                e.source.path.display(),
                e.why,
                when(e.date)
            )?;
            writeln!(f, "  clone {}    {}", i + 2, e.clone.display())?;
        }
        if let Some(sk) = self.skew {
            writeln!(
                f,
                "  skew       {} between the oldest and the newest snapshot",
                Duration(sk.max(1))
            )?;
        }
        if self.boot.is_none() {
            software(f, self)?;
        }
        if let Some(b) = &self.boot {
            let mut masked = Vec::new();
            if b.default_masks {
                masked.push("every timer, mail and cron unit".to_string());
            }
            masked.extend(b.masks.iter().cloned());
            writeln!(
                f,
                "  boot       the snapshot's own init; masked: {}",
                if masked.is_empty() {
                    "nothing".into()
                } else {
                    masked.join(", ")
                }
            )?;
        }
        writeln!(f, "  netns      {}", self.netns_path.display())?;
        writeln!(
            f,
            "  veth       {} {}/{} <-> {} {}/{} (no route out, no NAT)",
            self.host_if, self.block.host, BLOCK_LEN, self.peer_if, self.block.peer, BLOCK_LEN
        )?;
        if let Some(c) = &self.chown {
            let ids = |m: &std::collections::BTreeMap<u32, u32>| {
                m.iter()
                    .map(|(a, b)| format!("{a}->{b}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            };
            writeln!(
                f,
                "  chown      clone owners: uids {} gids {}",
                ids(&c.uids),
                ids(&c.gids)
            )?;
        }
        if self.allow_egress.is_empty() {
            writeln!(
                f,
                "  quarantine table inet wayback-quarantine: the instance can open no connection"
            )?;
        } else {
            writeln!(
                f,
                "  quarantine table inet wayback-quarantine: the instance can open only {}",
                crate::egress::join(&self.allow_egress)
            )?;
        }
        match &self.container.boot_root {
            Some(_) => writeln!(
                f,
                "  container  {} (boot mode: the clone is the whole root)",
                self.container.machine
            )?,
            None if self.container.snapshot_root.is_some() => snapshot_container(f, self)?,
            None => {
                let shown: Vec<String> = std::iter::once("/usr".to_string())
                    .chain(
                        self.container
                            .host_ro
                            .iter()
                            .map(|p| p.display().to_string()),
                    )
                    .collect();
                writeln!(
                    f,
                    "  container  {} (host mode: tmpfs root; host {} read-only)",
                    self.container.machine,
                    shown.join(", ")
                )?;
                confinement(f, &self.container)?;
                for (link, target) in &self.init.symlinks {
                    writeln!(f, "    link     {} -> {}", link.display(), target.display())?;
                }
            }
        }
        for b in &self.container.binds {
            let rw = if b.readonly { "ro" } else { "rw" };
            match &b.clone {
                Some(c) => {
                    writeln!(
                        f,
                        "    bind     {} -> {} ({rw}, from the clone)",
                        c.path.display(),
                        b.dest.display()
                    )?;
                    if let Some(why) = &b.reason {
                        writeln!(f, "             why: {why}")?;
                    }
                    if c.resolved != c.path {
                        writeln!(
                            f,
                            "             a symlink in the snapshot: resolved inside it to {}",
                            c.resolved.display()
                        )?;
                    }
                }
                None => {
                    writeln!(
                        f,
                        "    bind     {} -> {} ({rw})",
                        b.source.display(),
                        b.dest.display()
                    )?;
                    if let Some(why) = &b.reason {
                        writeln!(f, "             why: {why}")?;
                    }
                }
            }
        }
        for m in &self.missing {
            writeln!(
                f,
                "    not in the snapshot: {} ({})",
                m.path.display(),
                m.reason
            )?;
        }
        for d in &self.config_drift {
            let what = match (d.differs, d.used) {
                (true, true) => "differs from the host's: the snapshot's copy is used (--bind-config)",
                (true, false) => "differs from the host's: the host's is used (--bind-config uses the snapshot's)",
                (false, _) => "the same as the host's",
            };
            writeln!(f, "    config   {} {what} ({})", d.path.display(), d.reason)?;
        }
        for d in &self.init.dirs {
            writeln!(f, "    tmpfs dir {}", d.path.display())?;
        }
        if !self.init.skeleton.is_empty() {
            writeln!(
                f,
                "    /var     {} empty directories like the {} (/var/lib/*, /var/log/*, …)",
                self.init.skeleton.len(),
                match self.software.source {
                    crate::drift::Software::Host => "host's",
                    crate::drift::Software::Snapshot => "snapshot's",
                }
            )?;
        }
        for p in &self.init.processes {
            let user = p.user.as_deref().unwrap_or("root");
            writeln!(
                f,
                "    process  {} as {}: {}",
                p.name,
                user,
                shell_words(&p.argv(&self.init.shell))
            )?;
            if p.user.is_none() && p.name.starts_with("exec") {
                writeln!(
                    f,
                    "             runs as root inside the container (confined as above); --user USER runs it as a host user"
                )?;
            }
        }
        writeln!(f, "    command  {}", shell_words(&self.container.argv()))?;
        match &self.ready {
            Some(Ready { tcp: Some(p), .. }) => writeln!(f, "  ready      tcp port {p} answers")?,
            Some(Ready {
                postgres: Some(p), ..
            }) => writeln!(f, "  ready      PostgreSQL on port {p} accepts queries")?,
            Some(Ready {
                http: Some(p),
                http_path,
                ..
            }) => writeln!(
                f,
                "  ready      http port {p} answers {}",
                http_path.as_deref().unwrap_or("/")
            )?,
            _ => writeln!(f, "  ready      processes started")?,
        }
        if self.driver != crate::drivers::ProxyDriver::Builtin {
            writeln!(
                f,
                "  host proxy {:?}: publishes the hostname too",
                self.driver
            )?;
        }
        if let Some(h) = &self.http {
            writeln!(f, "  route      {} -> port {} ({})", h.host, h.port, h.url)?;
        }
        if let Some(m) = &self.masquerade {
            let scheme = if m.https { "https" } else { "http" };
            let bodies = if m.bodies {
                "headers and text bodies"
            } else {
                "headers only"
            };
            writeln!(
                f,
                "  masquerade the app sees {scheme}://{}; rewritten back in {bodies}",
                m.host
            )?;
        }
        match self.host_check {
            HostCheck::Auto { .. } => writeln!(
                f,
                "  masquerade original host: detected after start (where the front page redirects and links to)"
            )?,
            HostCheck::Refuse => writeln!(
                f,
                "  host check after start: a front page that redirects to another hostname stops the start"
            )?,
            HostCheck::Verify => writeln!(
                f,
                "  host check after start: warn if the app points to a hostname besides the original one"
            )?,
            HostCheck::Off => {}
        }
        if !self.gate.is_open() {
            let mut parts = Vec::new();
            if let Some(d) = self.gate.share {
                parts.push(format!("one-time share link (valid {d})"));
            }
            if let Some(u) = &self.gate.basic_auth_user {
                parts.push(format!("basic auth as {u}"));
            }
            if !self.gate.allow.is_empty() {
                let nets: Vec<String> = self
                    .gate
                    .allow
                    .iter()
                    .map(std::string::ToString::to_string)
                    .collect();
                parts.push(format!("clients from {}", nets.join(", ")));
            }
            writeln!(f, "  gate       {}", parts.join("; "))?;
        }
        for p in &self.publish {
            writeln!(f, "  publish    {} -> port {}", p.listen, p.port)?;
        }
        Ok(())
    }
}

/// Whose software runs the processes, why, and what the comparison of state and software found.
/// The container's confinement: capabilities dropped, and the host paths masked.
fn confinement(f: &mut fmt::Formatter<'_>, c: &crate::nspawn::ContainerSpec) -> fmt::Result {
    writeln!(
        f,
        "    confined without {}; no new privileges",
        c.drop_capabilities.join(", ")
    )?;
    if !c.inaccessible.is_empty() {
        let masked: Vec<String> = c
            .inaccessible
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        writeln!(
            f,
            "    masked   {} (--unmask PATH shows one)",
            masked.join(", ")
        )?;
    }
    Ok(())
}

fn software(f: &mut fmt::Formatter<'_>, plan: &Plan) -> fmt::Result {
    use crate::drift::{Level, Software};
    let s = &plan.software;
    let whose = match s.source {
        Software::Host => "this host's",
        Software::Snapshot => "the snapshot's own",
    };
    writeln!(f, "  software   {whose} ({})", s.why)?;
    for x in &s.findings {
        let tag = match x.level {
            Level::Ok => "ok",
            Level::Note => "note",
            Level::Warn => "warning",
            Level::Refuse => "refused",
        };
        writeln!(f, "    {tag:<8} {}", x.message)?;
    }
    Ok(())
}

/// The container with the snapshot's own software: its root, links, the init through the host's loader.
fn snapshot_container(f: &mut fmt::Formatter<'_>, plan: &Plan) -> fmt::Result {
    let c = &plan.container;
    let Some(root) = &c.snapshot_root else {
        return Ok(());
    };
    let dirs: Vec<String> = root
        .binds
        .iter()
        .map(|b| b.dest.display().to_string())
        .collect();
    writeln!(
        f,
        "  container  {} (the snapshot's software: tmpfs root; the snapshot's {} read-only from the clone)",
        c.machine,
        dirs.join(", ")
    )?;
    if !c.host_ro.is_empty() {
        let shown: Vec<String> = c.host_ro.iter().map(|p| p.display().to_string()).collect();
        writeln!(f, "    host     {} read-only", shown.join(", "))?;
    }
    confinement(f, c)?;
    for (link, target) in root.links.iter().chain(&plan.init.symlinks) {
        writeln!(f, "    link     {} -> {}", link.display(), target.display())?;
    }
    if let Some((loader, libs)) = c.init_libs.split_first() {
        let names: Vec<&str> = libs.iter().map(|l| l.name.as_str()).collect();
        writeln!(
            f,
            "    init     wayback's init through this host's loader {}/{} ({}, bound read-only)",
            crate::nspawn::HOST_LIB_DIR,
            loader.name,
            names.join(", ")
        )?;
    }
    Ok(())
}
