//! The nginx driver: one vhost file per instance, `wayback-<instance>.conf` in nginx's include directory
//! (`[proxy.nginx] include_dir`, else `conf.d` or `sites-enabled` next to nginx.conf, whichever nginx.conf
//! includes). The file's first line is wayback's header for the instance ([`header`]); wayback deletes or
//! replaces a file only when that line is there, and never touches any other file.
//!
//! Publish, under an flock on the include directory (so concurrent wayback processes never test each
//! other's half-done files): write atomically (hidden tempfile in the same directory + rename), run
//! `nginx -t`, then the reload command. If nginx rejects the file (or warns that another site already has
//! the hostname), or the reload fails, the file is removed again (or its previous wayback version put
//! back), nginx is not reloaded, and the error carries nginx's own message. Unpublish deletes the file and
//! reloads; a file that is already gone is success (and needs no reload). After a reload both wait (at most
//! 3 s) until nginx's master has replaced its workers, so the change is live when they return. The vhost
//! text and what is read from nginx.conf live in `nginx_conf`. Runs nginx through `std::process::Command`;
//! blocking.

use std::fs::{self, File};
use std::io::{self, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use nix::fcntl::{Flock, FlockArg};
use wayback_core::export::NGINX_HEADER;

use super::config::NginxConfig;
use super::nginx_conf::{include_dir, pid_file, server_names, Workers};
use super::{check_host, check_instance, DriverRoute, HostInUse};
use wayback_core::names::Hostname;

pub use super::nginx_conf::render;
pub use wayback_core::drivers::NginxHandle;

#[derive(Debug, thiserror::Error)]
pub enum NginxError {
    #[error("cannot publish instance {instance} on nginx: {reason}")]
    Name { instance: String, reason: String },
    #[error("invalid listen value {0:?} in [proxy.nginx]: write PORT, ADDR:PORT or [IPV6]:PORT")]
    Listen(String),
    #[error("cannot read nginx's config {conf} to find its include directory: {source} (set include_dir, or conf, in [proxy.nginx])")]
    ReadConf { conf: PathBuf, source: io::Error },
    #[error("cannot tell where nginx reads site files: {conf} includes neither conf.d/*.conf nor sites-enabled/* beside it (set include_dir in [proxy.nginx])")]
    NoIncludeDir { conf: PathBuf },
    #[error("{file} was not written by wayback for instance {instance} (its first line is not wayback's header): wayback never edits or deletes it; move it away, or use another instance name")]
    Foreign { file: PathBuf, instance: String },
    #[error("cannot {op} {file}: {source}")]
    Io {
        op: &'static str,
        file: PathBuf,
        source: io::Error,
    },
    #[error(
        "cannot run `{cmd}`: {source} (is nginx installed? set binary or reload in [proxy.nginx])"
    )]
    Run { cmd: String, source: io::Error },
    #[error("nginx rejected the vhost for {host} (instance {instance}); wayback removed {file} again and did not reload nginx. nginx said:\n{message}")]
    Rejected {
        host: String,
        instance: String,
        file: PathBuf,
        message: String,
    },
    #[error("nginx accepted {file} for {host}, but `{cmd}` failed, so wayback removed it again (is nginx running? set reload in [proxy.nginx]):\n{message}")]
    ReloadPublish {
        cmd: String,
        host: String,
        file: PathBuf,
        message: String,
    },
    #[error("wayback removed {file}, but `{cmd}` failed: nginx serves {host} until it is reloaded (run it by hand):\n{message}")]
    ReloadUnpublish {
        cmd: String,
        host: String,
        file: PathBuf,
        message: String,
    },
    #[error("{first}\nand wayback could not take {file} back: {source}; remove it by hand and reload nginx")]
    Restore {
        first: Box<NginxError>,
        file: PathBuf,
        source: io::Error,
    },
}

/// The first line of every vhost file wayback writes for `instance`.
pub fn header(instance: &str) -> String {
    format!("{NGINX_HEADER}{instance}. Do not edit; wayback removes it.")
}

/// The handle [`publish`] returns, computed without touching anything (journal it first).
pub fn handle(cfg: &NginxConfig, route: &DriverRoute) -> Result<NginxHandle, NginxError> {
    let name_err = |reason| NginxError::Name {
        instance: route.instance.clone(),
        reason,
    };
    check_instance(&route.instance).map_err(name_err)?;
    check_host(&route.host).map_err(name_err)?;
    Ok(NginxHandle {
        instance: route.instance.clone(),
        host: route.host.clone(),
        file: include_dir(cfg)?.join(format!("wayback-{}.conf", route.instance)),
        reload: cfg.reload_command(),
        pid_file: pid_file(cfg),
    })
}

