//! The one error type of `chat-transport`.

/// Errors of the wire layer. The variant tells the caller what to do.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// The socket failed; the connection is unusable: drop it (and maybe reconnect).
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// A frame's length prefix exceeds the limit; the peer is broken or hostile: close.
    #[error("frame of {len} bytes exceeds the limit of {max} bytes")]
    FrameTooLarge {
        /// Length claimed (or produced).
        len: u64,
        /// The limit.
        max: usize,
    },
    /// A frame's payload could not be decoded; the peer is broken or hostile: close.
    #[error("malformed frame: {0}")]
    Malformed(String),
    /// A value could not be encoded (a bug, or a value over a size limit).
    #[error("cannot encode frame: {0}")]
    Encode(String),
    /// The peer does not speak this protocol at all: close.
    #[error("the peer does not speak the chat protocol")]
    NotChatProtocol,
    /// The peer speaks another version of the protocol: close and tell the user.
    #[error("protocol version mismatch: we speak {ours}, the peer speaks {theirs}")]
    VersionMismatch {
        /// Our version.
        ours: u16,
        /// The peer's version.
        theirs: u16,
    },
    /// The peer closed the connection in the middle of a frame.
    #[error("connection closed in the middle of a frame")]
    Truncated,
    /// The peer closed the connection before the handshake completed.
    #[error("connection closed during the handshake")]
    ClosedDuringHandshake,
}
