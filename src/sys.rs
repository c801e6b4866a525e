//! The one place that knows where /proc is. Every read of /proc and
//! /proc/sys goes through a `ProcRoot`, so tests can point lsport at a
//! fixture tree instead of the live system.

use std::io;
use std::path::{Path, PathBuf};

/// Where /proc is: `/proc` itself by default, or a directory laid out
/// like it (a test fixture).
#[derive(Debug, Clone)]
pub struct ProcRoot {
    base: PathBuf,
}

impl Default for ProcRoot {
    fn default() -> Self {
        ProcRoot::new("/proc")
    }
}

impl ProcRoot {
    /// A root at `base` instead of `/proc`.
    pub fn new(base: impl Into<PathBuf>) -> ProcRoot {
        ProcRoot { base: base.into() }
    }

    /// The directory that stands for `/proc`.
    pub fn base(&self) -> &Path {
        &self.base
    }

    /// A path below the root, e.g. `path("sys/net/ipv4/ip_local_port_range")`.
    pub fn path(&self, relative: &str) -> PathBuf {
        self.base.join(relative)
    }

    /// Reads a file below the root, e.g. a sysctl under `sys/`, as text:
    /// at most a megabyte, and only from a regular or procfs file.
    pub fn read_to_string(&self, relative: &str) -> io::Result<String> {
        let bytes = crate::files::read_bounded(&self.path(relative), crate::files::SYSCTL_LIMIT)?;
        String::from_utf8(bytes).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
    }

    /// A per-task file of the calling thread, `thread-self/RELATIVE`;
    /// `RELATIVE` itself in trees without `thread-self` (fixtures). A
    /// network namespace belongs to a thread, and lsport probes other
    /// namespaces from threads that entered them, where `/proc/net` and
    /// `/proc/self` would still show the main thread's.
    pub fn thread_path(&self, relative: &str) -> PathBuf {
        let own = self.path("thread-self");
        if own.exists() {
            own.join(relative)
        } else {
            self.path(relative)
        }
    }

    /// The inode of the calling thread's network namespace, as in
    /// `readlink /proc/thread-self/ns/net` -> `net:[INODE]`.
    pub fn own_netns_inode(&self) -> Option<u64> {
        let link = std::fs::read_link(self.path("thread-self/ns/net"))
            .or_else(|_| std::fs::read_link(self.path("self/ns/net")))
            .ok()?;
        let text = link.to_str()?;
        text.strip_prefix("net:[")?.strip_suffix(']')?.parse().ok()
    }
}

/// How many CPUs this process may run on; 1 where that cannot be told.
/// The dumps, the join and the output use a second thread only when
/// there is a second CPU.
pub fn usable_cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}
