//! Room names: `#` and 1 to [`MAX_ROOM_LEN`] letters, digits, `_`, `-` or `.`, case-insensitive.
//!
//! ```
//! use chat_core::RoomName;
//! let ops = RoomName::new("#Ops").unwrap();
//! assert_eq!(ops.as_str(), "#Ops");
//! assert_eq!(ops.key(), RoomName::new("#ops").unwrap().key());
//! assert!(RoomName::new("ops").is_err());
//! assert!(RoomName::new("#a b").is_err());
//! ```

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use unicode_normalization::UnicodeNormalization;

use crate::CoreError;

/// Longest room name, in characters after the `#`.
pub const MAX_ROOM_LEN: usize = 32;

/// A room's name, as its creator wrote it (the display form); compare rooms by [`RoomName::key`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RoomName(String);

/// A room's identity: its name in lower case (two names with the same key are the same room).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RoomKey(String);

impl RoomName {
    /// Normalizes (NFKC) and checks a room name.
    pub fn new(name: impl Into<String>) -> Result<Self, CoreError> {
        let raw: String = name.into();
        let name: String = raw.nfkc().collect();
        let reason = match name.strip_prefix('#') {
            None => Some("a room name starts with #"),
            Some("") => Some("it is empty after the #"),
            Some(rest) if rest.chars().count() > MAX_ROOM_LEN => Some("it is longer than 32 characters after the #"),
            Some(rest) if rest.chars().any(|c| !(c.is_alphanumeric() || matches!(c, '_' | '-' | '.'))) => {
                Some("it may contain only letters, digits, '_', '-' and '.' after the #")
            }
            Some(_) => None,
        };
        match reason {
            Some(reason) => Err(CoreError::InvalidName { name: raw, reason }),
            None => Ok(RoomName(name)),
        }
    }

    /// The name, `#` included.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The room's identity (case-insensitive).
    pub fn key(&self) -> RoomKey {
        RoomKey(self.0.to_lowercase())
    }

    /// Whether `self` and `other` name the same room.
    pub fn same_as(&self, other: &RoomName) -> bool {
        self.key() == other.key()
    }
}

impl TryFrom<String> for RoomName {
    type Error = CoreError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        RoomName::new(value)
    }
}

impl From<RoomName> for String {
    fn from(value: RoomName) -> Self {
        value.0
    }
}

impl FromStr for RoomName {
    type Err = CoreError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        RoomName::new(s)
    }
}

impl fmt::Display for RoomName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_rules() {
        for ok in ["#ops", "#Ops-2", "#a.b_c", "#équipe", &format!("#{}", "x".repeat(32))] {
            assert!(RoomName::new(ok).is_ok(), "{ok}");
        }
        for bad in ["ops", "#", "# ops", "#a:b", "#a,b", &format!("#{}", "x".repeat(33)), "#a\u{200b}"] {
            assert!(RoomName::new(bad).is_err(), "{bad:?}");
        }
        assert!(RoomName::new("#OPS").unwrap().same_as(&RoomName::new("#ops").unwrap()));
        assert_eq!(RoomName::new("#ｏｐｓ").unwrap().as_str(), "#ops", "normalized");
    }
}
