//! lsport's two socket parsers, from its source tree.

#[path = "../../../src/source/netlink.rs"]
pub mod netlink;
#[path = "../../../src/source/procfs.rs"]
pub mod procfs;
