//! Command-line values checked into typed forms before anything is read or made: resurrection names,
//! hostnames, `KIND/NAME` workloads, `PVC=VOLUMESNAPSHOT`, `KEY=VALUE`, cert-manager issuers.

use crate::crd::{EnvOverride, IssuerKind, SnapshotSource, TlsIssuer, WorkloadKind};

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("invalid {what} {input:?}: {why}")]
pub struct InputError {
    pub what: &'static str,
    pub input: String,
    pub why: String,
}

fn err(what: &'static str, input: &str, why: impl Into<String>) -> InputError {
    InputError {
        what,
        input: input.into(),
        why: why.into(),
    }
}

/// One DNS label: lowercase letters, digits and `-`, starting with a letter (`first_digit` allows a
/// digit first, as RFC 1123 does), not ending with `-`, at most 63 characters.
fn dns_label(s: &str, first_digit: bool) -> Result<(), String> {
    let b = s.as_bytes();
    if b.is_empty() || b.len() > 63 {
        return Err("must be 1 to 63 characters".into());
    }
    if !b
        .iter()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
    {
        return Err("only lowercase letters, digits and '-' are allowed".into());
    }
    if !(b[0].is_ascii_lowercase() || (first_digit && b[0].is_ascii_digit())) {
        return Err("must start with a letter".into());
    }
    if b[b.len() - 1] == b'-' {
        return Err("must not end with '-'".into());
    }
    Ok(())
}

/// A resurrection's name: it names its Service, so a DNS-1035 label.
pub fn name(s: &str) -> Result<String, InputError> {
    dns_label(s, false).map_err(|why| err("name", s, why))?;
    Ok(s.into())
}

/// A namespace: an RFC 1123 label (a digit may come first).
pub fn namespace(s: &str) -> Result<String, InputError> {
    dns_label(s, true).map_err(|why| err("namespace", s, why))?;
    Ok(s.into())
}

/// `<workload>-wb-<n>` with the smallest `n` not in `taken`, shortened to fit 63 characters.
pub fn default_name(workload: &str, taken: &[String]) -> String {
    (1u32..)
        .map(|n| {
            let suffix = format!("-wb-{n}");
            let head: String = workload
                .chars()
                .filter(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-')
                .take(63 - suffix.len())
                .collect();
            let head = head.trim_start_matches(|c: char| !c.is_ascii_lowercase());
            let head = head.trim_end_matches('-');
            let head = if head.is_empty() { "wayback" } else { head };
            format!("{head}{suffix}")
        })
        .find(|n| !taken.contains(n))
        .expect("some n is free")
}

/// An Ingress host: a lowercase DNS name with at least two labels (no wildcard, no IP address).
pub fn hostname(s: &str) -> Result<String, InputError> {
    let e = |why: &str| err("hostname", s, why);
    if s.len() > 253 {
        return Err(e("longer than 253 characters"));
    }
    let labels: Vec<&str> = s.split('.').collect();
    if labels.len() < 2 {
        return Err(e("needs a domain, e.g. old-shop.example.org"));
    }
    for l in &labels {
        dns_label(l, true).map_err(|why| err("hostname", s, format!("label {l:?} {why}")))?;
    }
    if labels.iter().all(|l| l.bytes().all(|b| b.is_ascii_digit())) {
        return Err(e("an IP address cannot be an Ingress host"));
    }
    Ok(s.into())
}

/// `NAME`, `deployment/NAME`, `deploy/NAME`, `statefulset/NAME`, `sts/NAME` (also `….apps/NAME`).
pub fn workload(s: &str) -> Result<(Option<WorkloadKind>, String), InputError> {
    let (kind, n) = match s.split_once('/') {
        None => (None, s),
        Some((k, n)) => {
            let k = k.strip_suffix(".apps").unwrap_or(k).to_ascii_lowercase();
            let kind = match k.as_str() {
                "deployment" | "deployments" | "deploy" => WorkloadKind::Deployment,
                "statefulset" | "statefulsets" | "sts" => WorkloadKind::StatefulSet,
                _ => {
                    return Err(err(
                        "workload",
                        s,
                        "the kind must be deployment or statefulset",
                    ))
                }
            };
            (Some(kind), n)
        }
    };
    if n.is_empty() || n.len() > 253 || n.contains('/') {
        return Err(err(
            "workload",
            s,
            "expected NAME or KIND/NAME, e.g. deployment/shop",
        ));
    }
    Ok((kind, n.into()))
}

/// `PVC=VOLUMESNAPSHOT`.
pub fn snapshot_source(s: &str) -> Result<SnapshotSource, InputError> {
    match s.split_once('=') {
        Some((c, v)) if !c.is_empty() && !v.is_empty() => Ok(SnapshotSource {
            claim: c.into(),
            volume_snapshot: v.into(),
        }),
        _ => Err(err(
            "--snapshot",
            s,
            "expected PVC=VOLUMESNAPSHOT, e.g. data-db-0=db-2026-11-14",
        )),
    }
}

/// `KEY=VALUE` (the key must not be empty or contain `=`; the value may be empty).
pub fn env(s: &str) -> Result<EnvOverride, InputError> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok(EnvOverride {
            name: k.into(),
            value: v.into(),
        }),
        _ => Err(err("--env", s, "expected KEY=VALUE")),
    }
}

