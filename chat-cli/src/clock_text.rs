//! Wall-clock times as people read them: a local-time prefix for human output (`--time-format`,
//! default `%H:%M`; `--no-time` to hide it). The `--json` times (RFC 3339 UTC with milliseconds) are
//! part of the shared JSON contract: `chat_server::json::rfc3339`.

use chrono::format::{Item, StrftimeItems};
use chrono::{DateTime, Local, Utc};

/// The default human time format: local hours and minutes.
pub const DEFAULT_TIME_FORMAT: &str = "%H:%M";

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
