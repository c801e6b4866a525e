//! The records the holder program writes: 16 bytes per socket fd, in
//! the machine's byte order. Decoding takes bytes and does no I/O.

/// One record's length: inode (u64), tgid (u32), fd (u32).
pub const RECORD_LEN: usize = 16;

/// One process's descriptor for one socket, as the kernel's walk saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SocketFd {
    /// The socket's inode number, as in `socket:[INODE]`.
    pub inode: u64,
    /// The process (thread group) that holds the descriptor: the pid
    /// `/proc` lists, also when the fd table is a thread's own.
    pub pid: u32,
    /// The descriptor's number.
    pub fd: u32,
}

/// Output whose length is not a whole number of records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ragged {
    /// The bytes that were left over.
    pub trailing: usize,
}

/// Appends the records in `bytes` to `out`. A tail shorter than a record
/// is an error: the kernel writes each record whole or not at all.
pub fn decode(bytes: &[u8], out: &mut Vec<SocketFd>) -> Result<(), Ragged> {
    let records = bytes.chunks_exact(RECORD_LEN);
    let trailing = records.remainder().len();
    out.reserve(bytes.len() / RECORD_LEN);
    out.extend(records.map(|r| SocketFd {
        inode: u64::from_ne_bytes(r[0..8].try_into().expect("8 bytes")),
        pid: u32::from_ne_bytes(r[8..12].try_into().expect("4 bytes")),
        fd: u32::from_ne_bytes(r[12..16].try_into().expect("4 bytes")),
    }));
    if trailing == 0 {
        Ok(())
    } else {
        Err(Ragged { trailing })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(inode: u64, pid: u32, fd: u32) -> Vec<u8> {
        let mut out = inode.to_ne_bytes().to_vec();
        out.extend_from_slice(&pid.to_ne_bytes());
        out.extend_from_slice(&fd.to_ne_bytes());
        out
    }

    #[test]
    fn decodes_whole_records_in_order() {
        let mut bytes = record(1234, 77, 3);
        bytes.extend(record(u64::from(u32::MAX) + 5, 1, 1_000_000));
        let mut out = vec![];
        assert_eq!(decode(&bytes, &mut out), Ok(()));
        assert_eq!(
            out,
            [
                SocketFd {
                    inode: 1234,
                    pid: 77,
                    fd: 3
                },
                SocketFd {
                    inode: u64::from(u32::MAX) + 5,
                    pid: 1,
                    fd: 1_000_000
                }
            ]
        );
        assert_eq!(decode(&[], &mut out), Ok(()));
        assert_eq!(out.len(), 2);
    }

    #[test]
    fn a_partial_record_is_an_error_after_the_whole_ones() {
        let mut bytes = record(9, 8, 7);
        bytes.extend_from_slice(&[1, 2, 3]);
        let mut out = vec![];
        assert_eq!(decode(&bytes, &mut out), Err(Ragged { trailing: 3 }));
        assert_eq!(out.len(), 1);
    }
}
