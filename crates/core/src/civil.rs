//! Civil (calendar) dates and times: parsing `YYYY-MM-DD[ T]HH:MM[:SS][zone]`, converting to and from
//! unix seconds, and printing UTC timestamps. Used by the snapshot catalogs (snapper dates, btrbk names)
//! and by selectors (`@2026-11-14T10:00`).
//!
//! Pure: no clock, no time-zone database. Local time is never guessed here; callers that need it (btrbk
//! names without a zone) pass a conversion in.

/// A calendar date and wall-clock time, without a zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Civil {
    pub year: i32,
    pub month: u8,
    pub day: u8,
    pub hour: u8,
    pub minute: u8,
    pub second: u8,
}

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

/// A parsed time: the civil fields, the zone offset if one was written (seconds east of UTC), and how
/// precise it was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParsedTime {
    pub civil: Civil,
    pub offset: Option<i32>,
    pub precision: Precision,
}

impl ParsedTime {
    /// Unix seconds of the first second this time denotes; UTC when no zone was written.
    pub fn start_utc(&self) -> i64 {
        self.civil.to_unix_utc() - i64::from(self.offset.unwrap_or(0))
    }
    /// Unix seconds of the last second this time denotes (the end of the day for a date alone).
    pub fn end_utc(&self) -> i64 {
        self.start_utc() + self.precision.last_second()
    }
}

fn is_leap(y: i32) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i32, m: u8) -> u8 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap(y) => 29,
        2 => 28,
        _ => 0,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
pub fn days_from_civil(y: i32, m: u8, d: u8) -> i64 {
    let y = i64::from(y) - i64::from(m <= 2);
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day number (inverse of [`days_from_civil`]).
pub fn civil_from_days(z: i64) -> (i32, u8, u8) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u8;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u8;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y as i32, m, d)
}

impl Civil {
    /// A validated civil time (month 1–12, a day that exists, 00:00:00–23:59:59).
    pub fn new(year: i32, month: u8, day: u8, hour: u8, minute: u8, second: u8) -> Option<Civil> {
        let ok = (1..=12).contains(&month)
            && day >= 1
            && day <= days_in_month(year, month)
            && hour < 24
            && minute < 60
            && second < 60;
        ok.then_some(Civil {
            year,
            month,
            day,
            hour,
            minute,
            second,
        })
    }

    /// Unix seconds, taking the fields as UTC.
    pub fn to_unix_utc(&self) -> i64 {
        days_from_civil(self.year, self.month, self.day) * 86_400
            + i64::from(self.hour) * 3600
            + i64::from(self.minute) * 60
            + i64::from(self.second)
    }

    pub fn from_unix_utc(ts: i64) -> Civil {
        let (y, m, d) = civil_from_days(ts.div_euclid(86_400));
        let s = ts.rem_euclid(86_400);
        Civil {
            year: y,
            month: m,
            day: d,
            hour: (s / 3600) as u8,
            minute: (s / 60 % 60) as u8,
            second: (s % 60) as u8,
        }
    }
}

/// `YYYY-MM-DD HH:MM:SS` in UTC.
pub fn format_utc(ts: i64) -> String {
    let c = Civil::from_unix_utc(ts);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
        c.year, c.month, c.day, c.hour, c.minute, c.second
    )
}

/// Parse exactly `n` ASCII digits at the start of `s`.
pub(crate) fn digits(s: &str, n: usize) -> Option<(u32, &str)> {
    let head = s.get(..n)?;
    if !head.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((head.parse().ok()?, &s[n..]))
}

/// Parse a zone suffix: `Z`, `+HH`, `+HH:MM`, `+HHMM` (or `-`). Returns seconds east of UTC.
pub(crate) fn parse_zone(s: &str) -> Option<i32> {
    if s == "Z" || s == "z" {
        return Some(0);
    }
    let sign = match s.as_bytes().first()? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let (h, rest) = digits(&s[1..], 2)?;
    let rest = rest.strip_prefix(':').unwrap_or(rest);
    let m = if rest.is_empty() {
        0
    } else {
        let (m, rest) = digits(rest, 2)?;
        if !rest.is_empty() {
            return None;
        }
        m
    };
    if h > 23 || m > 59 {
        return None;
    }
    Some(sign * (h * 3600 + m * 60) as i32)
}

/// Parse `YYYY-MM-DD`, optionally followed by `T` or a space and `HH:MM[:SS]`, optionally followed by a
/// zone (`Z`, `+01:00`, `+0100`, `-05`). The zone is only accepted after a time.
pub fn parse_datetime(s: &str) -> Option<ParsedTime> {
    let (y, r) = digits(s, 4)?;
    let (mo, r) = digits(r.strip_prefix('-')?, 2)?;
    let (d, r) = digits(r.strip_prefix('-')?, 2)?;
    let date = |h, mi, sec| Civil::new(y as i32, mo as u8, d as u8, h, mi, sec);
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
        civil: date(h as u8, mi as u8, sec as u8)?,
        offset,
        precision,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn day_numbers_round_trip() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        for z in [
            -800_000, -1, 0, 1, 10_956, 11_016, 11_017, 20_000, 2_932_896,
        ] {
            let (y, m, d) = civil_from_days(z);
            assert_eq!(days_from_civil(y, m, d), z, "{z}");
        }
        assert_eq!(format_utc(1_794_650_400), "2026-11-14 10:00:00");
        assert_eq!(format_utc(951_782_400), "2000-02-29 00:00:00");
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
        assert_eq!(parse_datetime("2026-11-14T10:00Z").unwrap().offset, Some(0));
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
        ] {
            assert!(parse_datetime(bad).is_none(), "{bad} accepted");
        }
    }
}
