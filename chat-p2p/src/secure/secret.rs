//! The group secret: what every member of a private P2P group holds, the file it is kept in, and the
//! keys derived from it.
//!
//! ## The file
//!
//! ```text
//! # chat-p2p group secret v1: whoever holds this file can join the group. Keep it private (mode 0600).
//! 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
//! ```
//!
//! UTF-8 text: lines starting with `#` and blank lines are ignored; exactly one other line, 64 hex
//! digits (32 random bytes; upper case accepted). [`GroupSecret::create`] writes a fresh one with
//! mode 0600 and never overwrites a file. [`GroupSecret::load`] refuses, on Unix, a file that its
//! group or others may read or write (as OpenSSH refuses such a private key): a secret that others on
//! the machine can read is no secret. Both go through `private_file.rs`, as node key files do.
//!
//! ## Derived keys
//!
//! Nothing uses the 32 bytes directly: HKDF-SHA-256 (RFC 5869) with salt [`KDF_SALT`] derives one key
//! per use, so a key can never serve two purposes.
//!
//! | HKDF info        | key                                                                 |
//! |------------------|---------------------------------------------------------------------|
//! | `noise psk`      | the Noise pre-shared key of every TCP link (`secure/noise.rs`)       |
//! | `datagram aead`  | the XChaCha20-Poly1305 key of every discovery datagram (`secure/datagram.rs`) |
//! | `public id`      | [`GroupSecret::id`]: 8 bytes shown to users to compare secrets without revealing them |

use std::fmt;
use std::path::Path;

use hkdf::Hkdf;
use rand::RngCore;
use sha2::Sha256;

use super::private_file::{create_private, hex, parse_hex_key, read_private};
use crate::P2pError;

/// Bytes of a group secret.
pub const SECRET_LEN: usize = 32;
/// The HKDF salt: names the protocol, so keys of another protocol from the same bytes differ.
pub const KDF_SALT: &[u8] = b"distributed-chat p2p v1";
/// The first line [`GroupSecret::create`] writes.
pub const FILE_HEADER: &str =
    "# chat-p2p group secret v1: whoever holds this file can join the group. Keep it private (mode 0600).";

/// The secret every member of a private group holds. Its bytes are never printed (`Debug` hides
/// them); [`GroupSecret::id`] is the part that may be shown.
#[derive(Clone, PartialEq, Eq)]
pub struct GroupSecret([u8; SECRET_LEN]);

impl fmt::Debug for GroupSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "GroupSecret(id {})", self.id())
    }
}

/// The keys derived from a secret.
#[derive(Clone)]
pub(crate) struct DerivedKeys {
    /// The Noise pre-shared key.
    pub(crate) psk: [u8; 32],
    /// The datagram AEAD key.
    pub(crate) datagram: [u8; 32],
}

impl GroupSecret {
    /// A fresh secret from the operating system's random source.
    pub fn generate() -> Self {
        let mut bytes = [0u8; SECRET_LEN];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        GroupSecret(bytes)
    }

    /// A secret with these bytes (for tests and for programs that keep secrets elsewhere).
    pub fn from_bytes(bytes: [u8; SECRET_LEN]) -> Self {
        GroupSecret(bytes)
    }

    /// A short public identifier of the secret (16 hex digits): two nodes show the same one if and
    /// only if (with overwhelming probability) they hold the same secret. It reveals nothing of it.
    pub fn id(&self) -> String {
        let id: [u8; 8] = self.derive(b"public id");
        id.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The keys derived for each use.
    pub(crate) fn keys(&self) -> DerivedKeys {
        DerivedKeys { psk: self.derive(b"noise psk"), datagram: self.derive(b"datagram aead") }
    }

    fn derive<const N: usize>(&self, info: &[u8]) -> [u8; N] {
        let mut out = [0u8; N];
        // HKDF-SHA-256 expands up to 255 × 32 bytes; N is at most 32 here.
        Hkdf::<Sha256>::new(Some(KDF_SALT), &self.0).expand(info, &mut out).expect("HKDF output within its limit");
        out
    }

    /// The file's text: the header line and the hex line.
    pub fn to_file_text(&self) -> String {
        format!("{FILE_HEADER}\n{}\n", hex(&self.0))
    }

    /// Parses a secret file's text (see the module documentation); `Err` says what is wrong.
    pub fn parse(text: &str) -> Result<Self, String> {
        parse_hex_key(text, "secret").map(GroupSecret)
    }

    /// Reads the secret in `path`, refusing (on Unix) a file that its group or others may access.
    pub fn load(path: &Path) -> Result<Self, P2pError> {
        let bad = |reason: String| P2pError::Secret { path: path.to_path_buf(), reason };
        GroupSecret::parse(&read_private(path).map_err(bad)?).map_err(bad)
    }

    /// Writes a fresh secret to `path` (created with mode 0600; an existing file is never
    /// overwritten) and returns it.
    pub fn create(path: &Path) -> Result<Self, P2pError> {
        let secret = GroupSecret::generate();
        create_private(path, &secret.to_file_text())
            .map_err(|reason| P2pError::Secret { path: path.to_path_buf(), reason })?;
        Ok(secret)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_text_parses_back_and_hostile_texts_are_refused() {
        let secret = GroupSecret::from_bytes([7; 32]);
        let text = secret.to_file_text();
        assert!(text.starts_with(FILE_HEADER));
        assert_eq!(GroupSecret::parse(&text), Ok(secret.clone()));
        assert_eq!(GroupSecret::parse(&text.to_uppercase()), Ok(secret));
        for bad in ["", "# only a comment\n", "abc", &"0".repeat(63), &"0".repeat(65), &"g".repeat(64)] {
            assert!(GroupSecret::parse(bad).is_err(), "{bad:?}");
        }
        let two = format!("{}\n{}\n", "0".repeat(64), "1".repeat(64));
        assert!(GroupSecret::parse(&two).unwrap_err().contains("more than one"));
        // Multi-byte characters of the right byte length are not hex (and never sliced mid-character).
        assert!(GroupSecret::parse(&"é".repeat(32)).is_err());
    }

    #[test]
    fn keys_differ_per_use_and_per_secret_and_debug_hides_the_bytes() {
        let a = GroupSecret::from_bytes([1; 32]);
        let b = GroupSecret::from_bytes([2; 32]);
        let (ka, kb) = (a.keys(), b.keys());
        assert_ne!(ka.psk, ka.datagram);
        assert_ne!(ka.psk, kb.psk);
        assert_ne!(a.id(), b.id());
        assert_eq!(a.id().len(), 16);
        assert_eq!(format!("{a:?}"), format!("GroupSecret(id {})", a.id()));
        assert_ne!(GroupSecret::generate(), GroupSecret::generate());
    }

    #[cfg(unix)]
    #[test]
    fn create_writes_a_private_file_once_and_load_refuses_an_open_one() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("a temp dir");
        let path = dir.path().join("group.secret");
        let made = GroupSecret::create(&path).expect("created");
        assert_eq!(std::fs::metadata(&path).expect("exists").permissions().mode() & 0o777, 0o600);
        assert_eq!(GroupSecret::load(&path).expect("loads"), made);
        match GroupSecret::create(&path) {
            Err(P2pError::Secret { reason, .. }) => assert!(reason.contains("exists already"), "{reason}"),
            other => panic!("{other:?}"),
        }
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        match GroupSecret::load(&path) {
            Err(P2pError::Secret { reason, .. }) => assert!(reason.contains("mode 0644"), "{reason}"),
            other => panic!("{other:?}"),
        }
        assert!(GroupSecret::load(&dir.path().join("missing")).is_err());
    }
}
