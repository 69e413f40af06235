//! User names: what a name may contain, how it is normalized, and when two names are the same name.
//!
//! | rule                        | why                                                                  |
//! |-----------------------------|----------------------------------------------------------------------|
//! | NFKC-normalized first       | `ｂｏｂ` (full width) and `ﬁ` (a ligature) are `bob` and `fi`          |
//! | 1 to [`MAX_NAME_LEN`] characters | bounded                                                           |
//! | letters, digits, `_` `-` `.` only | no whitespace, no `:` or `,` (the seed's `MSG:user:text` and `MULTICAST:a,b:text` use them), no control, format, zero-width or bidi characters, no symbols |
//! | letters and digits from UTS #39's identifier profile | no invisible "letters" such as U+3164 HANGUL FILLER |
//! | one script (or a script with Latin where that is usual: Han, Hiragana, Katakana, Hangul) | `аlice` with a Cyrillic `а` cannot pose as `alice` |
//!
//! Two names are the same name when one of their [`NameKey`]s is equal: the UTS #39 confusable
//! skeleton of the lower-cased name, and the lower-cased skeleton of the name as typed (so a capital
//! `I` still counts as an `l`). `ALICE`, `alice`, `aIice` (capital i) and `аlісе` (Cyrillic) are all
//! the same name. A name keeps the case its user chose for display. [`NameMap`] is a map with that
//! notion of equality.
//!
//! [`UserName::new`] applies every rule (user input, logins). Names decoded from the wire or the log
//! are checked only for what keeps them safe to parse and print (length, no whitespace, `:`, `,` or
//! control characters): a log written under older rules still replays, and an invalid name in a frame
//! is simply nobody. The server and the P2P coordinator admit a name only through [`UserName::new`].

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use serde::{Deserialize, Serialize, Serializer};
use unicode_normalization::UnicodeNormalization;
use unicode_security::{GeneralSecurityProfile, RestrictionLevel, RestrictionLevelDetection};

use crate::CoreError;

/// Longest accepted user name, in characters (after normalization).
pub const MAX_NAME_LEN: usize = 32;

/// Punctuation a name may contain besides letters and digits.
pub const NAME_PUNCTUATION: [char; 3] = ['_', '-', '.'];

/// A user name (see the module documentation for the rules).
///
/// ```
/// use chat_core::UserName;
/// assert_eq!(UserName::new("alice").unwrap().as_str(), "alice");
/// assert_eq!(UserName::new("ｂｏｂ").unwrap().as_str(), "bob");
/// assert!(UserName::new("al ice").is_err());
/// assert!(UserName::new("a:b").is_err());
/// assert!(UserName::new("alice\u{200B}").is_err());
/// assert!(UserName::new("ALICE").unwrap().same_as(&UserName::new("alice").unwrap()));
/// ```
///
/// Cloning a name is cheap (the characters are shared, not copied): a name travels in every message,
/// history entry and presence list.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(try_from = "String")]
pub struct UserName(Arc<str>);

impl Serialize for UserName {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        // As a string, the same bytes as before names were shared (wire and log formats unchanged).
        serializer.serialize_str(&self.0)
    }
}

/// The identity of a name for uniqueness: equal keys are the same name (case and look-alikes folded).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NameKey(String);

/// Why the characters of `name` are refused, if they are (the rules shared by every path).
fn unsafe_reason(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        Some("it is empty")
    } else if name.chars().count() > MAX_NAME_LEN {
        Some("it is longer than 32 characters")
    } else if name.chars().any(char::is_whitespace) {
        Some("it contains whitespace")
    } else if name.contains(':') || name.contains(',') {
        Some("it contains ':' or ','")
    } else if name.chars().any(char::is_control) {
        Some("it contains a control character")
    } else {
        None
    }
}

/// Zero-width, bidi and other format characters (general category Cf) a name might hide.
fn is_invisible(c: char) -> bool {
    matches!(c,
        '\u{00AD}' | '\u{034F}' | '\u{061C}' | '\u{115F}' | '\u{1160}' | '\u{17B4}' | '\u{17B5}'
        | '\u{180B}'..='\u{180F}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{206F}'
        | '\u{3164}' | '\u{FE00}'..='\u{FE0F}' | '\u{FEFF}' | '\u{FFA0}' | '\u{FFF9}'..='\u{FFFB}'
        | '\u{E0000}'..='\u{E0FFF}')
}

