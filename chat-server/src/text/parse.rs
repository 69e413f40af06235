//! What a text client sends, as the original server reads it: the bytes of one read are one message
//! (a line break also ends one), trimmed; a command is split at its first three colons.
//!
//! | line (trimmed)                      | parsed as                                                   |
//! |-------------------------------------|-------------------------------------------------------------|
//! | `<clock>:MSG:<user>:<text>`         | [`Command::Unicast`]                                        |
//! | `<clock>:MULTICAST:<u1,u2>:<text>`  | [`Command::Multicast`] (names trimmed, empty ones skipped)  |
//! | `<clock>:BROADCAST:<anything>:<text>` | [`Command::Broadcast`] (the original ignores the target, `ALL` by convention) |
//! | `<clock>:<COMMAND>:<target>`        | as above with an empty text (the original does the same)    |
//! | fewer than three fields, another command (commands are case-sensitive), a clock that is not digits | ignored (`None`) |
//! | a clock of digits beyond `u64`      | `u64::MAX`: the router refuses it as too far ahead          |
//! | bytes that are not UTF-8            | that line is ignored                                        |

/// A parsed command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Command<'a> {
    /// `MSG:<user>:<text>`.
    Unicast {
        /// The sender's clock.
        clock: u64,
        /// The addressee, as typed.
        to: &'a str,
        /// The text.
        text: &'a str,
    },
    /// `MULTICAST:<u1,u2>:<text>`.
    Multicast {
        /// The sender's clock.
        clock: u64,
        /// The addressees, as typed (trimmed, empty ones skipped).
        to: Vec<&'a str>,
        /// The text.
        text: &'a str,
    },
    /// `BROADCAST:ALL:<text>`.
    Broadcast {
        /// The sender's clock.
        clock: u64,
        /// The text.
        text: &'a str,
    },
}

/// The messages in the bytes of one read: split at line breaks, each trimmed; empty ones and ones
/// that are not UTF-8 are left out.
pub(super) fn messages(bytes: &[u8]) -> impl Iterator<Item = &str> {
    bytes
        .split(|b| *b == b'\n')
        .filter_map(|line| std::str::from_utf8(line).ok())
        .map(str::trim)
        .filter(|l| !l.is_empty())
}

/// A clock as the client sends it: ASCII digits only; beyond `u64` it saturates.
pub(super) fn clock(field: &str) -> Option<u64> {
    if field.is_empty() || !field.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(field.bytes().fold(0u64, |n, b| n.saturating_mul(10).saturating_add(u64::from(b - b'0'))))
}

/// The name in the line answering the prompt: `<clock>:<name>`, or a bare name (for a person typing
/// into `nc`); trimmed.
pub(super) fn name(line: &str) -> &str {
    match line.split_once(':') {
        Some((c, name)) if clock(c).is_some() => name.trim(),
        _ => line,
    }
}

/// The command in one line, or `None` if it is ignored (see the module table).
pub(super) fn command(line: &str) -> Option<Command<'_>> {
    let mut parts = line.splitn(4, ':');
    let (clock_field, command, target) = (parts.next()?, parts.next()?, parts.next()?);
    let text = parts.next().unwrap_or("");
    let clock = clock(clock_field)?;
    match command {
        "MSG" => Some(Command::Unicast { clock, to: target, text }),
        "MULTICAST" => {
            let to = target.split(',').map(str::trim).filter(|n| !n.is_empty()).collect();
            Some(Command::Multicast { clock, to, text })
        }
        "BROADCAST" => Some(Command::Broadcast { clock, text }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_read_is_one_message_and_line_breaks_end_messages_too() {
        let got: Vec<&str> = messages(b"  1:MSG:bob:hi there \r\n\n2:BROADCAST:ALL:x\n").collect();
        assert_eq!(got, ["1:MSG:bob:hi there", "2:BROADCAST:ALL:x"]);
        let got: Vec<&str> = messages(b"ok\n\xff\xfe bad\nfine").collect();
        assert_eq!(got, ["ok", "fine"], "a line that is not UTF-8 is left out, not the read");
        assert_eq!(messages(b" \t\r\n").count(), 0);
    }

    #[test]
    fn commands_split_at_the_first_three_colons() {
        assert_eq!(command("3:MSG:bob:a:b:c"), Some(Command::Unicast { clock: 3, to: "bob", text: "a:b:c" }));
        assert_eq!(
            command("4:MULTICAST: bob,,carol :hi"),
            Some(Command::Multicast { clock: 4, to: vec!["bob", "carol"], text: "hi" })
        );
        assert_eq!(command("5:BROADCAST:ALL:all of you"), Some(Command::Broadcast { clock: 5, text: "all of you" }));
        assert_eq!(command("5:BROADCAST:whatever:x"), Some(Command::Broadcast { clock: 5, text: "x" }));
        assert_eq!(command("6:MSG:bob"), Some(Command::Unicast { clock: 6, to: "bob", text: "" }));
    }

    #[test]
    fn what_the_original_ignores_or_crashes_on_is_ignored() {
        for ignored in [
            "CONNECT",
            "1:MSG",
            "MSG:bob:hi",
            "x:MSG:bob:hi",
            "-1:MSG:bob:hi",
            "1.5:MSG:bob:hi",
            "١:MSG:bob:hi", // an Arabic-Indic digit: not ASCII
            "1:msg:bob:hi",
            "1:SEND:bob:hi",
            ":MSG:bob:hi",
        ] {
            assert_eq!(command(ignored), None, "{ignored:?}");
        }
    }

    #[test]
    fn huge_clocks_saturate_instead_of_wrapping() {
        assert_eq!(clock("18446744073709551615"), Some(u64::MAX));
        assert_eq!(clock("99999999999999999999999999"), Some(u64::MAX));
        assert_eq!(clock("007"), Some(7));
        assert_eq!(clock(""), None);
        assert_eq!(clock("+7"), None);
    }

    #[test]
    fn the_name_line_may_carry_a_clock_or_not() {
        assert_eq!(name("3:alice"), "alice");
        assert_eq!(name("3: alice "), "alice");
        assert_eq!(name("alice"), "alice");
        assert_eq!(name("a:b"), "a:b", "not a clock: the whole line is the name (and refused)");
        assert_eq!(name("3:a:b"), "a:b");
    }
}
