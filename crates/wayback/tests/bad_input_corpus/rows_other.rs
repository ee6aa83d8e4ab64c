//! The other commands with bad arguments: every command that takes an instance name gets the path-like
//! ones; `snapshots`, `find`, `diff`, `profile`, `k8s`, `completions` get theirs (bad configs: `configs`).

use crate::fixture::{secrets, Fixture};
use crate::rows::{row, Row};

const NAME_RULE: &str = "invalid instance name";

fn bad_names() -> Vec<String> {
    let mut v: Vec<String> = ["", ".", "..", "../x", "a/b", "../../canary"]
        .iter()
        .map(std::string::ToString::to_string)
        .collect();
    v.push("a".repeat(300));
    v
}

pub fn other_rows(f: &Fixture) -> Vec<Row> {
    let mut v = instance_commands(f);
    v.extend(finding(f));
    v.extend(k8s(f));
    v.extend(crate::configs::configs(f));
    v
}

fn instance_commands(f: &Fixture) -> Vec<Row> {
    let run = f.cx.run.as_str();
    let none = "no instance named \"wbt-not-there\"";
    let mut v = Vec::new();
    for bad in bad_names() {
        let short = format!("{bad:.20?}");
        v.push(row(&format!("down {short}"), &["down", &bad]).has(&[NAME_RULE]));
        v.push(row(&format!("extend {short}"), &["extend", &bad, "1h"]).has(&[NAME_RULE]));
        v.push(row(&format!("status {short}"), &["status", &bad]).has(&[NAME_RULE]));
        v.push(row(&format!("logs {short}"), &["logs", &bad]).has(&[NAME_RULE]));
        v.push(row(&format!("export {short}"), &["export", "nixos", &bad]).has(&[NAME_RULE]));
    }
    v.extend([
        row("down without names", &["down"]).has(&["<NAMES>"]),
        row("down --all with a name", &["down", "--all", run])
            .has(&["'--all' cannot be used with"]),
        row("down of no such instance", &["down", "wbt-not-there"]).has(&[none, "wayback ls"]),
        row("down of a running and a bad name", &["down", run, "../x"])
            .has(&[NAME_RULE, "\"../x\""]),
        row(
            "down of a running and a missing one",
            &["down", run, "wbt-not-there"],
        )
        .has(&[none]),
        row(
            "down of a missing and a running one",
            &["down", "wbt-not-there", run],
        )
        .has(&[none]),
        row("extend without a duration", &["extend", run]).has(&["<DURATION>"]),
        row("extend by zero", &["extend", run, "0s"]).has(&["\"0s\"", "longer than zero"]),
        row("extend by garbage", &["extend", run, "5x"]).has(&["invalid duration \"5x\""]),
        row(
            "extend of no such instance",
            &["extend", "wbt-not-there", "1h"],
        )
        .has(&[none]),
        row("status without a name", &["status"]).has(&["<NAME>"]),
        row("status of no such instance", &["status", "wbt-not-there"]).has(&[none]),
        row("logs of no such instance", &["logs", "wbt-not-there"]).has(&[none]),
        row("logs with an unknown flag", &["logs", run, "--tail"])
            .has(&["unexpected argument '--tail'"]),
        row(
            "export of no such instance",
            &["export", "nixos", "wbt-not-there"],
        )
        .has(&[none]),
        row("export in an unknown format", &["export", "yaml", run])
            .has(&["'yaml'", "nixos, nginx"]),
        row(
            "export --tls-cert alone",
            &["export", "nginx", run, "--tls-cert", "/x"],
        )
        .has(&["--tls-key <FILE>"]),
        row("gc with an unknown flag", &["gc", "--bogus"]).has(&["unexpected argument '--bogus'"]),
        row("ls with an argument", &["ls", run]).has(&["unexpected argument"]),
        row("serve with an unknown flag", &["serve", "--bogus"])
            .has(&["unexpected argument '--bogus'"]),
        row("no command", &[]).has(&["requires a subcommand"]),
        row("unknown command", &["resurrect"]).has(&["unrecognized subcommand 'resurrect'"]),
        row("unknown global flag", &["--verbose", "ls"]).has(&["unexpected argument '--verbose'"]),
        row("completions for no shell", &["completions"]).has(&["<SHELL>"]),
        row(
            "completions for an unknown shell",
            &["completions", "klingon"],
        )
        .has(&["'klingon'", "bash"]),
    ]);
    v
}

