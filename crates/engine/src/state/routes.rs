//! Route files: `<runtime_dir>/routes/<host>.json`, one per published hostname, read by whichever process
//! runs the built-in proxy. A hostname belongs to one instance at a time ([`hostname_owner`], checked in
//! planning under the allocation lock), and a teardown removes a route file only when it lies directly in
//! the routes directory and names the instance being torn down ([`remove`]); any other file is left and
//! reported.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use wayback_core::names::Hostname;
use wayback_core::{Config, InstanceName};

use super::instance_dir::real_dir;
use super::{read_json, InstanceDir, Others, StateError};

/// What the proxy needs to route one hostname.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteFile {
    pub host: String,
    pub instance: String,
    pub netns_path: PathBuf,
    pub port: u16,
    /// The access gate (with its secrets: this file is root-only).
    #[serde(default)]
    pub gate: Option<wayback_proxy::GateConfig>,
    /// Hostname masquerade: the app's origin, and the public one it is rewritten to.
    #[serde(default)]
    pub masquerade: Option<MasqueradeRoute>,
}

impl wayback_core::format::Persisted for RouteFile {
    const KIND: &'static str = "route file";
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MasqueradeRoute {
    pub original_host: String,
    pub original_https: bool,
    /// The instance's public host, with its port when not the scheme's default.
    pub public_host: String,
    pub public_https: bool,
    pub bodies: bool,
}

/// `<runtime_dir>/routes/<host>.json`; `host` is a canonical hostname (as `validate_hostname` returns).
pub fn route_path(cfg: &Config, host: &str) -> PathBuf {
    cfg.routes_dir().join(format!("{host}.json"))
}

/// What [`remove`] did with a route file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteRemoval {
    Removed,
    /// Already gone.
    Gone,
    /// Left in place: not this instance's route file (why).
    Left(String),
}

/// Remove `file` if it lies directly in `routes` (a real directory), is named `<canonical host>.json`, is
/// a regular file, and names `instance` in its `instance` field. Anything else is left, with the reason.
pub fn remove(
    routes: &Path,
    instance: &InstanceName,
    file: &Path,
) -> Result<RouteRemoval, StateError> {
    if file.parent() != Some(routes) {
        return Ok(RouteRemoval::Left(format!(
            "it is not in the routes directory {}",
            routes.display()
        )));
    }
    let named_by_host = file
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_suffix(".json"))
        .is_some_and(|h| Hostname::new(h).is_ok_and(|c| c.as_str() == h));
    if !named_by_host {
        return Ok(RouteRemoval::Left("its name is not <hostname>.json".into()));
    }
    match fs::symlink_metadata(routes) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(RouteRemoval::Gone),
        _ => {}
    }
    if let Err(why) = real_dir(routes) {
        return Ok(RouteRemoval::Left(format!("the routes directory: {why}")));
    }
    match fs::symlink_metadata(file) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(RouteRemoval::Gone),
        Err(source) => {
            return Err(StateError::Read {
                path: file.into(),
                source,
            })
        }
        Ok(m) if !m.file_type().is_file() => {
            return Ok(RouteRemoval::Left("it is not a regular file".into()))
        }
        Ok(_) => {}
    }
    match read_json::<RouteFile>(file) {
        Ok(rf) if rf.instance == instance.as_str() => {}
        Ok(rf) => {
            return Ok(RouteRemoval::Left(format!(
                "it belongs to instance {:?}",
                rf.instance
            )))
        }
        Err(e) => return Ok(RouteRemoval::Left(format!("it is not a route file: {e}"))),
    }
    match fs::remove_file(file) {
        Ok(()) => Ok(RouteRemoval::Removed),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(RouteRemoval::Gone),
        Err(source) => Err(StateError::Write {
            path: file.into(),
            source,
        }),
    }
}

/// The instance that already uses `host`: one whose saved plan routes it, or whose route file publishes it
/// (a route file of an instance that no longer exists is stale and owns nothing). Hostnames compare in
/// canonical form, so `G.RT.TEST.` and `g.rt.test`, or `Bücher.example` and `xn--bcher-kva.example`, are
/// one name. Call with the allocation lock held, before anything is created.
pub fn hostname_owner(cfg: &Config, host: &Hostname) -> Option<InstanceName> {
    hostname_owner_in(cfg, &Others::read(cfg), host)
}

