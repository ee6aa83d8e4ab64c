//! Tier-0 tests of the dump parser on text captured from btrfs-progs 6.2 (`testdata/send-dump-*.txt`).

use super::*;

const DUMP1: &[u8] = include_bytes!("../testdata/send-dump-1.txt");
const DUMP2: &[u8] = include_bytes!("../testdata/send-dump-2.txt");

fn show(set: &BTreeSet<PathBuf>) -> String {
    set.iter()
        .map(|p| format!("{:?}", p.to_string_lossy()))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn unescapes_like_btrfs_progs() {
    let (p, rest) = take_path(b"./B/with\\ space\\\\x\\n\\351 dest=y");
    assert_eq!(p, b"./B/with space\\x\n\xe9");
    assert_eq!(rest, b" dest=y");
    // A lone backslash before something unknown is kept.
    assert_eq!(take_path(b"a\\qb").0, b"a\\qb");
}

#[test]
fn parses_header_and_ops() {
    let d = parse_dump(DUMP1).unwrap();
    assert_eq!(d.subvol, Path::new("./2"));
    assert_eq!(
        d.ops[1],
        Op {
            kind: OpKind::Rename {
                to: "o259-7-0".into()
            },
            path: "gone".into()
        }
    );
    assert_eq!(
        d.ops[8],
        Op {
            kind: OpKind::Link {
                target: "mod".into()
            },
            path: "hardlink".into()
        }
    );
    assert!(d.ops.iter().any(|o| o.path == Path::new("with\nnl")));
    assert!(d
        .ops
        .iter()
        .any(|o| o.path == Path::new("") && o.kind == OpKind::Times));
    let d = parse_dump(DUMP2).unwrap();
    assert!(d
        .ops
        .iter()
        .any(|o| o.path.as_os_str().as_bytes() == b"caf\xe9"));
    assert!(d.ops.iter().any(|o| o.path == Path::new("back\\slash")));
    assert!(d.ops.contains(&Op {
        kind: OpKind::Xattr { acl: false },
        path: "keep/k".into()
    }));
}

#[test]
fn rejects_garbage() {
    assert!(matches!(parse_dump(b""), Err(DumpError::NoHeader(_))));
    assert!(matches!(
        parse_dump(b"mkfile ./x\n"),
        Err(DumpError::NoHeader(_))
    ));
    let e = parse_dump(b"subvol ./x uuid=1\nfrobnicate ./x/y\n").unwrap_err();
    assert!(e.to_string().contains("line 2"), "{e}");
    assert!(parse_dump(b"subvol ./x uuid=1\nrename ./x/y\n").is_err());
}

#[test]
fn candidates_map_orphans_and_renames() {
    let c = candidates(&parse_dump(DUMP1).unwrap());
    insta::assert_snapshot!(show(&c.paths), @r#"
    "a"
    "a/b"
    "a/b/f2"
    "a/b/moved2"
    "a/f1"
    "a/moved"
    "a/new"
    "gone"
    "gone/g"
    "hardlink"
    "mod"
    "newdir"
    "newdir/z"
    "o259-7-0"
    "o259-7-0/g"
    "o268-8-0"
    "o269-8-0"
    "o269-8-0/z"
    "o270-8-0"
    "o271-8-0"
    "o272-8-0"
    "touch"
    "with\nnl"
    "with space"
    "#);
    insta::assert_snapshot!(show(&c.content), @r#"
    "a/b/f2"
    "a/new"
    "mod"
    "newdir/z"
    "with\nnl"
    "with space"
    "#);
}

#[test]
fn candidates_follow_directory_renames() {
    let c = candidates(&parse_dump(DUMP2).unwrap());
    // proj was renamed to project before main.c was written: the write maps back to proj/src/main.c in
    // A and stays project/src/main.c in B.
    for p in [
        "proj",
        "project",
        "proj/src/main.c",
        "project/src/main.c",
        "t2d",
        "t2d/x",
        "sl",
        "f2d",
    ] {
        assert!(
            c.paths.contains(Path::new(p)),
            "{p} missing:\n{}",
            show(&c.paths)
        );
    }
    assert!(c.content.contains(Path::new("project/src/main.c")));
    assert!(c.content.contains(Path::new("trunc")));
    assert_eq!(show(&c.xattr), "\"keep/k\"");
    assert!(c.acl.is_empty());
}

#[test]
fn chained_renames_resolve_both_ways() {
    let text = b"snapshot ./S uuid=x\n\
        rename ./S/a dest=./S/o1\n\
        rename ./S/o1 dest=./S/b\n\
        update_extent ./S/b/f offset=0 len=1\n\
        rename ./S/b dest=./S/c\n";
    let c = candidates(&parse_dump(text).unwrap());
    assert!(c.paths.contains(Path::new("a/f")), "{}", show(&c.paths));
    assert!(c.content.contains(Path::new("c/f")), "{}", show(&c.content));
}
