//! Drawing the full-screen client's state with ratatui.
//!
//! ```text
//! ┌ messages of the current view ───────────────────┬ side panel (60+ columns) ┐
//! │ 12:04 alice: hello                              │rooms                     │
//! │ * bob joined                                    │▸ everyone                │
//! │                                                 │  #ops 2!                 │
//! │ ── 3 new messages below (End) ───────────────── │people                    │
//! ├ input: `> ` or `#ops> `, 1 to 5 rows ───────────┴──────────────────────────┤
//! └ status: name · server or p2p node · link state          view · /help ─────┘
//! ```
//!
//! Everything untrusted is escaped (`safe_text`) before it is drawn; the input line holds only
//! what the editor let in (no control characters).

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph};
use unicode_segmentation::UnicodeSegmentation;
use unicode_width::UnicodeWidthStr;

use super::lines::{DIM, name_style, row_count, rows};
use super::state::{Link, Ui};
use super::view::View;
use crate::safe_text::inline;

/// Width of the side panel, its border included.
pub const SIDE_WIDTH: u16 = 24;
/// The narrowest screen that still shows the side panel.
pub const MIN_WIDTH_FOR_SIDE: u16 = 60;
/// Most rows the input box grows to.
pub const MAX_INPUT_ROWS: u16 = 5;

/// Where everything goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Areas {
    /// The message pane's (width, height).
    pub messages: (u16, u16),
    /// The message pane.
    pub message_rect: Rect,
    /// The side panel, if the screen is wide enough.
    pub side: Option<Rect>,
    /// The input box.
    pub input: Rect,
    /// The status bar.
    pub status: Rect,
}

/// The layout of a `size` screen with an input box of `input_rows`.
pub fn areas(size: (u16, u16), input_rows: u16) -> Areas {
    let (w, h) = size;
    let status = Rect::new(0, h.saturating_sub(1), w, h.min(1));
    let input_h = input_rows.min(h.saturating_sub(1));
    let input = Rect::new(0, status.y.saturating_sub(input_h), w, input_h);
    let body_h = input.y;
    let side_w = if w >= MIN_WIDTH_FOR_SIDE { SIDE_WIDTH } else { 0 };
    let message_rect = Rect::new(0, 0, w - side_w, body_h);
    let side = (side_w > 0 && body_h > 0).then(|| Rect::new(w - side_w, 0, side_w, body_h));
    Areas { messages: (message_rect.width, body_h), message_rect, side, input, status }
}

/// The prompt of the input box.
fn prompt(ui: &Ui) -> String {
    match &ui.views[ui.current].room {
        Some(room) => format!("{}> ", inline(room.as_str())),
        None => "> ".to_string(),
    }
}

/// The input text in rows of `width` columns after the prompt, and the cursor's (row, column).
pub fn input_layout(prompt: &str, text: &str, cursor: usize, width: u16) -> (Vec<String>, (usize, usize)) {
    let indent = prompt.width();
    let room = usize::from(width).saturating_sub(indent).max(1);
    let mut rows = vec![String::new()];
    let mut col = 0;
    let mut at = (0, 0);
    for (i, g) in text.grapheme_indices(true) {
        if i == cursor {
            at = (rows.len() - 1, col);
        }
        if g == "\n" {
            rows.push(String::new());
            col = 0;
            continue;
        }
        if col + g.width() > room {
            rows.push(String::new());
            col = 0;
            if i == cursor {
                at = (rows.len() - 1, 0);
            }
        }
        if let Some(row) = rows.last_mut() {
            row.push_str(g);
        }
        col += g.width();
    }
    if cursor >= text.len() {
        if col >= room {
            rows.push(String::new());
            col = 0;
        }
        at = (rows.len() - 1, col);
    }
    (rows, at)
}

/// Rows the input box needs at `width`.
pub fn input_rows(ui: &Ui, width: u16) -> u16 {
    let (rows, _) = input_layout(&prompt(ui), ui.editor.text(), ui.editor.cursor(), width);
    (rows.len() as u16).clamp(1, MAX_INPUT_ROWS)
}

/// Draws the whole screen.
pub fn draw(frame: &mut Frame<'_>, ui: &Ui) {
    let size = frame.area();
    let areas = areas((size.width, size.height), input_rows(ui, size.width));
    draw_messages(frame, ui, &ui.views[ui.current], areas.message_rect);
    if let Some(side) = areas.side {
        draw_side(frame, ui, side);
    }
    draw_input(frame, ui, areas.input);
    draw_status(frame, ui, areas.status);
}

