//! Memory that cannot be had (a small `ulimit -v`, a cgroup's limit)
//! ends lsport as any other error does: one line on stderr and exit
//! status 2. Rust's own handler would print two lines and abort (exit
//! status 134). The allocator is the system's; only its failure is
//! handled here.

use std::alloc::{GlobalAlloc, Layout, System};

/// The system allocator, with lsport's answer to a failed allocation.
struct Allocator;

#[global_allocator]
static ALLOCATOR: Allocator = Allocator;

// SAFETY: every call is passed on to the system allocator as is; a null
// answer ends the process instead of being returned.
unsafe impl GlobalAlloc for Allocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract, passed on.
        let block = unsafe { System.alloc(layout) };
        if block.is_null() {
            out_of_memory(layout.size());
        }
        block
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract, passed on.
        let block = unsafe { System.alloc_zeroed(layout) };
        if block.is_null() {
            out_of_memory(layout.size());
        }
        block
    }

    unsafe fn dealloc(&self, block: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract, passed on.
        unsafe { System.dealloc(block, layout) }
    }

    unsafe fn realloc(&self, block: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller's contract, passed on.
        let moved = unsafe { System.realloc(block, layout, new_size) };
        if moved.is_null() {
            out_of_memory(new_size);
        }
        moved
    }
}

/// Says so in one line and exits 2, allocating nothing: the line is
/// put together on the stack and written with one system call.
fn out_of_memory(size: usize) -> ! {
    let mut line = [0u8; 160];
    let mut length = 0;
    let mut put = |bytes: &[u8]| {
        let end = (length + bytes.len()).min(line.len());
        line[length..end].copy_from_slice(&bytes[..end - length]);
        length = end;
    };
    put(b"lsport: out of memory: ");
    put(lsport::decimal::digits(size as u64, &mut [0; 20]));
    put(b" bytes could not be allocated (is ulimit -v, or a memory limit, too small?)\n");
    // SAFETY: a write of bytes on the stack to fd 2, then the end of the
    // process without running anything more of it.
    unsafe {
        libc::write(2, line.as_ptr().cast(), length);
        libc::_exit(2)
    }
}
