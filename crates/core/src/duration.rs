//! Human durations (`90s`, `15m`, `24h`, `2d`, `2w`, `1h30m`) for TTLs and selectors.
//!
//! Pure: parsing and formatting only. No clock is read here.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A whole number of seconds, parsed from and printed as a human duration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Duration(pub u64);

/// Why a duration string was rejected.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid duration {input:?}: {why} (examples: 90s, 15m, 24h, 2d, 2w, 1h30m)")]
pub struct DurationError {
    pub input: String,
    pub why: &'static str,
}

const UNITS: &[(&str, u64)] = &[
    ("w", 7 * 86400),
    ("d", 86400),
    ("h", 3600),
    ("m", 60),
    ("s", 1),
];

impl Duration {
    pub fn from_secs(secs: u64) -> Self {
        Duration(secs)
    }
    pub fn as_secs(self) -> u64 {
        self.0
    }
    pub fn as_std(self) -> std::time::Duration {
        std::time::Duration::from_secs(self.0)
    }
}

impl FromStr for Duration {
    type Err = DurationError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |why| DurationError {
            input: s.to_string(),
            why,
        };
        let t = s.trim();
        if t.is_empty() {
            return Err(err("empty"));
        }
        let mut total: u64 = 0;
        let mut rest = t;
        while !rest.is_empty() {
            let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
            if digits == 0 {
                return Err(err("expected a number"));
            }
            let n: u64 = rest[..digits]
                .parse()
                .map_err(|_| err("number too large"))?;
            rest = &rest[digits..];
            let unit_len = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
            let unit = &rest[..unit_len];
            rest = &rest[unit_len..];
            let mult = match unit {
                "" if total == 0 && rest.is_empty() => 1,
                "" => return Err(err("missing unit")),
                "sec" | "secs" => 1,
                "min" | "mins" => 60,
                u => UNITS
                    .iter()
                    .find(|(name, _)| *name == u)
                    .map(|(_, m)| *m)
                    .ok_or_else(|| err("unknown unit (use s, m, h, d or w)"))?,
            };
            total = n
                .checked_mul(mult)
                .and_then(|v| total.checked_add(v))
                .ok_or_else(|| err("too large"))?;
        }
        if total == 0 {
            return Err(err("must be longer than zero"));
        }
        Ok(Duration(total))
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 == 0 {
            return f.write_str("0s");
        }
        let mut left = self.0;
        for (name, mult) in UNITS {
            // Weeks only when exact, so "10d" does not print as "1w3d".
            if *name == "w" && !left.is_multiple_of(*mult) {
                continue;
            }
            if left >= *mult {
                write!(f, "{}{}", left / mult, name)?;
                left %= mult;
            }
        }
        Ok(())
    }
}

impl Serialize for Duration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units_and_compounds() {
        assert_eq!("90s".parse::<Duration>().unwrap().0, 90);
        assert_eq!("15m".parse::<Duration>().unwrap().0, 900);
        assert_eq!("24h".parse::<Duration>().unwrap().0, 86400);
        assert_eq!("2w".parse::<Duration>().unwrap().0, 14 * 86400);
        assert_eq!("1h30m".parse::<Duration>().unwrap().0, 5400);
        assert_eq!("45".parse::<Duration>().unwrap().0, 45);
        assert_eq!("10min".parse::<Duration>().unwrap().0, 600);
    }

    #[test]
    fn rejects_garbage() {
        for bad in ["", "h", "5x", "0s", "1h5", "-3m", "99999999999999999999w"] {
            assert!(bad.parse::<Duration>().is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn round_trips() {
        for s in ["90s", "15m", "1d", "2w", "1h30m", "10d", "36h"] {
            let d: Duration = s.parse().unwrap();
            let back: Duration = d.to_string().parse().unwrap();
            assert_eq!(d, back);
        }
        assert_eq!(Duration(5400).to_string(), "1h30m");
        assert_eq!(Duration(10 * 86400).to_string(), "10d");
    }
}
