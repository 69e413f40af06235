//! # chat-p2p
//!
//! The peer-to-peer topology (work in progress).

pub mod election;
