//! The instance journal: an append-only JSON-lines file listing every resource *before* it is created.
//!
//! Teardown (`down`, TTL expiry, a failed `up`, `gc` after a crash) replays it backwards; each undo step
//! treats "already gone" as success, so replaying twice, or after a crash at any point, is safe. Each line is
//! fsync'ed before the resource is created. Touches only the journal file.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// How an instance's quarantine chain is reached from the base chains.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NftLayout {
    /// Releases before 0.3: `table inet wayback`, one `iifname … jump` rule per instance in base chains
    /// `input` and `forward`.
    #[default]
    JumpRules,
    /// `table inet wayback-quarantine`: one element per instance in the verdict map `instances`.
    VerdictMap,
}

/// A resource wayback creates. Each carries what its undo step needs to find it again, and to refuse to
/// remove something that is not the thing wayback made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Resource {
    /// The directory that holds clones; removed only when empty and marked as made by wayback.
    Dir { path: PathBuf },
    /// A writable btrfs snapshot at `path` of the subvolume with UUID `source_uuid`. Undo deletes the
    /// subvolume at `path` only if its parent UUID is `source_uuid`.
    Clone {
        path: PathBuf,
        source: PathBuf,
        source_uuid: String,
    },
    /// An overlayfs clone of a non-btrfs source, mounted at `merged` (its layers live in the instance dir).
    Overlay { merged: PathBuf },
    /// A named network namespace (bind-mounted nsfs file).
    Netns { path: PathBuf },
    /// The instance's nftables quarantine: its chain, and how the host's traffic is led to it.
    Quarantine {
        instance: String,
        host_if: String,
        /// Journals of releases before 0.3 have no `layout`: theirs is [`NftLayout::JumpRules`].
        #[serde(default)]
        layout: NftLayout,
    },
    /// The host side of a veth pair.
    Veth { host_if: String },
    /// The systemd-nspawn process, found by its `--machine=` argument (recorded before it starts).
    Container { machine: String },
    /// A process wayback started, noted right after it started: PID plus start time (so a reused PID is
    /// never signalled). Undo stops it.
    Process {
        pid: i32,
        start_time: u64,
        what: String,
    },
    /// Cgroup directories made for a booted container's launcher; removed when empty.
    Cgroup { paths: Vec<PathBuf> },
    /// A hostname published on the host's nginx or Caddy; `handle` is the driver's own record of it.
    HostProxy {
        host: String,
        handle: crate::drivers::DriverHandle,
    },
    /// A route file read by the proxy.
    Route { file: PathBuf, host: String },
}

impl Resource {
    /// The kind of resource, one word or two (`clone`, `host proxy`).
    pub fn kind(&self) -> &'static str {
        match self {
            Resource::Dir { .. } => "dir",
            Resource::Clone { .. } => "clone",
            Resource::Overlay { .. } => "overlay",
            Resource::Netns { .. } => "netns",
            Resource::Quarantine { .. } => "quarantine",
            Resource::Veth { .. } => "veth",
            Resource::Container { .. } => "container",
            Resource::Process { .. } => "process",
            Resource::Cgroup { .. } => "cgroup",
            Resource::HostProxy { .. } => "host proxy",
            Resource::Route { .. } => "route",
        }
    }

    /// A short human description (`clone /mnt/.wayback/pg`).
    pub fn describe(&self) -> String {
        match self {
            Resource::Dir { path } => format!("directory {}", path.display()),
            Resource::Clone { path, .. } => format!("clone {}", path.display()),
            Resource::Overlay { merged } => format!("overlay {}", merged.display()),
            Resource::Netns { path } => format!("netns {}", path.display()),
            Resource::Quarantine { instance, .. } => format!("nftables quarantine of {instance}"),
            Resource::Veth { host_if } => format!("veth {host_if}"),
            Resource::Container { machine } => format!("container {machine}"),
            Resource::Process { pid, what, .. } => format!("{what} process {pid}"),
            Resource::Route { host, .. } => format!("route {host}"),
            Resource::HostProxy { host, handle } => format!("{} route {host}", handle.driver()),
            Resource::Cgroup { paths } => format!(
                "cgroup {}",
                paths
                    .first()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default()
            ),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub seq: u32,
    pub resource: Resource,
}

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("cannot write journal {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read journal {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("journal {path} is in format {found}, written by a newer wayback; this one reads formats 0 to {current}: upgrade wayback (nothing was changed)", current = crate::format::CURRENT)]
    Newer { path: PathBuf, found: u32 },
}

/// An open journal, appended to as `up` proceeds.
pub struct Journal {
    path: PathBuf,
    file: File,
    next: u32,
}

impl Journal {
    /// Create a new journal (fails if one exists) or reopen an existing one for appending.
    pub fn open(path: &Path) -> Result<Journal, JournalError> {
        let entries = if path.exists() {
            read(path)?
        } else {
            Vec::new()
        };
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|source| JournalError::Write {
                path: path.to_path_buf(),
                source,
            })?;
        let mut journal = Journal {
            path: path.to_path_buf(),
            file,
            next: entries.last().map_or(0, |e| e.seq + 1),
        };
        // A new journal starts with its format (`crate::format`); entries are unchanged since format 0,
        // so appending to an older journal keeps it readable by the release that wrote it.
        if std::fs::metadata(path).map_or(0, |m| m.len()) == 0 {
            let header = crate::format::journal_header_line() + "\n";
            journal
                .file
                .write_all(header.as_bytes())
                .map_err(|source| JournalError::Write {
                    path: path.to_path_buf(),
                    source,
                })?;
        }
        // After a crash mid-write the file may end in half a line: start the next entry on a fresh line.
        let len = std::fs::metadata(path).map_or(0, |m| m.len());
        if len > 0 && std::fs::read(path).ok().and_then(|b| b.last().copied()) != Some(b'\n') {
            journal
                .file
                .write_all(b"\n")
                .map_err(|source| JournalError::Write {
                    path: path.to_path_buf(),
                    source,
                })?;
        }
        Ok(journal)
    }

    /// Record `resource` durably. Call before creating it.
    pub fn record(&mut self, resource: &Resource) -> Result<(), JournalError> {
        let entry = Entry {
            seq: self.next,
            resource: resource.clone(),
        };
        let mut line = serde_json::to_string(&entry).expect("journal entries serialize");
        line.push('\n');
        let err = |source| JournalError::Write {
            path: self.path.clone(),
            source,
        };
        self.file.write_all(line.as_bytes()).map_err(err)?;
        self.file.sync_data().map_err(err)?;
        self.next += 1;
        Ok(())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Read all complete entries. A torn last line (crash mid-write) is ignored: its resource was never created.
pub fn read(path: &Path) -> Result<Vec<Entry>, JournalError> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(JournalError::Read {
                path: path.to_path_buf(),
                source,
            })
        }
    };
    let mut out = Vec::new();
    for (i, line) in BufReader::new(file).lines().enumerate() {
        let line = line.map_err(|source| JournalError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        if i == 0 {
            match crate::format::journal_header(&line) {
                Some(found) if found > crate::format::CURRENT => {
                    return Err(JournalError::Newer {
                        path: path.to_path_buf(),
                        found,
                    })
                }
                Some(_) => continue,
                None => {} // format 0: no header, the first line is an entry
            }
        }
        if let Ok(e) = serde_json::from_str::<Entry>(&line) {
            out.push(e);
        }
    }
    Ok(out)
}

