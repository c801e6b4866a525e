//! Where the fields the holder program reads lie in the running kernel,
//! taken from its BTF: struct layouts change between kernel versions and
//! builds, so no offset is written into lsport.

use super::btf::{Btf, Kind};
use super::insn::Size;

/// The kernel function whose BTF id names the iterator the program
/// attaches to: `bpf_iter_` and the target's name, `task_file`.
pub const ITERATOR_FUNCTION: &str = "bpf_iter_task_file";

/// One field: its offset from the start of its struct and its width.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field {
    /// Bytes from the start of the struct, as an instruction's offset.
    pub offset: i16,
    /// The width of the load.
    pub size: Size,
}

/// Every offset the program needs, and the id it attaches to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KernelLayout {
    /// The BTF id of `bpf_iter_task_file`.
    pub iterator_btf_id: u32,
    /// `struct bpf_iter__task_file` (the program's context): `meta`.
    pub ctx_meta: Field,
    /// The context's `task` (may be NULL).
    pub ctx_task: Field,
    /// The context's `fd`.
    pub ctx_fd: Field,
    /// The context's `file` (may be NULL).
    pub ctx_file: Field,
    /// `struct bpf_iter_meta`: `seq`, what `bpf_seq_write` writes to.
    pub meta_seq: Field,
    /// `struct file`: `f_inode`.
    pub file_inode: Field,
    /// `struct inode`: `i_mode` (file type and permissions).
    pub inode_mode: Field,
    /// `struct inode`: `i_ino`, the number in `socket:[N]`.
    pub inode_number: Field,
    /// `struct task_struct`: `tgid`, the process id of a thread.
    pub task_tgid: Field,
}

/// What the kernel's BTF lacks for the program: the kernel is older
/// than the iterator, or was built differently.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Missing(pub String);

impl KernelLayout {
    /// Finds every field in `btf`.
    pub fn find(btf: &Btf) -> Result<KernelLayout, Missing> {
        let names = [
            (Kind::Func, ITERATOR_FUNCTION),
            (Kind::Struct, "bpf_iter__task_file"),
            (Kind::Struct, "bpf_iter_meta"),
            (Kind::Struct, "file"),
            (Kind::Struct, "inode"),
            (Kind::Struct, "task_struct"),
        ];
        let found = btf.find_all(&names);
        let id = |i: usize| found[i].ok_or_else(|| Missing(format!("type {}", names[i].1)));
        let (ctx, meta, file, inode, task) = (id(1)?, id(2)?, id(3)?, id(4)?, id(5)?);
        Ok(KernelLayout {
            iterator_btf_id: id(0)?,
            ctx_meta: pointer(btf, ctx, "bpf_iter__task_file", "meta")?,
            ctx_task: pointer(btf, ctx, "bpf_iter__task_file", "task")?,
            ctx_fd: value(btf, ctx, "bpf_iter__task_file", "fd")?,
            ctx_file: pointer(btf, ctx, "bpf_iter__task_file", "file")?,
            meta_seq: pointer(btf, meta, "bpf_iter_meta", "seq")?,
            file_inode: pointer(btf, file, "file", "f_inode")?,
            inode_mode: value(btf, inode, "inode", "i_mode")?,
            inode_number: value(btf, inode, "inode", "i_ino")?,
            task_tgid: value(btf, task, "task_struct", "tgid")?,
        })
    }
}

/// A member that must be a pointer.
fn pointer(btf: &Btf, id: u32, owner: &str, name: &str) -> Result<Field, Missing> {
    let member = btf
        .member(id, name)
        .ok_or_else(|| Missing(format!("member {owner}.{name}")))?;
    if !btf.is_pointer(member.type_id) {
        return Err(Missing(format!("{owner}.{name} as a pointer")));
    }
    field(member.offset, 8, owner, name)
}

/// A member that is loaded whole: an integer of 1, 2, 4 or 8 bytes.
fn value(btf: &Btf, id: u32, owner: &str, name: &str) -> Result<Field, Missing> {
    let member = btf
        .member(id, name)
        .ok_or_else(|| Missing(format!("member {owner}.{name}")))?;
    let kind = btf.kind(btf.resolve(member.type_id));
    let size = btf.size_of(member.type_id).unwrap_or(0);
    if !matches!(kind, Some(Kind::Int | Kind::Enum)) {
        return Err(Missing(format!("{owner}.{name} as an integer")));
    }
    field(member.offset, size, owner, name)
}

