//! Presence in a crowd: who joined and left is announced to everybody while few enough are online.
//!
//! Every announced login reaches everybody online, so a storm of `n` logins costs `n²/2` notices
//! (50 million for 10,000 logins), and in a crowd the notices are noise nobody reads. So, as large
//! IRC channels and chat rooms do, joins and leaves are announced while at most
//! [`RouterConfig::presence_limit`](super::RouterConfig::presence_limit) users are online (not
//! counting quiet sessions); above it they are not, and `/who` still lists everybody.
//!
//! | online after the join / leave            | announced                                           |
//! |------------------------------------------|-----------------------------------------------------|
//! | join, still at most the limit            | `Joined`                                            |
//! | join, now above the limit (announcing)   | a `Notice` to everybody instead: joins and leaves stop being announced |
//! | join or leave while not announcing       | nothing                                             |
//! | leave, now at most [`resume_at`] (not announcing) | a `Notice` to everybody: they are announced again (the leave itself is not) |
//! | leave while announcing                   | `Left`                                              |
//!
//! Announcing resumes a tenth below the limit, so a crowd hovering at the limit does not make the
//! two notices alternate. A limit of 0 never announces (and never sends the notices).
//!
//! Lists of names are bounded too: a `Welcome` lists at most [`MAX_WELCOME_NAMES`] of who is online
//! and a `Peers` or `Who` answer at most [`MAX_LISTED_NAMES`] (the first ones, sorted), each followed
//! by a `Notice` saying how many were left out ([`cut`]). So a login in a crowd does not carry
//! everybody's name, and no list outgrows a frame (16 384 names of 32 characters would).

/// Default [`RouterConfig::presence_limit`](super::RouterConfig::presence_limit): joins and leaves
/// are announced while at most this many users are online.
pub const DEFAULT_PRESENCE_LIMIT: usize = 1000;

/// Most names one `Welcome` lists; more online: the first ones (sorted), then a `Notice`.
pub const MAX_WELCOME_NAMES: usize = 1000;

/// Most names one `Peers` or `Who` answer lists (4096 names of 32 characters stay well under
/// `chat_transport::MAX_FRAME_LEN`); more: the first ones (sorted), then a `Notice`.
pub const MAX_LISTED_NAMES: usize = 4096;

/// Keeps the first `max` of `names` (sorted); if some were left out, the notice that says so.
pub(super) fn cut<T>(names: &mut Vec<T>, max: usize) -> Option<String> {
    let total = names.len();
    if total <= max {
        return None;
    }
    names.truncate(max);
    Some(format!(
        "the list shows {max} of {total} names (the first, sorted); each /who or /peers lists at most {MAX_LISTED_NAMES}"
    ))
}

/// Whether joins and leaves are announced now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Presence {
    limit: usize,
    /// `None` until the first join or leave (then known from how many were online before it).
    announcing: Option<bool>,
}

/// What to tell everybody about one join or leave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Announce {
    /// The `Joined` / `Left` itself.
    It,
    /// Nothing.
    Nothing,
    /// This notice instead (announcing stopped or resumed).
    Notice(String),
}

/// Online count at or below which announcing resumes: a tenth below `limit`.
pub(super) fn resume_at(limit: usize) -> usize {
    limit - limit / 10
}

impl Presence {
    /// Announces while at most `limit` users are online.
    pub(super) fn new(limit: usize) -> Self {
        Presence { limit, announcing: None }
    }

    /// A user joined; `online` users are online now (including them).
    pub(super) fn joined(&mut self, online: usize) -> Announce {
        let announcing = *self.announcing.get_or_insert(online.saturating_sub(1) <= self.limit && self.limit > 0);
        if !announcing {
            return Announce::Nothing;
        }
        if online <= self.limit {
            return Announce::It;
        }
        self.announcing = Some(false);
        Announce::Notice(format!(
            "more than {} people are online: joins and leaves are no longer announced (/who lists who is online)",
            self.limit
        ))
    }

    /// A user left; `online` users are online now.
    pub(super) fn left(&mut self, online: usize) -> Announce {
        let announcing = *self.announcing.get_or_insert(online < self.limit && self.limit > 0);
        if announcing {
            return Announce::It;
        }
        if self.limit == 0 || online > resume_at(self.limit) {
            return Announce::Nothing;
        }
        self.announcing = Some(true);
        Announce::Notice(format!("{online} people are online: joins and leaves are announced again"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn notice(a: &Announce) -> bool {
        matches!(a, Announce::Notice(_))
    }

    #[test]
    fn announced_up_to_the_limit_then_one_notice_then_silence() {
        let mut p = Presence::new(10);
        for online in 1..=10 {
            assert_eq!(p.joined(online), Announce::It);
        }
        assert!(notice(&p.joined(11)));
        assert_eq!(p.joined(12), Announce::Nothing);
        assert_eq!(p.left(11), Announce::Nothing);
        assert_eq!(p.left(10), Announce::Nothing, "at the limit: not yet (a tenth below)");
        let back = p.left(9);
        assert_eq!(back, Announce::Notice("9 people are online: joins and leaves are announced again".into()));
        assert_eq!(p.left(8), Announce::It);
        assert_eq!(p.joined(9), Announce::It);
    }

    #[test]
    fn a_crowd_hovering_at_the_limit_gets_two_notices_not_one_per_join() {
        let mut p = Presence::new(100);
        for online in 1..=100 {
            p.joined(online);
        }
        let mut notices = 0;
        for _ in 0..50 {
            notices += usize::from(notice(&p.joined(101)));
            notices += usize::from(notice(&p.left(100)));
        }
        assert_eq!(notices, 1, "one notice when announcing stopped; it resumes only at {}", resume_at(100));
    }

    #[test]
    fn the_state_after_a_restart_follows_the_count() {
        // Restored with 50 online and a limit of 10: the next join is not announced.
        assert_eq!(Presence::new(10).joined(51), Announce::Nothing);
        assert_eq!(Presence::new(10).left(50), Announce::Nothing);
        // Restored with 5 online: announced.
        assert_eq!(Presence::new(10).joined(6), Announce::It);
        assert_eq!(Presence::new(10).left(4), Announce::It);
    }

    #[test]
    fn long_lists_are_cut_with_a_notice() {
        let mut names: Vec<u32> = (0..10).collect();
        assert_eq!(cut(&mut names, 10), None);
        assert_eq!(names.len(), 10);
        let notice = cut(&mut names, 4).expect("cut");
        assert_eq!(names, [0, 1, 2, 3]);
        assert!(notice.starts_with("the list shows 4 of 10 names"), "{notice}");
    }

    #[test]
    fn a_limit_of_zero_never_announces() {
        let mut p = Presence::new(0);
        assert_eq!(p.joined(1), Announce::Nothing);
        assert_eq!(p.left(0), Announce::Nothing);
        assert_eq!(p.joined(1), Announce::Nothing);
    }
}
