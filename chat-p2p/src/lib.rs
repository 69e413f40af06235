//! # chat-p2p
//!
//! The peer-to-peer topology of the distributed chat: nodes discover each other by UDP
//! multicast, a coordinator elected with the Bully algorithm assigns IDs, keeps the member list,
//! sends heartbeats and sequences every chat message into one total order.
//!
//! | module       | owns                                                                        |
//! |--------------|-----------------------------------------------------------------------------|
//! | `election`   | the sans-IO Bully machine ([`election::Bully`]), its messages and terms       |
//! | `membership` | the group view and the term-block node-ID allocator                          |
//! | `ordering`   | sequencer (coordinator), member log, failover merge ([`ordering::plan_fills`]) |
//! | `wire`       | every protocol message ([`wire::Wire`]) and its envelope                     |
//! | `node`       | [`node::Node`]: join, heartbeats, failure detection, election, sequencing    |
//! | `sim`        | a seeded in-memory simulation of many nodes with crashes and partitions      |
//!
//! Status: the sans-IO core and its simulation are done; the async runtime over TCP/UDP
//! (`P2pTransport`, `join`) is not written yet.

pub mod election;
pub mod membership;
pub mod node;
pub mod ordering;
pub mod sim;
pub mod wire;
