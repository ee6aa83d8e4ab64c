//! A hostname belongs to one instance at a time, in every spelling: case, a trailing dot and IDNA
//! (`Bücher.…` is `xn--bcher-kva.…`) are normalised before comparing. A second `up` with a taken hostname
//! exits 2 naming the owner, with nothing created; the first instance keeps its route file, and its share
//! gate still refuses a request without the cookie.

use std::fs;
use std::time::Duration;

use wayback_testsupport::*;

const SERVER: &str = "exec python3 -m http.server 8000 --bind 127.0.0.1 --directory /srv/www";

fn site(pool: &BtrfsPool) -> String {
    let live = pool.subvolume_create("live");
    fs::create_dir_all(live.join("srv/www")).unwrap();
    fs::write(live.join("srv/www/index.html"), "first\n").unwrap();
    pool.snapshot_ro("live", "snaps/s1")
        .to_str()
        .unwrap()
        .to_string()
}

fn up_args<'a>(snap: &'a str, name: &'a str, host: &'a str) -> Vec<&'a str> {
    vec![
        snap, "--name", name, "--bind", "/srv", "--exec", SERVER, "--port", "8000", "--host", host,
    ]
}

/// The route file's `instance` field for `host` (canonical form).
fn route_owner(wb: &Wayback, host: &str) -> String {
    let file = wb.runtime_dir().join(format!("routes/{host}.json"));
    let text = fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v["instance"].as_str().unwrap().to_string()
}

/// Every spelling in `taken` is refused for a new instance: exit 2, the owner named, nothing created.
#[track_caller]
fn refused(
    wb: &Wayback,
    pool: &BtrfsPool,
    snap: &str,
    owner: &str,
    canonical: &str,
    taken: &[&str],
) {
    for spelling in taken {
        let name = unique("wbthn");
        let mut args = vec!["up"];
        args.extend(up_args(snap, &name, spelling));
        let out = wb.run_timeout(&args, Duration::from_secs(60));
        assert_eq!(
            out.status.code(),
            Some(2),
            "--host {spelling} must be refused while {owner} has {canonical}\n{}",
            show(&out)
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(&format!(
                "hostname {canonical} is already used by instance {owner}"
            )) && err.contains(&format!("`wayback down {owner}`")),
            "--host {spelling}: the message does not name the owner\n{}",
            show(&out)
        );
        assert!(
            !wb.state_dir().join("instances").join(&name).exists()
                && !pool.clone_path(&name).exists(),
            "--host {spelling} created something"
        );
        Residue::new(&name).wayback(wb).assert_none();
    }
}

#[test]
fn a_hostname_is_taken_in_every_spelling() {
    if !require_root("a_hostname_is_taken_in_every_spelling") {
        return;
    }
    let pool = BtrfsPool::new();
    let snap = site(&pool);
    let wb = Wayback::new();

    // First instance: G.RT.TEST (as typed: upper case, trailing dot), behind a share link.
    let first = unique("wbthn");
    let mut args = up_args(&snap, &first, "G.RT.TEST.");
    args.push("--share");
    let up1 = wb.up_background(&args);
    assert_eq!(up1.ready["host"], "g.rt.test", "{}", up1.ready);
    assert!(up1.ready["share_url"].is_string(), "{}", up1.ready);

    // Second instance: an IDNA name, given in Unicode.
    let second = unique("wbthn");
    let up2 = wb.up_background(&up_args(&snap, &second, "Bücher.wbt.test"));
    assert_eq!(up2.ready["host"], "xn--bcher-kva.wbt.test", "{}", up2.ready);

    refused(
        &wb,
        &pool,
        &snap,
        &first,
        "g.rt.test",
        &["G.RT.TEST.", "g.rt.test", "g.rt.test.", "G.rt.Test"],
    );
    refused(
        &wb,
        &pool,
        &snap,
        &second,
        "xn--bcher-kva.wbt.test",
        &[
            "xn--bcher-kva.wbt.test",
            "XN--BCHER-KVA.WBT.TEST.",
            "bücher.wbt.test",
            "BÜCHER.wbt.test.",
        ],
    );
    // The default hostname (<name>.<base_domain>) is taken like any other.
    let third = unique("wbthn");
    let up3 = wb.up_background(&[
        &snap, "--name", &third, "--bind", "/srv", "--exec", SERVER, "--port", "8000",
    ]);
    let fourth_host = format!("{}.WBT.TEST.", third.to_uppercase());
    refused(
        &wb,
        &pool,
        &snap,
        &third,
        &format!("{third}.wbt.test"),
        &[&fourth_host],
    );

    // The owners keep their routes; the first one's gate still holds.
    assert_eq!(route_owner(&wb, "g.rt.test"), first);
    assert_eq!(route_owner(&wb, "xn--bcher-kva.wbt.test"), second);
    for host in ["g.rt.test", "G.RT.TEST"] {
        let (code, _) = HttpGet::get_retry(wb.proxy_addr(), host, "/", Duration::from_secs(10))
            .unwrap_or_else(|e| panic!("GET {host}: {e}"));
        assert_eq!(code, 403, "{host} without the share cookie must be refused");
    }
    let (code, body) = HttpGet::get_retry(
        wb.proxy_addr(),
        "xn--bcher-kva.wbt.test",
        "/",
        Duration::from_secs(10),
    )
    .unwrap();
    assert_eq!((code, body.as_str()), (200, "first\n"));

    for (name, up) in [(&first, up1), (&second, up2), (&third, up3)] {
        let mut up = up;
        assert!(
            up.terminate(Duration::from_secs(60))
                .is_some_and(|s| s.success()),
            "{}",
            up.describe()
        );
        Residue::new(name).wayback(&wb).assert_none();
    }
    Residue::new(&first).pool(&pool).wayback(&wb).assert_none();
}
