//! `wayback exec NAME -- CMD...` and `wayback shell NAME`: run a command inside a running instance.
//!
//! The command joins the namespaces of the container's PID 1 (mount, network, PID, UTS, IPC, cgroup; see
//! [`nsenter`]) and is confined as the container's own processes are: the capability sets and
//! no-new-privileges of that PID 1 and, when it has nspawn's system-call filter, wayback's equivalent
//! ([`wayback_engine::sys::seccomp`]), taken on before anything of the container (its users, its shell) is looked
//! at. It runs as the instance's first process's user for `exec` (the unit's `User=`), as root for
//! `shell`, or as `--user`; with the environment wayback's init gives processes (PATH, HOME, USER,
//! LOGNAME, `container=wayback`), in the user's home or `/`. Its exit status becomes wayback's (128+N for
//! signal N; 126 cannot execute, 127 not found, like env(1)).
//!
//! This runs before any async runtime starts: joining a mount namespace needs a single-threaded process.
//! The process forks after joining (the PID namespace applies to children); the parent stays on the host's
//! side of the PID namespace, forwards SIGTERM/SIGHUP (and SIGINT/SIGQUIT that did not come from the
//! terminal, which reach the command directly), and relays a pty for an interactive `shell`.

use std::ffi::CString;
use std::io::{self, IsTerminal, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{kill, SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{ForkResult, Gid, Group, Pid, User};
use wayback_core::{Config, InstanceName};

use wayback_engine::error::BadInput;
use wayback_engine::state::InstanceDir;
use wayback_engine::status::State;
use wayback_engine::sys::nsenter::{self, Confinement};
use wayback_engine::sys::pty::{self, Pty, RawMode};

#[derive(Debug, Args)]
pub struct ExecArgs {
    /// The instance (see `wayback ls`)
    pub name: InstanceName,
    /// Run as this user of the container [default: the user of the instance's first process, else root]
    #[arg(long, short)]
    pub user: Option<String>,
    /// Set an environment variable for the command (repeatable)
    #[arg(long, value_name = "KEY=VALUE", value_parser = crate::cli::parse_env)]
    pub env: Vec<(String, String)>,
    /// The command and its arguments (after `--`)
    #[arg(
        required = true,
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "CMD"
    )]
    pub command: Vec<String>,
}

#[derive(Debug, Args)]
pub struct ShellArgs {
    /// The instance (see `wayback ls`)
    pub name: InstanceName,
    /// Log in as this user of the container [default: root]
    #[arg(long, short)]
    pub user: Option<String>,
}

/// What to start inside.
struct Spec {
    /// None: the user's login shell.
    argv: Option<Vec<String>>,
    user: String,
    env: Vec<(String, String)>,
    pty: bool,
}

/// Exit statuses of the child before the command runs (as env(1)).
const CANNOT_EXECUTE: i32 = 126;
const NOT_FOUND: i32 = 127;

pub fn exec(cfg: &Config, a: ExecArgs) -> Result<ExitCode> {
    let dir = InstanceDir::open(cfg, &a.name)?;
    let plan = dir.plan()?;
    let user = a.user.unwrap_or_else(|| {
        plan.init
            .processes
            .iter()
            .find(|p| !p.oneshot)
            .and_then(|p| p.user.clone())
            .unwrap_or_else(|| "root".into())
    });
    let spec = Spec {
        argv: Some(a.command),
        user,
        env: a.env,
        pty: false,
    };
    run(&dir, &plan.container.machine, spec)
}

pub fn shell(cfg: &Config, a: ShellArgs) -> Result<ExitCode> {
    let dir = InstanceDir::open(cfg, &a.name)?;
    let plan = dir.plan()?;
    let spec = Spec {
        argv: None,
        user: a.user.unwrap_or_else(|| "root".into()),
        env: Vec::new(),
        pty: io::stdin().is_terminal(),
    };
    run(&dir, &plan.container.machine, spec)
}

