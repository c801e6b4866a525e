//! The inet_diag filter program (INET_DIAG_REQ_BYTECODE) that tests a
//! socket's port in the kernel, and the choice of what to ask of it.
//!
//! A program is a list of 4-byte ops: code (u8), `yes` (u8), `no` (u16).
//! The kernel steps `yes` bytes forward when a test holds and `no` bytes
//! when it fails; a program accepts a socket when it lands exactly on its
//! end, and rejects it when it lands 4 bytes past the end. A port
//! comparison is two ops: the test, then one whose `no` holds the port.
//! The kernel's checker (inet_diag_bc_audit) walks the chain of `yes`
//! steps from the start and requires every `no` target to lie on it, or
//! at the end, or 4 bytes past the end; every op here steps `yes` to the
//! next op, so every op is on that chain.
//!
//! What bounds a program:
//! - the encoding: the attribute that carries it has a 16-bit length that
//!   counts its 4-byte header, and a `no` offset is 16 bits and may reach
//!   4 bytes past the end, so a program is at most 65,528 bytes;
//! - the checker's time: for each `no` that lands inside the program it
//!   walks the chain from the start, so its cost grows with the square of
//!   the program's length, and the kernel pays it on every dump
//!   (3,276 two-test clauses took it about 35 ms per dump).
//!
//! So the kernel is never sent more than `MAX_CLAUSES` ranges: past that,
//! `kernel_cover` fills the narrowest gaps between ranges until they
//! fit, and the kernel is asked for that superset. The exact test then
//! runs in lsport on every socket a dump returns (see netlink.rs).
//!
//! The program is a binary search: each test halves the ranges left, so
//! the kernel spends about log2(ranges) + 3 ops on a socket, where a list
//! of clauses tried one after another spends up to two per range.
//!
//! A program may also ask that the socket's cgroup be one of a few ids
//! (INET_DIAG_BC_CGROUP_COND, Linux 5.8+): after the port test, where a
//! port test accepts, each id is tried in turn. An op of 4 bytes and the
//! id (a native-endian u64) make 12 bytes; the test that holds falls
//! through to a jump to the end, the one that fails skips it to the next
//! id, so every op still lies on the chain of `yes` steps. A kernel that
//! does not know the op refuses the program (EINVAL); the dump then asks
//! again without it, and lsport tests the cgroup itself.

use crate::socket::PortRange;

// inet_diag bytecode operations (include/uapi/linux/inet_diag.h).
pub const INET_DIAG_BC_JMP: u8 = 1;
pub const INET_DIAG_BC_S_GE: u8 = 2;
pub const INET_DIAG_BC_S_LE: u8 = 3;
pub const INET_DIAG_BC_D_GE: u8 = 4;
pub const INET_DIAG_BC_D_LE: u8 = 5;
/// True for a socket whose port the kernel chose (no SOCK_BINDPORT_LOCK):
/// iproute2's `autobound`.
pub const INET_DIAG_BC_AUTO: u8 = 6;
/// True for a socket created in the cgroup whose id follows (5.8+).
pub const INET_DIAG_BC_CGROUP_COND: u8 = 13;

/// sizeof(struct inet_diag_bc_op), and the size of a jump.
const JUMP_LEN: u8 = 4;
/// A port comparison: the op, then one that carries the port.
const COMPARISON_LEN: u8 = 8;
/// A cgroup test: the op, then the u64 id.
const CGROUP_TEST_LEN: u8 = 12;
/// sizeof(struct nlattr): the attribute header before the program.
pub const ATTRIBUTE_HEADER_LEN: usize = 4;

/// The longest program that can be encoded: the attribute length (header
/// included) must fit in a u16, and so must a jump from the first op to
/// 4 bytes past the end; programs are whole ops, so a multiple of 4.
pub const MAX_ENCODABLE_LEN: usize = (u16::MAX as usize - ATTRIBUTE_HEADER_LEN) & !3;

/// How many ranges one program tests at most, a range tested on both the
/// local and the remote port counting twice. A program of this many is
/// about 5 KiB, a twelfth of what can be encoded, and costs the kernel's
/// checker about 100,000 steps (150,000 with remote ports), some 0.1 ms
/// per dump; twice as many would cost four times that. The request stays
/// far below the default socket send buffer, and the kernel's echo of it
/// in an error fits the receive buffer even without NETLINK_CAP_ACK.
pub const MAX_CLAUSES: usize = 256;

/// How many cgroup ids one program tests at most. Each costs the kernel
/// one op per socket that reaches it, and its checker a walk of the chain;
/// past this many (a unit with a large subtree) the kernel filters on the
/// ports alone and lsport tests the cgroup.
pub const MAX_CGROUP_IDS: usize = 64;

