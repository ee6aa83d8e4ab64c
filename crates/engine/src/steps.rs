//! The side effects of `up`, in order, as data: [`steps`] turns a plan into the list that
//! [`crate::apply`] performs through a [`crate::host::Host`]. Every object is named in the journal
//! ([`Step::Journal`]) before the step that creates it ([`Step::Create`]), so teardown can always find it;
//! a few steps change what is already journaled (owners in a clone, masked units) and journal nothing.
//!
//! Pure: nothing here touches the system, so the order of `up` is tested without root (host/tests.rs).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use wayback_core::journal::Resource;
use wayback_core::plan::{SourceFacts, SourceKind};
use wayback_core::Plan;
use wayback_net::nft::{NftLayout, Quarantine};
use wayback_net::VethSpec;

/// One step of `up`.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// A progress line for the steps that follow, until the next one.
    Begin(String),
    /// Write this resource into the journal; always before the [`Create`] that makes it.
    Journal(Resource),
    /// Create an object (or change one already journaled).
    Create(Create),
}

/// What one [`Step::Create`] makes; the [`crate::host::Host`] knows how.
#[derive(Debug, Clone, PartialEq)]
pub enum Create {
    /// wayback's clone directory at the top of the source's filesystem (carrying wayback's marker).
    CloneDir(PathBuf),
    /// A writable btrfs snapshot of `source` at `clone`.
    Clone { source: PathBuf, clone: PathBuf },
    /// An overlay of `lower` (a directory that is not a btrfs subvolume) mounted at `merged`.
    Overlay { lower: PathBuf, merged: PathBuf },
    /// `--chown`: owners changed inside the clones (already journaled).
    Chown,
    /// The instance's network namespace, `name` under `dir`.
    Netns { dir: PathBuf, name: String },
    /// The nftables quarantine of the host end of the veth, before the link exists.
    Quarantine(Quarantine),
    /// The veth pair, one end moved into the namespace.
    Veth(VethSpec),
    /// Boot mode: units masked inside the clone (already journaled).
    MaskUnits,
    /// The app's log directories, kept in the instance directory (removed with it).
    LogDirs(Vec<PathBuf>),
    /// The container's own cgroups.
    Cgroups(Vec<PathBuf>),
    /// systemd-nspawn in its launch namespace; its process is journaled as soon as it has a PID.
    Container,
}

impl Create {
    /// The kind of object, as fault points and test reports name it (`created clone`).
    pub fn kind(&self) -> &'static str {
        match self {
            Create::CloneDir(_) => "dir",
            Create::Clone { .. } => "clone",
            Create::Overlay { .. } => "overlay",
            Create::Chown => "chown",
            Create::Netns { .. } => "netns",
            Create::Quarantine(_) => "quarantine",
            Create::Veth(_) => "veth",
            Create::MaskUnits => "masked units",
            Create::LogDirs(_) => "log directories",
            Create::Cgroups(_) => "cgroup",
            Create::Container => "container",
        }
    }

    /// Whether this makes a new object that teardown must undo (and so follows its journal entry).
    pub fn makes_object(&self) -> bool {
        !matches!(self, Create::Chown | Create::MaskUnits | Create::LogDirs(_))
    }

    /// Whether `res` is the journal entry of the object this step makes.
    pub fn journaled_as(&self, res: &Resource) -> bool {
        match (self, res) {
            (Create::CloneDir(p), Resource::Dir { path }) => p == path,
            (Create::Clone { clone, .. }, Resource::Clone { path, .. }) => clone == path,
            (Create::Overlay { merged, .. }, Resource::Overlay { merged: m }) => merged == m,
            (Create::Netns { dir, name }, Resource::Netns { path }) => dir.join(name) == *path,
            (
                Create::Quarantine(q),
                Resource::Quarantine {
                    instance, host_if, ..
                },
            ) => q.instance == *instance && q.host_if == *host_if,
            (Create::Veth(v), Resource::Veth { host_if }) => v.host_if == *host_if,
            (Create::Cgroups(p), Resource::Cgroup { paths }) => p == paths,
            (Create::Container, Resource::Container { .. }) => true,
            _ => false,
        }
    }
}

