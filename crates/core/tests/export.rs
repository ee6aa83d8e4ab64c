//! Tier 0: the NixOS and nginx exports of a plan (golden files), checked by the real parsers when they are
//! installed: `nix-instantiate --parse` (Debian package nix-bin) and `nginx -t` with a minimal config in a
//! temporary directory. A missing tool makes the check print why it was skipped.

use std::path::{Path, PathBuf};
use std::process::Command;

use wayback_core::export::{self, NginxOpts, NginxTls, NGINX_HEADER};
use wayback_core::plan::{self, Facts, PathState, Publish, UpRequest};
use wayback_core::profile::{Bind, Profile};
use wayback_core::{Config, Plan};

fn facts() -> Facts {
    Facts {
        existing: vec![],
        in_use: vec!["10.213.0.0/30".parse().unwrap()],
        ..wayback_core::plan::fixture::facts()
    }
}

/// A request with only the fields that matter here; the others take their serde defaults, so new optional
/// request fields do not break these tests.
fn request(profile: Profile, fields: serde_json::Value) -> UpRequest {
    let mut v = serde_json::json!({
        "snapshot": "/persist/.snapshots/11921/snapshot",
        "name": null, "profile": profile, "binds": [], "exec": [], "user": null, "port": null,
        "host": null, "publish": [], "ttl": "4h", "idle": null,
    });
    for (k, x) in fields.as_object().unwrap() {
        v[k] = x.clone();
    }
    serde_json::from_value(v).unwrap()
}

fn build(req: &UpRequest) -> Plan {
    plan::build(req, &facts(), &Config::default(), &|_: &Path, p: &Path| {
        PathState::Present(p.to_path_buf())
    })
    .unwrap()
}

fn plan_for(profile: &str, name: &str, host: Option<&str>) -> Plan {
    build(&request(
        Profile::find(profile, &[]).unwrap(),
        serde_json::json!({ "name": name, "host": host }),
    ))
}

/// The seed's situation: Nextcloud-like state in three binds, served over HTTP, a tricky path.
fn cloud_plan() -> Plan {
    let mut profile = Profile::find("nginx-static", &[]).unwrap();
    profile.name = "nextcloud".into();
    profile.binds = ["/var/lib/nextcloud", "/var/lib/mysql", "/var/lib/secrets"]
        .iter()
        .map(|p| Bind::Path(p.into()))
        .collect();
    profile.binds.push(Bind::Full {
        path: "/srv/odd \"dir\" ${HOME}".into(),
        dest: Some("/srv/odd".into()),
        source: None,
        reason: None,
    });
    let publish: Publish = "127.0.0.1:15432:5432".parse().unwrap();
    build(&request(
        profile,
        serde_json::json!({
            "name": "cloud2", "port": 80, "host": "cloud2.aidoskyneen.eu", "ttl": "1d",
            "publish": [publish], "allow_egress": ["tcp:192.168.1.10:5432"],
        }),
    ))
}

fn wildcard_tls(dir: &Path) -> NginxTls {
    NginxTls {
        certificate: dir.join("wildcard.crt"),
        key: dir.join("wildcard.key"),
        port: 443,
        redirect_http: true,
    }
}

