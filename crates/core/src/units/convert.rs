//! One service unit → one profile process: the unit's own notes (alias, link, syntax issues), its identity
//! (`User=`, `Group=`, `DynamicUser=`, `SupplementaryGroups=`), `Type=`, commands, readiness and
//! `KillSignal=` (service.rs), one argv or a shell wrapper with `UMask=` and `WorkingDirectory=`
//! (launch.rs), the ordering directives (order.rs), and a report for every other directive still in effect
//! (see directives.rs). [`convert`] runs these steps in an order that fixes the order of the reports.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use super::appconf::Found;
use super::context::{directories, environment, identity, Ctx, Effective};
use super::directives::{handling, switched_on, Handling};
use super::exec::mentions;
use super::launch::{launch, workdir, Launch};
use super::order::{relations, Node};
use super::script::MARKER_DIR;
use super::search::{EnvFileReader, LoadedUnit};
use super::service::{foreground_reports, service_type, type_report, Commands, Readiness};
use super::words::Names;
use super::{Report, ReportKind, UnitError};
use crate::profile::{DirSpec, Process};

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
    reports: &mut Vec<Report>,
) -> Result<Converted, UnitError> {
    let u = inp.unit;
    let eff = Effective::new(&u.assignments);
    let mut cx = unit_context(u, reports);
    unit_notes(&mut cx, u);
    let who = Identity::read(&mut cx, &eff);
    let dirs = directories(&mut cx, &eff, &who.user, &who.group);
    let env = environment(&mut cx, &eff, env_files, dirs.env.clone());
    let ty = service_type(&mut cx, &eff);
    let cmds = Commands::read(&mut cx, &eff, &ty, u, &env, &who.user)?;
    let ready = Readiness::read(&mut cx, inp, &eff, &ty.kind, !cmds.post.is_empty());
    type_report(&mut cx, &ty, &ready);
    foreground_reports(&mut cx, &ty, &cmds, &ready);
    let run = launch(&mut cx, &eff, &ty, &cmds, &ready, &who);
    let workdir = workdir(&mut cx, &eff, run.as_root);
    let rel = relations(&mut cx, &eff, inp.listed);
    leftovers(&mut cx, u, &eff);
    let parts = Parts {
        dirs: dirs.dirs,
        env,
        who,
        run,
        workdir,
        ready,
        rel,
    };
    Ok(finish(&mut cx, inp, &eff, parts))
}

/// Reports and specifier expansion for `u`, before `User=`/`Group=` are known.
fn unit_context<'r>(u: &LoadedUnit, reports: &'r mut Vec<Report>) -> Ctx<'r> {
    let id = u.name.full.clone();
    Ctx {
        id: id.clone(),
        names: Names {
            id,
            prefix: u.name.prefix.clone(),
            instance: u.name.instance.clone(),
            user: None,
            group: None,
        },
        reports,
    }
}

/// How the unit was found (an alias, a link) and the lines its files could not parse.
fn unit_notes(cx: &mut Ctx, u: &LoadedUnit) {
    if let Some(alias) = &u.alias {
        let msg = format!("asked for as {alias}, an alias of {}", cx.id);
        cx.note("", ReportKind::Note, msg);
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
        cx.reports.push(Report {
            unit: cx.id.clone(),
            file: Some(i.loc.file.clone()),
            line: Some(i.loc.line),
            directive: String::new(),
            value: String::new(),
            kind: ReportKind::Ignored,
            message: i.message.clone(),
        });
    }
}

/// Who the unit's commands run as: `User=` and `Group=` by name, `None` for root.
pub(crate) struct Identity {
    pub user: Option<String>,
    pub group: Option<String>,
}

impl Identity {
    /// `User=` and `Group=` (also for specifiers from here on); `DynamicUser=` and `SupplementaryGroups=`
    /// are reported as approximated.
    fn read(cx: &mut Ctx, eff: &Effective) -> Identity {
        let user = identity(cx, eff, "User");
        let group = identity(cx, eff, "Group");
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
        Identity { user, group }
    }
}

/// A report for every directive still in effect that is neither converted nor harmless (directives.rs).
fn leftovers(cx: &mut Ctx, u: &LoadedUnit, eff: &Effective) {
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
}

/// What the steps of [`convert`] produced, for [`finish`].
struct Parts {
    dirs: Vec<DirSpec>,
    env: BTreeMap<String, String>,
    who: Identity,
    run: Launch,
    workdir: Option<PathBuf>,
    ready: Readiness,
    rel: Node,
}

/// The process (as root unless every command drops to `User=`), the marker directory when the wrapper
/// marks the start, `Description=`, the relations, and the paths the unit and its socket mention.
fn finish(cx: &mut Ctx, inp: &Input, eff: &Effective, p: Parts) -> Converted {
    let id = cx.id.clone();
    let mut dirs = p.dirs;
    if p.ready.marker.is_some() {
        dirs.push(DirSpec {
            path: MARKER_DIR.into(),
            owner: None,
            group: None,
            mode: Some("1777".into()),
        });
    }
    let (user, group) = if p.run.as_root {
        (None, None)
    } else {
        (p.who.user, p.who.group)
    };
    Converted {
        description: eff
            .last("Unit", "Description")
            .map(|a| cx.expand_one(a, &a.value)),
        process: Process {
            name: id.strip_suffix(".service").unwrap_or(&id).to_string(),
            command: p.run.command,
            shell: p.run.shell,
            user,
            group,
            env: p.env,
            workdir: p.workdir,
            stop_signal: p.ready.stop.map(|s| format!("SIG{s}")),
            ready: p.ready.ready,
            oneshot: false,
        },
        dirs,
        after: p.rel.after,
        before: p.rel.before,
        wants: p.rel.wants,
        mentions: mentions(
            &std::iter::once(inp.unit)
                .chain(inp.socket)
                .collect::<Vec<_>>(),
            &cx.names,
        ),
        port: p.ready.port,
        id,
    }
}