/// The program could not be encoded: some length or jump does not fit in
/// its field. Never sent; the caller asks for a coarser filter or none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProgramTooLong {
    pub len: usize,
}

impl std::fmt::Display for ProgramTooLong {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "a port filter of {} bytes does not fit in an inet_diag attribute (at most {MAX_ENCODABLE_LEN})",
            self.len
        )
    }
}

/// Sorts ranges and merges the ones that overlap or touch. Callers
/// normally pass ranges already in this form; the filter does not
/// depend on it.
pub fn normalize(ranges: &[PortRange]) -> Vec<PortRange> {
    let mut sorted = ranges.to_vec();
    sorted.sort_unstable();
    let mut merged: Vec<PortRange> = Vec::with_capacity(sorted.len());
    for range in sorted {
        match merged.last_mut() {
            Some(last) if u32::from(range.lo) <= u32::from(last.hi) + 1 => {
                last.hi = last.hi.max(range.hi);
            }
            _ => merged.push(range),
        }
    }
    merged
}

/// Whether a port is in ranges that `normalize` returned.
pub fn contains(ranges: &[PortRange], port: u16) -> bool {
    let at = ranges.partition_point(|range| range.hi < port);
    ranges.get(at).is_some_and(|range| range.lo <= port)
}

/// The ranges the kernel is asked to filter on: `ranges` normalized,
/// and, when they are more than one program holds, merged across their
/// narrowest gaps until they fit. The result always covers `ranges`;
/// it equals them when they fit. Filling the narrowest gaps adds the
/// fewest ports, so the fewest extra sockets for lsport to decode and
/// drop.
pub fn kernel_cover(ranges: &[PortRange], match_remote: bool) -> Vec<PortRange> {
    let ranges = normalize(ranges);
    let max = if match_remote {
        MAX_CLAUSES / 2
    } else {
        MAX_CLAUSES
    };
    if ranges.len() <= max {
        return ranges;
    }
    // Gap i lies between ranges i and i + 1; keep the max - 1 widest (the
    // first of equal ones), fill the others.
    let mut gaps: Vec<(u32, usize)> = ranges
        .windows(2)
        .enumerate()
        .map(|(i, pair)| (u32::from(pair[1].lo) - u32::from(pair[0].hi) - 1, i))
        .collect();
    gaps.sort_unstable_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    let mut kept = vec![false; gaps.len()];
    for &(_, i) in &gaps[..max - 1] {
        kept[i] = true;
    }
    let mut cover = Vec::with_capacity(max);
    let mut current = ranges[0];
    for (i, next) in ranges[1..].iter().enumerate() {
        if kept[i] {
            cover.push(current);
            current = *next;
        } else {
            current.hi = next.hi;
        }
    }
    cover.push(current);
    cover
}

/// The program "local port in `ranges`", or with `match_remote` "local
/// or remote port in `ranges`". Any number of ranges may be passed; past
/// what can be encoded the answer is an error, never a program whose
/// lengths or jumps wrapped.
pub fn compile(ranges: &[PortRange], match_remote: bool) -> Result<Vec<u8>, ProgramTooLong> {
    compile_with_cgroups(ranges, match_remote, None)
}

/// [`compile`], and, with `cgroups`, "and the socket's cgroup id is one
/// of `cgroups`". An empty `ranges` tests no port (every port passes);
/// an empty list of cgroups passes no socket.
pub fn compile_with_cgroups(
    ranges: &[PortRange],
    match_remote: bool,
    cgroups: Option<&[u64]>,
) -> Result<Vec<u8>, ProgramTooLong> {
    let ranges = normalize(ranges);
    let mut builder = Builder::default();
    let ports_passed = match cgroups {
        Some(_) => Target::Label(builder.label()),
        None => Target::Accept,
    };
    let local = Side {
        ge: INET_DIAG_BC_S_GE,
        le: INET_DIAG_BC_S_LE,
    };
    if ranges.is_empty() && cgroups.is_some() {
        // No port asked: the cgroup test alone.
    } else if match_remote {
        let remote_side = builder.label();
        builder.search(
            &ranges,
            Known::ALL,
            local,
            ports_passed,
            Target::Label(remote_side),
        );
        builder.bind(remote_side);
        let remote = Side {
            ge: INET_DIAG_BC_D_GE,
            le: INET_DIAG_BC_D_LE,
        };
        builder.search(&ranges, Known::ALL, remote, ports_passed, Target::Reject);
    } else {
        builder.search(&ranges, Known::ALL, local, ports_passed, Target::Reject);
    }
    if let (Some(ids), Target::Label(label)) = (cgroups, ports_passed) {
        builder.bind(label);
        builder.any_cgroup(ids);
    }
    builder.encode()
}

