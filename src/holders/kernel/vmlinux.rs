//! The running kernel's BTF, `/sys/kernel/btf/vmlinux` (5 MB or so):
//! mapped where the kernel allows it (6.16 and later), else read once.

use std::fs::File;
use std::io::Read;
use std::ops::Deref;
use std::os::fd::AsRawFd;

/// Where the running kernel describes its types.
pub const PATH: &str = "/sys/kernel/btf/vmlinux";

/// The bytes of the kernel's BTF, however they were obtained.
pub enum KernelBtf {
    /// Mapped read-only; unmapped on drop.
    Mapped { addr: *mut libc::c_void, len: usize },
    /// Read into memory.
    Read(Vec<u8>),
}

impl KernelBtf {
    /// Maps or reads the file; the errno when it cannot be opened or read.
    pub fn load() -> Result<KernelBtf, std::io::Error> {
        let mut file = File::open(PATH)?;
        let len = file.metadata()?.len() as usize;
        if len > 0 {
            // SAFETY: a fresh private read-only mapping of a file we
            // hold open; the kernel's BTF does not change while it runs.
            let addr = unsafe {
                libc::mmap(
                    std::ptr::null_mut(),
                    len,
                    libc::PROT_READ,
                    libc::MAP_PRIVATE,
                    file.as_raw_fd(),
                    0,
                )
            };
            if addr != libc::MAP_FAILED {
                return Ok(KernelBtf::Mapped { addr, len });
            }
        }
        // sysfs gives a page per read: a buffer of the whole size still
        // saves the reallocations.
        let mut bytes = Vec::with_capacity(len);
        file.read_to_end(&mut bytes)?;
        Ok(KernelBtf::Read(bytes))
    }
}

impl Deref for KernelBtf {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            // SAFETY: the mapping is `len` readable bytes until drop.
            KernelBtf::Mapped { addr, len } => unsafe {
                std::slice::from_raw_parts(*addr as *const u8, *len)
            },
            KernelBtf::Read(bytes) => bytes,
        }
    }
}

impl Drop for KernelBtf {
    fn drop(&mut self) {
        if let KernelBtf::Mapped { addr, len } = *self {
            // SAFETY: unmaps exactly the mapping made in `load`, once.
            unsafe { libc::munmap(addr, len) };
        }
    }
}
