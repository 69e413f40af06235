use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use super::*;

fn key(code: KeyCode) -> KeyEvent {
    KeyEvent::new(code, KeyModifiers::NONE)
}

fn ctrl(c: char) -> KeyEvent {
    KeyEvent::new(KeyCode::Char(c), KeyModifiers::CONTROL)
}

fn typed(editor: &mut Editor, text: &str) {
    for c in text.chars() {
        editor.handle_key(key(KeyCode::Char(c)), &Vocabulary::default());
    }
}

fn press(editor: &mut Editor, k: KeyEvent) -> Edit {
    editor.handle_key(k, &Vocabulary::commands())
}

/// The text with `|` at the cursor.
fn shown(editor: &Editor) -> String {
    let (a, b) = editor.text().split_at(editor.cursor());
    format!("{a}|{b}")
}

#[test]
fn readline_keys_edit_where_the_cursor_is() {
    let mut e = Editor::new(false);
    typed(&mut e, "hello world");
    assert_eq!(shown(&e), "hello world|");
    press(&mut e, ctrl('w'));
    assert_eq!(shown(&e), "hello |");
    press(&mut e, ctrl('a'));
    typed(&mut e, "> ");
    assert_eq!(shown(&e), "> |hello ");
    press(&mut e, key(KeyCode::Right));
    press(&mut e, key(KeyCode::Delete));
    assert_eq!(shown(&e), "> h|llo ");
    press(&mut e, key(KeyCode::Backspace));
    assert_eq!(shown(&e), "> |llo ");
    press(&mut e, ctrl('k'));
    assert_eq!(shown(&e), "> |");
    press(&mut e, ctrl('u'));
    assert_eq!(shown(&e), "|");
    assert_eq!(press(&mut e, key(KeyCode::Backspace)), Edit::Nothing);
}

#[test]
fn the_cursor_moves_by_whole_characters() {
    let mut e = Editor::new(false);
    typed(&mut e, "ação 李");
    press(&mut e, key(KeyCode::Left));
    press(&mut e, key(KeyCode::Left));
    press(&mut e, key(KeyCode::Backspace));
    assert_eq!(shown(&e), "açã| 李");
    e.paste("e\u{301}");
    press(&mut e, key(KeyCode::Left));
    assert_eq!(shown(&e), "açã|e\u{301} 李", "a combining accent moves with its letter");
    press(&mut e, key(KeyCode::Delete));
    assert_eq!(shown(&e), "açã| 李", "and goes with it");
}

#[test]
fn enter_submits_and_the_history_keeps_the_draft() {
    let mut e = Editor::new(false);
    typed(&mut e, "first");
    assert_eq!(press(&mut e, key(KeyCode::Enter)), Edit::Submit("first".into()));
    typed(&mut e, "second");
    press(&mut e, key(KeyCode::Enter));
    press(&mut e, key(KeyCode::Enter));
    assert_eq!(e.history(), ["first", "second"], "blank lines are not kept");
    typed(&mut e, "draft");
    press(&mut e, key(KeyCode::Up));
    assert_eq!(shown(&e), "second|");
    press(&mut e, key(KeyCode::Up));
    press(&mut e, key(KeyCode::Up));
    assert_eq!(shown(&e), "first|");
    press(&mut e, key(KeyCode::Down));
    press(&mut e, key(KeyCode::Down));
    assert_eq!(shown(&e), "draft|");
    assert_eq!(press(&mut e, key(KeyCode::Down)), Edit::Nothing);
}

#[test]
fn ctrl_d_ends_only_an_empty_line_and_ctrl_c_interrupts() {
    let mut e = Editor::new(false);
    typed(&mut e, "ab");
    press(&mut e, key(KeyCode::Left));
    assert_eq!(press(&mut e, ctrl('d')), Edit::Changed);
    assert_eq!(shown(&e), "a|");
    assert_eq!(press(&mut e, ctrl('c')), Edit::Interrupt);
    press(&mut e, ctrl('u'));
    assert_eq!(press(&mut e, ctrl('d')), Edit::Eof);
}

#[test]
fn pastes_are_cleaned_and_line_breaks_kept_only_when_multi_line() {
    let mut multi = Editor::new(true);
    multi.paste("one\r\ntwo\rthree\tx\u{1b}[2J\u{7}\u{202e}\u{9b}");
    assert_eq!(multi.text(), "one\ntwo\nthree x[2J", "no control, bidi or invisible character gets in");
    assert_eq!(press(&mut multi, key(KeyCode::Char('\u{202e}'))), Edit::Nothing, "nor typed");
    press(&mut multi, KeyEvent::new(KeyCode::Enter, KeyModifiers::ALT));
    assert_eq!(multi.text(), "one\ntwo\nthree x[2J\n");
    let mut single = Editor::new(false);
    single.paste("one\ntwo");
    press(&mut single, KeyEvent::new(KeyCode::Enter, KeyModifiers::ALT));
    assert_eq!(single.text(), "", "Alt-Enter submits on a single-line editor");
}

#[test]
fn the_input_is_bounded() {
    let mut e = Editor::new(true);
    let big = "x".repeat(MAX_INPUT);
    assert_eq!(e.paste(&big), Edit::Changed);
    assert_eq!(press(&mut e, key(KeyCode::Char('y'))), Edit::TooLong);
    assert_eq!(e.paste("more"), Edit::TooLong);
    assert_eq!(e.text().len(), MAX_INPUT);
    let mut e = Editor::new(true).with_history((0..MAX_HISTORY + 10).map(|i| i.to_string()).collect());
    assert_eq!(e.history().len(), MAX_HISTORY);
    assert_eq!(e.history()[0], "10", "the oldest go first");
    typed(&mut e, "new");
    press(&mut e, key(KeyCode::Enter));
    assert_eq!(e.history().len(), MAX_HISTORY);
}

#[test]
fn tab_completes_and_cycles() {
    let words = Vocabulary { names: vec!["alice".into(), "albert".into()], ..Vocabulary::commands() };
    let mut e = Editor::new(false);
    typed(&mut e, "/ms");
    e.handle_key(key(KeyCode::Tab), &words);
    assert_eq!(shown(&e), "/msg |");
    typed(&mut e, "al");
    e.handle_key(key(KeyCode::Tab), &words);
    assert_eq!(shown(&e), "/msg albert|");
    e.handle_key(key(KeyCode::Tab), &words);
    assert_eq!(shown(&e), "/msg alice|");
    typed(&mut e, " hi");
    assert_eq!(e.handle_key(key(KeyCode::Tab), &words), Edit::Nothing);
    assert_eq!(shown(&e), "/msg alice hi|");
    e.handle_key(ctrl('u'), &words);
    typed(&mut e, "/mc bob,al");
    e.handle_key(key(KeyCode::Tab), &words);
    assert_eq!(shown(&e), "/mc bob,albert|", "a comma separates the names of a list");
}
