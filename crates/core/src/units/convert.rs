//! One service unit → one profile process: `Type=` and the `ExecStart*=` commands (a plain argv when one
//! command says it all, else a shell wrapper from script.rs), readiness (the unit's .socket `ListenStream=`
//! port or a port from the caller; the wrapper's start marker for forking, oneshot and `ExecStartPost=`),
//! `KillSignal=`, `UMask=`, `WorkingDirectory=`, the ordering directives (order.rs), and a report for every other
//! directive still in effect (see directives.rs).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use super::appconf::Found;
use super::context::{directories, environment, identity, Ctx, Effective};
use super::directives::{handling, switched_on, Handling};
use super::exec::{
    commands, invalid, known_port, listen_streams, mentions, readiness, signal_name,
};
use super::order::relations;
use super::script::{Cmd, MainKind, Script, MARKER_DIR};
use super::search::{EnvFileReader, LoadedUnit};
use super::words::Names;
use super::{ReportKind, UnitError};
use crate::profile::{DirSpec, Process, Ready};

pub(crate) struct Input<'a> {
    pub unit: &'a LoadedUnit,
    pub socket: Option<&'a LoadedUnit>,
    pub ready_port: Option<u16>,
    /// The port the app's own config says it listens on, and where that was read (appconf.rs).
    pub app_port: Option<&'a Found<u16>>,
    /// Names (and aliases) of all listed units.
    pub listed: &'a BTreeSet<String>,
}

#[derive(Debug)]
pub(crate) struct Converted {
    pub id: String,
    pub description: Option<String>,
    pub process: Process,
    pub dirs: Vec<DirSpec>,
    pub after: Vec<String>,
    pub before: Vec<String>,
    /// Requires=, Wants=, BindsTo=, Requisite=, Upholds=.
    pub wants: Vec<String>,
    /// Absolute paths mentioned by the unit's (and its socket's) lines in effect.
    pub mentions: Vec<PathBuf>,
    /// The unit's TCP port and where it comes from (`--ready`, its .socket, its app's config).
    pub port: Option<(u16, String)>,
}