fn draw_messages(frame: &mut Frame<'_>, ui: &Ui, view: &View, area: Rect) {
    let height = usize::from(area.height);
    if height == 0 || area.width == 0 {
        return;
    }
    let count = |e: &super::view::Entry| row_count(e, &ui.look, area.width);
    let entries: Vec<_> = view.entries().collect();
    // Scrolled back, the last row is the marker and the anchored row is just above it.
    let content = if view.following() { height } else { height - 1 };
    let mut shown: Vec<Line<'static>> = Vec::new();
    if let Some((index, row)) = view.bottom(&count) {
        // Upwards from the bottom row, then downwards if the top of the view came first.
        let mut above: Vec<Line<'static>> = rows(entries[index], &ui.look, area.width);
        let mut below = above.split_off(row + 1);
        let mut i = index;
        while above.len() < content && i > 0 {
            i -= 1;
            let mut more = rows(entries[i], &ui.look, area.width);
            more.append(&mut above);
            above = more;
        }
        let mut j = index + 1;
        while above.len() + below.len() < content && j < entries.len() {
            below.extend(rows(entries[j], &ui.look, area.width));
            j += 1;
        }
        let from = above.len().saturating_sub(content);
        shown = above.split_off(from);
        let room = content - shown.len();
        shown.extend(below.into_iter().take(room));
    }
    if !view.following() {
        let new = view.new_below();
        let text = if new > 0 {
            format!("── {new} new message(s) below (End) ")
        } else {
            "── more below (End) ".into()
        };
        let fill = usize::from(area.width).saturating_sub(text.width());
        let marker = Line::from(Span::styled(format!("{text}{}", "─".repeat(fill)), Style::new().fg(Color::Yellow)));
        shown.resize(content, Line::default());
        shown.push(marker);
    }
    frame.render_widget(Paragraph::new(shown), area);
}

fn draw_side(frame: &mut Frame<'_>, ui: &Ui, area: Rect) {
    let block = Block::new().borders(Borders::LEFT).border_style(DIM);
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let bold = Style::new().add_modifier(Modifier::BOLD);
    let mut lines = vec![Line::from(Span::styled("rooms", bold))];
    for (i, view) in ui.views.iter().enumerate() {
        let mark = if i == ui.current { "▸ " } else { "  " };
        let mut text = format!("{mark}{}", inline(view.title()));
        if view.unread > 0 {
            text.push_str(&format!(" {}", view.unread));
        }
        if view.mentions > 0 {
            text.push('!');
        }
        let style = if i == ui.current { bold.add_modifier(Modifier::REVERSED) } else { Style::new() };
        lines.push(Line::from(Span::styled(text, style)));
    }
    let view = &ui.views[ui.current];
    let people: Vec<&str> = view.people().collect();
    lines.push(Line::default());
    lines.push(Line::from(Span::styled(format!("people ({})", people.len()), bold)));
    for name in people {
        lines.push(Line::from(vec![Span::raw("  "), Span::styled(inline(name), name_style(name, &ui.look.me))]));
    }
    frame.render_widget(Paragraph::new(lines), inner);
}

fn draw_input(frame: &mut Frame<'_>, ui: &Ui, area: Rect) {
    if area.height == 0 {
        return;
    }
    let prompt = prompt(ui);
    let (rows, (row, col)) = input_layout(&prompt, ui.editor.text(), ui.editor.cursor(), area.width);
    // Keep the cursor's row in the box.
    let first = (row + 1).saturating_sub(usize::from(area.height));
    let indent = " ".repeat(prompt.width());
    let lines: Vec<Line<'static>> = rows
        .into_iter()
        .enumerate()
        .skip(first)
        .map(|(i, text)| {
            let head = if i == 0 {
                Span::styled(prompt.clone(), Style::new().add_modifier(Modifier::BOLD))
            } else {
                Span::raw(indent.clone())
            };
            Line::from(vec![head, Span::raw(text)])
        })
        .collect();
    frame.render_widget(Paragraph::new(lines), area);
    let x = area.x + u16::try_from(prompt.width() + col).unwrap_or(u16::MAX).min(area.width.saturating_sub(1));
    frame.set_cursor_position((x, area.y + (row - first) as u16));
}

fn draw_status(frame: &mut Frame<'_>, ui: &Ui, area: Rect) {
    let link = match ui.link {
        Link::Connected => "connected".to_string(),
        Link::Reconnecting(attempt) => format!("reconnecting {attempt}"),
        Link::Resumed(_) => "resumed".to_string(),
    };
    let mut left = format!(" {} · {}", inline(&ui.look.me), ui.place);
    if let Some(coordinator) = &ui.coordinator {
        left.push_str(&format!(" · coordinator {}", inline(coordinator)));
    }
    left.push_str(&format!(" · {link}"));
    if ui.waiting {
        left.push_str(" · waiting for the server");
    }
    let right = format!("{} · /help ", inline(ui.views[ui.current].title()));
    // The view's name on the right, if there is room for both.
    let text = match usize::from(area.width).checked_sub(left.width() + right.width()) {
        Some(gap) if gap > 0 => format!("{left}{}{right}", " ".repeat(gap)),
        _ => left,
    };
    frame.render_widget(Paragraph::new(Line::styled(text, Style::new().add_modifier(Modifier::REVERSED))), area);
}
