//! The Nix files of the repository (issue 9): `nix/package.nix` (the package) and `nix/module.nix` (the
//! NixOS module `services.wayback`) parse with `nix-instantiate --parse` (Debian's `nix-bin`), and both
//! evaluate against a small stand-in for nixpkgs (`lib`, `pkgs`, `rustPlatform`: just the functions the two
//! files call), which checks what they produce: the package's version, build flags, man page, completions
//! and wrapper; the module's /etc/wayback files and a `systemd.services.wayback` with exactly the settings
//! of packaging/wayback.service. A real nixpkgs is not reachable here, so the derivation itself is not built.
//!
//! Every `nix-instantiate` runs with `--store dummy://`: parsing and evaluating need no store, and the
//! host's /nix (Debian's nix-bin keeps a store database there) is never touched. When `nix-instantiate`
//! cannot run, each test prints why it was skipped (install `nix-bin`).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn nix_instantiate(args: &[&str]) -> std::io::Result<Output> {
    Command::new("nix-instantiate")
        .args(["--store", "dummy://"])
        .args(args)
        .env("NIX_PATH", "")
        .output()
}

/// Whether nix-instantiate runs here; if not, say why the test is skipped.
fn nix_available(test: &str) -> bool {
    match nix_instantiate(&["--parse", "-E", "{ }"]) {
        Ok(o) if o.status.success() => true,
        // Straight to the process's stderr: the harness would swallow eprintln! of a passing test.
        Ok(o) => {
            let _ = writeln!(
                std::io::stderr(),
                "SKIP: {test}: `nix-instantiate --parse` fails here: {}",
                String::from_utf8_lossy(&o.stderr).trim()
            );
            false
        }
        Err(e) => {
            let _ = writeln!(
                std::io::stderr(),
                "SKIP: {test}: nix-instantiate cannot run here ({e}); on Debian: apt-get install nix-bin"
            );
            false
        }
    }
}

