//! The bpf(2) calls the holder walk makes, one function each, on the
//! raw system call: libc has no wrapper, and libbpf would bring a C
//! library for five calls. Each command takes its own part of the
//! kernel's `union bpf_attr`, laid out here as a `#[repr(C)]` struct;
//! the kernel reads only the bytes it is given and treats the rest as
//! zero. Every descriptor comes back owned, so it is closed on drop.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use super::insn::Insn;

// Commands.
const MAP_CREATE: libc::c_int = 0;
const PROG_LOAD: libc::c_int = 5;
const MAP_UPDATE_BATCH: libc::c_int = 26;
const LINK_CREATE: libc::c_int = 28;
const ITER_CREATE: libc::c_int = 33;

/// `BPF_MAP_TYPE_HASH`.
const MAP_TYPE_HASH: u32 = 1;
/// `BPF_PROG_TYPE_TRACING`.
const PROG_TYPE_TRACING: u32 = 26;
/// `BPF_TRACE_ITER`: the attach type of iterator programs.
const TRACE_ITER: u32 = 28;

/// An errno from bpf(2).
pub type Errno = i32;

#[repr(C)]
#[derive(Default)]
struct MapCreateAttr {
    map_type: u32,
    key_size: u32,
    value_size: u32,
    max_entries: u32,
    map_flags: u32,
    inner_map_fd: u32,
    numa_node: u32,
    map_name: [u8; 16],
}

#[repr(C)]
#[derive(Default)]
struct BatchAttr {
    in_batch: u64,
    out_batch: u64,
    keys: u64,
    values: u64,
    count: u32,
    map_fd: u32,
    elem_flags: u64,
    flags: u64,
}

#[repr(C)]
#[derive(Default)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
    prog_btf_fd: u32,
    func_info_rec_size: u32,
    func_info: u64,
    func_info_cnt: u32,
    line_info_rec_size: u32,
    line_info: u64,
    line_info_cnt: u32,
    attach_btf_id: u32,
}

#[repr(C)]
#[derive(Default)]
struct LinkCreateAttr {
    prog_fd: u32,
    target_fd: u32,
    attach_type: u32,
    flags: u32,
}

#[repr(C)]
#[derive(Default)]
struct IterCreateAttr {
    link_fd: u32,
    flags: u32,
}

/// bpf(cmd, attr, sizeof attr): the result, or the errno.
fn bpf<T>(cmd: libc::c_int, attr: &mut T) -> Result<libc::c_long, Errno> {
    // SAFETY: `attr` is a live, initialised `#[repr(C)]` struct of the
    // size passed; the kernel reads at most that many bytes of it, and
    // the pointers inside it point to buffers that outlive the call.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr as *mut T as *mut libc::c_void,
            std::mem::size_of::<T>() as libc::c_uint,
        )
    };
    if ret < 0 {
        Err(std::io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EIO))
    } else {
        Ok(ret)
    }
}

