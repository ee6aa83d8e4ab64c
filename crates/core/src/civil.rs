//! Civil (calendar) dates and times as wayback's selectors and other tools' catalogs write them:
//! parsing `YYYY-MM-DD[ T]HH:MM[:SS][zone]` (with how precise it was), converting to unix seconds, and
//! printing UTC timestamps. Used by the snapshot catalogs (snapper dates, btrbk names) and by selectors
//! (`@2026-11-14T10:00`).
//!
//! The calendar itself — which dates exist, leap years, day numbers, zone offsets and time-zone rules —
//! is jiff's; what stays here is the syntax wayback accepts (exactly these shapes, nothing more lenient)
//! and the precision a time was written with, which selectors need (`2026-11-14` means the whole day).
//!
//! Pure: no clock, no time-zone database. Local time is never guessed here; callers that need it (btrbk
//! names without a zone) pass a zone in ([`unix_in`]).

use jiff::civil::DateTime;
use jiff::tz::{Offset, TimeZone};
use jiff::SignedDuration;

/// A calendar date and wall-clock time, without a zone (whole seconds).
pub type Civil = DateTime;

const EPOCH: Civil = DateTime::constant(1970, 1, 1, 0, 0, 0, 0);

/// How much of a time was written: `2026-11-14` means the whole day, `…T10:00` the whole minute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precision {
    Day,
    Minute,
    Second,
}

impl Precision {
    /// Seconds covered by one unit of this precision, minus one (the offset of the unit's last second).
    pub fn last_second(self) -> i64 {
        match self {
            Precision::Day => 86_399,
            Precision::Minute => 59,
            Precision::Second => 0,
        }
    }
}

/// A parsed time: the civil fields, the zone offset if one was written, and how precise it was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParsedTime {
    pub civil: Civil,
    pub offset: Option<Offset>,
    pub precision: Precision,
}

impl ParsedTime {
    /// Unix seconds of the first second this time denotes; UTC when no zone was written.
    pub fn start_utc(&self) -> i64 {
        unix_utc(&self.civil) - i64::from(self.offset.map_or(0, Offset::seconds))
    }
    /// Unix seconds of the last second this time denotes (the end of the day for a date alone).
    pub fn end_utc(&self) -> i64 {
        self.start_utc() + self.precision.last_second()
    }
}

/// A validated civil time (month 1–12, a day that exists, 00:00:00–23:59:59), from parsed digits.
pub fn from_fields(
    year: u32,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
) -> Option<Civil> {
    let small = |n: u32| i8::try_from(n).ok();
    DateTime::new(
        i16::try_from(year).ok()?,
        small(month)?,
        small(day)?,
        small(hour)?,
        small(minute)?,
        small(second)?,
        0,
    )
    .ok()
}

/// Unix seconds, taking the fields as UTC.
pub fn unix_utc(c: &Civil) -> i64 {
    c.duration_since(EPOCH).as_secs()
}

/// Unix seconds of a wall-clock time in zone `tz`. A time that does not exist there (skipped by a
/// change to summer time) is read with the offset before the change, a time that exists twice as the
/// earlier one — as `mktime` does; UTC if even that is out of range.
pub fn unix_in(c: &Civil, tz: &TimeZone) -> i64 {
    tz.to_ambiguous_timestamp(*c)
        .compatible()
        .map_or_else(|_| unix_utc(c), jiff::Timestamp::as_second)
}

/// `YYYY-MM-DD HH:MM:SS` in UTC.
pub fn format_utc(ts: i64) -> String {
    match EPOCH.checked_add(SignedDuration::from_secs(ts)) {
        Ok(c) => c.strftime("%Y-%m-%d %H:%M:%S").to_string(),
        Err(_) => format!("{ts} seconds after 1970"),
    }
}

/// Parse exactly `n` ASCII digits at the start of `s`.
pub(crate) fn digits(s: &str, n: usize) -> Option<(u32, &str)> {
    let head = s.get(..n)?;
    if !head.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((head.parse().ok()?, &s[n..]))
}

/// Parse a zone suffix: `Z`, `+HH`, `+HH:MM`, `+HHMM` (or `-`).
pub(crate) fn parse_zone(s: &str) -> Option<Offset> {
    if s == "Z" || s == "z" {
        return Some(Offset::UTC);
    }
    let sign = match s.as_bytes().first()? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let (h, rest) = digits(&s[1..], 2)?;
    let rest = rest.strip_prefix(':').unwrap_or(rest);
    let m = match rest {
        "" => 0,
        _ => match digits(rest, 2)? {
            (m, "") => m,
            _ => return None,
        },
    };
    if h > 23 || m > 59 {
        return None;
    }
    Offset::from_seconds(sign * (h * 3600 + m * 60) as i32).ok()
}

