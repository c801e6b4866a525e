//! Unix sockets from /proc/net/unix: the fallback where sock_diag is
//! refused or unix_diag is missing.
//!
//! Each line is `Num: RefCount Protocol Flags Type St Inode [Path]`, the
//! numbers in hex but the inode in decimal (padded to 5 columns), then,
//! for a bound socket, one space and the name: a path as given to
//! bind(), byte for byte (spaces and all, nothing escaped), or `@` and
//! an abstract name with each NUL printed as `@`. The table gives less
//! than sock_diag: see [`UnixBlindSpot`].
//!
//! Parsing is a pure function over bytes; only `read_table` does I/O. A
//! line that cannot be read is skipped and counted, never fatal.

use std::io::{self, BufRead, BufReader, Read};
use std::os::unix::ffi::OsStrExt;

use crate::sys::ProcRoot;
use crate::unix::socket::{UnixName, UnixSocket, UnixState, UnixType};

/// The longest line the kernel writes is under 200 bytes (a 108-byte
/// path and the numbers); anything far longer is not one.
pub const MAX_LINE: usize = 4096;
/// __SO_ACCEPTCON in Flags: the socket listens.
const ACCEPTCON: u64 = 1 << 16;
/// St, the socket layer's state: SS_CONNECTING is printed for the
/// server end of a connection not yet accepted, SS_CONNECTED for a
/// connected socket.
const SS_CONNECTING: u64 = 2;
const SS_CONNECTED: u64 = 3;

/// What /proc/net/unix cannot tell, against sock_diag. Stated with every
/// answer from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnixBlindSpot {
    /// No bound file: a path is matched by name.
    NoBoundFile,
    /// No peers: the ends of a connection cannot be paired.
    NoPeers,
    /// No uid: whose socket it is cannot be seen without its holder.
    NoUid,
    /// No queue lengths and no pending connections.
    NoQueues,
    /// Names are printed raw: a NUL in an abstract name and an `@` read
    /// the same, a path bound as `@x` reads as the abstract name `x`,
    /// and a newline in a name ends the line early.
    AmbiguousNames,
}

impl UnixBlindSpot {
    /// Every blind spot of /proc/net/unix.
    pub const ALL: [UnixBlindSpot; 5] = [
        UnixBlindSpot::NoBoundFile,
        UnixBlindSpot::NoPeers,
        UnixBlindSpot::NoUid,
        UnixBlindSpot::NoQueues,
        UnixBlindSpot::AmbiguousNames,
    ];

    /// The stable name in a JSON `blind_spots` list.
    pub fn id(self) -> &'static str {
        match self {
            UnixBlindSpot::NoBoundFile => "unix_no_bound_file",
            UnixBlindSpot::NoPeers => "unix_no_peers",
            UnixBlindSpot::NoUid => "unix_no_uid",
            UnixBlindSpot::NoQueues => "unix_no_queues",
            UnixBlindSpot::AmbiguousNames => "unix_ambiguous_names",
        }
    }

    /// What cannot be seen, in one line for the user.
    pub fn describe(self) -> &'static str {
        match self {
            UnixBlindSpot::NoBoundFile => {
                "the file a socket is bound to cannot be seen: a path is matched by name, so a socket bound by a relative name or reached through a symlink, a hard link or a bind mount is missed, and a socket file nothing listens on cannot be told from one bound by another name"
            }
            UnixBlindSpot::NoPeers => {
                "the peer of a connection cannot be seen: a server's connections cannot be paired with their clients"
            }
            UnixBlindSpot::NoUid => {
                "which user created a Unix socket cannot be seen: a socket whose holder cannot be read has no owner"
            }
            UnixBlindSpot::NoQueues => {
                "queue lengths cannot be seen: not how many connections wait on a listener, nor its backlog"
            }
            UnixBlindSpot::AmbiguousNames => {
                "names are printed raw: a NUL in an abstract name reads as @, a path bound as @name reads as an abstract name, and a name with a newline is cut at it, the rest reading as another line"
            }
        }
    }
}

/// What one line of the table is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line {
    /// The column titles (`Num RefCount ...`).
    Header,
    /// Nothing but whitespace.
    Blank,
    /// A socket, read whole.
    Socket(UnixSocket),
    /// The server end of a connection not yet accepted: inode 0, owned
    /// by no process (sock_diag leaves these out).
    AwaitingAccept,
    /// Not a line the kernel writes: skipped and counted.
    Bad,
}