pub(crate) fn convert(
    inp: &Input,
    env_files: &dyn EnvFileReader,
    reports: &mut Vec<super::Report>,
) -> Result<Converted, UnitError> {
    let u = inp.unit;
    let id = u.name.full.clone();
    let eff = Effective::new(&u.assignments);
    let mut cx = Ctx {
        id: id.clone(),
        names: Names {
            id: id.clone(),
            prefix: u.name.prefix.clone(),
            instance: u.name.instance.clone(),
            user: None,
            group: None,
        },
        reports,
    };
    if let Some(alias) = &u.alias {
        cx.note(
            "",
            ReportKind::Note,
            format!("asked for as {alias}, an alias of {id}"),
        );
    }
    if u.resolved != u.fragment {
        cx.note(
            "",
            ReportKind::Note,
            format!(
                "{} is a link to {}",
                u.fragment.display(),
                u.resolved.display()
            ),
        );
    }
    for i in &u.issues {
        cx.reports.push(super::Report {
            unit: id.clone(),
            file: Some(i.loc.file.clone()),
            line: Some(i.loc.line),
            directive: String::new(),
            value: String::new(),
            kind: ReportKind::Ignored,
            message: i.message.clone(),
        });
    }
    let user = identity(&mut cx, &eff, "User");
    let group = identity(&mut cx, &eff, "Group");
    cx.names.user = user.clone();
    cx.names.group = group.clone();
    if let Some(a) = eff
        .last("Service", "DynamicUser")
        .filter(|a| switched_on(&a.value))
    {
        let who = user
            .as_deref()
            .map_or("root (set User= to a host user)".to_string(), |u| {
                format!("User={u}, which must exist in the host's /etc/passwd")
            });
        cx.report(
            a,
            ReportKind::Approximated,
            format!("no transient user: the process runs as {who}"),
        );
    }
    if let Some(a) = eff.last("Service", "SupplementaryGroups") {
        cx.report(
            a,
            ReportKind::Approximated,
            "not added: the process gets the user's groups from the host's /etc/group",
        );
    }
    let dirs = directories(&mut cx, &eff, &user, &group);
    let env = environment(&mut cx, &eff, env_files, dirs.env.clone());

    // Type= and the commands.
    let type_a = eff.last("Service", "Type");
    let starts = eff.all("Service", "ExecStart");
    let ty = type_a.map_or(
        if starts.is_empty() {
            "oneshot"
        } else {
            "simple"
        },
        |a| a.value.as_str(),
    );
    let pid_file = eff.last("Service", "PIDFile").map(|a| {
        let p = PathBuf::from(cx.expand_one(a, &a.value));
        if p.is_absolute() {
            p
        } else {
            Path::new("/run").join(p)
        }
    });
    let kind = match ty {
        "forking" => MainKind::Forking {
            pid_file: pid_file.clone(),
        },
        "oneshot" => MainKind::Oneshot,
        "simple" | "exec" | "notify" | "notify-reload" | "dbus" | "idle" => MainKind::Foreground,
        other => {
            if let Some(a) = type_a {
                cx.report(
                    a,
                    ReportKind::Approximated,
                    format!("unknown type {other:?}: treated as simple"),
                );
            }
            MainKind::Foreground
        }
    };
    if kind != MainKind::Oneshot && starts.len() != 1 {
        let a = starts.get(1).copied().or(type_a);
        let msg = if starts.is_empty() {
            format!("Type={ty} needs an ExecStart= line")
        } else {
            format!("Type={ty} allows one ExecStart=, found {}; a drop-in that replaces ExecStart= must clear it first with an empty `ExecStart=`", starts.len())
        };
        return Err(match a {
            Some(a) => invalid(&id, a, msg),
            None => UnitError::Invalid {
                unit: id.clone(),
                file: u.fragment.clone(),
                line: 0,
                message: msg,
            },
        });
    }
    let pre = commands(&mut cx, &eff, "ExecStartPre", &env, &user)?;
    let start = commands(&mut cx, &eff, "ExecStart", &env, &user)?;
    let post = commands(&mut cx, &eff, "ExecStartPost", &env, &user)?;

    // Readiness.
    let (mut tcp, mut unix): (Option<u16>, Option<PathBuf>) = (None, None);
    if let Some(sock) = inp.socket {
        (tcp, unix) = listen_streams(&mut cx, sock);
    }
    let marker = (kind != MainKind::Foreground || !post.is_empty())
        .then(|| PathBuf::from(MARKER_DIR).join(format!("{id}.started")));
    let port = known_port(inp, tcp);
    let ready = readiness(inp, marker.as_ref(), port.as_ref(), unix.as_ref());
    let stop = eff.last("Service", "KillSignal").and_then(|a| {
        let s = signal_name(&a.value);
        if s.is_none() {
            cx.report(a, ReportKind::Ignored, "not a signal name; SIGTERM is used");
        }
        s
    });
    let sig = stop.clone().unwrap_or_else(|| "TERM".into());

    // Reports about the type, now that everything is known.
    let where_ready = match &ready {
        Some(Ready { tcp: Some(p), .. }) => format!(
            "readiness is TCP port {p} accepting a connection ({})",
            port.as_ref().map_or("given", |x| x.1.as_str())
        ),
        Some(Ready { path: Some(p), .. }) if Some(p) == marker.as_ref() => match &unix {
            Some(sock) => format!("the next process waits for ExecStartPost=, which runs once {} exists", sock.display()),
            None => "the next process waits for ExecStartPost=, which runs right after the start (no port is known)".into(),
        },
        Some(Ready { path: Some(p), .. }) => format!("readiness is {} existing", p.display()),
        _ => format!(
            "no port is known, so the next process starts without waiting (give one with --ready {}=PORT)",
            id.trim_end_matches(".service")
        ),
    };
    let type_note = |cx: &mut Ctx, kind: ReportKind, msg: String| match type_a {
        Some(a) => cx.report(a, kind, msg),
        None => cx.note("Type", kind, msg),
    };
    match (ty, &kind) {
        ("notify" | "notify-reload", _) => type_note(&mut cx, ReportKind::Approximated, format!("no sd_notify socket in the instance: {where_ready}")),
        ("dbus", _) => type_note(&mut cx, ReportKind::Approximated, format!("no D-Bus in the instance: run like Type=simple; {where_ready}")),
        (_, MainKind::Forking { pid_file: Some(p) }) => type_note(&mut cx, ReportKind::Approximated, format!(
            "the start command runs in a shell that waits for it to return, then supervises the daemon whose PID is in {} (forwarding SIG{sig} to it on stop); the next process starts once it runs",
            p.display()
        )),
        (_, MainKind::Forking { pid_file: None }) => type_note(&mut cx, ReportKind::Ignored, "unsupported without PIDFile=: the start command runs, but wayback cannot tell the daemon's PID, so it does not stop it with its stop signal (it is killed when the instance ends) and does not notice if it dies; prefer running the daemon in the foreground (edit the command)".into()),
        (_, MainKind::Oneshot) => type_note(&mut cx, ReportKind::Approximated, "the commands run once, in order; the process then idles until the instance stops (a process that exits would stop the instance); later processes wait for the commands to finish".into()),
        _ => {}
    }
    if kind == MainKind::Foreground {
        if let Some((_, a)) = start.first().filter(|(c, _)| c.ignore_failure) {
            cx.report(
                a,
                ReportKind::Approximated,
                "'-' has no effect: when the main process exits, the instance stops",
            );
        }
        if let Some((_, a)) = post.first() {
            let mut msg = "runs once the main process has started".to_string();
            if let Some(p) = &unix {
                msg.push_str(&format!(" and {} exists", p.display()));
            }
            msg.push_str(
                "; the main process then runs under a shell that forwards the stop signal to it",
            );
            if sig == "INT" || sig == "QUIT" {
                msg.push_str(&format!(" (a program started in the background ignores SIG{sig} unless it sets its own handler)"));
            }
            cx.report(a, ReportKind::Approximated, msg);
        }
    }

    // One argv, or a wrapper.
    let all: Vec<&Cmd> = pre
        .iter()
        .chain(&start)
        .chain(&post)
        .map(|(c, _)| c)
        .collect();
    let mixed = all.iter().any(|c| c.as_root) && all.iter().any(|c| !c.as_root);
    let as_root = user.is_none() || all.iter().all(|c| c.as_root) || mixed;
    if mixed {
        let (_, a) = pre
            .iter()
            .chain(&start)
            .chain(&post)
            .find(|(c, _)| c.as_root)
            .expect("mixed");
        cx.report(a, ReportKind::Approximated, format!(
            "commands run as different users: the process runs as root and runs the others as {} through setpriv(1)",
            user.as_deref().unwrap_or("root")
        ));
    }
    let umask = eff
        .last("Service", "UMask")
        .and_then(|a| match u32::from_str_radix(&a.value, 8) {
            Ok(0o022) => None,
            Ok(m) if m <= 0o777 => Some(format!("{m:04o}")),
            _ => {
                cx.report(a, ReportKind::Ignored, "not an octal umask; ignored");
                None
            }
        });
    let plain =
        kind == MainKind::Foreground && pre.is_empty() && post.is_empty() && umask.is_none();
    let (command, shell) = if plain {
        (Some(start[0].0.argv.clone()), None)
    } else {
        let script = Script {
            unit: id.clone(),
            kind: kind.clone(),
            pre: pre.iter().map(|(c, _)| c.clone()).collect(),
            start: start.iter().map(|(c, _)| c.clone()).collect(),
            post: post.iter().map(|(c, _)| c.clone()).collect(),
            umask,
            drop_to: mixed.then(|| (user.clone().unwrap_or_default(), group.clone())),
            stop_signal: sig.clone(),
            wait_for_socket: unix.clone().filter(|_| !post.is_empty()),
            marker: marker.clone(),
        };
        (None, Some(script.render()))
    };

    let workdir = eff.last("Service", "WorkingDirectory").and_then(|a| {
        let v = cx.expand_one(a, &a.value);
        let (optional, v) = v
            .strip_prefix('-')
            .map_or((false, v.as_str()), |r| (true, r));
        if v == "~" {
            return as_root.then(|| PathBuf::from("/root"));
        }
        if !v.starts_with('/') {
            cx.report(a, ReportKind::Ignored, "not an absolute path or ~; ignored");
            return None;
        }
        if optional {
            cx.report(
                a,
                ReportKind::Approximated,
                "'-' is not honoured: the directory must exist in the instance",
            );
        }
        Some(PathBuf::from(v))
    });

    let rel = relations(&mut cx, &eff, inp.listed);

    // Every other directive still in effect.
    for a in &u.assignments {
        if !eff.holds(a) {
            continue;
        }
        let (kind, msg) = match handling(&a.section, &a.key) {
            Handling::Converted | Handling::Harmless => continue,
            Handling::IfTrue(m) if switched_on(&a.value) => (ReportKind::Ignored, m),
            Handling::IfTrue(_) => continue,
            Handling::Reported(m) => (ReportKind::Ignored, m),
        };
        match msg.strip_prefix("approximated: ") {
            Some(m) => cx.report(a, ReportKind::Approximated, m),
            None => cx.report(a, kind, msg),
        }
    }

    let mut all_dirs = dirs.dirs;
    if marker.is_some() {
        all_dirs.push(DirSpec {
            path: MARKER_DIR.into(),
            owner: None,
            group: None,
            mode: Some("1777".into()),
        });
    }
    let (puser, pgroup) = if as_root { (None, None) } else { (user, group) };
    Ok(Converted {
        description: eff
            .last("Unit", "Description")
            .map(|a| cx.expand_one(a, &a.value)),
        process: Process {
            name: id.strip_suffix(".service").unwrap_or(&id).to_string(),
            command,
            shell,
            user: puser,
            group: pgroup,
            env,
            workdir,
            stop_signal: stop.map(|s| format!("SIG{s}")),
            ready,
            oneshot: false,
        },
        dirs: all_dirs,
        after: rel.after,
        before: rel.before,
        wants: rel.wants,
        mentions: mentions(
            &std::iter::once(u).chain(inp.socket).collect::<Vec<_>>(),
            &cx.names,
        ),
        port,
        id,
    })
}