#[test]
fn nixos_golden() {
    let out = export::nixos(&cloud_plan());
    assert!(out.contains("bindMounts = {\n      \"/var/lib/nextcloud\" = {\n        hostPath = \"/persist/.wayback/cloud2/var/lib/nextcloud\";\n        isReadOnly = false;"));
    assert!(out.contains(r#"hostPath = "/persist/.wayback/cloud2/srv/odd \"dir\" \${HOME}";"#));
    assert!(out.contains("proxyPass = \"http://10.213.0.6:80\";"));
    insta::assert_snapshot!("nixos_cloud", out);
    let out = export::nixos(&plan_for("postgresql", "pg-old-2025-01", None));
    assert!(
        !out.contains("virtualHosts"),
        "no HTTP route, no virtual host"
    );
    assert!(out.contains("at most 11 characters"));
    insta::assert_snapshot!("nixos_postgresql", out);
}

#[test]
fn nginx_golden() {
    let p = plan_for("nginx-static", "www-old", Some("old-www.example.org"));
    let out = export::nginx(&p, &NginxOpts::default());
    assert!(out.starts_with(&format!("{NGINX_HEADER}www-old ")));
    insta::assert_snapshot!("nginx_plain", out);
    let opts = NginxOpts {
        tls: Some(wildcard_tls(Path::new("/etc/ssl/wayback"))),
        ..NginxOpts::default()
    };
    insta::assert_snapshot!("nginx_tls", export::nginx(&p, &opts));
    let none = export::nginx(&plan_for("postgresql", "pg", None), &NginxOpts::default());
    assert!(none.contains("no HTTP route") && !none.contains("server {"));
}

/// Whether `program` can run here; prints why not.
fn runnable(program: &str, probe: &[&str]) -> bool {
    match Command::new(program).args(probe).output() {
        Ok(o) if o.status.success() => true,
        Ok(o) => {
            eprintln!(
                "skipped: `{program} {}` fails here: {}",
                probe.join(" "),
                String::from_utf8_lossy(&o.stderr).trim()
            );
            false
        }
        Err(e) => {
            eprintln!("skipped: {program} cannot run here ({e}); on Debian: apt-get install nix-bin / nginx");
            false
        }
    }
}

#[test]
fn nixos_output_parses_with_nix_instantiate() {
    if !runnable(
        "nix-instantiate",
        &["--store", "dummy://", "--parse", "-E", "{ }"],
    ) {
        return;
    }
    for plan in [cloud_plan(), plan_for("postgresql", "pg", None)] {
        let text = export::nixos(&plan);
        let out = Command::new("nix-instantiate")
            .args(["--store", "dummy://"])
            .args(["--parse", "-E", &text])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "nix-instantiate --parse failed: {}\n{text}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // The escaping round-trips through Nix's own evaluator.
    for s in [
        "plain",
        r#"q"b\s"#,
        "${HOME} $${x} $y",
        "l1\nl2\tt",
        "''x'' ${",
    ] {
        let out = Command::new("nix-instantiate")
            .args(["--store", "dummy://"])
            .args(["--eval", "--json", "-E", &export::nix_string(s)])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let back: String = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(back, s);
    }
}

/// Run `nginx -t` on a minimal main config that includes `vhost` (written into a temp dir).
fn nginx_check(dir: &Path, vhost: &str) -> Result<(), String> {
    let conf = dir.join("nginx.conf");
    std::fs::write(dir.join("vhost.conf"), vhost).unwrap();
    std::fs::write(
        &conf,
        format!(
            "events {{}}\nhttp {{\n    access_log off;\n    client_body_temp_path {d}/body;\n    proxy_temp_path {d}/proxy;\n    fastcgi_temp_path {d}/fastcgi;\n    uwsgi_temp_path {d}/uwsgi;\n    scgi_temp_path {d}/scgi;\n    include {d}/vhost.conf;\n}}\n",
            d = dir.display()
        ),
    )
    .unwrap();
    let d = dir.display().to_string();
    let out = Command::new(nginx_bin())
        .args(["-t", "-p", &d, "-c", &conf.display().to_string(), "-g"])
        .arg(format!("pid {d}/nginx.pid; error_log stderr;"))
        .output()
        .map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

fn nginx_bin() -> PathBuf {
    PathBuf::from("/usr/sbin/nginx")
}

#[test]
fn nginx_output_passes_nginx_t() {
    if !runnable(nginx_bin().to_str().unwrap(), &["-v"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let p = plan_for("nginx-static", "www-old", Some("old-www.example.org"));
    let plain = export::nginx(&p, &NginxOpts::default());
    nginx_check(dir.path(), &plain).unwrap_or_else(|e| panic!("nginx -t: {e}\n{plain}"));

    // Two instances side by side: their `map` variables must not clash.
    let other = export::nginx(&cloud_plan(), &NginxOpts::default());
    let both = format!("{plain}\n{other}");
    nginx_check(dir.path(), &both).unwrap_or_else(|e| panic!("nginx -t: {e}\n{both}"));

    // TLS needs a certificate nginx can load.
    let tls = wildcard_tls(dir.path());
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["*.example.org".to_string()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    std::fs::write(&tls.key, key.serialize_pem()).unwrap();
    std::fs::write(&tls.certificate, cert.pem()).unwrap();
    let opts = NginxOpts {
        tls: Some(tls),
        ..NginxOpts::default()
    };
    let text = export::nginx(&p, &opts);
    nginx_check(dir.path(), &text).unwrap_or_else(|e| panic!("nginx -t: {e}\n{text}"));
}
