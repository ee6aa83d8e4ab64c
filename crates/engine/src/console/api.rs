//! The console's JSON API (`/api/…`, documented in docs/console.md), used by its pages. Each endpoint calls
//! what the matching CLI command calls; errors come back as `{"error", "bad_input"}` with 400 for bad input
//! (the CLI's exit 2) and 500 otherwise.

use std::sync::Arc;

use http::{header, Method, Response, StatusCode};
use serde_json::{json, Value};
use wayback_core::{Config, Duration, InstanceName};

use super::{blocking, error_response, jobs, Body, Console, Req};
use crate::control::{self, Reply, Request};
use crate::error::BadInput;
use crate::status::{self, Found};
use crate::verbs::{self, KeepRequest};

pub async fn route(console: &Console, r: &Req) -> Response<Body> {
    let segs: Vec<&str> = r.path.trim_start_matches("/api/").split('/').collect();
    let result = match (r.method.clone(), segs.as_slice()) {
        (Method::GET, ["instances"]) => Ok(instances(&console.cfg, console)),
        (Method::GET, ["instances", name]) => instance(&console.cfg, name),
        (Method::GET, ["instances", name, "log"]) => log(&console.cfg, name, r.query("lines")),
        (Method::POST, ["instances", name, verb]) => action(console, name, verb, r).await,
        (Method::GET, ["snapshots"]) => {
            let cfg = console.cfg.clone();
            blocking(move || super::pages::snapshot_series(&cfg)).await
        }
        (Method::GET, ["versions"]) => {
            let (cfg, hooks, path) = (console.cfg.clone(), console.hooks.clone(), need(r, "path"));
            blocking(move || hooks.versions(&cfg, &path?)).await
        }
        (Method::GET, ["find"]) => {
            let (cfg, hooks, p) = (
                console.cfg.clone(),
                console.hooks.clone(),
                need(r, "pattern"),
            );
            blocking(move || hooks.find(&cfg, &p?)).await
        }
        (Method::GET, ["diff"]) => {
            let (cfg, hooks) = (console.cfg.clone(), console.hooks.clone());
            let (path, from) = (need(r, "path"), need(r, "from"));
            blocking(move || hooks.file_diff(&cfg, &path?, &from?)).await
        }
        (Method::GET, ["show"]) => return show(console, r).await,
        (Method::POST, ["plan"]) => plan(console, r).await,
        (Method::POST, ["up"]) => up(console, r).await,
        (Method::GET, ["jobs", id]) => id
            .parse()
            .ok()
            .and_then(|id| console.jobs.get(id))
            .map(|j| serde_json::to_value(j).unwrap_or_default())
            .ok_or_else(|| BadInput::new(format!("no job {id}")).into()),
        _ => {
            return super::json(
                StatusCode::NOT_FOUND,
                &json!({"error": format!("no such endpoint: {} {}", r.method, r.path)}),
            )
        }
    };
    match result {
        Ok(v) => super::json(StatusCode::OK, &v),
        Err(e) => error_response(&e),
    }
}

fn need(r: &Req, key: &str) -> anyhow::Result<String> {
    r.query(key)
        .filter(|v| !v.is_empty())
        .map(str::to_string)
        .ok_or_else(|| BadInput::new(format!("give {key}=")).into())
}

fn name_of(name: &str) -> anyhow::Result<InstanceName> {
    name.parse::<InstanceName>()
        .map_err(|e| BadInput::new(format!("{e}")).into())
}

/// Every instance, with the share link the console made for it (kept in memory only).
pub fn instances(cfg: &Config, console: &Console) -> Value {
    let (all, warnings) = status::list(cfg);
    let list: Vec<Value> = all
        .into_iter()
        .map(|s| {
            let link = console.jobs.share_link(&s.name);
            let mut v = serde_json::to_value(s).unwrap_or_default();
            v["share_url"] = json!(link);
            v
        })
        .collect();
    json!({"instances": list, "warnings": warnings})
}

fn instance(cfg: &Config, name: &str) -> anyhow::Result<Value> {
    match status::lookup(cfg, &name_of(name)?)? {
        Found::Instance { status, .. } => Ok(serde_json::to_value(status)?),
        Found::Failed(f) => Ok(json!({"name": f.name, "state": "failed", "error": f.error})),
    }
}

/// The container's log tail and the app's own logs (what `wayback logs` shows).
fn log(cfg: &Config, name: &str, lines: Option<&str>) -> anyhow::Result<Value> {
    let n: usize = lines.and_then(|l| l.parse().ok()).unwrap_or(50).min(1000);
    let dir = crate::state::InstanceDir::open(cfg, &name_of(name)?)?;
    let container = crate::sys::nspawn::log_tail(&dir.log_path(), n);
    let app = crate::applogs::app_logs(&dir.path.join("applogs"), Some(n));
    Ok(json!({"name": name, "container": container, "app": app}))
}

