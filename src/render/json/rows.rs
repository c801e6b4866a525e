//! The probe document's sockets, written without serde's field-by-field
//! path. With `-a` on a busy host they are nearly all of the document's
//! bytes, and serde spent most of its time on what does not change from
//! one socket to the next: the keys, escaped each time, and a holder's
//! process, a cgroup and the namespace, serialized anew for each socket.
//! Here those are made once by serde (the views in json.rs) and copied;
//! what differs from socket to socket is numbers, lsport's own names and
//! addresses, none of which needs escaping.
//!
//! The bytes are [`SocketEntry`]'s, as serde writes them: in debug
//! builds (the tests) each socket is also serialized by serde and the
//! two compared.

use std::collections::HashMap;
use std::io;
use std::net::IpAddr;
use std::sync::Arc;

use serde::Serialize;

use super::{
    CgroupView, HolderProcessView, HolderProxyView, HolderTexts, NetnsView, SocketEntry,
    TerminalSafe,
};
use crate::netns::NetnsLabel;
use crate::report::{Holder, Row};

/// Writes the sockets of one namespace; one per thread, as it keeps
/// what it made for the sockets before.
pub(super) struct RowWriter<'a> {
    /// The namespace's `netns` object, the same for all its sockets.
    netns: Vec<u8>,
    netns_label: &'a NetnsLabel,
    /// By pid: a holder object up to its fd, and after it.
    holders: HashMap<u32, (Vec<u8>, Vec<u8>)>,
    /// By the address of the shared cgroup and service name (alive as
    /// long as the rows are).
    cgroups: HashMap<usize, Vec<u8>>,
    services: HashMap<usize, Vec<u8>>,
    texts: HolderTexts,
}

impl<'a> RowWriter<'a> {
    pub(super) fn new(netns: &'a NetnsLabel) -> RowWriter<'a> {
        RowWriter {
            netns: serialized(&NetnsView::of(netns)),
            netns_label: netns,
            holders: HashMap::new(),
            cgroups: HashMap::new(),
            services: HashMap::new(),
            texts: HolderTexts::default(),
        }
    }

    /// Appends `row`'s object to `out`.
    pub(super) fn write(&mut self, row: &Row, out: &mut Vec<u8>) -> io::Result<()> {
        let start = out.len();
        let s = &row.socket;
        out.extend_from_slice(b"{\"protocol\":");
        own_name(out, s.protocol.name());
        out.extend_from_slice(b",\"family\":");
        own_name(out, s.family.name());
        out.extend_from_slice(b",\"state\":");
        own_name(out, &s.state.kernel_name());
        out.extend_from_slice(b",\"role\":");
        own_name(out, row.role.name());
        out.extend_from_slice(b",\"local\":{\"address\":");
        address(out, s.local.readable_address())?;
        out.extend_from_slice(b",\"port\":");
        number(out, s.local.port.into());
        out.extend_from_slice(b"},\"remote\":{\"address\":");
        address(out, s.remote.readable_address())?;
        out.extend_from_slice(b",\"port\":");
        number(out, s.remote.port.into());
        out.extend_from_slice(b"},\"v6only\":");
        flag(out, s.v6only);
        out.extend_from_slice(b",\"mptcp\":");
        flag(out, s.mptcp);
        out.extend_from_slice(b",\"service\":");
        match &row.service {
            Some(name) => out.extend_from_slice(
                self.services
                    .entry(Arc::as_ptr(name) as usize)
                    .or_insert_with(|| serialized(name.as_str())),
            ),
            None => out.extend_from_slice(b"null"),
        }
        out.extend_from_slice(b",\"uid\":");
        number(out, s.uid.into());
        out.extend_from_slice(b",\"inode\":");
        number(out, s.inode);
        out.extend_from_slice(b",\"ends_in_ms\":");
        // Only a socket that goes by itself has an end to tell.
        match s.timer_ms.filter(|_| s.ends_by_itself()) {
            Some(ms) => number(out, ms.into()),
            None => out.extend_from_slice(b"null"),
        }
        out.extend_from_slice(b",\"risky\":");
        flag(out, Some(row.risky));
        out.extend_from_slice(b",\"holders\":[");
        for (i, holder) in row.holders.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            self.holder(holder, out);
        }
        out.extend_from_slice(b"],\"holders_hidden\":");
        flag(out, Some(row.holders_hidden));
        out.extend_from_slice(b",\"cgroup\":");
        match &row.cgroup {
            Some(cgroup) => out.extend_from_slice(
                self.cgroups
                    .entry(Arc::as_ptr(cgroup) as usize)
                    .or_insert_with(|| serialized(&CgroupView::of(cgroup))),
            ),
            None => out.extend_from_slice(b"null"),
        }
        out.extend_from_slice(b",\"netns\":");
        out.extend_from_slice(&self.netns);
        out.push(b'}');
        if cfg!(debug_assertions) {
            let by_serde = serialized(&SocketEntry::with_texts(row, self.netns_label, &self.texts));
            assert_eq!(
                String::from_utf8_lossy(&out[start..]),
                String::from_utf8_lossy(&by_serde),
                "the hand-written socket differs from serde's"
            );
        }
        Ok(())
    }

