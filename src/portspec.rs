//! Parsing what the user typed as a port: `22`, `8000-8100`.

use crate::ports::PortRange;

/// Parses one command-line port argument. The error is one line, meant
/// for the user.
pub fn parse_port_arg(text: &str) -> Result<PortRange, String> {
    if text.is_empty() {
        return Err("empty port argument".to_string());
    }
    if text.starts_with('-') {
        return Err(format!(
            "invalid port '{}': ports go from 0 to 65535",
            escape_arg(text)
        ));
    }
    match text.split_once('-') {
        None => parse_port(text, text).map(PortRange::single),
        Some((lo, hi)) => {
            if lo.is_empty() || hi.is_empty() || hi.contains('-') {
                return Err(format!(
                    "invalid port range '{}': expected LOW-HIGH, e.g. 8000-8100",
                    escape_arg(text)
                ));
            }
            let range = PortRange {
                lo: parse_port(lo, text)?,
                hi: parse_port(hi, text)?,
            };
            if range.lo > range.hi {
                return Err(format!(
                    "invalid port range '{text}': {} is greater than {}",
                    range.lo, range.hi
                ));
            }
            Ok(range)
        }
    }
}

fn parse_port(text: &str, whole: &str) -> Result<u16, String> {
    if !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "invalid port '{}': not a number",
            escape_arg(whole)
        ));
    }
    match text.parse::<u32>() {
        Ok(n) if n <= 65535 => Ok(n as u16),
        _ => Err(format!(
            "invalid port '{}': ports go from 0 to 65535",
            escape_arg(whole)
        )),
    }
}

/// The user's own argument, echoed back with control characters escaped.
fn escape_arg(text: &str) -> String {
    crate::render::escape::escape_str(text)
}

/// Sorts ranges and merges the ones that overlap or touch.
pub fn normalize(mut ranges: Vec<PortRange>) -> Vec<PortRange> {
    ranges.sort();
    let mut merged: Vec<PortRange> = Vec::with_capacity(ranges.len());
    for range in ranges {
        match merged.last_mut() {
            Some(last) if u32::from(range.lo) <= u32::from(last.hi) + 1 => {
                last.hi = last.hi.max(range.hi);
            }
            _ => merged.push(range),
        }
    }
    merged
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ports_and_ranges() {
        assert_eq!(parse_port_arg("22"), Ok(PortRange::single(22)));
        assert_eq!(parse_port_arg("0"), Ok(PortRange::single(0)));
        assert_eq!(parse_port_arg("65535"), Ok(PortRange::single(65535)));
        assert_eq!(
            parse_port_arg("8000-8100"),
            Ok(PortRange { lo: 8000, hi: 8100 })
        );
    }

    #[test]
    fn rejects_bad_input_with_one_clear_line() {
        for bad in [
            "abc",
            "70000",
            "-1",
            "9000-8000",
            "1-2-3",
            "",
            "1-",
            "+5",
            " 5",
            "99999999999999999999",
        ] {
            let err = parse_port_arg(bad).unwrap_err();
            assert!(!err.contains('\n'), "{bad}: {err}");
        }
        assert!(parse_port_arg("70000").unwrap_err().contains("0 to 65535"));
        assert!(parse_port_arg("9000-8000").unwrap_err().contains("greater"));
    }

    #[test]
    fn merges_overlapping_ranges() {
        let merged = normalize(vec![
            PortRange { lo: 8050, hi: 8200 },
            PortRange::single(22),
            PortRange { lo: 8000, hi: 8100 },
            PortRange::single(23),
        ]);
        assert_eq!(
            merged,
            vec![
                PortRange { lo: 22, hi: 23 },
                PortRange { lo: 8000, hi: 8200 }
            ]
        );
    }
}