/// The resources to undo, in undo order (newest first).
pub fn undo_order(entries: &[Entry]) -> Vec<Resource> {
    entries.iter().rev().map(|e| e.resource.clone()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_quarantine_journalled_before_0_3_has_the_jump_rule_layout() {
        let old = r#"{"kind":"quarantine","instance":"a","host_if":"wb-a"}"#;
        let r: Resource = serde_json::from_str(old).unwrap();
        let layout = NftLayout::JumpRules;
        let want = Resource::Quarantine {
            instance: "a".into(),
            host_if: "wb-a".into(),
            layout,
        };
        assert_eq!(r, want);
        let new = Resource::Quarantine {
            instance: "a".into(),
            host_if: "wb-a".into(),
            layout: NftLayout::VerdictMap,
        };
        let line = serde_json::to_string(&new).unwrap();
        assert!(line.contains(r#""layout":"verdict_map""#), "{line}");
        assert_eq!(serde_json::from_str::<Resource>(&line).unwrap(), new);
    }

    #[test]
    fn formats_old_current_and_newer() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("journal.jsonl");
        let mut j = Journal::open(&p).unwrap();
        j.record(&Resource::Netns {
            path: "/run/netns/wb-a".into(),
        })
        .unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        assert!(
            text.starts_with(&crate::format::journal_header_line()),
            "{text}"
        );
        assert_eq!(read(&p).unwrap().len(), 1);
        // Format 0: no header.
        let old = dir.path().join("old.jsonl");
        std::fs::write(
            &old,
            "{\"seq\":0,\"resource\":{\"kind\":\"netns\",\"path\":\"/run/netns/wb-b\"}}\n",
        )
        .unwrap();
        assert_eq!(read(&old).unwrap().len(), 1);
        let mut j = Journal::open(&old).unwrap();
        j.record(&Resource::Veth {
            host_if: "wb-b".into(),
        })
        .unwrap();
        assert!(
            !std::fs::read_to_string(&old).unwrap().contains("format"),
            "an old journal stays headerless"
        );
        assert_eq!(read(&old).unwrap().len(), 2);
        // A newer one is refused, and left as it is.
        let newer = dir.path().join("newer.jsonl");
        std::fs::write(&newer, "{\"format\":99}\n").unwrap();
        let e = read(&newer).unwrap_err().to_string();
        assert!(e.contains("format 99") && e.contains("newer.jsonl"), "{e}");
        assert!(Journal::open(&newer).is_err());
        assert_eq!(
            std::fs::read_to_string(&newer).unwrap(),
            "{\"format\":99}\n"
        );
    }

    #[test]
    fn append_reopen_and_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("journal.jsonl");
        let mut j = Journal::open(&p).unwrap();
        j.record(&Resource::Netns {
            path: "/run/netns/wb-a".into(),
        })
        .unwrap();
        j.record(&Resource::Veth {
            host_if: "wb-a".into(),
        })
        .unwrap();
        drop(j);
        // A crash mid-write leaves half a line.
        let mut f = OpenOptions::new().append(true).open(&p).unwrap();
        f.write_all(b"{\"seq\":2,\"resource\":{\"kind\":\"rou")
            .unwrap();
        let entries = read(&p).unwrap();
        assert_eq!(entries.len(), 2);
        let undo = undo_order(&entries);
        assert_eq!(
            undo[0],
            Resource::Veth {
                host_if: "wb-a".into()
            }
        );
        let mut j = Journal::open(&p).unwrap();
        j.record(&Resource::Container {
            machine: "wb-a".into(),
        })
        .unwrap();
        // The torn line stays unparseable; the new entry starts on a fresh line.
        let entries = read(&p).unwrap();
        assert_eq!(
            entries.last().unwrap().resource,
            Resource::Container {
                machine: "wb-a".into()
            }
        );
    }

    #[test]
    fn missing_journal_is_empty() {
        assert!(read(Path::new("/nonexistent/journal")).unwrap().is_empty());
    }
}