fn run(dir: &InstanceDir, machine: &str, spec: Spec) -> Result<ExitCode> {
    let target = nsenter::find(machine, &dir.journal_path())?.ok_or_else(|| not_running(dir))?;
    let mut mask = SigSet::empty();
    for s in [
        Signal::SIGCHLD,
        Signal::SIGTERM,
        Signal::SIGHUP,
        Signal::SIGINT,
        Signal::SIGQUIT,
        Signal::SIGWINCH,
    ] {
        mask.add(s);
    }
    mask.thread_block().context("blocking signals")?;
    let sigfd = SignalFd::with_flags(&mask, SfdFlags::SFD_CLOEXEC).context("signalfd")?;
    // Opened on the host's side, before entering.
    let cgroups = wayback_engine::sys::cgroupjoin::cgroup_procs(target.pid);
    target
        .enter()
        .with_context(|| format!("entering instance {}", dir.name))?;
    let filter = wayback_engine::sys::seccomp::filter(&target.confinement.bounding)?;
    let pty = match spec.pty {
        true => Some(Pty::open().context("opening a pty in the container")?),
        false => None,
    };
    // SAFETY: this process is single-threaded (`enter` checked it), so the child may allocate, look up
    // users and exec freely: no lock can be held by a thread that does not exist in the child.
    match unsafe { nix::unistd::fork() }.context("fork")? {
        ForkResult::Child => {
            wayback_engine::sys::cgroupjoin::join_cgroups(&cgroups);
            let peer = pty.map(|p| p.peer);
            let code = match child(&target.confinement, &filter, &spec, peer) {
                Ok(never) => match never {},
                Err((code, e)) => {
                    let _ = writeln!(io::stderr(), "wayback: {e:#}");
                    code
                }
            };
            // SAFETY: _exit ends the forked child without running the parent's atexit handlers or
            // destructors (which own the parent's state).
            unsafe { libc::_exit(code) }
        }
        ForkResult::Parent { child } => {
            let status = supervise(child, &sigfd, pty)?;
            Ok(ExitCode::from(status as u8))
        }
    }
}

/// Why there is nothing to enter, and what to do (bad input: exit 2).
fn not_running(dir: &InstanceDir) -> BadInput {
    let name = dir.name.as_str();
    let state = State::of(dir);
    let why = match state {
        State::Running | State::Stopping => format!(
            "its container is not running ({}: it may be restarting or ending); see `wayback status {name}` \
             and `wayback logs {name}`",
            state.as_str()
        ),
        _ => format!(
            "{}: {}; {}",
            state.as_str(),
            state.meaning(),
            state.next_step(name)
        ),
    };
    BadInput::new(format!("instance {name} is not running ({why})"))
}

