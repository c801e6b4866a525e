//! Sockets from the text tables /proc/net/{tcp,tcp6,udp,udp6}: the
//! fallback for hosts where sock_diag is refused or missing.
//!
//! The tables cannot filter, so the port and state filters that netlink
//! runs in the kernel run here, line by line, before a socket is kept.
//! They also have blind spots: a TCP socket that is only bound sits in
//! no table the kernel prints, and IPV6_V6ONLY is not shown.
//!
//! Parsing is a pure function over bytes and allocates nothing per
//! line; only `read_table` does I/O. A line that cannot be read is
//! skipped and counted, never fatal: one odd line must not hide the rest.

use std::io::{self, Read};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::socket::PortRange;
use crate::socket::{Endpoint, Family, Protocol, Socket, State};
use crate::sys::ProcRoot;

/// Kernel lines are under 200 bytes; anything far longer is not one.
pub const MAX_LINE: usize = 4096;

/// Which sockets to keep: the same question a netlink dump asks.
#[derive(Debug, Clone, Copy)]
pub struct Filter<'a> {
    /// Bit N set keeps sockets in kernel state N.
    pub states: u32,
    /// Empty keeps every port.
    pub ports: &'a [PortRange],
    /// Also keep sockets whose remote port is in `ports`.
    pub match_remote: bool,
}

/// Every state bit the kernel defines, 1 through 13.
const KNOWN_STATES: u32 = ((1 << 14) - 1) & !1;

impl Filter<'_> {
    /// Every socket (the tests and the fuzz target use it).
    #[cfg_attr(not(test), allow(dead_code))]
    pub fn everything() -> Filter<'static> {
        Filter {
            states: KNOWN_STATES,
            ports: &[],
            match_remote: false,
        }
    }

    fn keeps_state(&self, code: u8) -> bool {
        match 1u32.checked_shl(u32::from(code)) {
            Some(bit) if bit & KNOWN_STATES != 0 => self.states & bit != 0,
            // A state lsport does not know: kept when every state is
            // asked for, as nothing says it is not wanted.
            _ => self.states & KNOWN_STATES == KNOWN_STATES,
        }
    }

    fn keeps_ports(&self, local: u16, remote: u16) -> bool {
        if self.ports.is_empty() {
            return true;
        }
        let hit = |port: u16| self.ports.iter().any(|range| range.contains(port));
        hit(local) || (self.match_remote && hit(remote))
    }
}

/// What one line of a table is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line {
    /// The column titles (`sl local_address ...`).
    Header,
    /// Nothing but whitespace.
    Blank,
    /// A socket, read whole.
    Socket(Socket),
    /// Not a line the kernel writes: skipped and counted.
    Bad,
}

/// Parses one line (without its newline).
pub fn parse_line(line: &[u8], family: Family, protocol: Protocol) -> Line {
    if line.len() > MAX_LINE {
        return Line::Bad;
    }
    let mut fields = line
        .split(|b| b.is_ascii_whitespace())
        .filter(|f| !f.is_empty());
    let Some(first) = fields.next() else {
        return Line::Blank;
    };
    if first == b"sl" {
        return Line::Header;
    }
    parse_fields(first, &mut fields, family, protocol).map_or(Line::Bad, Line::Socket)
}

fn parse_fields<'a>(
    slot: &[u8],
    fields: &mut impl Iterator<Item = &'a [u8]>,
    family: Family,
    protocol: Protocol,
) -> Option<Socket> {
    // `   0:` - the slot number; only its shape is checked.
    let slot = slot.strip_suffix(b":")?;
    if slot.is_empty() || !slot.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let local = endpoint(fields.next()?, family)?;
    let remote = endpoint(fields.next()?, family)?;
    let state = u8::try_from(hex(fields.next()?, 2)?).ok()?;
    // tx_queue:rx_queue, tr:tm->when, retrnsmt: not needed, but there.
    for _ in 0..3 {
        fields.next()?;
    }
    let uid = u32::try_from(decimal(fields.next()?)?).ok()?;
    fields.next()?; // timeout
    let inode = decimal(fields.next()?)?;
    Some(Socket {
        protocol,
        family,
        state: State::from_kernel(state),
        local,
        remote,
        // /proc/net/tcp6 does not print IPV6_V6ONLY.
        v6only: None,
        uid,
        inode,
        // Neither the cookie nor the timer in milliseconds is printed
        // (the timer is in jiffies, whose length lsport cannot know).
        cookie: 0,
        timer_ms: None,
        autobound: None,
        cgroup_id: None,
        // /proc/net/tcp does not print the upper layer protocol.
        mptcp: None,
    })
}