/// [`hostname_owner`] with the saved plans already read (`others`, read under the same lock).
pub fn hostname_owner_in(cfg: &Config, others: &Others, host: &Hostname) -> Option<InstanceName> {
    let same = |h: &str| Hostname::new(h).is_ok_and(|h| &h == host);
    for other in &others.plans {
        if other.host.as_deref().is_some_and(same) {
            return Some(other.name.clone());
        }
    }
    let entries = fs::read_dir(cfg.routes_dir())
        .into_iter()
        .flatten()
        .flatten();
    for entry in entries {
        let path = entry.path();
        let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("");
        if path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        let Ok(rf) = read_json::<RouteFile>(&path) else {
            continue;
        };
        if !(same(&rf.host) || same(stem)) {
            continue;
        }
        let Ok(owner) = InstanceName::new(&rf.instance) else {
            continue;
        };
        if InstanceDir::open(cfg, &owner).is_ok() {
            return Some(owner);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::super::ensure_hostname_free;
    use super::super::tests::{name, temp_config};
    use super::*;
    use std::path::PathBuf;

    fn route(cfg: &Config, host: &str, instance: &str) -> PathBuf {
        super::super::create_private_dir_all(&cfg.routes_dir()).unwrap();
        let file = route_path(cfg, host);
        super::super::write_json(
            &file,
            &RouteFile {
                host: host.into(),
                instance: instance.into(),
                netns_path: "/run/netns/wb-x".into(),
                port: 80,
                gate: None,
                masquerade: None,
            },
        )
        .unwrap();
        file
    }

    #[test]
    fn a_route_file_goes_only_with_its_own_instance() {
        let (t, cfg) = temp_config();
        let a = InstanceDir::create(&cfg, &name("a")).unwrap();
        let theirs = route(&cfg, "b.example", "b");
        let mine = route(&cfg, "a.example", "a");
        let left = a.remove_route(&theirs).unwrap();
        assert_eq!(
            left,
            RouteRemoval::Left("it belongs to instance \"b\"".into())
        );
        assert!(theirs.exists());
        // Outside the routes directory, or not named by a hostname: left, whatever it holds.
        let elsewhere = t.path().join("a.example.json");
        fs::copy(&mine, &elsewhere).unwrap();
        assert!(matches!(
            a.remove_route(&elsewhere).unwrap(),
            RouteRemoval::Left(_)
        ));
        let dotdot = cfg.routes_dir().join("../a.example.json");
        assert!(matches!(
            a.remove_route(&dotdot).unwrap(),
            RouteRemoval::Left(_)
        ));
        let odd = cfg.routes_dir().join("A.Example.json");
        fs::copy(&mine, &odd).unwrap();
        assert!(matches!(
            a.remove_route(&odd).unwrap(),
            RouteRemoval::Left(_)
        ));
        assert!(elsewhere.exists() && odd.exists());
        // A symlink in the routes directory is not a route file.
        let link = cfg.routes_dir().join("c.example.json");
        std::os::unix::fs::symlink(&elsewhere, &link).unwrap();
        assert!(matches!(
            a.remove_route(&link).unwrap(),
            RouteRemoval::Left(_)
        ));
        assert!(elsewhere.exists());
        assert_eq!(a.remove_route(&mine).unwrap(), RouteRemoval::Removed);
        assert_eq!(a.remove_route(&mine).unwrap(), RouteRemoval::Gone);
    }

    #[test]
    fn hostnames_have_one_owner_in_every_spelling() {
        let (_t, cfg) = temp_config();
        let a = InstanceDir::create(&cfg, &name("a")).unwrap();
        let host = |s: &str| Hostname::new(s).unwrap();
        assert_eq!(hostname_owner(&cfg, &host("g.rt.test")), None);
        route(&cfg, "g.rt.test", "a");
        for spelling in ["g.rt.test", "G.RT.TEST.", "g.RT.test"] {
            assert_eq!(hostname_owner(&cfg, &host(spelling)), Some(name("a")));
        }
        route(&cfg, "xn--bcher-kva.example", "a");
        assert_eq!(
            hostname_owner(&cfg, &host("Bücher.example")),
            Some(name("a"))
        );
        let others = Others::read(&cfg);
        let e = ensure_hostname_free(&cfg, &others, &host("BÜCHER.example.")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "hostname xn--bcher-kva.example is already used by instance a; pick another --host or `wayback down a`"
        );
        // A route file of an instance that no longer exists owns nothing.
        route(&cfg, "stale.example", "gone");
        assert_eq!(hostname_owner(&cfg, &host("stale.example")), None);
        a.remove().unwrap();
        assert_eq!(hostname_owner(&cfg, &host("g.rt.test")), None);
    }
}
