//! # chat-p2p
//!
//! The peer-to-peer topology of the distributed chat: nodes discover each other by UDP
//! multicast (or join through known peers), a coordinator elected with the Bully algorithm when the
//! previous one fails assigns small IDs, sends heartbeats and sequences every chat message, join,
//! leave and room membership into one total order, in batches.
//!
//! | module       | owns                                                                        |
//! |--------------|-----------------------------------------------------------------------------|
//! | `election`   | the sans-IO Bully machine ([`election::Bully`]), its messages and terms       |
//! | `group`      | the replicated state: members, rooms, node IDs, offline queues ([`group::Group`], [`group::Change`]) |
//! | `membership` | the group view ([`membership::View`])                                        |
//! | `ordering`   | sequencer (coordinator), member log, failover merge ([`ordering::plan_fills`]) |
//! | `protocol`   | every protocol message ([`protocol::PeerMsg`]) and its envelope              |
//! | `node`       | [`node::Node`]: join, heartbeats, failure detection, election, sequencing, flood control ([`Limits`]) |
//! | `sim`        | a seeded in-memory simulation of many nodes with crashes and partitions      |
//! | `secure`     | groups with a secret: [`secure::GroupSecret`], node keys ([`secure::NodeKey`]), Noise links, sealed datagrams (shell only) |
//! | `runtime`    | the async shell: the node task, its links (bounded, idle ones closed) and discovery, generic over the network |
//! | `transport`  | [`join`] (TCP, multicast), [`join_on`] (in memory), [`P2pConfig`], [`P2pTransport`] |
//! | `error`      | [`P2pError`]                                                                 |
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use chat_core::{Chat, UserName};
//! let transport = chat_p2p::join(chat_p2p::P2pConfig::new(UserName::new("alice")?)).await?;
//! let mut chat = Chat::new(transport);
//! chat.broadcast("hello").await?;
//! # Ok(()) }
//! ```

pub mod election;
mod error;
pub mod group;
pub mod membership;
pub mod node;
pub mod ordering;
pub mod protocol;
pub mod runtime;
pub mod secure;
pub mod sim;
mod transport;

pub use error::P2pError;
pub use node::Limits;
pub use transport::{P2pConfig, P2pSender, P2pTransport, TIMEOUT_HEARTBEATS, join, join_on};
