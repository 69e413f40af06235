//! chat-p2p
