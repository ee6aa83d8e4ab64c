//! The parts of a service's conversion that read its command lines and sockets: `Exec*=` commands with their
//! prefixes (`-`, `@`, `+`, `!`, `!!`, `:`, `|`), `KillSignal=` names, the `.socket` unit's `ListenStream=`
//! (readiness only; socket activation is not used), each process's readiness (with the app's port from
//! appconf.rs), and the absolute paths a unit mentions (for tmpfiles.d).

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::context::{Ctx, Effective};
use super::convert::Input;
use super::parse::{parse_exec, Assignment, Privilege};
use super::script::Cmd;
use super::search::LoadedUnit;
use super::words::{expand_env, specifiers, Names};
use super::{ReportKind, UnitError};
use crate::profile::Ready;

/// The commands of `key` (`ExecStartPre`, …) in effect: prefixes honoured or reported, specifiers and
/// `$VAR`s expanded.
pub(crate) fn commands<'a>(
    cx: &mut Ctx,
    eff: &Effective<'a>,
    key: &str,
    env: &BTreeMap<String, String>,
    user: &Option<String>,
) -> Result<Vec<(Cmd, &'a Assignment)>, UnitError> {
    let mut out = Vec::new();
    for &a in eff.all("Service", key) {
        let parsed =
            parse_exec(&a.value).map_err(|m| invalid(&cx.id, a, format!("{key}=: {m}")))?;
        for c in parsed {
            let mut argv = cx.expand(a, &c.argv);
            if !c.no_env_expand {
                let mut unset = Vec::new();
                argv = expand_env(&argv, env, &mut unset);
                if !unset.is_empty() {
                    let names: Vec<String> = unset.iter().map(|n| format!("${n}")).collect();
                    cx.report(a, ReportKind::Approximated, format!(
                        "{} not set by Environment=/EnvironmentFile=: expanded to nothing (systemd might take it from the service manager's environment, e.g. `systemctl set-environment`)",
                        names.join(", ")
                    ));
                }
            }
            if argv.is_empty() {
                return Err(invalid(
                    &cx.id,
                    a,
                    format!("{key}=: the command is empty after expanding variables"),
                ));
            }
            if let Some(a0) = &c.argv0 {
                let a0 = cx.expand_one(a, a0);
                cx.report(
                    a,
                    ReportKind::Approximated,
                    format!("'@': argv[0] {a0:?} is not set; the program sees its path"),
                );
            }
            if c.via_shell {
                argv = vec!["/bin/sh".into(), "-c".into(), argv.join(" ")];
                cx.report(
                    a,
                    ReportKind::Approximated,
                    "'|': run with /bin/sh -c, not the user's login shell",
                );
            }
            if c.privilege == Privilege::AmbientOnly && user.is_some() {
                cx.report(a, ReportKind::Approximated, "'!!': runs as User= without ambient capabilities (AmbientCapabilities= is not applied)");
            }
            let as_root =
                user.is_some() && matches!(c.privilege, Privilege::Full | Privilege::NoUserChange);
            out.push((
                Cmd {
                    argv,
                    ignore_failure: c.ignore_failure,
                    as_root,
                },
                a,
            ));
        }
    }
    Ok(out)
}

/// A unit file error at `a`'s line.
pub(crate) fn invalid(id: &str, a: &Assignment, message: String) -> UnitError {
    UnitError::Invalid {
        unit: id.to_string(),
        file: a.loc.file.clone(),
        line: a.loc.line,
        message,
    }
}

/// Absolute paths in the values still in effect (for tmpfiles.d).
pub(crate) fn mentions(units: &[&LoadedUnit], names: &Names) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for u in units {
        let eff = Effective::new(&u.assignments);
        for a in u.assignments.iter().filter(|a| eff.holds(a)) {
            for tok in a
                .value
                .split(|c: char| c.is_whitespace() || "\"'=:;,".contains(c))
            {
                let tok = specifiers(tok, names, &mut Vec::new());
                if tok.starts_with('/')
                    && !out.iter().any(|p: &PathBuf| p.as_os_str() == tok.as_str())
                {
                    out.push(PathBuf::from(tok));
                }
            }
        }
    }
    out
}