impl UserName {
    /// Normalizes `name` (NFKC) and checks every rule of the module documentation.
    pub fn new(name: impl Into<String>) -> Result<Self, CoreError> {
        let raw: String = name.into();
        let name: String = raw.nfkc().collect();
        let reason = unsafe_reason(&name).or_else(|| {
            if name.chars().any(is_invisible) {
                Some("it contains an invisible, zero-width or text-direction character")
            } else if name.chars().any(|c| !NAME_PUNCTUATION.contains(&c) && !c.is_alphanumeric()) {
                Some("it may contain only letters, digits, '_', '-' and '.'")
            } else if name.chars().any(|c| !NAME_PUNCTUATION.contains(&c) && !c.identifier_allowed()) {
                Some("it contains a letter or digit that is not allowed in names (Unicode UTS #39)")
            } else {
                let letters: String = name.chars().filter(|c| !NAME_PUNCTUATION.contains(c)).collect();
                (letters.as_str().detect_restriction_level() > RestrictionLevel::HighlyRestrictive)
                    .then_some("it mixes scripts (such as Latin and Cyrillic), so it could imitate another name")
            }
        });
        match reason {
            Some(reason) => Err(CoreError::InvalidName { name: raw, reason }),
            None => Ok(UserName(name.into())),
        }
    }

    /// Wraps a name decoded from the wire or the log: only the rules that keep it safe to parse and
    /// print are checked (see the module documentation).
    pub fn from_wire(name: String) -> Result<Self, CoreError> {
        match unsafe_reason(&name) {
            Some(reason) => Err(CoreError::InvalidName { name, reason }),
            None => Ok(UserName(name.into())),
        }
    }

    /// The name as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The keys that decide uniqueness: two names are the same name if they share one (see the
    /// module documentation). One or two keys.
    pub fn keys(&self) -> Vec<NameKey> {
        let folded: String = unicode_security::skeleton(&self.0.to_lowercase()).collect();
        let typed: String = unicode_security::skeleton(&self.0).collect::<String>().to_lowercase();
        if folded == typed { vec![NameKey(folded)] } else { vec![NameKey(folded), NameKey(typed)] }
    }

    /// Whether `self` and `other` are the same name (a shared key).
    pub fn same_as(&self, other: &UserName) -> bool {
        if self.0 == other.0 {
            return true;
        }
        let mine = self.keys();
        other.keys().iter().any(|k| mine.contains(k))
    }
}

impl TryFrom<String> for UserName {
    type Error = CoreError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        UserName::from_wire(value)
    }
}

impl From<UserName> for String {
    fn from(value: UserName) -> Self {
        value.0.to_string()
    }
}

impl FromStr for UserName {
    type Err = CoreError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        UserName::new(s)
    }
}

impl fmt::Display for UserName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for UserName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// A map from names to values where names that are the same name (see the module documentation)
/// are one entry. The stored name keeps its display form.
#[derive(Debug, Clone)]
pub struct NameMap<V> {
    keys: std::collections::HashMap<NameKey, UserName>,
    entries: std::collections::HashMap<UserName, V>,
}

impl<V> Default for NameMap<V> {
    fn default() -> Self {
        NameMap { keys: std::collections::HashMap::new(), entries: std::collections::HashMap::new() }
    }
}

impl<V> NameMap<V> {
    /// The registered name that `name` is the same name as, if any.
    pub fn find(&self, name: &UserName) -> Option<&UserName> {
        // A name registered exactly as given is its own entry (registered names never share a
        // key), which spares computing the skeletons on the hot path of every unicast.
        if let Some((registered, _)) = self.entries.get_key_value(name) {
            return Some(registered);
        }
        name.keys().iter().find_map(|k| self.keys.get(k))
    }

    /// The registered name and value for `name` (the same name), if any.
    pub fn get(&self, name: &UserName) -> Option<(&UserName, &V)> {
        let registered = self.find(name)?;
        self.entries.get_key_value(registered)
    }

    /// Like [`NameMap::get`], with the value mutable.
    pub fn get_mut(&mut self, name: &UserName) -> Option<(&UserName, &mut V)> {
        let registered = name.keys().iter().find_map(|k| self.keys.get(k))?;
        let value = self.entries.get_mut(registered)?;
        Some((registered, value))
    }

    /// The value of `registered`, a name exactly as registered (as [`NameMap::find`] returns it):
    /// no normalization, so cheaper than [`NameMap::get`].
    pub fn get_registered(&self, registered: &UserName) -> Option<&V> {
        self.entries.get(registered)
    }

    /// The value of `registered`, a name exactly as registered (as [`NameMap::find`] returns it):
    /// no normalization, so cheaper than [`NameMap::get_mut`].
    pub fn get_registered_mut(&mut self, registered: &UserName) -> Option<&mut V> {
        self.entries.get_mut(registered)
    }

    /// Registers `name`; if the same name is registered already, gives back the value (nothing changes).
    pub fn insert(&mut self, name: UserName, value: V) -> Result<(), V> {
        // The keys once (a login's hot path): taken if the name is registered or shares a key.
        let keys = name.keys();
        if self.entries.contains_key(&name) || keys.iter().any(|k| self.keys.contains_key(k)) {
            return Err(value);
        }
        for key in keys {
            self.keys.insert(key, name.clone());
        }
        self.entries.insert(name, value);
        Ok(())
    }