/// Where a failed test goes.
#[derive(Debug, Clone, Copy)]
enum Target {
    /// The end of the program: the socket is kept.
    Accept,
    /// 4 bytes past the end: the socket is dropped.
    Reject,
    /// An op placed later, named by `Builder::label`.
    Label(usize),
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    /// A port comparison with its operand.
    Compare(u8, u16),
    /// The socket's cgroup id equals this one.
    Cgroup(u64),
    /// An unconditional jump (the kernel always takes its `no`).
    Jump,
}

#[derive(Debug, Clone, Copy)]
struct Op {
    kind: Kind,
    no: Target,
}

impl Op {
    fn len(self) -> u8 {
        match self.kind {
            Kind::Compare(..) => COMPARISON_LEN,
            Kind::Cgroup(_) => CGROUP_TEST_LEN,
            Kind::Jump => JUMP_LEN,
        }
    }
}

/// The comparison codes of one side: local or remote port.
#[derive(Debug, Clone, Copy)]
struct Side {
    ge: u8,
    le: u8,
}

/// What the tests so far have established: `lo <= port <= hi`.
#[derive(Debug, Clone, Copy)]
struct Known {
    lo: u16,
    hi: u16,
}

impl Known {
    const ALL: Known = Known {
        lo: 0,
        hi: u16::MAX,
    };
}

/// Ops with symbolic targets; `encode` lays them out and computes the
/// offsets once every length is known.
#[derive(Default)]
struct Builder {
    ops: Vec<Op>,
    /// The op index each label stands for, once bound.
    labels: Vec<Option<usize>>,
}

impl Builder {
    fn label(&mut self) -> usize {
        self.labels.push(None);
        self.labels.len() - 1
    }

    /// The next op pushed is where `label` leads.
    fn bind(&mut self, label: usize) {
        self.labels[label] = Some(self.ops.len());
    }

    fn push(&mut self, kind: Kind, no: Target) {
        self.ops.push(Op { kind, no });
    }

    /// Ops that go to `accept` for a port in `ranges` (sorted, disjoint)
    /// and to `reject` otherwise, for a port known to lie in `known` and
    /// in no range outside `ranges`. The test that splits the ranges
    /// falls through to the upper half and jumps to the lower half, which
    /// follows it; a lone range is tested on the bounds not yet known.
    fn search(
        &mut self,
        ranges: &[PortRange],
        known: Known,
        side: Side,
        accept: Target,
        reject: Target,
    ) {
        match ranges {
            [] => self.push(Kind::Jump, reject),
            [range] => {
                if range.lo > known.lo {
                    self.push(Kind::Compare(side.ge, range.lo), reject);
                }
                if range.hi < known.hi {
                    self.push(Kind::Compare(side.le, range.hi), reject);
                }
                self.push(Kind::Jump, accept);
            }
            _ => {
                let (lower, upper) = ranges.split_at(ranges.len() / 2);
                // Disjoint and sorted: the upper half starts above 0.
                let split = upper[0].lo;
                let lower_half = self.label();
                self.push(Kind::Compare(side.ge, split), Target::Label(lower_half));
                self.search(upper, Known { lo: split, ..known }, side, accept, reject);
                self.bind(lower_half);
                let below = Known {
                    hi: split - 1,
                    ..known
                };
                self.search(lower, below, side, accept, reject);
            }
        }
    }

    /// Ops that accept a socket whose cgroup is one of `ids` and reject
    /// the others: each test that holds falls through to a jump to the
    /// end; one that fails steps over that jump to the next test.
    fn any_cgroup(&mut self, ids: &[u64]) {
        for &id in ids {
            let next = self.label();
            self.push(Kind::Cgroup(id), Target::Label(next));
            self.push(Kind::Jump, Target::Accept);
            self.bind(next);
        }
        self.push(Kind::Jump, Target::Reject);
    }

