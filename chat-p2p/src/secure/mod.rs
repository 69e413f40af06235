//! A group with a secret: only holders of the secret get in (issue "Only members get in").
//!
//! | module     | owns                                                                             |
//! |------------|----------------------------------------------------------------------------------|
//! | `secret`   | [`GroupSecret`]: the file format, creating and loading it, the keys derived (HKDF) |
//! | `noise`    | the Noise handshake of every TCP link ([`initiate`], [`respond`]) and [`NoiseStream`] |
//! | `datagram` | sealed discovery datagrams ([`Sealer`]) and the replay window ([`ReplayGuard`])   |
//! | `node_key` | [`NodeKey`]: a node's static key pair (its identity) and its file format          |
//! | `private_file` | creating (mode 0600, never overwriting) and reading (private, bounded) key files |
//!
//! Everything here belongs to the async shell (`runtime/`): the node core never sees a key or a
//! ciphertext. What it receives are facts: a frame came over a link authenticated as the holder of
//! static key `K` (`Input::Authenticated`), or some traffic could not be authenticated
//! (`Input::Untrusted`); it binds keys to member IDs and decides what those facts mean.
//!
//! [`Security`] is what one node holds: the keys derived from the secret and a static X25519 key
//! pair, its identity: the [`NodeKey`] the program hands over (`chat-cli` keeps one per user in a
//! file, so a user's identity outlives its process), or one drawn fresh when the node starts.

mod datagram;
mod node_key;
mod noise;
pub mod private_file;
mod secret;

pub use datagram::{
    DATAGRAM_MAGIC, DATAGRAM_VERSION, DATAGRAM_WINDOW, HEADER_LEN, MAX_REMEMBERED, Opened, ReplayGuard, SEAL_OVERHEAD,
    Sealer, is_sealed,
};
pub use node_key::{KEY_FILE_HEADER, NodeKey};
pub use noise::{
    HandshakeFailure, MAX_NOISE_MESSAGE, MAX_PLAINTEXT, NOISE_PARAMS, NoiseStream, PROLOGUE, initiate, respond,
};
pub use secret::{FILE_HEADER, GroupSecret, KDF_SALT, SECRET_LEN};

use crate::protocol::PeerKey;
use secret::DerivedKeys;

/// What one node of a group with a secret holds: the derived keys and its static key pair.
#[derive(Clone)]
pub struct Security {
    keys: DerivedKeys,
    private: [u8; 32],
    /// This node's static public key: the identity of its links.
    pub key: PeerKey,
    /// The secret's public ID ([`GroupSecret::id`]), for messages.
    pub secret_id: String,
}

impl std::fmt::Debug for Security {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Security").field("key", &self.key).field("secret_id", &self.secret_id).finish()
    }
}

impl Security {
    /// The keys of `secret` and a fresh static key pair.
    pub fn new(secret: &GroupSecret) -> Self {
        Security::with_key(secret, &NodeKey::generate())
    }

    /// The keys of `secret` and the static key pair `key`.
    pub fn with_key(secret: &GroupSecret, key: &NodeKey) -> Self {
        Security { keys: secret.keys(), private: *key.private(), key: key.public(), secret_id: secret.id() }
    }

    /// The sealer of this group's datagrams.
    pub fn sealer(&self) -> Sealer {
        Sealer::new(&self.keys.datagram)
    }
}
