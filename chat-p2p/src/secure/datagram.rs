//! Discovery datagrams of a group with a secret: sealed (authenticated and encrypted), stamped, and
//! never accepted twice.
//!
//! ```text
//!  0        4     5                 13                          37                      end
//!  ┌────────┬─────┬─────────────────┬───────────────────────────┬───────────────────────┐
//!  │ "DCHS" │ 1   │ time: u64 BE ms │ nonce: 24 random bytes    │ XChaCha20-Poly1305(    │
//!  │ magic  │ ver │ since the epoch │ (also the AEAD nonce)     │  bincode Envelope) +tag│
//!  └────────┴─────┴─────────────────┴───────────────────────────┴───────────────────────┘
//!   bytes 0..37 are the AEAD's associated data: authenticated, not encrypted
//! ```
//!
//! The key is the secret's `datagram aead` key (`secret.rs`); the 16-byte Poly1305 tag is the MAC:
//! a datagram that does not open under it was made without the secret. A plaintext datagram (a node
//! without a secret) is a bincode `Envelope`, whose first byte is an `Option` tag (0 or 1): it can
//! never start with the magic.
//!
//! Replay: a datagram is accepted only if its time is within [`DATAGRAM_WINDOW`] of the receiver's
//! clock and its nonce was not seen within the window ([`ReplayGuard`]). The guard remembers at most
//! [`MAX_REMEMBERED`] nonces; when full, it forgets the oldest and from then on refuses anything
//! stamped at or before it, so a forgotten nonce can never come back. Members' wall clocks must agree
//! within the window (NTP does far better).

use std::collections::{HashSet, VecDeque};
use std::time::Duration;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::RngCore;

use crate::node::Untrusted;

/// The first bytes of every sealed datagram.
pub const DATAGRAM_MAGIC: [u8; 4] = *b"DCHS";
/// The layout version.
pub const DATAGRAM_VERSION: u8 = 1;
/// How far a datagram's time may be from the receiver's clock, either way.
pub const DATAGRAM_WINDOW: Duration = Duration::from_secs(30);
/// Most nonces remembered (far above honest traffic: a beacon a second per coordinator and a join
/// request every two heartbeats per joiner, over a window of twice [`DATAGRAM_WINDOW`]).
pub const MAX_REMEMBERED: usize = 4096;
/// Bytes of the header (magic, version, time, nonce).
pub const HEADER_LEN: usize = 4 + 1 + 8 + NONCE_LEN;
/// Bytes a seal adds to the payload: the header and the tag.
pub const SEAL_OVERHEAD: usize = HEADER_LEN + 16;
const NONCE_LEN: usize = 24;

/// A datagram that opened: when it was sealed, its nonce, and the payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opened {
    /// The sender's clock when sealing, in milliseconds since the Unix epoch.
    pub time_ms: u64,
    /// The random nonce.
    pub nonce: [u8; NONCE_LEN],
    /// The encoded envelope.
    pub payload: Vec<u8>,
}

/// Seals and opens datagrams under one key.
#[derive(Clone)]
pub struct Sealer {
    cipher: XChaCha20Poly1305,
}

impl Sealer {
    /// A sealer for `key` (the secret's `datagram aead` key).
    pub fn new(key: &[u8; 32]) -> Self {
        Sealer { cipher: XChaCha20Poly1305::new(key.into()) }
    }

    /// Seals `payload`, stamped `time_ms`, with a fresh random nonce.
    pub fn seal(&self, time_ms: u64, payload: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        self.seal_with(time_ms, nonce, payload)
    }

    fn seal_with(&self, time_ms: u64, nonce: [u8; NONCE_LEN], payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(SEAL_OVERHEAD + payload.len());
        out.extend_from_slice(&DATAGRAM_MAGIC);
        out.push(DATAGRAM_VERSION);
        out.extend_from_slice(&time_ms.to_be_bytes());
        out.extend_from_slice(&nonce);
        let sealed = self.cipher.encrypt(XNonce::from_slice(&nonce), Payload { msg: payload, aad: &out });
        // Encryption fails only for messages beyond the cipher's limit (256 GiB).
        out.extend_from_slice(&sealed.unwrap_or_default());
        out
    }

    /// Opens a datagram: [`Untrusted::Plaintext`] if it is not sealed at all, [`Untrusted::OtherSecret`]
    /// if it is sealed but not under this key (or is damaged).
    pub fn open(&self, datagram: &[u8]) -> Result<Opened, Untrusted> {
        if !is_sealed(datagram) {
            return Err(Untrusted::Plaintext);
        }
        if datagram.len() < SEAL_OVERHEAD || datagram[4] != DATAGRAM_VERSION {
            return Err(Untrusted::OtherSecret);
        }
        let (header, body) = datagram.split_at(HEADER_LEN);
        let mut time = [0u8; 8];
        time.copy_from_slice(&header[5..13]);
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&header[13..HEADER_LEN]);
        let payload = self
            .cipher
            .decrypt(XNonce::from_slice(&nonce), Payload { msg: body, aad: header })
            .map_err(|_| Untrusted::OtherSecret)?;
        Ok(Opened { time_ms: u64::from_be_bytes(time), nonce, payload })
    }
}

/// Whether a datagram is in the sealed layout (whoever sealed it).
pub fn is_sealed(datagram: &[u8]) -> bool {
    datagram.starts_with(&DATAGRAM_MAGIC)
}