    fn encode(&self) -> Result<Vec<u8>, ProgramTooLong> {
        let mut offsets = Vec::with_capacity(self.ops.len() + 1);
        let mut at = 0usize;
        for op in &self.ops {
            offsets.push(at);
            at += usize::from(op.len());
        }
        offsets.push(at);
        let len = at;
        let too_long = ProgramTooLong { len };
        if len > MAX_ENCODABLE_LEN {
            return Err(too_long);
        }
        let mut program = Vec::with_capacity(len);
        for (op, &here) in self.ops.iter().zip(&offsets) {
            let target = match op.no {
                Target::Accept => len,
                Target::Reject => len + 4,
                Target::Label(label) => {
                    let index = self.labels[label].ok_or_else(|| too_long.clone())?;
                    offsets[index]
                }
            };
            // Forward, past the op itself, and within 16 bits.
            let no = target
                .checked_sub(here)
                .filter(|&no| no >= usize::from(op.len()))
                .and_then(|no| u16::try_from(no).ok())
                .ok_or_else(|| too_long.clone())?;
            match op.kind {
                Kind::Compare(code, port) => {
                    push_op(&mut program, code, op.len(), no);
                    push_op(&mut program, 0, 0, port);
                }
                Kind::Cgroup(id) => {
                    push_op(&mut program, INET_DIAG_BC_CGROUP_COND, op.len(), no);
                    program.extend_from_slice(&id.to_ne_bytes());
                }
                Kind::Jump => push_op(&mut program, INET_DIAG_BC_JMP, op.len(), no),
            }
        }
        debug_assert_eq!(program.len(), len);
        Ok(program)
    }
}

/// A program that keeps one of two halves of the sockets, for two dumps
/// run side by side: with `upper`, the sockets that have exactly one of
/// their two ports at or above `split`; without, the others. Nearly
/// every connection has one port the kernel picked from the ephemeral
/// range (the local port of an outgoing connection, the remote port of
/// an accepted one), spread over that range: split at its middle, each
/// half gets about half of the connections, of either side.
pub fn half(split: u16, upper: bool) -> Vec<u8> {
    let (one_above, else_) = if upper {
        (Target::Accept, Target::Reject)
    } else {
        (Target::Reject, Target::Accept)
    };
    let mut builder = Builder::default();
    let local_below = builder.label();
    builder.push(
        Kind::Compare(INET_DIAG_BC_S_GE, split),
        Target::Label(local_below),
    );
    // The local port is at or above: exactly one is when the remote
    // port is below.
    builder.push(Kind::Compare(INET_DIAG_BC_D_GE, split), one_above);
    builder.push(Kind::Jump, else_);
    builder.bind(local_below);
    builder.push(Kind::Compare(INET_DIAG_BC_D_GE, split), else_);
    builder.push(Kind::Jump, one_above);
    builder.encode().expect("five ops are far below any limit")
}

/// `program` (or every socket, for None) narrowed to the sockets whose
/// port the kernel chose: one AUTO op in front, whose "no" jumps past
/// the end, which rejects the socket.
pub fn autobound_only(program: Option<Vec<u8>>) -> Result<Vec<u8>, ProgramTooLong> {
    let rest = program.unwrap_or_default();
    let reject = u16::try_from(usize::from(JUMP_LEN) + rest.len() + usize::from(JUMP_LEN))
        .map_err(|_| ProgramTooLong { len: rest.len() })?;
    let mut out = Vec::with_capacity(rest.len() + usize::from(JUMP_LEN));
    push_op(&mut out, INET_DIAG_BC_AUTO, JUMP_LEN, reject);
    out.extend_from_slice(&rest);
    Ok(out)
}

fn push_op(program: &mut Vec<u8>, code: u8, yes: u8, no: u16) {
    program.push(code);
    program.push(yes);
    program.extend_from_slice(&no.to_ne_bytes());
}

/// The kernel's side of a program, for tests here and in netlink.rs.
#[cfg(test)]
pub mod kernel {
    use super::*;

    /// Runs a program the way inet_diag_bc_run does. Returns whether the
    /// socket is kept, and how many ops the kernel ran.
    pub fn run(program: &[u8], sport: u16, dport: u16) -> (bool, usize) {
        run_with(program, sport, dport, false, 0)
    }

    /// `run` for a socket whose port the kernel chose (`auto`) or not.
    pub fn run_auto(program: &[u8], sport: u16, dport: u16, auto: bool) -> (bool, usize) {
        run_with(program, sport, dport, auto, 0)
    }

    /// [`run`] for a socket in cgroup `cgroup` (0 for the sockets the
    /// kernel keeps no cgroup of: TIME_WAIT and request sockets).
    pub fn run_on(program: &[u8], sport: u16, dport: u16, cgroup: u64) -> (bool, usize) {
        run_with(program, sport, dport, false, cgroup)
    }