/// The first file in the include directory (in name order; hidden files skipped, as wayback's own
/// temporary files are) with a `server_name` equal to `host`, and whether it is a wayback vhost. Reads only.
pub fn host_in_use(cfg: &NginxConfig, host: &Hostname) -> Result<Option<HostInUse>, NginxError> {
    let dir = include_dir(cfg)?;
    let mut files: Vec<PathBuf> = match fs::read_dir(&dir) {
        Ok(rd) => rd.flatten().map(|e| e.path()).collect(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err("read the include directory", &dir, e)),
    };
    files.sort();
    for file in files {
        let hidden = file
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with('.'));
        // sites-enabled usually holds symlinks to sites-available: follow them, as nginx does.
        if hidden || !file.is_file() {
            continue;
        }
        let Ok(text) = fs::read_to_string(&file) else {
            continue;
        };
        let taken = server_names(&text)
            .iter()
            .any(|n| Hostname::new(n).is_ok_and(|n| &n == host));
        if taken {
            let instance = text
                .lines()
                .next()
                .and_then(|l| l.strip_prefix(NGINX_HEADER))
                .and_then(|rest| rest.split(['.', ' ']).next())
                .map(str::to_string);
            return Ok(Some(HostInUse {
                instance,
                place: format!("nginx vhost {}", file.display()),
            }));
        }
    }
    Ok(None)
}

/// Write the vhost, check it with `nginx -t`, reload nginx. On any failure nginx is left as it was.
pub fn publish(cfg: &NginxConfig, route: &DriverRoute) -> Result<NginxHandle, NginxError> {
    let h = handle(cfg, route)?;
    let text = render(cfg, route)?;
    let dir = h.file.parent().expect("vhost file has a directory");
    let lock = lock_dir(dir)?;
    let previous = match inspect(&h.file, &h.instance)? {
        Found::Foreign => return Err(foreign(&h)),
        Found::Absent => None,
        Found::Ours(bytes) => Some(bytes),
    };
    write_atomic(dir, &h.file, text.as_bytes(), previous.is_none()).map_err(|e| {
        match e.kind() {
            io::ErrorKind::AlreadyExists => foreign(&h),
            _ => io_err("write", &h.file, e),
        }
    })?;
    let _ = lock.sync_all();
    let conflict = format!("conflicting server name \"{}\"", h.host);
    let failure = match run(&cfg.test_command()) {
        Err(e) => Some(e),
        Ok((ok, message)) if !ok || message.contains(&conflict) => Some(NginxError::Rejected {
            host: h.host.clone(),
            instance: h.instance.clone(),
            file: h.file.clone(),
            message,
        }),
        Ok(_) => {
            let workers = Workers::before_reload(h.pid_file.as_deref());
            match run(&h.reload) {
                Ok((true, _)) => {
                    wait_reloaded(workers.as_ref(), &h);
                    None
                }
                Ok((false, message)) => Some(NginxError::ReloadPublish {
                    cmd: h.reload.join(" "),
                    host: h.host.clone(),
                    file: h.file.clone(),
                    message,
                }),
                Err(e) => Some(e),
            }
        }
    };
    let Some(first) = failure else {
        return Ok(h);
    };
    let restored = match previous {
        Some(bytes) => write_atomic(dir, &h.file, &bytes, false),
        None => fs::remove_file(&h.file),
    };
    let _ = lock.sync_all();
    match restored {
        Ok(()) => Err(first),
        Err(source) => Err(NginxError::Restore {
            first: Box::new(first),
            file: h.file.clone(),
            source,
        }),
    }
}

/// Delete the vhost if it is wayback's for this instance, then reload. Already gone: success, no reload.
pub fn unpublish(h: &NginxHandle) -> Result<(), NginxError> {
    let dir = h.file.parent().expect("vhost file has a directory");
    if !dir.exists() {
        return Ok(());
    }
    let lock = lock_dir(dir)?;
    match inspect(&h.file, &h.instance)? {
        Found::Absent => return Ok(()),
        Found::Foreign => return Err(foreign(h)),
        Found::Ours(_) => match fs::remove_file(&h.file) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(io_err("remove", &h.file, e)),
        },
    }
    let _ = lock.sync_all();
    let workers = Workers::before_reload(h.pid_file.as_deref());
    match run(&h.reload)? {
        (true, _) => {
            wait_reloaded(workers.as_ref(), h);
            Ok(())
        }
        (false, message) => Err(NginxError::ReloadUnpublish {
            cmd: h.reload.join(" "),
            host: h.host.clone(),
            file: h.file.clone(),
            message,
        }),
    }
}

enum Found {
    Absent,
    Foreign,
    Ours(Vec<u8>),
}

/// Let the reload take effect before returning; a master that starts no new workers is only reported
/// (nginx keeps its old config when it cannot apply the new one, and says why in its error log).
fn wait_reloaded(workers: Option<&Workers>, h: &NginxHandle) {
    if workers.is_some_and(|w| !w.wait_replaced()) {
        tracing::warn!(
            "nginx started no new workers after `{}` for {}: check nginx's error log",
            h.reload.join(" "),
            h.file.display()
        );
    }
}

