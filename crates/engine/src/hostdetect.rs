//! Pinned hostnames: after the app answers and before its route is published, fetch its front page from
//! inside the instance and look where it sends the browser. An app that knows its own address (a DokuWiki
//! `baseurl`, MediaWiki's `$wgServer`, WordPress's `siteurl`) redirects and links to the live site, so a
//! user of the instance lands there — old data shown as "ready" turns into today's, silently.
//!
//! What happens depends on `--original-host` (the plan's [`HostCheck`]):
//! - none: the front page redirecting (or `<base>` pointing) to another host stops the start (exit 2, rolled
//!   back) with the `--original-host` value to use; links, forms and cookies naming one give a warning;
//! - `HOST`: the app is asked as the proxy will ask it (with the masquerade); a warning if it still points
//!   to yet another host;
//! - `auto`: the origin found becomes the masquerade (none found: no masquerade, said so);
//! - `--no-host-check`: nothing is fetched.
//!
//! What was found is kept in the instance's `hostcheck.json` for `status`.
//!
//! - `origin.rs`: [`Origin`], parsed from URLs and authorities. Pure.
//! - `clues.rs`: where a response names origins (headers, HTML via html5gum). Pure.
//! - `verdict.rs`: which origin is the app's own (ranking, known third parties). Pure.
//! - `fetch.rs`: the front page and its in-instance redirects, through the instance's netns with hyper.
//! - `vhosts.rs`: name-based virtual hosts (nginx `server_name`), for apps the instance's hostname does
//!   not reach at all.
//! - `tests_clues.rs`, `tests_verdict.rs`: tier-0 tests of the pure parts.

mod clues;
mod fetch;
mod origin;
mod verdict;
mod vhosts;

#[cfg(test)]
mod tests_clues;
#[cfg(test)]
mod tests_verdict;

use anyhow::{anyhow, Result};
use serde::{Deserialize, Serialize};
use wayback_core::plan::{HostCheck, MasqueradeSpec};
use wayback_core::Plan;
use wayback_masquerade::{Masquerade, Scheme};
use wayback_net::NetnsDialer;

pub use clues::{Clue, Origin};
pub use verdict::{Candidate, Confidence};

use crate::error::BadInput;
use crate::progress::Progress;
use crate::state::{self, InstanceDir};
use fetch::{Asker, Fetched};
use verdict::OwnHost;

/// The whole check, all requests and redirects included.
pub const CHECK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// What the check found, kept in the instance directory (`hostcheck.json`) and shown by `status`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostCheckRecord {
    /// The origin the app treats as its own, when one was found (`https://wiki.example.org`).
    pub detected: Option<String>,
    /// Why: its strongest clue (`redirects to https://wiki.example.org (Location of GET /)`).
    pub evidence: Option<String>,
    /// What wayback did: `used as the masquerade`, `warned`, `assets only`, `none found`, `not checked: …`.
    pub outcome: String,
}

impl wayback_core::format::Persisted for HostCheckRecord {
    const KIND: &'static str = "host check record";
}

impl HostCheckRecord {
    pub fn path(dir: &InstanceDir) -> std::path::PathBuf {
        dir.path.join("hostcheck.json")
    }

    pub fn load(dir: &InstanceDir) -> Option<HostCheckRecord> {
        state::read_json(&Self::path(dir)).ok()
    }
}

/// Run the plan's host check on a ready instance. With `auto`, sets `plan.masquerade` (and saves the plan).
/// An `Err` stops the start: a refusal (bad input: the user adds a flag) or `auto` without an answer.
pub async fn check(dir: &InstanceDir, plan: &mut Plan, progress: &Progress) -> Result<()> {
    let Some(http) = &plan.http else {
        return Ok(());
    };
    if plan.host_check == HostCheck::Off {
        return Ok(());
    }
    let public = public_origin(&http.url)?;
    let port = http.port;
    let dialer = NetnsDialer::open(&plan.netns_path)?;
    let step = progress.step("checking where the app's front page sends the browser");
    let probe = Probe {
        dialer: &dialer,
        port,
        public: &public,
        plan,
    };
    let checked = tokio::time::timeout(CHECK_TIMEOUT, async {
        match plan.host_check {
            HostCheck::Refuse => probe.refuse_mode(progress).await,
            HostCheck::Verify => Ok((probe.verify_mode(progress).await, None)),
            HostCheck::Auto { bodies } => probe.auto_mode(progress, bodies).await,
            HostCheck::Off => Ok((HostCheckRecord::default(), None)),
        }
    })
    .await;
    let (record, found) = match checked {
        Ok(r) => r?,
        Err(_) if matches!(plan.host_check, HostCheck::Auto { .. }) => {
            return Err(anyhow!(
                "--original-host auto: the check of the app's front page took longer than {}s; give the \
                 original host instead (e.g. --original-host https://wiki.example.org)",
                CHECK_TIMEOUT.as_secs()
            ))
        }
        Err(_) => {
            let why = format!("did not finish within {}s", CHECK_TIMEOUT.as_secs());
            progress.warn(format!("the check of the app's front page for a pinned hostname {why}"));
            (not_checked(&anyhow!(why)), None)
        }
    };
    step.done();
    if let Some(spec) = found {
        plan.masquerade = Some(spec);
        state::write_json(&dir.plan_path(), &*plan)?;
    }
    state::write_json(&HostCheckRecord::path(dir), &record)?;
    Ok(())
}