    /// Removes the entry of `name` (the same name); returns the registered name and its value.
    pub fn remove(&mut self, name: &UserName) -> Option<(UserName, V)> {
        let registered = self.find(name)?.clone();
        for key in registered.keys() {
            self.keys.remove(&key);
        }
        self.entries.remove_entry(&registered)
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there is no entry.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Every registered name and its value, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&UserName, &V)> {
        self.entries.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(name: &str) -> &'static str {
        match UserName::new(name) {
            Err(CoreError::InvalidName { reason, .. }) => reason,
            other => panic!("{name:?} gave {other:?}"),
        }
    }

    #[test]
    fn name_rules() {
        for ok in ["alice", "Bob_2", "ção", "x", &"a".repeat(32), "a.b-c_d", "Ünal", "李小龍", "张san", "ivan"] {
            assert_eq!(UserName::new(ok).unwrap().as_str(), ok);
        }
        let cases = [
            ("", "it is empty"),
            (&*"a".repeat(33), "it is longer than 32 characters"),
            ("a b", "it contains whitespace"),
            ("a\tb", "it contains whitespace"),
            ("a:b", "it contains ':' or ','"),
            ("a,b", "it contains ':' or ','"),
            ("a\u{7}b", "it contains a control character"),
        ];
        for (bad, why) in cases {
            assert_eq!(reason(bad), why, "{bad:?}");
        }
    }

    #[test]
    fn invisible_direction_and_symbol_characters_are_refused() {
        let invisible = "it contains an invisible, zero-width or text-direction character";
        for bad in ["alice\u{200B}", "al\u{200D}ice", "alice\u{202E}", "\u{2066}bob", "bo\u{00AD}b", "\u{3164}"] {
            assert_eq!(reason(bad), invisible, "{bad:?}");
        }
        for bad in ["bob!", "a@b", "x+y", "😀", "a/b", "[alice]"] {
            assert_eq!(reason(bad), "it may contain only letters, digits, '_', '-' and '.'", "{bad:?}");
        }
        assert_eq!(
            reason("\u{0430}lice"),
            "it mixes scripts (such as Latin and Cyrillic), so it could imitate another name"
        );
    }

    #[test]
    fn names_are_normalized_and_keys_fold_case_and_look_alikes() {
        assert_eq!(UserName::new("ｂｏｂ").unwrap().as_str(), "bob");
        assert_eq!(UserName::new("ﬁona").unwrap().as_str(), "fiona");
        let name = |s: &str| UserName::new(s).unwrap();
        let alice = name("alice");
        for same in ["ALICE", "Alice", "aIice", "alice"] {
            assert!(name(same).same_as(&alice), "{same}");
        }
        // All-Cyrillic look-alike of a Latin name: a valid single-script name, but the same name.
        assert!(name("\u{0430}\u{0435}").same_as(&name("ae")));
        assert!(name("\u{0430}\u{0435}").same_as(&name("AE")));
        assert!(!name("bob").same_as(&alice));
        // Display keeps the user's case.
        assert_eq!(UserName::new("ALICE").unwrap().to_string(), "ALICE");
    }

    #[test]
    fn a_name_map_holds_one_entry_per_name() {
        let name = |s: &str| UserName::new(s).unwrap();
        let mut map = NameMap::default();
        assert_eq!(map.insert(name("Alice"), 1), Ok(()));
        assert_eq!(map.insert(name("ALICE"), 2), Err(2));
        assert_eq!(map.insert(name("aIice"), 3), Err(3));
        assert_eq!(map.get(&name("alice")), Some((&name("Alice"), &1)), "found under its display form");
        assert_eq!(map.insert(name("bob"), 4), Ok(()));
        assert_eq!(map.remove(&name("ALICE")), Some((name("Alice"), 1)));
        assert_eq!(map.insert(name("alice"), 5), Ok(()));
        assert_eq!(map.len(), 2);
    }

    #[test]
    fn name_length_counts_characters_not_bytes() {
        // 32 two-byte characters are 64 bytes but a valid name.
        assert!(UserName::new("é".repeat(32)).is_ok());
        assert!(UserName::new("é".repeat(33)).is_err());
    }

    #[test]
    fn the_wire_accepts_what_older_rules_allowed_but_nothing_unsafe() {
        assert!(UserName::from_wire("bob!".into()).is_ok(), "a log written under older rules replays");
        assert!(UserName::from_wire("a b".into()).is_err());
        assert!(UserName::from_wire("a\u{1b}[2K".into()).is_err());
        assert!(UserName::try_from("al:ice".to_string()).is_err(), "decoding goes through from_wire");
    }
}
