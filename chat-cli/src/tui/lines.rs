//! Entries as rows of styled text for a width: the look of the message pane.
//!
//! ```text
//! 12:04 alice: hello everyone            a message: time (dim), name (its colour), body
//! 12:05 bob → you: psst                  a private message to you (highlighted)
//! 12:05 carol: a long line is wrapped at
//!   word boundaries, indented by two     soft wraps start with two spaces
//! 12:06 mallory: fine
//!   │ 12:06 alice: send me your password a line break in a body: "  │ " (still mallory's)
//! * bob joined #ops                      information
//! ! not_member: join #ops first          an error
//! ```
//!
//! Every untrusted text (names, bodies, rooms, server messages) goes through `safe_text::inline`
//! first, so no control character reaches the terminal, and a new entry always starts in the
//! first column while every other row starts with a space: a body cannot pass for another line.
//! Each name has a stable colour (a hash of its lower-case form picks one of [`PALETTE`]); your
//! own name is shown reversed, and a message that mentions you or is addressed to you in bold yellow.

use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use unicode_segmentation::UnicodeSegmentation;
use unicode_width::UnicodeWidthStr;

use super::view::Entry;
use crate::clock_text::TimeStyle;
use crate::safe_text::{body_lines, inline};

/// The colours names are drawn in (neither yellow, kept for mentions, nor red, kept for errors).
pub const PALETTE: [Color; 10] = [
    Color::Green,
    Color::Blue,
    Color::Magenta,
    Color::Cyan,
    Color::LightGreen,
    Color::LightBlue,
    Color::LightMagenta,
    Color::LightCyan,
    Color::LightYellow,
    Color::LightRed,
];

/// What starts a continuation line of a multi-line body.
pub const CONTINUATION: &str = "  │ ";

/// What starts a soft-wrapped row.
pub const WRAP_INDENT: &str = "  ";

/// How entries look: whose name is highlighted, how times are shown.
#[derive(Debug, Clone)]
pub struct Look {
    /// This user's name.
    pub me: String,
    /// The time prefix.
    pub times: TimeStyle,
}

/// The stable colour of a name (FNV-1a of its lower-case form).
pub fn name_colour(name: &str) -> Color {
    let hash = name
        .to_lowercase()
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
    PALETTE[(hash % PALETTE.len() as u64) as usize]
}

/// The style of a name: its colour, bold; reversed if it is yours.
pub fn name_style(name: &str, me: &str) -> Style {
    let style = Style::new().fg(name_colour(name)).add_modifier(Modifier::BOLD);
    if name.eq_ignore_ascii_case(me) || name.to_lowercase() == me.to_lowercase() {
        style.add_modifier(Modifier::REVERSED)
    } else {
        style
    }
}

/// The style of an information line.
pub const INFO: Style = Style::new().fg(Color::DarkGray);
/// The style of an error line.
pub const ERROR: Style = Style::new().fg(Color::Red);
/// The style of a body that mentions you.
pub const MENTION: Style = Style::new().fg(Color::Yellow).add_modifier(Modifier::BOLD);
/// The style of times and continuation marks.
pub const DIM: Style = Style::new().fg(Color::DarkGray);

/// One grapheme and its style.
type Cell = (String, Style);

fn cells(text: &str, style: Style, into: &mut Vec<Cell>) {
    into.extend(text.graphemes(true).map(|g| (g.to_string(), style)));
}

/// The logical lines of an entry (before wrapping), each a list of cells and how many of them are
/// its header (never a place to break).
fn logical(entry: &Entry, look: &Look) -> Vec<(Vec<Cell>, usize)> {
    let mut first = Vec::new();
    let mut header = 2;
    let mut more = Vec::new();
    match entry {
        Entry::Message { time, sender, to, body, mention } => {
            cells(&look.times.prefix(*time), DIM, &mut first);
            cells(&inline(sender), name_style(sender, &look.me), &mut first);
            if let Some(to) = to {
                cells(" → ", Style::new(), &mut first);
                let style = if to == "you" { name_style(&look.me, &look.me) } else { Style::new() };
                cells(&inline(to), style, &mut first);
            }
            cells(": ", Style::new(), &mut first);
            header = first.len();
            let style = if *mention { MENTION } else { Style::new() };
            let mut lines = body_lines(body).into_iter();
            cells(&lines.next().unwrap_or_default(), style, &mut first);
            for line in lines {
                let mut row = Vec::new();
                cells(CONTINUATION, DIM, &mut row);
                cells(&line, style, &mut row);
                more.push((row, CONTINUATION.chars().count()));
            }
        }
        Entry::Info(text) => cells(&format!("* {}", inline(text)), INFO, &mut first),
        Entry::Error(text) => cells(&format!("! {}", inline(text)), ERROR, &mut first),
    }
    std::iter::once((first, header)).chain(more).collect()
}

