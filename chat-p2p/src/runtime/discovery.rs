//! The discovery group as the node task sees it: [`Discovery`], implemented by UDP multicast
//! ([`DiscoverySocket`]), by an in-memory group ([`MemoryGroup`]) and by nothing at all
//! ([`NoDiscovery`], for a node that joins through known peers), and the task that owns it.
//!
//! ```text
//!  driver ── Output::Multicast ──(bounded, try_send)──► discovery task ──encode (seal)──send──► group
//!  driver ◄──── Inbound::Datagram ──(try_send)──────── discovery task ◄──(open) decode──recv── group
//!  driver ◄──── Inbound::Untrusted ─(try_send)──────── (a datagram that could not be authenticated)
//! ```
//!
//! Without a secret a datagram is a bincode [`Envelope`]. With one it is sealed ([`Sealer`],
//! `secure/datagram.rs`) and opened only if it is authentic, stamped within the window of this
//! node's clock and not seen before ([`ReplayGuard`]); anything else is dropped and reported
//! (another secret, a plaintext datagram, a replay). A node without a secret that receives a sealed
//! datagram reports that a secret is required. Undecodable datagrams are dropped silently.
//!
//! Datagrams are lossy by nature: when either queue is full the datagram is dropped, as UDP would.

use std::future::Future;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chat_transport::discovery::{DiscoverySocket, MAX_DATAGRAM_LEN};
use chat_transport::memory::MemoryGroup;
use chat_transport::{TransportError, decode_payload, encode_payload};
use tokio::sync::mpsc;
use tracing::{debug, warn};

use super::Inbound;
use crate::node::{Channel, Untrusted};
use crate::protocol::Envelope;
use crate::secure::{DATAGRAM_WINDOW, ReplayGuard, SEAL_OVERHEAD, Sealer, is_sealed};

/// A socket in the discovery group, carrying raw datagrams (the discovery task encodes them).
pub trait Discovery: Send + 'static {
    /// Sends one datagram to every node in the group.
    fn send(&mut self, datagram: &[u8]) -> impl Future<Output = Result<(), TransportError>> + Send;

    /// The next datagram from the group (this node's own included, if the group loops them back),
    /// copied into `buf` (at least [`MAX_DATAGRAM_LEN`] bytes); its length.
    ///
    /// **Cancel-safe**: a datagram is either returned or left for the next call.
    fn recv(&mut self, buf: &mut [u8]) -> impl Future<Output = Result<usize, TransportError>> + Send;
}

impl Discovery for DiscoverySocket {
    async fn send(&mut self, datagram: &[u8]) -> Result<(), TransportError> {
        self.send_raw(datagram).await
    }

    async fn recv(&mut self, buf: &mut [u8]) -> Result<usize, TransportError> {
        Ok(self.recv_raw(buf).await?.0)
    }
}

impl Discovery for MemoryGroup {
    async fn send(&mut self, datagram: &[u8]) -> Result<(), TransportError> {
        if datagram.len() > MAX_DATAGRAM_LEN {
            return Err(TransportError::FrameTooLarge { len: datagram.len() as u64, max: MAX_DATAGRAM_LEN });
        }
        MemoryGroup::send(self, datagram);
        Ok(())
    }

    async fn recv(&mut self, buf: &mut [u8]) -> Result<usize, TransportError> {
        let (datagram, _) = MemoryGroup::recv(self).await?;
        let n = datagram.len().min(buf.len());
        buf[..n].copy_from_slice(&datagram[..n]);
        Ok(n)
    }
}

/// No discovery group: what a node that joins through known peers (`--peer`) uses. It sends
/// nothing (the node multicasts nothing then anyway) and never receives.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoDiscovery;

impl Discovery for NoDiscovery {
    async fn send(&mut self, _datagram: &[u8]) -> Result<(), TransportError> {
        Ok(())
    }

    async fn recv(&mut self, _buf: &mut [u8]) -> Result<usize, TransportError> {
        std::future::pending().await
    }
}

