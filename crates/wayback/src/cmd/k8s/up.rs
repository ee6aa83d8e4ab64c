//! `wayback k8s up`: input → facts (from the cluster, or a file with `--from`) → plan (refusing bad input
//! with nothing made) → the `Resurrection`, its snapshots pinned → follow its status until ready.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration as StdDuration;

use anyhow::Result;
use clap::Args;
use wayback_core::{Config, Duration};
use wayback_k8s::crd::{
    EnvOverride, IngressFrom, Phase, Resurrection, ResurrectionSpec, SnapshotSource, TlsIssuer,
    WorkloadRef,
};
use wayback_k8s::jiff::Timestamp;
use wayback_k8s::k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use wayback_k8s::kube::Client;
use wayback_k8s::plan::{self, Facts, Plan};
use wayback_k8s::{choose, cluster, ops, validate, yaml};

use super::{classify, client};
use wayback_engine::error::BadInput;
use wayback_engine::progress::Progress;

fn bad<E: std::fmt::Display>(e: E) -> anyhow::Error {
    BadInput::new(e.to_string()).into()
}

#[derive(Debug, Args)]
pub struct UpArgs {
    /// The live workload: NAME (a Deployment, else a StatefulSet), deployment/NAME or statefulset/NAME
    pub workload: String,
    /// Namespace [default: the kubeconfig's]
    #[arg(short, long, value_parser = |s: &str| validate::namespace(s))]
    pub namespace: Option<String>,
    /// The Resurrection's name (also its Deployment, Service, Ingress and NetworkPolicy) [default: <workload>-wb-<n>]
    #[arg(long, value_parser = |s: &str| validate::name(s))]
    pub name: Option<String>,
    /// For each PVC, the newest ready VolumeSnapshot taken at or before TIME (2026-11-14T10:00 [UTC unless a
    /// zone follows], 2026-11-14 [its end], or an age: 2w, 36h) [default: now, the newest]
    #[arg(long, value_name = "TIME")]
    pub at: Option<String>,
    /// Restore PVC from this VolumeSnapshot (repeatable; the other PVCs follow --at)
    #[arg(long, value_name = "PVC=VOLUMESNAPSHOT", value_parser = |s: &str| validate::snapshot_source(s))]
    pub snapshot: Vec<SnapshotSource>,
    /// Hostname of the Ingress (without it, no Ingress: use kubectl port-forward svc/NAME)
    #[arg(long, value_name = "HOSTNAME", value_parser = |s: &str| validate::hostname(s))]
    pub host: Option<String>,
    /// The container port the Ingress serves, a number or a port name [default: the only TCP port, or `http`]
    #[arg(long)]
    pub port: Option<String>,
    /// Remove everything after this long, e.g. 90m, 24h, 2d [default: config default_ttl]
    #[arg(long)]
    pub ttl: Option<Duration>,
    /// Also remove it after this long without reported activity (status.lastActivity; see docs/kubernetes.md)
    #[arg(long, value_name = "DURATION")]
    pub idle: Option<Duration>,
    /// Set an environment variable in every container (repeatable), e.g. an app's maintenance switch
    #[arg(long, value_name = "KEY=VALUE", value_parser = |s: &str| validate::env(s))]
    pub env: Vec<EnvOverride>,
    /// Allow DNS lookups (to kube-system's kube-dns pods); all other egress stays denied
    #[arg(long)]
    pub allow_dns: bool,
    /// The Ingress's ingressClassName
    #[arg(long, value_name = "CLASS")]
    pub ingress_class: Option<String>,
    /// TLS from cert-manager: NAME or clusterissuer/NAME (a ClusterIssuer), issuer/NAME (an Issuer)
    #[arg(long, value_name = "ISSUER", value_parser = |s: &str| validate::tls_issuer(s))]
    pub tls_issuer: Option<TlsIssuer>,
    /// The namespace of the ingress controller, whose pods alone may connect to the copy
    #[arg(long, value_name = "NS", default_value = "ingress-nginx", value_parser = |s: &str| validate::namespace(s))]
    pub ingress_namespace: String,
    /// Only the ingress controller pods with this label (repeatable), e.g. app.kubernetes.io/name=traefik
    #[arg(long, value_name = "KEY=VALUE", value_parser = |s: &str| validate::label(s))]
    pub ingress_pod_label: Vec<(String, String)>,
    /// Refuse (exit 2) when the chosen snapshots are further apart than max_skew (default 15m)
    #[arg(long)]
    pub strict_consistency: bool,
    /// Print every object as YAML and create nothing
    #[arg(long)]
    pub dry_run: bool,
    /// With --dry-run: read the workload, PVCs and VolumeSnapshots from this YAML file instead of the cluster
    #[arg(long, value_name = "FILE", requires = "dry_run")]
    pub from: Option<PathBuf>,
    /// Return once the Resurrection is created, without waiting for it to be ready
    #[arg(long)]
    pub no_wait: bool,
    /// How long to wait for a ready pod
    #[arg(long, value_name = "DURATION", default_value = "10m")]
    pub timeout: Duration,
    /// Print the ready line as JSON
    #[arg(long)]
    pub json: bool,
}

