//! wayback's init: PID 1 inside an instance's container (`wayback __init SPEC`).
//!
//! Lays out the FHS skeleton a tmpfs root lacks (/var/run → /run, /var/tmp, …), creates the profile's
//! directories, starts the profile's processes in order (each as its user, waiting for its readiness before
//! the next), reaps every child, and on SIGTERM/SIGINT stops the processes in reverse order with their stop
//! signals. If a process exits on its own, the others are stopped and init exits non-zero, which ends the
//! container; the host side notices and reports it. Single-threaded; syscalls: sigprocmask/sigtimedwait,
//! waitpid, kill, setgroups/setgid/setuid (in the child before exec), mkdir/chown/chmod/symlink.

use std::ffi::CString;
use std::fs;
use std::io::Write;
use std::net::{Ipv4Addr, SocketAddrV4, TcpStream};
use std::os::unix::fs::{symlink, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;
use std::str::FromStr;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use nix::sys::signal::{kill, SigSet, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{Gid, Group, Pid, Uid, User};
use wayback_core::plan::InitSpec;
use wayback_core::profile::{DirSpec, Process, Ready};

/// The usual directories, then NixOS's (absent elsewhere, so harmless).
pub const PATH: &str =
    "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:/run/wrappers/bin:/run/current-system/sw/bin";
const READY_TIMEOUT: Duration = Duration::from_secs(120);
const STOP_GRACE: Duration = Duration::from_secs(20);

struct Running {
    name: String,
    pid: Pid,
    stop: Signal,
}

pub fn main(spec_path: &Path) -> Result<i32> {
    // First of all: as PID 1, a signal that has no handler and is not blocked is dropped.
    let signals = handled_signals();
    signals.thread_block().context("blocking signals")?;
    let text = fs::read_to_string(spec_path)
        .with_context(|| format!("reading {}", spec_path.display()))?;
    let json: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("parsing {}", spec_path.display()))?;
    // Written by the wayback that started the instance, maybe an earlier release (a restart after an
    // upgrade): read through the format migrations.
    let spec: InitSpec = wayback_core::format::decode(json, spec_path)?;
    skeleton()?;
    for (link, target) in &spec.symlinks {
        host_symlink(link, target)
            .with_context(|| format!("linking {} -> {}", link.display(), target.display()))?;
    }
    for d in spec.skeleton.iter().chain(&spec.dirs) {
        make_dir(d).with_context(|| format!("creating {}", d.path.display()))?;
    }
    let mut running: Vec<Running> = Vec::new();
    for p in &spec.processes {
        if p.oneshot {
            if let Err(e) = hook(p, &spec.shell) {
                say(&format!("hook {} failed: {e:#}", p.name));
                report(&format!("failed: hook {} failed: {e:#}", p.name));
                stop_all(&mut running);
                return Ok(1);
            }
            continue;
        }
        match start(p, &spec.shell) {
            Ok(pid) => {
                say(&format!("started {} (pid {pid})", p.name));
                running.push(Running {
                    name: p.name.clone(),
                    pid,
                    stop: p
                        .stop_signal
                        .as_deref()
                        .map(Signal::from_str)
                        .transpose()?
                        .unwrap_or(Signal::SIGTERM),
                });
            }
            Err(e) => {
                say(&format!("cannot start {}: {e:#}", p.name));
                report(&format!("failed: cannot start {}: {e:#}", p.name));
                stop_all(&mut running);
                return Ok(1);
            }
        }
        if let Some(r) = &p.ready {
            if let Err(e) = wait_ready(r, &running) {
                say(&format!("{} did not become ready: {e:#}", p.name));
                report(&format!("failed: {} did not become ready: {e:#}", p.name));
                stop_all(&mut running);
                return Ok(1);
            }
        }
    }
    say("all processes started");
    report("started");
    release_memory();
    loop {
        match signals.wait() {
            Ok(Signal::SIGCHLD) => {
                if let Some((name, status)) = reap(&mut running) {
                    say(&format!("{name} exited ({status}); stopping the instance"));
                    stop_all(&mut running);
                    return Ok(1);
                }
            }
            Ok(sig) => {
                say(&format!("received {sig}, stopping"));
                stop_all(&mut running);
                return Ok(0);
            }
            Err(e) => bail!("sigwait: {e}"),
        }
    }
}

fn handled_signals() -> SigSet {
    let mut s = SigSet::empty();
    for sig in [
        Signal::SIGTERM,
        Signal::SIGINT,
        Signal::SIGHUP,
        Signal::SIGCHLD,
    ] {
        s.add(sig);
    }
    s
}

/// Give the memory of the start (the spec, its JSON, user lookups) back to the kernel: this process stays
/// for the instance's whole life, one per container, and its heap is private to it.
fn release_memory() {
    // SAFETY: malloc_trim only releases free memory of the allocator's arenas; nothing points into it.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Tell the host how the start went (the file is bound from the instance's directory).
fn report(state: &str) {
    let _ = fs::write(wayback_core::nspawn::STATE_PATH, format!("{state}\n"));
}

fn say(msg: &str) {
    let _ = writeln!(std::io::stderr(), "wayback-init: {msg}");
}

/// What a tmpfs root needs for Debian's services: /var with the usual symlinks into /run.
fn skeleton() -> Result<()> {
    for (dir, mode) in [
        ("/var", 0o755),
        ("/var/lib", 0o755),
        ("/var/log", 0o755),
        ("/var/cache", 0o755),
        ("/var/spool", 0o755),
        ("/var/tmp", 0o1777),
        ("/run/lock", 0o1777),
        ("/tmp", 0o1777),
    ] {
        if !Path::new(dir).exists() {
            fs::create_dir_all(dir).with_context(|| format!("creating {dir}"))?;
            fs::set_permissions(dir, fs::Permissions::from_mode(mode))?;
        }
    }
    for (link, target) in [("/var/run", "/run"), ("/var/lock", "/run/lock")] {
        if fs::symlink_metadata(link).is_err() {
            symlink(target, link).with_context(|| format!("linking {link}"))?;
        }
    }
    Ok(())
}

/// Recreate a host symlink (e.g. /run/current-system on NixOS). One that already points there is fine.
/// A parent that nspawn made a symlink into the read-only /usr (e.g. /bin -> usr/bin, on a NixOS host whose
/// /bin is a real directory holding only `sh`) is replaced by a directory first.
fn host_symlink(link: &Path, target: &Path) -> Result<()> {
    if fs::read_link(link).is_ok_and(|t| t == target) {
        return Ok(());
    }
    if let Some(parent) = link.parent() {
        if fs::symlink_metadata(parent).is_ok_and(|m| m.file_type().is_symlink()) {
            fs::remove_file(parent)?;
        }
        fs::create_dir_all(parent)?;
    }
    symlink(target, link)?;
    Ok(())
}

fn make_dir(d: &DirSpec) -> Result<()> {
    fs::create_dir_all(&d.path)?;
    // Owners are names from the host's passwd/group, or numeric ids (the host's /var skeleton).
    let user = |n: &str| -> Result<(Uid, Gid)> {
        match n.parse::<u32>() {
            Ok(id) => Ok((Uid::from_raw(id), Gid::from_raw(id))),
            Err(_) => lookup_user(n).map(|u| (u.uid, u.gid)),
        }
    };
    let owner = d.owner.as_deref().map(user).transpose()?;
    let uid = owner.map(|o| o.0);
    let gid = match d.group.as_deref() {
        Some(g) => Some(match g.parse::<u32>() {
            Ok(id) => Gid::from_raw(id),
            Err(_) => lookup_group(g)?,
        }),
        None => owner.map(|o| o.1),
    };
    nix::unistd::chown(&d.path, uid, gid)?;
    if let Some(m) = &d.mode {
        fs::set_permissions(
            &d.path,
            fs::Permissions::from_mode(u32::from_str_radix(m, 8)?),
        )?;
    }
    Ok(())
}

fn lookup_user(name: &str) -> Result<User> {
    User::from_name(name)?.with_context(|| format!("no user {name:?} in the host's /etc/passwd"))
}

fn lookup_group(name: &str) -> Result<Gid> {
    Ok(Group::from_name(name)?
        .with_context(|| format!("no group {name:?} in the host's /etc/group"))?
        .gid)
}

/// Run a oneshot process (a hook) to completion; it must exit 0.
fn hook(p: &Process, shell: &Path) -> Result<()> {
    let pid = start(p, shell)?;
    say(&format!("running hook {} (pid {pid})", p.name));
    match waitpid(pid, None)? {
        WaitStatus::Exited(_, 0) => Ok(()),
        st => bail!("{}", describe(&st)),
    }
}

fn start(p: &Process, shell: &Path) -> Result<Pid> {
    let argv = p.argv(shell);
    let mut cmd = Command::new(&argv[0]);
    cmd.args(&argv[1..])
        .env_clear()
        .env("PATH", PATH)
        .env("container", "wayback");
    let mut ids: Option<(Uid, Gid, Vec<Gid>)> = None;
    if let Some(u) = &p.user {
        let user = lookup_user(u)?;
        let gid = match &p.group {
            Some(g) => lookup_group(g)?,
            None => user.gid,
        };
        let cname = CString::new(user.name.clone())?;
        let groups = nix::unistd::getgrouplist(&cname, gid).unwrap_or_else(|_| vec![gid]);
        cmd.env("HOME", &user.dir)
            .env("USER", &user.name)
            .env("LOGNAME", &user.name);
        cmd.current_dir(if user.dir.is_dir() {
            user.dir.as_path()
        } else {
            Path::new("/")
        });
        ids = Some((user.uid, gid, groups));
    } else {
        cmd.env("HOME", "/root").current_dir("/");
    }
    if let Some(w) = &p.workdir {
        cmd.current_dir(w);
    }
    cmd.envs(&p.env);
    // SAFETY: the closure runs in the forked child before exec and makes only async-signal-safe syscalls
    // (sigprocmask, setgroups, setgid, setuid) on values computed before the fork.
    unsafe {
        cmd.pre_exec(move || {
            // Init blocks the signals it waits for; the service must start with none blocked, or it would
            // never see SIGTERM.
            SigSet::empty().thread_set_mask()?;
            if let Some((uid, gid, groups)) = &ids {
                nix::unistd::setgroups(groups)?;
                nix::unistd::setgid(*gid)?;
                nix::unistd::setuid(*uid)?;
            }
            Ok(())
        });
    }
    let child = cmd.spawn().with_context(|| format!("exec {}", argv[0]))?;
    Ok(Pid::from_raw(child.id() as i32))
}

/// Wait for `r` while watching for children that die first.
fn wait_ready(r: &Ready, running: &[Running]) -> Result<()> {
    let start = Instant::now();
    // Look again soon, then every 25 ms.
    let mut pause = Duration::from_millis(1);
    while start.elapsed() < READY_TIMEOUT {
        for rp in running {
            if let Ok(st @ (WaitStatus::Exited(..) | WaitStatus::Signaled(..))) =
                waitpid(rp.pid, Some(WaitPidFlag::WNOHANG))
            {
                bail!("{} exited before it was ready ({})", rp.name, describe(&st));
            }
        }
        let ok = if let Some(port) = r.tcp.or(r.http).or(r.postgres) {
            let conn = TcpStream::connect_timeout(
                &SocketAddrV4::new(Ipv4Addr::LOCALHOST, port).into(),
                Duration::from_millis(200),
            );
            match conn {
                Ok(mut s) if r.postgres.is_some() => {
                    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
                    wayback_core::probe::postgres_ready(&mut s)
                }
                Ok(_) => true,
                Err(_) => false,
            }
        } else if let Some(p) = &r.path {
            p.exists()
        } else {
            true
        };
        if ok {
            return Ok(());
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(25));
    }
    bail!("not ready after {}s", READY_TIMEOUT.as_secs())
}

/// Reap all exited children; report the first of ours that ended.
fn reap(running: &mut Vec<Running>) -> Option<(String, String)> {
    let mut ended = None;
    loop {
        match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) | Err(_) => break,
            Ok(st) => {
                let Some(pid) = st.pid() else { break };
                if let Some(i) = running.iter().position(|r| r.pid == pid) {
                    let r = running.remove(i);
                    ended.get_or_insert((r.name, describe(&st)));
                }
            }
        }
    }
    ended
}

