//! # chat-p2p
//!
//! The peer-to-peer topology (work in progress).

pub mod election;
pub mod membership;
pub mod ordering;
pub mod wire;
