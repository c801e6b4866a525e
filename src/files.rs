//! Opening and reading the files lsport trusts least: a fifo, a device
//! or a huge file may stand where a data file or a namespace file should
//! be (`LSPORT_SERVICES_FILE=/dev/zero`, `--netns /tmp/fifo`). Every open
//! here is non-blocking, checks what it opened, and every read is
//! bounded, so that no such file can hang lsport or make it grow.

use std::fs::File;
use std::io::{self, Read};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

/// statfs f_type of procfs (include/uapi/linux/magic.h).
const PROC_SUPER_MAGIC: i64 = 0x9fa0;
/// statfs f_type of the namespace filesystem.
const NSFS_MAGIC: i64 = 0x6e73_6673;

/// How big a services file or a passwd file may be: real ones are tens
/// of kilobytes, and IANA's whole registry as a services file is about
/// one megabyte.
pub const TABLE_FILE_LIMIT: usize = 16 << 20;
/// A sysctl's text: the longest, ip_local_reserved_ports with every
/// other port reserved, is under 400 KB.
pub const SYSCTL_LIMIT: usize = 1 << 20;

/// Opens `path` without blocking and checks that it is a regular file or
/// a file of procfs (which may report a size of 0 and is read to its
/// end). Anything else, a fifo or a device, is refused with an error
/// that says what it is.
pub fn open_data_file(path: &Path) -> io::Result<File> {
    let file = open_nonblocking(path)?;
    let kind = file.metadata()?.file_type();
    if kind.is_file() || on_filesystem(&file, PROC_SUPER_MAGIC) {
        return Ok(file);
    }
    Err(not_what_was_expected(&kind, "a regular file"))
}

/// Opens a network namespace file (`/proc/PID/ns/net`, `/run/netns/NAME`)
/// without blocking, and refuses anything that is not a namespace.
pub fn open_namespace_file(path: &Path) -> io::Result<File> {
    let file = open_nonblocking(path)?;
    if on_filesystem(&file, NSFS_MAGIC) {
        return Ok(file);
    }
    let kind = file.metadata()?.file_type();
    Err(not_what_was_expected(&kind, "a namespace file"))
}

/// Reads a data file whole, refusing one larger than `limit` bytes.
pub fn read_bounded(path: &Path, limit: usize) -> io::Result<Vec<u8>> {
    let bytes = read_at_most(path, limit.saturating_add(1))?;
    if bytes.len() > limit {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("larger than {} bytes", limit),
        ));
    }
    Ok(bytes)
}

/// Reads the first `limit` bytes of a data file, and drops the rest: for
/// files whose beginning is all lsport shows (a command line).
pub fn read_at_most(path: &Path, limit: usize) -> io::Result<Vec<u8>> {
    let file = open_data_file(path)?;
    // Room for a whole status or cmdline file at once: /proc says their
    // size is 0, and from an empty vector read_to_end would probe with
    // small reads first (seven read()s for a status file instead of two).
    let mut bytes = Vec::with_capacity(limit.min(4096));
    let limit = u64::try_from(limit).unwrap_or(u64::MAX);
    file.take(limit).read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// Whether `dir` is the root of a procfs mount or lies on one (and not
/// a tree laid out like it, as tests point lsport at).
pub fn is_procfs(dir: &Path) -> bool {
    File::open(dir).is_ok_and(|file| on_filesystem(&file, PROC_SUPER_MAGIC))
}

/// Reads the file at `path` below the directory `dir` is open on, as a
/// sysctl: at most [`SYSCTL_LIMIT`] bytes, and only from procfs.
pub fn read_sysctl_at(dir: &impl std::os::fd::AsFd, path: &str) -> io::Result<Vec<u8>> {
    let path = std::ffi::CString::new(path).map_err(io::Error::other)?;
    // SAFETY: a NUL-terminated path and a directory fd that stays open
    // for the call; the fd returned is ours alone.
    let fd = unsafe {
        libc::openat(
            dir.as_fd().as_raw_fd(),
            path.as_ptr(),
            libc::O_RDONLY | libc::O_NONBLOCK | libc::O_NOCTTY | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just opened and nothing else owns it.
    let file = unsafe { <File as std::os::fd::FromRawFd>::from_raw_fd(fd) };
    if !on_filesystem(&file, PROC_SUPER_MAGIC) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a procfs file",
        ));
    }
    let mut bytes = Vec::new();
    file.take(SYSCTL_LIMIT as u64).read_to_end(&mut bytes)?;
    Ok(bytes)
}

fn open_nonblocking(path: &Path) -> io::Result<File> {
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY | libc::O_CLOEXEC)
        .open(path)
}

fn on_filesystem(file: &File, magic: i64) -> bool {
    // SAFETY: statfs is plain data, filled in by the call.
    let mut info: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: the fd is open for the call and `info` is writable.
    let done = unsafe { libc::fstatfs(file.as_raw_fd(), &mut info) } == 0;
    #[allow(clippy::unnecessary_cast)] // f_type's width differs by target
    let kind = info.f_type as i64;
    done && kind == magic
}

fn not_what_was_expected(kind: &std::fs::FileType, expected: &str) -> io::Error {
    let what = if kind.is_fifo() {
        "a fifo"
    } else if kind.is_char_device() {
        "a character device"
    } else if kind.is_block_device() {
        "a block device"
    } else if kind.is_socket() {
        "a socket"
    } else if kind.is_dir() {
        "a directory"
    } else {
        "not a regular file"
    };
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("{what}, not {expected}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_and_fifos_are_refused_without_blocking() {
        let err = read_bounded(Path::new("/dev/zero"), 10).unwrap_err();
        assert!(err.to_string().contains("character device"), "{err}");
        let dir = std::env::temp_dir().join(format!("lsport-files-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let fifo = dir.join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let err = read_bounded(&fifo, 10).unwrap_err();
        assert!(err.to_string().contains("a fifo"), "{err}");
        let err = open_namespace_file(&fifo).unwrap_err();
        assert!(err.to_string().contains("not a namespace file"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn reads_are_bounded() {
        let dir = std::env::temp_dir().join(format!("lsport-bounded-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("big");
        std::fs::write(&file, vec![b'x'; 100]).unwrap();
        assert_eq!(read_bounded(&file, 100).unwrap().len(), 100);
        assert!(read_bounded(&file, 99).is_err());
        assert_eq!(read_at_most(&file, 10).unwrap().len(), 10);
        std::fs::remove_dir_all(&dir).unwrap();
        // procfs files say they are empty and are still read.
        assert!(
            !read_bounded(Path::new("/proc/self/status"), 1 << 16)
                .unwrap()
                .is_empty()
        );
        assert!(open_namespace_file(Path::new("/proc/self/ns/net")).is_ok());
    }
}
