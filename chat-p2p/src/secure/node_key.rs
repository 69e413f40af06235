//! A node's identity key: the static X25519 key pair its Noise links are authenticated with, which
//! the coordinator binds to its member ID and which offline messages are kept for
//! (`group/offline.rs`). Kept in a file, it outlives the process: the same user restarting gets
//! the same key, so it collects what was kept for it.
//!
//! ## The file
//!
//! ```text
//! # chat-p2p node key v1: the identity of one user's node. Keep it private (mode 0600).
//! # public 5c1f0e7a9b2d4c38
//! 3f0c4e7a9b2d4c385c1f0e7a9b2d4c383f0c4e7a9b2d4c385c1f0e7a9b2d4c38
//! ```
//!
//! Exactly the rules of a group secret file (`private_file.rs`): comments and blank lines ignored,
//! one line of 64 hex digits, the private key (the public key is derived from it, so a file cannot
//! name a public key its holder cannot prove); created with mode 0600 and never overwritten; a file
//! others may access, a malformed or oversized one is refused. An all-zero key (a zeroed file) is
//! refused too. The library reads no such file itself: a program loads it (`chat-cli` does, see its
//! `--key-file`) and hands the key over in [`crate::P2pConfig::key`].

use std::fmt;

use snow::params::DHChoice;
use snow::resolvers::{CryptoResolver, DefaultResolver};

use super::private_file::{hex, parse_hex_key};
use crate::protocol::PeerKey;

/// The first line [`NodeKey::to_file_text`] writes.
pub const KEY_FILE_HEADER: &str =
    "# chat-p2p node key v1: the identity of one user's node. Keep it private (mode 0600).";

/// A static X25519 key pair. `Debug` shows only the public half.
#[derive(Clone, PartialEq, Eq)]
pub struct NodeKey {
    private: [u8; 32],
    public: PeerKey,
}

impl fmt::Debug for NodeKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NodeKey(public {})", self.public)
    }
}

impl NodeKey {
    /// A fresh key pair from the operating system's random source.
    pub fn generate() -> Self {
        // The parameters are a constant (parsed in the tests); the random source failing is fatal
        // everywhere (as `rand::rngs::OsRng` treats it).
        let params = super::NOISE_PARAMS.parse().expect("valid Noise parameters");
        let pair = snow::Builder::new(params).generate_keypair().expect("the operating system's random source works");
        let mut private = [0u8; 32];
        private.copy_from_slice(&pair.private);
        NodeKey::from_private(private).expect("a generated key is never all zero")
    }

    /// The key pair of this private key (its public half derived, as Noise derives it); `None` for
    /// the all-zero key.
    pub fn from_private(private: [u8; 32]) -> Option<Self> {
        if private == [0; 32] {
            return None;
        }
        let mut dh = DefaultResolver.resolve_dh(&DHChoice::Curve25519).expect("snow's resolver has X25519");
        dh.set(&private);
        let mut public = [0u8; 32];
        public.copy_from_slice(dh.pubkey());
        Some(NodeKey { private, public: PeerKey(public) })
    }

    /// The public half: what other nodes see of this node's links.
    pub fn public(&self) -> PeerKey {
        self.public
    }

    /// The private half (for the Noise handshake).
    pub(crate) fn private(&self) -> &[u8; 32] {
        &self.private
    }

    /// The file's text: the header, the public key's short form as a comment, and the hex line.
    pub fn to_file_text(&self) -> String {
        format!("{KEY_FILE_HEADER}\n# public {}\n{}\n", self.public, hex(&self.private))
    }

    /// Parses a key file's text (see the module documentation); `Err` says what is wrong.
    pub fn parse(text: &str) -> Result<Self, String> {
        let private = parse_hex_key(text, "key")?;
        NodeKey::from_private(private).ok_or_else(|| "the key is all zeros (a damaged file)".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_text_parses_back_to_the_same_pair_and_hostile_texts_are_refused() {
        let key = NodeKey::generate();
        let text = key.to_file_text();
        assert!(text.starts_with(KEY_FILE_HEADER), "{text}");
        assert_eq!(NodeKey::parse(&text), Ok(key.clone()));
        assert_eq!(NodeKey::parse(&text.to_uppercase()), Ok(key.clone()));
        assert_ne!(key, NodeKey::generate());
        // Truncated, padded, doubled, not hex, zeroed, empty.
        let line = text.lines().last().expect("the hex line");
        let doubled = format!("{line}\n{line}\n");
        let zeros = "0".repeat(64);
        for bad in ["", "# nothing\n", &line[..63], &line[..32], &format!("{line}0"), &doubled, &"g".repeat(64), &zeros]
        {
            assert!(NodeKey::parse(bad).is_err(), "{bad:?}");
        }
        assert!(NodeKey::parse(&"é".repeat(32)).is_err());
        assert!(format!("{key:?}").starts_with("NodeKey(public "));
        assert!(!format!("{key:?}").contains(line), "Debug shows no private half");
    }

    #[test]
    fn the_public_half_is_the_one_noise_derives() {
        let params = crate::secure::NOISE_PARAMS.parse().expect("valid");
        let pair = snow::Builder::new(params).generate_keypair().expect("a pair");
        let mut private = [0u8; 32];
        private.copy_from_slice(&pair.private);
        let key = NodeKey::from_private(private).expect("not zero");
        assert_eq!(key.public().0.as_slice(), pair.public.as_slice());
        assert_eq!(NodeKey::from_private([0; 32]), None);
    }
}
