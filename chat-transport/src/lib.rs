//! chat-transport
