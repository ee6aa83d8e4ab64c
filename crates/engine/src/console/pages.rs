//! The console's pages, rendered on the server: login, instances, the snapshot timeline, file history and
//! resurrect. Data shown at load time is rendered here; what changes (log tails, plans, job progress,
//! file versions) is fetched from the JSON API by `console.js`.

use std::collections::BTreeMap;
use std::fmt::Write;

use anyhow::Result;
use http::{header, Response, StatusCode};
use serde_json::{json, Value};
use wayback_core::Config;

use super::auth::{self, LoginError, Session};
use super::html::{date, esc, page};
use super::{redirect, respond, set_header, Body, Console, Req};
use crate::error::BadInput;

fn html(status: StatusCode, body: String) -> Response<Body> {
    respond(status, "text/html; charset=utf-8", body)
}

pub fn login(_console: &Console, error: Option<&str>) -> Response<Body> {
    let err = error
        .map(|e| format!("<p class=\"error\" id=\"login-error\">{}</p>", esc(e)))
        .unwrap_or_default();
    let body = format!(
        "{err}<form method=\"post\" action=\"/login\" class=\"login\">\
         <label>Login token <input type=\"password\" name=\"token\" id=\"token\" autocomplete=\"off\" autofocus></label>\
         <button id=\"login\">Log in</button></form>\
         <p class=\"hint\">Get a token on the server: <code>wayback console token</code> (valid once, for a few minutes).</p>"
    );
    html(StatusCode::OK, page("Log in", "", None, &body))
}

pub fn do_login(console: &Console, r: &Req) -> Response<Body> {
    let token = r
        .form()
        .into_iter()
        .find(|(k, _)| k == "token")
        .map(|(_, v)| v)
        .unwrap_or_default();
    match console.auth.login(&console.cfg, r.peer.ip(), &token) {
        Ok((id, _)) => {
            let mut resp = redirect("/");
            let c = &console.cfg.console;
            set_header(
                &mut resp,
                header::SET_COOKIE,
                &auth::set_cookie(Some(&id), c.session_ttl.as_secs(), c.tls()),
            );
            resp
        }
        Err(LoginError::RateLimited) => {
            let mut resp = login(console, Some("Too many failed logins: wait a minute."));
            *resp.status_mut() = StatusCode::TOO_MANY_REQUESTS;
            resp
        }
        Err(LoginError::BadToken) => {
            let mut resp = login(console, Some("Unknown, used or expired token."));
            *resp.status_mut() = StatusCode::UNAUTHORIZED;
            resp
        }
    }
}

pub async fn route(console: &Console, r: &Req, s: &Session) -> Response<Body> {
    let csrf = Some(s.csrf.as_str());
    match r.path.as_str() {
        "/" => html(
            StatusCode::OK,
            page("Instances", "/", csrf, &instances(console)),
        ),
        "/snapshots" => {
            let cfg = console.cfg.clone();
            let body = match super::blocking(move || snapshot_series(&cfg)).await {
                Ok(v) => timeline(&v),
                Err(e) => format!("<p class=\"error\">{}</p>", esc(&crate::error::render(&e))),
            };
            html(StatusCode::OK, page("Snapshots", "/snapshots", csrf, &body))
        }
        "/history" => html(
            StatusCode::OK,
            page("File history", "/history", csrf, &history(r)),
        ),
        "/resurrect" => html(
            StatusCode::OK,
            page("Resurrect", "/resurrect", csrf, &resurrect(r)),
        ),
        _ => html(
            StatusCode::NOT_FOUND,
            page("Not found", "", csrf, "<p>No such page.</p>"),
        ),
    }
}

/// Ready-to-paste client commands for a publish `ADDR:HOSTPORT->PORT`, by the service's usual port.
pub fn client_command(publish: &str) -> String {
    let (listen, port) = publish.split_once("->").unwrap_or((publish, ""));
    let (addr, hport) = listen.rsplit_once(':').unwrap_or(("127.0.0.1", listen));
    match port {
        "5432" => format!("psql -h {addr} -p {hport} -U postgres"),
        "3306" => format!("mariadb -h {addr} -P {hport} -u root"),
        "6379" => format!("redis-cli -h {addr} -p {hport}"),
        "1883" => format!("mosquitto_sub -h {addr} -p {hport} -t '#' -v"),
        _ => format!("nc {addr} {hport}"),
    }
}