/// Parse `YYYY-MM-DD`, optionally followed by `T` or a space and `HH:MM[:SS]`, optionally followed by a
/// zone (`Z`, `+01:00`, `+0100`, `-05`). The zone is only accepted after a time.
pub fn parse_datetime(s: &str) -> Option<ParsedTime> {
    let (y, r) = digits(s, 4)?;
    let (mo, r) = digits(r.strip_prefix('-')?, 2)?;
    let (d, r) = digits(r.strip_prefix('-')?, 2)?;
    let date = |h, mi, sec| from_fields(y, mo, d, h, mi, sec);
    if r.is_empty() {
        return Some(ParsedTime {
            civil: date(0, 0, 0)?,
            offset: None,
            precision: Precision::Day,
        });
    }
    let r = r.strip_prefix('T').or_else(|| r.strip_prefix(' '))?;
    let (h, r) = digits(r, 2)?;
    let (mi, r) = digits(r.strip_prefix(':')?, 2)?;
    let (sec, precision, r) = match r.strip_prefix(':') {
        Some(r2) => {
            let (sec, r3) = digits(r2, 2)?;
            (sec, Precision::Second, r3)
        }
        None => (0, Precision::Minute, r),
    };
    let offset = if r.is_empty() {
        None
    } else {
        Some(parse_zone(r)?)
    };
    Some(ParsedTime {
        civil: date(h, mi, sec)?,
        offset,
        precision,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unix_seconds_both_ways() {
        assert_eq!(unix_utc(&from_fields(1970, 1, 1, 0, 0, 0).unwrap()), 0);
        assert_eq!(
            unix_utc(&from_fields(2000, 3, 1, 0, 0, 0).unwrap()),
            11_017 * 86_400
        );
        assert_eq!(
            unix_utc(&from_fields(1969, 12, 31, 23, 59, 59).unwrap()),
            -1
        );
        assert_eq!(format_utc(1_794_650_400), "2026-11-14 10:00:00");
        assert_eq!(format_utc(951_782_400), "2000-02-29 00:00:00");
        assert_eq!(format_utc(-1), "1969-12-31 23:59:59");
        // The last second a selector can name prints too (past jiff's Timestamp range, not DateTime's).
        let last = parse_datetime("9999-12-31").unwrap().end_utc();
        assert_eq!(format_utc(last), "9999-12-31 23:59:59");
        assert_eq!(
            format_utc(i64::MAX),
            format!("{} seconds after 1970", i64::MAX)
        );
    }

    #[test]
    fn local_times_follow_the_zone_rules() {
        // Central European Time, without a tz database: +01:00 in winter, +02:00 from the last Sunday
        // of March 02:00 to the last Sunday of October 03:00.
        let cet = TimeZone::posix("CET-1CEST,M3.5.0,M10.5.0/3").unwrap();
        let at = |s: &str| parse_datetime(s).unwrap().civil;
        let utc = |s: &str| parse_datetime(s).unwrap().start_utc();
        assert_eq!(
            unix_in(&at("2026-01-15T12:00"), &cet),
            utc("2026-01-15T11:00")
        );
        assert_eq!(
            unix_in(&at("2026-07-15T12:00"), &cet),
            utc("2026-07-15T10:00")
        );
        // 02:30 on 2026-03-29 does not exist: read with the winter offset (= 03:30 summer time).
        assert_eq!(
            unix_in(&at("2026-03-29T02:30"), &cet),
            utc("2026-03-29T01:30")
        );
        // 02:30 on 2026-10-25 happens twice: the first (summer time) one.
        assert_eq!(
            unix_in(&at("2026-10-25T02:30"), &cet),
            utc("2026-10-25T00:30")
        );
        assert_eq!(
            unix_in(&at("2026-07-15T12:00"), &TimeZone::UTC),
            utc("2026-07-15T12:00")
        );
    }

    #[test]
    fn parses_dates_times_and_zones() {
        let t = parse_datetime("2026-11-14").unwrap();
        assert_eq!(t.precision, Precision::Day);
        assert_eq!(format_utc(t.start_utc()), "2026-11-14 00:00:00");
        assert_eq!(format_utc(t.end_utc()), "2026-11-14 23:59:59");
        let t = parse_datetime("2026-11-14T10:00").unwrap();
        assert_eq!(format_utc(t.start_utc()), "2026-11-14 10:00:00");
        assert_eq!(format_utc(t.end_utc()), "2026-11-14 10:00:59");
        let t = parse_datetime("2026-11-14 10:00:30+01:00").unwrap();
        assert_eq!(format_utc(t.start_utc()), "2026-11-14 09:00:30");
        assert_eq!(t.end_utc(), t.start_utc());
        let t = parse_datetime("2026-11-14T10:00-0530").unwrap();
        assert_eq!(format_utc(t.start_utc()), "2026-11-14 15:30:00");
        assert_eq!(
            parse_datetime("2026-11-14T10:00Z").unwrap().offset,
            Some(Offset::UTC)
        );
        assert_eq!(
            parse_datetime("2024-02-29T23:59:59-05").unwrap().offset,
            Some(Offset::constant(-5))
        );
        for bad in [
            "2026-02-29",
            "2026-13-01",
            "2026-11-14T24:00",
            "2026-11-14T10",
            "2026-11-14Z",
            "2026-11-14T10:00+25",
            "2026-1-14",
            "20261114",
            "2026-11-14T10:00:00 junk",
            "2026-11-14T10:00:00.5",
            "2026-11-14T10:00:60",
            "2026-11-14T10:00[Europe/Berlin]",
        ] {
            assert!(parse_datetime(bad).is_none(), "{bad} accepted");
        }
    }
}