/// Wraps one logical line at `width` columns, at a space when there is one on the row after its
/// first `protected` cells (the header: time and name, or a continuation mark).
fn wrap(line: Vec<Cell>, protected: usize, width: usize, out: &mut Vec<Vec<Cell>>) {
    let indent = if width > WRAP_INDENT.len() + 1 { WRAP_INDENT.len() } else { 0 };
    let mut row: Vec<Cell> = Vec::new();
    let mut start = protected;
    let mut used = 0;
    for cell in line {
        let w = cell.0.width();
        if used + w > width && !row.is_empty() {
            let space = cell.0 == " ";
            // Break at this space, or after the last space of the row and carry the word over.
            let carry = match row.iter().rposition(|(g, _)| g == " ") {
                Some(at) if !space && at >= start => row.split_off(at + 1),
                _ => Vec::new(),
            };
            if !carry.is_empty() {
                row.pop();
            }
            out.push(std::mem::take(&mut row));
            row = vec![(" ".to_string(), Style::new()); indent];
            row.extend(carry);
            start = indent;
            used = row.iter().map(|(g, _)| g.width()).sum();
            if space {
                continue;
            }
        }
        used += w;
        row.push(cell);
    }
    out.push(row);
}

/// Joins cells of one style into spans.
fn spans(row: Vec<Cell>) -> Line<'static> {
    let mut spans: Vec<Span<'static>> = Vec::new();
    let mut text = String::new();
    let mut style = None;
    for (g, s) in row {
        if style.is_some_and(|current| current != s) {
            spans.push(Span::styled(std::mem::take(&mut text), style.unwrap_or_default()));
        }
        style = Some(s);
        text.push_str(&g);
    }
    if !text.is_empty() {
        spans.push(Span::styled(text, style.unwrap_or_default()));
    }
    Line::from(spans)
}

/// The rows of `entry` at `width` columns.
pub fn rows(entry: &Entry, look: &Look, width: u16) -> Vec<Line<'static>> {
    let width = usize::from(width.max(1));
    let mut out = Vec::new();
    for (line, protected) in logical(entry, look) {
        wrap(line, protected, width, &mut out);
    }
    out.into_iter().map(spans).collect()
}

/// How many rows `entry` takes at `width` columns.
pub fn row_count(entry: &Entry, look: &Look, width: u16) -> usize {
    rows(entry, look, width).len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn look() -> Look {
        Look { me: "alice".into(), times: TimeStyle::none() }
    }

    fn text(entry: &Entry, width: u16) -> Vec<String> {
        rows(entry, &look(), width).iter().map(|l| l.spans.iter().map(|s| s.content.as_ref()).collect()).collect()
    }

    fn message(sender: &str, body: &str) -> Entry {
        Entry::Message { time: 0, sender: sender.into(), to: None, body: body.into(), mention: false }
    }

    #[test]
    fn long_bodies_wrap_at_spaces_with_an_indent() {
        let e = message("bob", "the quick brown fox jumps over the lazy dog");
        assert_eq!(text(&e, 20), ["bob: the quick brown", "  fox jumps over the", "  lazy dog"]);
        let e = message("bob", "aaaaaaaaaaaaaaaaaaaaaaaaa");
        assert_eq!(text(&e, 12), ["bob: aaaaaaa", "  aaaaaaaaaa", "  aaaaaaaa"], "no space: cut anywhere");
        assert_eq!(text(&message("bob", "李李李李李"), 9), ["bob: 李李", "  李李李"], "wide characters");
    }

    #[test]
    fn hostile_text_is_escaped_and_cannot_pass_for_another_line() {
        let e = message("mallory", "fine\nalice: send me your password\u{1b}[2J\u{202e}");
        let shown = text(&e, 80);
        assert_eq!(shown, ["mallory: fine", "  │ alice: send me your password\\x1b[2J\\u{202e}"]);
        for row in rows(&e, &look(), 80) {
            for span in &row.spans {
                assert!(!span.content.chars().any(|c| c.is_control()), "{:?}", span.content);
            }
        }
    }

    #[test]
    fn names_keep_their_colour_and_yours_is_reversed() {
        assert_eq!(name_colour("bob"), name_colour("BOB"));
        let colours: std::collections::HashSet<_> = ["a", "b", "c", "d", "e", "f", "g"].map(name_colour).into();
        assert!(colours.len() > 2, "names spread over the palette");
        assert!(name_style("Alice", "alice").add_modifier.contains(Modifier::REVERSED));
        assert!(!name_style("bob", "alice").add_modifier.contains(Modifier::REVERSED));
        let e =
            Entry::Message { time: 0, sender: "bob".into(), to: Some("you".into()), body: "hi".into(), mention: true };
        let row = &rows(&e, &look(), 40)[0];
        let body = row.spans.last().unwrap();
        assert_eq!((body.content.as_ref(), body.style), ("hi", MENTION));
    }
}
