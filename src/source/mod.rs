//! Where sockets come from.

pub mod netlink;
