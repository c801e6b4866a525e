//! Any bytes as a buffer of sock_diag replies: an answer or an error,
//! never a panic.

#![no_main]

use libfuzzer_sys::fuzz_target;
use lsport::socket::Protocol;
use lsport::source::netlink::decode_replies;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, bytes)) = data.split_first() else {
        return;
    };
    let protocol = if mode & 1 == 0 {
        Protocol::Tcp
    } else {
        Protocol::Udp
    };
    let mut out = Vec::new();
    let mut skipped = 0;
    let _ = decode_replies(bytes, protocol, &mut out, &mut skipped);
    // Each socket came from one message of at least a header's length.
    assert!((out.len() + skipped) * 16 <= bytes.len() + 16);
});
