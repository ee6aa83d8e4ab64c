//! The checks of a verify job, and the evaluation of what was observed.
//!
//! A `[[check]]` table sets exactly one of `http`, `tcp`, `sql`, `command` or `file` (its kind), a `name`
//! and a `timeout`, and the keys of its kind only:
//!
//! | kind | what runs | keys |
//! |---|---|---|
//! | `http = "/path"` | a request dialed inside the instance's network namespace to its 127.0.0.1 | `method`, `port`, `host`, `status`, `contains`, `regex` |
//! | `tcp = PORT` | a connection to 127.0.0.1:PORT inside the instance | — |
//! | `sql = "QUERY"` | the app's own client (`client = "psql"` or `"mariadb"`) inside the instance, as `wayback exec` runs it | `client`, `database`, `user`, `port`, `equals`, `contains`, `regex`, `min`, `max`, `min_rows` |
//! | `command = [...]` or `"sh text"` | a command inside the instance (`wayback exec`) | `user`, `env`, `exit`, `equals`, `contains`, `regex`, `min`, `max`, `min_rows` |
//! | `file = "/path"` | the path in the instance's clone, resolved inside it | `not_empty`, `min_size`, `max_size`, `max_age` |
//!
//! `file` paths may hold `{date}`, `{year}`, `{month}`, `{day}`: the snapshot's date (UTC), so "the upload
//! directory of the snapshot's day" is `/srv/uploads/{year}/{month}/{day}`; `max_age` is counted back
//! from the snapshot's date, not from now.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::duration::Duration;

mod eval;
pub use eval::{eval_exec, eval_file, eval_http, expand_date, quote, FileFacts};

/// A check's time limit when it sets none.
pub const DEFAULT_CHECK_TIMEOUT: Duration = Duration(30);

/// A `[[check]]` table as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckSpec {
    name: Option<String>,
    timeout: Option<Duration>,
    http: Option<String>,
    tcp: Option<u16>,
    sql: Option<String>,
    command: Option<CommandLine>,
    file: Option<PathBuf>,
    method: Option<String>,
    port: Option<u16>,
    host: Option<String>,
    status: Option<u16>,
    contains: Option<String>,
    regex: Option<String>,
    equals: Option<String>,
    client: Option<String>,
    database: Option<String>,
    user: Option<String>,
    min: Option<f64>,
    max: Option<f64>,
    min_rows: Option<u64>,
    exit: Option<i32>,
    env: Option<BTreeMap<String, String>>,
    not_empty: Option<bool>,
    min_size: Option<u64>,
    max_size: Option<u64>,
    max_age: Option<Duration>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum CommandLine {
    Shell(String),
    Argv(Vec<String>),
}

/// A validated check.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Check {
    pub name: String,
    pub timeout: Duration,
    pub kind: CheckKind,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum CheckKind {
    Http {
        method: String,
        path: String,
        port: u16,
        /// The `Host` header: `host`, else the run's `original_host`, else `localhost`.
        host: String,
        status: u16,
        expect: Expect,
    },
    Tcp {
        port: u16,
    },
    Sql {
        /// How to call the client; `argv` is the whole command line.
        client: SqlClient,
        argv: Vec<String>,
        user: String,
        expect: Expect,
    },
    Command {
        argv: Vec<String>,
        user: Option<String>,
        env: Vec<(String, String)>,
        exit: i32,
        expect: Expect,
    },
    File {
        path: PathBuf,
        not_empty: bool,
        min_size: Option<u64>,
        max_size: Option<u64>,
        max_age: Option<Duration>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SqlClient {
    Psql,
    Mariadb,
}

/// What an output (or body) must be. Empty: anything.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Expect {
    pub equals: Option<String>,
    pub contains: Option<String>,
    /// Checked to compile when the job is loaded.
    pub regex: Option<String>,
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub min_rows: Option<u64>,
}

impl CheckKind {
    pub fn label(&self) -> &'static str {
        match self {
            CheckKind::Http { .. } => "http",
            CheckKind::Tcp { .. } => "tcp",
            CheckKind::Sql { .. } => "sql",
            CheckKind::Command { .. } => "command",
            CheckKind::File { .. } => "file",
        }
    }
}