/// In the forked child: take on the confinement, become the user, exec. Returns only on failure, with the
/// exit status to end with.
fn child(
    conf: &Confinement,
    filter: &seccompiler::BpfProgram,
    spec: &Spec,
    peer: Option<OwnedFd>,
) -> Result<std::convert::Infallible, (i32, anyhow::Error)> {
    let fail = |code| move |e: anyhow::Error| (code, e);
    nix::sys::prctl::set_dumpable(false)
        .context("prctl")
        .map_err(fail(1))?;
    if let Some(peer) = &peer {
        nix::unistd::setsid()
            .context("setsid")
            .and_then(|_| pty::make_controlling(peer.as_fd()).context("controlling terminal"))
            .and_then(|()| {
                nix::unistd::dup2_stdin(peer)?;
                nix::unistd::dup2_stdout(peer)?;
                nix::unistd::dup2_stderr(peer)?;
                Ok(())
            })
            .map_err(fail(1))?;
    }
    conf.apply(filter).map_err(|e| fail(1)(e.into()))?;
    // From here on this process can do no more than the container's root.
    let user = User::from_name(&spec.user)
        .ok()
        .flatten()
        .ok_or_else(|| anyhow::anyhow!("no user {:?} in the container's /etc/passwd", spec.user))
        .map_err(fail(2))?;
    if let Some(peer) = &peer {
        let tty = Group::from_name("tty").ok().flatten().map(|g| g.gid);
        let _ = nix::unistd::fchown(peer, Some(user.uid), tty.or(Some(user.gid)));
    }
    let name = CString::new(user.name.clone()).map_err(|e| fail(1)(e.into()))?;
    let groups = nix::unistd::getgrouplist(&name, user.gid).unwrap_or_else(|_| vec![user.gid]);
    become_user(&groups, user.gid, &user)
        .with_context(|| format!("switching to user {}", user.name))
        .map_err(fail(1))?;
    let home = if user.dir.is_dir() {
        user.dir.clone()
    } else {
        PathBuf::from("/")
    };
    nix::unistd::chdir(&home)
        .or_else(|_| nix::unistd::chdir("/"))
        .context("chdir")
        .map_err(fail(1))?;
    let argv = spec.argv.clone().unwrap_or_else(|| {
        let sh = login_shell(&user.shell);
        vec![sh, "-l".into()]
    });
    let env = environment(spec, &user, &home);
    SigSet::empty().thread_set_mask().ok();
    let c = |s: &str| CString::new(s).map_err(|e| fail(1)(e.into()));
    let cargv = argv.iter().map(|a| c(a)).collect::<Result<Vec<_>, _>>()?;
    let cenv = env
        .iter()
        .map(|(k, v)| c(&format!("{k}={v}")))
        .collect::<Result<Vec<_>, _>>()?;
    // The program is looked up in the PATH the command gets (execvpe would use wayback's own).
    let Some(program) = find_program(&argv[0]) else {
        return Err((
            NOT_FOUND,
            anyhow::anyhow!(
                "{}: not found in the container (PATH {})",
                argv[0],
                wayback_engine::init::PATH
            ),
        ));
    };
    let e = nix::unistd::execve(&c(&program)?, &cargv, &cenv).unwrap_err();
    Err((
        CANNOT_EXECUTE,
        anyhow::anyhow!("cannot run {program} in the container: {e}"),
    ))
}

/// `name` itself when it has a slash, else the first executable `dir/name` in wayback's PATH.
fn find_program(name: &str) -> Option<String> {
    if name.contains('/') {
        return Some(name.to_string());
    }
    wayback_engine::init::PATH
        .split(':')
        .map(|dir| format!("{dir}/{name}"))
        .find(|p| {
            Path::new(p).is_file()
                && nix::unistd::access(p.as_str(), nix::unistd::AccessFlags::X_OK).is_ok()
        })
}

fn become_user(groups: &[Gid], gid: Gid, user: &User) -> Result<()> {
    nix::unistd::setgroups(groups)?;
    nix::unistd::setgid(gid)?;
    nix::unistd::setuid(user.uid)?;
    Ok(())
}

/// The user's shell, unless it refuses logins (nologin, false) or is missing: then /bin/sh.
fn login_shell(shell: &Path) -> String {
    let refuses = shell
        .file_name()
        .is_some_and(|n| n == "nologin" || n == "false");
    if refuses || !shell.is_file() {
        "/bin/sh".into()
    } else {
        shell.display().to_string()
    }
}

/// What wayback's init gives processes, plus the shell and terminal for a session, plus `--env`.
fn environment(spec: &Spec, user: &User, home: &Path) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = vec![
        ("PATH".into(), wayback_engine::init::PATH.into()),
        ("HOME".into(), home.display().to_string()),
        ("USER".into(), user.name.clone()),
        ("LOGNAME".into(), user.name.clone()),
        ("container".into(), "wayback".into()),
    ];
    if spec.argv.is_none() {
        env.push(("SHELL".into(), login_shell(&user.shell)));
    }
    if let Ok(term) = std::env::var("TERM") {
        env.push(("TERM".into(), term));
    }
    for (k, v) in &spec.env {
        env.retain(|(k0, _)| k0 != k);
        env.push((k.clone(), v.clone()));
    }
    env
}