struct Probe<'a> {
    dialer: &'a NetnsDialer,
    port: u16,
    public: &'a Origin,
    plan: &'a Plan,
}

impl Probe<'_> {
    /// Fetch the front page asked as `masquerade` (or plainly) and rank what it points to.
    async fn candidates(&self, masquerade: Option<&Masquerade>) -> Result<Vec<Candidate>> {
        let asker = Asker {
            public: self.public,
            masquerade,
        };
        let chain = fetch::front_page(self.dialer, self.port, &asker).await?;
        let mut own = vec![OwnHost {
            host: self.public.host.clone(),
            port: self.public.port,
        }];
        let app = asker.app_origin();
        own.push(OwnHost {
            host: app.host.clone(),
            port: app.port,
        });
        Ok(verdict::rank(&clues_of(&chain, self.public.https), &own))
    }

    /// No `--original-host`.
    async fn refuse_mode(
        &self,
        progress: &Progress,
    ) -> Result<(HostCheckRecord, Option<MasqueradeSpec>)> {
        let mut found = match self.candidates(None).await {
            Ok(c) => c,
            Err(e) => {
                progress.warn(format!(
                    "could not fetch the app's front page to check for a pinned hostname: {e:#}"
                ));
                return Ok((not_checked(&e), None));
            }
        };
        if found
            .first()
            .is_none_or(|c| c.confidence() < Confidence::Likely)
        {
            found.splice(0..0, vhosts::candidates(self, progress).await);
        }
        let Some(best) = found.first() else {
            progress.note("the app's front page points to no other hostname");
            return Ok((none_found(), None));
        };
        let record = record_of(best, "warned");
        match best.confidence() {
            Confidence::Certain => Err(BadInput::new(refusal(&found)).into()),
            Confidence::Likely => {
                progress.warn(warning(best));
                Ok((record, None))
            }
            Confidence::Weak => {
                progress.note(format!("the app {}", best.evidence()));
                Ok((record_of(best, "assets only"), None))
            }
        }
    }

    /// `--original-host HOST`: asked as the proxy will ask it.
    async fn verify_mode(&self, progress: &Progress) -> HostCheckRecord {
        let Some(m) = self.masquerade_of_plan() else {
            return HostCheckRecord::default();
        };
        match self.candidates(Some(&m)).await {
            Err(e) => {
                progress.warn(format!(
                    "could not fetch the app's front page to check the original host: {e:#}"
                ));
                not_checked(&e)
            }
            Ok(found) => match found.first() {
                Some(best) if best.confidence() >= Confidence::Likely => {
                    progress.warn(format!(
                        "even as {}, the app {}: that host is not masqueraded, so users of this instance would \
                         land there. If it is the app's own, give it as --original-host instead.",
                        m.original_host(),
                        best.evidence()
                    ));
                    record_of(best, "warned")
                }
                _ => HostCheckRecord {
                    detected: None,
                    evidence: None,
                    outcome: format!("the app stays on {}", m.original_host()),
                },
            },
        }
    }

    /// `--original-host auto`.
    async fn auto_mode(
        &self,
        progress: &Progress,
        bodies: bool,
    ) -> Result<(HostCheckRecord, Option<MasqueradeSpec>)> {
        let mut found = self.candidates(None).await.map_err(|e| {
            anyhow!(
                "--original-host auto: could not fetch the app's front page inside the instance: {e:#}; \
                 give the original host instead (e.g. --original-host https://wiki.example.org)"
            )
        })?;
        if found
            .first()
            .is_none_or(|c| c.confidence() < Confidence::Likely)
        {
            found.splice(0..0, vhosts::candidates(self, progress).await);
        }
        let best = match verdict::choose(&found) {
            Ok(Some(best)) => best,
            Ok(None) => {
                progress.note(
                    "--original-host auto: the app points to no other hostname; serving it without masquerade",
                );
                return Ok((none_found(), None));
            }
            Err(close) => return Err(BadInput::new(ambiguous(&close)).into()),
        };
        let spec = MasqueradeSpec::parse(&best.origin.to_string(), bodies).map_err(|e| {
            BadInput::new(format!(
                "--original-host auto: the app {}, which cannot be masqueraded ({e}); give the original \
                 host with --original-host, or --no-host-check",
                best.evidence()
            ))
        })?;
        progress.note(format!(
            "--original-host auto: the app {}: its own origin, which the app will see; the browser sees {}",
            best.evidence(),
            self.public
        ));
        let m = masquerade(&spec, self.public)?;
        if let Ok(again) = self.candidates(Some(&m)).await {
            if let Some(other) = again
                .first()
                .filter(|c| c.confidence() >= Confidence::Likely)
            {
                progress.warn(format!(
                    "as {}, the app also {}: that host is not masqueraded",
                    best.origin,
                    other.evidence()
                ));
            }
        }
        Ok((record_of(best, "used as the masquerade"), Some(spec)))
    }

    fn masquerade_of_plan(&self) -> Option<Masquerade> {
        masquerade(self.plan.masquerade.as_ref()?, self.public).ok()
    }
}