fn describe(st: &WaitStatus) -> String {
    match st {
        WaitStatus::Exited(_, code) => format!("exit status {code}"),
        WaitStatus::Signaled(_, sig, _) => format!("killed by {sig}"),
        other => format!("{other:?}"),
    }
}

/// Stop processes newest first: their stop signal, then SIGKILL after the grace period.
fn stop_all(running: &mut Vec<Running>) {
    // Children that exited while we waited for another one (a daemon re-parented to us, say), so that a
    // process's exit is noticed even when it was reaped as somebody else's orphan.
    let mut reaped: Vec<Pid> = Vec::new();
    while let Some(r) = running.pop() {
        if reaped.contains(&r.pid) {
            continue;
        }
        say(&format!("stopping {} with {}", r.name, r.stop));
        let _ = kill(r.pid, r.stop);
        let deadline = Instant::now() + STOP_GRACE;
        // Most services stop within milliseconds: look again soon, then every 20 ms.
        let mut pause = Duration::from_millis(1);
        loop {
            reap_all(&mut reaped);
            if reaped.contains(&r.pid) {
                break;
            }
            if Instant::now() >= deadline {
                say(&format!(
                    "{} did not stop in {}s, killing it",
                    r.name,
                    STOP_GRACE.as_secs()
                ));
                let _ = kill(r.pid, Signal::SIGKILL);
                let _ = waitpid(r.pid, None);
                break;
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(20));
        }
    }
    reap_all(&mut reaped);
}

/// Reap every exited child (ours or orphans re-parented to us, PID 1), remembering their PIDs. A zombie
/// still answers `kill -0`, so a wrapper script waiting for its daemon to go would wait forever otherwise.
fn reap_all(reaped: &mut Vec<Pid>) {
    while let Ok(st) = waitpid(None, Some(WaitPidFlag::WNOHANG)) {
        match st.pid() {
            Some(pid) if st != WaitStatus::StillAlive => reaped.push(pid),
            _ => break,
        }
    }
}
