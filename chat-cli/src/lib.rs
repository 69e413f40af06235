//! # chat-cli (library)
//!
//! The part of `chat-cli` that other packages reuse. The binary (`src/main.rs`) keeps its own
//! modules private; this library holds only what has a second user.
//!
//! | module      | owns                                                                            |
//! |-------------|---------------------------------------------------------------------------------|
//! | [`loadgen`] | the load generator of `chat-cli bench`, also driven by `fanbench` and the load tests of the `tests` package |

pub mod loadgen;