/// `0100007F:1F90`: the address as the kernel stores it, printed as
/// 32-bit words in host byte order, then the port as a number.
fn endpoint(field: &[u8], family: Family) -> Option<Endpoint> {
    let colon = field.iter().position(|b| *b == b':')?;
    let (address, port) = (&field[..colon], &field[colon + 1..]);
    let port = u16::try_from(hex(port, 4)?).ok()?;
    let address = match family {
        Family::Inet if address.len() == 8 => {
            IpAddr::V4(Ipv4Addr::from(word(address)?.to_ne_bytes()))
        }
        Family::Inet6 if address.len() == 32 => {
            let mut bytes = [0u8; 16];
            for (i, chunk) in address.chunks_exact(8).enumerate() {
                bytes[i * 4..i * 4 + 4].copy_from_slice(&word(chunk)?.to_ne_bytes());
            }
            IpAddr::V6(Ipv6Addr::from(bytes))
        }
        _ => return None,
    };
    Some(Endpoint { address, port })
}

fn word(digits: &[u8]) -> Option<u32> {
    u32::try_from(hex(digits, 8)?).ok()
}

/// A hex number of 1 to `max` digits.
fn hex(digits: &[u8], max: usize) -> Option<u64> {
    if digits.is_empty() || digits.len() > max {
        return None;
    }
    digits.iter().try_fold(0u64, |acc, b| {
        let d = (*b as char).to_digit(16)?;
        Some(acc << 4 | u64::from(d))
    })
}

/// A decimal number that fits in a u64.
fn decimal(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || digits.len() > 20 {
        return None;
    }
    digits.iter().try_fold(0u64, |acc, b| {
        let d = (*b as char).to_digit(10)?;
        acc.checked_mul(10)?.checked_add(u64::from(d))
    })
}

/// Parses whole lines of a table, keeping the sockets the filter wants.
/// Returns how many lines were bad.
pub fn parse_table(
    text: &[u8],
    family: Family,
    protocol: Protocol,
    filter: &Filter<'_>,
    out: &mut Vec<Socket>,
) -> usize {
    let mut bad = 0;
    for line in text.split(|b| *b == b'\n') {
        match parse_line(line, family, protocol) {
            Line::Socket(socket) => {
                if filter.keeps_state(socket.state.code())
                    && filter.keeps_ports(socket.local.port, socket.remote.port)
                {
                    out.push(socket);
                }
            }
            Line::Bad => bad += 1,
            Line::Header | Line::Blank => {}
        }
    }
    bad
}

/// The table for one protocol and family, relative to the proc root.
pub fn table_path(family: Family, protocol: Protocol) -> &'static str {
    match (protocol, family) {
        (Protocol::Tcp, Family::Inet) => "net/tcp",
        (Protocol::Tcp, Family::Inet6) => "net/tcp6",
        (Protocol::Udp, Family::Inet) => "net/udp",
        (Protocol::Udp, Family::Inet6) => "net/udp6",
        // Of another format, and not read: SCTP comes from sock_diag
        // alone (see collect.rs).
        (Protocol::Sctp, _) => "net/sctp/eps",
    }
}

/// Reads one table in chunks, so that memory stays flat however many
/// sockets the host has. Returns how many lines were bad. A missing
/// IPv6 table means a kernel without IPv6: no sockets, not an error.
pub fn read_table(
    root: &ProcRoot,
    family: Family,
    protocol: Protocol,
    filter: &Filter<'_>,
    out: &mut Vec<Socket>,
) -> io::Result<usize> {
    let path = root.thread_path(table_path(family, protocol));
    // A fifo or a device in place of the table must not hang the read.
    let file = match crate::files::open_data_file(&path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound && family == Family::Inet6 => return Ok(0),
        Err(e) => return Err(e),
    };
    read_lines(file, |lines| {
        parse_table(lines, family, protocol, filter, out)
    })
}

