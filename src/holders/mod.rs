//! Who holds a socket: the search for the processes behind socket
//! inodes, and what is read about them. [`kernel`] asks the kernel to
//! walk every task's fd table in one pass (a BPF iterator); the `/proc`
//! walk (`procfs`, run on worker threads by `overlap`) is the other
//! source, and the one used wherever the kernel's is unavailable.

pub mod cgroups;
pub mod container;
pub mod hidepid;
pub mod kernel;
pub mod mountinfo;
pub(crate) mod overlap;
pub mod process;
pub(crate) mod procfs;
pub mod unseen;
pub(crate) mod users;