/// (key, message) of a refused check.
type SpecError = (String, String);

fn err(key: &str, message: impl Into<String>) -> SpecError {
    (key.to_string(), message.into())
}

impl CheckSpec {
    /// Keys that are set, by name.
    fn set_keys(&self) -> Vec<&'static str> {
        let s = self;
        [
            ("method", s.method.is_some()),
            ("port", s.port.is_some()),
            ("host", s.host.is_some()),
            ("status", s.status.is_some()),
            ("contains", s.contains.is_some()),
            ("regex", s.regex.is_some()),
            ("equals", s.equals.is_some()),
            ("client", s.client.is_some()),
            ("database", s.database.is_some()),
            ("user", s.user.is_some()),
            ("min", s.min.is_some()),
            ("max", s.max.is_some()),
            ("min_rows", s.min_rows.is_some()),
            ("exit", s.exit.is_some()),
            ("env", s.env.is_some()),
            ("not_empty", s.not_empty.is_some()),
            ("min_size", s.min_size.is_some()),
            ("max_size", s.max_size.is_some()),
            ("max_age", s.max_age.is_some()),
        ]
        .into_iter()
        .filter(|(_, set)| *set)
        .map(|(k, _)| k)
        .collect()
    }

    /// The typed check (number `n`, from 1). `run_port` and `original_host` are the run's, the defaults of
    /// `http` checks.
    pub fn validate(
        self,
        n: usize,
        run_port: Option<u16>,
        original_host: Option<&str>,
    ) -> Result<Check, SpecError> {
        let kinds = [
            ("http", self.http.is_some()),
            ("tcp", self.tcp.is_some()),
            ("sql", self.sql.is_some()),
            ("command", self.command.is_some()),
            ("file", self.file.is_some()),
        ];
        let set: Vec<&str> = kinds.iter().filter(|(_, s)| *s).map(|(k, _)| *k).collect();
        let kind = match set.as_slice() {
            [k] => *k,
            _ => {
                return Err(err(
                    "type",
                    "set exactly one of http, tcp, sql, command or file",
                ))
            }
        };
        let allowed: &[&str] = match kind {
            "http" => &["method", "port", "host", "status", "contains", "regex"],
            "tcp" => &[],
            "sql" => &[
                "client", "database", "user", "port", "equals", "contains", "regex", "min", "max",
                "min_rows",
            ],
            "command" => &[
                "user", "env", "exit", "equals", "contains", "regex", "min", "max", "min_rows",
            ],
            _ => &["not_empty", "min_size", "max_size", "max_age"],
        };
        if let Some(k) = self.set_keys().into_iter().find(|k| !allowed.contains(k)) {
            return Err(err(k, format!("not a key of {kind} checks")));
        }
        if let Some(r) = &self.regex {
            regex::Regex::new(r).map_err(|_| err("regex", "not a valid regular expression"))?;
        }
        let name = match &self.name {
            Some(n) if n.trim().is_empty() || n.chars().any(char::is_control) => {
                return Err(err("name", "give a short name without control characters"))
            }
            Some(n) => n.clone(),
            None => format!("{kind}-{n}"),
        };
        let timeout = self.timeout.unwrap_or(DEFAULT_CHECK_TIMEOUT);
        let kind = self.kind(kind, run_port, original_host)?;
        Ok(Check {
            name,
            timeout,
            kind,
        })
    }

    fn expect(&self) -> Expect {
        Expect {
            equals: self.equals.clone(),
            contains: self.contains.clone(),
            regex: self.regex.clone(),
            min: self.min,
            max: self.max,
            min_rows: self.min_rows,
        }
    }

    fn kind(
        self,
        kind: &str,
        run_port: Option<u16>,
        original_host: Option<&str>,
    ) -> Result<CheckKind, SpecError> {
        let expect = self.expect();
        Ok(match kind {
            "http" => http(self, expect, run_port, original_host)?,
            "tcp" => CheckKind::Tcp {
                port: nonzero(self.tcp, "tcp")?,
            },
            "sql" => sql(self, expect)?,
            "command" => {
                let argv = match self.command {
                    Some(CommandLine::Argv(a)) if !a.is_empty() => a,
                    Some(CommandLine::Shell(s)) if !s.trim().is_empty() => {
                        vec!["/bin/sh".into(), "-c".into(), s]
                    }
                    _ => {
                        return Err(err(
                            "command",
                            "give a command: [\"prog\", \"arg\"] or \"shell text\"",
                        ))
                    }
                };
                CheckKind::Command {
                    argv,
                    user: self.user,
                    env: self.env.unwrap_or_default().into_iter().collect(),
                    exit: self.exit.unwrap_or(0),
                    expect,
                }
            }
            _ => {
                let path = self.file.unwrap_or_default();
                if !path.is_absolute() {
                    return Err(err("file", "give an absolute path inside the snapshot"));
                }
                CheckKind::File {
                    path,
                    not_empty: self.not_empty.unwrap_or(false),
                    min_size: self.min_size,
                    max_size: self.max_size,
                    max_age: self.max_age,
                }
            }
        })
    }
}

