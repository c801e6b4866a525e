//! Any bytes as BTF: a parse or an error, never a panic, and every
//! lookup the holder program's layout makes ends, on whatever parses.

#![no_main]

use libfuzzer_sys::fuzz_target;
use lsport::holders::kernel::btf::{Btf, Kind};

fuzz_target!(|data: &[u8]| {
    let Ok(btf) = Btf::parse(data) else {
        return;
    };
    // Each type takes at least a 12-byte record.
    assert!(btf.type_count() as usize * 12 <= data.len());
    let found = btf.find_all(&[
        (Kind::Struct, "bpf_iter__task_file"),
        (Kind::Struct, "inode"),
        (Kind::Func, "bpf_iter_task_file"),
    ]);
    for id in found.into_iter().flatten() {
        assert!(id >= 1 && id <= btf.type_count());
    }
    for id in 0..=btf.type_count().min(64) + 1 {
        let _ = (btf.kind(id), btf.size_of(id), btf.is_pointer(id));
        let _ = btf.resolve(id);
        for name in ["i_mode", "task", "x"] {
            if let Some(member) = btf.member(id, name) {
                let _ = btf.size_of(member.type_id);
            }
        }
    }
});
