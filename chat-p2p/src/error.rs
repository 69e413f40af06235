//! The one error type of `chat-p2p`'s async shell.

use chat_core::{CoreError, ErrorCode};
use chat_transport::TransportError;

/// Why [`crate::join`] failed. The variant tells the caller what to do.
#[derive(Debug, thiserror::Error)]
pub enum P2pError {
    /// A socket could not be bound (listen address in use, multicast not available on the
    /// interface): change `--listen`, `--group` or `--interface`.
    #[error("cannot bind {what}: {source}")]
    Bind {
        /// Which socket (`"tcp listener"`, `"multicast group"`).
        what: &'static str,
        /// The underlying error.
        #[source]
        source: TransportError,
    },
    /// The group refused this node; the code says why (e.g. `name_taken`): pick another name.
    #[error("join refused ({code}): {reason}")]
    Refused {
        /// Machine-readable reason.
        code: ErrorCode,
        /// Human-readable explanation.
        reason: String,
    },
    /// None of the peers given (`--peer`) answered in time, and the node does not found a group on
    /// its own: check the addresses (or start the first node with `--found`).
    #[error("{}", no_group(peers, *waited))]
    NoGroup {
        /// The peers asked.
        peers: Vec<std::net::SocketAddr>,
        /// How long the node waited.
        waited: std::time::Duration,
    },
    /// The node neither joined nor founded a group in time (a bug or a stalled runtime): retry.
    #[error("not joined within {0:?}")]
    Timeout(std::time::Duration),
    /// The node task stopped before it joined.
    #[error("the node stopped before it joined")]
    Stopped,
    /// The group secret file cannot be used (missing, malformed, readable by others, or, when
    /// creating one, existing already): fix the file or make a new one.
    #[error("group secret {path}: {reason}", path = path.display())]
    Secret {
        /// The file.
        path: std::path::PathBuf,
        /// What is wrong.
        reason: String,
    },
}

impl P2pError {
    /// The machine-readable code to show the user.
    pub fn code(&self) -> ErrorCode {
        match self {
            P2pError::Refused { code, .. } => *code,
            P2pError::Bind { .. } | P2pError::Timeout(_) | P2pError::Stopped | P2pError::NoGroup { .. } => {
                ErrorCode::Disconnected
            }
            P2pError::Secret { .. } => ErrorCode::AuthFailed,
        }
    }
}

impl From<P2pError> for CoreError {
    fn from(e: P2pError) -> Self {
        match e {
            P2pError::Refused { code, reason } => CoreError::Rejected { code, message: reason },
            other => CoreError::Closed(other.to_string()),
        }
    }
}

/// Why no group was found: the peers asked (none for a quiet one-shot that listened for multicast).
fn no_group(peers: &[std::net::SocketAddr], waited: std::time::Duration) -> String {
    if peers.is_empty() {
        return format!("no group found: no coordinator answered within {waited:?}");
    }
    let peers: Vec<String> = peers.iter().map(ToString::to_string).collect();
    format!("no group found: none of the peers answered within {waited:?}: {}", peers.join(", "))
}
