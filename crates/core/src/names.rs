//! Names wayback gives to things: instance names, hostnames, and the kernel-object names derived from them
//! (network namespace, veth interface, nspawn machine). Pure.
//!
//! [`InstanceName`] is the one validated type every command, the daemon's socket protocol and the state
//! directory use: a name that passes it is a single path component (no `/`, never `.` or `..`), so it can
//! never point outside `<state_dir>/instances/`. [`Hostname`] is a DNS name in its one canonical form
//! (UTS-46 to ASCII: lowercase, punycode for Unicode labels, no trailing dot), so `Bücher.example.`,
//! `BÜCHER.example` and `xn--bcher-kva.example` compare equal.
//!
//! Derived names are deterministic so that `gc` can find an instance's objects from its name alone, and
//! interface names fit the kernel's 15-byte limit (long names are shortened with a hash, as nspawn does).

use std::fmt;
use std::str::FromStr;

/// Prefix of every kernel object wayback creates (netns, host-side veth, machine name).
pub const OBJECT_PREFIX: &str = "wb-";
/// Linux IFNAMSIZ - 1.
pub const IFNAME_MAX: usize = 15;
/// Longest instance name accepted.
pub const NAME_MAX: usize = 32;

/// Why a name was rejected.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum NameError {
    #[error("invalid instance name {0:?}: use 1-32 characters a-z, 0-9 and '-', starting with a letter or digit (e.g. cloud-old)")]
    Instance(String),
    #[error("invalid hostname {0:?}: use dot-separated labels of a-z, 0-9 and '-' (each 1-63 characters, not starting or ending with '-'), 253 characters at most")]
    Hostname(String),
    #[error("invalid --original-host {0:?}: give HOST, http://HOST[:PORT] or https://HOST[:PORT], with HOST a DNS name and PORT 1-65535 (e.g. cloud.example.org or http://intranet:8080), or auto to find it")]
    Origin(String),
}

/// A validated instance name (`[a-z0-9][a-z0-9-]{0,31}`).
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(try_from = "String", into = "String")]
pub struct InstanceName(String);