fn field(offset: u32, size: u32, owner: &str, name: &str) -> Result<Field, Missing> {
    let bad = || {
        Missing(format!(
            "{owner}.{name} at a usable offset ({offset}, {size} bytes)"
        ))
    };
    Ok(Field {
        offset: i16::try_from(offset).map_err(|_| bad())?,
        size: Size::of_bytes(size).ok_or_else(bad)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::holders::kernel::btf::tests::Builder;

    /// The kernel's types as the program sees them, by hand: the
    /// context's pointers each in an anonymous union (`__bpf_md_ptr`),
    /// `tgid` inside an anonymous struct (a randomized layout).
    fn kernel_like(with_task: bool, mode_is_pointer: bool) -> Vec<u8> {
        let mut b = Builder::new();
        let u16_ = b.int("unsigned short", 2);
        let u32_ = b.int("unsigned int", 4);
        let ulong = b.int("unsigned long", 8);
        let int = b.int("int", 4);
        let umode = b.typedef("umode_t", u16_);
        let pid_t = b.typedef("pid_t", int);
        let seq_file = b.composite(4, "seq_file", 8, &[("x", ulong, 0)]);
        let seq_ptr = b.ptr(seq_file);
        let meta = b.composite(4, "bpf_iter_meta", 24, &[("seq", seq_ptr, 0)]);
        let meta_ptr = b.ptr(meta);
        let mode = if mode_is_pointer { seq_ptr } else { umode };
        let inode = b.composite(
            4,
            "inode",
            80,
            &[("i_mode", mode, 0), ("i_ino", ulong, 512)],
        );
        let inode_ptr = b.ptr(inode);
        let file = b.composite(4, "file", 64, &[("f_inode", inode_ptr, 256)]);
        let file_ptr = b.ptr(file);
        let task_ptr = if with_task {
            let inner = b.composite(4, "", 8, &[("pid", pid_t, 0), ("tgid", pid_t, 32)]);
            let task = b.composite(4, "task_struct", 4096, &[("", inner, 8 * 2000)]);
            b.ptr(task)
        } else {
            b.ptr(0)
        };
        let md = |b: &mut Builder, name: &str, ptr: u32| {
            b.composite(5, "", 8, &[(name, ptr, 0), ("", 0, 0)])
        };
        let (m, t, f) = (
            md(&mut b, "meta", meta_ptr),
            md(&mut b, "task", task_ptr),
            md(&mut b, "file", file_ptr),
        );
        b.composite(
            4,
            "bpf_iter__task_file",
            32,
            &[("", m, 0), ("", t, 64), ("fd", u32_, 128), ("", f, 192)],
        );
        b.func("bpf_iter_task_file", 0);
        b.bytes()
    }

    #[test]
    fn finds_every_field_of_the_program() {
        let bytes = kernel_like(true, false);
        let btf = Btf::parse(&bytes).unwrap();
        let l = KernelLayout::find(&btf).unwrap();
        let f = |offset, size| Field { offset, size };
        assert_eq!(l.iterator_btf_id, btf.type_count());
        assert_eq!(
            (l.ctx_meta, l.ctx_task, l.ctx_fd, l.ctx_file),
            (
                f(0, Size::DW),
                f(8, Size::DW),
                f(16, Size::W),
                f(24, Size::DW)
            )
        );
        assert_eq!(l.meta_seq, f(0, Size::DW));
        assert_eq!(l.file_inode, f(32, Size::DW));
        assert_eq!(
            (l.inode_mode, l.inode_number),
            (f(0, Size::H), f(64, Size::DW))
        );
        assert_eq!(l.task_tgid, f(2004, Size::W));
    }

    #[test]
    fn a_missing_type_or_a_field_of_another_kind_is_named() {
        let bytes = kernel_like(false, false);
        let btf = Btf::parse(&bytes).unwrap();
        assert_eq!(
            KernelLayout::find(&btf),
            Err(Missing("type task_struct".into()))
        );
        let bytes = kernel_like(true, true);
        let btf = Btf::parse(&bytes).unwrap();
        assert_eq!(
            KernelLayout::find(&btf),
            Err(Missing("inode.i_mode as an integer".into()))
        );
    }
}
