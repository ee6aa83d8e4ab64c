//! `wayback k8s`: the same resurrection on Kubernetes, from VolumeSnapshots (crate `wayback-k8s`).
//! `up` checks everything it can before anything is made (exit 2, nothing created), then creates one
//! `Resurrection` and follows it while the controller makes the objects; `ls`, `down`, `extend` work on
//! those objects; `controller` runs the controller; `manifests` prints what the cluster needs.

mod up;

use std::process::ExitCode;
use std::time::Duration as StdDuration;

use anyhow::Result;
use clap::{Args, Subcommand};
use wayback_core::{Config, Duration};
use wayback_k8s::jiff::Timestamp;
use wayback_k8s::kube::Client;
use wayback_k8s::{cluster::ClusterError, manifests, ops, validate, yaml};

use wayback_engine::error::BadInput;
use wayback_engine::progress::Progress;

pub use up::UpArgs;

const AFTER_HELP: &str = "\
Examples:
  wayback k8s up shop -n shop --at 2026-11-14T10:00 --host old-shop.example.org --ttl 4h
  wayback k8s up statefulset/db --snapshot data-db-0=db-20261114 --dry-run
  wayback k8s ls -A
  wayback k8s extend shop-wb-1 12h
  wayback k8s down shop-wb-1
  wayback k8s manifests --image registry.example.org/wayback:0.1.0 | kubectl apply -f -

Needs a cluster with the CSI snapshot CRDs and the controller running (see docs/kubernetes.md).
Exit status: 0 success, 1 failure, 2 bad input (nothing was created).";

#[derive(Debug, Args)]
#[command(after_help = AFTER_HELP)]
pub struct K8sArgs {
    #[command(subcommand)]
    pub cmd: K8sCmd,
}

#[derive(Debug, Subcommand)]
pub enum K8sCmd {
    /// Bring a Deployment or StatefulSet back from VolumeSnapshots beside the live one, quarantined, on
    /// its own hostname, for a while
    Up(Box<UpArgs>),
    /// List resurrections
    Ls(LsArgs),
    /// Remove resurrections and everything they made, and wait until it is gone
    Down(DownArgs),
    /// Give a resurrection more time: its expiry moves DURATION later
    Extend(ExtendArgs),
    /// Run the controller (in the cluster: the Deployment from `manifests`)
    Controller,
    /// Print the CRD, the controller's Deployment and its RBAC as YAML (for `kubectl apply -f -`)
    Manifests(ManifestsArgs),
}