impl InstanceName {
    pub fn new(s: &str) -> Result<Self, NameError> {
        let ok = !s.is_empty()
            && s.len() <= NAME_MAX
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !s.starts_with('-')
            && !s.ends_with('-');
        if ok {
            Ok(InstanceName(s.to_string()))
        } else {
            Err(NameError::Instance(s.to_string()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Name of the network namespace file under /run/netns and of the nspawn machine.
    pub fn netns(&self) -> String {
        format!("{OBJECT_PREFIX}{}", self.0)
    }

    /// The nspawn `--machine=` name (also used to find the container process again after a crash).
    pub fn machine(&self) -> String {
        self.netns()
    }

    /// Host-side veth interface name, at most 15 bytes.
    pub fn host_if(&self) -> String {
        shorten_ifname(&format!("{OBJECT_PREFIX}{}", self.0))
    }
}

impl TryFrom<String> for InstanceName {
    type Error = NameError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        InstanceName::new(&s)
    }
}

/// For clap (`value_parser`): a bad name is a parse error, exit 2, with [`NameError`]'s message.
impl FromStr for InstanceName {
    type Err = NameError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        InstanceName::new(s)
    }
}

impl AsRef<str> for InstanceName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl From<InstanceName> for String {
    fn from(n: InstanceName) -> String {
        n.0
    }
}

impl fmt::Display for InstanceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Shorten an interface name to 15 bytes: keep a prefix and append 4 hex digits of a hash of the full name.
pub fn shorten_ifname(full: &str) -> String {
    if full.len() <= IFNAME_MAX {
        return full.to_string();
    }
    let h = fnv1a(full.as_bytes());
    format!("{}{:04x}", &full[..IFNAME_MAX - 4], h & 0xffff)
}

/// FNV-1a, 64 bit: small, stable across Rust versions (unlike std's hasher).
pub fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// Longest hostname accepted (DNS: 253 characters without the trailing dot).
pub const HOSTNAME_MAX: usize = 253;

/// A validated DNS hostname in canonical ASCII form: UTS-46 ToASCII (case folded, Unicode labels as
/// `xn--` punycode), without a trailing dot, labels of `a-z 0-9 -` not starting or ending with `-`, each
/// 1-63 characters, 253 in all. Two spellings of one name (`G.RT.TEST.`, `g.rt.test`; `Bücher.example`,
/// `xn--bcher-kva.example`) give equal values.
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(try_from = "String", into = "String")]
pub struct Hostname(String);

impl Hostname {
    /// Validate and normalise `s` (ASCII or Unicode; one trailing dot allowed).
    pub fn new(s: &str) -> Result<Hostname, NameError> {
        let bad = || NameError::Hostname(s.to_string());
        let trimmed = s.strip_suffix('.').unwrap_or(s);
        // STD3 rules: letters, digits and '-' only (after mapping); DNS lengths checked.
        let ascii = idna::uts46::Uts46::new()
            .to_ascii(
                trimmed.as_bytes(),
                idna::uts46::AsciiDenyList::STD3,
                idna::uts46::Hyphens::Allow,
                idna::uts46::DnsLength::Verify,
            )
            .map_err(|_| bad())?;
        let label_ok = |l: &str| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        };
        if ascii.is_empty() || ascii.len() > HOSTNAME_MAX || !ascii.split('.').all(label_ok) {
            return Err(bad());
        }
        Ok(Hostname(ascii.into_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Hostname {
    type Error = NameError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Hostname::new(&s)
    }
}

impl From<Hostname> for String {
    fn from(h: Hostname) -> String {
        h.0
    }
}

impl FromStr for Hostname {
    type Err = NameError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Hostname::new(s)
    }
}

impl AsRef<str> for Hostname {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Hostname {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Validate a DNS hostname and return its canonical ASCII form (see [`Hostname`]).
pub fn validate_hostname(s: &str) -> Result<String, NameError> {
    Hostname::new(s).map(String::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instance_names() {
        assert!(InstanceName::new("cloud-old").is_ok());
        assert!(InstanceName::new("a").is_ok());
        for bad in ["", "-a", "a-", "Abc", "a_b", "a.b", &"x".repeat(33)] {
            assert!(InstanceName::new(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn ifnames_fit_and_are_distinct() {
        let a = InstanceName::new("nextcloud-restore-1").unwrap();
        let b = InstanceName::new("nextcloud-restore-2").unwrap();
        assert!(a.host_if().len() <= IFNAME_MAX);
        assert_ne!(a.host_if(), b.host_if());
        assert!(a.host_if().starts_with("wb-"));
        assert_eq!(InstanceName::new("pg").unwrap().host_if(), "wb-pg");
    }

    #[test]
    fn hostnames() {
        assert_eq!(
            validate_hostname("Cloud2.Example.org.").unwrap(),
            "cloud2.example.org"
        );
        for bad in [
            "",
            "a..b",
            "-a.b",
            "a_b.c",
            "a b",
            &format!("{}.x", "a".repeat(64)),
        ] {
            assert!(validate_hostname(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn instance_names_never_leave_one_path_component() {
        for bad in [
            ".",
            "..",
            "../x",
            "a/b",
            "/",
            "a\0b",
            " a",
            "a ",
            "a\nb",
            &"a".repeat(300),
        ] {
            let e = bad.parse::<InstanceName>().unwrap_err();
            assert!(e.to_string().contains("invalid instance name"), "{e}");
        }
        assert_eq!("pg-1".parse::<InstanceName>().unwrap().as_str(), "pg-1");
        let json = serde_json::to_string("../x").unwrap();
        assert!(serde_json::from_str::<InstanceName>(&json).is_err());
    }

    #[test]
    fn hostnames_have_one_canonical_form() {
        let canon = |s: &str| Hostname::new(s).unwrap().to_string();
        for same in ["G.RT.TEST.", "g.rt.test", "g.rt.test.", "G.rt.Test"] {
            assert_eq!(canon(same), "g.rt.test", "{same}");
        }
        for same in [
            "Bücher.example",
            "bücher.example.",
            "BÜCHER.EXAMPLE",
            "xn--bcher-kva.example",
            "XN--BCHER-KVA.example",
        ] {
            assert_eq!(canon(same), "xn--bcher-kva.example", "{same}");
        }
        // Fullwidth letters and the ideographic full stop map to their ASCII forms (UTS-46).
        assert_eq!(canon("ｇ。rt。test"), "g.rt.test");
        assert_eq!(
            Hostname::new("Bücher.example").unwrap(),
            Hostname::new("xn--bcher-kva.example").unwrap()
        );
        // Names that are valid in ASCII with double hyphens stay valid.
        assert_eq!(canon("r3--sn-abc.example"), "r3--sn-abc.example");
        for bad in [
            "a..b",
            "a.b..",
            ".",
            "a_b.example",
            "a/b.example",
            "a b.example",
            "xn--.example",
            "-a.example",
            "a-.example",
            "a:80",
            &format!("{}.x", "a".repeat(64)),
            &["abcdefghi"; 26].join("."),
        ] {
            assert!(Hostname::new(bad).is_err(), "{bad}");
        }
        let h: Hostname = serde_json::from_str("\"Bücher.Example\"").unwrap();
        assert_eq!(
            serde_json::to_string(&h).unwrap(),
            "\"xn--bcher-kva.example\""
        );
    }
}
