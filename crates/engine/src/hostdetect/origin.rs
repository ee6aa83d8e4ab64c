//! Origins (`scheme://host[:port]`) as the check compares them: parsed from absolute, protocol-relative and
//! WebSocket URLs and from `host[:port]` authorities, canonical (lowercase host, no trailing dot, no default
//! port). Pure.

use std::fmt;

/// `scheme://host[:port]`: the host lowercased, without a trailing dot; the port only when it is not the
/// scheme's default.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Origin {
    pub https: bool,
    pub host: String,
    pub port: Option<u16>,
}

impl Origin {
    /// The origin of an absolute (`http[s]://`, `ws[s]://`) or protocol-relative (`//host`) URL; `https`
    /// is the page's scheme, for the latter. `None` for relative URLs and other schemes.
    pub fn of_url(url: &str, https: bool) -> Option<Origin> {
        let url = url.trim_matches(|c: char| c.is_ascii_whitespace() || c == '"' || c == '\'');
        let lower = url.get(..8).unwrap_or(url).to_ascii_lowercase();
        let (https, rest) = if lower.starts_with("https://") || lower.starts_with("wss://") {
            (true, &url[url.find("//")? + 2..])
        } else if lower.starts_with("http://") || lower.starts_with("ws://") {
            (false, &url[url.find("//")? + 2..])
        } else if let Some(r) = url.strip_prefix("//") {
            (https, r)
        } else {
            return None;
        };
        let end = rest.find(['/', '?', '#', '\\']).unwrap_or(rest.len());
        Origin::of_authority(&rest[..end], https)
    }

    /// `[userinfo@]host[:port]` with the given scheme.
    pub fn of_authority(authority: &str, https: bool) -> Option<Origin> {
        let hostport = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
        let (host, port) = match hostport.strip_prefix('[') {
            Some(v6) => {
                let (addr, after) = v6.split_once(']')?;
                (format!("[{addr}]"), after.strip_prefix(':'))
            }
            None => match hostport.rsplit_once(':') {
                Some((h, p)) => (h.to_string(), Some(p)),
                None => (hostport.to_string(), None),
            },
        };
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        let valid = !host.is_empty()
            && !host.starts_with(['.', '-'])
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._[]:".contains(&b));
        if !valid || (!host.starts_with('[') && host.contains(':')) {
            return None;
        }
        let default = if https { 443 } else { 80 };
        let port = match port {
            None | Some("") => None,
            Some(p) => Some(p.parse::<u16>().ok().filter(|p| *p != 0)?).filter(|p| *p != default),
        };
        Some(Origin { https, host, port })
    }

    /// `host[:port]`, as in a `Host` header.
    pub fn authority(&self) -> String {
        match self.port {
            Some(p) => format!("{}:{p}", self.host),
            None => self.host.clone(),
        }
    }

    /// The port connections go to.
    pub fn effective_port(&self) -> u16 {
        self.port.unwrap_or(if self.https { 443 } else { 80 })
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.https { "https" } else { "http" };
        write!(f, "{scheme}://{}", self.authority())
    }
}