/// Parses one line (without its newline).
pub fn parse_line(line: &[u8]) -> Line {
    if line.len() > MAX_LINE {
        return Line::Bad;
    }
    if line.iter().all(u8::is_ascii_whitespace) {
        return Line::Blank;
    }
    if line.starts_with(b"Num ") {
        return Line::Header;
    }
    parse_socket(line).unwrap_or(Line::Bad)
}

fn parse_socket(line: &[u8]) -> Option<Line> {
    let mut rest = line;
    // `0000000000000000:` - the socket's address (hashed, or zeros):
    // only its shape is checked.
    let address = next_field(&mut rest)?.strip_suffix(b":")?;
    hex(address, 16)?;
    let _refcount = hex(next_field(&mut rest)?, 8)?;
    let _protocol = hex(next_field(&mut rest)?, 8)?;
    let flags = hex(next_field(&mut rest)?, 8)?;
    let socket_type = u8::try_from(hex(next_field(&mut rest)?, 4)?).ok()?;
    let st = hex(next_field(&mut rest)?, 2)?;
    let inode = decimal(next_field(&mut rest)?)?;
    // The name is everything after the one space that follows the inode:
    // a path may start with, hold and end with spaces.
    let name = match rest {
        [] => UnixName::Unnamed,
        [b' ', name @ ..] if !name.is_empty() => name_of(name),
        _ => return None,
    };
    let state = if flags & ACCEPTCON != 0 {
        UnixState::Listen
    } else if st == SS_CONNECTED || st == SS_CONNECTING {
        UnixState::Connected
    } else {
        UnixState::Unconnected
    };
    if inode == 0 {
        return (st == SS_CONNECTING).then_some(Line::AwaitingAccept);
    }
    Some(Line::Socket(UnixSocket::new(
        UnixType::from_kernel(socket_type),
        state,
        inode,
        name,
    )))
}

fn name_of(printed: &[u8]) -> UnixName {
    match printed.strip_prefix(b"@") {
        // Each NUL already reads `@`: kept as printed.
        Some(name) => UnixName::Abstract(name.to_vec()),
        None => UnixName::Path(std::ffi::OsStr::from_bytes(printed).into()),
    }
}

/// The next field: skips spaces before it, stops at the space after it
/// (which stays in `rest`).
fn next_field<'a>(rest: &mut &'a [u8]) -> Option<&'a [u8]> {
    let start = rest.iter().position(|b| *b != b' ')?;
    let tail = &rest[start..];
    let end = tail.iter().position(|b| *b == b' ').unwrap_or(tail.len());
    *rest = &tail[end..];
    Some(&tail[..end])
}

/// A hex number of 1 to `max` digits.
fn hex(digits: &[u8], max: usize) -> Option<u64> {
    if digits.is_empty() || digits.len() > max {
        return None;
    }
    digits.iter().try_fold(0u64, |acc, b| {
        Some(acc << 4 | u64::from((*b as char).to_digit(16)?))
    })
}

/// A decimal number that fits in a u64.
fn decimal(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || digits.len() > 20 {
        return None;
    }
    digits.iter().try_fold(0u64, |acc, b| {
        acc.checked_mul(10)?
            .checked_add(u64::from((*b as char).to_digit(10)?))
    })
}

/// What a table held besides its sockets.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TableCounts {
    /// Lines that were not the kernel's.
    pub bad: usize,
    /// Server ends of connections not yet accepted, left out.
    pub awaiting_accept: usize,
}

/// Parses whole lines of the table, appending the sockets `keep`
/// accepts to `out`.
pub fn parse_table(
    text: &[u8],
    keep: &mut dyn FnMut(&UnixSocket) -> bool,
    out: &mut Vec<UnixSocket>,
) -> TableCounts {
    let mut counts = TableCounts::default();
    for line in text.split(|b| *b == b'\n') {
        count_line(parse_line(line), keep, out, &mut counts);
    }
    counts
}

