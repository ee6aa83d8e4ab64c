//! `wayback show PATH --from SELECTOR`: one version of a path, out of a snapshot: a file's bytes on
//! stdout (a binary file is not sent to a terminal), a symlink's target, a directory's listing. Reads
//! through [`Tree`]: inside the snapshot only, the path's own symlink shown, never followed.

use std::io::{IsTerminal, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use wayback_core::change::{display_path, FileType};
use wayback_core::civil::format_utc;
use wayback_core::Config;

use crate::cmd::subject::Subject;
use wayback_engine::error::BadInput;
use wayback_engine::sys::history as fs;
use wayback_engine::sys::inroot::Tree;

#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  wayback show /persist/etc/nginx/nginx.conf --from @11921\n  wayback show var/lib/app/report.odt --root /persist --from @2w > report-2w.odt"
)]
pub struct ShowArgs {
    /// The path: absolute (in the live subvolume or a snapshot) or relative to the snapshot root
    pub path: String,
    /// The snapshot: a selector among PATH's snapshots (e.g. @11921, @2026-11-14, @2w) or a path
    #[arg(long, value_name = "SELECTOR")]
    pub from: String,
    /// Where the snapshots are (repeat for several)
    #[arg(long, value_name = "ROOT")]
    pub root: Vec<PathBuf>,
}

/// Whether bytes look binary: a NUL in the first 8 KiB, or not UTF-8 (a character cut off at the end,
/// where a head of a file stops, does not count).
pub fn is_binary(b: &[u8]) -> bool {
    b[..b.len().min(8192)].contains(&0)
        || std::str::from_utf8(b).is_err_and(|e| e.error_len().is_some())
}

pub async fn run(cfg: &Config, args: ShowArgs) -> Result<ExitCode> {
    let tty = std::io::stdout().is_terminal();
    write(cfg, &args, &mut std::io::stdout().lock(), tty)?;
    Ok(ExitCode::SUCCESS)
}

/// The version's bytes (the console's download).
pub fn bytes(cfg: &Config, path: &str, from: &str) -> Result<Vec<u8>> {
    let args = ShowArgs {
        path: path.to_string(),
        from: from.to_string(),
        root: Vec::new(),
    };
    let mut out = Vec::new();
    write(cfg, &args, &mut out, false)?;
    Ok(out)
}

/// Write the version to `out` (a binary file is refused when `out` is a terminal).
fn write(cfg: &Config, args: &ShowArgs, out: &mut dyn Write, tty: bool) -> Result<()> {
    let s = Subject::resolve(cfg, &args.path, &args.root, None, Some(&args.from))?;
    let snap = s.select(&args.from)?;
    let tree = Tree::open(&snap.path)?;
    let missing = || {
        BadInput::new(format!(
            "{} is not in snapshot #{} ({}); `wayback versions {}` shows where it is",
            display_path(&s.rel),
            snap.id,
            format_utc(snap.date),
            s.text
        ))
    };
    let e = fs::observe(&tree, &s.rel)?.ok_or_else(missing)?;
    eprintln!(
        "{} in #{} ({}, {})",
        display_path(&s.rel),
        snap.id,
        format_utc(snap.date),
        snap.path.display()
    );
    match e.kind {
        FileType::File => {
            let mut f = fs::open_file(&tree, &s.rel)?;
            let mut head = Vec::new();
            (&mut f).take(8192).read_to_end(&mut head)?;
            if tty && is_binary(&head) {
                return Err(BadInput::new(format!(
                    "{} is a binary file ({} bytes): not written to a terminal; redirect stdout (> FILE) or use `wayback restore`",
                    display_path(&s.rel),
                    e.size
                ))
                .into());
            }
            out.write_all(&head)?;
            std::io::copy(&mut f, out)?;
        }
        FileType::Symlink => writeln!(
            out,
            "symlink -> {}",
            e.target.as_deref().unwrap_or("?".as_ref()).display()
        )?,
        FileType::Dir => {
            for (name, c) in fs::list(&tree, &s.rel)? {
                let tail = match c.kind {
                    FileType::Dir => "/".to_string(),
                    FileType::Symlink => format!(
                        " -> {}",
                        c.target.as_deref().unwrap_or("?".as_ref()).display()
                    ),
                    _ => String::new(),
                };
                writeln!(
                    out,
                    "{:>12}  {}  {}{tail}",
                    c.size,
                    format_utc(c.mtime),
                    display_path(name.as_ref())
                )?;
            }
        }
        FileType::Other => writeln!(out, "special file (device, FIFO or socket)")?,
    }
    Ok(())
}
