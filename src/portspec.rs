//! Parsing what the user typed as a port: `22`, `8000-8100`.

use crate::error::Error;
use crate::socket::PortRange;

/// Parses one command-line port argument. The error is one line, meant
/// for the user; it quotes the argument unescaped (whoever prints it
/// escapes it).
pub fn parse_port_arg(text: &str) -> Result<PortRange, Error> {
    if text.is_empty() {
        return Err(Error::usage("empty port argument"));
    }
    if text.starts_with('-') {
        return Err(Error::Usage(format!(
            "invalid port '{}': ports go from 0 to 65535",
            text
        )));
    }
    match text.split_once('-') {
        None => parse_port(text, text).map(PortRange::single),
        Some((lo, hi)) => {
            if lo.is_empty() || hi.is_empty() || hi.contains('-') {
                return Err(Error::Usage(format!(
                    "invalid port range '{}': expected LOW-HIGH, e.g. 8000-8100",
                    text
                )));
            }
            let range = PortRange {
                lo: parse_port(lo, text)?,
                hi: parse_port(hi, text)?,
            };
            if range.lo > range.hi {
                return Err(Error::Usage(format!(
                    "invalid port range '{text}': {} is greater than {}",
                    range.lo, range.hi
                )));
            }
            Ok(range)
        }
    }
}

fn parse_port(text: &str, whole: &str) -> Result<u16, Error> {
    if !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Error::Usage(format!(
            "invalid port '{}': not a number",
            whole
        )));
    }
    // Digits only: the parse fails just for numbers past u32, and
    // try_from for those past u16; both are out of range.
    text.parse::<u32>()
        .ok()
        .and_then(|n| u16::try_from(n).ok())
        .ok_or_else(|| Error::Usage(format!("invalid port '{whole}': ports go from 0 to 65535")))
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
        assert_eq!(parse_port_arg("22").unwrap(), PortRange::single(22));
        assert_eq!(parse_port_arg("0").unwrap(), PortRange::single(0));
        assert_eq!(parse_port_arg("65535").unwrap(), PortRange::single(65535));
        assert_eq!(
            parse_port_arg("8000-8100").unwrap(),
            PortRange { lo: 8000, hi: 8100 }
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
            let err = parse_port_arg(bad).unwrap_err().to_string();
            assert!(!err.contains('\n'), "{bad}: {err}");
        }
        assert!(
            parse_port_arg("70000")
                .unwrap_err()
                .to_string()
                .contains("0 to 65535")
        );
        assert!(
            parse_port_arg("9000-8000")
                .unwrap_err()
                .to_string()
                .contains("greater")
        );
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
