//! A proc instance of lsport's own, for the sysctls that the /proc it
//! was given leaves out: mounted `subset=pid` (as some sandboxes and
//! hardened containers mount it), /proc has no `sys/`, and the port
//! policy of the namespace could only be assumed.
//!
//! The instance is made with the mount API (fsopen, fsconfig, fsmount)
//! and never attached anywhere: no mount table changes, nobody else sees
//! it, and it goes when its file descriptor closes. It takes
//! CAP_SYS_ADMIN (and the kernel refuses it where only a restricted
//! /proc may be seen, as in a user namespace whose /proc is masked);
//! without it the settings stay assumed. A network sysctl shows the
//! namespace of the thread that opens it, so the files are opened on the
//! thread that probes the namespace.

use std::os::fd::{FromRawFd, OwnedFd};

/// fsopen's flag: the fs context fd is close-on-exec.
const FSOPEN_CLOEXEC: libc::c_uint = 0x1;
/// fsconfig's command that creates the superblock.
const FSCONFIG_CMD_CREATE: libc::c_uint = 6;
/// fsmount's flag: the mount fd is close-on-exec.
const FSMOUNT_CLOEXEC: libc::c_uint = 0x1;
/// Read-only, no setuid, no devices, no exec: only files are read.
const MOUNT_ATTRS: libc::c_uint = 0x1 | 0x2 | 0x4 | 0x8;

/// A detached proc mount, open as a directory.
pub struct PrivateProc {
    root: OwnedFd,
}

impl PrivateProc {
    /// Makes the instance; None where the kernel refuses (no
    /// CAP_SYS_ADMIN, a kernel before 5.2, a masked /proc).
    pub fn open() -> Option<PrivateProc> {
        // SAFETY: the calls take a NUL-terminated name, plain integers and
        // null pointers where the command needs no key or value; each
        // returns a new fd or -1, and every fd is owned at once.
        unsafe {
            let context = libc::syscall(libc::SYS_fsopen, c"proc".as_ptr(), FSOPEN_CLOEXEC);
            if context < 0 {
                return None;
            }
            let context = OwnedFd::from_raw_fd(context as i32);
            let created = libc::syscall(
                libc::SYS_fsconfig,
                std::os::fd::AsRawFd::as_raw_fd(&context),
                FSCONFIG_CMD_CREATE,
                std::ptr::null::<libc::c_char>(),
                std::ptr::null::<libc::c_void>(),
                0,
            );
            if created < 0 {
                return None;
            }
            let mount = libc::syscall(
                libc::SYS_fsmount,
                std::os::fd::AsRawFd::as_raw_fd(&context),
                FSMOUNT_CLOEXEC,
                MOUNT_ATTRS,
            );
            if mount < 0 {
                return None;
            }
            Some(PrivateProc {
                root: OwnedFd::from_raw_fd(mount as i32),
            })
        }
    }

    /// A file of the instance as text, e.g.
    /// `read("sys/net/ipv4/ip_local_port_range")`.
    pub fn read(&self, path: &str) -> Option<String> {
        let bytes = crate::files::read_sysctl_at(&self.root, path).ok()?;
        String::from_utf8(bytes).ok()
    }
}