fn instances(console: &Console) -> String {
    let v = super::api::instances(&console.cfg, console);
    let list = v["instances"].as_array().cloned().unwrap_or_default();
    if list.is_empty() {
        return "<p id=\"no-instances\">No instances. <a href=\"/resurrect\">Resurrect one</a> from a snapshot.</p>".into();
    }
    let mut o = String::from("<div class=\"cards\">");
    for s in &list {
        let name = s["name"].as_str().unwrap_or_default();
        let n = esc(name);
        let _ = write!(o, "<section class=\"card instance\" id=\"instance-{n}\" data-name=\"{n}\"><h2>{n} <span class=\"state\">{}</span></h2><dl>", esc(s["state"].as_str().unwrap_or("")));
        if let Some(url) = s["url"].as_str() {
            let _ = write!(o, "<dt>URL</dt><dd><a class=\"url\" href=\"{0}\" target=\"_blank\" rel=\"noopener\">{0}</a></dd>", esc(url));
        }
        if let Some(link) = s["share_url"].as_str() {
            let _ = write!(o, "<dt>Share link</dt><dd><input class=\"share\" readonly value=\"{0}\"> <button data-copy=\"{0}\">Copy</button></dd>", esc(link));
        }
        for p in s["publish"].as_array().into_iter().flatten() {
            let p = p.as_str().unwrap_or_default();
            let cmd = client_command(p);
            let _ = write!(o, "<dt>Publish</dt><dd>{} <code class=\"client\">{}</code> <button data-copy=\"{}\">Copy</button></dd>", esc(p), esc(&cmd), esc(&cmd));
        }
        let left = if s["kept"] == true {
            match s["kept_until"].as_i64() {
                Some(u) => format!("kept until {}", date(u)),
                None => "kept (no expiry)".into(),
            }
        } else {
            s["ttl_left"].as_str().unwrap_or("-").to_string()
        };
        let _ = write!(
            o,
            "<dt>Time left</dt><dd class=\"left\">{}</dd><dt>Snapshot</dt><dd class=\"source\">{}</dd></dl>",
            esc(&left),
            esc(s["source"].as_str().unwrap_or("-"))
        );
        let _ = write!(
            o,
            "<div class=\"actions\">\
             <input class=\"extend-by\" value=\"1h\" size=\"4\" aria-label=\"extend by\"><button data-action=\"extend\">Extend</button>\
             <button data-action=\"keep\">Keep</button><button data-action=\"unkeep\">Unkeep</button>\
             <input class=\"reset-to\" placeholder=\"snapshot path or @selector\" aria-label=\"reset to\"><button data-action=\"reset\">Reset</button>\
             <button data-action=\"down\" class=\"danger\">Down</button></div>\
             <p class=\"result\"></p><details class=\"log\" data-name=\"{n}\"><summary>Log</summary><pre></pre></details></section>"
        );
    }
    o.push_str("</div>");
    o
}

/// The snapshots of `snapshot_roots`, per series, oldest first, each with its verify runs.
pub fn snapshot_series(cfg: &Config) -> Result<Value> {
    if cfg.snapshot_roots.is_empty() {
        return Err(BadInput::new(
            "no snapshot_roots in the config: set them (e.g. snapshot_roots = [\"/persist\"]) to see snapshots here",
        )
        .into());
    }
    let cat = crate::catalog::load_catalog(&cfg.snapshot_roots)?;
    let runs = verify_runs(cfg);
    let mut series: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for s in &cat.snapshots {
        let path = s.path.display().to_string();
        let verify: Vec<&Value> = runs.iter().filter(|r| r["path"] == path.as_str()).collect();
        series.entry(s.series()).or_default().push(json!({
            "id": s.id, "date": s.date, "date_utc": date(s.date), "description": s.description,
            "readonly": s.readonly, "path": path, "verify": verify,
        }));
    }
    let series: Vec<Value> = series
        .into_iter()
        .map(|(name, snaps)| json!({"series": name, "snapshots": snaps}))
        .collect();
    Ok(json!({"series": series}))
}

/// The verify history's runs (when a history exists; it is never created here).
fn verify_runs(cfg: &Config) -> Vec<Value> {
    if !crate::verify::history::path(cfg).exists() {
        return Vec::new();
    }
    let Ok(h) = crate::verify::history::History::open(cfg) else {
        return Vec::new();
    };
    h.runs(None, 2000)
        .unwrap_or_default()
        .into_iter()
        .map(|r| {
            json!({"path": r.snapshot.path, "job": r.job, "result": r.result,
                   "started": date(r.started), "reason": r.reason})
        })
        .collect()
}