/// Refuses datagrams stamped outside the window and nonces seen before (see the module docs).
#[derive(Debug)]
pub struct ReplayGuard {
    window_ms: u64,
    max: usize,
    seen: HashSet<[u8; NONCE_LEN]>,
    /// Nonces in order of arrival, with their times.
    order: VecDeque<(u64, [u8; NONCE_LEN])>,
    /// Anything stamped at or before this is refused (the newest time forgotten for room).
    floor: u64,
}

impl Default for ReplayGuard {
    fn default() -> Self {
        ReplayGuard::new(DATAGRAM_WINDOW, MAX_REMEMBERED)
    }
}

impl ReplayGuard {
    /// A guard with this window, remembering at most `max` nonces.
    pub fn new(window: Duration, max: usize) -> Self {
        let window_ms = u64::try_from(window.as_millis()).unwrap_or(u64::MAX);
        ReplayGuard { window_ms, max: max.max(1), seen: HashSet::new(), order: VecDeque::new(), floor: 0 }
    }

    /// Whether a datagram stamped `time_ms` with `nonce` may be accepted at `now_ms` (both in
    /// milliseconds since the Unix epoch); if so, its nonce is remembered.
    pub fn admit(&mut self, now_ms: u64, time_ms: u64, nonce: [u8; NONCE_LEN]) -> bool {
        while let Some(&(t, n)) = self.order.front() {
            if t.saturating_add(self.window_ms) >= now_ms {
                break;
            }
            self.order.pop_front();
            self.seen.remove(&n);
        }
        if time_ms.abs_diff(now_ms) > self.window_ms || time_ms <= self.floor || self.seen.contains(&nonce) {
            return false;
        }
        if self.order.len() >= self.max
            && let Some((t, n)) = self.order.pop_front()
        {
            self.seen.remove(&n);
            self.floor = self.floor.max(t);
        }
        self.seen.insert(nonce);
        self.order.push_back((time_ms, nonce));
        true
    }

    /// Nonces remembered.
    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// Whether no nonce is remembered.
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_800_000_000_000;

    #[test]
    fn a_sealed_datagram_opens_under_its_key_only_and_any_change_is_detected() {
        let sealer = Sealer::new(&[1; 32]);
        let datagram = sealer.seal(NOW, b"join me");
        assert!(is_sealed(&datagram));
        assert_eq!(datagram.len(), SEAL_OVERHEAD + 7);
        let opened = sealer.open(&datagram).expect("opens");
        assert_eq!((opened.time_ms, opened.payload.as_slice()), (NOW, &b"join me"[..]));
        assert!(!datagram.windows(7).any(|w| w == b"join me"), "the payload is encrypted");
        assert_eq!(Sealer::new(&[2; 32]).open(&datagram), Err(Untrusted::OtherSecret));
        // Flip each byte in turn: the header (time, nonce) is authenticated as well as the body.
        for i in 5..datagram.len() {
            let mut bent = datagram.clone();
            bent[i] ^= 1;
            assert_eq!(sealer.open(&bent), Err(Untrusted::OtherSecret), "byte {i}");
        }
        assert_eq!(sealer.open(&datagram[..SEAL_OVERHEAD - 1]), Err(Untrusted::OtherSecret));
        assert_eq!(sealer.open(&[0, 1, 2]), Err(Untrusted::Plaintext));
        assert_eq!(sealer.open(&[]), Err(Untrusted::Plaintext));
        assert_ne!(sealer.seal(NOW, b"x")[13..HEADER_LEN], sealer.seal(NOW, b"x")[13..HEADER_LEN], "fresh nonces");
    }

    #[test]
    fn a_replay_within_the_window_and_anything_outside_it_are_refused() {
        let mut guard = ReplayGuard::default();
        let window = DATAGRAM_WINDOW.as_millis() as u64;
        assert!(guard.admit(NOW, NOW, [1; 24]));
        assert!(!guard.admit(NOW + 10, NOW, [1; 24]), "the same nonce again");
        assert!(guard.admit(NOW, NOW - window, [2; 24]), "at the edge of the window");
        assert!(!guard.admit(NOW, NOW - window - 1, [3; 24]), "too old");
        assert!(!guard.admit(NOW, NOW + window + 1, [4; 24]), "too far ahead");
        // Later, the first one has left the window: forgotten, and refused by its time anyway.
        assert!(!guard.admit(NOW + window + 1, NOW, [1; 24]));
        assert_eq!(guard.len(), 0);
        assert!(guard.is_empty());
    }

    #[test]
    fn when_full_the_guard_forgets_the_oldest_and_refuses_everything_up_to_it() {
        let mut guard = ReplayGuard::new(DATAGRAM_WINDOW, 3);
        for (k, t) in [(1u8, NOW - 5), (2, NOW - 4), (3, NOW - 3)] {
            assert!(guard.admit(NOW, t, [k; 24]));
        }
        assert!(guard.admit(NOW, NOW - 1, [4; 24]), "room made by forgetting nonce 1");
        assert_eq!(guard.len(), 3);
        assert!(!guard.admit(NOW, NOW - 5, [1; 24]), "the forgotten nonce cannot come back");
        assert!(!guard.admit(NOW, NOW - 6, [9; 24]), "nor anything as old");
        assert!(guard.admit(NOW, NOW - 2, [5; 24]), "newer ones still pass");
    }
}