/// `KEY=VALUE` of a label selector.
pub fn label(s: &str) -> Result<(String, String), InputError> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.into(), v.into())),
        _ => Err(err(
            "label",
            s,
            "expected KEY=VALUE, e.g. app.kubernetes.io/name=traefik",
        )),
    }
}

/// `NAME` (a ClusterIssuer), `clusterissuer/NAME` or `issuer/NAME`.
pub fn tls_issuer(s: &str) -> Result<TlsIssuer, InputError> {
    let (kind, n) = match s.split_once('/') {
        None => (IssuerKind::ClusterIssuer, s),
        Some((k, n)) => match k.to_ascii_lowercase().as_str() {
            "clusterissuer" => (IssuerKind::ClusterIssuer, n),
            "issuer" => (IssuerKind::Issuer, n),
            _ => {
                return Err(err(
                    "--tls-issuer",
                    s,
                    "expected NAME, clusterissuer/NAME or issuer/NAME",
                ))
            }
        },
    };
    if n.is_empty() {
        return Err(err("--tls-issuer", s, "the issuer's name is empty"));
    }
    Ok(TlsIssuer {
        kind,
        name: n.into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_dns_1035_labels() {
        assert_eq!(name("shop-wb-1").unwrap(), "shop-wb-1");
        for bad in ["", "Shop", "1shop", "shop-", "shop_1", &"a".repeat(64)] {
            assert!(name(bad).is_err(), "{bad} accepted");
        }
        assert_eq!(default_name("shop", &[]), "shop-wb-1");
        assert_eq!(default_name("shop", &["shop-wb-1".into()]), "shop-wb-2");
        let long = default_name(&"x".repeat(80), &[]);
        assert_eq!(long.len(), 63);
        assert!(name(&long).is_ok());
        assert_eq!(default_name("9lives.v2", &[]), "livesv2-wb-1");
    }

    #[test]
    fn hostnames() {
        assert!(hostname("old-shop.example.org").is_ok());
        assert!(hostname("1.example.org").is_ok());
        for bad in [
            "shop",
            "Old.example.org",
            "*.example.org",
            "10.0.0.1",
            "a..b",
            "-a.example.org",
        ] {
            assert!(hostname(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn workloads_snapshots_env_issuers() {
        assert_eq!(workload("shop").unwrap(), (None, "shop".into()));
        assert_eq!(
            workload("deploy/shop").unwrap(),
            (Some(WorkloadKind::Deployment), "shop".into())
        );
        assert_eq!(
            workload("statefulset.apps/db").unwrap(),
            (Some(WorkloadKind::StatefulSet), "db".into())
        );
        assert!(workload("daemonset/x").is_err());
        assert!(workload("deploy/").is_err());
        assert_eq!(
            snapshot_source("data=snap-1").unwrap().volume_snapshot,
            "snap-1"
        );
        assert!(snapshot_source("data=").is_err());
        assert_eq!(env("A=").unwrap().value, "");
        assert_eq!(env("A=b=c").unwrap().value, "b=c");
        assert!(env("=x").is_err());
        assert_eq!(
            tls_issuer("letsencrypt").unwrap().kind,
            IssuerKind::ClusterIssuer
        );
        assert_eq!(tls_issuer("issuer/ca").unwrap().kind, IssuerKind::Issuer);
        assert!(tls_issuer("foo/bar").is_err());
    }
}
