//! Shared fixtures for wayback's privileged integration tests.
//!
//! Every fixture is a guard: it removes what it made in `Drop`, also when the test panics. Everything a test
//! makes is named `wbt` + a unique suffix (`<pid>x<counter>`), so leftovers are easy to attribute and no two
//! tests (or two test binaries) collide. Nothing here kills a process the test did not start itself, and
//! network traffic only goes to loopback or to network namespaces the test made.
//!
//! - [`require_root`]: skip (or, under CI, fail) when not root.
//! - [`BtrfsPool`]: a loop-backed btrfs filesystem in a temp dir.
//! - [`Residue`]: lists every trace an instance could leave behind (mounts, netns, veth, processes, clone
//!   subvolume, state/route files, nftables rules, cgroups).
//! - [`tree_checksum`] / [`tree_manifest`]: "is the source snapshot byte-identical?".
//! - [`Wayback`] / [`UpHandle`]: run the binary under test with a per-test config.
//! - [`LivePostgres`]: a live PostgreSQL cluster on a pool subvolume, in its own network namespace.
//! - [`HttpGet`]: blocking GET requests through the proxy (wayback_proxy::client).

#![allow(dead_code, unused_imports)]

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use tempfile::TempDir;

mod basics;
mod daemon;
mod http;
pub mod mediawiki;
mod pool;
mod postgres;
mod residue;
mod runner;
mod tree;

pub use basics::*;
pub use daemon::*;
pub use http::*;
pub use pool::*;
pub use postgres::*;
pub use residue::*;
pub use runner::*;
pub use tree::*;