fn count_line(
    line: Line,
    keep: &mut dyn FnMut(&UnixSocket) -> bool,
    out: &mut Vec<UnixSocket>,
    counts: &mut TableCounts,
) {
    match line {
        Line::Socket(socket) => {
            if keep(&socket) {
                out.push(socket);
            }
        }
        Line::AwaitingAccept => counts.awaiting_accept += 1,
        Line::Bad => counts.bad += 1,
        Line::Header | Line::Blank => {}
    }
}

/// Reads the calling thread's /proc/net/unix (its network namespace's
/// table) line by line, so that memory stays flat however many sockets
/// the host has.
pub fn read_table(
    root: &ProcRoot,
    keep: &mut dyn FnMut(&UnixSocket) -> bool,
    out: &mut Vec<UnixSocket>,
) -> io::Result<TableCounts> {
    let file = crate::files::open_data_file(&root.thread_path("net/unix"))?;
    read_lines(file, keep, out)
}

fn read_lines(
    reader: impl Read,
    keep: &mut dyn FnMut(&UnixSocket) -> bool,
    out: &mut Vec<UnixSocket>,
) -> io::Result<TableCounts> {
    let mut reader = BufReader::with_capacity(256 * 1024, reader);
    let mut counts = TableCounts::default();
    let mut line = Vec::with_capacity(256);
    loop {
        line.clear();
        // At most one line past the limit is held; the rest of an
        // over-long line is read and dropped.
        let n = (&mut reader)
            .take(MAX_LINE as u64 + 1)
            .read_until(b'\n', &mut line)?;
        if n == 0 {
            return Ok(counts);
        }
        if line.last() == Some(&b'\n') {
            line.pop();
            count_line(parse_line(&line), keep, out, &mut counts);
        } else if line.len() > MAX_LINE {
            counts.bad += 1;
            skip_line(&mut reader)?;
        } else {
            // The last line, without a newline.
            count_line(parse_line(&line), keep, out, &mut counts);
        }
    }
}