    /// The interpreter, for a socket with these ports, port lock and cgroup.
    fn run_with(program: &[u8], sport: u16, dport: u16, auto: bool, cgroup: u64) -> (bool, usize) {
        let mut at = 0usize;
        let mut len = program.len() as isize;
        let mut ops = 0;
        while len > 0 {
            ops += 1;
            let code = program[at];
            let yes = program[at + 1] as usize;
            let no = u16::from_ne_bytes([program[at + 2], program[at + 3]]) as usize;
            let arg = || u16::from_ne_bytes([program[at + 6], program[at + 7]]);
            let taken = match code {
                INET_DIAG_BC_JMP => false,
                INET_DIAG_BC_AUTO => auto,
                INET_DIAG_BC_S_GE => sport >= arg(),
                INET_DIAG_BC_S_LE => sport <= arg(),
                INET_DIAG_BC_D_GE => dport >= arg(),
                INET_DIAG_BC_D_LE => dport <= arg(),
                INET_DIAG_BC_CGROUP_COND => {
                    let id = u64::from_ne_bytes(program[at + 4..at + 12].try_into().unwrap());
                    cgroup == id
                }
                _ => panic!("unknown op {code}"),
            };
            let step = if taken { yes } else { no };
            at += step;
            len -= step as isize;
        }
        (len == 0, ops)
    }

    /// Whether a program runs to the end and keeps the socket.
    pub fn keeps(program: &[u8], sport: u16, dport: u16) -> bool {
        run(program, sport, dport).0
    }

    /// The kernel's checker, inet_diag_bc_audit with valid_cc, on the
    /// program as the attribute carries it (so the length is what a u16
    /// attribute length says). Returns the steps valid_cc took, the
    /// checker's cost, or None where the kernel answers EINVAL.
    pub fn audit(program: &[u8]) -> Option<u64> {
        let attribute_len = u16::try_from(program.len() + ATTRIBUTE_HEADER_LEN).ok()?;
        let program = &program[..usize::from(attribute_len) - ATTRIBUTE_HEADER_LEN];
        let mut steps = 0u64;
        let mut valid_cc = |cc: isize| {
            let mut len = program.len() as isize;
            let mut at = 0usize;
            while len >= 0 {
                steps += 1;
                if cc > len {
                    return false;
                }
                if cc == len {
                    return true;
                }
                let yes = program[at + 1] as isize;
                if yes < 4 || yes & 3 != 0 {
                    return false;
                }
                len -= yes;
                at += yes as usize;
            }
            false
        };
        let mut len = program.len() as isize;
        if len < 4 {
            return None;
        }
        let mut at = 0usize;
        while len > 0 {
            let code = program[at];
            let min_len = match code {
                INET_DIAG_BC_JMP | INET_DIAG_BC_AUTO => 4,
                INET_DIAG_BC_S_GE | INET_DIAG_BC_S_LE | INET_DIAG_BC_D_GE | INET_DIAG_BC_D_LE => {
                    if len < 8 {
                        return None;
                    }
                    8
                }
                // valid_cgroupcond: the op and a u64.
                INET_DIAG_BC_CGROUP_COND => {
                    if len < 12 {
                        return None;
                    }
                    12
                }
                _ => return None,
            };
            let yes = program[at + 1] as isize;
            let no = u16::from_ne_bytes([program[at + 2], program[at + 3]]) as isize;
            if no < min_len || no > len + 4 || no & 3 != 0 {
                return None;
            }
            if no < len && !valid_cc(len - no) {
                return None;
            }
            if yes < min_len || yes > len + 4 || yes & 3 != 0 {
                return None;
            }
            at += yes as usize;
            len -= yes;
        }
        (len == 0).then_some(steps)
    }
}

#[cfg(test)]
mod tests {
    use super::kernel::{audit, keeps, run, run_on};
    use super::*;

    #[test]
    fn the_two_halves_keep_every_socket_once() {
        for split in [1u16, 2, 46_884, 65_535] {
            let upper = half(split, true);
            let lower = half(split, false);
            assert!(audit(&upper).is_some() && audit(&lower).is_some());
            let ports = [
                0u16,
                1,
                80,
                split - 1,
                split,
                split.saturating_add(1),
                65_535,
            ];
            for sport in ports {
                for dport in ports {
                    let exactly_one_above = (sport >= split) != (dport >= split);
                    assert_eq!(keeps(&upper, sport, dport), exactly_one_above);
                    assert_eq!(keeps(&lower, sport, dport), !exactly_one_above);
                }
            }
        }
    }

    /// Every odd port from `first` up to `last`, `step` apart, as single
    /// ranges: what `lsport $(seq first step last)` asks.
    fn seq(first: u16, step: u16, last: u16) -> Vec<PortRange> {
        (first..=last)
            .step_by(usize::from(step))
            .map(PortRange::single)
            .collect()
    }

    /// n single ports two apart, from 1: `seq 1 2 (2n - 1)`.
    fn odd_ports(n: usize) -> Vec<PortRange> {
        (0..n)
            .map(|i| PortRange::single(u16::try_from(2 * i + 1).unwrap()))
            .collect()
    }