/// The steps of `up` for `plan`, its instance directory at `instance_dir` and its container's own cgroups
/// (`cgroups`, none when systemd-machined registers it).
pub fn steps(plan: &Plan, instance_dir: &Path, cgroups: &[PathBuf]) -> Result<Vec<Step>> {
    let mut out = Vec::new();
    clone_steps(&mut out, &plan.source, &plan.clone)?;
    for e in &plan.extra {
        clone_steps(&mut out, &e.source, &e.clone)?;
    }
    if plan.chown.is_some() {
        out.push(Step::Begin("changing owners in the clone".into()));
        out.push(Step::Create(Create::Chown));
    }
    network_steps(&mut out, plan)?;
    out.push(Step::Begin(format!("container {}", plan.container.machine)));
    out.push(Step::Journal(Resource::Container {
        machine: plan.container.machine.clone(),
    }));
    if plan.boot.is_some() {
        out.push(Step::Create(Create::MaskUnits));
    }
    let logs: Vec<PathBuf> = (plan.container.binds.iter())
        .filter(|b| b.clone.is_none() && b.source.starts_with(instance_dir))
        .map(|b| b.source.clone())
        .collect();
    if !logs.is_empty() {
        out.push(Step::Create(Create::LogDirs(logs)));
    }
    if !cgroups.is_empty() {
        out.push(Step::Journal(Resource::Cgroup {
            paths: cgroups.to_vec(),
        }));
        out.push(Step::Create(Create::Cgroups(cgroups.to_vec())));
    }
    out.push(Step::Create(Create::Container));
    Ok(out)
}

/// The writable clone of one source: a btrfs snapshot in wayback's clone directory at the top of the
/// source's filesystem (the directory is journaled by every instance and removed only when empty and
/// wayback's), or an overlay for a directory that is not a subvolume.
fn clone_steps(out: &mut Vec<Step>, source: &SourceFacts, clone: &Path) -> Result<()> {
    match source.kind {
        SourceKind::Btrfs => {
            let parent = clone.parent().context("clone path has no parent")?;
            out.push(Step::Journal(Resource::Dir {
                path: parent.to_path_buf(),
            }));
            out.push(Step::Create(Create::CloneDir(parent.to_path_buf())));
            out.push(Step::Begin(format!(
                "cloning {} to {}",
                source.path.display(),
                clone.display()
            )));
            out.push(Step::Journal(Resource::Clone {
                path: clone.to_path_buf(),
                source: source.path.clone(),
                source_uuid: source.uuid.clone(),
            }));
            out.push(Step::Create(Create::Clone {
                source: source.path.clone(),
                clone: clone.to_path_buf(),
            }));
        }
        SourceKind::Overlay => {
            out.push(Step::Begin(format!(
                "overlay of {} at {}",
                source.path.display(),
                clone.display()
            )));
            out.push(Step::Journal(Resource::Overlay {
                merged: clone.to_path_buf(),
            }));
            out.push(Step::Create(Create::Overlay {
                lower: source.path.clone(),
                merged: clone.to_path_buf(),
            }));
        }
    }
    Ok(())
}

/// The namespace, then the quarantine (before the link exists, so the instance never has a moment
/// without it), then the veth pair.
fn network_steps(out: &mut Vec<Step>, plan: &Plan) -> Result<()> {
    out.push(Step::Begin(format!(
        "network namespace {} and veth {}",
        plan.netns, plan.host_if
    )));
    out.push(Step::Journal(Resource::Netns {
        path: plan.netns_path.clone(),
    }));
    let dir = plan
        .netns_path
        .parent()
        .context("netns path has no parent")?;
    out.push(Step::Create(Create::Netns {
        dir: dir.to_path_buf(),
        name: plan.netns.clone(),
    }));
    let quarantine = Quarantine {
        instance: plan.name.to_string(),
        host_if: plan.host_if.clone(),
        allow: plan.allow_egress.clone(),
    };
    out.push(Step::Journal(Resource::Quarantine {
        instance: quarantine.instance.clone(),
        host_if: quarantine.host_if.clone(),
        layout: NftLayout::VerdictMap,
    }));
    out.push(Step::Create(Create::Quarantine(quarantine)));
    out.push(Step::Journal(Resource::Veth {
        host_if: plan.host_if.clone(),
    }));
    out.push(Step::Create(Create::Veth(VethSpec {
        host_if: plan.host_if.clone(),
        peer_if: plan.peer_if.clone(),
        host_addr: plan.block.host,
        peer_addr: plan.block.peer,
        prefix_len: plan.block.net.prefix_len(),
        netns_path: plan.netns_path.clone(),
    })));
    Ok(())
}