fn finding(f: &Fixture) -> Vec<Row> {
    let (cx, root) = (&f.cx, f.cx.pool_root.as_str());
    let shadow = cx.at("secrets/shadow");
    vec![
        row("snapshots of a missing root", &["snapshots", "/wbt-none"])
            .has(&["snapshot root /wbt-none does not exist"]),
        row("snapshots of a file", &["snapshots", &cx.file]).has(&[&cx.file, "Not a directory"]),
        row("find an empty pattern", &["find", "", "--root", root]).has(&["invalid pattern \"\""]),
        row("find with ..", &["find", "../etc/passwd", "--root", root])
            .has(&["'..' would leave the snapshot"]),
        row("find an unclosed class", &["find", "a[", "--root", root]).has(&["unclosed '['"]),
        row(
            "find --in garbage",
            &["find", "x", "--in", "@5..@garbage", "--root", root],
        )
        .has(&["--in", "\"@garbage\""]),
        row(
            "find under a missing root",
            &["find", "x", "--root", "/wbt-none"],
        )
        .has(&["/wbt-none"]),
        row("find without roots", &["find", "x"]).has(&["which snapshots?", "--root ROOT"]),
        row("diff of a missing snapshot", &["diff", "/wbt-none"])
            .has(&["/wbt-none", "does not exist"]),
        row(
            "diff --path with ..",
            &["diff", &cx.snap, &cx.snap, "--path", "../etc"],
        )
        .has(&["--path ../etc", "'..'"]),
        row("diff of a bad selector", &["diff", "@garbage!"]).has(&["invalid snapshot selector"]),
        row("diff without snapshots", &["diff"]).has(&["<A>"]),
        row("profile show unknown", &["profile", "show", "wbt-nosuch"])
            .has(&["unknown profile \"wbt-nosuch\""]),
        row("profile show a secret", &["profile", "show", &shadow])
            .has(&["invalid profile", &shadow]),
        row("profile without a subcommand", &["profile"]).has(&["Usage"]),
        row("profile unknown subcommand", &["profile", "edit"])
            .has(&["unrecognized subcommand 'edit'"]),
        row(
            "profile from-units without units",
            &["profile", "from-units"],
        )
        .has(&["<UNIT>"]),
        row(
            "profile from-units unknown",
            &["profile", "from-units", "wbt-nosuch"],
        )
        .has(&["unit wbt-nosuch.service not found"]),
        row(
            "profile from-units bad name",
            &["profile", "from-units", "a/b"],
        )
        .has(&["invalid unit name \"a/b\""]),
        row(
            "profile from-units --ready port 0",
            &["profile", "from-units", "nginx", "--ready", "nginx=0"],
        )
        .has(&["bad port \"0\""]),
        row(
            "profile from-units --ready without port",
            &["profile", "from-units", "nginx", "--ready", "nginx"],
        )
        .has(&["expected UNIT=PORT"]),
        row(
            "profile from-units --port 0",
            &["profile", "from-units", "nginx", "--port", "0"],
        )
        .has(&["0 is not in 1..=65535"]),
    ]
}

fn k8s(f: &Fixture) -> Vec<Row> {
    let (cx, shop) = (&f.cx, f.cx.shop_yaml.as_str());
    let up = |label: &str, extra: &[&str], has: &[&str]| {
        let mut args = vec!["k8s", "up", "shop", "--dry-run", "--from", shop];
        args.extend_from_slice(extra);
        row(label, &args).has(has)
    };
    let mut v = vec![
        up(
            "k8s up --name",
            &["--name", "Bad_Name"],
            &["invalid name \"Bad_Name\""],
        ),
        up(
            "k8s up --host",
            &["--host", "bad_host!"],
            &["invalid hostname \"bad_host!\""],
        ),
        up(
            "k8s up --snapshot",
            &["--snapshot", "nopair"],
            &["expected PVC=VOLUMESNAPSHOT"],
        ),
        up(
            "k8s up --env",
            &["--env", "NOEQ"],
            &["invalid --env \"NOEQ\""],
        ),
        up(
            "k8s up --ttl",
            &["--ttl", "5x"],
            &["invalid duration \"5x\""],
        ),
        up(
            "k8s up --tls-issuer",
            &["--tls-issuer", "foo/bar"],
            &["invalid --tls-issuer \"foo/bar\""],
        ),
        up(
            "k8s up --ingress-pod-label",
            &["--ingress-pod-label", "novalue"],
            &["invalid label \"novalue\""],
        ),
        up(
            "k8s up --ingress-namespace",
            &["--ingress-namespace", "Bad_NS"],
            &["invalid namespace \"Bad_NS\""],
        ),
        up(
            "k8s up --at",
            &["--at", "garbage"],
            &["invalid time \"garbage\""],
        ),
        up(
            "k8s up -n",
            &["-n", "Bad_NS"],
            &["invalid namespace \"Bad_NS\""],
        ),
        up(
            "k8s up --namespace twice",
            &["-n", "shop", "-n", "shop"],
            &["cannot be used multiple times"],
        ),
        row(
            "k8s up of a missing workload",
            &[
                "k8s",
                "up",
                "nosuch",
                "-n",
                "shop",
                "--dry-run",
                "--from",
                shop,
            ],
        )
        .has(&["no Deployment or StatefulSet named nosuch"]),
        row(
            "k8s up --from a missing file",
            &[
                "k8s",
                "up",
                "shop",
                "-n",
                "shop",
                "--dry-run",
                "--from",
                "/wbt-none.yaml",
            ],
        )
        .has(&["--from /wbt-none.yaml"]),
        row("k8s extend by zero", &["k8s", "extend", "x", "0s"]).has(&["longer than zero"]),
        row("k8s extend of a path", &["k8s", "extend", "../x", "1h"])
            .has(&["invalid name \"../x\""]),
        row("k8s down without names", &["k8s", "down"]).has(&["<NAMES>"]),
        row("k8s down of a bad name", &["k8s", "down", "Bad_Name"])
            .has(&["invalid name \"Bad_Name\""]),
        row("k8s ls -n and -A", &["k8s", "ls", "-n", "a", "-A"]).has(&["cannot be used with"]),
        row("k8s ls of a bad namespace", &["k8s", "ls", "-n", "Bad_NS"])
            .has(&["invalid namespace \"Bad_NS\""]),
        row(
            "k8s manifests --namespace",
            &["k8s", "manifests", "--namespace", "Bad_NS"],
        )
        .has(&["invalid namespace \"Bad_NS\""]),
    ];
    for (name, _) in secrets() {
        let file = cx.at(&format!("secrets/{name}"));
        v.push(
            row(
                &format!("k8s up --from {name} (a secret)"),
                &[
                    "k8s",
                    "up",
                    "shop",
                    "-n",
                    "shop",
                    "--dry-run",
                    "--from",
                    &file,
                ],
            )
            .has(&[&file, "YAML document 1"]),
        );
    }
    v
}
