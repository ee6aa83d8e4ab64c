//! Progress lines for long steps (`wayback: cloning … done in 12 ms`): on stderr, or, in the daemon, sent
//! to the client that asked. Quiet mode prints nothing.

use std::time::Instant;

use tokio::sync::mpsc::UnboundedSender;

#[derive(Debug, Clone, Default)]
pub struct Progress {
    pub quiet: bool,
    /// Where lines go instead of stderr (the daemon forwards them to the client).
    pub sink: Option<UnboundedSender<String>>,
}

pub struct Step<'a> {
    progress: &'a Progress,
    what: String,
    start: Instant,
}

impl Progress {
    pub fn step(&self, what: impl Into<String>) -> Step<'_> {
        let what = what.into();
        self.note(format!("{what} …"));
        Step {
            progress: self,
            what,
            start: Instant::now(),
        }
    }

    /// A warning: shown even in quiet mode.
    pub fn warn(&self, msg: impl AsRef<str>) {
        let line = format!("wayback: warning: {}", msg.as_ref());
        match &self.sink {
            Some(tx) => {
                let _ = tx.send(line);
            }
            None => eprintln!("{line}"),
        }
    }

    pub fn note(&self, msg: impl AsRef<str>) {
        if self.quiet {
            return;
        }
        let line = format!("wayback: {}", msg.as_ref());
        match &self.sink {
            Some(tx) => {
                let _ = tx.send(line);
            }
            None => eprintln!("{line}"),
        }
    }
}

impl Step<'_> {
    pub fn done(self) {
        self.progress.note(format!(
            "{} done ({} ms)",
            self.what,
            self.start.elapsed().as_millis()
        ));
    }
}
