//! Any bytes as a buffer of unix_diag replies: an answer or an error,
//! never a panic, and only the sockets the caller's test keeps.

#![no_main]

use libfuzzer_sys::fuzz_target;
use lsport::source::unix::netlink::decode_replies;
use lsport::unix::socket::{UnixQueue, UnixState};

fuzz_target!(|data: &[u8]| {
    // The first byte picks the caller's test: every socket, or named ones.
    let Some((&mode, bytes)) = data.split_first() else {
        return;
    };
    let named_only = mode & 1 != 0;
    let mut out = Vec::new();
    let mut skipped = 0;
    let mut seen = 0;
    let _ = decode_replies(
        bytes,
        &mut |socket| {
            seen += 1;
            !named_only || socket.name.is_named()
        },
        &mut out,
        &mut skipped,
    );
    // Each socket came from one message of at least a header's length.
    assert!((seen + skipped) * 16 <= bytes.len() + 16);
    for socket in &out {
        assert!(!named_only || socket.name.is_named());
        // A listener's queue is a listener's; anyone else's is data.
        if let Some(queue) = socket.queue {
            let listener_queue = matches!(queue, UnixQueue::Listener { .. });
            assert_eq!(listener_queue, socket.state == UnixState::Listen);
        }
    }
});
