//! Plain help text into roff text lines: escapes, `code` spans in bold,
//! and lines short enough that mandoc's lint has nothing to say.

/// Longest text line written; mandoc's lint flags lines over 80 bytes.
const WIDTH: usize = 78;

/// Escapes text for roff. A hyphen that starts a word (an option such as
/// `-a`, or the second of `--`) becomes a minus sign, which is what man
/// readers search for; one inside a word (`bound-only`) stays a hyphen.
/// Text between backquotes is set in bold, with every hyphen a minus.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    let mut in_code = false;
    let mut previous = ' ';
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\e"),
            '-' if in_code || !previous.is_alphanumeric() => out.push_str("\\-"),
            '`' => {
                out.push_str(if in_code { "\\fR" } else { "\\fB" });
                in_code = !in_code;
            }
            _ => out.push(c),
        }
        previous = c;
    }
    if in_code {
        out.push_str("\\fR");
    }
    out
}

/// Appends already escaped text as filled text lines of at most WIDTH
/// bytes (a single longer word stays whole), broken only at spaces, which
/// roff's filling makes invisible.
pub fn push_filled(out: &mut String, escaped: &str) {
    let mut line = String::new();
    for word in escaped.split_whitespace() {
        if !line.is_empty() && line.len() + 1 + word.len() > WIDTH {
            push_text_line(out, &line);
            line.clear();
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        push_text_line(out, &line);
    }
}

/// A text line must not start with a control character: `\&` (a
/// zero-width nothing) in front keeps `.` and `'` as text.
fn push_text_line(out: &mut String, line: &str) {
    if line.starts_with(['.', '\'']) {
        out.push_str("\\&");
    }
    out.push_str(line);
    out.push('\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_get_minus_signs_and_words_keep_hyphens() {
        assert_eq!(
            escape("bound-only sockets (like `ss -tuanp`), --all, 8000-8100"),
            "bound-only sockets (like \\fBss \\-tuanp\\fR), \\-\\-all, 8000-8100"
        );
        assert_eq!(escape("a \\ b `open"), "a \\e b \\fBopen\\fR");
    }

    #[test]
    fn long_text_is_broken_at_spaces_and_never_starts_a_control_line() {
        let words = "word ".repeat(40) + ".dot 'quote";
        let mut out = String::new();
        push_filled(&mut out, &words);
        for line in out.lines() {
            assert!(line.len() <= WIDTH, "{line:?}");
            assert!(!line.starts_with(['.', '\'']), "{line:?}");
        }
        let joined: Vec<&str> = out.split_whitespace().collect();
        assert_eq!(joined.len(), 42);
        assert!(out.contains("\\&.dot") || out.contains(" .dot"));
    }
}
