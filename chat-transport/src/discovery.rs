//! UDP multicast discovery sockets.
//!
//! A node that joins knows only a multicast group. It sends a datagram to the group; every node
//! joined to the group on the same interface receives it. What the datagrams mean is decided by
//! the topology (chat-p2p); this module only moves typed values, encoded with the frame codec's
//! payload encoding ([`encode_payload`] / [`decode_payload`]), one value per datagram.
//!
//! ```text
//!   node A ──send_to(group)──► 239.255.42.99:PORT ──► every socket joined to the group
//!                              (TTL 1: never leaves the local link; loopback on by default)
//! ```
//!
//! Several nodes on one machine share the port: sockets are bound with `SO_REUSEADDR` and
//! `SO_REUSEPORT` before joining. The defaults keep traffic on the loopback interface
//! (`127.0.0.1`); set [`DiscoveryConfig::interface`] to a LAN address for real networks.

use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};

use serde::Serialize;
use serde::de::DeserializeOwned;
use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::UdpSocket;

use crate::TransportError;
use crate::codec::{decode_payload, encode_payload};

/// Largest datagram sent or accepted, in bytes (64 KiB, the UDP limit rounded down).
pub const MAX_DATAGRAM_LEN: usize = 64 * 1024 - 1;

/// The default group: an administratively scoped (site-local) address, never routed off-site.
pub const DEFAULT_GROUP: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(239, 255, 42, 99), 42_999);

/// Where and how to multicast.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiscoveryConfig {
    /// Multicast group and port (default [`DEFAULT_GROUP`]).
    pub group: SocketAddrV4,
    /// Local interface to join on and send from (default `127.0.0.1`: this machine only).
    pub interface: Ipv4Addr,
    /// IP time-to-live of sent datagrams (default 1: the local link only).
    pub ttl: u32,
    /// Whether this host's own sockets receive what it sends (default true: needed for several
    /// nodes on one machine).
    pub loopback: bool,
}

impl Default for DiscoveryConfig {
    fn default() -> Self {
        DiscoveryConfig { group: DEFAULT_GROUP, interface: Ipv4Addr::LOCALHOST, ttl: 1, loopback: true }
    }
}

impl DiscoveryConfig {
    /// The defaults with another group address and port.
    pub fn with_group(group: SocketAddrV4) -> Self {
        DiscoveryConfig { group, ..DiscoveryConfig::default() }
    }
}

/// A UDP socket joined to a multicast group, sending and receiving typed datagrams.
#[derive(Debug)]
pub struct DiscoverySocket {
    socket: UdpSocket,
    config: DiscoveryConfig,
}

impl DiscoverySocket {
    /// Binds the group's port (shared with other sockets on this host), joins the group on the
    /// configured interface and sets TTL and loopback. Must be called inside a tokio runtime.
    pub fn bind(config: DiscoveryConfig) -> Result<Self, TransportError> {
        let socket = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
        socket.set_reuse_address(true)?;
        #[cfg(unix)]
        socket.set_reuse_port(true)?;
        // Binding the group address (not 0.0.0.0) keeps unrelated unicast traffic to this port out.
        let bind = SocketAddrV4::new(*config.group.ip(), config.group.port());
        socket.bind(&SocketAddr::V4(bind).into())?;
        socket.join_multicast_v4(config.group.ip(), &config.interface)?;
        socket.set_multicast_if_v4(&config.interface)?;
        socket.set_multicast_ttl_v4(config.ttl)?;
        socket.set_multicast_loop_v4(config.loopback)?;
        socket.set_nonblocking(true)?;
        let socket = UdpSocket::from_std(socket.into())?;
        tracing::debug!(group = %config.group, interface = %config.interface, ttl = config.ttl, "joined multicast group");
        Ok(DiscoverySocket { socket, config })
    }

    /// The configuration this socket was bound with.
    pub fn config(&self) -> &DiscoveryConfig {
        &self.config
    }

