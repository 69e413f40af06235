//! Standard input as a bounded stream of lines: line editing when it is a terminal, plain bounded
//! lines when it is a pipe.

use std::io::IsTerminal;

use chat_core::MAX_BODY_LEN;
use tokio::sync::mpsc;
use tokio_util::codec::{FramedRead, LinesCodec, LinesCodecError};

use crate::render::Sink;

/// Longest accepted input line, in bytes.
pub const MAX_LINE: usize = MAX_BODY_LEN + 4096;

/// One line of input, or a line that was too long (its text is discarded).
pub type Line = Result<String, String>;

/// Starts reading standard input; returns the line stream and, on a terminal, a sink that prints
/// above the prompt without garbling it.
pub fn start() -> (mpsc::Receiver<Line>, Option<Box<dyn Sink>>) {
    let (tx, rx) = mpsc::channel(64);
    if std::io::stdin().is_terminal()
        && let Some(sink) = start_editor(tx.clone())
    {
        return (rx, Some(sink));
    }
    tokio::spawn(read_pipe(tx));
    (rx, None)
}

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

struct EditorSink(Box<dyn rustyline::ExternalPrinter + Send>);

impl Sink for EditorSink {
    fn line(&mut self, line: String) {
        let _ = self.0.print(format!("{line}\n"));
    }
}

fn start_editor(tx: mpsc::Sender<Line>) -> Option<Box<dyn Sink>> {
    let mut editor = rustyline::DefaultEditor::new().ok()?;
    let printer = editor.create_external_printer().ok()?;
    std::thread::spawn(move || {
        loop {
            match editor.readline("> ") {
                Ok(line) => {
                    if !line.trim().is_empty() {
                        let _ = editor.add_history_entry(line.as_str());
                    }
                    let line = if line.len() > MAX_LINE {
                        Err(format!("line longer than {MAX_LINE} bytes"))
                    } else {
                        Ok(line)
                    };
                    if tx.blocking_send(line).is_err() {
                        return;
                    }
                }
                // Ctrl-C or Ctrl-D: leave, like the end of piped input.
                Err(_) => return,
            }
        }
    });
    Some(Box::new(EditorSink(Box::new(printer))))
}
