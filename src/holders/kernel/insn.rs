//! BPF instructions, encoded by hand: the few the holder program needs,
//! and forward jumps to one exit label. The encoding is the kernel's
//! `struct bpf_insn` (`include/uapi/linux/bpf.h`): an opcode byte, the
//! destination register in the low nibble and the source register in the
//! high nibble of the next byte (on a little-endian machine), a 16-bit
//! offset and a 32-bit immediate.

/// One 8-byte instruction, laid out as the kernel reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(C)]
pub struct Insn {
    /// The opcode: class, size or operation, source.
    pub code: u8,
    /// dst_reg in the low four bits, src_reg in the high four.
    pub regs: u8,
    /// Memory offset or jump distance.
    pub off: i16,
    /// Immediate operand.
    pub imm: i32,
}

// Instruction classes.
const LD: u8 = 0x00;
const LDX: u8 = 0x01;
const STX: u8 = 0x03;
const JMP: u8 = 0x05;
const ALU64: u8 = 0x07;
// Memory access: mode and size.
const MEM: u8 = 0x60;
const IMM: u8 = 0x00;
const DW: u8 = 0x18;
// Operations, and whether the operand is the immediate (K) or a register (X).
const ADD: u8 = 0x00;
const AND: u8 = 0x50;
const MOV: u8 = 0xb0;
const K: u8 = 0x00;
const X: u8 = 0x08;
const JEQ: u8 = 0x10;
const JNE: u8 = 0x50;
const CALL: u8 = 0x80;
const EXIT: u8 = 0x90;
/// `src_reg` of a 64-bit immediate load whose immediate is a map's fd.
const PSEUDO_MAP_FD: u8 = 1;

/// The registers used: r0 return value, r1-r5 arguments (clobbered by
/// calls; r4 and r5 unused here), r6-r9 kept across calls, r10 the
/// read-only frame pointer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum Reg {
    R0 = 0,
    R1 = 1,
    R2 = 2,
    R3 = 3,
    R6 = 6,
    R7 = 7,
    R8 = 8,
    R9 = 9,
    R10 = 10,
}

/// The width of a load or store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Size {
    /// One byte.
    B,
    /// Two bytes.
    H,
    /// Four bytes.
    W,
    /// Eight bytes.
    DW,
}

impl Size {
    /// The width of a field of `bytes` bytes; None for other widths.
    pub fn of_bytes(bytes: u32) -> Option<Size> {
        Some(match bytes {
            1 => Size::B,
            2 => Size::H,
            4 => Size::W,
            8 => Size::DW,
            _ => return None,
        })
    }

    fn code(self) -> u8 {
        match self {
            Size::W => 0x00,
            Size::H => 0x08,
            Size::B => 0x10,
            Size::DW => DW,
        }
    }
}

/// An instruction; `src` is a register number, or a marker where the
/// instruction has no source register.
fn insn(code: u8, dst: Reg, src: u8, off: i16, imm: i32) -> Insn {
    Insn {
        code,
        regs: (dst as u8) | (src << 4),
        off,
        imm,
    }
}

/// `dst = *(size *)(src + off)`.
pub fn load(size: Size, dst: Reg, src: Reg, off: i16) -> Insn {
    insn(LDX | MEM | size.code(), dst, src as u8, off, 0)
}

/// `*(size *)(dst + off) = src`.
pub fn store(size: Size, dst: Reg, off: i16, src: Reg) -> Insn {
    insn(STX | MEM | size.code(), dst, src as u8, off, 0)
}

/// `dst = src`, 64 bits.
pub fn mov(dst: Reg, src: Reg) -> Insn {
    insn(ALU64 | MOV | X, dst, src as u8, 0, 0)
}

/// `dst = imm`, sign-extended to 64 bits.
pub fn mov_imm(dst: Reg, imm: i32) -> Insn {
    insn(ALU64 | MOV | K, dst, 0, 0, imm)
}

/// `dst += imm`, 64 bits.
pub fn add_imm(dst: Reg, imm: i32) -> Insn {
    insn(ALU64 | ADD | K, dst, 0, 0, imm)
}

/// `dst &= imm`, 64 bits.
pub fn and_imm(dst: Reg, imm: i32) -> Insn {
    insn(ALU64 | AND | K, dst, 0, 0, imm)
}

/// Calls kernel helper number `helper`: arguments in r1-r5, result in r0.
pub fn call(helper: i32) -> Insn {
    insn(JMP | CALL, Reg::R0, 0, 0, helper)
}