    /// The most ops the kernel runs on one socket, over every local port
    /// (and, with a remote side, every remote port against a local port
    /// the program does not keep).
    fn check_program(program: &[u8], cover: &[PortRange], match_remote: bool) -> usize {
        assert!(program.len() <= MAX_ENCODABLE_LEN);
        assert!(audit(program).is_some(), "the kernel's checker refuses it");
        let outside = (0..=u16::MAX).find(|&p| !contains(cover, p));
        let mut most = 0;
        for port in 0..=u16::MAX {
            let expected = contains(cover, port);
            // The remote port is one the filter does not want, if any.
            let (kept, ops) = run(program, port, outside.unwrap_or(port));
            assert_eq!(
                kept,
                expected || (match_remote && outside.is_none()),
                "local {port}"
            );
            most = most.max(ops);
            if match_remote {
                if let Some(outside) = outside {
                    let (kept, ops) = run(program, outside, port);
                    assert_eq!(kept, expected, "remote {port}");
                    most = most.max(ops);
                }
            }
        }
        most
    }

    /// What the kernel is sent for `ranges` is encodable, passes its
    /// checker, is cheap to check and run, and keeps exactly the ports of
    /// a cover of `ranges` (the ranges themselves when they fit).
    fn check_request(ranges: &[PortRange], match_remote: bool) {
        let exact = normalize(ranges);
        let cover = kernel_cover(ranges, match_remote);
        let per_range = if match_remote { 2 } else { 1 };
        if exact.len() * per_range <= MAX_CLAUSES {
            assert_eq!(cover, exact);
        } else {
            assert_eq!(cover.len() * per_range, MAX_CLAUSES);
        }
        for port in 0..=u16::MAX {
            if contains(&exact, port) {
                assert!(contains(&cover, port), "the cover drops {port}");
            }
        }
        let program = compile(&cover, match_remote).unwrap();
        let steps = audit(&program).unwrap();
        assert!(
            steps < 1_000_000,
            "the kernel's checker takes {steps} steps"
        );
        let most = check_program(&program, &cover, match_remote);
        assert!(most <= 2 * 14, "{most} ops on one socket");
    }

    #[test]
    fn a_single_port_filter_matches_only_that_local_port() {
        let program = compile(&[PortRange::single(8080)], false).unwrap();
        assert!(audit(&program).is_some());
        assert!(keeps(&program, 8080, 1));
        assert!(!keeps(&program, 8079, 8080));
        assert!(!keeps(&program, 8081, 8080));
        // GE, LE, and the jump to the end.
        assert_eq!(program.len(), 8 + 8 + 4);
    }

    #[test]
    fn ranges_and_remote_ports_are_alternatives() {
        let ports = [PortRange::single(22), PortRange { lo: 8000, hi: 8100 }];
        let program = compile(&ports, true).unwrap();
        assert!(audit(&program).is_some());
        for (sport, dport, expected) in [
            (22, 5, true),
            (8000, 5, true),
            (8100, 5, true),
            (8101, 5, false),
            (5, 22, true),
            (5, 8050, true),
            (5, 7999, false),
            (23, 21, false),
        ] {
            assert_eq!(
                keeps(&program, sport, dport),
                expected,
                "sport {sport} dport {dport}"
            );
        }
    }

    #[test]
    fn the_ends_of_the_port_space_need_no_test() {
        for (ranges, len) in [
            (vec![PortRange { lo: 0, hi: 100 }], 8 + 4),
            (
                vec![PortRange {
                    lo: 65000,
                    hi: 65535,
                }],
                8 + 4,
            ),
            (vec![PortRange { lo: 0, hi: 65535 }], 4),
        ] {
            let program = compile(&ranges, false).unwrap();
            assert_eq!(program.len(), len, "{ranges:?}");
            check_program(&program, &ranges, false);
        }
    }

    #[test]
    fn ranges_out_of_order_or_overlapping_are_merged_first() {
        let ranges = [
            PortRange { lo: 8050, hi: 8200 },
            PortRange::single(65535),
            PortRange { lo: 8000, hi: 8100 },
            PortRange::single(0),
            PortRange::single(1),
        ];
        let merged = normalize(&ranges);
        assert_eq!(
            merged,
            [
                PortRange { lo: 0, hi: 1 },
                PortRange { lo: 8000, hi: 8200 },
                PortRange::single(65535)
            ]
        );
        let program = compile(&ranges, true).unwrap();
        check_program(&program, &merged, true);
    }

    #[test]
    fn no_ranges_keep_nothing() {
        let program = compile(&[], false).unwrap();
        assert!(audit(&program).is_some());
        assert!(!keeps(&program, 1, 1));
    }