#[derive(Debug, Args)]
pub struct LsArgs {
    /// Namespace [default: the kubeconfig's]
    #[arg(short, long, conflicts_with = "all_namespaces", value_parser = |s: &str| validate::namespace(s))]
    pub namespace: Option<String>,
    /// Every namespace
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct DownArgs {
    #[arg(required = true, value_parser = |s: &str| validate::name(s))]
    pub names: Vec<String>,
    #[arg(short, long, value_parser = |s: &str| validate::namespace(s))]
    pub namespace: Option<String>,
    /// Return once deletion is requested, without waiting for the objects to go
    #[arg(long)]
    pub no_wait: bool,
}

#[derive(Debug, Args)]
pub struct ExtendArgs {
    #[arg(value_parser = |s: &str| validate::name(s))]
    pub name: String,
    pub duration: Duration,
    #[arg(short, long, value_parser = |s: &str| validate::namespace(s))]
    pub namespace: Option<String>,
}

#[derive(Debug, Args)]
pub struct ManifestsArgs {
    /// The namespace the controller runs in
    #[arg(long, default_value = "wayback-system")]
    pub namespace: String,
    /// The controller's image (a build of this binary; none is published)
    #[arg(long, default_value = concat!("wayback:", env!("CARGO_PKG_VERSION")))]
    pub image: String,
}

pub async fn run(cfg: &Config, args: K8sArgs, progress: Progress) -> Result<ExitCode> {
    match args.cmd {
        K8sCmd::Up(a) => up::run(cfg, *a, progress).await,
        K8sCmd::Ls(a) => ls(a).await,
        K8sCmd::Down(a) => down(a, progress).await,
        K8sCmd::Extend(a) => extend(a).await,
        K8sCmd::Controller => {
            let client = client().await?;
            wayback_k8s::controller::run(client).await?;
            Ok(ExitCode::SUCCESS)
        }
        K8sCmd::Manifests(a) => {
            let opts = manifests::Options {
                namespace: validate::namespace(&a.namespace)
                    .map_err(|e| BadInput::new(e.to_string()))?,
                image: a.image,
            };
            print!("{}", yaml::to_yaml(&manifests::all(&opts))?);
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// A client from the kubeconfig (or the pod's service account in a cluster).
pub async fn client() -> Result<Client> {
    Client::try_default().await.map_err(|e| {
        anyhow::anyhow!("cannot reach a Kubernetes API server (KUBECONFIG, ~/.kube/config, or a pod's service account): {e}")
    })
}

/// User errors of the cluster layer (a missing workload, a taken name) are bad input.
pub fn classify(e: ClusterError) -> anyhow::Error {
    match e {
        ClusterError::NotFound { .. } | ClusterError::Unsupported { .. } => {
            BadInput::new(e.to_string()).into()
        }
        e @ ClusterError::Api { .. } => e.into(),
    }
}

fn namespace(client: &Client, ns: Option<String>) -> String {
    ns.unwrap_or_else(|| client.default_namespace().to_string())
}

async fn ls(a: LsArgs) -> Result<ExitCode> {
    let client = client().await?;
    let ns = (!a.all_namespaces).then(|| namespace(&client, a.namespace));
    let items = ops::list(&client, ns.as_deref()).await.map_err(classify)?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&items)?);
        return Ok(ExitCode::SUCCESS);
    }
    let now = Timestamp::now();
    let mut rows =
        vec![["NAMESPACE", "NAME", "WORKLOAD", "PHASE", "LEFT", "URL"].map(String::from)];
    rows.extend(items.iter().map(|r| ops::row(r, now)));
    let widths: Vec<usize> = (0..6)
        .map(|i| rows.iter().map(|r| r[i].len()).max().unwrap_or(0))
        .collect();
    for r in &rows {
        let line: Vec<String> = r
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        println!("{}", line.join("  ").trim_end());
    }
    Ok(ExitCode::SUCCESS)
}

async fn down(a: DownArgs, progress: Progress) -> Result<ExitCode> {
    let client = client().await?;
    let ns = namespace(&client, a.namespace);
    let mut failed = false;
    for name in &a.names {
        if !ops::delete(&client, &ns, name).await.map_err(classify)? {
            eprintln!("wayback: {name}: no such resurrection in namespace {ns}");
            failed = true;
            continue;
        }
        if a.no_wait {
            progress.note(format!("{name}: deletion requested"));
            continue;
        }
        let step = progress.step(format!("removing {name}"));
        let (_, gone) = ops::follow(
            &client,
            &ns,
            name,
            StdDuration::from_secs(2),
            StdDuration::from_secs(600),
            |r| r.is_none(),
            |_, m| {
                if let Some(m) = m {
                    progress.note(format!("{name}: {m}"));
                }
            },
        )
        .await
        .map_err(classify)?;
        if gone {
            step.done();
        } else {
            eprintln!("wayback: {name} is still there after 10 minutes: is the controller running? (kubectl -n wayback-system logs deploy/wayback-controller)");
            failed = true;
        }
    }
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

async fn extend(a: ExtendArgs) -> Result<ExitCode> {
    let client = client().await?;
    let ns = namespace(&client, a.namespace);
    let now = Timestamp::now();
    let t = ops::extend(&client, &ns, &a.name, a.duration, now)
        .await
        .map_err(classify)?;
    let left = Duration(t.duration_since(now).as_secs().max(1) as u64);
    println!(
        "{} now expires in {left} ({})",
        a.name,
        wayback_k8s::choose::fmt_time(t)
    );
    Ok(ExitCode::SUCCESS)
}