/// Returns r0.
pub fn exit() -> Insn {
    insn(JMP | EXIT, Reg::R0, 0, 0, 0)
}

/// `dst = the map behind fd`: two instructions; the kernel replaces the
/// fd with the map's address when it loads the program.
pub fn load_map_fd(dst: Reg, fd: i32) -> [Insn; 2] {
    [
        insn(LD | IMM | DW, dst, PSEUDO_MAP_FD, 0, fd),
        insn(0, Reg::R0, 0, 0, 0),
    ]
}

/// A straight-line program whose conditional jumps all go forward to
/// one label, bound once at the end.
#[derive(Debug, Default)]
pub struct Asm {
    insns: Vec<Insn>,
    /// Jumps to the label, to be given their distance.
    to_label: Vec<usize>,
}

impl Asm {
    /// Appends instructions.
    pub fn push(&mut self, insns: impl IntoIterator<Item = Insn>) {
        self.insns.extend(insns);
    }

    /// `if reg == imm goto label`.
    pub fn jump_if_eq(&mut self, reg: Reg, imm: i32) {
        self.to_label.push(self.insns.len());
        self.insns.push(insn(JMP | JEQ | K, reg, 0, 0, imm));
    }

    /// `if reg != imm goto label`.
    pub fn jump_if_ne(&mut self, reg: Reg, imm: i32) {
        self.to_label.push(self.insns.len());
        self.insns.push(insn(JMP | JNE | K, reg, 0, 0, imm));
    }

    /// Places the label here and returns the program. A jump's offset
    /// counts the instructions after it up to the target.
    pub fn finish_at_label(mut self, tail: impl IntoIterator<Item = Insn>) -> Vec<Insn> {
        let label = self.insns.len();
        for at in self.to_label {
            self.insns[at].off = i16::try_from(label - at - 1).expect("a short program");
        }
        self.insns.extend(tail);
        self.insns
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(i: Insn) -> (u8, u8, i16, i32) {
        (i.code, i.regs, i.off, i.imm)
    }

    #[test]
    fn encodings_are_the_kernels() {
        assert_eq!(std::mem::size_of::<Insn>(), 8);
        assert_eq!(bytes(mov(Reg::R6, Reg::R1)), (0xbf, 0x16, 0, 0));
        assert_eq!(bytes(mov_imm(Reg::R0, 0)), (0xb7, 0x00, 0, 0));
        assert_eq!(
            bytes(load(Size::DW, Reg::R7, Reg::R6, 8)),
            (0x79, 0x67, 8, 0)
        );
        assert_eq!(
            bytes(load(Size::W, Reg::R1, Reg::R7, 1268)),
            (0x61, 0x71, 1268, 0)
        );
        assert_eq!(
            bytes(load(Size::H, Reg::R1, Reg::R9, 0)),
            (0x69, 0x91, 0, 0)
        );
        assert_eq!(
            bytes(load(Size::B, Reg::R1, Reg::R9, 0)),
            (0x71, 0x91, 0, 0)
        );
        assert_eq!(
            bytes(store(Size::DW, Reg::R10, -16, Reg::R1)),
            (0x7b, 0x1a, -16, 0)
        );
        assert_eq!(
            bytes(store(Size::W, Reg::R10, -4, Reg::R1)),
            (0x63, 0x1a, -4, 0)
        );
        assert_eq!(bytes(add_imm(Reg::R2, -16)), (0x07, 0x02, 0, -16));
        assert_eq!(bytes(and_imm(Reg::R1, 0o170000)), (0x57, 0x01, 0, 0o170000));
        assert_eq!(bytes(call(127)), (0x85, 0x00, 0, 127));
        assert_eq!(bytes(exit()), (0x95, 0x00, 0, 0));
        let [lo, hi] = load_map_fd(Reg::R1, 7);
        assert_eq!((bytes(lo), bytes(hi)), ((0x18, 0x11, 0, 7), (0, 0, 0, 0)));
    }

    #[test]
    fn jumps_land_on_the_label() {
        let mut asm = Asm::default();
        asm.jump_if_eq(Reg::R1, 0);
        asm.push([mov_imm(Reg::R2, 1), mov_imm(Reg::R3, 2)]);
        asm.jump_if_ne(Reg::R2, 5);
        let prog = asm.finish_at_label([exit()]);
        assert_eq!(bytes(prog[0]), (0x15, 0x01, 3, 0));
        assert_eq!(bytes(prog[3]), (0x55, 0x02, 0, 5));
        assert_eq!(prog.len(), 5);
    }
}