async fn action(console: &Console, name: &str, verb: &str, r: &Req) -> anyhow::Result<Value> {
    let name = name_of(name)?;
    let body = r.json()?;
    let cfg = &console.cfg;
    match verb {
        "extend" => {
            let by: Duration = body["by"]
                .as_str()
                .unwrap_or_default()
                .parse()
                .map_err(|e| BadInput::new(format!("by: {e}")))?;
            Ok(serde_json::to_value(verbs::extend(cfg, &name, by)?)?)
        }
        "keep" => {
            let req = match (body["off"].as_bool(), body["until"].as_str()) {
                (Some(true), _) => KeepRequest::Off,
                (_, Some(u)) if !u.is_empty() => KeepRequest::Until(u.to_string()),
                _ => KeepRequest::Forever,
            };
            Ok(serde_json::to_value(verbs::keep(cfg, &name, &req)?)?)
        }
        "down" => {
            console.hooks.down(cfg, &name).await?;
            Ok(json!({"name": name.as_str(), "removed": true}))
        }
        "reset" => {
            let selector = body["snapshot"].as_str().unwrap_or_default().to_string();
            let dir = crate::state::InstanceDir::open(cfg, &name)?;
            crate::reset::check_host(&dir)?;
            let plan = dir.plan()?;
            // Checked here first, so bad input is answered at once, with the CLI's message.
            let rp = crate::reset::plan(cfg, &plan, &selector)?;
            let req = Request::Reset {
                name: name.clone(),
                snapshot: rp.to.path.display().to_string(),
            };
            Ok(spawn_job(console, format!("reset {name}"), req))
        }
        other => {
            Err(BadInput::new(format!("no action {other:?} (extend, keep, reset, down)")).into())
        }
    }
}

/// Run a daemon request as a job; returns `{"job": ID}`.
fn spawn_job(console: &Console, what: String, req: Request) -> Value {
    let job = console.jobs.start(what);
    let id = job.lock().expect("job lock").id;
    let cfg = console.cfg.clone();
    tokio::spawn(async move {
        let j2 = job.clone();
        let reply = control::call(&cfg, &req, move |l| jobs::line(&j2, l)).await;
        let outcome = reply.map(|r| match r {
            Reply::Ready { status } => status,
            _ => Value::Null,
        });
        jobs::finish(&job, outcome);
    });
    json!({"job": id})
}

/// `up`'s arguments from the resurrect form (JSON: snapshot or at, units, profile, name, host, ttl,
/// share, publish), as the command line the CLI would parse.
pub fn up_args(body: &Value) -> Vec<String> {
    let s = |k: &str| body[k].as_str().map(str::trim).filter(|v| !v.is_empty());
    let mut a = Vec::new();
    if let Some(snap) = s("snapshot") {
        a.push(snap.to_string());
    }
    for (key, flag) in [
        ("at", "--at"),
        ("profile", "--profile"),
        ("name", "--name"),
        ("host", "--host"),
        ("ttl", "--ttl"),
        ("idle", "--idle"),
        ("port", "--port"),
    ] {
        if let Some(v) = s(key) {
            a.extend([flag.to_string(), v.to_string()]);
        }
    }
    for (key, flag) in [
        ("units", "--unit"),
        ("publish", "--publish"),
        ("allow", "--allow"),
    ] {
        for v in s(key).unwrap_or_default().split_whitespace() {
            a.extend([flag.to_string(), v.to_string()]);
        }
    }
    if body["share"].as_bool() == Some(true) {
        a.push("--share".into());
    }
    a
}

/// The dry-run plan of a resurrect form: `wayback up ARGS --dry-run`.
async fn plan(console: &Console, r: &Req) -> anyhow::Result<Value> {
    let args = up_args(&r.json()?);
    let req = console.hooks.up_request(&console.cfg, args.clone())?;
    let (plan, alloc) = crate::planning::plan(&console.cfg, &req).await?;
    drop(alloc);
    let warnings = crate::planning::warnings(&console.cfg, &plan);
    let warning = (!warnings.is_empty()).then(|| warnings.join("\n"));
    Ok(json!({
        "command": format!("wayback up {}", args.join(" ")),
        "text": plan.to_string(),
        "warning": warning,
        "name": plan.name.as_str(),
    }))
}

/// Start the instance of a resurrect form in the daemon, as `up --detach` does; returns its job.
async fn up(console: &Console, r: &Req) -> anyhow::Result<Value> {
    let args = up_args(&r.json()?);
    let req = console.hooks.up_request(&console.cfg, args)?;
    Ok(spawn_job(
        console,
        "up".into(),
        Request::Up { req: Box::new(req) },
    ))
}

/// Download one version of a file (`wayback show PATH --from SNAPSHOT`).
async fn show(console: &Console, r: &Req) -> Response<Body> {
    let (cfg, hooks): (Config, Arc<dyn super::Hooks>) =
        (console.cfg.clone(), console.hooks.clone());
    let (path, from) = (need(r, "path"), need(r, "from"));
    let name = path
        .as_ref()
        .ok()
        .and_then(|p| p.rsplit('/').next())
        .unwrap_or("file")
        .replace(
            |c: char| !c.is_ascii_alphanumeric() && c != '.' && c != '-' && c != '_',
            "_",
        );
    match blocking(move || hooks.show(&cfg, &path?, &from?)).await {
        Ok(bytes) => {
            let mut resp = super::respond(StatusCode::OK, "application/octet-stream", bytes);
            super::set_header(
                &mut resp,
                header::CONTENT_DISPOSITION,
                &format!("attachment; filename=\"{name}\""),
            );
            resp
        }
        Err(e) => error_response(&e),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn form_to_up_arguments() {
        let body = serde_json::json!({
            "snapshot": "/p/.snapshots/3/snapshot", "units": "nginx php-fpm", "ttl": "4h",
            "share": true, "host": "", "publish": "15432:5432"
        });
        assert_eq!(
            super::up_args(&body).join(" "),
            "/p/.snapshots/3/snapshot --ttl 4h --unit nginx --unit php-fpm --publish 15432:5432 --share"
        );
    }
}
