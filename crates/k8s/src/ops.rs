//! What `wayback k8s up|ls|down|extend` do through the API, once their input is checked: create a
//! `Resurrection` and follow its status, list, extend, delete and wait until everything is gone.
//! (The controller does the rest; these only touch `Resurrection` objects.)

use std::time::Duration as StdDuration;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};
use serde_json::json;
use wayback_core::Duration;

use crate::cluster::{is_404, is_409, ClusterError};
use crate::crd::{Phase, Resurrection};

fn api_err(what: String, ns: &str) -> impl FnOnce(kube::Error) -> ClusterError + '_ {
    move |e| {
        if is_404(&e) {
            ClusterError::NotFound {
                what,
                ns: ns.into(),
            }
        } else {
            ClusterError::Api {
                what,
                ns: ns.into(),
                source: e,
            }
        }
    }
}

/// Every Resurrection in `ns`, or in all namespaces.
pub async fn list(client: &Client, ns: Option<&str>) -> Result<Vec<Resurrection>, ClusterError> {
    let api: Api<Resurrection> = match ns {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    let what = "Resurrections (is the CRD installed? wayback k8s manifests | kubectl apply -f -)";
    let mut items = api
        .list(&ListParams::default())
        .await
        .map_err(api_err(what.into(), ns.unwrap_or("(all)")))?
        .items;
    items.sort_by_key(|r| (r.namespace(), r.name_any()));
    Ok(items)
}

/// Create `res`; a name already taken is an error naming it.
pub async fn create(client: &Client, res: &Resurrection) -> Result<Resurrection, ClusterError> {
    let ns = res.namespace().unwrap_or_default();
    let api: Api<Resurrection> = Api::namespaced(client.clone(), &ns);
    let pp = PostParams {
        dry_run: false,
        field_manager: Some(crate::FIELD_MANAGER.into()),
    };
    api.create(&pp, res).await.map_err(|e| {
        let what = format!("Resurrection {}", res.name_any());
        if is_409(&e) {
            ClusterError::Unsupported {
                what,
                ns: ns.clone(),
                why: "the name is taken: pick another with --name".into(),
            }
        } else {
            api_err(what, &ns)(e)
        }
    })
}

/// Move the expiry of `name` `by` later (from its current expiry, or from now when that has passed).
pub async fn extend(
    client: &Client,
    ns: &str,
    name: &str,
    by: Duration,
    now: Timestamp,
) -> Result<Timestamp, ClusterError> {
    let api: Api<Resurrection> = Api::namespaced(client.clone(), ns);
    let what = format!("Resurrection {name}");
    let res = api.get(name).await.map_err(api_err(what.clone(), ns))?;
    let base = res.expiry().unwrap_or(now).max(now);
    let new = base
        .checked_add(by.as_std())
        .map_err(|_| ClusterError::Unsupported {
            what: what.clone(),
            ns: ns.into(),
            why: format!("{by} is too long"),
        })?;
    let patch = json!({"spec": {"expiresAt": Time(new)}});
    api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map_err(api_err(what, ns))?;
    Ok(new)
}

/// Ask for `name` to go (the controller's finalizer removes its objects first). `false`: already gone.
pub async fn delete(client: &Client, ns: &str, name: &str) -> Result<bool, ClusterError> {
    let api: Api<Resurrection> = Api::namespaced(client.clone(), ns);
    match api.delete(name, &DeleteParams::default()).await {
        Ok(_) => Ok(true),
        Err(e) if is_404(&e) => Ok(false),
        Err(e) => Err(api_err(format!("Resurrection {name}"), ns)(e)),
    }
}

/// Read `name` (`None` once it is gone).
pub async fn get(
    client: &Client,
    ns: &str,
    name: &str,
) -> Result<Option<Resurrection>, ClusterError> {
    let api: Api<Resurrection> = Api::namespaced(client.clone(), ns);
    api.get_opt(name)
        .await
        .map_err(api_err(format!("Resurrection {name}"), ns))
}

/// Poll `name` every `every` until `done` says so or `timeout` passes; `on_change` sees each new
/// (phase, message). Returns the last state read (`None`: gone).
pub async fn follow(
    client: &Client,
    ns: &str,
    name: &str,
    every: StdDuration,
    timeout: StdDuration,
    done: impl Fn(Option<&Resurrection>) -> bool,
    mut on_change: impl FnMut(Option<Phase>, Option<&str>),
) -> Result<(Option<Resurrection>, bool), ClusterError> {
    let start = tokio::time::Instant::now();
    let mut last: Option<(Option<Phase>, Option<String>)> = None;
    loop {
        let r = get(client, ns, name).await?;
        let st = r.as_ref().and_then(|r| r.status.as_ref());
        let now = (st.and_then(|s| s.phase), st.and_then(|s| s.message.clone()));
        if last.as_ref() != Some(&now) {
            on_change(now.0, now.1.as_deref());
            last = Some(now);
        }
        if done(r.as_ref()) {
            return Ok((r, true));
        }
        if start.elapsed() >= timeout {
            return Ok((r, false));
        }
        tokio::time::sleep(every).await;
    }
}

/// One line of `wayback k8s ls`.
pub fn row(r: &Resurrection, now: Timestamp) -> [String; 6] {
    let st = r.status.as_ref();
    let left = match r.deadline() {
        Some((t, _)) if t > now => {
            Duration(t.duration_since(now).as_secs().max(0) as u64).to_string()
        }
        Some(_) => "due".into(),
        None => "-".into(),
    };
    [
        r.namespace().unwrap_or_default(),
        r.name_any(),
        r.spec.workload.to_string(),
        st.and_then(|s| s.phase)
            .map_or("New".into(), |p| p.to_string()),
        left,
        st.and_then(|s| s.url.clone())
            .or_else(|| r.spec.host.clone())
            .unwrap_or_else(|| "-".into()),
    ]
}
