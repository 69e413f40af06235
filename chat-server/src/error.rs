//! The one error type of `chat-server`.

use std::path::PathBuf;

use chat_core::{CoreError, ErrorCode};
use chat_transport::TransportError;

/// Errors of the server topology (server, client, journal).
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// A socket or file operation failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// The wire layer failed (bad frame, version mismatch...).
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// The server refused or ended the session; the code says why (e.g. `name_taken`).
    #[error(transparent)]
    Core(#[from] CoreError),
    /// The journal in `dir` is damaged before its tail: refuse to start; inspect with `chat-cli log verify`.
    #[error("journal {path} is corrupt at byte {offset}: {reason}")]
    CorruptJournal {
        /// The journal file.
        path: PathBuf,
        /// Byte offset of the first bad record.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// Another process holds the data directory's lock (another server runs on it): stop that one,
    /// or use another `--data-dir`.
    #[error("the data directory {} is in use by another server{}", dir.display(), pid.map(|p| format!(" (pid {p})")).unwrap_or_default())]
    Locked {
        /// The data directory.
        dir: PathBuf,
        /// The process holding the lock, if it could be read.
        pid: Option<u32>,
    },
    /// The journal writer stopped (disk full, I/O error); the server cannot log and must stop.
    #[error("journal writer stopped: {0}")]
    JournalStopped(String),
    /// A configuration value could not be parsed (for instance `--fsync`): fix the setting.
    #[error("invalid {setting} value {value:?}: expected {expected}")]
    InvalidConfig {
        /// Which setting.
        setting: &'static str,
        /// The value as given.
        value: String,
        /// What is accepted.
        expected: &'static str,
    },
    /// An account operation was refused, or the accounts file is damaged; the reason says what to fix.
    #[error("{0}")]
    Account(String),
    /// TLS could not be set up or failed (a certificate or key that cannot be read, a refused or
    /// changed server certificate); the reason says what to fix.
    #[error("{0}")]
    Tls(String),
    /// The server could not be reached within the connect timeout.
    #[error("could not reach the server at {addr}: {reason}")]
    Unreachable {
        /// The address tried.
        addr: String,
        /// Why.
        reason: String,
    },
    /// Cluster mode: the NATS servers of `--cluster` could not be reached or refused what the
    /// cluster needs (a stream, a key-value bucket); the reason says what to fix.
    #[error("cluster: {0}")]
    Cluster(String),
    /// Cluster mode: the NATS server is older than 2.10, which this cluster refuses (2.9 loses
    /// acknowledged messages after a replica restart, see docs/DEPLOY.md): upgrade it.
    #[error(
        "cluster: nats-server {version} is too old: the cluster needs nats-server 2.10 or later (upgrade it; see docs/DEPLOY.md)"
    )]
    NatsTooOld {
        /// The version the server announced.
        version: String,
    },
}

impl ServerError {
    /// The machine-readable code to show the user (as in `--json` error events): the server's own
    /// refusal code for a refused login or request, `version_mismatch` for another protocol version,
    /// `bad_command` for a bad setting, `disconnected` for everything that means the server could not
    /// be reached or talked to.
    pub fn code(&self) -> ErrorCode {
        match self {
            ServerError::Core(e) => e.code(),
            ServerError::Transport(TransportError::VersionMismatch { .. }) => ErrorCode::VersionMismatch,
            ServerError::InvalidConfig { .. } => ErrorCode::BadCommand,
            ServerError::Account(_) => ErrorCode::AuthFailed,
            ServerError::Io(_)
            | ServerError::Transport(_)
            | ServerError::CorruptJournal { .. }
            | ServerError::Locked { .. }
            | ServerError::Tls(_)
            | ServerError::JournalStopped(_)
            | ServerError::Unreachable { .. }
            | ServerError::Cluster(_)
            | ServerError::NatsTooOld { .. } => ErrorCode::Disconnected,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_tell_the_user_what_happened() {
        let refused = ServerError::Core(CoreError::Rejected { code: ErrorCode::NameTaken, message: "x".into() });
        assert_eq!(refused.code(), ErrorCode::NameTaken);
        let version = ServerError::Transport(TransportError::VersionMismatch { ours: 1, theirs: 2 });
        assert_eq!(version.code(), ErrorCode::VersionMismatch);
        let unreachable = ServerError::Unreachable { addr: "127.0.0.1:1".into(), reason: "refused".into() };
        assert_eq!(unreachable.code(), ErrorCode::Disconnected);
    }
}