    /// Sends `value` as one datagram to the group.
    pub async fn send<T: Serialize>(&self, value: &T) -> Result<(), TransportError> {
        let payload = encode_payload(value)?;
        if payload.len() > MAX_DATAGRAM_LEN {
            return Err(TransportError::FrameTooLarge { len: payload.len() as u64, max: MAX_DATAGRAM_LEN });
        }
        self.socket.send_to(&payload, SocketAddr::V4(self.config.group)).await?;
        Ok(())
    }

    /// The next datagram that decodes as `T`, with its source address. Datagrams that do not decode
    /// are skipped (traced), since anybody may send to a multicast group.
    ///
    /// **Cancel-safe**: a datagram is either received whole or left in the socket.
    pub async fn recv<T: DeserializeOwned>(&self) -> Result<(T, SocketAddr), TransportError> {
        let mut buf = vec![0u8; MAX_DATAGRAM_LEN];
        loop {
            let (len, from) = self.socket.recv_from(&mut buf).await?;
            match decode_payload(&buf[..len]) {
                Ok(value) => return Ok((value, from)),
                Err(e) => tracing::debug!(%from, len, error = %e, "ignoring undecodable datagram"),
            }
        }
    }

    /// Sends one raw datagram to the group (a topology that seals or encodes datagrams itself).
    pub async fn send_raw(&self, datagram: &[u8]) -> Result<(), TransportError> {
        if datagram.len() > MAX_DATAGRAM_LEN {
            return Err(TransportError::FrameTooLarge { len: datagram.len() as u64, max: MAX_DATAGRAM_LEN });
        }
        self.socket.send_to(datagram, SocketAddr::V4(self.config.group)).await?;
        Ok(())
    }

    /// Receives one raw datagram (for topologies that open datagrams themselves, tests and diagnostics).
    ///
    /// **Cancel-safe**: a datagram is either received whole or left in the socket.
    pub async fn recv_raw(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.socket.recv_from(buf).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use std::time::Duration;

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    struct Hello {
        name: String,
        port: u16,
    }

    fn test_group(port: u16) -> DiscoveryConfig {
        DiscoveryConfig::with_group(SocketAddrV4::new(Ipv4Addr::new(239, 255, 77, 1), port))
    }

    #[tokio::test]
    async fn two_sockets_exchange_a_datagram_on_loopback() {
        let config = test_group(47_311);
        assert_eq!(config.interface, Ipv4Addr::LOCALHOST);
        let a = DiscoverySocket::bind(config).unwrap();
        let b = DiscoverySocket::bind(config).unwrap();
        let hello = Hello { name: "alice".into(), port: 4000 };
        a.send(&hello).await.unwrap();
        let (got, from) = tokio::time::timeout(Duration::from_secs(5), b.recv::<Hello>()).await.unwrap().unwrap();
        assert_eq!(got, hello);
        assert!(from.ip().is_loopback(), "sent from {from}");
        // Loopback is on, so the sender hears itself too.
        let (own, _) = tokio::time::timeout(Duration::from_secs(5), a.recv::<Hello>()).await.unwrap().unwrap();
        assert_eq!(own, hello);
    }

    #[tokio::test]
    async fn garbage_datagrams_are_skipped() {
        let config = test_group(47_312);
        let a = DiscoverySocket::bind(config).unwrap();
        let b = DiscoverySocket::bind(config).unwrap();
        a.socket.send_to(&[0xff, 0xff, 0xff], SocketAddr::V4(config.group)).await.unwrap();
        let hello = Hello { name: "bob".into(), port: 1 };
        a.send(&hello).await.unwrap();
        let (got, _) = tokio::time::timeout(Duration::from_secs(5), b.recv::<Hello>()).await.unwrap().unwrap();
        assert_eq!(got, hello);
    }

    #[test]
    fn defaults_stay_on_this_machine() {
        let c = DiscoveryConfig::default();
        assert!(c.group.ip().is_multicast());
        assert_eq!(c.group.ip().octets()[..2], [239, 255]);
        assert_eq!(c.ttl, 1);
        assert!(c.loopback);
        assert_eq!(c.interface, Ipv4Addr::LOCALHOST);
    }
}