#[test]
fn package_and_module_parse() {
    if !nix_available("package_and_module_parse") {
        return;
    }
    for file in ["nix/package.nix", "nix/module.nix"] {
        let path = root().join(file);
        let out = nix_instantiate(&["--parse", path.to_str().unwrap()]).unwrap();
        assert!(
            out.status.success(),
            "nix-instantiate --parse {file} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// Stand-ins for the parts of nixpkgs the two files use, and what the test reads back.
const STUB: &str = r#"
{ root }:
let
  stub = name: "/nix/store/00000000000000000000000000000000-${name}";
  lib = {
    mkEnableOption = d: { _option = "enable"; description = d; };
    mkOption = o: o // { _option = "option"; };
    literalExpression = text: { _type = "literalExpression"; inherit text; };
    types = { package = "package"; str = "str"; attrsOf = t: { attrsOf = t; }; };
    mkIf = c: v: if c then v else { };
    nameValuePair = name: value: { inherit name value; };
    mapAttrs' = f: s: builtins.listToAttrs (map (n: f n s.${n}) (builtins.attrNames s));
    getExe = p: "${p.outPath}/bin/${p.meta.mainProgram}";
    importTOML = p: builtins.fromTOML (builtins.readFile p);
    fileset = {
      unions = fs: map toString fs;
      toSource = { root, fileset }: { root = toString root; inherit fileset; };
    };
    optionalString = c: s: if c then s else "";
    makeBinPath = ps: builtins.concatStringsSep ":" (map (p: "${p}/bin") ps);
    licenses = { mit = "MIT"; asl20 = "Apache-2.0"; };
    platforms.linux = [ "x86_64-linux" "aarch64-linux" ];
  };
  pkg = import (root + "/nix/package.nix") {
    inherit lib;
    stdenv = { buildPlatform.canExecute = _: true; hostPlatform = { }; };
    rustPlatform = { buildRustPackage = a: a; bindgenHook = "bindgenHook"; };
    pkg-config = "pkg-config";
    makeWrapper = "makeWrapper";
    installShellFiles = "installShellFiles";
    systemd = stub "systemd";
    btrfs-progs = stub "btrfs-progs";
    nftables = stub "nftables";
    iproute2 = stub "iproute2";
    util-linux = stub "util-linux";
  };
  pkgs = {
    formats.toml = { }: { type = "toml"; generate = name: value: { inherit name value; }; };
    callPackage = _: _: throw "the default of services.wayback.package is not evaluated by this test";
  };
  settings = { base_domain = "wayback.example.org"; proxy.listen = "127.0.0.1:8080"; };
  profiles.wiki = { binds = [ "/srv/wiki" ]; http_port = 80; process = [ { name = "web"; shell = "exec php -S 0.0.0.0:80 -t /srv/wiki"; } ]; };
  profiles.named = { name = "other"; binds = [ "/srv/x" ]; };
  verify = {
    enable = true;
    startAt = "*-*-* 05:00:00";
    jobs.pg = { root = "/persist/.snapshots"; run.unit = [ "postgresql" ]; check = [ { tcp = 5432; } ]; };
  };
  wayback = { outPath = stub "wayback"; meta.mainProgram = pkg.meta.mainProgram; };
  enabled = import (root + "/nix/module.nix") {
    inherit lib pkgs;
    config = {
      services.wayback = { enable = true; package = wayback; inherit settings profiles verify; };
      environment.etc = enabled.config.environment.etc;
    };
  };
  disabled = import (root + "/nix/module.nix") {
    inherit lib pkgs;
    config.services.wayback = { enable = false; package = wayback; inherit settings profiles; };
  };
in {
  package = {
    inherit (pkg) pname version cargoBuildFlags doCheck postInstall postFixup nativeBuildInputs src;
    inherit (pkg.meta) mainProgram platforms;
    lockFile = toString pkg.cargoLock.lockFile;
  };
  module = enabled.config;
  disabled = disabled.config;
  options = builtins.attrNames enabled.options.services.wayback;
}
"#;

/// `[Section]` → key → values (in order) of a unit file.
fn unit_sections(text: &str) -> BTreeMap<String, BTreeMap<String, Vec<String>>> {
    let mut out: BTreeMap<String, BTreeMap<String, Vec<String>>> = BTreeMap::new();
    let mut section = String::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(s) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = s.to_string();
            continue;
        }
        let (k, v) = line.split_once('=').expect("key=value");
        out.entry(section.clone())
            .or_default()
            .entry(k.trim().to_string())
            .or_default()
            .push(v.trim().to_string());
    }
    out
}

/// `version` of `[workspace.package]` in the workspace's Cargo.toml.
fn workspace_version(root: &Path) -> String {
    let text = std::fs::read_to_string(root.join("Cargo.toml")).unwrap();
    let mut in_section = false;
    for line in text.lines().map(str::trim) {
        if line.starts_with('[') {
            in_section = line == "[workspace.package]";
        } else if let Some(v) = line.strip_prefix("version").filter(|_| in_section) {
            return v
                .trim_start_matches([' ', '='])
                .trim()
                .trim_matches('"')
                .to_string();
        }
    }
    panic!("no version in [workspace.package] of Cargo.toml");
}

/// A NixOS unit setting as systemd sees it: booleans become yes/no, lists are joined with spaces.
fn systemd_value(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Bool(true) => "yes".into(),
        serde_json::Value::Bool(false) => "no".into(),
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Number(n) => n.to_string(),
        serde_json::Value::Array(a) => a.iter().map(systemd_value).collect::<Vec<_>>().join(" "),
        other => panic!("unexpected unit value {other}"),
    }
}

