//! Apply a plan with the journal: every resource is recorded in the instance's journal *before* it is
//! created (clone directory, clones, netns, quarantine, veth, cgroups, container and its PID, route file,
//! host-proxy route), so `teardown` can replay it backwards after `down`, expiry, a failed `up` or a crash
//! at any point. Owns the order of `up`'s steps; the kernel objects themselves are handled by `sys::*`, the
//! `wayback-net` crate and the host-proxy drivers.

use std::path::Path;
use std::process::Child;

use anyhow::{Context, Result};
use wayback_core::journal::{Journal, Resource};
use wayback_core::plan::{SourceFacts, SourceKind};
use wayback_core::{Config, Plan};
use wayback_net::nft::{self, Quarantine};
use wayback_net::{netns, veth, VethSpec};
use wayback_proxy::{share_url, BasicAuth, GateConfig, ShareLink};

use crate::drivers::{Driver, DriverRoute};
use crate::fault;
use crate::progress::Progress;
use crate::state::{self, InstanceDir, MasqueradeRoute, RouteFile};
use crate::sys::launchns::{self, JoinNetns, Keep, Masks, RootFs, Stage};
use crate::sys::{boot, btrfs, ids, nspawn, overlay, owned_dir};

/// Create the clone, the network and the container, journaling each first.
pub async fn apply(dir: &InstanceDir, plan: &Plan, progress: &Progress) -> Result<Child> {
    let mut j = Journal::open(&dir.journal_path())?;
    state::write_json(&dir.init_spec_path(), &plan.init)?;

    clone_source(&mut j, &plan.source, &plan.clone, progress)?;
    for e in &plan.extra {
        clone_source(&mut j, &e.source, &e.clone, progress)?;
    }

    if let Some(chown) = &plan.chown {
        let step = progress.step("changing owners in the clone");
        for b in &plan.container.binds {
            let Some(data) = &b.clone else { continue };
            let n = ids::chown_tree(&data.root, &data.path, chown)?;
            progress.note(format!("{}: {n} entries", b.dest.display()));
        }
        step.done();
    }

    let step = progress.step(format!(
        "network namespace {} and veth {}",
        plan.netns, plan.host_if
    ));
    j.record(&Resource::Netns {
        path: plan.netns_path.clone(),
    })?;
    fault::point("journaled netns");
    let ns_dir = plan
        .netns_path
        .parent()
        .context("netns path has no parent")?
        .to_path_buf();
    let ns_name = plan.netns.clone();
    tokio::task::spawn_blocking(move || netns::create(&ns_dir, &ns_name)).await??;
    fault::point("created netns");
    // The quarantine goes in before the link exists, so the instance never has a moment without it.
    let quarantine = Quarantine {
        instance: plan.name.to_string(),
        host_if: plan.host_if.clone(),
        allow: plan.allow_egress.clone(),
    };
    j.record(&Resource::Quarantine {
        instance: quarantine.instance.clone(),
        host_if: quarantine.host_if.clone(),
    })?;
    fault::point("journaled quarantine");
    tokio::task::spawn_blocking(move || nft::apply(&quarantine)).await??;
    fault::point("created quarantine");
    j.record(&Resource::Veth {
        host_if: plan.host_if.clone(),
    })?;
    fault::point("journaled veth");
    veth::create(&VethSpec {
        host_if: plan.host_if.clone(),
        peer_if: plan.peer_if.clone(),
        host_addr: plan.block.host,
        peer_addr: plan.block.peer,
        prefix_len: plan.block.net.prefix_len(),
        netns_path: plan.netns_path.clone(),
    })
    .await?;
    fault::point("created veth");
    step.done();

    let step = progress.step(format!("container {}", plan.container.machine));
    j.record(&Resource::Container {
        machine: plan.container.machine.clone(),
    })?;
    fault::point("journaled container");
    if let Some(spec) = &plan.boot {
        let masked = boot::mask_units(&plan.clone, spec)
            .with_context(|| format!("masking units in {}", plan.clone.display()))?;
        progress.note(format!(
            "masked {} units in the clone ({})",
            masked.len(),
            masked.join(", ")
        ));
    }
    // The app's log directories, kept on disk in the instance's directory (made here, owned by init).
    for b in plan.container.binds.iter().filter(|b| b.clone.is_none()) {
        if b.source.starts_with(&dir.path) {
            std::fs::create_dir_all(&b.source)
                .with_context(|| format!("creating {}", b.source.display()))?;
        }
    }
    let cgroups = container_cgroups(plan);
    if !cgroups.is_empty() {
        j.record(&Resource::Cgroup {
            paths: cgroups.clone(),
        })?;
        fault::point("journaled cgroup");
        boot::create_cgroups(&cgroups).context("creating the container's cgroups")?;
        fault::point("created cgroup");
    }
    let child = launch_container(dir, plan).await?;
    fault::point("created container");
    note_process(&mut j, &child, "systemd-nspawn")?;
    step.done();
    Ok(child)
}