    /// A holder: its process's fields, made once per process, and its fd.
    fn holder(&mut self, holder: &Holder, out: &mut Vec<u8>) {
        let texts = &self.texts;
        let (before_fd, after_fd) = self.holders.entry(holder.pid).or_insert_with(|| {
            let process = HolderProcessView::of(holder, texts);
            let proxy = HolderProxyView {
                proxy: holder.proxy().map(super::ProxyView::of),
            };
            // `{...process...}` without its `}`, and `{"proxy":...}`
            // without its `{`: the fd goes between.
            let mut before_fd = serialized(&process);
            before_fd.pop();
            before_fd.extend_from_slice(b",\"fd\":");
            let mut after_fd = serialized(&proxy);
            after_fd[0] = b',';
            (before_fd, after_fd)
        });
        out.extend_from_slice(before_fd);
        number(out, holder.fd.into());
        out.extend_from_slice(after_fd);
    }
}

/// `value` as serde_json writes it, with lsport's escaping.
fn serialized(value: &(impl Serialize + ?Sized)) -> Vec<u8> {
    let mut bytes = Vec::new();
    let mut serializer = serde_json::Serializer::with_formatter(&mut bytes, TerminalSafe);
    value
        .serialize(&mut serializer)
        .expect("serializing into memory cannot fail");
    bytes
}

/// A name of lsport's own (a protocol, a state, a role): plain ASCII
/// that JSON takes as it is.
fn own_name(out: &mut Vec<u8>, name: &str) {
    debug_assert!(
        name.bytes()
            .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\'),
        "{name:?}"
    );
    out.push(b'"');
    out.extend_from_slice(name.as_bytes());
    out.push(b'"');
}

/// An address as its text: digits, dots, colons and hex letters.
fn address(out: &mut Vec<u8>, address: IpAddr) -> io::Result<()> {
    use std::io::Write;
    write!(out, "\"{address}\"")
}

fn flag(out: &mut Vec<u8>, value: Option<bool>) {
    out.extend_from_slice(match value {
        Some(true) => b"true",
        Some(false) => b"false",
        None => b"null",
    });
}

fn number(out: &mut Vec<u8>, n: u64) {
    out.extend_from_slice(crate::decimal::digits(n, &mut [0; 20]));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_written_as_serde_writes_them() {
        for text in [
            "0.0.0.0",
            "127.0.0.1",
            "::",
            "::1",
            "fe80::1",
            "2001:db8::ff00:42:8329",
        ] {
            let ip: IpAddr = text.parse().unwrap();
            let mut out = Vec::new();
            address(&mut out, ip).unwrap();
            assert_eq!(out, serialized(&ip));
        }
    }
}
