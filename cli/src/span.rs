//! Durations and months as operators type them, and times and durations as the CLI prints them.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use cfinv_core::model::{parse_timestamp, timestamp};
use serde::{Serialize, Serializer};
use time::macros::format_description;
use time::{Date, Month, OffsetDateTime, UtcOffset};

/// Longer than any retention, and small enough that `now - d` never overflows.
const MAX_DAYS: u64 = 3650;

/// `90s`, `30m`, `1h`, `2d`, or units summed: `1h30m`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let invalid = || format!("invalid duration {text:?}: expected e.g. 90s, 30m, 1h, 2d or 1h30m");
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err(invalid());
    }
    if rest.starts_with('-') {
        return Err(format!(
            "invalid duration {text:?}: a duration is not negative (it counts back from now)"
        ));
    }
    let mut seconds: u64 = 0;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .ok_or_else(invalid)?;
        let number: u64 = rest[..digits].parse().map_err(|_| invalid())?;
        let unit = match rest[digits..].chars().next() {
            Some('s') => 1,
            Some('m') => 60,
            Some('h') => 3600,
            Some('d') => 86_400,
            _ => return Err(invalid()),
        };
        seconds = number
            .checked_mul(unit)
            .and_then(|s| s.checked_add(seconds))
            .filter(|&s| s <= MAX_DAYS * 86_400)
            .ok_or_else(|| format!("duration {text:?} is longer than {MAX_DAYS} days"))?;
        rest = &rest[digits + 1..];
    }
    Ok(Duration::from_secs(seconds))
}

/// An RFC 3339 time (`--from`, `--to`).
pub fn parse_time(text: &str) -> Result<OffsetDateTime, String> {
    parse_timestamp(text).ok_or_else(|| {
        format!("invalid time {text:?}: expected RFC 3339, e.g. 2026-11-25T10:00:00Z")
    })
}

/// `41.2s`, `3m05s`, `2h07m`, `3d04h`: precise while short, coarse when long.
pub fn human(d: Duration) -> String {
    let millis = d.as_millis();
    let tenths = (millis + 50) / 100;
    if tenths < 600 {
        return format!("{}.{}s", tenths / 10, tenths % 10);
    }
    let s = (millis + 500) / 1000;
    if s < 3600 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else if s < 86_400 {
        format!("{}h{:02}m", s / 3600, s / 60 % 60)
    } else {
        format!("{}d{:02}h", s / 86_400, s / 3600 % 24)
    }
}

/// The time from `a` to `b`; `None` if `b` is before `a`.
pub fn between(a: OffsetDateTime, b: OffsetDateTime) -> Option<Duration> {
    Duration::try_from(b - a).ok()
}

/// A stored time: printed as `YYYY-MM-DD HH:MM:SS` UTC, serialized as the table stores it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct At(pub OffsetDateTime);

impl fmt::Display for At {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let format = format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
        let text = self
            .0
            .to_offset(UtcOffset::UTC)
            .format(format)
            .map_err(|_| fmt::Error)?;
        f.write_str(&text)
    }
}

impl Serialize for At {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&timestamp(self.0))
    }
}

/// A calendar month in UTC (`--month 2026-11`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct YearMonth {
    pub year: i32,
    pub month: Month,
}

impl YearMonth {
    pub fn of(t: OffsetDateTime) -> Self {
        let t = t.to_offset(UtcOffset::UTC);
        Self {
            year: t.year(),
            month: t.month(),
        }
    }

    /// `[first instant, first instant of the next month)`.
    pub fn range(self) -> (OffsetDateTime, OffsetDateTime) {
        let start = |year, month| {
            Date::from_calendar_date(year, month, 1)
                .expect("the first of a month exists")
                .midnight()
                .assume_utc()
        };
        let next_year = if self.month == Month::December {
            self.year + 1
        } else {
            self.year
        };
        (
            start(self.year, self.month),
            start(next_year, self.month.next()),
        )
    }
}

impl fmt::Display for YearMonth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}", self.year, self.month as u8)
    }
}

impl Serialize for YearMonth {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl FromStr for YearMonth {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let invalid = || format!("invalid month {text:?}: expected YYYY-MM, e.g. 2026-11");
        let (year, month) = text.split_once('-').ok_or_else(invalid)?;
        if year.len() != 4 || month.len() != 2 {
            return Err(invalid());
        }
        let year = year.parse().map_err(|_| invalid())?;
        let month = month
            .parse::<u8>()
            .ok()
            .and_then(|m| Month::try_from(m).ok())
            .ok_or_else(invalid)?;
        Ok(Self { year, month })
    }
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    #[test]
    fn durations_parse_in_each_unit_and_summed() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("30m"), Ok(Duration::from_secs(1800)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("2d"), Ok(Duration::from_secs(172_800)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
    }

    #[test]
    fn bad_durations_are_rejected_with_an_example() {
        for bad in [
            "",
            "1",
            "h",
            "1x",
            "1.5h",
            "-1h",
            "1h 2m",
            "1hh",
            "99999999999999999999s",
        ] {
            let err = parse_duration(bad).unwrap_err();
            assert!(err.contains("duration"), "{bad:?}: {err}");
        }
        assert!(parse_duration("3651d").unwrap_err().contains("longer than"));
    }

    #[test]
    fn durations_print_short_and_precise_or_long_and_coarse() {
        assert_eq!(human(Duration::from_millis(41_200)), "41.2s");
        assert_eq!(human(Duration::from_millis(41_249)), "41.2s");
        assert_eq!(human(Duration::from_millis(41_250)), "41.3s");
        assert_eq!(human(Duration::ZERO), "0.0s");
        assert_eq!(human(Duration::from_millis(59_990)), "1m00s");
        assert_eq!(human(Duration::from_secs(185)), "3m05s");
        assert_eq!(human(Duration::from_secs(7620)), "2h07m");
        assert_eq!(human(Duration::from_secs(273_600)), "3d04h");
    }

    #[test]
    fn times_print_in_utc_and_serialize_as_stored() {
        let t = At(datetime!(2026-11-25 11:00:05.25 +01:00));
        assert_eq!(t.to_string(), "2026-11-25 10:00:05");
        assert_eq!(
            serde_json::to_string(&t).unwrap(),
            r#""2026-11-25T10:00:05.250Z""#
        );
        assert!(parse_time("2026-11-25T10:00:00Z").is_ok());
        assert!(parse_time("2026-11-25").unwrap_err().contains("RFC 3339"));
    }

    #[test]
    fn months_cover_their_days_and_december_rolls_over() {
        let nov: YearMonth = "2026-11".parse().unwrap();
        assert_eq!(
            nov.range(),
            (
                datetime!(2026-11-01 00:00 UTC),
                datetime!(2026-12-01 00:00 UTC)
            )
        );
        let dec: YearMonth = "2026-12".parse().unwrap();
        assert_eq!(dec.range().1, datetime!(2027-01-01 00:00 UTC));
        assert_eq!(dec.to_string(), "2026-12");
        assert_eq!(
            YearMonth::of(datetime!(2026-12-31 23:30 -01:00)).to_string(),
            "2027-01"
        );
        for bad in ["2026-13", "2026-1", "26-11", "2026/11", "november"] {
            assert!(bad.parse::<YearMonth>().is_err(), "{bad}");
        }
    }
}
