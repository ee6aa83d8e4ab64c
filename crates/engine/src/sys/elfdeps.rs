//! The host's dynamic loader and the shared libraries a binary needs, found as the loader finds them, so
//! wayback's own init (a host binary) can run inside a container whose /usr is a snapshot's: an older
//! userland may lack the C library version it needs, a NixOS one has no /lib64 loader at all.
//!
//! Reads the ELF file (`object`): the interpreter (`PT_INTERP`), `DT_NEEDED`, `DT_RUNPATH`/`DT_RPATH`
//! (`$ORIGIN` expanded), recursively for every library found. Libraries are looked up in the run paths,
//! next to the loader, in the directories of the libraries this process has mapped (`/proc/self/maps`: on
//! NixOS, the store paths wayback itself runs from), then in the usual system directories.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use object::elf;
use object::read::elf::{ElfFile64, ProgramHeader};
use object::Endianness;
use wayback_core::nspawn::HostLib;

/// System library directories, after the binary's own run paths.
const SYSTEM_DIRS: &[&str] = &[
    "/lib/x86_64-linux-gnu",
    "/usr/lib/x86_64-linux-gnu",
    "/lib/aarch64-linux-gnu",
    "/usr/lib/aarch64-linux-gnu",
    "/lib64",
    "/usr/lib64",
    "/lib",
    "/usr/lib",
];
/// Libraries followed at most (a C library chain is 3 to 5).
const MAX_LIBS: usize = 64;

#[derive(Debug, thiserror::Error)]
pub enum ElfError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a 64-bit ELF file wayback can read: {why}")]
    Parse { path: PathBuf, why: String },
    #[error("{needed}, which {by} needs, is in none of {dirs} on this host")]
    Missing {
        needed: String,
        by: PathBuf,
        dirs: String,
    },
}

/// What one ELF file asks of the loader.
struct Dynamic {
    interp: Option<PathBuf>,
    needed: Vec<String>,
    runpath: Vec<PathBuf>,
}

fn read(path: &Path) -> Result<Dynamic, ElfError> {
    let data = std::fs::read(path).map_err(|source| ElfError::Read {
        path: path.into(),
        source,
    })?;
    let parse = |why: object::read::Error| ElfError::Parse {
        path: path.into(),
        why: why.to_string(),
    };
    let file = ElfFile64::<Endianness>::parse(data.as_slice()).map_err(parse)?;
    let endian = file.endian();
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    let interp = file
        .elf_program_headers()
        .iter()
        .find_map(|ph| ph.interpreter(endian, file.data()).ok().flatten())
        .map(|b| PathBuf::from(text(b)));
    let table = file
        .elf_section_table()
        .dynamic_table(endian, file.data())
        .map_err(parse)?;
    let origin = path.parent().unwrap_or(Path::new("/"));
    let (mut needed, mut runpath) = (Vec::new(), Vec::new());
    for d in &table {
        let Ok(value) = table.string(d).map(text) else {
            continue;
        };
        match d.tag {
            elf::DT_NEEDED => needed.push(value),
            elf::DT_RUNPATH | elf::DT_RPATH => runpath.extend(
                value
                    .split(':')
                    .filter(|p| !p.is_empty())
                    .map(|p| PathBuf::from(p.replace("$ORIGIN", &origin.to_string_lossy()))),
            ),
            _ => {}
        }
    }
    Ok(Dynamic {
        interp,
        needed,
        runpath,
    })
}

/// Directories of the shared objects this process has mapped.
fn mapped_dirs() -> Vec<PathBuf> {
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap_or_default();
    let mut dirs: Vec<PathBuf> = Vec::new();
    for l in maps.lines() {
        let Some(path) = l.split_whitespace().nth(5).filter(|p| p.contains(".so")) else {
            continue;
        };
        if let Some(d) = Path::new(path).parent() {
            if !dirs.iter().any(|x| x == d) {
                dirs.push(d.to_path_buf());
            }
        }
    }
    dirs
}

/// The loader (first, named as the binary's `PT_INTERP` names it) and every library `exe` needs, as host
/// paths (symlinks resolved) with the names the loader looks them up by. Empty for a static binary.
pub fn host_libs(exe: &Path) -> Result<Vec<HostLib>, ElfError> {
    let top = read(exe)?;
    let Some(interp) = top.interp.clone() else {
        return Ok(Vec::new());
    };
    let real = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    let loader = real(&interp);
    let file_name = |p: &Path| p.file_name().map(|n| n.to_string_lossy().into_owned());
    let mut out = vec![HostLib {
        name: file_name(&interp).unwrap_or_else(|| "ld.so".into()),
        path: loader.clone(),
    }];
    let mut base: Vec<PathBuf> = loader.parent().map(Path::to_path_buf).into_iter().collect();
    base.extend(mapped_dirs());
    base.extend(SYSTEM_DIRS.iter().map(PathBuf::from));
    let mut seen: BTreeSet<String> = out.iter().map(|l| l.name.clone()).collect();
    let mut todo: Vec<(String, PathBuf, Vec<PathBuf>)> = top
        .needed
        .iter()
        .map(|n| (n.clone(), exe.to_path_buf(), top.runpath.clone()))
        .collect();
    while let Some((name, by, runpath)) = todo.pop() {
        if !seen.insert(name.clone()) || out.len() >= MAX_LIBS {
            continue;
        }
        let dirs: Vec<&PathBuf> = runpath.iter().chain(&base).collect();
        let found = dirs
            .iter()
            .map(|d| d.join(&name))
            .find(|p| p.is_file())
            .ok_or_else(|| ElfError::Missing {
                needed: name.clone(),
                by: by.clone(),
                dirs: dirs
                    .iter()
                    .map(|d| d.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
            })?;
        let lib = read(&found)?;
        todo.extend(
            lib.needed
                .iter()
                .map(|n| (n.clone(), found.clone(), lib.runpath.clone())),
        );
        out.push(HostLib {
            name,
            path: real(&found),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_running_binary_needs_its_loader_and_libc() {
        let exe = std::env::current_exe().unwrap();
        let libs = host_libs(&exe).unwrap();
        let Some((loader, rest)) = libs.split_first() else {
            return; // a static build: nothing to bind
        };
        assert!(loader.name.starts_with("ld-"), "{libs:?}");
        assert!(loader.path.is_file() && loader.path.is_absolute());
        assert!(rest.iter().any(|l| l.name == "libc.so.6"), "{libs:?}");
        assert!(rest.iter().all(|l| !l.name.contains('/')));
    }
}
