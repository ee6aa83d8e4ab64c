//! `--allow-egress` holes in an instance's quarantine: exactly one destination address, protocol and port,
//! parsed and validated once (on the command line or in a verify job) and carried typed through the
//! request, the plan (written as its canonical text, `tcp:10.0.0.5:443`) and the nftables ruleset.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An `--allow-egress` value that is not `[tcp:|udp:]IP:PORT`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid egress hole {input:?}: {reason} (expected IP:PORT, [IPv6]:PORT or udp:IP:PORT)")]
pub struct EgressError {
    pub input: String,
    pub reason: &'static str,
}

/// Transport protocol of an egress hole.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Proto {
    Tcp,
    Udp,
}

/// One `--allow-egress` hole: exactly this destination address, protocol and port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Egress {
    pub proto: Proto,
    pub addr: IpAddr,
    pub port: u16,
}

impl Proto {
    pub fn as_str(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        }
    }
}

impl FromStr for Egress {
    type Err = EgressError;

    /// `10.0.0.5:443`, `[2001:db8::1]:443`, `udp:10.0.0.5:53`, `tcp:[::1]:80`: an IP literal (no host
    /// names: the rule is fixed when the instance starts) and a port other than 0.
    fn from_str(s: &str) -> Result<Self, EgressError> {
        let bad = |reason| EgressError {
            input: s.to_string(),
            reason,
        };
        let (proto, rest) = match s.split_once(':') {
            Some((p, rest)) if p.eq_ignore_ascii_case("tcp") => (Proto::Tcp, rest),
            Some((p, rest)) if p.eq_ignore_ascii_case("udp") => (Proto::Udp, rest),
            // "sctp:…", but not the first group of an unbracketed IPv6 address ("dead:beef::1").
            Some((p, rest))
                if p.bytes().all(|b| b.is_ascii_alphabetic())
                    && !p.bytes().all(|b| b.is_ascii_hexdigit())
                    && rest.contains(':') =>
            {
                return Err(bad("the protocol must be tcp: or udp:"));
            }
            _ => (Proto::Tcp, s),
        };
        let sa = SocketAddr::from_str(rest).map_err(|_| {
            let host = rest.rsplit_once(':').map_or(rest, |(h, _)| h);
            let name_like = host.bytes().any(|b| b.is_ascii_alphabetic())
                && (host.bytes()).all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-');
            if name_like && host.parse::<IpAddr>().is_err() {
                bad("the host must be an IP address literal, not a name")
            } else {
                bad("not an address with a port")
            }
        })?;
        if let SocketAddr::V6(v6) = sa {
            if v6.scope_id() != 0 {
                return Err(bad("scoped (%interface) addresses are not supported"));
            }
        }
        let addr = sa.ip().to_canonical();
        if addr.is_unspecified() {
            return Err(bad("the unspecified address matches nothing"));
        }
        if sa.port() == 0 {
            return Err(bad("port 0"));
        }
        Ok(Egress {
            proto,
            addr,
            port: sa.port(),
        })
    }
}

impl fmt::Display for Egress {
    /// The canonical form `FromStr` accepts: `tcp:10.0.0.5:443`, `udp:[2001:db8::1]:53`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sa = SocketAddr::new(self.addr, self.port);
        write!(f, "{}:{sa}", self.proto.as_str())
    }
}

/// Holes as a list for messages: `tcp:10.0.0.5:443, udp:10.0.0.53:53`.
pub fn join(holes: &[Egress]) -> String {
    holes
        .iter()
        .map(Egress::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Written as its canonical text (what plans of every format hold).
impl Serialize for Egress {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Egress {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_keep_the_canonical_text() {
        let e: Egress = "10.0.0.5:443".parse().unwrap();
        let json = serde_json::to_string(&vec![e]).unwrap();
        assert_eq!(json, r#"["tcp:10.0.0.5:443"]"#);
        let back: Vec<Egress> = serde_json::from_str(&json).unwrap();
        assert_eq!(back, vec![e]);
        let bad = serde_json::from_str::<Vec<Egress>>(r#"["example.org:443"]"#).unwrap_err();
        assert!(bad.to_string().contains("IP address literal"), "{bad}");
    }
}