/// Whether `file` is absent, wayback's for `instance` (its bytes), or anything else.
fn inspect(file: &Path, instance: &str) -> Result<Found, NginxError> {
    match fs::symlink_metadata(file) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Found::Absent),
        Err(e) => return Err(io_err("inspect", file, e)),
        Ok(m) if !m.file_type().is_file() => return Ok(Found::Foreign),
        Ok(_) => {}
    }
    let bytes = fs::read(file).map_err(|e| io_err("read", file, e))?;
    let first = bytes.split(|&b| b == b'\n').next().unwrap_or(&[]);
    let mark = format!("{NGINX_HEADER}{instance}");
    let ours = first
        .strip_prefix(mark.as_bytes())
        .is_some_and(|rest| matches!(rest.first(), None | Some(b'.' | b' ' | b'\r')));
    Ok(if ours {
        Found::Ours(bytes)
    } else {
        Found::Foreign
    })
}

fn foreign(h: &NginxHandle) -> NginxError {
    NginxError::Foreign {
        file: h.file.clone(),
        instance: h.instance.clone(),
    }
}

fn io_err(op: &'static str, file: &Path, source: io::Error) -> NginxError {
    NginxError::Io {
        op,
        file: file.to_path_buf(),
        source,
    }
}

fn lock_dir(dir: &Path) -> Result<Flock<File>, NginxError> {
    let f = File::open(dir).map_err(|e| io_err("open the include directory", dir, e))?;
    Flock::lock(f, FlockArg::LockExclusive)
        .map_err(|(_, e)| io_err("lock the include directory", dir, e.into()))
}

/// Write `bytes` to `file` through a hidden tempfile (`.wayback-*`: no include glob matches it) + rename;
/// with `fresh`, fail with `AlreadyExists` instead of replacing a file that appeared meanwhile.
fn write_atomic(dir: &Path, file: &Path, bytes: &[u8], fresh: bool) -> io::Result<()> {
    let mut tmp = tempfile::Builder::new()
        .prefix(".wayback-")
        .suffix(".tmp")
        .tempfile_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file()
        .set_permissions(fs::Permissions::from_mode(0o644))?;
    tmp.as_file().sync_all()?;
    let done = if fresh {
        tmp.persist_noclobber(file)
    } else {
        tmp.persist(file)
    };
    done.map(drop).map_err(|e| e.error)
}

/// Run a command; (exit success, its stderr and stdout, trimmed).
fn run(argv: &[String]) -> Result<(bool, String), NginxError> {
    let cmd = argv.join(" ");
    let (program, args) = argv.split_first().ok_or_else(|| NginxError::Run {
        cmd: cmd.clone(),
        source: io::Error::new(io::ErrorKind::InvalidInput, "empty command"),
    })?;
    let out = Command::new(find_program(program))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|source| NginxError::Run { cmd, source })?;
    let mut text = String::from_utf8_lossy(&out.stderr).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stdout));
    Ok((out.status.success(), text.trim().to_string()))
}

/// A bare program name from PATH, else /usr/sbin or /sbin (wayback may run with a PATH without them).
fn find_program(name: &str) -> PathBuf {
    if name.contains('/') {
        return name.into();
    }
    let path = std::env::var("PATH").unwrap_or_default();
    let found = path
        .split(':')
        .filter(|d| !d.is_empty())
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"])
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file());
    found.unwrap_or_else(|| name.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_in_use_reads_server_names_in_the_include_dir() {
        let t = tempfile::tempdir().unwrap();
        let cfg = NginxConfig {
            include_dir: Some(t.path().into()),
            ..NginxConfig::default()
        };
        let host = |s: &str| Hostname::new(s).unwrap();
        let route = DriverRoute {
            instance: "old-www".into(),
            host: "old-www.example.org".into(),
            upstream: "127.0.0.1:8080".parse().unwrap(),
            tls: None,
        };
        fs::write(
            t.path().join("wayback-old-www.conf"),
            render(&cfg, &route).unwrap(),
        )
        .unwrap();
        fs::write(
            t.path().join("site.conf"),
            "server {\n  server_name Shop.Example.org *.wild.example.org;\n}\n",
        )
        .unwrap();
        fs::write(
            t.path().join(".wayback-x.tmp"),
            "server_name hidden.example.org;",
        )
        .unwrap();
        let wb = host_in_use(&cfg, &host("OLD-WWW.example.org."))
            .unwrap()
            .unwrap();
        assert_eq!(wb.instance.as_deref(), Some("old-www"));
        assert!(wb.place.ends_with("wayback-old-www.conf"), "{}", wb.place);
        let theirs = host_in_use(&cfg, &host("shop.example.org"))
            .unwrap()
            .unwrap();
        assert_eq!(theirs.instance, None);
        assert!(theirs.to_string().starts_with("nginx vhost "), "{theirs}");
        for free in [
            "a.wild.example.org",
            "hidden.example.org",
            "new.example.org",
        ] {
            assert_eq!(host_in_use(&cfg, &host(free)).unwrap(), None, "{free}");
        }
    }
}
