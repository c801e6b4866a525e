//! The options of a socket another process holds. sock_diag does not
//! show a socket's SO_REUSEADDR or SO_REUSEPORT, yet the kernel's rules
//! turn on them. A process that may trace the holder (root, or its own
//! user where Yama allows) can take a copy of the holder's descriptor
//! with pidfd_getfd(2) and ask the socket itself with getsockopt(2);
//! the copy is closed at once. Nothing is read from or written to the
//! socket, and the holder is neither stopped nor signalled.
//!
//! Listeners are never asked: while lsport holds the copy, a listener
//! its server closes at that instant would go on taking connections
//! until the copy is closed, and those would be reset. Whether a
//! listener set SO_REUSEPORT is asked of the kernel by a trial instead
//! (see `fixes`).

use std::collections::HashMap;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use crate::commands::why::rules::Known;
use crate::commands::why::trial::get_flag;
use crate::report::Row;
use crate::socket::{Protocol, State};

/// Reads sockets' options, keeping one pidfd per holder process (a busy
/// server holds thousands of sockets on one port).
#[derive(Default)]
pub struct Reader {
    pidfds: HashMap<u32, Option<OwnedFd>>,
}

impl Reader {
    /// The options of `row`'s socket, read through the first holder
    /// whose descriptor still refers to it; unknown when none can be
    /// read (no holder seen, not permitted, or the descriptor now refers
    /// to another file).
    pub fn options_of(&mut self, row: &Row) -> Known {
        let listener = row.socket.protocol == Protocol::Tcp && row.socket.state == State::Listen;
        if listener || row.socket.inode == 0 {
            return Known::default();
        }
        for holder in &row.holders {
            let pidfd = self
                .pidfds
                .entry(holder.pid)
                .or_insert_with(|| open_pidfd(holder.pid));
            if let Some(known) = pidfd
                .as_ref()
                .and_then(|pidfd| read(pidfd, holder.fd, row.socket.inode))
            {
                return known;
            }
        }
        Known::default()
    }
}

fn read(pidfd: &OwnedFd, fd: u32, inode: u64) -> Option<Known> {
    let copy = copy_descriptor(pidfd, fd)?;
    if inode_of(&copy) != Some(inode) {
        return None;
    }
    Some(Known {
        reuseaddr: get_flag(&copy, libc::SOL_SOCKET, libc::SO_REUSEADDR),
        reuseport: get_flag(&copy, libc::SOL_SOCKET, libc::SO_REUSEPORT),
    })
}

fn inode_of(fd: &OwnedFd) -> Option<u64> {
    // SAFETY: fstat writes into a zeroed stat of its own size.
    unsafe {
        let mut stat: libc::stat = std::mem::zeroed();
        (libc::fstat(fd.as_raw_fd(), &raw mut stat) == 0).then_some(stat.st_ino)
    }
}

/// A pidfd for `pid`, which names that process even once its pid is
/// reused.
fn open_pidfd(pid: u32) -> Option<OwnedFd> {
    // SAFETY: a plain system call; the descriptor is owned at once.
    unsafe {
        let pidfd = libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0);
        (pidfd >= 0).then(|| OwnedFd::from_raw_fd(pidfd as i32))
    }
}

/// A copy of the process's descriptor `fd`, close-on-exec.
fn copy_descriptor(pidfd: &OwnedFd, fd: u32) -> Option<OwnedFd> {
    // SAFETY: a plain system call; the descriptor is owned at once and
    // closed on drop.
    unsafe {
        let copy = libc::syscall(libc::SYS_pidfd_getfd, pidfd.as_raw_fd(), fd as i32, 0);
        (copy >= 0).then(|| OwnedFd::from_raw_fd(copy as i32))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn a_socket_of_this_process_tells_its_options() {
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let inode = std::fs::metadata(format!("/proc/self/fd/{}", socket.as_raw_fd()))
            .unwrap()
            .ino();
        let Some(pidfd) = open_pidfd(std::process::id()) else {
            return;
        };
        let known = read(&pidfd, socket.as_raw_fd() as u32, inode);
        // Yama or a seccomp policy may refuse even a process itself; when
        // the copy is had, it tells the truth.
        if let Some(known) = known {
            assert_eq!(known.reuseaddr, Some(false));
            assert_eq!(known.reuseport, Some(false));
        }
        // Another inode: the descriptor is not that socket.
        assert_eq!(read(&pidfd, socket.as_raw_fd() as u32, inode + 1), None);
    }
}