fn skip_line(reader: &mut impl BufRead) -> io::Result<()> {
    loop {
        let buffer = reader.fill_buf()?;
        if buffer.is_empty() {
            return Ok(());
        }
        if let Some(at) = buffer.iter().position(|b| *b == b'\n') {
            reader.consume(at + 1);
            return Ok(());
        }
        let n = buffer.len();
        reader.consume(n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    /// A 6.18 kernel's table for: two clients waiting on a stream
    /// listener "/tmp/uexp/a b.sock" (17862, 17863) and their server
    /// ends (inode 0, St 02), one accepted connection (17861 with 17864),
    /// a datagram socket on the abstract name "abs\0x" and a seqpacket
    /// listener on "@seq".
    const TABLE: &[u8] = b"\
Num       RefCount Protocol Flags    Type St Inode Path
000000006811b37c: 00000003 00000000 00000000 0001 03 17862
000000003dd0e799: 00000003 00000000 00000000 0001 03 17863
000000009e958b80: 00000003 00000000 00000000 0001 02     0 /tmp/uexp/a b.sock
00000000317d5cfc: 00000003 00000000 00000000 0001 03 17861
0000000068e41ec6: 00000002 00000000 00010000 0001 01 17860 /tmp/uexp/a b.sock
00000000c8ba9f68: 00000003 00000000 00000000 0001 03 17864 /tmp/uexp/a b.sock
0000000015a706b1: 00000003 00000000 00000000 0001 02     0 /tmp/uexp/a b.sock
00000000c0f06232: 00000002 00000000 00000000 0002 01 17865 @abs@x
00000000d6580ead: 00000002 00000000 00010000 0005 01 17866 @seq
";

    fn summary(sockets: &[UnixSocket]) -> Vec<String> {
        sockets
            .iter()
            .map(|s| {
                format!(
                    "{} {} {} {}",
                    s.inode,
                    s.socket_type.name(),
                    s.state.kernel_name(),
                    String::from_utf8_lossy(&s.name.printed())
                )
            })
            .collect()
    }

    #[test]
    fn reads_a_real_table() {
        let mut out = Vec::new();
        let counts = parse_table(TABLE, &mut |_| true, &mut out);
        assert_eq!(
            counts,
            TableCounts {
                bad: 0,
                awaiting_accept: 2
            }
        );
        assert_eq!(
            summary(&out),
            [
                "17862 stream ESTABLISHED ",
                "17863 stream ESTABLISHED ",
                "17861 stream ESTABLISHED ",
                "17860 stream LISTEN /tmp/uexp/a b.sock",
                "17864 stream ESTABLISHED /tmp/uexp/a b.sock",
                "17865 dgram CLOSE @abs@x",
                "17866 seqpacket LISTEN @seq",
            ]
        );
        // Nothing sock_diag alone gives.
        assert!(out.iter().all(|s| s.cookie.is_none()
            && s.bound_file.is_none()
            && s.peer.is_none()
            && s.uid.is_none()
            && s.queue.is_none()));
        assert_eq!(
            out[3].name,
            UnixName::Path(PathBuf::from("/tmp/uexp/a b.sock"))
        );
    }

    #[test]
    fn a_name_keeps_its_spaces_and_bytes() {
        let line =
            b"0000000000000000: 00000002 00000000 00010000 0001 01 123456  lead and trail \xff ";
        let Line::Socket(socket) = parse_line(line) else {
            panic!("not read")
        };
        assert_eq!(socket.inode, 123456);
        assert_eq!(&*socket.name.printed(), b" lead and trail \xff ");
        // Padded inodes, 32-bit kernels' shorter addresses.
        let Line::Socket(socket) =
            parse_line(b"c0f06232: 00000002 00000000 00000000 0002 01     7")
        else {
            panic!("not read")
        };
        assert_eq!((socket.inode, socket.name.clone()), (7, UnixName::Unnamed));
    }

    #[test]
    fn lines_the_kernel_does_not_write_are_bad() {
        for line in [
            &b"0000000000000000 00000002 00000000 00010000 0001 01 7"[..],
            b"0000000000000000: 00000002 00000000 00010000 0001 01",
            b"0000000000000000: 00000002 00000000 00010000 0001 01 x7",
            b"0000000000000000: 00000002 00000000 00010000 0001 01 7 ",
            b"0000000000000000: 00000002 00000000 00010000 0001 01 7/x",
            b"0000000000000000: 00000002 00000000 00010000 0001 01 0 /idle",
            b"00000000000000000: 00000002 00000000 00010000 0001 01 7",
            b"0000000000000000: 00000002 00000000 00010000 10001 01 7",
            b"a path with a newline in it",
        ] {
            assert_eq!(
                parse_line(line),
                Line::Bad,
                "{}",
                String::from_utf8_lossy(line)
            );
        }
        assert_eq!(parse_line(b"  "), Line::Blank);
        assert_eq!(parse_line(&[b'0'; MAX_LINE + 1]), Line::Bad);
    }

    #[test]
    fn unknown_types_are_kept() {
        let Line::Socket(socket) = parse_line(b"0: 2 0 0 0009 01 7 @x") else {
            panic!("not read")
        };
        assert_eq!(socket.socket_type, UnixType::Other(9));
        assert_eq!(socket.state, UnixState::Unconnected);
    }

    #[test]
    fn reading_in_lines_gives_what_parsing_whole_gives() {
        let mut whole = Vec::new();
        let expected = parse_table(TABLE, &mut |_| true, &mut whole);
        let mut read = Vec::new();
        let counts = read_lines(TABLE, &mut |_| true, &mut read).unwrap();
        assert_eq!((counts, &read), (expected, &whole));
        // An over-long line is one bad line; what follows it is read.
        let mut text = TABLE[..TABLE.len() - 1].to_vec();
        text.extend(b"\n0000: ");
        text.extend(std::iter::repeat_n(b'x', 3 * MAX_LINE));
        text.extend(b"\n0: 2 0 0 0001 01 99 /last");
        let mut read = Vec::new();
        let counts = read_lines(&text[..], &mut |s| s.inode == 99, &mut read).unwrap();
        assert_eq!(counts.bad, 1);
        assert_eq!(summary(&read), ["99 stream CLOSE /last"]);
    }

    #[test]
    fn every_blind_spot_has_an_id_and_a_line() {
        let ids: Vec<&str> = UnixBlindSpot::ALL.iter().map(|b| b.id()).collect();
        let mut unique = ids.clone();
        unique.dedup();
        assert_eq!(unique.len(), ids.len());
        assert!(
            UnixBlindSpot::ALL
                .iter()
                .all(|b| !b.describe().contains('\n'))
        );
    }
}