const SIGNALS: &[&str] = &[
    "HUP", "INT", "QUIT", "ILL", "TRAP", "ABRT", "BUS", "FPE", "KILL", "USR1", "SEGV", "USR2",
    "PIPE", "ALRM", "TERM", "STKFLT", "CHLD", "CONT", "STOP", "TSTP", "TTIN", "TTOU", "URG",
    "XCPU", "XFSZ", "VTALRM", "PROF", "WINCH", "IO", "PWR", "SYS",
];

/// `SIGTERM`, `TERM` or `15` → `TERM`.
pub(crate) fn signal_name(v: &str) -> Option<String> {
    if let Ok(n) = v.parse::<usize>() {
        return SIGNALS
            .get(n.checked_sub(1)?)
            .map(std::string::ToString::to_string);
    }
    let up = v.to_ascii_uppercase();
    let name = up.strip_prefix("SIG").unwrap_or(&up);
    SIGNALS.contains(&name).then(|| name.to_string())
}

/// Ports and paths of a .socket unit's `ListenStream=`.
pub(crate) fn listen_streams(cx: &mut Ctx, sock: &LoadedUnit) -> (Option<u16>, Option<PathBuf>) {
    let eff = Effective::new(&sock.assignments);
    let (mut tcp, mut unix) = (None, None);
    for a in eff.all("Socket", "ListenStream") {
        let v = cx.expand_one(a, &a.value);
        if v.starts_with('/') {
            unix.get_or_insert(PathBuf::from(&v));
        } else if let Some(p) = v.rsplit(':').next().and_then(|p| p.parse::<u16>().ok()) {
            tcp.get_or_insert(p);
        }
        cx.report(a, ReportKind::Note, format!(
            "{}: socket activation is not used (the service must open its sockets itself); used for readiness only",
            sock.name.full
        ));
    }
    (tcp, unix)
}

/// Names of the .socket units to read `ListenStream=` from: `Sockets=`, else the unit's own name.
pub(crate) fn socket_names(u: &LoadedUnit) -> Vec<String> {
    let eff = Effective::new(&u.assignments);
    let listed: Vec<String> = eff
        .all("Service", "Sockets")
        .iter()
        .flat_map(|a| a.value.split_whitespace().map(str::to_string))
        .collect();
    if !listed.is_empty() {
        return listed;
    }
    let stem = u.name.full.strip_suffix(".service").unwrap_or(&u.name.full);
    vec![format!("{stem}.socket")]
}

/// The TCP port known for the unit, and where it comes from: a port the caller names, else the .socket's
/// `ListenStream=` port, else the port the app's config names (or the app's default).
pub(crate) fn known_port(inp: &Input, socket_tcp: Option<u16>) -> Option<(u16, String)> {
    if let Some(p) = inp.ready_port {
        return Some((p, "given with --ready".into()));
    }
    if let (Some(p), Some(s)) = (socket_tcp, inp.socket) {
        return Some((p, format!("ListenStream= of {}", s.name.full)));
    }
    inp.app_port.map(|f| (f.value, f.reason.clone()))
}

/// A port the caller names wins; then the wrapper's start marker; then the known TCP port; then the
/// .socket's unix socket.
pub(crate) fn readiness(
    inp: &Input,
    marker: Option<&PathBuf>,
    port: Option<&(u16, String)>,
    unix: Option<&PathBuf>,
) -> Option<Ready> {
    let path_ready = |p: &PathBuf| Ready {
        path: Some(p.clone()),
        ..Ready::default()
    };
    if let Some(p) = inp.ready_port {
        return Some(Ready::tcp(p));
    }
    if let Some(m) = marker {
        return Some(path_ready(m));
    }
    port.map(|p| Ready::tcp(p.0))
        .or_else(|| unix.map(path_ready))
}

#[cfg(test)]
mod tests {
    use super::signal_name;

    #[test]
    fn signals() {
        assert_eq!(signal_name("SIGQUIT").as_deref(), Some("QUIT"));
        assert_eq!(signal_name("term").as_deref(), Some("TERM"));
        assert_eq!(signal_name("2").as_deref(), Some("INT"));
        assert_eq!(signal_name("SIGNOPE"), None);
        assert_eq!(signal_name("0"), None);
    }
}
