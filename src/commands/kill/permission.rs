//! Whether the kernel would let lsport close sockets (SOCK_DESTROY),
//! asked before anything is closed so that a dry run predicts the real
//! run. The kernel closes a socket only for a caller with CAP_NET_ADMIN
//! in the user namespace that owns the socket's network namespace
//! (sock_diag_destroy's ns_capable): a caller has it there when it has
//! the capability in its own user namespace and that is the owner or an
//! ancestor of it, or when its euid created the owner from its own
//! namespace (the creator of a user namespace holds every capability in
//! it).

use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;

use crate::sys::ProcRoot;

/// CAP_NET_ADMIN's bit in the capability sets.
const CAP_NET_ADMIN: u32 = 12;
/// ioctl(2) requests on a namespace file (include/uapi/linux/nsfs.h):
/// _IO(0xb7, 1), _IO(0xb7, 2) and _IO(0xb7, 4).
const NS_GET_USERNS: u64 = 0xb701;
const NS_GET_PARENT: u64 = 0xb702;
const NS_GET_OWNER_UID: u64 = 0xb704;

/// Whether the calling thread may close sockets of the network
/// namespace it is in.
pub fn may_close_sockets(root: &ProcRoot) -> bool {
    let capable_here = std::fs::read(root.thread_path("status"))
        .ok()
        .and_then(|status| effective_capabilities(&status))
        .is_some_and(|caps| caps & (1 << CAP_NET_ADMIN) != 0);
    let Ok(own) = std::fs::metadata(root.thread_path("ns/user")).map(|m| m.ino()) else {
        return capable_here;
    };
    let Ok(netns) = File::open(root.thread_path("ns/net")) else {
        return capable_here;
    };
    // Kernels before 4.9 cannot say who owns a namespace: it is taken
    // to be lsport's own, as it is unless lsport entered another one.
    let Some(mut userns) = ns_ioctl(&netns, NS_GET_USERNS) else {
        return capable_here;
    };
    loop {
        let Some(inode) = inode_of(&userns) else {
            return capable_here;
        };
        if inode == own {
            return capable_here;
        }
        // EPERM: the parent lies outside lsport's namespace, which is
        // then no ancestor of the owner, and holds no capability there.
        let Some(parent) = ns_ioctl(&userns, NS_GET_PARENT) else {
            return false;
        };
        if inode_of(&parent) == Some(own) && owner_uid(&userns) == Some(effective_uid()) {
            return true;
        }
        userns = parent;
    }
}

/// The `CapEff:` field of a status file, a hexadecimal mask.
fn effective_capabilities(status: &[u8]) -> Option<u64> {
    let text = String::from_utf8_lossy(status);
    let value = text.lines().find_map(|l| l.strip_prefix("CapEff:"))?;
    u64::from_str_radix(value.trim(), 16).ok()
}

fn ns_ioctl(namespace: &File, request: u64) -> Option<File> {
    // SAFETY: these requests take no argument and return a new fd or -1.
    let fd = unsafe { libc::ioctl(namespace.as_raw_fd(), request as _) };
    // SAFETY: the kernel just gave us this fd and nobody else owns it.
    (fd >= 0).then(|| File::from(unsafe { OwnedFd::from_raw_fd(fd) }))
}

fn inode_of(namespace: &File) -> Option<u64> {
    namespace.metadata().ok().map(|m| m.ino())
}

fn owner_uid(userns: &File) -> Option<u32> {
    let mut uid: libc::uid_t = 0;
    // SAFETY: NS_GET_OWNER_UID writes one uid_t through the pointer,
    // which points at a live local.
    let result = unsafe { libc::ioctl(userns.as_raw_fd(), NS_GET_OWNER_UID as _, &mut uid) };
    (result == 0).then_some(uid)
}

fn effective_uid() -> u32 {
    // SAFETY: geteuid cannot fail and touches no memory.
    unsafe { libc::geteuid() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_effective_set_is_read_from_its_line() {
        let status = b"Name:\tlsport\nCapInh:\t0000000000000000\nCapEff:\t0000000000001000\n";
        assert_eq!(effective_capabilities(status), Some(1 << CAP_NET_ADMIN));
        assert_eq!(effective_capabilities(b"Name:\tx\n"), None);
    }

    #[test]
    fn the_answer_follows_the_effective_set_in_lsports_own_namespace() {
        let root = ProcRoot::default();
        let status = std::fs::read("/proc/thread-self/status").unwrap();
        let capable = effective_capabilities(&status).unwrap() & (1 << CAP_NET_ADMIN) != 0;
        assert_eq!(may_close_sockets(&root), capable);
    }
}
