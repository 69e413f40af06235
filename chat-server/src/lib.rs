//! chat-server
