//! The Caddy driver: one route per instance through Caddy's admin API (`[proxy.caddy] admin`, default
//! `http://localhost:2019`, or a unix socket), tagged `"@id": "wayback-<instance>"`:
//!
//! ```json
//! {"@id": "wayback-NAME", "match": [{"host": ["HOST"]}], "terminal": true,
//!  "handle": [{"handler": "reverse_proxy", "upstreams": [{"dial": "ADDR:PORT"}]}]}
//! ```
//!
//! It is inserted first in `apps/http/servers/<server>/routes` (so a wildcard site of the admin's cannot
//! shadow it), and Caddy's automatic HTTPS serves the hostname. The server is `[proxy.caddy] server`, else
//! the one listening on port 443, else the only one; wayback never creates or removes servers (an empty
//! Caddy gets an error saying so). Caddy's `reverse_proxy` keeps the client's Host and sets
//! `X-Forwarded-For/-Proto/-Host`, and passes WebSocket upgrades. Caddy validates every change before
//! applying it, so a rejected route leaves Caddy as it was. Removal: `DELETE /id/wayback-<instance>` until
//! Caddy answers "unknown object ID" (404), which is success. Blocking (see [`super::http`]).

use serde_json::{json, Value};

pub use wayback_core::drivers::CaddyHandle;

use super::config::CaddyConfig;
use super::http::{self, Endpoint, Response};
use super::{check_host, check_instance, DriverRoute, HostInUse};
use wayback_core::names::Hostname;

#[derive(Debug, thiserror::Error)]
pub enum CaddyError {
    #[error("cannot publish instance {instance} on Caddy: {reason}")]
    Name { instance: String, reason: String },
    #[error("invalid Caddy admin address {admin:?} in [proxy.caddy]: {reason}")]
    Admin { admin: String, reason: String },
    #[error("cannot reach Caddy's admin API at {admin} (for route {id}): {source} (is caddy running, with its admin endpoint there? set admin in [proxy.caddy])")]
    Connect {
        admin: String,
        id: String,
        source: std::io::Error,
    },
    #[error(
        "Caddy's admin API at {admin} answered {status} to {method} {path} (route {id}): {message}"
    )]
    Api {
        admin: String,
        id: String,
        method: &'static str,
        path: String,
        status: u16,
        message: String,
    },
    #[error("Caddy at {admin} has no HTTP server to add {host} to: wayback adds routes to an existing server and creates none (give Caddy a site, e.g. a Caddyfile block for *.{host}, or a server in its JSON config)")]
    NoServer { admin: String, host: String },
    #[error("Caddy at {admin} has no HTTP server {server:?} (it has: {available}); set server in [proxy.caddy]")]
    UnknownServer {
        admin: String,
        server: String,
        available: String,
    },
    #[error("Caddy at {admin} has several HTTP servers ({available}) and none or several listen on port 443: set server in [proxy.caddy]")]
    WhichServer { admin: String, available: String },
}

/// The handle [`publish`] returns, computed without touching anything (journal it first).
pub fn handle(cfg: &CaddyConfig, route: &DriverRoute) -> Result<CaddyHandle, CaddyError> {
    let name_err = |reason| CaddyError::Name {
        instance: route.instance.clone(),
        reason,
    };
    check_instance(&route.instance).map_err(name_err)?;
    check_host(&route.host).map_err(name_err)?;
    endpoint(&cfg.admin)?;
    Ok(CaddyHandle {
        instance: route.instance.clone(),
        host: route.host.clone(),
        admin: cfg.admin.clone(),
        id: format!("wayback-{}", route.instance),
    })
}

/// The route's JSON, as added to Caddy.
pub fn route_json(id: &str, route: &DriverRoute) -> Value {
    json!({
        "@id": id,
        "match": [{"host": [route.host]}],
        "handle": [{"handler": "reverse_proxy", "upstreams": [{"dial": route.upstream.to_string()}]}],
        "terminal": true,
    })
}

/// Add the route first in the chosen server's routes (replacing a leftover route with the same id).
pub fn publish(cfg: &CaddyConfig, route: &DriverRoute) -> Result<CaddyHandle, CaddyError> {
    let h = handle(cfg, route)?;
    let api = Api::new(&h)?;
    api.delete_all()?;
    let servers = api.call("GET", "/config/apps/http/servers", None, &[200])?;
    let servers: Value = serde_json::from_str(&servers.body).unwrap_or(Value::Null);
    let server = pick_server(cfg, &h, &servers)?;
    let base = format!("/config/apps/http/servers/{server}/routes");
    let body = route_json(&h.id, route);
    match &servers[&server]["routes"] {
        // PUT on an array index inserts there (Caddy refuses index 0 of an empty array).
        Value::Array(a) if !a.is_empty() => {
            api.call("PUT", &format!("{base}/0"), Some(&body), &[200])?
        }
        // POST appends to an array, and sets a missing key.
        Value::Array(_) => api.call("POST", &base, Some(&body), &[200])?,
        _ => api.call("POST", &base, Some(&json!([body])), &[200])?,
    };
    Ok(h)
}