#[test]
fn package_and_module_evaluate_with_stub_nixpkgs() {
    if !nix_available("package_and_module_evaluate_with_stub_nixpkgs") {
        return;
    }
    let root = std::fs::canonicalize(root()).unwrap();
    let root_s = root.to_str().unwrap();
    let out = nix_instantiate(&[
        "--eval", "--strict", "--json", "--argstr", "root", root_s, "-E", STUB,
    ])
    .unwrap();
    assert!(
        out.status.success(),
        "evaluating nix/package.nix and nix/module.nix failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();

    // The package.
    let p = &v["package"];
    assert_eq!(p["pname"], "wayback");
    assert_eq!(
        p["version"].as_str(),
        Some(workspace_version(&root).as_str())
    );
    assert_eq!(p["mainProgram"], "wayback");
    assert_eq!(
        p["cargoBuildFlags"],
        serde_json::json!(["--package", "wayback"])
    );
    assert_eq!(p["doCheck"], false);
    assert_eq!(p["lockFile"], format!("{root_s}/Cargo.lock"));
    assert_eq!(p["src"]["root"], root_s);
    let fileset: Vec<&str> = p["src"]["fileset"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    for f in ["Cargo.toml", "Cargo.lock", "crates"] {
        assert!(
            fileset.contains(&format!("{root_s}/{f}").as_str()),
            "{f} not in the source: {fileset:?}"
        );
    }
    let native = p["nativeBuildInputs"].to_string();
    for i in [
        "bindgenHook",
        "pkg-config",
        "makeWrapper",
        "installShellFiles",
    ] {
        assert!(native.contains(i), "nativeBuildInputs lacks {i}: {native}");
    }
    let install = p["postInstall"].as_str().unwrap();
    assert!(
        install.contains("\"$out/bin/wayback\" manpage > wayback.1"),
        "{install}"
    );
    assert!(install.contains("installManPage wayback.1"), "{install}");
    for sh in ["bash", "zsh", "fish"] {
        assert!(
            install.contains(&format!("--{sh} <(\"$out/bin/wayback\" completions {sh})")),
            "{install}"
        );
    }
    let fixup = p["postFixup"].as_str().unwrap();
    assert!(
        fixup.contains("wrapProgram \"$out/bin/wayback\""),
        "{fixup}"
    );
    for tool in [
        "systemd",
        "btrfs-progs",
        "nftables",
        "iproute2",
        "util-linux",
    ] {
        assert!(
            fixup.contains(&format!("00000000000000000000000000000000-{tool}/bin")),
            "the wrapper's PATH lacks {tool}: {fixup}"
        );
    }

    // The module: options, files in /etc, the package on PATH.
    assert_eq!(
        v["options"],
        serde_json::json!(["enable", "package", "profiles", "settings", "verify"])
    );
    assert_eq!(
        v["disabled"],
        serde_json::json!({}),
        "enable = false adds nothing"
    );
    let m = &v["module"];
    let store_wayback = "/nix/store/00000000000000000000000000000000-wayback";
    // (Nix writes a package, an attribute set with outPath, as that path.)
    assert_eq!(m["environment"]["systemPackages"][0], store_wayback);
    let etc = &m["environment"]["etc"];
    assert_eq!(
        etc["wayback/config.toml"]["source"]["value"],
        serde_json::json!({ "base_domain": "wayback.example.org", "proxy": { "listen": "127.0.0.1:8080" } })
    );
    let wiki = &etc["wayback/profiles/wiki.toml"]["source"]["value"];
    assert_eq!(
        wiki["name"], "wiki",
        "the attribute name is the profile's name"
    );
    assert_eq!(wiki["binds"], serde_json::json!(["/srv/wiki"]));
    assert_eq!(wiki["process"][0]["name"], "web");
    assert_eq!(
        etc["wayback/profiles/named.toml"]["source"]["value"]["name"], "other",
        "a profile's own name wins"
    );

    // systemd.services.wayback says what packaging/wayback.service says.
    let svc = &m["systemd"]["services"]["wayback"];
    let unit =
        unit_sections(&std::fs::read_to_string(root.join("packaging/wayback.service")).unwrap());
    let one = |sec: &str, key: &str| unit[sec][key].join(" ");
    assert_eq!(
        svc["description"].as_str().unwrap(),
        one("Unit", "Description")
    );
    assert_eq!(
        systemd_value(&svc["documentation"]),
        one("Unit", "Documentation")
    );
    assert_eq!(systemd_value(&svc["after"]), one("Unit", "After"));
    assert_eq!(systemd_value(&svc["wants"]), one("Unit", "Wants"));
    assert_eq!(systemd_value(&svc["wantedBy"]), one("Install", "WantedBy"));
    let sc = svc["serviceConfig"].as_object().unwrap();
    let deb = &unit["Service"];
    for (k, vals) in deb {
        let ours = sc.get(k).unwrap_or_else(|| {
            panic!("the module's serviceConfig lacks {k}= of packaging/wayback.service")
        });
        if k == "ExecStart" {
            let ours = systemd_value(ours);
            let theirs = vals.join(" ");
            let args = |s: &str| s.split_whitespace().skip(1).collect::<Vec<_>>().join(" ");
            assert_eq!(
                ours.split_whitespace().next(),
                Some(format!("{store_wayback}/bin/wayback").as_str())
            );
            assert_eq!(args(&ours), args(&theirs), "ExecStart arguments");
        } else {
            assert_eq!(systemd_value(ours), vals.join(" "), "{k}=");
        }
    }
    for k in sc.keys() {
        assert!(
            deb.contains_key(k),
            "the module sets {k}=, which packaging/wayback.service does not"
        );
    }
    // The daemon restarts when its configuration changes (it reads it at start).
    assert_eq!(
        svc["restartTriggers"][0],
        etc["wayback/config.toml"]["source"]
    );

    check_verify_units(&root, m, store_wayback);
}

/// `services.wayback.verify`: its jobs in /etc/wayback/verify.d, and a service and timer that say what
/// packaging/wayback-verify.{service,timer} say.
fn check_verify_units(root: &Path, m: &serde_json::Value, store_wayback: &str) {
    let job = &m["environment"]["etc"]["wayback/verify.d/pg.toml"]["source"]["value"];
    assert_eq!(job["root"], "/persist/.snapshots", "{job}");
    let read =
        |f: &str| unit_sections(&std::fs::read_to_string(root.join("packaging").join(f)).unwrap());
    let (service, timer) = (read("wayback-verify.service"), read("wayback-verify.timer"));
    let svc = &m["systemd"]["services"]["wayback-verify"];
    assert_eq!(
        svc["description"].as_str().unwrap(),
        service["Unit"]["Description"].join(" ")
    );
    assert_eq!(
        systemd_value(&svc["after"]),
        service["Unit"]["After"].join(" ")
    );
    assert_eq!(
        systemd_value(&svc["unitConfig"]["ConditionDirectoryNotEmpty"]),
        service["Unit"]["ConditionDirectoryNotEmpty"].join(" ")
    );
    let sc = svc["serviceConfig"].as_object().unwrap();
    for (k, vals) in &service["Service"] {
        let ours = systemd_value(
            sc.get(k)
                .unwrap_or_else(|| panic!("the module's wayback-verify serviceConfig lacks {k}=")),
        );
        let theirs = vals.join(" ");
        if k == "ExecStart" {
            assert_eq!(
                ours,
                theirs.replace("/usr/bin/wayback", &format!("{store_wayback}/bin/wayback"))
            );
        } else {
            assert_eq!(ours, theirs, "{k}=");
        }
    }
    assert_eq!(sc.len(), service["Service"].len(), "{sc:?}");
    let t = &m["systemd"]["timers"]["wayback-verify"];
    assert_eq!(
        systemd_value(&t["wantedBy"]),
        timer["Install"]["WantedBy"].join(" ")
    );
    let tc = t["timerConfig"].as_object().unwrap();
    for (k, vals) in &timer["Timer"] {
        assert_eq!(systemd_value(&tc[k]), vals.join(" "), "{k}=");
    }
    assert_eq!(tc.len(), timer["Timer"].len(), "{tc:?}");
}
