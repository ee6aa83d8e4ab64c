//! Bad config files: unknown keys, relative directories, a bad pool, bad proxy settings, clone_dirs `up`
//! cannot use (another filesystem, a read-only mount), and files that are not configs at all (whose content
//! must never be echoed).

use std::fs;
use std::path::PathBuf;

use crate::fixture::{config_text, secrets, Fixture};
use crate::rows::{row, Row, EXIT};

pub fn configs(f: &Fixture) -> Vec<Row> {
    let (cx, wb) = (&f.cx, &f.wb);
    let dir = cx.tmp.join("configs");
    fs::create_dir_all(&dir).unwrap();
    let write = |name: &str, text: String| -> PathBuf {
        let p = dir.join(format!("{name}.toml"));
        fs::write(&p, text).unwrap();
        p
    };
    let cfg =
        |name: &str, replace: &[(&str, Option<&str>)]| write(name, config_text(wb, replace, ""));
    let q = |s: &str| format!("{s:?}");
    let s = cx.snap.as_str();
    // --allow-empty: these rows are about the config, not about what is bound.
    let up = ["up", s, "--exec", EXIT, "--allow-empty"];
    let invalid = "invalid config";
    let (other_fs, ro_dir, profiles) = (
        q(&cx.at("clones")),
        q(&cx.ro_clone_dir),
        format!("[{:?}]", cx.at("profiles")),
    );
    let mut v = vec![
        row("config: unknown key", &["ls"])
            .config(cfg("typo", &[("stat_dir", Some("\"/tmp/x\""))]))
            .has(&[invalid, "unknown field `stat_dir`", "expected one of"]),
        row("config: relative state_dir", &["ls"])
            .config(cfg(
                "rel-state",
                &[("state_dir", Some("\"var/lib/wayback\""))],
            ))
            .has(&["state_dir must be an absolute path"]),
        row("config: relative runtime_dir", &["ls"])
            .config(cfg("rel-run", &[("runtime_dir", Some("\"./run\""))]))
            .has(&["runtime_dir must be an absolute path"]),
        row("config: pool smaller than a /30", &["ls"])
            .config(cfg(
                "pool31",
                &[("address_pool", Some("\"10.213.0.0/31\""))],
            ))
            .has(&["address_pool 10.213.0.0/31 is smaller than one /30"]),
        row("config: pool not a network", &["ls"])
            .config(cfg("pool-bad", &[("address_pool", Some("\"nonsense\""))]))
            .has(&[invalid, "invalid IP address syntax"]),
        row("config: zero default_ttl", &["ls"])
            .config(cfg("ttl0", &[("default_ttl", Some("\"0s\""))]))
            .has(&[invalid, "longer than zero"]),
        row("config: bad base_domain", &["ls"])
            .config(cfg("domain", &[("base_domain", Some("\"bad_domain!\""))]))
            .has(&["base_domain: invalid hostname"]),
        row("config: relative profile_dirs", &["ls"])
            .config(cfg(
                "rel-profiles",
                &[("profile_dirs", Some("[\"profiles\"]"))],
            ))
            .has(&["profile_dirs must list absolute paths"]),
        row("config: relative snapshot_roots", &["ls"])
            .config(cfg(
                "rel-roots",
                &[("snapshot_roots", Some("[\"persist\"]"))],
            ))
            .has(&["snapshot_roots must list absolute paths"]),
        row("config: clone_dir with ..", &["ls"])
            .config(cfg("clone-dotdot", &[("clone_dir", Some("\"../clones\""))]))
            .has(&["clone_dir \"../clones\" must not contain '..'"]),
        row("config: bad listen", &["ls"])
            .config(write(
                "listen",
                config_text(wb, &[], "").replace("listen = \"", "listen = \"nope"),
            ))
            .has(&[invalid, "invalid socket address syntax"]),
        row("config: unknown proxy driver", &["ls"])
            .config(write("driver", config_text(wb, &[], "driver = \"apache\"")))
            .has(&["unknown variant `apache`"]),
        row("config: https_listen without certificates", &["ls"])
            .config(write(
                "https",
                config_text(wb, &[], "https_listen = \"127.0.0.1:0\""),
            ))
            .has(&["https_listen needs certificates"]),
        row("config: missing file", &["ls"])
            .config(cx.tmp.join("configs/none.toml"))
            .has(&["cannot read config", "none.toml"]),
        row("config: a directory", &["ls"])
            .config(dir.clone())
            .has(&["cannot read config"]),
        row("config: WAYBACK_CONFIG missing", &["ls"])
            .env("WAYBACK_CONFIG", "/wbt-none.toml")
            .has(&["cannot read config /wbt-none.toml"]),
        row("config: relative host_paths", &up)
            .config(cfg("rel-host-paths", &[("host_paths", Some("[\"srv\"]"))]))
            .has(&["host path srv must be absolute"]),
        row("config: relative mask_host_paths", &up)
            .config(cfg(
                "rel-masks",
                &[("mask_host_paths", Some("[\"etc/x\"]"))],
            ))
            .has(&["host path etc/x must be absolute"]),
        row("config: missing snapshot root", &["snapshots"])
            .config(cfg(
                "roots-missing",
                &[("snapshot_roots", Some("[\"/wbt-none\"]"))],
            ))
            .has(&["snapshot root /wbt-none does not exist"]),
        row("config: clone_dir on another filesystem", &up)
            .config(cfg("clone-other-fs", &[("clone_dir", Some(&other_fs))]))
            .has(&["on another filesystem", &cx.at("clones"), s]),
        row("config: clone_dir on a read-only mount", &up)
            .config(cfg("clone-ro", &[("clone_dir", Some(&ro_dir))]))
            .has(&["mounted read-only", &cx.ro_clone_dir, "--overlay"]),
        row(
            "config: profile in profile_dirs with an unknown user",
            &["up", s, "--profile", "unknown-user"],
        )
        .config(cfg("profile-dirs", &[("profile_dirs", Some(&profiles))]))
        .has(&["\"wbtnosuchuser\"", "does not exist on this host"]),
    ];
    for (name, _) in secrets() {
        let file = cx.tmp.join(format!("secrets/{name}"));
        let shown = file.display().to_string();
        v.push(
            row(&format!("--config {name} (a secret)"), &["ls"])
                .config(file)
                .has(&[invalid, &shown]),
        );
    }
    v
}
