//! Whether this process holds what loading the walk needs, read with
//! capget(2) before anything is loaded: without it, lsport walks /proc
//! while the sockets are dumped, as it always has, instead of finding
//! out from a refused bpf(2) after the dump.

/// The bits of the capabilities the kernel checks (linux/capability.h).
const CAP_PERFMON: u32 = 38;
const CAP_BPF: u32 = 39;

/// `_LINUX_CAPABILITY_VERSION_3`: two 32-bit words per set.
const VERSION_3: u32 = 0x2008_0522;

#[repr(C)]
struct Header {
    version: u32,
    pid: i32,
}

#[repr(C)]
#[derive(Default, Clone, Copy)]
struct Data {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// Whether the effective set holds CAP_BPF and CAP_PERFMON, which the
/// kernel asks of a process that loads a tracing program (every kernel
/// with the `task_file` iterator, 5.8 on, has both). The kernel lets
/// CAP_SYS_ADMIN stand in for either; lsport does not: a process given
/// CAP_SYS_ADMIN without them (a container's usual set) walks /proc, as
/// its CAP_SYS_PTRACE decides. None when capget(2) itself fails (a
/// seccomp profile): then the load is tried and its errno decides.
pub fn may_load_tracing_programs() -> Option<bool> {
    let mut header = Header {
        version: VERSION_3,
        pid: 0,
    };
    let mut data = [Data::default(); 2];
    // SAFETY: capget writes two `Data` words for version 3 into `data`,
    // which has room for them; `header` is a valid header.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_capget,
            &mut header as *mut Header,
            data.as_mut_ptr(),
        )
    };
    if rc != 0 {
        return None;
    }
    let has = |cap: u32| data[(cap / 32) as usize].effective & (1 << (cap % 32)) != 0;
    Some(has(CAP_BPF) && has(CAP_PERFMON))
}
