//! From clues to a verdict: which origin, if any, the app treats as its own. Pure.
//!
//! Clues on the instance's own hosts (the `Host` it is asked by, and the original host of a masquerade)
//! are dropped, and so are well-known third parties (CDNs, fonts, analytics, the projects a footer links
//! to: [`is_known_external`]). The rest are grouped by host — a cookie for a parent domain
//! (`Domain=.example.org`) counts for the hosts below it — and ranked by their strongest clue (redirect >
//! `<base>` > form > cookie > link > asset), then by how many there are.

use super::clues::{Clue, ClueKind, Origin};

/// How sure wayback is that an origin is the app's own, pinned one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Confidence {
    /// Only assets come from it (a CDN wayback does not know, or a static host).
    Weak,
    /// The page's links, forms or cookies name it: following them leaves the instance.
    Likely,
    /// The front page redirects there (or `<base>` points there): every visitor leaves the instance.
    Certain,
}

/// One origin the app points to, with every clue naming it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// Scheme and port from its strongest clue.
    pub origin: Origin,
    pub clues: Vec<Clue>,
}

impl Candidate {
    pub fn strongest(&self) -> ClueKind {
        self.clues
            .iter()
            .map(|c| c.kind)
            .max()
            .unwrap_or(ClueKind::Asset)
    }

    pub fn confidence(&self) -> Confidence {
        match self.strongest() {
            ClueKind::Redirect | ClueKind::VirtualHost | ClueKind::Base => Confidence::Certain,
            ClueKind::Form | ClueKind::Cookie | ClueKind::Link => Confidence::Likely,
            ClueKind::Asset => Confidence::Weak,
        }
    }

    /// The strongest clue, for messages: `redirects to https://x (Location of GET /)`, with how many
    /// more clues there are.
    pub fn evidence(&self) -> String {
        let Some(best) = self.clues.iter().max_by_key(|c| c.kind) else {
            return String::new();
        };
        let more = match self.clues.len() {
            1 => String::new(),
            n => format!(", and {} more", n - 1),
        };
        format!(
            "{} {} ({}{more})",
            best.kind.describe(),
            self.origin,
            best.place
        )
    }
}

/// A host of the instance itself, `host[:port]` canonical (no default port).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnHost {
    pub host: String,
    pub port: Option<u16>,
}

impl OwnHost {
    fn covers(&self, o: &Origin) -> bool {
        self.host == o.host && self.port == o.port
    }
}

/// The candidates, best first. `own` are the instance's hosts.
pub fn rank(clues: &[Clue], own: &[OwnHost]) -> Vec<Candidate> {
    let mut out: Vec<Candidate> = Vec::new();
    let kept = clues
        .iter()
        .filter(|c| !own.iter().any(|h| h.covers(&c.origin)) && !is_known_external(&c.origin.host));
    let (cookies, others): (Vec<&Clue>, Vec<&Clue>) =
        kept.partition(|c| c.kind == ClueKind::Cookie);
    for c in others {
        match out
            .iter_mut()
            .find(|k| k.origin.host == c.origin.host && k.origin.port == c.origin.port)
        {
            Some(k) => k.clues.push(c.clone()),
            None => out.push(Candidate {
                origin: c.origin.clone(),
                clues: vec![c.clone()],
            }),
        }
    }
    for c in cookies {
        let domain = &c.origin.host;
        // A cookie for the instance's own host or a domain above it is the app being right.
        if own.iter().any(|h| within(&h.host, domain)) {
            continue;
        }
        let mut placed = false;
        for k in out.iter_mut().filter(|k| within(&k.origin.host, domain)) {
            k.clues.push(c.clone());
            placed = true;
        }
        if !placed {
            out.push(Candidate {
                origin: c.origin.clone(),
                clues: vec![c.clone()],
            });
        }
    }
    for k in &mut out {
        if let Some(best) = k
            .clues
            .iter()
            .filter(|c| c.kind != ClueKind::Cookie)
            .max_by_key(|c| c.kind)
        {
            k.origin = best.origin.clone();
        }
    }
    // Stable: among equals, the one named first stays first.
    out.sort_by_key(|c| std::cmp::Reverse((c.strongest(), c.clues.len())));
    out
}

/// The candidate `--original-host auto` takes: the best one when it is at least likely and clearly ahead of
/// the next (a weaker kind of clue, or at most half as many of the same kind). `Err` lists the ones too close
/// to choose between.
pub fn choose(candidates: &[Candidate]) -> Result<Option<&Candidate>, Vec<&Candidate>> {
    let Some(best) = candidates.first() else {
        return Ok(None);
    };
    if best.confidence() < Confidence::Likely {
        return Ok(None);
    }
    let close: Vec<&Candidate> = candidates
        .iter()
        .skip(1)
        .filter(|c| c.strongest() == best.strongest() && c.clues.len() * 2 > best.clues.len())
        .collect();
    if close.is_empty() {
        Ok(Some(best))
    } else {
        Err(std::iter::once(best).chain(close).collect())
    }
}

/// Whether `host` is `domain` or below it.
fn within(host: &str, domain: &str) -> bool {
    host == domain || host.ends_with(&format!(".{domain}"))
}

/// Third parties pages commonly load from or link to, never an app's own hostname: CDNs, web fonts,
/// analytics and captchas, social networks and video sites, and the projects that apps' footers credit.
const KNOWN_EXTERNAL: &[&str] = &[
    // CDNs and fonts
    "jsdelivr.net",
    "unpkg.com",
    "cdnjs.cloudflare.com",
    "cloudflare.com",
    "cloudfront.net",
    "akamaihd.net",
    "akamaized.net",
    "fastly.net",
    "azureedge.net",
    "bootstrapcdn.com",
    "jquery.com",
    "fontawesome.com",
    "googleapis.com",
    "gstatic.com",
    "typekit.net",
    "gravatar.com",
    "wp.com",
    // analytics, ads, captchas, login providers
    "google-analytics.com",
    "googletagmanager.com",
    "doubleclick.net",
    "googlesyndication.com",
    "recaptcha.net",
    "hcaptcha.com",
    "google.com",
    "microsoftonline.com",
    "live.com",
    "paypal.com",
    "list-manage.com",
    "duckduckgo.com",
    "bing.com",
    // social and video
    "youtube.com",
    "youtube-nocookie.com",
    "vimeo.com",
    "twitter.com",
    "x.com",
    "facebook.com",
    "facebook.net",
    "instagram.com",
    "linkedin.com",
    "mastodon.social",
    // standards and projects credited in footers and markup
    "w3.org",
    "schema.org",
    "ogp.me",
    "gmpg.org",
    "creativecommons.org",
    "github.com",
    "githubusercontent.com",
    "gitlab.com",
    "wikipedia.org",
    "wikimedia.org",
    "mediawiki.org",
    "wordpress.org",
    "wordpress.com",
    "drupal.org",
    "joomla.org",
    "nextcloud.com",
    "dokuwiki.org",
    "splitbrain.org",
    "php.net",
    "nginx.org",
    "nginx.com",
    "apache.org",
    "debian.org",
    "ubuntu.com",
    "mozilla.org",
    "matomo.org",
    "openstreetmap.org",
];

/// Whether `host` is (below) one of [`KNOWN_EXTERNAL`].
pub fn is_known_external(host: &str) -> bool {
    KNOWN_EXTERNAL.iter().any(|d| within(host, d))
}
