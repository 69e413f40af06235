//! The discovery group as the node task sees it: [`Discovery`], implemented by UDP multicast
//! ([`DiscoverySocket`]) and by an in-memory group ([`MemoryGroup`]), and the task that owns it.
//!
//! ```text
//!  driver ── Output::Multicast ──(bounded, try_send)──► discovery task ──send──► group
//!  driver ◄──── Inbound::Datagram ──(try_send)──────── discovery task ◄──recv── group
//! ```
//!
//! Datagrams are lossy by nature: when either queue is full the datagram is dropped, as UDP would.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use chat_transport::discovery::{DiscoverySocket, MAX_DATAGRAM_LEN};
use chat_transport::memory::MemoryGroup;
use chat_transport::{TransportError, decode_payload, encode_payload};
use tokio::sync::mpsc;
use tracing::debug;

use super::Inbound;
use crate::protocol::Envelope;

/// A socket in the discovery group, carrying one [`Envelope`] per datagram.
pub trait Discovery: Send + 'static {
    /// Sends `env` to every node in the group.
    fn send(&mut self, env: &Envelope) -> impl Future<Output = Result<(), TransportError>> + Send;

    /// The next envelope from the group (this node's own included, if the group loops them back).
    /// Datagrams that do not decode are skipped: anybody may send to a group.
    ///
    /// **Cancel-safe**: a datagram is either returned or left for the next call.
    fn recv(&mut self) -> impl Future<Output = Result<Envelope, TransportError>> + Send;
}

impl Discovery for DiscoverySocket {
    async fn send(&mut self, env: &Envelope) -> Result<(), TransportError> {
        DiscoverySocket::send(self, env).await
    }

    async fn recv(&mut self) -> Result<Envelope, TransportError> {
        Ok(DiscoverySocket::recv::<Envelope>(self).await?.0)
    }
}

impl Discovery for MemoryGroup {
    async fn send(&mut self, env: &Envelope) -> Result<(), TransportError> {
        let payload = encode_payload(env)?;
        if payload.len() > MAX_DATAGRAM_LEN {
            return Err(TransportError::FrameTooLarge { len: payload.len() as u64, max: MAX_DATAGRAM_LEN });
        }
        MemoryGroup::send(self, &payload);
        Ok(())
    }

    async fn recv(&mut self) -> Result<Envelope, TransportError> {
        loop {
            let (datagram, from) = MemoryGroup::recv(self).await?;
            match decode_payload(&datagram) {
                Ok(env) => return Ok(env),
                Err(e) => debug!(%from, len = datagram.len(), error = %e, "ignoring undecodable datagram"),
            }
        }
    }
}

/// Sends what the driver multicasts and hands datagrams from other nodes to the driver (dropping
/// them if it is busy); ends when the driver is gone.
pub(super) async fn discovery_task<G: Discovery>(
    mut socket: G,
    me: SocketAddr,
    mut outgoing: mpsc::Receiver<Envelope>,
    inbound: mpsc::Sender<Inbound>,
) {
    loop {
        tokio::select! {
            biased;
            msg = outgoing.recv() => match msg {
                Some(env) => {
                    if let Err(e) = socket.send(&env).await {
                        debug!(error = %e, "multicast send failed");
                    }
                }
                None => return,
            },
            received = socket.recv() => match received {
                Ok(env) if env.addr == me => {} // our own datagram, looped back
                Ok(env) => {
                    if let Err(mpsc::error::TrySendError::Closed(_)) = inbound.try_send(Inbound::Datagram(env)) {
                        return;
                    }
                }
                Err(e) => {
                    debug!(error = %e, "multicast receive failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
        }
    }
}
