//! What both terminal front ends share: the full-screen client (`tui`) and the line mode
//! (`--plain`).
//!
//! | module     | owns                                                                      |
//! |------------|---------------------------------------------------------------------------|
//! | `guard`    | raw mode, the alternate screen, bracketed paste, and giving them back on every exit path (drop, panic hook) |
//! | `editor`   | the input line: editing keys, history, Tab completion (sans-IO)           |
//! | `complete` | which words Tab completes: commands, rooms, names                        |
//! | `history`  | the input history file (`$XDG_STATE_HOME/chat-cli/history`, 0600, bounded) |
//! | `prompt`   | the line mode's `> ` prompt on a raw terminal, output printed above it    |

pub mod complete;
pub mod editor;
pub mod guard;
pub mod history;
pub mod prompt;