/// Start the container: systemd-nspawn from its own launch namespace (`sys::launchns`), where the clone's
/// bind paths are mounted from what they resolve to inside the clone, and no host mount it does not need is
/// kept. Used for the first start and for restarts.
pub async fn launch_container(dir: &InstanceDir, plan: &Plan) -> Result<Child> {
    if let Some(state) = &plan.container.state_file {
        // Empty until the init reports (also on a restart).
        std::fs::write(state, "").with_context(|| format!("writing {}", state.display()))?;
    }
    let root = plan.container.snapshot_root.as_ref();
    let stages: Vec<Stage> = root
        .iter()
        .flat_map(|r| &r.binds)
        .chain(&plan.container.binds)
        .filter_map(|b| {
            let c = b.clone.as_ref()?;
            Some(Stage {
                clone: c.root.clone(),
                path: c.path.clone(),
                at: b.source.clone(),
                readonly: b.readonly,
            })
        })
        .collect();
    let keep = launch_keep(dir, plan);
    let masks = Masks {
        paths: plan.container.inaccessible.clone(),
        empty: dir.path.join("masked"),
    };
    let (argv, log, cgroups) = (
        plan.container.argv(),
        dir.log_path(),
        container_cgroups(plan),
    );
    let join = plan
        .container
        .joins_netns()
        .then(|| JoinNetns(plan.netns_path.clone()));
    let root = root.map(|r| RootFs {
        dir: r.dir.clone(),
        links: r.links.clone(),
    });
    let launch = launchns::Launch {
        root,
        stages,
        masks,
        keep,
        netns: join,
        init_at: plan.container.init_exe.clone(),
    };
    let child = tokio::task::spawn_blocking(move || {
        launchns::launch(launch, move || nspawn::launch(&argv, &log, &cgroups))
    })
    .await??;
    Ok(child)
}

/// What the launch namespace keeps of the host's mounts: what the container shows (/usr, host paths), what
/// nspawn itself uses (/proc, /sys, /dev, /tmp, /run), and the mounts holding the instance's own files.
fn launch_keep(dir: &InstanceDir, plan: &Plan) -> Keep {
    let c = &plan.container;
    let trees = ["/usr", "/proc", "/sys", "/dev"]
        .iter()
        .map(std::path::PathBuf::from)
        .chain(c.host_ro.iter().cloned())
        .collect();
    let paths = [
        plan.netns_path.clone(),
        dir.path.clone(),
        c.init_exe.clone(),
        c.spec_file.clone(),
        "/tmp".into(),
        "/run".into(),
        plan.clone.clone(),
    ]
    .into_iter()
    .chain(plan.extra.iter().map(|e| e.clone.clone()))
    .chain(c.boot_root.clone())
    // The host's loader and libraries wayback's init runs with (snapshot software).
    .chain(c.init_libs.iter().map(|l| l.path.clone()))
    .collect();
    Keep { trees, paths }
}

/// The container's own cgroups (none when systemd-machined registers it): without them every container
/// of one wayback process would share nspawn's `payload` cgroup, and one could see and kill another's
/// processes through it.
pub fn container_cgroups(plan: &Plan) -> Vec<std::path::PathBuf> {
    if plan.container.register {
        return Vec::new();
    }
    boot::cgroup_paths(Path::new("/sys/fs/cgroup"), &plan.container.machine)
}

/// The writable clone of one source: a btrfs snapshot, or an overlay for a non-btrfs directory.
fn clone_source(
    j: &mut Journal,
    source: &SourceFacts,
    clone: &Path,
    progress: &Progress,
) -> Result<()> {
    match source.kind {
        SourceKind::Btrfs => clone_btrfs(j, source, clone, progress),
        SourceKind::Overlay => {
            let step = progress.step(format!(
                "overlay of {} at {}",
                source.path.display(),
                clone.display()
            ));
            j.record(&Resource::Overlay {
                merged: clone.to_path_buf(),
            })?;
            fault::point("journaled overlay");
            overlay::mount_clone(&source.path, clone)?;
            fault::point("created overlay");
            step.done();
            Ok(())
        }
    }
}