/// Every clue of a fetched chain: headers of each response, links of each HTML page.
fn clues_of(chain: &[Fetched], https: bool) -> Vec<Clue> {
    chain
        .iter()
        .flat_map(|f| {
            let mut c = clues::from_headers(&f.path, f.status, &f.headers, https);
            if !f.html.is_empty() {
                c.extend(clues::from_html(&f.path, &f.html, https));
            }
            c
        })
        .collect()
}

/// The instance's public origin, from its route URL.
fn public_origin(url: &str) -> Result<Origin> {
    Origin::of_url(url, false).ok_or_else(|| anyhow!("the route URL {url} names no host"))
}

fn masquerade(spec: &MasqueradeSpec, public: &Origin) -> Result<Masquerade> {
    let scheme = |https| if https { Scheme::Https } else { Scheme::Http };
    Ok(Masquerade::new(
        &spec.host,
        scheme(spec.https),
        &public.authority(),
        scheme(public.https),
    )?)
}

/// The `--original-host` value for an origin: `https://host[:port]` (scheme always given).
pub fn flag_value(o: &Origin) -> String {
    o.to_string()
}

/// Stopping the start: the front page sends every visitor to another host (`found[0]`, certain). When
/// nginx serves several sites only by name, the instance cannot tell which one is the app: all are named.
pub fn refusal(found: &[Candidate]) -> String {
    let best = &found[0];
    let sites: Vec<String> = found
        .iter()
        .filter(|c| c.strongest() == clues::ClueKind::VirtualHost)
        .map(|c| c.origin.to_string())
        .collect();
    if sites.len() > 1 {
        return format!(
            "the instance's hostname gets nginx's default page, and nginx serves these sites only by name: {}. \
             Run again with the app's one as --original-host (e.g. `--original-host {}`); `--no-host-check` \
             starts it anyway.",
            sites.join(", "),
            flag_value(&best.origin)
        );
    }
    format!(
        "the app {} — its own, pinned hostname: users of this instance would land on the live site. \
         Run again with `--original-host {}` (or `--original-host auto`); `--no-host-check` starts it \
         anyway.",
        best.evidence(),
        flag_value(&best.origin)
    )
}

/// Starting, but saying so: links, forms or cookies name another host.
pub fn warning(best: &Candidate) -> String {
    format!(
        "the app {}, probably its own, pinned hostname: users of this instance who follow them would land \
         on the live site. Run again with `--original-host {}` (or `--original-host auto`).",
        best.evidence(),
        flag_value(&best.origin)
    )
}

fn ambiguous(close: &[&Candidate]) -> String {
    let list: Vec<String> = close.iter().map(|c| c.evidence()).collect();
    format!(
        "--original-host auto: the app points to several hostnames and none stands out: {}. Give the app's \
         own with --original-host (e.g. --original-host {})",
        list.join("; "),
        flag_value(&close[0].origin)
    )
}

fn record_of(best: &Candidate, outcome: &str) -> HostCheckRecord {
    HostCheckRecord {
        detected: Some(best.origin.to_string()),
        evidence: Some(best.evidence()),
        outcome: outcome.into(),
    }
}

fn none_found() -> HostCheckRecord {
    HostCheckRecord {
        detected: None,
        evidence: None,
        outcome: "none found".into(),
    }
}

fn not_checked(e: &anyhow::Error) -> HostCheckRecord {
    HostCheckRecord {
        detected: None,
        evidence: None,
        outcome: format!("not checked: {e:#}"),
    }
}
