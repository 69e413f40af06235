//! The one error type of `chat-core`.

use crate::ErrorCode;

/// Everything that can go wrong in `chat-core` and in a [`crate::Transport`].
///
/// Each variant tells the caller what to do: fix the input (`InvalidName`, `TooLong`, `EmptyRecipients`),
/// show the peer's refusal (`Rejected`), or stop using the chat (`Closed`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CoreError {
    /// A user name broke one of the rules of [`crate::UserName`]; the string says which.
    #[error("invalid user name {name:?}: {reason}")]
    InvalidName {
        /// The name as it was given.
        name: String,
        /// Which rule it broke.
        reason: &'static str,
    },
    /// A message body is longer than [`crate::MAX_BODY_LEN`] bytes.
    #[error("message body is {len} bytes, the limit is {max}")]
    TooLong {
        /// Length of the refused body in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A multicast named nobody.
    #[error("a multicast needs at least one recipient")]
    EmptyRecipients,
    /// The other side (server or coordinator) refused the request.
    #[error("{code}: {message}")]
    Rejected {
        /// Machine-readable reason.
        code: ErrorCode,
        /// Human-readable explanation.
        message: String,
    },
    /// The chat is closed (left, disconnected, or shut down); nothing more can be sent.
    #[error("chat closed: {0}")]
    Closed(String),
}

impl CoreError {
    /// The machine-readable code for this error, as used in `--json` error events.
    pub fn code(&self) -> ErrorCode {
        match self {
            CoreError::InvalidName { .. } => ErrorCode::InvalidName,
            CoreError::TooLong { .. } => ErrorCode::TooLong,
            CoreError::EmptyRecipients => ErrorCode::BadCommand,
            CoreError::Rejected { code, .. } => *code,
            CoreError::Closed(_) => ErrorCode::Disconnected,
        }
    }

    /// The human-readable explanation without the code (for output that shows the code apart, so
    /// it is not printed twice).
    pub fn message(&self) -> String {
        match self {
            CoreError::Rejected { message, .. } => message.clone(),
            other => other.to_string(),
        }
    }
}