/// A route of any HTTP server of Caddy's (subroutes included) matching exactly `host`. One GET; reads only.
pub fn host_in_use(cfg: &CaddyConfig, host: &Hostname) -> Result<Option<HostInUse>, CaddyError> {
    let h = CaddyHandle {
        instance: String::new(),
        host: host.to_string(),
        admin: cfg.admin.clone(),
        id: "(pre-flight check)".into(),
    };
    let servers = Api::new(&h)?.call("GET", "/config/apps/http/servers", None, &[200])?;
    let servers: Value = serde_json::from_str(&servers.body).unwrap_or(Value::Null);
    Ok(find_host(&servers, host))
}

/// The first route (depth first, subroutes included) whose host matcher lists `host` exactly.
pub fn find_host(servers: &Value, host: &Hostname) -> Option<HostInUse> {
    fn walk(routes: &Value, host: &Hostname, server: &str, path: &str) -> Option<HostInUse> {
        for (i, route) in routes.as_array()?.iter().enumerate() {
            let hosts = route["match"].as_array().into_iter().flatten();
            let listed = hosts
                .flat_map(|m| m["host"].as_array().into_iter().flatten())
                .filter_map(Value::as_str)
                .any(|h| Hostname::new(h).is_ok_and(|h| &h == host));
            if listed {
                let id = route["@id"].as_str();
                return Some(HostInUse {
                    instance: id
                        .and_then(|id| id.strip_prefix("wayback-"))
                        .map(str::to_string),
                    place: match id {
                        Some(id) => format!("Caddy route {id} on server {server}"),
                        None => format!("Caddy route {path}{i} on server {server}"),
                    },
                });
            }
            let handlers = route["handle"].as_array().into_iter().flatten();
            for (j, handler) in handlers.enumerate() {
                if let Some(found) =
                    walk(&handler["routes"], host, server, &format!("{path}{i}/{j}/"))
                {
                    return Some(found);
                }
            }
        }
        None
    }
    servers
        .as_object()?
        .iter()
        .find_map(|(name, s)| walk(&s["routes"], host, name, "#"))
}

/// Remove every route with the handle's id. Already gone (Caddy: "unknown object ID") is success.
pub fn unpublish(h: &CaddyHandle) -> Result<(), CaddyError> {
    Api::new(h)?.delete_all()
}

fn endpoint(admin: &str) -> Result<Endpoint, CaddyError> {
    Endpoint::parse(admin).map_err(|reason| CaddyError::Admin {
        admin: admin.into(),
        reason,
    })
}

