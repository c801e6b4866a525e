//! Any bytes as /proc/net/unix: no panic, every line a socket, a server
//! end awaiting accept, a bad line, the header or blank, and no socket
//! without an inode.

#![no_main]

use libfuzzer_sys::fuzz_target;
use lsport::source::unix::procfs::parse_table;
use lsport::unix::socket::UnixName;

fuzz_target!(|data: &[u8]| {
    // The first byte picks the caller's test: every socket, or named ones.
    let Some((&mode, text)) = data.split_first() else {
        return;
    };
    let named_only = mode & 1 != 0;
    let mut out = Vec::new();
    let mut seen = 0;
    let counts = parse_table(
        text,
        &mut |socket| {
            seen += 1;
            !named_only || socket.name.is_named()
        },
        &mut out,
    );
    let lines = text.split(|b| *b == b'\n').count();
    assert!(seen + counts.bad + counts.awaiting_accept <= lines);
    for socket in &out {
        assert_ne!(socket.inode, 0);
        assert!(!named_only || socket.name.is_named());
        // A name is never empty and never holds a line break.
        let printed = socket.name.printed();
        if socket.name != UnixName::Unnamed {
            assert!(!printed.is_empty());
        }
        assert!(!printed.contains(&b'\n'));
    }
});
