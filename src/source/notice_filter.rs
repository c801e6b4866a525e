//! Which destroy notifications the kernel hands to a listener: a classic
//! BPF socket filter over each notification's ports.
//!
//! The kernel runs a netlink socket's filter before it queues a
//! multicast message. A notification the filter rejects neither wakes
//! the listener nor takes room in its buffer, and so never counts among
//! the drops of a full one: with a filter, the drop counter counts only
//! notifications about the sockets asked for. Without one, a watch of an
//! idle port beside a busy one loses (and counts) the busy port's closes.
//!
//! Each notification comes alone in its datagram: the 16-byte nlmsghdr,
//! then struct inet_diag_msg, whose socket id begins with the source
//! (local) and destination (remote) ports in network byte order, at
//! bytes 20 and 22. A classic BPF half-word load reads network order, so
//! the program compares port numbers as they are.
//!
//! The program is pure data, built here and checked by an interpreter in
//! the tests; attaching it is `DestroyListener::restrict`'s job.

use crate::socket::PortRange;

use super::bytecode;

/// Where the local port sits in a notification datagram.
const LOCAL_PORT_AT: u32 = 20;
/// Where the remote port sits.
const REMOTE_PORT_AT: u32 = 22;
/// What the program returns for a notification it keeps: the whole
/// datagram (the kernel trims to this many bytes).
const KEEP: u32 = u32::MAX;
/// And for one it drops.
const DROP: u32 = 0;

/// Which notifications a listener asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NoticeFilter {
    /// Sockets whose local port is in `ports`, or, with `match_remote`,
    /// whose remote port is.
    Ports {
        /// The ports.
        ports: Vec<PortRange>,
        /// Also the sockets whose remote port is in `ports`.
        match_remote: bool,
    },
    /// Sockets without a peer (remote port 0): listeners, bound-only
    /// sockets and unconnected UDP sockets.
    Unconnected,
}

/// A filter program, and whether it passes exactly what was asked.
#[derive(Debug, Clone)]
pub struct NoticeProgram {
    /// The classic BPF instructions.
    pub instructions: Vec<libc::sock_filter>,
    /// False when the ports were too many ranges for one program and a
    /// few gaps between them pass too (the narrowest, as the dump's
    /// filter fills them).
    pub exact: bool,
}

/// The program for `filter`. None when it would pass everything (no
/// ports at all): then no program is needed.
pub fn program(filter: &NoticeFilter) -> Option<NoticeProgram> {
    match filter {
        NoticeFilter::Unconnected => Some(NoticeProgram {
            instructions: vec![
                load_port(REMOTE_PORT_AT),
                jump(libc::BPF_JEQ, 0, 0, 1),
                ret(KEEP),
                ret(DROP),
            ],
            exact: true,
        }),
        NoticeFilter::Ports {
            ports,
            match_remote,
        } => {
            if ports.is_empty() {
                return None;
            }
            let cover = bytecode::kernel_cover(ports, *match_remote);
            let exact = cover == bytecode::normalize(ports);
            let mut instructions = Vec::with_capacity(3 + 6 * cover.len());
            let mut fields = vec![LOCAL_PORT_AT];
            if *match_remote {
                fields.push(REMOTE_PORT_AT);
            }
            for at in fields {
                instructions.push(load_port(at));
                for range in &cover {
                    // lo <= port <= hi keeps; otherwise on to the next
                    // range. Each test jumps at most two instructions,
                    // whatever the number of ranges.
                    instructions.push(jump(libc::BPF_JGE, u32::from(range.lo), 0, 2));
                    instructions.push(jump(libc::BPF_JGT, u32::from(range.hi), 1, 0));
                    instructions.push(ret(KEEP));
                }
            }
            instructions.push(ret(DROP));
            Some(NoticeProgram {
                instructions,
                exact,
            })
        }
    }
}

fn load_port(at: u32) -> libc::sock_filter {
    instruction(libc::BPF_LD | libc::BPF_H | libc::BPF_ABS, 0, 0, at)
}

/// A conditional jump on the accumulator against `k`: `if_true` and
/// `if_false` are how many instructions to skip.
fn jump(test: u32, k: u32, if_true: u8, if_false: u8) -> libc::sock_filter {
    instruction(libc::BPF_JMP | test | libc::BPF_K, if_true, if_false, k)
}

fn ret(k: u32) -> libc::sock_filter {
    instruction(libc::BPF_RET | libc::BPF_K, 0, 0, k)
}

