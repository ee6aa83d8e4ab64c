//! Apply a plan with the journal: every resource is recorded in the instance's journal *before* it is
//! created (clone directory, clones, netns, quarantine, veth, cgroups, container and its PID, route file,
//! host-proxy route), so `teardown` can replay it backwards after `down`, expiry, a failed `up` or a crash
//! at any point. The order is [`crate::steps`]'s; the objects are made by a [`Host`] ([`SystemHost`]: the
//! module that owns each kind of object). Also publishes the route once the instance answers.

use std::process::Child;

use anyhow::{Context, Result};
use wayback_core::journal::{Journal, Resource};
use wayback_core::{Config, Plan};
use wayback_proxy::{share_url, BasicAuth, GateConfig, ShareLink};

use crate::container;
use crate::drivers::{Driver, DriverRoute};
use crate::fault;
use crate::host::{Host, SystemHost};
use crate::progress::Progress;
use crate::state::{self, InstanceDir, MasqueradeRoute, RouteFile};
use crate::steps::{steps, Step};

/// Create the clone, the network and the container on this machine, journaling each first.
pub async fn apply(dir: &InstanceDir, plan: &Plan, progress: &Progress) -> Result<Child> {
    apply_with(&SystemHost, dir, plan, progress).await
}

/// Perform `plan`'s [`steps`] through `host`: each journal entry is written (and synced) before the step
/// that creates its object, and the container's process is journaled as soon as it has a PID. On an error
/// the caller tears down what the journal names.
pub async fn apply_with<H: Host>(
    host: &H,
    dir: &InstanceDir,
    plan: &Plan,
    progress: &Progress,
) -> Result<H::Child> {
    let mut j = Journal::open(&dir.journal_path())?;
    state::write_json(&dir.init_spec_path(), &plan.init)?;
    let mut shown: Option<crate::progress::Step<'_>> = None;
    let mut child = None;
    for step in steps(plan, &dir.path, &container::cgroups(plan))? {
        match step {
            Step::Begin(label) => {
                // The previous step says it is done before the next one starts.
                if let Some(s) = shown.take() {
                    s.done();
                }
                shown = Some(progress.step(label));
            }
            Step::Journal(res) => {
                j.record(&res)?;
                fault::point(&format!("journaled {}", res.kind()));
            }
            Step::Create(c) => {
                if let Some(started) = host.create(dir, plan, &c, progress).await? {
                    child = Some(started);
                }
                if c.makes_object() {
                    fault::point(&format!("created {}", c.kind()));
                }
            }
        }
    }
    let child = child.context("internal: the steps of up started no container")?;
    let (pid, start_time) = host.process(&child);
    note_process(&mut j, pid, start_time, "systemd-nspawn")?;
    if let Some(s) = shown {
        s.done();
    }
    Ok(child)
}

/// Note a started process in the journal, so teardown stops exactly it (by PID and start time).
pub fn note_process(j: &mut Journal, pid: i32, start_time: u64, what: &str) -> Result<()> {
    j.record(&Resource::Process {
        pid,
        start_time,
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