/// Feeds `parse` whole lines from `reader`. A line longer than the
/// buffer is dropped and counted as bad.
fn read_lines(mut reader: impl Read, mut parse: impl FnMut(&[u8]) -> usize) -> io::Result<usize> {
    const CHUNK: usize = 256 * 1024;
    let mut buffer = vec![0u8; CHUNK];
    let mut filled = 0;
    let mut bad = 0;
    // Inside an over-long line, waiting for its end.
    let mut dropping = false;
    loop {
        let n = match reader.read(&mut buffer[filled..]) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if n == 0 {
            if !dropping && filled > 0 {
                bad += parse(&buffer[..filled]);
            }
            return Ok(bad);
        }
        filled += n;
        let window = &buffer[..filled];
        // What was kept from the last read holds no newline: look only
        // at the new bytes.
        let fresh = filled - n;
        match window[fresh..].iter().rposition(|b| *b == b'\n') {
            Some(at) => {
                let last = fresh + at;
                let mut start = 0;
                if dropping {
                    start = window[fresh..]
                        .iter()
                        .position(|b| *b == b'\n')
                        .map_or(last, |at| fresh + at)
                        + 1;
                    dropping = false;
                }
                if start <= last {
                    bad += parse(&window[start..last]);
                }
                buffer.copy_within(last + 1..filled, 0);
                filled -= last + 1;
            }
            None if filled == buffer.len() => {
                if !dropping {
                    bad += 1;
                    dropping = true;
                }
                filled = 0;
            }
            None => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TCP: &[u8] = include_bytes!("../../tests/fixtures/proc/net/tcp");
    const TCP6: &[u8] = include_bytes!("../../tests/fixtures/proc/net/tcp6");
    const UDP: &[u8] = include_bytes!("../../tests/fixtures/proc/net/udp");
    const UDP6: &[u8] = include_bytes!("../../tests/fixtures/proc/net/udp6");

    fn all(text: &[u8], family: Family, protocol: Protocol) -> (Vec<Socket>, usize) {
        let mut out = Vec::new();
        let bad = parse_table(text, family, protocol, &Filter::everything(), &mut out);
        (out, bad)
    }

    fn summary(sockets: &[Socket]) -> Vec<String> {
        sockets
            .iter()
            .map(|s| {
                format!(
                    "{} {} {} uid={} inode={}",
                    s.local,
                    s.remote,
                    s.state.kernel_name(),
                    s.uid,
                    s.inode
                )
            })
            .collect()
    }

    /// The captures hold known sockets (made with python in a private
    /// namespace; `ss -tuanei` listed the same ones).
    #[test]
    fn reads_a_real_ipv4_tcp_table() {
        let (sockets, bad) = all(TCP, Family::Inet, Protocol::Tcp);
        assert_eq!(bad, 0);
        assert_eq!(
            summary(&sockets),
            vec![
                "127.0.0.1:8080 *:* LISTEN uid=0 inode=21732",
                "*:22 *:* LISTEN uid=0 inode=21733",
                "127.0.0.1:8080 127.0.0.1:41352 ESTABLISHED uid=0 inode=21737",
                "127.0.0.1:43820 127.0.0.1:60403 ESTABLISHED uid=0 inode=21740",
                "127.0.0.1:41352 127.0.0.1:8080 ESTABLISHED uid=0 inode=21736",
                "127.0.0.1:41358 127.0.0.1:8080 TIME_WAIT uid=0 inode=0",
            ]
        );
        assert!(sockets.iter().all(|s| s.family == Family::Inet));
        assert!(sockets.iter().all(|s| s.v6only.is_none()));
    }

    #[test]
    fn reads_a_real_ipv6_tcp_table_word_by_word() {
        let (sockets, bad) = all(TCP6, Family::Inet6, Protocol::Tcp);
        assert_eq!(bad, 0);
        assert_eq!(
            summary(&sockets),
            vec![
                "[::1]:8443 [::]:* LISTEN uid=0 inode=21734",
                "[::]:60403 [::]:* LISTEN uid=0 inode=21735",
                "[::ffff:127.0.0.1]:60403 [::ffff:127.0.0.1]:43820 ESTABLISHED uid=0 inode=21741",
                "[::1]:51468 [::1]:8443 ESTABLISHED uid=0 inode=21738",
                "[::1]:8443 [::1]:51468 ESTABLISHED uid=0 inode=21739",
            ]
        );
        // The mapped address is kept as the IPv6 address it is.
        assert_eq!(
            sockets[2].local.address,
            "::ffff:127.0.0.1".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn reads_real_udp_tables() {
        let (v4, bad4) = all(UDP, Family::Inet, Protocol::Udp);
        let (v6, bad6) = all(UDP6, Family::Inet6, Protocol::Udp);
        assert_eq!((bad4, bad6), (0, 0));
        assert_eq!(
            summary(&v4),
            vec![
                "127.0.0.1:5353 *:* CLOSE uid=0 inode=21745",
                "127.0.0.1:40041 127.0.0.1:5353 ESTABLISHED uid=0 inode=21746",
            ]
        );
        assert_eq!(
            summary(&v6),
            vec![
                "[::]:123 [::]:* CLOSE uid=0 inode=21748",
                "[::1]:5354 [::]:* CLOSE uid=0 inode=21747",
            ]
        );
        assert!(v6.iter().all(|s| s.protocol == Protocol::Udp));
    }

    #[test]
    fn filters_by_state_and_port_like_the_kernel_filter() {
        let ports = [PortRange::single(8080)];
        let listen_only = Filter {
            states: 1 << 10,
            ports: &[],
            match_remote: false,
        };
        let mut out = Vec::new();
        parse_table(TCP, Family::Inet, Protocol::Tcp, &listen_only, &mut out);
        assert_eq!(out.len(), 2);

        let local = Filter {
            states: KNOWN_STATES,
            ports: &ports,
            match_remote: false,
        };
        out.clear();
        parse_table(TCP, Family::Inet, Protocol::Tcp, &local, &mut out);
        assert_eq!(
            summary(&out),
            vec![
                "127.0.0.1:8080 *:* LISTEN uid=0 inode=21732",
                "127.0.0.1:8080 127.0.0.1:41352 ESTABLISHED uid=0 inode=21737",
            ]
        );

        let remote = Filter {
            match_remote: true,
            ..local
        };
        out.clear();
        parse_table(TCP, Family::Inet, Protocol::Tcp, &remote, &mut out);
        assert_eq!(out.len(), 4, "{:#?}", summary(&out));
    }

    const GOOD: &str = "   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 777 1 0000000000000000 100 0 0 10 0";

    fn line(text: &str) -> Line {
        parse_line(text.as_bytes(), Family::Inet, Protocol::Tcp)
    }

    #[test]
    fn a_good_line_parses() {
        let Line::Socket(socket) = line(GOOD) else {
            panic!("{GOOD}")
        };
        assert_eq!(socket.local.to_string(), "127.0.0.1:8080");
        assert_eq!((socket.uid, socket.inode), (1000, 777));
        assert_eq!(socket.state, State::Listen);
    }

    #[test]
    fn unknown_states_are_kept_as_numbers() {
        let odd = GOOD.replace(" 0A ", " 2A ");
        let Line::Socket(socket) = line(&odd) else {
            panic!("{odd}")
        };
        assert_eq!(socket.state, State::Other(42));
        assert_eq!(socket.state.kernel_name(), "42");
        // Kept when every state is asked for, not when only some are.
        let mut out = Vec::new();
        let text = format!("{odd}\n{GOOD}\n");
        let bad = parse_table(
            text.as_bytes(),
            Family::Inet,
            Protocol::Tcp,
            &Filter::everything(),
            &mut out,
        );
        assert_eq!((out.len(), bad), (2, 0));
        let listen = Filter {
            states: 1 << 10,
            ..Filter::everything()
        };
        out.clear();
        parse_table(
            text.as_bytes(),
            Family::Inet,
            Protocol::Tcp,
            &listen,
            &mut out,
        );
        assert_eq!(out.len(), 1);
        // 0 and 255 too: nothing overflows.
        for code in ["00", "FF", "0E", "1F", "20"] {
            let text = GOOD.replace(" 0A ", &format!(" {code} "));
            assert!(matches!(line(&text), Line::Socket(_)), "{code}");
            let mut out = Vec::new();
            parse_table(
                text.as_bytes(),
                Family::Inet,
                Protocol::Tcp,
                &listen,
                &mut out,
            );
            assert!(out.is_empty(), "{code}");
        }
    }

    #[test]
    fn malformed_lines_are_bad_and_nothing_panics() {
        let cases = [
            // truncated
            "   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0",
            "   0: 0100007F:1F",
            "   0:",
            // a v6 address in the v4 table, and bad hex
            &GOOD.replace("0100007F:1F90", "00000000000000000000000001000000:1F90"),
            &GOOD.replace("0100007F", "0100007G"),
            &GOOD.replace("0100007F:1F90", "0100007F1F90"),
            &GOOD.replace("0100007F:1F90", "0100007F:"),
            &GOOD.replace("0100007F:1F90", ":1F90"),
            // absurd numbers
            &GOOD.replace(":1F90", ":1FFFF"),
            &GOOD.replace(" 0A ", " 10A "),
            &GOOD.replace("  1000  ", "  99999999999  "),
            &GOOD.replace(" 777 ", " 99999999999999999999999 "),
            &GOOD.replace(" 777 ", " -1 "),
            &GOOD.replace(" 777 ", " 18446744073709551616 "),
            // not a slot number
            &GOOD.replace("   0:", "   x:"),
            &GOOD.replace("   0:", "   0"),
            "garbage",
            "\u{0}\u{1}\u{2}",
            "é: ü",
        ];
        for case in cases {
            assert_eq!(line(case), Line::Bad, "{case:?}");
        }
        let longest = GOOD.replace(" 777 ", " 18446744073709551615 ");
        assert!(matches!(line(&longest), Line::Socket(s) if s.inode == u64::MAX));
    }

    #[test]
    fn over_long_and_empty_lines() {
        let long = format!("{GOOD}{}", " 0".repeat(MAX_LINE));
        assert_eq!(line(&long), Line::Bad);
        // Extra columns within reason are what newer kernels add.
        assert!(matches!(line(&format!("{GOOD} 1 2 3")), Line::Socket(_)));
        assert_eq!(line(""), Line::Blank);
        assert_eq!(line("   \t  "), Line::Blank);
        assert_eq!(
            line("  sl  local_address rem_address   st tx_queue"),
            Line::Header
        );
    }

    #[test]
    fn a_bad_line_costs_only_itself() {
        let text = format!(
            "  sl  local_address\n{GOOD}\nnonsense here\n\n{}\n{GOOD}\n   7: 0100",
            "x".repeat(10_000)
        );
        let (sockets, bad) = all(text.as_bytes(), Family::Inet, Protocol::Tcp);
        assert_eq!((sockets.len(), bad), (2, 3));
    }

    /// A reader that returns at most `step` bytes at a time, as
    /// /proc's seq_file may.
    struct Trickle<'a> {
        data: &'a [u8],
        step: usize,
    }

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.step.min(buf.len()).min(self.data.len());
            buf[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    #[test]
    fn chunked_reading_sees_every_line_once() {
        // More than one buffer's worth, with an over-long line in it and
        // no newline at the end.
        let mut text = String::from("  sl  local_address\n");
        for i in 0..3000 {
            text.push_str(&GOOD.replace(" 777 ", &format!(" {i} ")));
            text.push('\n');
            if i == 1500 {
                text.push_str(&"y".repeat(300 * 1024));
                text.push('\n');
            }
        }
        text.push_str(GOOD);
        for step in [1 << 20, 4096, 97] {
            let mut out = Vec::new();
            let reader = Trickle {
                data: text.as_bytes(),
                step,
            };
            let bad = read_lines(reader, |lines| {
                parse_table(
                    lines,
                    Family::Inet,
                    Protocol::Tcp,
                    &Filter::everything(),
                    &mut out,
                )
            })
            .unwrap();
            assert_eq!((out.len(), bad), (3001, 1), "step {step}");
            assert_eq!(out[2999].inode, 2999);
        }
    }
}