/// A call that returns a new descriptor.
fn bpf_fd<T>(cmd: libc::c_int, attr: &mut T) -> Result<OwnedFd, Errno> {
    let fd = bpf(cmd, attr)? as RawFd;
    // SAFETY: on success these commands return a new descriptor that
    // nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// A name the kernel shows for the object (bpftool, /proc/PID/fdinfo):
/// at most 15 bytes and a NUL.
fn object_name(name: &str) -> [u8; 16] {
    let mut out = [0u8; 16];
    let len = name.len().min(15);
    out[..len].copy_from_slice(&name.as_bytes()[..len]);
    out
}

/// A hash map from u64 keys to one-byte values, with room for `entries`.
pub fn create_hash_set(name: &str, entries: u32) -> Result<OwnedFd, Errno> {
    let mut attr = MapCreateAttr {
        map_type: MAP_TYPE_HASH,
        key_size: 8,
        value_size: 1,
        max_entries: entries.max(1),
        map_name: object_name(name),
        ..Default::default()
    };
    bpf_fd(MAP_CREATE, &mut attr)
}

/// Puts every key in the map, in one call; value 1 each.
pub fn fill_hash_set(map: &OwnedFd, keys: &[u64]) -> Result<(), Errno> {
    let values = vec![1u8; keys.len()];
    let mut done = 0usize;
    // The kernel may stop short (it reports how many it took): go on
    // from there.
    while done < keys.len() {
        let rest = &keys[done..];
        let mut attr = BatchAttr {
            keys: rest.as_ptr() as u64,
            values: values[done..].as_ptr() as u64,
            count: u32::try_from(rest.len()).unwrap_or(u32::MAX),
            map_fd: map.as_raw_fd() as u32,
            ..Default::default()
        };
        bpf(MAP_UPDATE_BATCH, &mut attr)?;
        if attr.count == 0 {
            return Err(libc::EIO);
        }
        done += attr.count as usize;
    }
    Ok(())
}

/// What the verifier said about a program it refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadError {
    /// The errno of the load.
    pub errno: Errno,
    /// The verifier's log, when it gave one.
    pub log: String,
}

/// How much of the verifier's log is kept: its verdict comes last, and
/// the holder program's full trace is a few kilobytes.
const LOG_SIZE: usize = 256 * 1024;

/// Loads a tracing program attached to the BTF function `attach_btf_id`
/// as an iterator. A refused load is retried once with the verifier's
/// log on, to say why.
pub fn load_iterator_program(
    name: &str,
    insns: &[Insn],
    license: &std::ffi::CStr,
    attach_btf_id: u32,
) -> Result<OwnedFd, LoadError> {
    let attr = |log: Option<&mut [u8]>| {
        let (log_level, log_size, log_buf) = match log {
            Some(buf) => (1, buf.len() as u32, buf.as_mut_ptr() as u64),
            None => (0, 0, 0),
        };
        ProgLoadAttr {
            prog_type: PROG_TYPE_TRACING,
            insn_cnt: insns.len() as u32,
            insns: insns.as_ptr() as u64,
            license: license.as_ptr() as u64,
            log_level,
            log_size,
            log_buf,
            prog_name: object_name(name),
            expected_attach_type: TRACE_ITER,
            attach_btf_id,
            ..Default::default()
        }
    };
    let errno = match bpf_fd(PROG_LOAD, &mut attr(None)) {
        Ok(fd) => return Ok(fd),
        Err(errno) => errno,
    };
    // No permission, or no bpf(2): the verifier never ran.
    if matches!(errno, libc::EPERM | libc::ENOSYS) {
        return Err(LoadError {
            errno,
            log: String::new(),
        });
    }
    let mut buf = vec![0u8; LOG_SIZE];
    let retry = bpf_fd(PROG_LOAD, &mut attr(Some(&mut buf)));
    let len = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    let log = String::from_utf8_lossy(&buf[..len]).into_owned();
    match retry {
        // Loaded the second time: keep it.
        Ok(fd) => Ok(fd),
        Err(errno) => Err(LoadError { errno, log }),
    }
}

/// Attaches an iterator program: the link that iterators are made from.
pub fn create_iterator_link(prog: &OwnedFd) -> Result<OwnedFd, Errno> {
    let mut attr = LinkCreateAttr {
        prog_fd: prog.as_raw_fd() as u32,
        attach_type: TRACE_ITER,
        ..Default::default()
    };
    bpf_fd(LINK_CREATE, &mut attr)
}

/// A new walk: a descriptor whose reads run the program over the tasks.
pub fn create_iterator(link: &OwnedFd) -> Result<OwnedFd, Errno> {
    let mut attr = IterCreateAttr {
        link_fd: link.as_raw_fd() as u32,
        flags: 0,
    };
    bpf_fd(ITER_CREATE, &mut attr)
}
