//! HTTP end to end: a web root on a btrfs subvolume, a read-only snapshot, a file deleted live afterwards;
//! `wayback up --profile nginx-static --host H` serves the deleted file through the built-in proxy by Host
//! header; unknown hosts get a 404 that reveals nothing; `ls`, `status`, `logs` work; `down` leaves no trace
//! and the same name can be brought up again.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::Duration;

use wayback_testsupport::*;

const LOST: &str = "the invoice the user deleted: #2, grace, 99.00\n";

#[test]
fn nginx_snapshot_served_by_host_header_and_leaves_no_trace() {
    if !require_root("nginx_snapshot_served_by_host_header_and_leaves_no_trace") {
        return;
    }
    let pool = BtrfsPool::new();
    let live = pool.subvolume_create("live");
    let html = live.join("var/www/html");
    fs::create_dir_all(&html).unwrap();
    fs::write(html.join("index.html"), "<h1>wayback test site</h1>\n").unwrap();
    fs::write(html.join("lost.txt"), LOST).unwrap();
    let snap = pool.snapshot_ro("live", "snaps/s1");
    let before = tree_manifest(&snap);
    fs::remove_file(html.join("lost.txt")).unwrap();

    let wb = Wayback::new();
    let name = unique("wbtweb");
    let host = format!("{name}.wbt.test");
    let snap_s = snap.to_str().unwrap();
    let proxy = wb.proxy_addr();

    {
        let mut up = wb.up_background(&[
            snap_s,
            "--name",
            &name,
            "--profile",
            "nginx-static",
            "--host",
            &host,
        ]);
        assert_eq!(up.ready["name"], name.as_str(), "ready line: {}", up.ready);
        assert_eq!(up.ready["state"], "running", "ready line: {}", up.ready);
        let url = up
            .url()
            .unwrap_or_else(|| panic!("nginx-static instance has no url: {}", up.ready));
        assert!(url.contains(&host), "url {url} does not name host {host}");
        assert!(
            url.contains(&proxy.port().to_string()),
            "url {url} does not name proxy port {}",
            proxy.port()
        );

        // The container's PID 1 is the `wayback-init` binary next to `wayback` (not the whole binary).
        let init = container_init_exe(&name);
        let want = fs::metadata(Path::new(wayback_bin()).with_file_name("wayback-init")).unwrap();
        assert_eq!(
            (init.dev(), init.ino()),
            (want.dev(), want.ino()),
            "the container's init is not wayback-init"
        );

        // The deleted file, through the proxy, by Host header.
        let (status, body) = HttpGet::get_retry(proxy, &host, "/lost.txt", Duration::from_secs(10))
            .unwrap_or_else(|e| panic!("GET via proxy {proxy}: {e}\n{}", up.describe()));
        assert_eq!(
            (status, body.as_str()),
            (200, LOST),
            "GET /lost.txt with Host {host}"
        );
        let (status, body) = HttpGet::get(proxy, &host, "/").unwrap();
        assert_eq!(status, 200);
        assert!(body.contains("wayback test site"), "{body}");
        // Host matching ignores case and a port suffix, as HTTP says.
        let (status, _) = HttpGet::get(
            proxy,
            &format!("{}:{}", host.to_uppercase(), proxy.port()),
            "/lost.txt",
        )
        .unwrap();
        assert_eq!(status, 200, "Host header with port / upper case");

        // Unknown host: 404 that does not reveal which instances exist.
        let (status, body) = HttpGet::get(proxy, "nosuch.wbt.test", "/lost.txt").unwrap();
        assert_eq!(status, 404, "unknown Host must get 404, body: {body}");
        assert!(
            !body.contains(&name),
            "404 body reveals the instance name: {body}"
        );
        assert!(!body.contains(LOST.trim()), "404 body has the file: {body}");

        // ls --json lists it.
        let ls = wb.run_ok(&["ls", "--json"]);
        let v: serde_json::Value = serde_json::from_str(&ls)
            .unwrap_or_else(|e| panic!("ls --json is not JSON ({e}): {ls}"));
        let arr = v
            .as_array()
            .unwrap_or_else(|| panic!("ls --json is not an array: {ls}"));
        let me = arr
            .iter()
            .find(|i| i["name"] == name.as_str())
            .unwrap_or_else(|| panic!("ls --json does not list {name}: {ls}"));
        assert_eq!(me["state"], "running", "{me}");
        assert!(
            me["url"].as_str().is_some_and(|u| u.contains(&host)),
            "{me}"
        );

        // status --json.
        let st = wb.run_ok(&["status", &name, "--json"]);
        let v: serde_json::Value = serde_json::from_str(&st)
            .unwrap_or_else(|e| panic!("status --json is not JSON ({e}): {st}"));
        assert_eq!(v["name"], name.as_str(), "{v}");
        assert_eq!(v["state"], "running", "{v}");

        // logs.
        let out = wb.run(&["logs", &name]);
        assert!(
            out.status.success(),
            "`wayback logs {name}` failed\n{}",
            show(&out)
        );

        // status of an unknown instance is an error, not a crash.
        let out = wb.run(&["status", "wbtnosuchinstance", "--json"]);
        assert!(
            !out.status.success(),
            "status of a missing instance must fail\n{}",
            show(&out)
        );

        let out = wb.run(&["down", &name]);
        assert!(
            out.status.success(),
            "`wayback down {name}` failed\n{}",
            show(&out)
        );
        let status = up.wait_exit(Duration::from_secs(60));
        assert!(
            status.is_some_and(|s| s.success()),
            "the foreground `up` must exit 0 after `down` (got {status:?})\n{}",
            up.describe()
        );
    }
    Residue::new(&name).pool(&pool).wayback(&wb).assert_none();
    // The route is gone too.
    if let Ok((status, _)) = HttpGet::get(proxy, &host, "/lost.txt") {
        assert_ne!(status, 200, "the route still serves after down");
    }
    let ls = wb.run_ok(&["ls", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&ls).unwrap();
    assert!(
        v.as_array()
            .is_some_and(|a| a.iter().all(|i| i["name"] != name.as_str())),
        "ls still lists {name} after down: {ls}"
    );

    // The same name again, after down.
    {
        let mut up = wb.up_background(&[
            snap_s,
            "--name",
            &name,
            "--profile",
            "nginx-static",
            "--host",
            &host,
        ]);
        let (status, body) = HttpGet::get_retry(proxy, &host, "/lost.txt", Duration::from_secs(10))
            .unwrap_or_else(|e| panic!("GET via proxy after re-up: {e}\n{}", up.describe()));
        assert_eq!((status, body.as_str()), (200, LOST));
        let out = wb.run(&["down", &name]);
        assert!(
            out.status.success(),
            "second `down {name}` failed\n{}",
            show(&out)
        );
        let status = up.wait_exit(Duration::from_secs(60));
        assert!(
            status.is_some_and(|s| s.success()),
            "second up exited {status:?}\n{}",
            up.describe()
        );
    }
    Residue::new(&name).pool(&pool).wayback(&wb).assert_none();
    assert!(is_readonly_subvolume(&snap));
    let diff = manifest_diff(&before, &tree_manifest(&snap));
    assert!(
        diff.is_empty(),
        "the source snapshot changed:\n{}",
        diff.join("\n")
    );
}

/// The file the init of instance `name`'s container runs (`/proc/PID/exe` followed from the host).
fn container_init_exe(name: &str) -> fs::Metadata {
    let machine = format!("wb-{name}");
    for e in fs::read_dir("/proc").unwrap().flatten() {
        let Ok(cmdline) = fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
        if args.first() == Some(&&b"/.wayback-init"[..]) && args.contains(&machine.as_bytes()) {
            return fs::metadata(e.path().join("exe")).unwrap();
        }
    }
    panic!("no init process of {machine}");
}
