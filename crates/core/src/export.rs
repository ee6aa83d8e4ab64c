//! Exports of a [`Plan`] as the configuration an admin would have written by hand: a NixOS module with a
//! `containers.<name>` equivalent to the instance (and the host nginx's virtual host, as in the seed's blog
//! post), and an nginx server block for the host's own reverse proxy. Both come from the same `Plan` value
//! `up` applies; docs/export.md shows examples. Pure string building, with Nix and nginx quoting.

use std::fmt::Write;
use std::path::PathBuf;

use crate::plan::{shell_words, Plan};
use crate::profile::Ready;

/// The first line of every nginx file wayback writes starts with this, then the instance name.
pub const NGINX_HEADER: &str = "# Written by wayback for instance ";

/// What the container's `config` needs from the admin (as in the seed's blog post).
const CONFIG_HINT: &str =
    "Import the module that configures this service on your host, and pin what must match the
snapshot, for example:
  imports = [ ./modules/myservice ];
  system.stateVersion = \"...\";         # the host's
  users.users.<name>.uid = <uid>;      # the owners of the bound paths
  networking.firewall.enable = false;";

/// NixOS container names with `privateNetwork` must fit the `ve-<name>` interface name.
const NIXOS_NAME_MAX: usize = 11;

/// A Nix double-quoted string: `"`, `\` and `${` escaped, control characters as escapes.
pub fn nix_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '$' if chars.peek() == Some(&'{') => out.push_str("\\$"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Append `text` as `#` comment lines, indented.
fn comment(out: &mut String, indent: &str, text: &str) {
    for line in text.lines() {
        let line = line.trim_end();
        if line.is_empty() {
            let _ = writeln!(out, "{indent}#");
        } else {
            let _ = writeln!(out, "{indent}# {line}");
        }
    }
}

fn ready_text(r: &Option<Ready>) -> String {
    match r {
        Some(Ready { tcp: Some(p), .. }) => format!("TCP port {p} accepts a connection"),
        Some(Ready {
            http: Some(p),
            http_path,
            ..
        }) => format!(
            "HTTP port {p} answers {}",
            http_path.as_deref().unwrap_or("/")
        ),
        Some(Ready { path: Some(p), .. }) => format!("{} exists", p.display()),
        _ => "the processes have started".into(),
    }
}

/// What wayback runs inside the instance, as comment text.
fn services_comment(plan: &Plan) -> String {
    let mut s = format!(
        "wayback runs these in host mode (the host's /usr and /etc, read-only), profile {:?}:\n",
        plan.profile
    );
    for d in &plan.init.dirs {
        let owner = d.owner.as_deref().unwrap_or("root");
        let mode = d.mode.as_deref().unwrap_or("0755");
        let _ = writeln!(s, "  dir {} ({owner}, {mode})", d.path.display());
    }
    for p in &plan.init.processes {
        let user = p.user.as_deref().unwrap_or("root");
        match (&p.command, &p.shell) {
            (Some(c), _) => {
                let _ = writeln!(s, "  {} as {user}: {}", p.name, shell_words(c));
            }
            (None, Some(sh)) => {
                let _ = writeln!(s, "  {} as {user}, a shell script:", p.name);
                for line in sh.lines() {
                    let _ = writeln!(s, "    {line}");
                }
            }
            (None, None) => {}
        }
        if p.ready.is_some() {
            let _ = writeln!(s, "    then waits until {}", ready_text(&p.ready));
        }
    }
    let _ = write!(s, "ready when {}", ready_text(&plan.ready));
    s
}

/// A NixOS module (an attribute set) declaring the instance as `containers.<name>`, plus
/// `services.nginx.virtualHosts.<host>` when the plan has an HTTP route.
pub fn nixos(plan: &Plan) -> String {
    let name = plan.name.as_str();
    let mut o = String::new();
    comment(&mut o, "", &format!(
        "Written by wayback: instance {name} (profile {}) as a NixOS container, from the plan `wayback up` applies.\n\
         wayback would remove its instance after {} (at unix time {}); a NixOS container stays until you remove this.",
        plan.profile, plan.ttl, plan.expires
    ));
    if plan.software.source == crate::drift::Software::Snapshot {
        comment(&mut o, "", "wayback would run the snapshot's own software (--software snapshot); a NixOS container runs\n\
             this host's store and /etc: the snapshot's /usr, /etc and /nix are not used here.");
    }
    o.push_str("{\n");
    let _ = writeln!(o, "  containers.{} = {{", nix_string(name));
    if name.len() > NIXOS_NAME_MAX {
        comment(&mut o, "    ", &format!(
            "NixOS allows at most {NIXOS_NAME_MAX} characters in the name of a container with privateNetwork: rename {name:?}."
        ));
    }
    comment(&mut o, "    ", &format!(
        "Own network namespace with a veth pair to the host; wayback adds no route out and no NAT (here: {} <-> {}).",
        plan.host_if, plan.peer_if
    ));
    comment(
        &mut o,
        "    ",
        &if plan.allow_egress.is_empty() {
            "wayback also quarantines the instance (nftables): it can open no connection. Without NAT on the host,\n\
         a NixOS container with privateNetwork cannot reach beyond the host either."
            .to_string()
        } else {
            format!(
            "wayback's quarantine lets the instance open only {}; a NixOS container needs NAT and\n\
             firewall rules on the host for that.",
            crate::egress::join(&plan.allow_egress)
        )
        },
    );
    o.push_str("    privateNetwork = true;\n");
    let _ = writeln!(
        o,
        "    hostAddress = {};",
        nix_string(&plan.block.host.to_string())
    );
    let _ = writeln!(
        o,
        "    localAddress = {};",
        nix_string(&plan.block.peer.to_string())
    );
    comment(
        &mut o,
        "    ",
        "A fresh, empty root on every start, like wayback's tmpfs root.",
    );
    o.push_str("    ephemeral = true;\n    tmpfs = [ \"/\" ];\n");
    // The clone's data; wayback's own binds (the app's logs kept in its instance directory) stay out.
    let binds: Vec<_> = plan
        .container
        .binds
        .iter()
        .filter(|b| b.clone.is_some())
        .collect();
    if !binds.is_empty() {
        comment(
            &mut o,
            "    ",
            &format!(
            "From the writable clone of {}; make it first with\n  btrfs subvolume snapshot {} {}",
            plan.source.path.display(),
            shell_words(&[plan.source.path.display().to_string()]),
            shell_words(&[plan.clone.display().to_string()]),
        ),
        );
        o.push_str("    bindMounts = {\n");
        for b in binds {
            let _ = writeln!(
                o,
                "      {} = {{",
                nix_string(&b.dest.display().to_string())
            );
            let _ = writeln!(
                o,
                "        hostPath = {};",
                nix_string(&b.data_path().display().to_string())
            );
            let _ = writeln!(o, "        isReadOnly = {};", b.readonly);
            o.push_str("      };\n");
        }
        o.push_str("    };\n");
    }
    for p in &plan.publish {
        comment(&mut o, "    ", &format!(
            "wayback publishes {} to port {}; NixOS: forwardPorts = [ {{ hostPort = {}; containerPort = {}; }} ];",
            p.listen, p.port, p.listen.port(), p.port
        ));
    }
    o.push_str("    config = { config, lib, pkgs, ... }: {\n");
    comment(&mut o, "      ", CONFIG_HINT);
    o.push_str("      #\n");
    comment(&mut o, "      ", &services_comment(plan));
    o.push_str("    };\n  };\n");
    if let Some(h) = &plan.http {
        o.push('\n');
        let _ = writeln!(
            o,
            "  services.nginx.virtualHosts.{} = {{",
            nix_string(&h.host)
        );
        comment(&mut o, "    ", "With the host's wildcard certificate: forceSSL = true; useACMEHost = \"<parent domain>\";");
        let _ = writeln!(o, "    locations.\"/\" = {{");
        let _ = writeln!(
            o,
            "      proxyPass = {};",
            nix_string(&format!("http://{}:{}", plan.block.peer, h.port))
        );
        o.push_str("      proxyWebsockets = true;\n    };\n  };\n");
    }
    o.push_str("}\n");
    o
}

/// TLS for the nginx export: the host's certificate for the parent domain (e.g. a wildcard).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NginxTls {
    pub certificate: PathBuf,
    pub key: PathBuf,
    /// Port for HTTPS (443).
    pub port: u16,
    /// Also answer plain HTTP with a redirect to HTTPS.
    pub redirect_http: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NginxOpts {
    /// Port for plain HTTP (80).
    pub http_port: u16,
    /// Also listen on IPv6 (`[::]`).
    pub ipv6: bool,
    pub tls: Option<NginxTls>,
}

impl Default for NginxOpts {
    fn default() -> Self {
        NginxOpts {
            http_port: 80,
            ipv6: true,
            tls: None,
        }
    }
}

/// A value in an nginx directive: quoted when it holds anything but plain characters. (nginx has no
/// escape for `$`; paths with `$` would be read as variables.)
pub fn nginx_value(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/._-:+@".contains(&b))
    {
        s.to_string()
    } else {
        format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
    }
}

/// An nginx server block proxying the instance's hostname to it, for the host's nginx (`http` context).
pub fn nginx(plan: &Plan, opts: &NginxOpts) -> String {
    let name = plan.name.as_str();
    let mut o = format!(
        "{NGINX_HEADER}{name} (profile {}). wayback removes this file with the instance; do not edit it.\n",
        plan.profile
    );
    let Some(h) = &plan.http else {
        o.push_str("# The instance has no HTTP route (no --port and no http_port in its profile): nothing to proxy.\n");
        return o;
    };
    let var = format!("$wayback_{}_connection", name.replace('-', "_"));
    let listen = |o: &mut String, port: u16, extra: &str| {
        let _ = writeln!(o, "    listen {port}{extra};");
        if opts.ipv6 {
            let _ = writeln!(o, "    listen [::]:{port}{extra};");
        }
    };
    let _ = write!(
        o,
        "# Expires with the instance after {} (unix time {}).\n\nmap $http_upgrade {var} {{\n    default upgrade;\n    '' close;\n}}\n\nserver {{\n",
        plan.ttl, plan.expires
    );
    match &opts.tls {
        Some(t) => {
            listen(&mut o, t.port, " ssl");
            let _ = writeln!(o, "    server_name {};", h.host);
            let _ = writeln!(
                o,
                "    ssl_certificate {};",
                nginx_value(&t.certificate.display().to_string())
            );
            let _ = writeln!(
                o,
                "    ssl_certificate_key {};",
                nginx_value(&t.key.display().to_string())
            );
        }
        None => {
            listen(&mut o, opts.http_port, "");
            let _ = writeln!(o, "    server_name {};", h.host);
        }
    }
    let _ = write!(
        o,
        "\n    location / {{\n        proxy_pass http://{}:{};\n        proxy_http_version 1.1;\n        proxy_set_header Host $host;\n        proxy_set_header X-Real-IP $remote_addr;\n        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\n        proxy_set_header X-Forwarded-Proto $scheme;\n        proxy_set_header X-Forwarded-Host $host;\n        proxy_set_header Upgrade $http_upgrade;\n        proxy_set_header Connection {var};\n        proxy_read_timeout 1h;\n        proxy_buffering off;\n        client_max_body_size 0;\n    }}\n}}\n",
        plan.block.peer, h.port
    );
    if let Some(t) = opts.tls.as_ref().filter(|t| t.redirect_http) {
        o.push_str("\nserver {\n");
        listen(&mut o, opts.http_port, "");
        let _ = writeln!(o, "    server_name {};", h.host);
        let target = if t.port == 443 {
            "https://$host$request_uri".to_string()
        } else {
            format!("https://$host:{}$request_uri", t.port)
        };
        let _ = writeln!(o, "    return 301 {target};\n}}");
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nix_escaping() {
        assert_eq!(
            nix_string(r#"a"b\c ${x} $y $${z}"#),
            r#""a\"b\\c \${x} $y $\${z}""#
        );
        assert_eq!(nix_string("l1\nl2\t"), r#""l1\nl2\t""#);
    }

    #[test]
    fn nginx_values() {
        assert_eq!(nginx_value("/etc/ssl/x.pem"), "/etc/ssl/x.pem");
        assert_eq!(nginx_value("/a b/\"c\";"), r#""/a b/\"c\";""#);
    }
}
