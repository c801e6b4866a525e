//! The holder program: run by the kernel once for every open file of
//! every task, it writes one record for each file that is a socket (and,
//! with a filter, one of the sockets asked about). Built from the
//! running kernel's layout; the kernel's verifier checks it on load.
//!
//! In a `task_file` iterator the context's `task` and `file` are
//! pointers the verifier knows by their BTF type, so the program reads
//! their fields with plain loads, which the kernel turns into loads that
//! cannot fault; both may be NULL (at the end of the walk) and must be
//! tested first.

use super::insn::{self, Asm, Insn, Reg, Size};
use super::layout::KernelLayout;
use super::records::RECORD_LEN;

/// Helper `bpf_map_lookup_elem(map, key)`: the value, or NULL.
const MAP_LOOKUP_ELEM: i32 = 1;
/// Helper `bpf_seq_write(seq, data, len)`: appends to the iterator's output.
const SEQ_WRITE: i32 = 127;
/// `S_IFMT` and `S_IFSOCK`: the file type bits of `i_mode`, and a socket's.
const S_IFMT: i32 = 0o170000;
const S_IFSOCK: i32 = 0o140000;

/// The record on the stack, as the frame pointer's offsets: the inode
/// (8 bytes), then the tgid and the fd (4 bytes each); see `records`.
const RECORD: i16 = -(RECORD_LEN as i16);
const RECORD_TGID: i16 = RECORD + 8;
const RECORD_FD: i16 = RECORD + 12;

/// The program's instructions. `filter_map` is the fd of a hash map
/// keyed by socket inode: only fds of inodes in it are written.
pub fn build(layout: &KernelLayout, filter_map: Option<i32>) -> Vec<Insn> {
    use insn::{add_imm, and_imm, call, exit, load, load_map_fd, mov, mov_imm, store};
    let mut asm = Asm::default();
    // r6 = ctx; r7 = ctx->task; r8 = ctx->file (either NULL: done).
    asm.push([
        mov(Reg::R6, Reg::R1),
        load(Size::DW, Reg::R7, Reg::R6, layout.ctx_task.offset),
    ]);
    asm.jump_if_eq(Reg::R7, 0);
    asm.push([load(Size::DW, Reg::R8, Reg::R6, layout.ctx_file.offset)]);
    asm.jump_if_eq(Reg::R8, 0);
    // r9 = file->f_inode; a socket's i_mode says S_IFSOCK.
    asm.push([load(Size::DW, Reg::R9, Reg::R8, layout.file_inode.offset)]);
    asm.jump_if_eq(Reg::R9, 0);
    asm.push([
        load(
            layout.inode_mode.size,
            Reg::R1,
            Reg::R9,
            layout.inode_mode.offset,
        ),
        and_imm(Reg::R1, S_IFMT),
    ]);
    asm.jump_if_ne(Reg::R1, S_IFSOCK);
    // The record's inode, also the key the filter looks up.
    asm.push([
        load(
            layout.inode_number.size,
            Reg::R1,
            Reg::R9,
            layout.inode_number.offset,
        ),
        store(Size::DW, Reg::R10, RECORD, Reg::R1),
    ]);
    if let Some(map) = filter_map {
        asm.push(load_map_fd(Reg::R1, map));
        asm.push([
            mov(Reg::R2, Reg::R10),
            add_imm(Reg::R2, RECORD.into()),
            call(MAP_LOOKUP_ELEM),
        ]);
        asm.jump_if_eq(Reg::R0, 0);
    }
    // The tgid and the fd, then write the 16 bytes to ctx->meta->seq.
    asm.push([
        load(
            layout.task_tgid.size,
            Reg::R1,
            Reg::R7,
            layout.task_tgid.offset,
        ),
        store(Size::W, Reg::R10, RECORD_TGID, Reg::R1),
        load(layout.ctx_fd.size, Reg::R1, Reg::R6, layout.ctx_fd.offset),
        store(Size::W, Reg::R10, RECORD_FD, Reg::R1),
        load(Size::DW, Reg::R1, Reg::R6, layout.ctx_meta.offset),
        load(Size::DW, Reg::R1, Reg::R1, layout.meta_seq.offset),
        mov(Reg::R2, Reg::R10),
        add_imm(Reg::R2, RECORD.into()),
        mov_imm(Reg::R3, RECORD_LEN as i32),
        call(SEQ_WRITE),
    ]);
    // label: return 0 (nonzero would ask the kernel to stop the walk).
    asm.finish_at_label([mov_imm(Reg::R0, 0), exit()])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::holders::kernel::layout::Field;

    fn layout() -> KernelLayout {
        let f = |offset, size| Field { offset, size };
        KernelLayout {
            iterator_btf_id: 1,
            ctx_meta: f(0, Size::DW),
            ctx_task: f(8, Size::DW),
            ctx_fd: f(16, Size::W),
            ctx_file: f(24, Size::DW),
            meta_seq: f(0, Size::DW),
            file_inode: f(32, Size::DW),
            inode_mode: f(0, Size::H),
            inode_number: f(64, Size::DW),
            task_tgid: f(1268, Size::W),
        }
    }

    /// Every conditional jump goes to the `r0 = 0; exit` tail.
    fn check_jumps(prog: &[Insn]) {
        let tail = prog.len() - 2;
        assert_eq!(prog[tail], insn::mov_imm(Reg::R0, 0));
        assert_eq!(prog[tail + 1], insn::exit());
        for (at, i) in prog.iter().enumerate() {
            if i.code == 0x15 || i.code == 0x55 {
                assert_eq!(at + 1 + i.off as usize, tail, "jump at {at}");
            }
        }
    }

    #[test]
    fn without_a_filter_every_socket_is_written() {
        let prog = build(&layout(), None);
        check_jumps(&prog);
        // Loads with the kernel's offsets and widths.
        assert!(prog.contains(&insn::load(Size::W, Reg::R1, Reg::R7, 1268)));
        assert!(prog.contains(&insn::load(Size::H, Reg::R1, Reg::R9, 0)));
        assert!(prog.contains(&insn::load(Size::DW, Reg::R1, Reg::R9, 64)));
        assert!(prog.iter().any(|i| i.code == 0x55 && i.imm == S_IFSOCK));
        let calls: Vec<i32> = prog
            .iter()
            .filter(|i| i.code == 0x85)
            .map(|i| i.imm)
            .collect();
        assert_eq!(calls, [SEQ_WRITE]);
        assert!(prog.len() < 30, "{} instructions", prog.len());
    }

    #[test]
    fn a_filter_looks_the_inode_up_in_the_map_first() {
        let prog = build(&layout(), Some(42));
        check_jumps(&prog);
        let calls: Vec<i32> = prog
            .iter()
            .filter(|i| i.code == 0x85)
            .map(|i| i.imm)
            .collect();
        assert_eq!(calls, [MAP_LOOKUP_ELEM, SEQ_WRITE]);
        let map = prog.iter().position(|i| i.code == 0x18).unwrap();
        assert_eq!((prog[map].regs, prog[map].imm), (0x11, 42));
        // The key is the record's inode, stored before the lookup.
        let key = prog
            .iter()
            .position(|i| *i == insn::store(Size::DW, Reg::R10, RECORD, Reg::R1))
            .unwrap();
        assert!(key < map);
    }
}
