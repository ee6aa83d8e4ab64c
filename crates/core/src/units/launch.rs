//! How a unit's process is started: one plain argv when a single foreground command says it all, else the
//! shell wrapper from script.rs (for `ExecStartPre=`/`ExecStartPost=`, forking and oneshot types, `UMask=`,
//! and commands that run as different users); and its `WorkingDirectory=`.

use std::path::PathBuf;

use super::context::{Ctx, Effective};
use super::convert::Identity;
use super::parse::Assignment;
use super::script::{Cmd, MainKind, Script};
use super::service::{Commands, Readiness, ServiceType};
use super::ReportKind;

/// The process's `command` or `shell`, and whether it runs as root.
pub(crate) struct Launch {
    pub command: Option<Vec<String>>,
    pub shell: Option<String>,
    pub as_root: bool,
}

/// One argv, or the wrapper script.
pub(crate) fn launch(
    cx: &mut Ctx,
    eff: &Effective,
    ty: &ServiceType,
    cmds: &Commands,
    r: &Readiness,
    who: &Identity,
) -> Launch {
    let mixed = mixed_users(cx, cmds, who);
    let as_root = who.user.is_none() || cmds.all().all(|(c, _)| c.as_root) || mixed;
    let umask = umask(cx, eff);
    let plain = ty.kind == MainKind::Foreground
        && cmds.pre.is_empty()
        && cmds.post.is_empty()
        && umask.is_none();
    if plain {
        return Launch {
            command: Some(cmds.start[0].0.argv.clone()),
            shell: None,
            as_root,
        };
    }
    let script = Script {
        unit: cx.id.clone(),
        kind: ty.kind.clone(),
        pre: bare(&cmds.pre),
        start: bare(&cmds.start),
        post: bare(&cmds.post),
        umask,
        drop_to: mixed.then(|| (who.user.clone().unwrap_or_default(), who.group.clone())),
        stop_signal: r.sig().to_string(),
        wait_for_socket: r.unix.clone().filter(|_| !cmds.post.is_empty()),
        marker: r.marker.clone(),
    };
    Launch {
        command: None,
        shell: Some(script.render()),
        as_root,
    }
}

/// The commands without their lines.
fn bare(cmds: &[(Cmd, &Assignment)]) -> Vec<Cmd> {
    cmds.iter().map(|(c, _)| c.clone()).collect()
}

/// Whether some commands run as root (`+`, `!`) and others as `User=`; if so, reported on the first root one.
fn mixed_users(cx: &mut Ctx, cmds: &Commands, who: &Identity) -> bool {
    let mixed = cmds.all().any(|(c, _)| c.as_root) && cmds.all().any(|(c, _)| !c.as_root);
    if mixed {
        let (_, a) = cmds.all().find(|(c, _)| c.as_root).expect("mixed");
        cx.report(a, ReportKind::Approximated, format!(
            "commands run as different users: the process runs as root and runs the others as {} through setpriv(1)",
            who.user.as_deref().unwrap_or("root")
        ));
    }
    mixed
}

/// `UMask=` as four octal digits, `None` for the default 0022 (a value that is no octal umask is reported).
fn umask(cx: &mut Ctx, eff: &Effective) -> Option<String> {
    let a = eff.last("Service", "UMask")?;
    match u32::from_str_radix(&a.value, 8) {
        Ok(0o022) => None,
        Ok(m) if m <= 0o777 => Some(format!("{m:04o}")),
        _ => {
            cx.report(a, ReportKind::Ignored, "not an octal umask; ignored");
            None
        }
    }
}

/// `WorkingDirectory=`: an absolute path, or `~` (/root when the process runs as root; a user's home is not
/// known). A leading `-` is reported: the directory must exist.
pub(crate) fn workdir(cx: &mut Ctx, eff: &Effective, as_root: bool) -> Option<PathBuf> {
    let a = eff.last("Service", "WorkingDirectory")?;
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
}