fn nonzero(port: Option<u16>, key: &str) -> Result<u16, SpecError> {
    port.filter(|p| *p > 0)
        .ok_or_else(|| err(key, "give a port number 1-65535"))
}

fn http(
    s: CheckSpec,
    expect: Expect,
    run_port: Option<u16>,
    original_host: Option<&str>,
) -> Result<CheckKind, SpecError> {
    let path = s.http.unwrap_or_default();
    if !path.starts_with('/') || path.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(err("http", "give the request path, starting with '/'"));
    }
    let port = match s.port.or(run_port) {
        Some(p) => nonzero(Some(p), "port")?,
        None => return Err(err("port", "give the port (or set port in [run])")),
    };
    let method = s.method.unwrap_or_else(|| "GET".into());
    if method.is_empty() || !method.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(err("method", "give an HTTP method such as GET or HEAD"));
    }
    let host = s
        .host
        .or_else(|| original_host.map(origin_host))
        .unwrap_or_else(|| "localhost".into());
    if host.is_empty() || host.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(err("host", "give a hostname (the Host header)"));
    }
    Ok(CheckKind::Http {
        method,
        path,
        port,
        host,
        status: s.status.unwrap_or(200),
        expect,
    })
}

/// `https://wiki.example.org:8443/` → `wiki.example.org:8443`: what the app sees as Host.
fn origin_host(origin: &str) -> String {
    let rest = origin.split_once("://").map_or(origin, |(_, r)| r);
    rest.split('/').next().unwrap_or(rest).to_string()
}

fn sql(s: CheckSpec, expect: Expect) -> Result<CheckKind, SpecError> {
    let program = s.client.ok_or_else(|| {
        err(
            "client",
            "say which client runs the query: \"psql\" or \"mariadb\" (or a path to one)",
        )
    })?;
    let base = program.rsplit('/').next().unwrap_or(&program);
    let client = if base.starts_with("psql") {
        SqlClient::Psql
    } else if base.starts_with("mariadb") || base.starts_with("mysql") {
        SqlClient::Mariadb
    } else {
        return Err(err(
            "client",
            "psql or mariadb (or mysql), or a path to one",
        ));
    };
    let query = s.sql.unwrap_or_default();
    if query.trim().is_empty() {
        return Err(err("sql", "give the query"));
    }
    let mut argv = vec![program.clone()];
    match client {
        SqlClient::Psql => {
            argv.extend(["-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1"].map(String::from));
            if let Some(p) = s.port {
                argv.push(format!("--port={p}"));
            }
            if let Some(d) = &s.database {
                argv.push(format!("--dbname={d}"));
            }
            argv.push(format!("--command={query}"));
        }
        SqlClient::Mariadb => {
            argv.extend(["--batch", "--skip-column-names"].map(String::from));
            if let Some(p) = s.port {
                argv.extend([format!("--port={p}"), "--protocol=tcp".into()]);
            }
            if let Some(d) = &s.database {
                argv.push(format!("--database={d}"));
            }
            argv.push(format!("--execute={query}"));
        }
    }
    let user = s.user.unwrap_or_else(|| match client {
        SqlClient::Psql => "postgres".into(),
        SqlClient::Mariadb => "root".into(),
    });
    Ok(CheckKind::Sql {
        client,
        argv,
        user,
        expect,
    })
}
