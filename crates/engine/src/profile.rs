//! Profiles from the host's systemd units: the conversion `up --unit` and `profile from-units` share,
//! over the host's unit files or a snapshot's own, with the state paths found in the snapshot (resolved
//! inside it) as binds.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Result;
use wayback_core::units::{self, Conversion, FsUnitSource, Options};

use crate::error::BadInput;

/// What `up --unit` and `profile from-units` ask of the conversion.
#[derive(Debug, Clone, Default)]
pub struct UnitsRequest<'a> {
    /// The units, `.service` optional.
    pub units: &'a [String],
    /// The profile's name.
    pub name: &'a str,
    /// The profile's `http_port` (`--port`).
    pub port: Option<u16>,
    /// `--ready UNIT=PORT`.
    pub ready: &'a [(String, u16)],
    /// `--no-bind PATH`.
    pub no_bind: &'a [PathBuf],
}

/// Convert the host's units into a profile, its binds being the state paths the units and their apps'
/// configs name that `exists_in_snapshot` finds (shared with `up --unit`).
pub fn convert(
    req: &UnitsRequest,
    exists_in_snapshot: &dyn Fn(&Path) -> bool,
) -> Result<Conversion> {
    convert_with(req, &FsUnitSource::new("/"), exists_in_snapshot)
}

/// The same conversion over other unit files (a snapshot's own, with `up --software snapshot`).
pub fn convert_with<S: units::UnitSource + units::EnvFileReader>(
    req: &UnitsRequest,
    src: &S,
    exists_in_snapshot: &dyn Fn(&Path) -> bool,
) -> Result<Conversion> {
    let opts = Options {
        ready_ports: req.ready.iter().cloned().collect::<BTreeMap<_, _>>(),
        http_port: req.port,
        no_bind: req.no_bind.to_vec(),
    };
    let names: Vec<&str> = req.units.iter().map(String::as_str).collect();
    units::profile_from_units(&names, req.name, src, src, exists_in_snapshot, &opts)
        .map_err(|e| BadInput::new(e.to_string()).into())
}

/// Whether `p` exists in the snapshot, resolved inside it (`None`: no snapshot, nothing exists).
pub fn exists_under(snapshot: Option<&Path>) -> impl Fn(&Path) -> bool {
    let tree = snapshot.and_then(|s| crate::sys::inroot::Tree::open(s).ok());
    move |p: &Path| tree.as_ref().is_some_and(|t| t.exists(p))
}
