//! A group with a secret: only holders of the secret get in (issue "Only members get in").
//!
//! | module     | owns                                                                             |
//! |------------|----------------------------------------------------------------------------------|
//! | `secret`   | [`GroupSecret`]: the file format, creating and loading it, the keys derived (HKDF) |
//! | `noise`    | the Noise handshake of every TCP link ([`initiate`], [`respond`]) and [`NoiseStream`] |
//! | `datagram` | sealed discovery datagrams ([`Sealer`]) and the replay window ([`ReplayGuard`])   |
//!
//! Everything here belongs to the async shell (`runtime/`): the node core never sees a key or a
//! ciphertext. What it receives are facts: a frame came over a link authenticated as the holder of
//! static key `K` (`Input::Authenticated`), or some traffic could not be authenticated
//! (`Input::Untrusted`); it binds keys to member IDs and decides what those facts mean.
//!
//! [`Security`] is what one node holds: the keys derived from the secret and a static X25519 key
//! pair drawn fresh when the node starts (never stored: a node's identity lasts as long as its process).

mod datagram;
mod noise;
mod secret;

pub use datagram::{
    DATAGRAM_MAGIC, DATAGRAM_VERSION, DATAGRAM_WINDOW, HEADER_LEN, MAX_REMEMBERED, Opened, ReplayGuard, SEAL_OVERHEAD,
    Sealer, is_sealed,
};
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
        let keys = secret.keys();
        // The parameters are a constant (parsed in the tests); the key pair comes from the operating
        // system's random source, whose failure is fatal everywhere (as `rand::rngs::OsRng` treats it).
        let params = NOISE_PARAMS.parse().expect("valid Noise parameters");
        let pair = snow::Builder::new(params).generate_keypair().expect("the operating system's random source works");
        let mut private = [0u8; 32];
        private.copy_from_slice(&pair.private);
        let mut public = [0u8; 32];
        public.copy_from_slice(&pair.public);
        Security { keys, private, key: PeerKey(public), secret_id: secret.id() }
    }

    /// The sealer of this group's datagrams.
    pub fn sealer(&self) -> Sealer {
        Sealer::new(&self.keys.datagram)
    }
}
