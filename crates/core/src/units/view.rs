//! A unit as the state, configuration and readiness inference reads it: its user, its environment with
//! where each variable was set, and its `ExecStartPre=`/`ExecStart=`/`ExecStartPost=` commands with
//! specifiers and `$VAR`s expanded — computed the way the conversion computes them (the same functions),
//! but before it, so the app's port can decide the process's readiness. Reports of this pass are dropped:
//! the conversion makes the same ones.

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::context::{directories, environment, identity, Ctx, Effective};
use super::exec::commands;
use super::parse::{parse_env_file, parse_environment, Assignment};
use super::search::{EnvFileReader, LoadedUnit};
use super::words::Names;
use super::UnitError;

/// One expanded command line.
#[derive(Debug, Clone)]
pub(crate) struct Command {
    /// `ExecStartPre`, `ExecStart` or `ExecStartPost`.
    pub key: &'static str,
    pub argv: Vec<String>,
}

pub(crate) struct View<'a> {
    pub id: String,
    pub eff: Effective<'a>,
    names: Names,
    pub user: Option<String>,
    pub group: Option<String>,
    /// The environment the process gets.
    pub env: BTreeMap<String, String>,
    /// Where each variable set by `Environment=`/`EnvironmentFile=` comes from, for reasons.
    pub env_origin: BTreeMap<String, String>,
    pub commands: Vec<Command>,
}

impl<'a> View<'a> {
    pub fn new(unit: &'a LoadedUnit, env_files: &dyn EnvFileReader) -> Result<Self, UnitError> {
        let id = unit.name.full.clone();
        let eff = Effective::new(&unit.assignments);
        let mut scratch = Vec::new();
        let mut cx = Ctx {
            id: id.clone(),
            names: Names {
                id: id.clone(),
                prefix: unit.name.prefix.clone(),
                instance: unit.name.instance.clone(),
                user: None,
                group: None,
            },
            reports: &mut scratch,
        };
        let user = identity(&mut cx, &eff, "User");
        let group = identity(&mut cx, &eff, "Group");
        cx.names.user = user.clone();
        cx.names.group = group.clone();
        let dirs = directories(&mut cx, &eff, &user, &group);
        let env = environment(&mut cx, &eff, env_files, dirs.env);
        let mut cmds = Vec::new();
        for key in ["ExecStartPre", "ExecStart", "ExecStartPost"] {
            for (c, _) in commands(&mut cx, &eff, key, &env, &user)? {
                cmds.push(Command { key, argv: c.argv });
            }
        }
        let names = cx.names.clone();
        let env_origin = origins(&id, &eff, env_files);
        Ok(View {
            id,
            eff,
            names,
            user,
            group,
            env,
            env_origin,
            commands: cmds,
        })
    }

    /// The words of `a`'s value, specifiers expanded (unresolvable ones stay as written).
    pub fn words(&self, a: &Assignment) -> Vec<String> {
        let mut scratch = Vec::new();
        let mut cx = Ctx {
            id: self.id.clone(),
            names: self.names.clone(),
            reports: &mut scratch,
        };
        cx.words(a)
    }

    /// `a`'s whole value, specifiers expanded.
    pub fn value(&self, a: &Assignment) -> String {
        let mut scratch = Vec::new();
        let mut cx = Ctx {
            id: self.id.clone(),
            names: self.names.clone(),
            reports: &mut scratch,
        };
        cx.expand_one(a, &a.value)
    }

    /// The `ExecStart=` commands (the service's main programs).
    pub fn starts(&self) -> impl Iterator<Item = &Command> {
        self.commands.iter().filter(|c| c.key == "ExecStart")
    }
}

/// Where each variable is set: the last `Environment=` line, overridden by `EnvironmentFile=` files.
fn origins(id: &str, eff: &Effective, env_files: &dyn EnvFileReader) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for a in eff.all("Service", "Environment") {
        for (k, _) in parse_environment(&a.value).unwrap_or_default() {
            out.insert(k, format!("Environment= of {id}"));
        }
    }
    for a in eff.all("Service", "EnvironmentFile") {
        let path = PathBuf::from(a.value.trim_start_matches('-'));
        if let Ok(text) = env_files.read_env_file(&path) {
            for (k, _) in parse_env_file(&text).0 {
                out.insert(k, format!("{} (EnvironmentFile= of {id})", path.display()));
            }
        }
    }
    out
}
