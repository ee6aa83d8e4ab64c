//! Names wayback gives to things: instance names, hostnames, and the kernel-object names derived from them
//! (network namespace, veth interface, nspawn machine). Pure.
//!
//! Derived names are deterministic so that `gc` can find an instance's objects from its name alone, and
//! interface names fit the kernel's 15-byte limit (long names are shortened with a hash, as nspawn does).

use std::fmt;

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

/// Validate and normalise (lowercase, no trailing dot) a DNS hostname.
pub fn validate_hostname(s: &str) -> Result<String, NameError> {
    let h = s.trim_end_matches('.').to_ascii_lowercase();
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    if h.is_empty() || h.len() > 253 || !h.split('.').all(label_ok) {
        return Err(NameError::Hostname(s.to_string()));
    }
    Ok(h)
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
}
