//! Wall-clock times as people and programs read them: RFC 3339 in UTC with milliseconds for
//! `--json` (`2026-11-29T20:41:07.123Z`), and a local-time prefix for human output (`--time-format`,
//! default `%H:%M`; `--no-time` to hide it).

use chrono::format::{Item, StrftimeItems};
use chrono::{DateTime, Local, Utc};

/// The default human time format: local hours and minutes.
pub const DEFAULT_TIME_FORMAT: &str = "%H:%M";

/// `ms` milliseconds since the Unix epoch as RFC 3339 UTC with milliseconds; `None` for 0 (unknown:
/// a message from an older log).
pub fn rfc3339(ms: u64) -> Option<String> {
    if ms == 0 {
        return None;
    }
    let t = DateTime::<Utc>::from_timestamp_millis(i64::try_from(ms).ok()?)?;
    Some(t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
}

/// How human output shows times.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimeStyle {
    /// A checked `strftime` format, or `None` to show no time.
    format: Option<String>,
}

impl TimeStyle {
    /// No time shown.
    pub fn none() -> Self {
        TimeStyle { format: None }
    }

    /// Times shown with `format` (`strftime`, local time); `Err` says what is wrong with it.
    pub fn with_format(format: &str) -> Result<Self, String> {
        if format.is_empty() {
            return Err("the time format is empty (use --no-time to show no time)".into());
        }
        if StrftimeItems::new(format).any(|item| matches!(item, Item::Error)) {
            return Err(format!("{format:?} is not a strftime format (e.g. %H:%M or %Y-%m-%d %H:%M:%S)"));
        }
        Ok(TimeStyle { format: Some(format.to_string()) })
    }

    /// The prefix for a message ordered at `ms` (with a trailing space), or nothing.
    pub fn prefix(&self, ms: u64) -> String {
        let Some(format) = &self.format else { return String::new() };
        let Some(t) = i64::try_from(ms).ok().filter(|&ms| ms > 0).and_then(DateTime::<Utc>::from_timestamp_millis)
        else {
            return String::new();
        };
        format!("{} ", t.with_timezone(&Local).format(format))
    }
}

impl Default for TimeStyle {
    fn default() -> Self {
        TimeStyle { format: Some(DEFAULT_TIME_FORMAT.to_string()) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_times_are_utc_with_milliseconds() {
        assert_eq!(rfc3339(1_795_984_867_123).as_deref(), Some("2026-11-29T20:41:07.123Z"));
        assert_eq!(rfc3339(0), None);
    }

    #[test]
    fn bad_formats_are_refused_and_none_shows_nothing() {
        assert!(TimeStyle::with_format("%H:%M").is_ok());
        assert!(TimeStyle::with_format("%Q").is_err());
        assert!(TimeStyle::with_format("").is_err());
        assert_eq!(TimeStyle::none().prefix(1_795_984_867_123), "");
        assert_eq!(TimeStyle::default().prefix(0), "", "unknown time");
        let p = TimeStyle::with_format("%Y").unwrap().prefix(1_795_984_867_123);
        assert!(p == "2026 " || p == "2027 ", "{p}");
    }
}
