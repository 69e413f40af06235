//! # chat-server
mod error;
pub mod record;
pub use error::ServerError;
