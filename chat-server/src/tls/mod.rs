//! TLS for the server topology (rustls, ring provider).
//!
//! | module        | owns                                                                            |
//! |---------------|---------------------------------------------------------------------------------|
//! | `fingerprint` | [`Fingerprint`]: `SHA256:<hex>` of a certificate, as printed and pinned          |
//! | `server`      | [`TlsServer`]: a certificate from files, or self-signed in the data directory    |
//! | `client`      | [`TlsClient`]: how a client trusts the server (a CA file, a pinned fingerprint, trust on first use) |
//! | `stream`      | [`MaybeTls`], [`Prefixed`]: one stream type for plain and TLS connections; the first byte put back |
//!
//! A server with TLS tells a client that speaks plaintext so, in one frame it can read (`Refused`
//! with "this server requires TLS"); a client with TLS that reaches a plaintext server gets an error
//! saying the server does not complete a TLS handshake.

mod client;
mod fingerprint;
mod server;
mod stream;

pub(crate) use client::server_name;
pub use client::{FirstUse, FirstUseSlot, KNOWN_SERVERS_FILE, TlsClient, Trust};
pub use fingerprint::Fingerprint;
pub use server::{TLS_DIR, TlsServer};
pub use stream::{MaybeTls, Prefixed};

/// The first byte of every TLS connection (a handshake record); a chat client's first byte is the
/// high byte of a small frame length, 0.
pub const TLS_HANDSHAKE_BYTE: u8 = 0x16;

fn provider() -> std::sync::Arc<tokio_rustls::rustls::crypto::CryptoProvider> {
    std::sync::Arc::new(tokio_rustls::rustls::crypto::ring::default_provider())
}
