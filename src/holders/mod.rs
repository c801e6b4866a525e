//! Who holds a socket: the search for the processes behind socket
//! inodes. [`kernel`] asks the kernel to walk every task's fd table in
//! one pass (a BPF iterator); the `/proc` walk (`owners`) is the other
//! source, and the one used wherever the kernel's is unavailable.

pub mod kernel;
