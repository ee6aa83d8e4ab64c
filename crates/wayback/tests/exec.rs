//! `wayback exec` and `wayback shell` (issue 12, item 7): a command runs in the instance's namespaces (its
//! PID 1 is wayback's init, its network is host0 with the instance's address, its files are the clone's),
//! confined like the container's own processes (same capability sets and no-new-privileges; it cannot
//! remount /etc), as the instance's user by default or `--user`; exit statuses propagate; `shell` reads
//! piped commands and gives a terminal a pty of the container; an unknown or stopped instance is exit 2;
//! a command still running inside is ended by `down`, which leaves nothing behind.

use std::fs;
use std::io::Write;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use wayback_testsupport::*;

fn text(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Spawn `wayback <args>` with `input` on stdin (kept open until it exits), wait at most 60 s.
fn run_with_stdin(wb: &Wayback, program: Option<&str>, args: &[&str], input: &str) -> Output {
    let mut c = match program {
        Some(p) => {
            let mut c = Command::new(p);
            c.args(args);
            c
        }
        None => wb.command(args),
    };
    let mut child = c
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(input.as_bytes()).unwrap();
    let out = wait_output(child, Duration::from_secs(60));
    drop(stdin);
    eprintln!("$ {args:?} <<< {input:?}\n{}", show(&out));
    out
}

fn wait_output(mut child: Child, timeout: Duration) -> Output {
    let deadline = Instant::now() + timeout;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() >= deadline {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

fn cap_lines(status: &str) -> Vec<String> {
    status
        .lines()
        .filter(|l| l.starts_with("Cap") || l.starts_with("NoNewPrivs"))
        .map(str::to_string)
        .collect()
}

#[test]
fn exec_and_shell_run_inside_the_instance_confined_like_it() {
    if !require_root("exec_and_shell_run_inside_the_instance_confined_like_it") {
        return;
    }
    let pool = BtrfsPool::new();
    let live = pool.subvolume_create("live");
    fs::create_dir_all(live.join("srv/data")).unwrap();
    fs::write(live.join("srv/data/old"), "from the snapshot\n").unwrap();
    let snap = pool.snapshot_ro("live", "snaps/s1");
    let wb = Wayback::new();
    let name = unique("wbtexec");
    let up = wb.up_background(&[
        snap.to_str().unwrap(),
        "--name",
        &name,
        "--bind",
        "/srv/data",
        "--user",
        "nobody",
        "--exec",
        "exec sleep 100000",
    ]);
    let clone = up.ready["clone"].as_str().unwrap().to_string();
    let address = up.ready["address"].as_str().unwrap().to_string();

    // PID namespace: PID 1 is wayback's init.
    let out = wb.run(&["exec", &name, "--", "cat", "/proc/1/cmdline"]);
    assert!(out.status.success(), "{}", show(&out));
    let init = text(&out).replace('\0', " ");
    assert!(
        init.starts_with("/.wayback-init __init") && init.contains(&format!("wb-{name}")),
        "PID 1 inside: {init}"
    );

    // Network namespace: host0 with the instance's address.
    let out = wb.run(&[
        "exec", &name, "--", "ip", "-o", "-4", "addr", "show", "host0",
    ]);
    assert!(out.status.success(), "{}", show(&out));
    assert!(
        text(&out).contains(&format!("inet {address}/")),
        "{address}: {}",
        text(&out)
    );

    // The default user is the instance's first process's user; --user overrides.
    let out = wb.run(&["exec", &name, "--", "id", "-un"]);
    assert_eq!(text(&out).trim(), "nobody", "{}", show(&out));
    let out = wb.run(&["exec", &name, "--user", "root", "--", "id", "-un"]);
    assert_eq!(text(&out).trim(), "root", "{}", show(&out));
    let out = wb.run(&["exec", &name, "--user", "wbt-no-such-user", "--", "true"]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    assert!(
        show(&out).contains("no user \"wbt-no-such-user\""),
        "{}",
        show(&out)
    );

    // Mount namespace: the clone's files, and a write lands in the clone.
    let out = wb.run(&["exec", &name, "--", "cat", "/srv/data/old"]);
    assert_eq!(text(&out), "from the snapshot\n", "{}", show(&out));
    let out = wb.run(&[
        "exec",
        &name,
        "--user",
        "root",
        "--env",
        "WBT_WORD=written-inside",
        "--",
        "sh",
        "-c",
        "echo $WBT_WORD > /srv/data/new",
    ]);
    assert!(out.status.success(), "{}", show(&out));
    assert_eq!(
        fs::read_to_string(Path::new(&clone).join("srv/data/new")).unwrap(),
        "written-inside\n"
    );
    assert!(
        !snap.join("srv/data/new").exists(),
        "the snapshot stays as it was"
    );

    // Confined like the container's own processes: the same capabilities and no-new-privileges as its
    // PID 1, and root cannot remount /etc.
    let own = wb.run(&[
        "exec",
        &name,
        "--user",
        "root",
        "--",
        "cat",
        "/proc/self/status",
    ]);
    let init = wb.run(&[
        "exec",
        &name,
        "--user",
        "root",
        "--",
        "cat",
        "/proc/1/status",
    ]);
    assert_eq!(cap_lines(&text(&own)), cap_lines(&text(&init)));
    assert!(
        cap_lines(&text(&own)).contains(&"NoNewPrivs:\t1".to_string()),
        "{}",
        text(&own)
    );
    // ... and in its cgroups (it sees them as its own root, like PID 1 does).
    let own = wb.run(&["exec", &name, "--", "cat", "/proc/self/cgroup"]);
    let init = wb.run(&["exec", &name, "--", "cat", "/proc/1/cgroup"]);
    assert_eq!(text(&own), text(&init), "{}", show(&own));
    let out = wb.run(&[
        "exec",
        &name,
        "--user",
        "root",
        "--",
        "mount",
        "-o",
        "remount,rw",
        "/etc",
    ]);
    assert!(
        !out.status.success(),
        "remounting /etc must fail: {}",
        show(&out)
    );
    let out = wb.run(&[
        "exec",
        &name,
        "--user",
        "root",
        "--",
        "touch",
        "/etc/wbt-exec",
    ]);
    assert!(!out.status.success(), "{}", show(&out));
    assert!(!Path::new("/etc/wbt-exec").exists());

    // Exit statuses.
    let out = wb.run(&["exec", &name, "--", "sh", "-c", "exit 7"]);
    assert_eq!(out.status.code(), Some(7), "{}", show(&out));
    let out = wb.run(&["exec", &name, "--", "wbt-no-such-command"]);
    assert_eq!(out.status.code(), Some(127), "{}", show(&out));
    assert!(show(&out).contains("wbt-no-such-command: not found in the container"));
    let out = wb.run(&["exec", &name, "--", "sh", "-c", "kill -TERM $$"]);
    assert_eq!(out.status.code(), Some(128 + 15), "{}", show(&out));

    // shell: piped commands, as root by default.
    let out = run_with_stdin(
        &wb,
        None,
        &["shell", &name],
        "id -un\necho shell > /srv/data/from-shell\nexit 5\n",
    );
    assert_eq!(out.status.code(), Some(5), "{}", show(&out));
    assert!(text(&out).lines().any(|l| l == "root"), "{}", show(&out));
    assert_eq!(
        fs::read_to_string(Path::new(&clone).join("srv/data/from-shell")).unwrap(),
        "shell\n"
    );
    // shell on a terminal (script(1) gives it one): a pty of the container's own devpts.
    let cmdline = format!(
        "{} --config {} shell {name} --user nobody",
        wayback_bin(),
        wb.config_path().display()
    );
    let out = run_with_stdin(
        &wb,
        Some("script"),
        &["-qec", &cmdline, "/dev/null"],
        "tty; id -un; exit 4\n",
    );
    assert_eq!(out.status.code(), Some(4), "{}", show(&out));
    assert!(text(&out).contains("/dev/pts/0"), "{}", show(&out));
    assert!(text(&out).contains("nobody"), "{}", show(&out));

    // A command still running inside ends with the instance; nothing is left.
    let mut long = wb
        .command(&["exec", &name, "--", "sleep", "100000"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for(Duration::from_secs(30), || {
        let out = wb.run(&[
            "exec",
            &name,
            "--",
            "sh",
            "-c",
            "ps -eo args | grep -c '^sleep 100000$'",
        ]);
        (text(&out).trim() == "2").then_some(())
    })
    .expect("the exec'd sleep runs inside");
    wb.run_ok(&["down", &name]);
    let st = wait_for(Duration::from_secs(30), || long.try_wait().unwrap())
        .expect("`wayback exec` ends when its instance goes");
    assert!(!st.success());
    drop(up);
    Residue::new(&name).pool(&pool).wayback(&wb).assert_none();

    // Gone: exit 2, naming the next step.
    let out = wb.run(&["exec", &name, "--", "true"]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    assert!(show(&out).contains("wayback ls"), "{}", show(&out));
    let out = wb.run(&["shell", "../etc"]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
}

/// Calls system calls that nspawn's filter refuses in the container (and some it allows) with harmless
/// arguments and prints, per call, EPERM or what else came back.
const PROBE: &str = r#"
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
calls = {"ptrace":101,"syslog":103,"uselib":134,"modify_ldt":154,"acct":163,"iopl":172,"ioperm":173,
  "quotactl":179,"lookup_dcookie":212,"mbind":237,"set_mempolicy":238,"add_key":248,"request_key":249,
  "keyctl":250,"migrate_pages":256,"move_pages":279,"perf_event_open":298,"fanotify_init":300,
  "name_to_handle_at":303,"open_by_handle_at":304,"process_vm_readv":310,"process_vm_writev":311,
  "kcmp":312,"kexec_file_load":320,"bpf":321,"userfaultfd":323,"pkey_alloc":330,"io_uring_setup":425,
  "open_tree":428,"move_mount":429,"fsopen":430,"pidfd_getfd":438,"landlock_create_ruleset":444,
  "memfd_secret":447,"swapoff":168,"unshare":272,"setns":308,"mount_setattr":442,"personality":135,
  "clock_adjtime":305,"settimeofday":164,"adjtimex":159}
for name, nr in sorted(calls.items()):
    r = libc.syscall(nr, -1, 0, 0, 0, 0)
    e = ctypes.get_errno()
    print(name, "EPERM" if r < 0 and e == 1 else ("ok" if r >= 0 else os.strerror(e)))
"#;

#[test]
fn exec_is_refused_the_system_calls_the_container_is_refused() {
    if !require_root("exec_is_refused_the_system_calls_the_container_is_refused") {
        return;
    }
    if !cfg!(target_arch = "x86_64") {
        eprintln!("SKIP: the probe's system call numbers are x86_64's");
        return;
    }
    let pool = BtrfsPool::new();
    let live = pool.subvolume_create("live");
    fs::create_dir_all(live.join("srv/data")).unwrap();
    fs::write(live.join("srv/data/probe.py"), PROBE).unwrap();
    let snap = pool.snapshot_ro("live", "snaps/s1");
    let wb = Wayback::new();
    let name = unique("wbtsys");
    let up = wb.up_background(&[
        snap.to_str().unwrap(),
        "--name",
        &name,
        "--bind",
        "/srv/data",
        "--exec",
        "python3 /srv/data/probe.py > /srv/data/inside.tmp 2>&1; mv /srv/data/inside.tmp /srv/data/inside; exec sleep 100000",
    ]);
    let clone = up.ready["clone"].as_str().unwrap().to_string();
    let inside = wait_for(Duration::from_secs(60), || {
        fs::read_to_string(Path::new(&clone).join("srv/data/inside")).ok()
    })
    .expect("the probe's output from inside the container");
    assert!(inside.contains("keyctl EPERM"), "nspawn's filter: {inside}");
    let out = wb.run(&["exec", &name, "--", "python3", "/srv/data/probe.py"]);
    assert!(out.status.success(), "{}", show(&out));
    assert_eq!(
        text(&out),
        inside,
        "exec'd root and the container's root differ"
    );
    drop(up);
    Residue::new(&name).pool(&pool).wayback(&wb).assert_none();
}
