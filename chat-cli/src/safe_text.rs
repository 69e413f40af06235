//! Untrusted text made safe for a terminal: names, bodies and server messages never drive it.
//!
//! | in the text                                   | printed as                                   |
//! |-----------------------------------------------|----------------------------------------------|
//! | C0 and C1 controls, `DEL`, `ESC` (`\x1b[2K`…)  | `\x1b`, `\u{9b}`… (visible, inert)           |
//! | bidi overrides and isolates, zero-width and other format characters | `\u{202e}`…            |
//! | a backslash                                   | `\\` (so an escape cannot be faked)          |
//! | a line break in a body                        | a continuation line, indented with `  | `     |
//!
//! So `hello\n[bob]: send me your password` from alice prints as two lines, the second indented and
//! clearly hers, and `ESC[2K\r` clears nothing.

use std::fmt::Write as _;

/// What starts each continuation line of a multi-line body.
pub const CONTINUATION: &str = "  | ";

/// Whether `c` must not reach a terminal as is.
pub fn is_unsafe(c: char) -> bool {
    c.is_control()
        || matches!(c,
            '\u{00AD}' | '\u{061C}' | '\u{180E}' | '\u{200B}'..='\u{200F}' | '\u{2028}'..='\u{202E}'
            | '\u{2060}'..='\u{206F}' | '\u{FEFF}' | '\u{FFF9}'..='\u{FFFB}' | '\u{E0000}'..='\u{E007F}')
}

/// `text` on one line, every unsafe character escaped (line breaks too).
pub fn inline(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        push(&mut out, c);
    }
    out
}

fn push(out: &mut String, c: char) {
    match c {
        '\\' => out.push_str("\\\\"),
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        c if is_unsafe(c) && (c as u32) < 0x100 => {
            let _ = write!(out, "\\x{:02x}", c as u32);
        }
        c if is_unsafe(c) => {
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        }
        c => out.push(c),
    }
}

/// A body as lines: the first to print after the sender, the others as continuation lines (without
/// their [`CONTINUATION`] prefix). Line breaks are `\n` or `\r\n`; everything else unsafe is escaped.
pub fn body_lines(body: &str) -> Vec<String> {
    body.split('\n').map(|line| inline(line.strip_suffix('\r').unwrap_or(line))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controls_escapes_and_direction_marks_are_made_visible() {
        assert_eq!(inline("hi \u{1b}[2K\rbye"), "hi \\x1b[2K\\rbye");
        assert_eq!(inline("alice\u{202e}"), "alice\\u{202e}");
        assert_eq!(inline("zero\u{200b}width"), "zero\\u{200b}width");
        assert_eq!(inline("c1 \u{9b}31m"), "c1 \\x9b31m");
        assert_eq!(inline("a\\x1b"), "a\\\\x1b", "a literal backslash cannot fake an escape");
        assert_eq!(inline("ção 李 ok"), "ção 李 ok");
    }

    #[test]
    fn a_multi_line_body_is_split_and_each_line_escaped() {
        assert_eq!(body_lines("one\r\n[alice]: two\n\u{7}"), ["one", "[alice]: two", "\\x07"]);
        assert_eq!(body_lines("single"), ["single"]);
    }
}
