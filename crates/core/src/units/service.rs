//! The service side of a unit's conversion: `Type=` (with `PIDFile=`) and the wrapper kind it becomes, the
//! `ExecStartPre=`/`ExecStart=`/`ExecStartPost=` commands (the number of `ExecStart=` checked against the
//! type), readiness (the .socket's `ListenStream=`, the wrapper's start marker, the known port) and
//! `KillSignal=`, and the reports about the type and the main command that can only be written once
//! readiness is known.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::context::{Ctx, Effective};
use super::convert::Input;
use super::exec::{commands, invalid, known_port, listen_streams, readiness, signal_name};
use super::parse::Assignment;
use super::script::{Cmd, MainKind, MARKER_DIR};
use super::search::LoadedUnit;
use super::{ReportKind, UnitError};
use crate::profile::Ready;

/// `Type=` in effect (or its default) and the wrapper kind it becomes.
pub(crate) struct ServiceType<'a> {
    /// As written, else `oneshot` without `ExecStart=` and `simple` with one.
    pub name: &'a str,
    /// The `Type=` line, when there is one.
    pub line: Option<&'a Assignment>,
    pub kind: MainKind,
}

/// `Type=` and `PIDFile=` (relative to /run unless absolute); an unknown type is reported and treated as
/// simple.
pub(crate) fn service_type<'a>(cx: &mut Ctx, eff: &Effective<'a>) -> ServiceType<'a> {
    let line = eff.last("Service", "Type");
    let name = line.map_or(
        if eff.all("Service", "ExecStart").is_empty() {
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
    let kind = match name {
        "forking" => MainKind::Forking { pid_file },
        "oneshot" => MainKind::Oneshot,
        "simple" | "exec" | "notify" | "notify-reload" | "dbus" | "idle" => MainKind::Foreground,
        other => {
            if let Some(a) = line {
                cx.report(
                    a,
                    ReportKind::Approximated,
                    format!("unknown type {other:?}: treated as simple"),
                );
            }
            MainKind::Foreground
        }
    };
    ServiceType { name, line, kind }
}

/// The unit's commands, each with the line it comes from.
pub(crate) struct Commands<'a> {
    pub pre: Vec<(Cmd, &'a Assignment)>,
    pub start: Vec<(Cmd, &'a Assignment)>,
    pub post: Vec<(Cmd, &'a Assignment)>,
}

impl<'a> Commands<'a> {
    /// Every command in the order it runs.
    pub fn all(&self) -> impl Iterator<Item = &(Cmd, &'a Assignment)> {
        self.pre.iter().chain(&self.start).chain(&self.post)
    }

    /// `ExecStartPre=`, `ExecStart=` and `ExecStartPost=`, once the type is known to allow the number of
    /// `ExecStart=` lines in effect.
    pub fn read(
        cx: &mut Ctx,
        eff: &Effective<'a>,
        ty: &ServiceType,
        unit: &LoadedUnit,
        env: &BTreeMap<String, String>,
        user: &Option<String>,
    ) -> Result<Commands<'a>, UnitError> {
        check_starts(&cx.id, eff, ty, unit)?;
        Ok(Commands {
            pre: commands(cx, eff, "ExecStartPre", env, user)?,
            start: commands(cx, eff, "ExecStart", env, user)?,
            post: commands(cx, eff, "ExecStartPost", env, user)?,
        })
    }
}

/// Every type but oneshot needs exactly one `ExecStart=`.
fn check_starts(
    id: &str,
    eff: &Effective,
    ty: &ServiceType,
    unit: &LoadedUnit,
) -> Result<(), UnitError> {
    let starts = eff.all("Service", "ExecStart");
    if ty.kind == MainKind::Oneshot || starts.len() == 1 {
        return Ok(());
    }
    let a = starts.get(1).copied().or(ty.line);
    let name = ty.name;
    let msg = if starts.is_empty() {
        format!("Type={name} needs an ExecStart= line")
    } else {
        format!("Type={name} allows one ExecStart=, found {}; a drop-in that replaces ExecStart= must clear it first with an empty `ExecStart=`", starts.len())
    };
    Err(match a {
        Some(a) => invalid(id, a, msg),
        None => UnitError::Invalid {
            unit: id.to_string(),
            file: unit.fragment.clone(),
            line: 0,
            message: msg,
        },
    })
}

/// How the next process knows this one is up, and how it is stopped.
pub(crate) struct Readiness {
    /// The .socket's unix socket (`ListenStream=` with a path).
    pub unix: Option<PathBuf>,
    /// The wrapper's start marker: for forking and oneshot types, and when `ExecStartPost=` follows.
    pub marker: Option<PathBuf>,
    /// The unit's TCP port and where it comes from.
    pub port: Option<(u16, String)>,
    pub ready: Option<Ready>,
    /// `KillSignal=` without `SIG`, when it names a signal.
    pub stop: Option<String>,
}

impl Readiness {
    /// The .socket's streams, the start marker, the known port, and `KillSignal=`.
    pub fn read(
        cx: &mut Ctx,
        inp: &Input,
        eff: &Effective,
        kind: &MainKind,
        has_post: bool,
    ) -> Readiness {
        let (mut tcp, mut unix): (Option<u16>, Option<PathBuf>) = (None, None);
        if let Some(sock) = inp.socket {
            (tcp, unix) = listen_streams(cx, sock);
        }
        let marker = (*kind != MainKind::Foreground || has_post)
            .then(|| PathBuf::from(MARKER_DIR).join(format!("{}.started", cx.id)));
        let port = known_port(inp, tcp);
        let ready = readiness(inp, marker.as_ref(), port.as_ref(), unix.as_ref());
        let stop = eff.last("Service", "KillSignal").and_then(|a| {
            let s = signal_name(&a.value);
            if s.is_none() {
                cx.report(a, ReportKind::Ignored, "not a signal name; SIGTERM is used");
            }
            s
        });
        Readiness {
            unix,
            marker,
            port,
            ready,
            stop,
        }
    }

    /// The stop signal without `SIG`: `KillSignal=`, else TERM.
    pub fn sig(&self) -> &str {
        self.stop.as_deref().unwrap_or("TERM")
    }

    /// Where the next process's wait ends, in words.
    fn said(&self, id: &str) -> String {
        match &self.ready {
            Some(Ready { tcp: Some(p), .. }) => format!(
                "readiness is TCP port {p} accepting a connection ({})",
                self.port.as_ref().map_or("given", |x| x.1.as_str())
            ),
            Some(Ready { path: Some(p), .. }) if Some(p) == self.marker.as_ref() => match &self.unix {
                Some(sock) => format!("the next process waits for ExecStartPost=, which runs once {} exists", sock.display()),
                None => "the next process waits for ExecStartPost=, which runs right after the start (no port is known)".into(),
            },
            Some(Ready { path: Some(p), .. }) => format!("readiness is {} existing", p.display()),
            _ => format!(
                "no port is known, so the next process starts without waiting (give one with --ready {}=PORT)",
                id.trim_end_matches(".service")
            ),
        }
    }
}

/// What the type becomes, now that readiness is known: on the `Type=` line, or a note without one.
pub(crate) fn type_report(cx: &mut Ctx, ty: &ServiceType, r: &Readiness) {
    let where_ready = r.said(&cx.id);
    let sig = r.sig();
    let (kind, msg) = match (ty.name, &ty.kind) {
        ("notify" | "notify-reload", _) => (ReportKind::Approximated, format!("no sd_notify socket in the instance: {where_ready}")),
        ("dbus", _) => (ReportKind::Approximated, format!("no D-Bus in the instance: run like Type=simple; {where_ready}")),
        (_, MainKind::Forking { pid_file: Some(p) }) => (ReportKind::Approximated, format!(
            "the start command runs in a shell that waits for it to return, then supervises the daemon whose PID is in {} (forwarding SIG{sig} to it on stop); the next process starts once it runs",
            p.display()
        )),
        (_, MainKind::Forking { pid_file: None }) => (ReportKind::Ignored, "unsupported without PIDFile=: the start command runs, but wayback cannot tell the daemon's PID, so it does not stop it with its stop signal (it is killed when the instance ends) and does not notice if it dies; prefer running the daemon in the foreground (edit the command)".into()),
        (_, MainKind::Oneshot) => (ReportKind::Approximated, "the commands run once, in order; the process then idles until the instance stops (a process that exits would stop the instance); later processes wait for the commands to finish".into()),
        _ => return,
    };
    match ty.line {
        Some(a) => cx.report(a, kind, msg),
        None => cx.note("Type", kind, msg),
    }
}

/// For a foreground service: what `-` on `ExecStart=` and `ExecStartPost=` become.
pub(crate) fn foreground_reports(cx: &mut Ctx, ty: &ServiceType, cmds: &Commands, r: &Readiness) {
    if ty.kind != MainKind::Foreground {
        return;
    }
    if let Some((_, a)) = cmds.start.first().filter(|(c, _)| c.ignore_failure) {
        cx.report(
            a,
            ReportKind::Approximated,
            "'-' has no effect: when the main process exits, the instance stops",
        );
    }
    if let Some((_, a)) = cmds.post.first() {
        let mut msg = "runs once the main process has started".to_string();
        if let Some(p) = &r.unix {
            msg.push_str(&format!(" and {} exists", p.display()));
        }
        msg.push_str(
            "; the main process then runs under a shell that forwards the stop signal to it",
        );
        let sig = r.sig();
        if sig == "INT" || sig == "QUIT" {
            msg.push_str(&format!(" (a program started in the background ignores SIG{sig} unless it sets its own handler)"));
        }
        cx.report(a, ReportKind::Approximated, msg);
    }
}