fn instruction(code: u32, jt: u8, jf: u8, k: u32) -> libc::sock_filter {
    libc::sock_filter {
        code: code as u16,
        jt,
        jf,
        k,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs the instructions this module emits on a datagram whose local
    /// and remote ports are given: true when it is kept. Any other
    /// instruction, a jump past the end or a program that runs off its
    /// end fails the test, as the kernel's checker would refuse it.
    fn keeps(program: &[libc::sock_filter], local: u16, remote: u16) -> bool {
        let mut datagram = [0u8; 72 + 16];
        datagram[20..22].copy_from_slice(&local.to_be_bytes());
        datagram[22..24].copy_from_slice(&remote.to_be_bytes());
        let mut accumulator = 0u32;
        let mut pc = 0usize;
        loop {
            let insn = program.get(pc).expect("the program runs off its end");
            let code = u32::from(insn.code);
            pc += 1;
            if code == libc::BPF_LD | libc::BPF_H | libc::BPF_ABS {
                let at = insn.k as usize;
                accumulator = u32::from(u16::from_be_bytes([datagram[at], datagram[at + 1]]));
            } else if code == libc::BPF_RET | libc::BPF_K {
                return insn.k != 0;
            } else if code & 0x07 == libc::BPF_JMP {
                let taken = match code & 0xf0 {
                    libc::BPF_JEQ => accumulator == insn.k,
                    libc::BPF_JGE => accumulator >= insn.k,
                    libc::BPF_JGT => accumulator > insn.k,
                    other => panic!("unexpected jump {other:#x}"),
                };
                pc += usize::from(if taken { insn.jt } else { insn.jf });
                assert!(pc < program.len(), "a jump past the end");
            } else {
                panic!("unexpected instruction {code:#x}");
            }
        }
    }

    fn ranges(list: &[(u16, u16)]) -> Vec<PortRange> {
        list.iter().map(|&(lo, hi)| PortRange { lo, hi }).collect()
    }

    #[test]
    fn a_port_filter_keeps_exactly_the_local_ports_asked_for() {
        let asked = ranges(&[(22, 22), (8000, 8080), (65535, 65535)]);
        let filter = NoticeFilter::Ports {
            ports: asked.clone(),
            match_remote: false,
        };
        let program = program(&filter).unwrap();
        assert!(program.exact);
        assert!(program.instructions.len() <= libc::BPF_MAXINSNS as usize);
        for port in 0..=u16::MAX {
            let wanted = asked.iter().any(|r| r.contains(port));
            assert_eq!(keeps(&program.instructions, port, 40000), wanted, "{port}");
        }
        // The remote port alone does not keep one.
        assert!(!keeps(&program.instructions, 40000, 22));
    }

    #[test]
    fn with_remote_either_port_keeps_a_notification() {
        let filter = NoticeFilter::Ports {
            ports: ranges(&[(7000, 7001)]),
            match_remote: true,
        };
        let program = program(&filter).unwrap();
        assert!(keeps(&program.instructions, 7001, 50000));
        assert!(keeps(&program.instructions, 50000, 7000));
        assert!(!keeps(&program.instructions, 50000, 7002));
        assert!(!keeps(&program.instructions, 6999, 0));
    }

    #[test]
    fn too_many_ranges_are_covered_and_said_to_be() {
        // Every odd port: far more ranges than one program holds.
        let odd: Vec<PortRange> = (1..=u16::MAX).step_by(2).map(PortRange::single).collect();
        let filter = NoticeFilter::Ports {
            ports: odd.clone(),
            match_remote: true,
        };
        let program = program(&filter).unwrap();
        assert!(!program.exact);
        assert!(program.instructions.len() <= libc::BPF_MAXINSNS as usize);
        for port in odd.iter().map(|r| r.lo) {
            assert!(keeps(&program.instructions, port, 0), "{port}");
            assert!(keeps(&program.instructions, 2, port), "{port}");
        }
    }

    #[test]
    fn the_unconnected_filter_keeps_sockets_without_a_peer() {
        let program = program(&NoticeFilter::Unconnected).unwrap();
        assert!(keeps(&program.instructions, 8080, 0));
        assert!(!keeps(&program.instructions, 8080, 51000));
    }

    #[test]
    fn no_ports_need_no_program() {
        let filter = NoticeFilter::Ports {
            ports: Vec::new(),
            match_remote: false,
        };
        assert!(program(&filter).is_none());
    }
}
