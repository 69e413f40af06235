//! The terminal's state, taken and always given back.
//!
//! [`Screen::enter`] puts the terminal in raw mode (both front ends: keys arrive one by one, nothing
//! is echoed) and, for the full-screen client, on the alternate screen with bracketed paste and the
//! cursor hidden. Everything is undone by [`restore`], which runs
//!
//! | exit path                                   | through                                      |
//! |---------------------------------------------|----------------------------------------------|
//! | `/quit`, Ctrl-C, Ctrl-D, server shutdown, connection loss, SIGTERM/SIGINT/SIGHUP | the front end's loop ends; [`Screen`] is dropped |
//! | an error returned anywhere below            | [`Screen`] is dropped while the error unwinds the stack |
//! | a panic                                     | the panic hook ([`Screen::enter`] installs it), before the message is printed |
//!
//! (SIGKILL cannot be caught: `stty sane` or `reset` then.) [`restore`] is idempotent, so the hook
//! and the drop may both run. While the full-screen client owns the terminal, log lines for a
//! terminal on standard error are dropped ([`LogWriter`]); redirect standard error to keep them.

use std::io::{IsTerminal, Write};
use std::sync::Once;
use std::sync::atomic::{AtomicU8, Ordering};

use crossterm::cursor::Show;
use crossterm::event::{DisableBracketedPaste, EnableBracketedPaste};
use crossterm::terminal::{EnterAlternateScreen, LeaveAlternateScreen, disable_raw_mode, enable_raw_mode};
use crossterm::{cursor::Hide, execute};

/// Nothing taken.
const NORMAL: u8 = 0;
/// Raw mode (the line mode).
const RAW: u8 = 1;
/// Raw mode, the alternate screen, bracketed paste, the cursor hidden (the full-screen client).
const FULL: u8 = 2;

/// What the terminal is in now (process-wide: there is one terminal).
static STATE: AtomicU8 = AtomicU8::new(NORMAL);

/// Holds the terminal; gives it back when dropped.
#[derive(Debug)]
#[must_use = "the terminal is given back when this is dropped"]
pub struct Screen(());

impl Screen {
    /// Takes the terminal: raw mode, and with `full_screen` the alternate screen, bracketed paste
    /// and a hidden cursor. On an error everything already done is undone.
    pub fn enter(full_screen: bool) -> std::io::Result<Screen> {
        install_panic_hook();
        enable_raw_mode()?;
        STATE.store(RAW, Ordering::SeqCst);
        if full_screen {
            STATE.store(FULL, Ordering::SeqCst);
            if let Err(e) = execute!(std::io::stdout(), EnterAlternateScreen, EnableBracketedPaste, Hide) {
                restore();
                return Err(e);
            }
        }
        Ok(Screen(()))
    }
}

impl Drop for Screen {
    fn drop(&mut self) {
        restore();
    }
}

/// Gives the terminal back as it was before [`Screen::enter`]: leaves the alternate screen, turns
/// bracketed paste off, shows the cursor, restores the saved terminal settings (echo, line editing,
/// signals). Does nothing if nothing was taken.
pub fn restore() {
    let state = STATE.swap(NORMAL, Ordering::SeqCst);
    if state == FULL {
        let mut out = std::io::stdout();
        let _ = execute!(out, DisableBracketedPaste, LeaveAlternateScreen, Show);
        let _ = out.flush();
    }
    if state == RAW {
        // The line mode's prompt: erase it, so the shell's prompt starts a clean line.
        let mut out = std::io::stdout();
        let _ = write!(out, "\r\x1b[2K");
        let _ = out.flush();
    }
    if state != NORMAL {
        let _ = disable_raw_mode();
    }
}

/// Whether the full-screen client owns the terminal.
pub fn full_screen() -> bool {
    STATE.load(Ordering::SeqCst) == FULL
}

fn install_panic_hook() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            restore();
            previous(info);
        }));
    });
}

/// Standard error for `tracing`, except while the full-screen client draws on the same terminal:
/// log lines would garble its screen, so they are dropped then (not when standard error is a file
/// or a pipe).
#[derive(Debug, Clone, Copy, Default)]
pub struct LogWriter;

/// Where one log line goes.
pub enum LogTarget {
    /// Standard error.
    Stderr(std::io::Stderr),
    /// Nowhere.
    Dropped,
}

impl Write for LogTarget {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            LogTarget::Stderr(e) => e.write(buf),
            LogTarget::Dropped => Ok(buf.len()),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            LogTarget::Stderr(e) => e.flush(),
            LogTarget::Dropped => Ok(()),
        }
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogWriter {
    type Writer = LogTarget;

    fn make_writer(&'a self) -> Self::Writer {
        let stderr = std::io::stderr();
        if full_screen() && stderr.is_terminal() { LogTarget::Dropped } else { LogTarget::Stderr(stderr) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_gives_the_terminal_back_before_its_message() {
        // No terminal here: pretend the full-screen client holds it (raw mode was never really
        // enabled, so giving it back touches nothing but the flag and a few escape sequences).
        install_panic_hook();
        STATE.store(FULL, Ordering::SeqCst);
        assert!(full_screen());
        let caught = std::panic::catch_unwind(|| panic!("boom"));
        assert!(caught.is_err());
        assert_eq!(STATE.load(Ordering::SeqCst), NORMAL, "the hook restored the terminal");
        restore();
        assert_eq!(STATE.load(Ordering::SeqCst), NORMAL, "restoring twice is harmless");
    }
}
