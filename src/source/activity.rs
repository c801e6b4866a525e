//! Whether TCP did anything in a network namespace since some earlier
//! moment: its counters in `/proc/net/snmp`, one line that a read
//! returns in microseconds.
//!
//! Every connection that opens counts in ActiveOpens or PassiveOpens,
//! and every change of a connection's state but its destruction comes
//! with a segment sent or received (InSegs, OutSegs, OutRsts, ...). So
//! while the `Tcp:` line stays the same, no connection appeared or
//! changed state, and a dump of the connection table, which walks every
//! connection of the machine, would find nothing new. (Listening and
//! binding count nowhere: they are found by other dumps.)
//!
//! The counters cover IPv4 and IPv6 alike, for the namespace the file
//! was opened in: the file is opened once, in the watched namespace, and
//! read again from its start each time.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

/// The values line of `Tcp:` in the text of /proc/net/snmp: the second
/// line that starts with `Tcp:` (the first names the fields).
pub fn tcp_counters(snmp: &str) -> Option<&str> {
    snmp.lines().filter(|l| l.starts_with("Tcp:")).nth(1)
}

/// The TCP counters of one network namespace, read on demand.
pub struct TcpActivity {
    file: File,
    buffer: Vec<u8>,
}

impl TcpActivity {
    /// Opens the counters at `path` (a `net/snmp` of /proc, read by the
    /// calling thread: `/proc/thread-self/net/snmp` names the thread's
    /// namespace). None where it cannot be read or holds no TCP line.
    pub fn open(path: &Path) -> Option<TcpActivity> {
        let mut activity = TcpActivity {
            file: File::open(path).ok()?,
            buffer: vec![0; 8192],
        };
        activity.read()?;
        Some(activity)
    }

    /// The `Tcp:` values line now; None when it cannot be read.
    pub fn read(&mut self) -> Option<String> {
        let mut filled = 0;
        loop {
            if filled == self.buffer.len() {
                self.buffer.resize(filled * 2, 0);
            }
            match self.file.read_at(&mut self.buffer[filled..], filled as u64) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => return None,
            }
        }
        let text = std::str::from_utf8(&self.buffer[..filled]).ok()?;
        tcp_counters(text).map(str::to_string)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_values_line_follows_the_names_line() {
        let snmp = "Ip: Forwarding DefaultTTL\nIp: 1 64\n\
                    Tcp: RtoAlgorithm RtoMin ActiveOpens\nTcp: 1 200 7\n\
                    Udp: InDatagrams\nUdp: 3\n";
        assert_eq!(tcp_counters(snmp), Some("Tcp: 1 200 7"));
        assert_eq!(tcp_counters("Ip: 1\n"), None);
    }

    #[test]
    fn the_counters_of_this_namespace_can_be_read_again_and_again() {
        let Some(mut activity) = TcpActivity::open(Path::new("/proc/thread-self/net/snmp")) else {
            return; // no /proc here
        };
        let first = activity.read().unwrap();
        assert!(first.starts_with("Tcp: "));
        assert!(activity.read().is_some());
    }
}