/// Milliseconds since the Unix epoch by this machine's clock (sealed datagrams are stamped with it).
fn wall_clock_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// How datagrams are encoded: plainly, or sealed with replays refused.
struct Codec {
    sealing: Option<(Sealer, ReplayGuard)>,
}

impl Codec {
    /// The datagram carrying `env`.
    fn encode(&self, env: &Envelope) -> Result<Vec<u8>, TransportError> {
        let payload = encode_payload(env)?;
        let overhead = if self.sealing.is_some() { SEAL_OVERHEAD } else { 0 };
        if payload.len() + overhead > MAX_DATAGRAM_LEN {
            return Err(TransportError::FrameTooLarge { len: payload.len() as u64, max: MAX_DATAGRAM_LEN });
        }
        Ok(match &self.sealing {
            Some((sealer, _)) => sealer.seal(wall_clock_ms(), &payload),
            None => payload.to_vec(),
        })
    }

    /// The envelope in `datagram`, `Err(Some(..))` if it could not be authenticated, `Err(None)` if
    /// it does not decode.
    fn decode(&mut self, datagram: &[u8]) -> Result<Envelope, Option<Untrusted>> {
        let payload = match &mut self.sealing {
            None if is_sealed(datagram) => return Err(Some(Untrusted::SecretRequired)),
            None => return decode_payload(datagram).map_err(|_| None),
            Some((sealer, guard)) => {
                let opened = match sealer.open(datagram) {
                    // A plaintext datagram counts only if it is one of ours (not stray traffic).
                    Err(Untrusted::Plaintext) => {
                        return Err(decode_payload::<Envelope>(datagram).is_ok().then_some(Untrusted::Plaintext));
                    }
                    other => other.map_err(Some)?,
                };
                let now = wall_clock_ms();
                if !guard.admit(now, opened.time_ms, opened.nonce) {
                    if opened.time_ms.abs_diff(now) > DATAGRAM_WINDOW.as_millis() as u64 {
                        warn!(
                            skew_ms = i128::from(opened.time_ms) - i128::from(now),
                            "a datagram stamped far from this clock (a replay, or clocks out of step): dropped"
                        );
                    }
                    return Err(Some(Untrusted::Replayed));
                }
                opened.payload
            }
        };
        decode_payload(&payload).map_err(|_| None)
    }
}

/// Sends what the driver multicasts and hands datagrams from other nodes to the driver (dropping
/// them if it is busy); ends when the driver is gone. With `sealer`, datagrams are sealed and
/// opened (see the module documentation).
pub(super) async fn discovery_task<G: Discovery>(
    mut socket: G,
    me: SocketAddr,
    mut outgoing: mpsc::Receiver<Envelope>,
    inbound: mpsc::Sender<Inbound>,
    sealer: Option<Sealer>,
) {
    let mut codec = Codec { sealing: sealer.map(|s| (s, ReplayGuard::default())) };
    let mut buf = vec![0u8; MAX_DATAGRAM_LEN];
    loop {
        tokio::select! {
            biased;
            msg = outgoing.recv() => match msg {
                Some(env) => {
                    let sent = match codec.encode(&env) {
                        Ok(datagram) => socket.send(&datagram).await,
                        Err(e) => Err(e),
                    };
                    if let Err(e) = sent {
                        debug!(error = %e, "multicast send failed");
                    }
                }
                None => return,
            },
            received = socket.recv(&mut buf) => {
                let item = match received {
                    Ok(n) => match codec.decode(&buf[..n]) {
                        Ok(env) if env.addr == me => continue, // our own datagram, looped back
                        Ok(env) => Inbound::Datagram(env),
                        Err(Some(what)) => Inbound::Untrusted { what, channel: Channel::Datagram },
                        Err(None) => {
                            debug!(len = n, "ignoring undecodable datagram");
                            continue;
                        }
                    },
                    Err(e) => {
                        debug!(error = %e, "multicast receive failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                if let Err(mpsc::error::TrySendError::Closed(_)) = inbound.try_send(item) {
                    return;
                }
            }
        }
    }
}
