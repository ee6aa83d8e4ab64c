//! The file-descriptor budget ([`FdBudget`]): how many client connections fit in this process's open-file
//! limit, after a reserve for the process itself and for `--publish` connections.

use std::io;

/// Open files kept back for everything but client connections and their backend connections: listeners,
/// journals, logs, netns and pidfds, nftables, TLS and ACME files, the runtime.
const RESERVED_BASE: u64 = 256;
/// The smallest connection cap worth starting with.
pub const MIN_CONNECTIONS: usize = 16;

/// How a process's open-file limit is shared out: a reserve for the process itself (256 files plus a
/// sixteenth of the limit, which covers a daemon's many instances), a sixteenth for `--publish`
/// connections, and the rest for proxied connections, each of which may need two files (the client's and
/// the backend's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FdBudget {
    /// The soft `RLIMIT_NOFILE` the budget is made from.
    pub open_files: u64,
    /// Files kept for the process itself and for publishes.
    pub reserved: u64,
    /// How many publish connections fit (all publishes of the process together).
    pub publish_connections: usize,
    /// How many proxied client connections fit.
    pub max_connections: usize,
}

/// The open-file limit is too small for the proxy.
#[derive(Debug, thiserror::Error)]
#[error(
    "the open-file limit ({open_files}) is too small for the proxy: it leaves room for {fits} connections, \
     at least {MIN_CONNECTIONS} are needed; raise the limit to at least {needed} (ulimit -n, LimitNOFILE= in \
     the service unit)"
)]
pub struct FdBudgetError {
    pub open_files: u64,
    pub fits: usize,
    pub needed: u64,
}

impl FdBudget {
    /// The budget for a process that may open `open_files` files.
    pub fn new(open_files: u64) -> FdBudget {
        // Beyond a million files the shares stop mattering; keep the arithmetic small.
        let n = open_files.min(1 << 20);
        let publish = n / 16;
        let reserved = (RESERVED_BASE + n / 16 + publish).min(n);
        FdBudget {
            open_files,
            reserved,
            publish_connections: usize::try_from(publish / 2).unwrap_or(usize::MAX),
            max_connections: usize::try_from((n - reserved) / 2).unwrap_or(usize::MAX),
        }
    }

    /// The budget of this process, from its soft `RLIMIT_NOFILE`.
    pub fn current() -> io::Result<FdBudget> {
        Ok(FdBudget::new(open_files_limit()?))
    }

    /// The connection cap to use when `wanted` is asked for: `wanted` if it fits, else the most that fits.
    /// Fails when not even [`MIN_CONNECTIONS`] fit.
    pub fn fit(&self, wanted: usize) -> Result<usize, FdBudgetError> {
        if self.max_connections < MIN_CONNECTIONS.min(wanted) {
            return Err(FdBudgetError {
                open_files: self.open_files,
                fits: self.max_connections,
                needed: FdBudget::files_needed(MIN_CONNECTIONS),
            });
        }
        Ok(wanted.min(self.max_connections))
    }

    /// An open-file limit (about the smallest) whose budget fits `connections`.
    pub fn files_needed(connections: usize) -> u64 {
        // max_connections = (n - 256 - 2 * (n/16)) / 2, so n ≈ (2c + 256) * 8/7; step up past rounding.
        let c = u64::try_from(connections).unwrap_or(u64::MAX / 4);
        let mut n = (2 * c + RESERVED_BASE).saturating_mul(8) / 7;
        while FdBudget::new(n).max_connections < connections && n < (1 << 20) {
            n += 1;
        }
        n
    }
}

/// The soft limit on open files of this process (`RLIMIT_NOFILE`).
pub fn open_files_limit() -> io::Result<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one `rlimit` into the valid, exclusively borrowed struct it is given.
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(lim.rlim_cur)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::DEFAULT_MAX_CONNECTIONS;

    #[test]
    fn budget_shares() {
        let b = FdBudget::new(20_000);
        assert_eq!(b.reserved, 256 + 1250 + 1250);
        assert_eq!(b.publish_connections, 625);
        assert_eq!(b.max_connections, (20_000 - 2756) / 2);
        assert!(b.max_connections >= DEFAULT_MAX_CONNECTIONS, "{b:?}");
        assert_eq!(
            b.fit(DEFAULT_MAX_CONNECTIONS).unwrap(),
            DEFAULT_MAX_CONNECTIONS
        );
        assert_eq!(b.fit(19_000).unwrap(), b.max_connections);
        assert_eq!(b.fit(5).unwrap(), 5);

        // The table in docs/proxy-gate-tls.md.
        for (files, proxied, publish) in
            [(1024, 320, 32), (20_000, 8622, 625), (65_536, 28_544, 2048)]
        {
            let b = FdBudget::new(files);
            assert_eq!(
                (b.max_connections, b.publish_connections),
                (proxied, publish)
            );
        }
        assert_eq!(FdBudget::files_needed(MIN_CONNECTIONS), 329);

        let small = FdBudget::new(1024);
        assert_eq!(small.fit(8192).unwrap(), small.max_connections);
        let err = FdBudget::new(200).fit(8192).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("(200)") && msg.contains("ulimit -n"), "{msg}");
        assert!(FdBudget::new(err.needed).fit(8192).is_ok());
    }

    #[test]
    fn files_needed_fits_and_is_about_minimal() {
        for c in [1, 16, 100, 8192, 19_000] {
            let n = FdBudget::files_needed(c);
            assert!(FdBudget::new(n).max_connections >= c, "{c}: {n}");
            assert!(FdBudget::new(n - 20).max_connections < c, "{c}: {n}");
        }
    }

    #[test]
    fn reads_the_open_files_limit() {
        assert!(open_files_limit().unwrap() > 0);
    }
}