    #[test]
    fn a_program_that_cannot_be_encoded_is_an_error_not_a_wrapped_one() {
        // Where the old lists of clauses wrapped or were refused, and far
        // past: whatever compiles is encodable and exact.
        for n in [
            1, 2, 3, 1000, 2000, 2600, 2800, 3276, 3277, 6553, 16384, 32768,
        ] {
            for match_remote in [false, true] {
                let ranges = odd_ports(n);
                match compile(&ranges, match_remote) {
                    Ok(program) => {
                        check_program(&program, &ranges, match_remote);
                    }
                    Err(err) => {
                        assert!(err.len > MAX_ENCODABLE_LEN, "{n}: {err}");
                        assert!(n > 1000, "{n} ranges should fit");
                    }
                }
            }
        }
        assert!(compile(&odd_ports(32768), false).is_err());
    }

    #[test]
    fn the_largest_program_sent_is_small_and_cheap_for_the_kernel() {
        for match_remote in [false, true] {
            let cover = kernel_cover(&odd_ports(32768), match_remote);
            let program = compile(&cover, match_remote).unwrap();
            assert!(program.len() <= 6 * 1024, "{} bytes", program.len());
            let steps = audit(&program).unwrap();
            assert!(steps < 160_000, "{steps} checker steps");
        }
    }

    #[test]
    fn at_the_old_limits_the_kernel_gets_a_program_that_fits() {
        // 3,276: the last count the old clauses could encode; 3,277: one
        // past; 6,553: the last that passed the checker; 16,384: where the
        // old program wrapped into a valid, truncated one.
        for n in [3276, 3277, 6553, 16384] {
            check_request(&odd_ports(n), false);
        }
    }

    #[test]
    fn at_the_old_limits_with_remote_ports_too() {
        // 1,638 / 1,639: the old limit with --remote.
        for n in [1638, 1639, 3276, 3277, 6553, 16384] {
            check_request(&odd_ports(n), true);
        }
    }

    #[test]
    fn every_odd_port_and_other_long_lists() {
        for match_remote in [false, true] {
            check_request(&seq(1, 2, 65535), match_remote);
            check_request(&seq(1000, 3, 30000), match_remote);
            check_request(&seq(1, 2, 39199), match_remote);
        }
    }

    #[test]
    fn up_to_the_limit_the_kernel_filters_exactly() {
        for (n, match_remote) in [(MAX_CLAUSES, false), (MAX_CLAUSES / 2, true)] {
            let ranges = odd_ports(n);
            assert_eq!(kernel_cover(&ranges, match_remote), ranges);
            check_request(&ranges, match_remote);
            let over = odd_ports(n + 1);
            let cover = kernel_cover(&over, match_remote);
            assert_eq!(cover.len(), n);
            // One gap filled: the last two ports became one range.
            assert_eq!(cover[..n - 1], over[..n - 1]);
        }
    }

    #[test]
    fn the_cover_fills_the_narrowest_gaps() {
        // Gaps of 1, 100, 2 and 1000, then ports 10 apart (gaps of 9),
        // three ranges more than fit: the gaps of 1 and 2 are filled, and
        // the last of the gaps of 9.
        let mut ranges = vec![
            PortRange::single(10),
            PortRange::single(12),
            PortRange::single(113),
            PortRange::single(116),
            PortRange::single(1117),
        ];
        let padding = MAX_CLAUSES + 3 - ranges.len();
        ranges.extend(
            (0..padding).map(|i| PortRange::single(u16::try_from(20_000 + 10 * i).unwrap())),
        );
        let cover = kernel_cover(&ranges, false);
        assert_eq!(cover.len(), MAX_CLAUSES);
        assert_eq!(
            cover[..4],
            [
                PortRange { lo: 10, hi: 12 },
                PortRange { lo: 113, hi: 116 },
                PortRange::single(1117),
                PortRange::single(20_000),
            ]
        );
        let last = ranges.len() - 1;
        assert_eq!(
            cover[MAX_CLAUSES - 1],
            PortRange {
                lo: ranges[last - 1].lo,
                hi: ranges[last].hi
            }
        );
        assert_eq!(cover[4..MAX_CLAUSES - 1], ranges[6..last - 1]);
    }

