//! Progress lines on stderr for long steps (`wayback: cloning … done in 12 ms`). Quiet mode prints nothing.

use std::time::Instant;

#[derive(Debug, Clone, Copy, Default)]
pub struct Progress {
    pub quiet: bool,
}

pub struct Step<'a> {
    progress: &'a Progress,
    what: String,
    start: Instant,
}

impl Progress {
    pub fn step(&self, what: impl Into<String>) -> Step<'_> {
        let what = what.into();
        if !self.quiet {
            eprintln!("wayback: {what} …");
        }
        Step {
            progress: self,
            what,
            start: Instant::now(),
        }
    }

    pub fn note(&self, msg: impl AsRef<str>) {
        if !self.quiet {
            eprintln!("wayback: {}", msg.as_ref());
        }
    }
}

impl Step<'_> {
    pub fn done(self) {
        if !self.progress.quiet {
            eprintln!(
                "wayback: {} done ({} ms)",
                self.what,
                self.start.elapsed().as_millis()
            );
        }
    }
}
