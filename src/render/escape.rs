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

/// Escapes text already known to be UTF-8 the same way as
/// [`escape_bytes`], e.g. a path or a name read from a file.
pub fn escape_str(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    escape_into(&mut out, text);
    out
}

/// [`escape_str`], appended to `out`.
pub fn escape_into(out: &mut String, text: &str) {
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

/// C1 controls, and the Unicode characters that reorder, hide or break
/// text on a terminal: format characters (Cf: bidi controls, zero-width
/// characters, the soft hyphen, interlinear annotations, tag characters)
/// and the line and paragraph separators (Zl, Zp).
fn is_invisible_or_control(c: char) -> bool {
    matches!(c as u32,
        0x80..=0x9f
        | 0xad
        | 0x600..=0x605
        | 0x61c
        | 0x6dd
        | 0x70f
        | 0x890..=0x891
        | 0x8e2
        | 0x180e
        | 0x200b..=0x200f
        | 0x2028..=0x202e
        | 0x2060..=0x2064
        | 0x2066..=0x206f
        | 0xfeff
        | 0xfff9..=0xfffb
        | 0x110bd
        | 0x110cd
        | 0x13430..=0x1343f
        | 0x1bca0..=0x1bca3
        | 0x1d173..=0x1d17a
        | 0xe0001
        | 0xe0020..=0xe007f)
}

/// Characters that JSON may carry as they are but that lsport writes as
/// `\uXXXX`, so that a terminal showing the JSON obeys none of them:
/// DEL and everything [`escape_str`] makes visible. (serde_json already
/// escapes C0 controls, quotes and backslashes.)
pub fn needs_escape_in_json(c: char) -> bool {
    c == '\x7f' || is_invisible_or_control(c)
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
        for hidden in [
            '\u{61c}',
            '\u{2028}',
            '\u{2029}',
            '\u{ad}',
            '\u{2060}',
            '\u{e0041}',
            '\u{fffa}',
        ] {
            let escaped = escape_str(&format!("a{hidden}b"));
            assert_eq!(escaped, format!("a\\u{{{:x}}}b", hidden as u32));
        }
        assert_eq!(
            escape_bytes("nginx: worker ü".as_bytes()),
            "nginx: worker ü"
        );
    }
}