/// The configured server, else the one listening on port 443, else the only one.
fn pick_server(cfg: &CaddyConfig, h: &CaddyHandle, servers: &Value) -> Result<String, CaddyError> {
    let names: Vec<&String> = servers
        .as_object()
        .map(|o| o.keys().collect())
        .unwrap_or_default();
    let available = || {
        names
            .iter()
            .map(|n| n.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    if names.is_empty() {
        return Err(CaddyError::NoServer {
            admin: h.admin.clone(),
            host: h.host.split_once('.').map_or(&*h.host, |(_, p)| p).into(),
        });
    }
    if let Some(s) = &cfg.server {
        if !names.contains(&s) || s.contains(['/', ' ', '?', '#']) {
            return Err(CaddyError::UnknownServer {
                admin: h.admin.clone(),
                server: s.clone(),
                available: available(),
            });
        }
        return Ok(s.clone());
    }
    let on_443: Vec<&String> = names
        .iter()
        .copied()
        .filter(|n| {
            servers[n.as_str()]["listen"].as_array().is_some_and(|l| {
                l.iter()
                    .any(|a| a.as_str().is_some_and(|a| a.ends_with(":443")))
            })
        })
        .collect();
    match (on_443.as_slice(), names.as_slice()) {
        ([one], _) | ([], [one]) => Ok((*one).clone()),
        _ => Err(CaddyError::WhichServer {
            admin: h.admin.clone(),
            available: available(),
        }),
    }
}

/// The admin API, for one handle's messages.
struct Api<'a> {
    h: &'a CaddyHandle,
    ep: Endpoint,
}

impl<'a> Api<'a> {
    fn new(h: &'a CaddyHandle) -> Result<Api<'a>, CaddyError> {
        Ok(Api {
            h,
            ep: endpoint(&h.admin)?,
        })
    }

    /// One request; an answer outside `ok` is an error carrying Caddy's message.
    fn call(
        &self,
        method: &'static str,
        path: &str,
        body: Option<&Value>,
        ok: &[u16],
    ) -> Result<Response, CaddyError> {
        let body = body.map(Value::to_string);
        let r = http::request(&self.ep, method, path, body.as_deref()).map_err(|source| {
            CaddyError::Connect {
                admin: self.h.admin.clone(),
                id: self.h.id.clone(),
                source,
            }
        })?;
        if ok.contains(&r.status) {
            return Ok(r);
        }
        let message = serde_json::from_str::<Value>(&r.body)
            .ok()
            .and_then(|v| v["error"].as_str().map(String::from))
            .unwrap_or_else(|| r.body.trim().to_string());
        Err(CaddyError::Api {
            admin: self.h.admin.clone(),
            id: self.h.id.clone(),
            method,
            path: path.into(),
            status: r.status,
            message,
        })
    }

    /// `DELETE /id/ID` until Caddy no longer knows the id (Caddy 2.6 accepts duplicate ids).
    fn delete_all(&self) -> Result<(), CaddyError> {
        let path = format!("/id/{}", self.h.id);
        for _ in 0..16 {
            match self.call("DELETE", &path, None, &[200]) {
                Ok(_) => {}
                Err(CaddyError::Api {
                    status: 404,
                    ref message,
                    ..
                }) if message.contains("unknown object ID") => return Ok(()),
                Err(e) => return Err(e),
            }
        }
        self.call("DELETE", &path, None, &[404]).map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h() -> CaddyHandle {
        CaddyHandle {
            instance: "old".into(),
            host: "old.restore.example.org".into(),
            admin: "http://localhost:2019".into(),
            id: "wayback-old".into(),
        }
    }

    #[test]
    fn host_lookup_in_servers() {
        let host = |s: &str| Hostname::new(s).unwrap();
        let servers = json!({
            "srv0": {"routes": [
                {"match": [{"host": ["*.wbt.test"]}], "handle": [{"handler": "subroute", "routes": [
                    {"match": [{"host": ["Inner.WBT.test"]}], "handle": [{"handler": "static_response"}]}
                ]}]},
                {"@id": "wayback-old", "match": [{"host": ["old.wbt.test"]}], "handle": []}
            ]},
            "srv1": {"routes": []}
        });
        let old = find_host(&servers, &host("OLD.wbt.test.")).unwrap();
        assert_eq!(old.instance.as_deref(), Some("old"));
        assert_eq!(old.place, "Caddy route wayback-old on server srv0");
        let inner = find_host(&servers, &host("inner.wbt.test")).unwrap();
        assert_eq!(inner.instance, None);
        assert_eq!(inner.place, "Caddy route #0/0/0 on server srv0");
        assert_eq!(
            find_host(&servers, &host("x.wbt.test")),
            None,
            "wildcards are not exact"
        );
        assert_eq!(find_host(&Value::Null, &host("old.wbt.test")), None);
    }

    #[test]
    fn server_choice() {
        let cfg = CaddyConfig::default();
        let s = json!({"srv0": {"listen": [":443"]}, "srv1": {"listen": [":8080"]}});
        assert_eq!(pick_server(&cfg, &h(), &s).unwrap(), "srv0");
        let s = json!({"only": {"listen": ["127.0.0.1:8080"]}});
        assert_eq!(pick_server(&cfg, &h(), &s).unwrap(), "only");
        let s = json!({"a": {"listen": [":80"]}, "b": {"listen": [":8080"]}});
        let e = pick_server(&cfg, &h(), &s).unwrap_err().to_string();
        assert!(e.contains("a, b") && e.contains("set server"), "{e}");
        let e = pick_server(&cfg, &h(), &Value::Null)
            .unwrap_err()
            .to_string();
        assert!(e.contains("*.restore.example.org"), "{e}");
        let named = CaddyConfig {
            server: Some("nope".into()),
            ..cfg
        };
        let e = pick_server(&named, &h(), &s).unwrap_err().to_string();
        assert!(e.contains("\"nope\"") && e.contains("a, b"), "{e}");
    }
}
