//! Standard input as a bounded stream of lines for the line mode: the line editor of
//! `term::prompt` when standard input and output are a terminal, plain bounded lines otherwise (a
//! pipe, a file). The full-screen client reads the terminal itself (`tui`).

use std::io::IsTerminal;

use chat_core::MAX_BODY_LEN;
use tokio::sync::mpsc;
use tokio_util::codec::{FramedRead, LinesCodec, LinesCodecError};

use crate::render::Sink;
use crate::term::guard::Screen;
use crate::term::history::{self, HistoryFile};
use crate::term::prompt;

/// Longest accepted input line, in bytes.
pub const MAX_LINE: usize = MAX_BODY_LEN + 4096;

/// One line of input, or a line that was too long (its text is discarded).
pub type Line = Result<String, String>;

/// Standard input, started.
pub struct Input {
    /// The lines.
    pub lines: mpsc::Receiver<Line>,
    /// On a terminal: prints above the prompt without garbling it.
    pub sink: Option<Box<dyn Sink>>,
    /// On a terminal: the terminal in raw mode and the task reading it, stopped and given back
    /// when dropped.
    pub terminal: Option<Terminal>,
}

/// The terminal while the line mode reads it.
pub struct Terminal {
    reader: tokio::task::AbortHandle,
    _screen: Screen,
}

impl Drop for Terminal {
    fn drop(&mut self) {
        // Stop reading first, so nothing typed after the session is taken from the shell.
        self.reader.abort();
    }
}

/// Starts reading standard input: the line editor when standard input and output are terminals
/// (`term::prompt`, the terminal in raw mode until [`Input::terminal`] is dropped), bounded lines
/// otherwise.
pub fn start() -> Input {
    let (tx, lines) = mpsc::channel(64);
    if std::io::stdin().is_terminal()
        && std::io::stdout().is_terminal()
        && let Ok(screen) = Screen::enter(false)
    {
        let (sink, reader) = prompt::start(tx, history::default_path().map(HistoryFile::new));
        return Input { lines, sink: Some(sink), terminal: Some(Terminal { reader, _screen: screen }) };
    }
    tokio::spawn(read_pipe(tx));
    Input { lines, sink: None, terminal: None }
}

/// Asks one question on the terminal (cooked mode: the terminal edits the line) and returns the
/// answer, trimmed; `None` at the end of input. At most [`MAX_ANSWER`] bytes are read.
pub fn ask(question: &str) -> std::io::Result<Option<String>> {
    use std::io::{BufRead, Read, Write};
    let mut out = std::io::stdout().lock();
    write!(out, "{question}")?;
    out.flush()?;
    let mut answer = String::new();
    let read = std::io::stdin().lock().take(MAX_ANSWER as u64).read_line(&mut answer)?;
    Ok((read > 0).then(|| answer.trim().to_string()))
}

/// Longest answer [`ask`] reads, in bytes.
pub const MAX_ANSWER: usize = 1024;

async fn read_pipe(tx: mpsc::Sender<Line>) {
    let mut lines = FramedRead::new(tokio::io::stdin(), LinesCodec::new_with_max_length(MAX_LINE));
    loop {
        let next = std::future::poll_fn(|cx| futures_core::Stream::poll_next(std::pin::Pin::new(&mut lines), cx)).await;
        let line = match next {
            None => return,
            Some(Ok(line)) => Ok(line),
            Some(Err(LinesCodecError::MaxLineLengthExceeded)) => Err(format!("line longer than {MAX_LINE} bytes")),
            Some(Err(LinesCodecError::Io(_))) => return,
        };
        if tx.send(line).await.is_err() {
            return;
        }
    }
}
