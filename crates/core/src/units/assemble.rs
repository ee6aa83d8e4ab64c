//! The profile from the converted units, in start order: their processes; the binds from the state paths
//! the snapshot has (state.rs); the directories of the units, of tmpfiles.d, and the log and temporary
//! directories the apps need; the instance's readiness; and the conversion's other findings (ports,
//! configuration files, `--no-bind` paths that matched nothing).

use std::path::Path;

use super::convert::Converted;
use super::search::{LoadedUnit, UnitSource};
use super::state::{self, Candidate, StatePaths};
use super::{tmpfiles, ConfigFile, Conversion, Options, ReadyPort, Report, ReportKind, UnitError};
use crate::profile::{DirSpec, Profile, Ready};

/// What the conversion knows of one unit.
pub(crate) struct Unit {
    pub converted: Converted,
    pub candidates: Vec<Candidate>,
    pub configs: Vec<ConfigFile>,
    pub user: Option<String>,
    pub group: Option<String>,
    pub app_dirs: Vec<(DirSpec, String)>,
}

/// The profile in start order: processes, binds from the state paths the snapshot has, directories (the
/// units', tmpfiles.d's, the apps' log and temporary directories), and the instance's readiness.
#[allow(clippy::too_many_arguments)]
pub(crate) fn assemble(
    profile_name: &str,
    units: &[Unit],
    loaded: &[LoadedUnit],
    sequence: &[usize],
    src: &dyn UnitSource,
    exists_in_snapshot: &dyn Fn(&Path) -> bool,
    opts: &Options,
    mut reports: Vec<Report>,
) -> Result<Conversion, UnitError> {
    let in_order = || sequence.iter().map(|&i| &units[i]);
    let mut profile = Profile {
        name: profile_name.to_string(),
        description: description(in_order()),
        http_port: opts.http_port,
        processes: in_order().map(|u| u.converted.process.clone()).collect(),
        ..Profile::default()
    };
    let candidates: Vec<Candidate> = in_order().flat_map(|u| u.candidates.clone()).collect();
    let (binds, state) = state::resolve(candidates, exists_in_snapshot, &opts.no_bind);
    profile.binds = binds;
    directories(
        &mut profile,
        units,
        loaded,
        sequence,
        src,
        &state,
        &mut reports,
    )?;
    let ports = readiness(&mut profile, in_order(), opts);
    let mut configs: Vec<ConfigFile> = Vec::new();
    for c in in_order().flat_map(|u| &u.configs) {
        if !configs.iter().any(|x| x.path == c.path) {
            configs.push(c.clone());
        }
    }
    let no_bind_unmatched = opts
        .no_bind
        .iter()
        .filter(|n| {
            !state
                .dropped
                .iter()
                .any(|c| c.named.starts_with(n) || c.path.starts_with(n))
        })
        .cloned()
        .collect();
    profile.validate().map_err(UnitError::Profile)?;
    Ok(Conversion {
        profile,
        reports,
        state,
        configs,
        ports,
        no_bind_unmatched,
    })
}

fn description<'a>(units: impl Iterator<Item = &'a Unit>) -> String {
    let names: Vec<String> = units
        .map(|u| match &u.converted.description {
            Some(d) => format!("{} ({d})", u.converted.id),
            None => u.converted.id.clone(),
        })
        .collect();
    format!("From systemd units: {}", names.join(", "))
}

fn bound(p: &Path, profile: &Profile) -> bool {
    profile.binds.iter().any(|b| p.starts_with(b.dest()))
}

/// The units' directories (not those a bind covers), then the runtime directories the host's tmpfiles.d
/// creates for them, then the log and temporary directories the apps need.
fn directories(
    profile: &mut Profile,
    units: &[Unit],
    loaded: &[LoadedUnit],
    sequence: &[usize],
    src: &dyn UnitSource,
    state: &StatePaths,
    reports: &mut Vec<Report>,
) -> Result<(), UnitError> {
    for d in sequence.iter().flat_map(|&i| &units[i].converted.dirs) {
        if !bound(&d.path, profile) && !profile.dirs.iter().any(|x| x.path == d.path) {
            profile.dirs.push(d.clone());
        }
    }
    let paths: Vec<tmpfiles::UnitPaths> = sequence
        .iter()
        .map(|&i| tmpfiles::UnitPaths {
            id: units[i].converted.id.clone(),
            prefix: loaded[i].name.prefix.clone(),
            mentions: units[i].converted.mentions.clone(),
        })
        .collect();
    let skip = |p: &Path| bound(p, profile) || profile.dirs.iter().any(|x| x.path == p);
    let extra = tmpfiles::wanted_dirs(src, &paths, &skip, reports)?;
    profile.dirs.extend(extra);
    extra_dirs(profile, units, sequence, state, reports);
    Ok(())
}

/// The known TCP port of each unit. The instance is ready when the last unit's port answers, unless the
/// caller gives the HTTP port or the last process already checks that port itself (a wrapper's start
/// marker does not).
fn readiness<'a>(
    profile: &mut Profile,
    units: impl Iterator<Item = &'a Unit>,
    opts: &Options,
) -> Vec<ReadyPort> {
    let mut ports = Vec::new();
    let mut last = None;
    for u in units {
        let c = &u.converted;
        last = c.port.as_ref();
        if let Some((port, source)) = &c.port {
            ports.push(ReadyPort {
                unit: c.id.clone(),
                port: *port,
                source: source.clone(),
            });
        }
    }
    let last_tcp = profile
        .processes
        .last()
        .and_then(|p| p.ready.as_ref())
        .is_some_and(|r| r.tcp.is_some());
    if let (None, false, Some((p, _))) = (opts.http_port, last_tcp, last) {
        profile.ready = Some(Ready::tcp(*p));
    }
    ports
}

/// Log directories and the apps' own directories that nothing else creates, owned by the unit's user
/// (not inside a bind, not already there); each noted.
fn extra_dirs(
    profile: &mut Profile,
    units: &[Unit],
    sequence: &[usize],
    state: &StatePaths,
    reports: &mut Vec<Report>,
) {
    for &i in sequence {
        let u = &units[i];
        let id = &u.converted.id;
        let logs = state.logs.iter().filter(|c| &c.unit == id).map(|c| {
            let d = DirSpec {
                path: c.path.clone(),
                owner: u.user.clone(),
                group: u.group.clone(),
                mode: Some("0750".into()),
            };
            (d, format!("{}: the service logs there", c.reason))
        });
        let all: Vec<(DirSpec, String)> = logs.chain(u.app_dirs.iter().cloned()).collect();
        for (d, why) in all {
            let taken = profile.dirs.iter().any(|x| x.path == d.path)
                || profile.binds.iter().any(|b| d.path.starts_with(b.dest()));
            if taken {
                continue;
            }
            reports.push(Report {
                unit: id.clone(),
                file: None,
                line: None,
                directive: String::new(),
                value: d.path.display().to_string(),
                kind: ReportKind::Note,
                message: format!("{} created empty in the instance ({why})", d.path.display()),
            });
            profile.dirs.push(d);
        }
    }
}
