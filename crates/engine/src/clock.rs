//! The one wall clock of the engine: unix seconds now, for expiries, selectors (`@2w`), history rows and
//! metrics. Everything that needs "now" reads it here, so a test or a new caller finds one definition.

use std::time::{SystemTime, UNIX_EPOCH};

/// Unix seconds now (whole seconds, rounded down).
pub fn now() -> i64 {
    i64::try_from(now_secs()).unwrap_or(i64::MAX)
}

/// Unix seconds now, unsigned (expiries and idle times are stored so).
pub fn now_secs() -> u64 {
    since_epoch().as_secs()
}

/// Unix seconds now, rounded up: an expiry computed as `now_ceil() + TTL` is never earlier than TTL from
/// now.
pub fn now_ceil() -> u64 {
    let t = since_epoch();
    t.as_secs() + u64::from(t.subsec_nanos() > 0)
}

fn since_epoch() -> std::time::Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_three_readings_agree() {
        let (a, b, c) = (now(), now_secs(), now_ceil());
        assert!(a > 1_700_000_000);
        assert!(b >= a as u64 && c >= b && c <= b + 2);
    }
}
