//! UDP multicast discovery sockets.