/// Where the facts come from.
enum Source {
    Cluster(Client),
    File(PathBuf),
}

async fn facts(src: &Source, ns: &str, workload: &str) -> Result<(Facts, Vec<String>)> {
    let (kind, name) = validate::workload(workload).map_err(bad)?;
    match src {
        Source::File(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| bad(format!("--from {}: {e}", path.display())))?;
            let objects =
                yaml::parse_strict(&text).map_err(|e| bad(format!("{}: {e}", path.display())))?;
            Ok((
                Facts::from_objects(kind, &name, objects).map_err(bad)?,
                Vec::new(),
            ))
        }
        Source::Cluster(c) => {
            let r = match kind {
                Some(kind) => WorkloadRef { kind, name },
                None => cluster::find_workload(c, ns, &name)
                    .await
                    .map_err(classify)?,
            };
            let facts = cluster::read_facts(c, ns, &r).await.map_err(classify)?;
            let taken = ops::list(c, Some(ns)).await.map_err(classify)?;
            Ok((
                facts,
                taken
                    .iter()
                    .map(wayback_k8s::kube::ResourceExt::name_any)
                    .collect(),
            ))
        }
    }
}

fn spec(cfg: &Config, a: &UpArgs, r: WorkloadRef, at: Timestamp) -> ResurrectionSpec {
    ResurrectionSpec {
        workload: r,
        at: Some(Time(at)),
        snapshots: a.snapshot.clone(),
        host: a.host.clone(),
        port: a.port.clone(),
        ttl: a.ttl.unwrap_or(cfg.default_ttl),
        expires_at: None,
        idle: a.idle,
        env: a.env.clone(),
        allow_dns: a.allow_dns,
        ingress_class: a.ingress_class.clone(),
        tls_issuer: a.tls_issuer.clone(),
        ingress_from: IngressFrom {
            namespace: a.ingress_namespace.clone(),
            pod_labels: a.ingress_pod_label.iter().cloned().collect(),
        },
        max_skew: a.strict_consistency.then_some(cfg.max_skew),
    }
}

fn report(progress: &Progress, cfg: &Config, plan: &Plan) {
    for c in &plan.choices {
        let how = if c.explicit {
            "named"
        } else {
            "newest ready at or before --at"
        };
        progress.note(format!(
            "PVC {} <- VolumeSnapshot {} (taken {}, {how})",
            c.claim,
            c.snapshot,
            choose::fmt_time(c.taken_at)
        ));
    }
    if let Some(sk) = plan.skew {
        progress.note(format!(
            "skew {} between the oldest and the newest snapshot",
            Duration(sk as u64)
        ));
        if sk as u64 > cfg.max_skew.as_secs() {
            eprintln!("wayback: warning: the chosen snapshots are {} apart (more than max_skew {}): data from different moments may not fit together; --strict-consistency refuses this", Duration(sk as u64), cfg.max_skew);
        }
    }
    for n in &plan.notes {
        progress.note(n);
    }
}