    /// Every port against sockets in and out of the cgroups asked: the
    /// program passes the checker and keeps exactly the sockets on a
    /// port asked (or any port, for no ranges) and in one of the ids.
    fn check_cgroups(ranges: &[PortRange], match_remote: bool, ids: &[u64]) {
        let program = compile_with_cgroups(ranges, match_remote, Some(ids)).unwrap();
        assert!(program.len() <= MAX_ENCODABLE_LEN);
        let steps = audit(&program).expect("the kernel's checker refuses it");
        assert!(steps < 1_000_000, "{steps} checker steps");
        let exact = normalize(ranges);
        let outside = (0..=u16::MAX).find(|&p| !contains(&exact, p)).unwrap_or(0);
        let others = [0u64, 1, u64::MAX, 0x1_0000_0000];
        let probes: Vec<u64> = ids.iter().copied().chain(others).collect();
        for port in (0..=u16::MAX).step_by(7).chain(exact.iter().map(|r| r.lo)) {
            let port_ok = exact.is_empty() || contains(&exact, port);
            for &cgroup in &probes {
                let in_ids = ids.contains(&cgroup);
                let (kept, _) = run_on(&program, port, outside, cgroup);
                assert_eq!(kept, port_ok && in_ids, "port {port}, cgroup {cgroup}");
                if match_remote && !exact.is_empty() {
                    let (kept, _) = run_on(&program, outside, port, cgroup);
                    assert_eq!(kept, port_ok && in_ids, "remote {port}, cgroup {cgroup}");
                }
            }
        }
    }

    #[test]
    fn a_cgroup_test_alone_keeps_only_those_cgroups() {
        check_cgroups(&[], false, &[42]);
        check_cgroups(&[], false, &[42, 7, 0x1234_5678_9abc]);
        // One id: the test, its jump to the end, the final rejection.
        let program = compile_with_cgroups(&[], false, Some(&[42])).unwrap();
        assert_eq!(program.len(), 12 + 4 + 4);
        assert_eq!(program[0], INET_DIAG_BC_CGROUP_COND);
        assert_eq!(&program[4..12], &42u64.to_ne_bytes());
    }

    #[test]
    fn a_cgroup_test_follows_the_port_test() {
        check_cgroups(&[PortRange::single(8080)], false, &[5, 9]);
        check_cgroups(
            &[PortRange::single(22), PortRange { lo: 8000, hi: 8100 }],
            true,
            &[5],
        );
        let program = compile_with_cgroups(&[PortRange::single(8080)], false, Some(&[5])).unwrap();
        assert!(keeps_in(&program, 8080, 5));
        assert!(!keeps_in(&program, 8080, 6));
        assert!(!keeps_in(&program, 8081, 5));
        // A TIME_WAIT socket: the kernel gives it cgroup 0.
        assert!(!keeps_in(&program, 8080, 0));
    }

    #[test]
    fn the_most_ranges_and_cgroups_sent_pass_the_checker() {
        let ids: Vec<u64> = (1..=MAX_CGROUP_IDS as u64).map(|i| i * 1000 + 7).collect();
        check_cgroups(&odd_ports(MAX_CLAUSES), false, &ids);
        check_cgroups(&odd_ports(MAX_CLAUSES / 2), true, &ids);
    }

    #[test]
    fn an_empty_list_of_cgroups_keeps_nothing() {
        for ranges in [vec![], vec![PortRange::single(80)]] {
            let program = compile_with_cgroups(&ranges, false, Some(&[])).unwrap();
            assert!(audit(&program).is_some());
            assert!(!keeps_in(&program, 80, 0));
            assert!(!keeps_in(&program, 80, 1));
        }
    }

    fn keeps_in(program: &[u8], sport: u16, cgroup: u64) -> bool {
        run_on(program, sport, 1, cgroup).0
    }

    #[test]
    fn contains_finds_ports_in_merged_ranges() {
        let ranges = normalize(&[PortRange { lo: 5, hi: 9 }, PortRange::single(20)]);
        let inside: Vec<u16> = (0..30).filter(|&p| contains(&ranges, p)).collect();
        assert_eq!(inside, [5, 6, 7, 8, 9, 20]);
        assert!(!contains(&[], 0));
    }

    #[test]
    fn an_autobound_prefix_keeps_only_kernel_chosen_ports_and_passes_the_checker() {
        use super::kernel::{audit, run_auto};
        let ports = [
            PortRange {
                lo: 40000,
                hi: 40099,
            },
            PortRange::single(53),
        ];
        for program in [
            autobound_only(None).unwrap(),
            autobound_only(Some(compile(&ports, false).unwrap())).unwrap(),
            autobound_only(Some(compile(&ports, true).unwrap())).unwrap(),
        ] {
            assert!(audit(&program).is_some(), "the kernel's checker takes it");
            assert!(
                !run_auto(&program, 53, 0, false).0,
                "explicitly bound: dropped"
            );
        }
        let filtered = autobound_only(Some(compile(&ports, false).unwrap())).unwrap();
        assert!(run_auto(&filtered, 40050, 80, true).0);
        assert!(run_auto(&filtered, 53, 80, true).0);
        assert!(
            !run_auto(&filtered, 41000, 80, true).0,
            "the ports still apply"
        );
        assert!(run_auto(&autobound_only(None).unwrap(), 1, 2, true).0);
    }
}