/// The writable btrfs snapshot, in the clone directory at the top of the source's filesystem.
fn clone_btrfs(
    j: &mut Journal,
    source: &SourceFacts,
    clone: &Path,
    progress: &Progress,
) -> Result<()> {
    // Every instance records the clone directory; it is removed (when empty) only if wayback made it.
    let clone_parent = clone.parent().context("clone path has no parent")?;
    j.record(&Resource::Dir {
        path: clone_parent.to_path_buf(),
    })?;
    fault::point("journaled dir");
    owned_dir::create(clone_parent).with_context(|| {
        format!(
            "cannot create clone directory {} (is the snapshot's filesystem mounted read-only? set clone_dir in the config)",
            clone_parent.display()
        )
    })?;
    fault::point("created dir");
    let step = progress.step(format!(
        "cloning {} to {}",
        source.path.display(),
        clone.display()
    ));
    j.record(&Resource::Clone {
        path: clone.to_path_buf(),
        source: source.path.clone(),
        source_uuid: source.uuid.clone(),
    })?;
    fault::point("journaled clone");
    btrfs::clone(&source.path, clone)?;
    fault::point("created clone");
    step.done();
    Ok(())
}

/// Note a started process in the journal, so teardown stops exactly it (by PID and start time).
pub fn note_process(j: &mut Journal, child: &Child, what: &str) -> Result<()> {
    let pid = child.id() as i32;
    j.record(&Resource::Process {
        pid,
        start_time: state::process_start_time(pid).unwrap_or(0),
        what: what.into(),
    })?;
    fault::point("journaled process");
    Ok(())
}

/// Publish the HTTP route: a file the proxy (in whichever process hosts it) reads.
/// Publish the HTTP route with its access gate; returns the one-time share URL when `--share` was asked.
/// The gate's secrets (bcrypt hash of the password, the share token's hash, the session key) are made here
/// and kept only in the root-only route file; the token itself is returned once and never stored.
pub fn publish_route(
    cfg: &Config,
    dir: &InstanceDir,
    plan: &Plan,
    password: Option<&str>,
) -> Result<Option<String>> {
    let Some(http) = &plan.http else {
        return Ok(None);
    };
    let mut gate = GateConfig {
        allow: plan.gate.allow.clone(),
        ..GateConfig::default()
    };
    if let Some(user) = &plan.gate.basic_auth_user {
        let password = password.context("--basic-auth needs a password")?;
        gate.basic_auth = Some(BasicAuth::new(user.clone(), password)?);
    }
    let mut share = None;
    if let Some(valid) = plan.gate.share {
        let session = std::time::Duration::from_secs(plan.ttl.as_secs());
        let (link, token) = ShareLink::generate(valid.as_std(), session)?;
        gate.share = Some(link);
        share = Some(share_url(&http.url, &token));
    }
    let file = state::route_path(cfg, &http.host);
    let mut j = Journal::open(&dir.journal_path())?;
    j.record(&Resource::Route {
        file: file.clone(),
        host: http.host.clone(),
    })?;
    fault::point("journaled route");
    state::create_private_dir_all(&cfg.routes_dir())?;
    state::write_json(
        &file,
        &RouteFile {
            host: http.host.clone(),
            instance: plan.name.to_string(),
            netns_path: plan.netns_path.clone(),
            port: http.port,
            gate: (!gate.is_open()).then_some(gate),
            masquerade: plan.masquerade.as_ref().map(|m| {
                // The public origin is the route's URL: scheme and host[:port].
                let (scheme, rest) = http.url.split_once("://").unwrap_or(("http", &http.url));
                MasqueradeRoute {
                    original_host: m.host.clone(),
                    original_https: m.https,
                    public_host: rest.trim_end_matches('/').to_string(),
                    public_https: scheme == "https",
                    bodies: m.bodies,
                }
            }),
        },
    )?;
    fault::point("created route");
    publish_on_host_proxy(cfg, &mut j, plan, http)?;
    Ok(share)
}

/// With `[proxy] driver` / `--proxy` nginx or caddy: publish the hostname on the host's proxy too (journaled
/// with the driver's handle before anything is written).
fn publish_on_host_proxy(
    cfg: &Config,
    j: &mut Journal,
    plan: &Plan,
    http: &wayback_core::plan::HttpRoute,
) -> Result<()> {
    let Some(driver) = Driver::select(plan.driver, &cfg.proxy.nginx, &cfg.proxy.caddy) else {
        return Ok(()); // the built-in proxy: the route file is all
    };
    let route = DriverRoute {
        instance: plan.name.to_string(),
        host: http.host.clone(),
        upstream: driver.via().upstream(
            cfg.proxy.listen,
            std::net::SocketAddr::from((plan.block.peer, http.port)),
        ),
        tls: None,
    };
    let handle = driver.handle(&route)?;
    j.record(&Resource::HostProxy {
        host: http.host.clone(),
        handle,
    })?;
    fault::point("journaled host proxy");
    driver.publish(&route)?;
    fault::point("created host proxy");
    Ok(())
}