pub async fn run(cfg: &Config, a: UpArgs, progress: Progress) -> Result<ExitCode> {
    let now = Timestamp::now();
    let at = match &a.at {
        Some(t) => choose::parse_time(t, now).map_err(bad)?,
        None => now,
    };
    let src = match &a.from {
        Some(p) => Source::File(p.clone()),
        None => Source::Cluster(client().await?),
    };
    let ns = match (&a.namespace, &src) {
        (Some(ns), _) => ns.clone(),
        (None, Source::Cluster(c)) => c.default_namespace().to_string(),
        (None, Source::File(_)) => "default".into(),
    };
    let (facts, taken) = facts(&src, &ns, &a.workload).await?;
    let name = a
        .name
        .clone()
        .unwrap_or_else(|| validate::default_name(facts.workload.name(), &taken));
    let mut res = Resurrection::new(&name, spec(cfg, &a, facts.workload.reference(), at));
    res.metadata.namespace = Some(ns.clone());
    let plan = plan::build(&res, &facts, now).map_err(bad)?;
    report(&progress, cfg, &plan);
    // Pin what was chosen, and when it ends.
    res.spec.snapshots = plan
        .choices
        .iter()
        .map(|c| SnapshotSource {
            claim: c.claim.clone(),
            volume_snapshot: c.snapshot.clone(),
        })
        .collect();
    res.spec.expires_at = Some(Time(now.checked_add(res.spec.ttl.as_std()).map_err(bad)?));
    if a.dry_run {
        let mut objects = vec![yaml::Object::Resurrection(Box::new(res))];
        objects.extend(plan.objects);
        print!("{}", yaml::to_yaml(&objects)?);
        return Ok(ExitCode::SUCCESS);
    }
    let Source::Cluster(client) = src else {
        unreachable!("--from requires --dry-run")
    };
    ops::create(&client, &res).await.map_err(classify)?;
    progress.note(format!("created Resurrection {name} in namespace {ns}"));
    if a.no_wait {
        return Ok(ExitCode::SUCCESS);
    }
    follow(&client, &ns, &name, &a, &progress).await
}

async fn follow(
    client: &Client,
    ns: &str,
    name: &str,
    a: &UpArgs,
    progress: &Progress,
) -> Result<ExitCode> {
    let done = |r: Option<&Resurrection>| {
        let phase = r.and_then(|r| r.status.as_ref()?.phase);
        r.is_none()
            || matches!(
                phase,
                Some(Phase::Ready | Phase::Failed | Phase::Terminating)
            )
    };
    let (last, _) = ops::follow(
        client,
        ns,
        name,
        StdDuration::from_secs(2),
        a.timeout.as_std(),
        done,
        |p, m| {
            if let Some(p) = p {
                progress.note(format!(
                    "{name}: {p}{}",
                    m.map(|m| format!(": {m}")).unwrap_or_default()
                ));
            }
        },
    )
    .await
    .map_err(classify)?;
    let Some(res) = last else {
        anyhow::bail!("{name} was deleted while starting");
    };
    let st = res.status.clone().unwrap_or_default();
    match st.phase {
        Some(Phase::Ready) => {
            let url = st.url.clone().unwrap_or_else(|| format!("- (kubectl -n {ns} port-forward svc/{name} PORT)"));
            if a.json {
                println!("{}", serde_json::json!({"name": name, "namespace": ns, "url": st.url, "status": st}));
            } else {
                println!("ready {name} {url}");
            }
            Ok(ExitCode::SUCCESS)
        }
        None => anyhow::bail!(
            "no controller has picked up {name} in {}: is it running? (wayback k8s manifests | kubectl apply -f -). The Resurrection stays; remove it with `wayback k8s down {name} -n {ns}`",
            a.timeout
        ),
        Some(p) => anyhow::bail!(
            "{name} is {p} after {}: {}. It stays until its TTL or `wayback k8s down {name} -n {ns}`",
            a.timeout,
            st.message.unwrap_or_default()
        ),
    }
}
