//! Tab completion: which words complete the word before the cursor.
//!
//! | the word                          | completes to                                   |
//! |-----------------------------------|------------------------------------------------|
//! | `/…`, the first word of the line  | a command (`/join`, `/msg`, …)                  |
//! | `#…`                              | a room this client knows                       |
//! | anything else                     | a name this client knows (people online, in rooms) |
//!
//! Matching ignores case; candidates keep their own spelling and come sorted (case-insensitively),
//! without duplicates. A single candidate is followed by a space. Tab again replaces the candidate
//! with the next one, round the list.

/// The commands Tab completes (the line language of `commands`).
pub const COMMANDS: &[&str] =
    &["/all", "/help", "/history", "/join", "/mc", "/msg", "/part", "/peers", "/quit", "/rooms", "/switch", "/who"];

/// Most candidates one Tab offers (a list of thousands of names helps nobody).
pub const MAX_CANDIDATES: usize = 256;

/// What can be completed.
#[derive(Debug, Clone, Default)]
pub struct Vocabulary {
    /// Commands, with their `/`.
    pub commands: Vec<String>,
    /// Names of people.
    pub names: Vec<String>,
    /// Room names, with their `#`.
    pub rooms: Vec<String>,
}

impl Vocabulary {
    /// Just the commands (the line mode knows no names).
    pub fn commands() -> Self {
        Vocabulary { commands: COMMANDS.iter().map(|c| c.to_string()).collect(), ..Vocabulary::default() }
    }
}

/// A completion in progress: the candidates and which one is in the text at `start..end`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completion {
    /// Where the completed word starts (byte index).
    pub start: usize,
    /// Where the inserted candidate ends (byte index).
    pub end: usize,
    /// The candidates, sorted.
    pub candidates: Vec<String>,
    /// The one in the text.
    pub index: usize,
}

/// The candidates for `word` (sorted, deduplicated, at most [`MAX_CANDIDATES`]).
pub fn candidates(words: &Vocabulary, word: &str, first_word: bool) -> Vec<String> {
    let pool: &[String] = if word.starts_with('/') && first_word {
        &words.commands
    } else if word.starts_with('#') {
        &words.rooms
    } else {
        &words.names
    };
    let lower = word.to_lowercase();
    let mut found: Vec<String> = pool.iter().filter(|w| w.to_lowercase().starts_with(&lower)).cloned().collect();
    found.sort_by_key(|w| (w.to_lowercase(), w.clone()));
    found.dedup_by(|a, b| a.eq_ignore_ascii_case(b) || a == b);
    found.truncate(MAX_CANDIDATES);
    found
}

impl Completion {
    /// Starts completing `word`, which begins at byte `start`; `None` without candidates.
    pub fn start(words: &Vocabulary, word: &str, start: usize, first_word: bool) -> Option<Completion> {
        let candidates = candidates(words, word, first_word);
        if candidates.is_empty() {
            return None;
        }
        // `index` is advanced by `next` before the first use, so it starts one before 0.
        Some(Completion { start, end: start + word.len(), index: candidates.len() - 1, candidates }.next())
    }

    /// The next candidate, round the list.
    pub fn next(self) -> Completion {
        let index = (self.index + 1) % self.candidates.len();
        Completion { index, ..self }
    }

    /// The text that replaces `start..end`.
    pub fn replacement(&self) -> String {
        let word = &self.candidates[self.index];
        if self.candidates.len() == 1 { format!("{word} ") } else { word.clone() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words() -> Vocabulary {
        Vocabulary {
            names: vec!["alice".into(), "Albert".into(), "bob".into(), "alice".into()],
            rooms: vec!["#ops".into(), "#Off-topic".into()],
            ..Vocabulary::commands()
        }
    }

    #[test]
    fn commands_rooms_and_names_ignoring_case() {
        assert_eq!(candidates(&words(), "/j", true), ["/join"]);
        assert_eq!(candidates(&words(), "/m", true), ["/mc", "/msg"]);
        assert_eq!(candidates(&words(), "/m", false), Vec::<String>::new(), "a command only starts a line");
        assert_eq!(candidates(&words(), "#o", false), ["#Off-topic", "#ops"]);
        assert_eq!(candidates(&words(), "AL", false), ["Albert", "alice"], "sorted, once each");
        assert_eq!(candidates(&words(), "zed", false), Vec::<String>::new());
        assert_eq!(candidates(&words(), "", false), ["Albert", "alice", "bob"]);
    }

    #[test]
    fn tab_again_goes_round_the_candidates() {
        let c = Completion::start(&words(), "al", 5, false).unwrap();
        assert_eq!((c.start, c.end, c.replacement()), (5, 7, "Albert".to_string()));
        let c = c.next();
        assert_eq!(c.replacement(), "alice");
        assert_eq!(c.next().replacement(), "Albert");
        let one = Completion::start(&words(), "bo", 0, false).unwrap();
        assert_eq!(one.replacement(), "bob ", "a single candidate is followed by a space");
    }

    #[test]
    fn a_flood_of_names_offers_a_bounded_list() {
        let many = Vocabulary { names: (0..10_000).map(|i| format!("u{i}")).collect(), ..Vocabulary::default() };
        assert_eq!(candidates(&many, "u", false).len(), MAX_CANDIDATES);
    }
}