/// Wait for the child, forwarding signals and relaying the pty; its exit status as a shell reports it.
fn supervise(child: Pid, sigfd: &SignalFd, pty: Option<Pty>) -> Result<i32> {
    let pty = pty.map(|p| {
        drop(p.peer);
        p.master
    });
    let _raw = match &pty {
        Some(master) => {
            pty::copy_window_size(io::stdin().as_fd(), master.as_fd());
            Some(RawMode::enter().context("terminal raw mode")?)
        }
        None => None,
    };
    let stdin = io::stdin();
    let stdin_file = std::fs::File::from(stdin.as_fd().try_clone_to_owned()?);
    let mut stdin_open = pty.is_some();
    let mut master_open = pty.is_some();
    loop {
        let mut fds = vec![PollFd::new(sigfd.as_fd(), PollFlags::POLLIN)];
        if let Some(m) = pty.as_ref().filter(|_| master_open) {
            fds.push(PollFd::new(m.as_fd(), PollFlags::POLLIN));
        }
        if stdin_open {
            fds.push(PollFd::new(stdin.as_fd(), PollFlags::POLLIN));
        }
        match poll(&mut fds, PollTimeout::NONE) {
            Err(nix::Error::EINTR) => continue,
            r => r.context("poll")?,
        };
        let ready: Vec<bool> = fds
            .iter()
            .map(|f| f.revents().is_some_and(|r| !r.is_empty()))
            .collect();
        drop(fds);
        let mut i = 1;
        if let Some(m) = pty.as_ref().filter(|_| master_open) {
            if ready[i] {
                master_open = pty::pump(m, io::stdout().lock())?;
            }
            i += 1;
        }
        if stdin_open && ready[i] {
            let m = pty.as_ref().expect("stdin is relayed only with a pty");
            stdin_open = pty::pump(&stdin_file, m)?;
        }
        if ready[0] {
            if let Some(code) = on_signal(child, sigfd, pty.as_ref())? {
                if let Some(m) = pty.as_ref().filter(|_| master_open) {
                    drain(m);
                }
                return Ok(code);
            }
        }
    }
}

/// Handle pending signals; the child's exit status once it has ended.
fn on_signal(child: Pid, sigfd: &SignalFd, pty: Option<&std::fs::File>) -> Result<Option<i32>> {
    while let Some(info) = sigfd.read_signal().context("reading signals")? {
        let Ok(sig) = Signal::try_from(info.ssi_signo as i32) else {
            continue;
        };
        match sig {
            Signal::SIGCHLD => match waitpid(child, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(_, code)) => return Ok(Some(code)),
                Ok(WaitStatus::Signaled(_, s, _)) => return Ok(Some(128 + s as i32)),
                _ => {}
            },
            Signal::SIGWINCH => {
                if let Some(m) = pty {
                    pty::copy_window_size(io::stdin().as_fd(), m.as_fd());
                }
            }
            // Typed at the terminal: the command (same process group, or its own pty) has it already.
            Signal::SIGINT | Signal::SIGQUIT if info.ssi_code == libc::SI_KERNEL => {}
            other => {
                let _ = kill(child, other);
            }
        }
    }
    Ok(None)
}

/// What the command wrote just before it ended.
fn drain(master: &std::fs::File) {
    loop {
        let mut fds = [PollFd::new(master.as_fd(), PollFlags::POLLIN)];
        if !matches!(poll(&mut fds, PollTimeout::ZERO), Ok(n) if n > 0) {
            return;
        }
        if !matches!(pty::pump(master, io::stdout().lock()), Ok(true)) {
            return;
        }
    }
}