fn timeline(v: &Value) -> String {
    let mut o = String::from(
        "<div class=\"zoom\" id=\"zoom\">Zoom: <button data-zoom=\"all\">all</button>\
         <button data-zoom=\"31536000\">year</button><button data-zoom=\"2592000\">month</button>\
         <button data-zoom=\"86400\">day</button><button data-zoom=\"3600\">hour</button></div>",
    );
    for s in v["series"].as_array().into_iter().flatten() {
        let name = esc(s["series"].as_str().unwrap_or_default());
        let _ = write!(
            o,
            "<section class=\"series\"><h2>{name}</h2><div class=\"track\">"
        );
        for snap in s["snapshots"].as_array().into_iter().flatten() {
            let cls = verify_class(snap);
            let _ = write!(
                o,
                "<a class=\"dot {cls}\" data-date=\"{}\" href=\"/resurrect?snapshot={}\" title=\"#{} {}\"></a>",
                snap["date"],
                esc(&urlencode(snap["path"].as_str().unwrap_or_default())),
                snap["id"],
                esc(snap["date_utc"].as_str().unwrap_or_default())
            );
        }
        o.push_str("</div><div class=\"axis\"><span class=\"from\"></span><span class=\"to\"></span></div><table class=\"snapshots\"><tr><th>#</th><th>date</th><th>description</th><th>read-only</th><th>verify</th><th></th></tr>");
        for snap in s["snapshots"].as_array().into_iter().flatten().rev() {
            let verify: Vec<String> = snap["verify"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|r| {
                    format!(
                        "{} {} ({}){}",
                        esc(r["job"].as_str().unwrap_or_default()),
                        esc(r["result"].as_str().unwrap_or_default()),
                        esc(r["started"].as_str().unwrap_or_default()),
                        r["reason"]
                            .as_str()
                            .map(|x| format!(": {}", esc(x)))
                            .unwrap_or_default()
                    )
                })
                .collect();
            let path = snap["path"].as_str().unwrap_or_default();
            let _ = write!(
                o,
                "<tr data-date=\"{}\"><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"{}\">{}</td>\
                 <td><a href=\"/resurrect?snapshot={}\">resurrect</a></td></tr>",
                snap["date"],
                snap["id"],
                esc(snap["date_utc"].as_str().unwrap_or_default()),
                esc(snap["description"].as_str().unwrap_or("")),
                if snap["readonly"] == true { "yes" } else { "no" },
                verify_class(snap),
                if verify.is_empty() { "-".into() } else { verify.join("<br>") },
                esc(&urlencode(path))
            );
        }
        o.push_str("</table></section>");
    }
    o
}

/// `passed`/`failed` from the newest verify run of a snapshot, for its colour.
fn verify_class(snap: &Value) -> &'static str {
    match snap["verify"].get(0).and_then(|r| r["result"].as_str()) {
        Some("passed") => "passed",
        Some("failed") => "failed",
        _ => "",
    }
}

fn urlencode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

fn history(r: &Req) -> String {
    let path = esc(r.query("path").unwrap_or_default());
    format!(
        "<form id=\"history-form\" class=\"inline\"><label>Path or glob <input name=\"path\" id=\"history-path\" size=\"60\" value=\"{path}\" \
         placeholder=\"/persist/var/lib/app/report.odt or var/lib/app/**/*.odt\"></label><button>Find versions</button></form>\
         <p class=\"hint\">An absolute path: its versions. A glob or a path relative to the snapshot root: which snapshots hold it (<code>wayback find</code>).</p>\
         <div id=\"history-result\"></div><pre id=\"history-diff\" class=\"diff\"></pre>"
    )
}

fn resurrect(r: &Req) -> String {
    let snap = esc(r.query("snapshot").unwrap_or_default());
    format!(
        "<form id=\"resurrect-form\" class=\"grid\">\
         <label>Snapshot <input name=\"snapshot\" id=\"snapshot\" value=\"{snap}\" placeholder=\"path or @selector\"></label>\
         <label>or the moment (several subvolumes) <input name=\"at\" placeholder=\"2026-11-14T10:00\"></label>\
         <label>Units <input name=\"units\" id=\"units\" placeholder=\"nginx php8.2-fpm\"></label>\
         <label>or profile <input name=\"profile\" id=\"profile\" placeholder=\"nginx-static\"></label>\
         <label>Name <input name=\"name\" id=\"name\"></label>\
         <label>Hostname <input name=\"host\" placeholder=\"default: NAME.base_domain\"></label>\
         <label>TTL <input name=\"ttl\" value=\"4h\"></label>\
         <label>Publish <input name=\"publish\" placeholder=\"15432:5432\"></label>\
         <label>Only from (gate) <input name=\"allow\" placeholder=\"192.0.2.0/24\"></label>\
         <label class=\"check\"><input type=\"checkbox\" name=\"share\" id=\"share\" checked> one-time share link (gate)</label>\
         <div><button id=\"plan-button\">Show plan</button></div></form>\
         <div id=\"plan\" hidden><h2>Plan <small>(nothing is created until you confirm)</small></h2><p class=\"command\"></p><pre class=\"plan\"></pre>\
         <button id=\"confirm\">Confirm: start it</button></div>\
         <div id=\"progress\" hidden><h2>Progress</h2><pre class=\"lines\"></pre><div class=\"outcome\"></div></div>"
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn client_commands_by_port() {
        assert_eq!(
            super::client_command("127.0.0.1:15432->5432"),
            "psql -h 127.0.0.1 -p 15432 -U postgres"
        );
        assert_eq!(
            super::client_command("127.0.0.1:13306->3306"),
            "mariadb -h 127.0.0.1 -P 13306 -u root"
        );
        assert_eq!(
            super::client_command("127.0.0.1:16379->6379"),
            "redis-cli -h 127.0.0.1 -p 16379"
        );
        assert_eq!(
            super::client_command("127.0.0.1:9000->9000"),
            "nc 127.0.0.1 9000"
        );
    }
}
