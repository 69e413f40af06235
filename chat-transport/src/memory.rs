//! In-memory network for tests.
