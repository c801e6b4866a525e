//! Making text from other processes safe for a terminal. A process may
//! name itself anything, `\e[2J` included; none of it may reach the
//! terminal as a control sequence.

use std::fmt::Write;

/// Escapes raw bytes: control characters (C0, DEL, C1), bidirectional
/// overrides and invalid UTF-8 become visible `\xHH` / `\u{...}` forms;
/// a backslash is doubled so escapes cannot be forged.
pub fn escape_bytes(raw: &[u8]) -> String {
    let mut out = String::with_capacity(raw.len());
    for chunk in raw.utf8_chunks() {
        escape_into(&mut out, chunk.valid());
        for byte in chunk.invalid() {
            let _ = write!(out, "\\x{byte:02x}");
        }
    }
    out
}

pub fn escape_str(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    escape_into(&mut out, text);
    out
}

fn escape_into(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if is_invisible_or_control(c) => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
}

/// C1 controls, and the Unicode format characters that reorder or hide
/// text on a terminal.
fn is_invisible_or_control(c: char) -> bool {
    matches!(c as u32,
        0x80..=0x9f
        | 0x200b..=0x200f
        | 0x202a..=0x202e
        | 0x2066..=0x2069
        | 0xfeff)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_sequences_are_made_visible() {
        assert_eq!(escape_bytes(b"\x1b[2J"), "\\x1b[2J");
        assert_eq!(escape_bytes(b"a\nb\tc\\"), "a\\nb\\tc\\\\");
        assert_eq!(escape_bytes(b"\xff\xfeok"), "\\xff\\xfeok");
        assert_eq!(escape_bytes("\u{9b}31m".as_bytes()), "\\u{9b}31m");
        assert_eq!(
            escape_bytes("evil\u{202e}txt".as_bytes()),
            "evil\\u{202e}txt"
        );
        assert_eq!(
            escape_bytes("nginx: worker ü".as_bytes()),
            "nginx: worker ü"
        );
    }
}
