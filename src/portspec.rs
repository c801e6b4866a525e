//! What the user typed as a port, read the same way by every command
//! (the probe, `why`, `kill`, `wait`, `watch`, `suggest --near` and
//! `--range`, `ephemeral --check-range`): a number (`22`), a range
//! (`8000-8100`) or a service name (`ssh`).
//!
//! A target may instead be a Unix socket: anything with a `/` is a
//! socket path (`./app.sock` too), `@name` an abstract name ([`Target`]).
//!
//! Anything with a letter in it is a service name, looked up in IANA's
//! registry and the local services file. Anything else is a number or
//! a range, in plain decimal digits: `+22` and `022` are refused, as
//! `ss` and `lsof` never print a port so, and as some programs read a
//! leading zero as octal; the error says how to write it. Each error is
//! one line that quotes the argument unescaped (whoever prints it
//! escapes it).

use std::ffi::OsStr;

use crate::error::Error;
use crate::services::Services;
use crate::socket::PortRange;
use crate::unix::target::UnixTarget;

/// What one argument names: ports, or a Unix socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A number, a range, or each port of a service name.
    Ports(Vec<PortRange>),
    /// A socket path or an abstract name.
    Unix(UnixTarget),
}

/// What one argument names: a Unix socket when it has a `/` or starts
/// with `@` (no port or service name does), else ports.
/// A socket path is any bytes (the filesystem's), so the argument comes
/// raw; a port or a service name is text.
pub fn parse_target(argument: &OsStr, services: &Services) -> Result<Target, Error> {
    match UnixTarget::parse(argument) {
        Some(UnixTarget::Abstract(name)) if name.is_empty() => Err(Error::usage(
            "empty abstract name '@': give the name after the @, as @/tmp/app",
        )),
        Some(UnixTarget::Path(path)) if path.as_os_str().as_encoded_bytes().contains(&0) => {
            Err(Error::Usage(format!(
                "invalid socket path '{}': a NUL byte in it",
                argument.to_string_lossy()
            )))
        }
        Some(unix) => Ok(Target::Unix(unix)),
        None => {
            let text = text_of(argument)?;
            parse_ports(text, services)
                .map(Target::Ports)
                .map_err(|err| match err {
                    // A file here by that name: what was meant, likely.
                    Error::Usage(message) if std::path::Path::new(text).exists() => Error::Usage(
                        format!("{message}; a socket file in this directory is written ./{text}"),
                    ),
                    other => other,
                })
        }
    }
}

/// An argument that is no socket path, as text: a port or a service
/// name is never anything else.
pub fn text_of(argument: &OsStr) -> Result<&str, Error> {
    argument.to_str().ok_or_else(|| {
        Error::Usage(format!(
            "invalid port '{}': not UTF-8 (a socket path has a / in it)",
            argument.to_string_lossy()
        ))
    })
}

/// Whether `text` names a service rather than spelling a number: it has
/// a letter in it.
pub fn is_service_name(text: &str) -> bool {
    text.bytes().any(|b| b.is_ascii_alphabetic())
}

/// The ports of one argument: a number, a range, or each port of a
/// service name (one or more ranges, sorted).
pub fn parse_ports(text: &str, services: &Services) -> Result<Vec<PortRange>, Error> {
    if is_service_name(text) {
        return services.resolve(text);
    }
    parse_numbers(text).map(|range| vec![range])
}

/// One range: a number, a range, or a service name whose ports make one
/// range (`x11`: 6000-6063).
pub fn parse_range(text: &str, services: &Services) -> Result<PortRange, Error> {
    match normalize(parse_ports(text, services)?)[..] {
        [range] => Ok(range),
        ref ranges => Err(several_ports(text, ranges, "give one range")),
    }
}

/// One port: a number, or a service name that stands for one port.
pub fn parse_port(text: &str, services: &Services) -> Result<u16, Error> {
    match normalize(parse_ports(text, services)?)[..] {
        [range] if range.lo == range.hi => Ok(range.lo),
        [range] if !is_service_name(text) => Err(Error::Usage(format!(
            "invalid port '{text}': a range where one port is wanted ({range})"
        ))),
        ref ranges => Err(several_ports(text, ranges, "give the one meant")),
    }
}

fn several_ports(text: &str, ranges: &[PortRange], ask: &str) -> Error {
    let ports: Vec<String> = ranges.iter().map(ToString::to_string).collect();
    Error::Usage(format!(
        "service '{text}' stands for several ports ({}): {ask}",
        ports.join(", ")
    ))
}

/// A number or a range, in plain decimal digits.
fn parse_numbers(text: &str) -> Result<PortRange, Error> {
    if text.is_empty() {
        return Err(Error::usage("empty port argument: give a port, as 8080"));
    }
    if text.starts_with('-') {
        return Err(out_of_range(text));
    }
    let parts = match text.split_once('-') {
        None => (text, None),
        Some((lo, hi)) => {
            if lo.is_empty() || hi.is_empty() || hi.contains('-') {
                return Err(Error::Usage(format!(
                    "invalid port range '{text}': expected LOW-HIGH, e.g. 8000-8100"
                )));
            }
            (lo, Some(hi))
        }
    };
    let lenient = |part: &str| -> Option<u16> {
        let digits = part.strip_prefix('+').unwrap_or(part);
        (!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
            .then(|| digits.parse::<u32>().ok()?.try_into().ok())
            .flatten()
    };
    let plain = |part: &str| {
        part.bytes().all(|b| b.is_ascii_digit()) && (part == "0" || !part.starts_with('0'))
    };
    let (lo, hi) = match parts {
        (lo, None) => (lo, lo),
        (lo, Some(hi)) => (lo, hi),
    };
    if !plain(lo) || !plain(hi) {
        let canonical = match (lenient(lo), lenient(hi), parts.1) {
            (Some(lo), _, None) => Some(lo.to_string()),
            (Some(lo), Some(hi), Some(_)) => Some(format!("{lo}-{hi}")),
            _ => None,
        };
        let all_digits = |part: &str| part.bytes().all(|b| b.is_ascii_digit());
        return Err(match canonical {
            Some(canonical) => Error::Usage(format!(
                "invalid port '{text}': a port is plain digits, without a sign or leading \
                 zeros: write {canonical}"
            )),
            None if all_digits(lo) && all_digits(hi) => out_of_range(text),
            None => Error::Usage(format!("invalid port '{text}': not a number")),
        });
    }
    let number = |part: &str| -> Result<u16, Error> {
        // Digits only: the parse fails just for numbers past u32, and
        // try_from for those past u16; both are out of range.
        part.parse::<u32>()
            .ok()
            .and_then(|n| u16::try_from(n).ok())
            .ok_or_else(|| out_of_range(text))
    };
    let range = PortRange {
        lo: number(lo)?,
        hi: number(hi)?,
    };
    if range.lo > range.hi {
        return Err(Error::Usage(format!(
            "invalid port range '{text}': {} is greater than {}",
            range.lo, range.hi
        )));
    }
    Ok(range)
}

fn out_of_range(text: &str) -> Error {
    Error::Usage(format!("invalid port '{text}': ports go from 0 to 65535"))
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

    fn ports(text: &str) -> Result<Vec<PortRange>, Error> {
        parse_ports(text, &Services::default())
    }

    fn message(result: Result<impl std::fmt::Debug, Error>) -> String {
        result.unwrap_err().to_string()
    }

    #[test]
    fn a_slash_or_a_leading_at_names_a_unix_socket() {
        let target = |text: &str| parse_target(OsStr::new(text), &Services::default());
        assert_eq!(
            target("./app.sock").unwrap(),
            Target::Unix(UnixTarget::Path("./app.sock".into()))
        );
        assert_eq!(
            target("@/containerd/x").unwrap(),
            Target::Unix(UnixTarget::Abstract(b"/containerd/x".to_vec()))
        );
        assert_eq!(
            target("8080").unwrap(),
            Target::Ports(vec![PortRange::single(8080)])
        );
        assert!(message(target("@")).contains("empty abstract name"));
        assert!(
            message(target("app.sock")).contains("unknown"),
            "{}",
            message(target("app.sock"))
        );
    }

    #[test]
    fn accepts_ports_ranges_and_names() {
        let one = |text| ports(text).unwrap();
        assert_eq!(one("22"), [PortRange::single(22)]);
        assert_eq!(one("0"), [PortRange::single(0)]);
        assert_eq!(one("65535"), [PortRange::single(65535)]);
        assert_eq!(one("8000-8100"), [PortRange { lo: 8000, hi: 8100 }]);
        assert_eq!(one("0-10"), [PortRange { lo: 0, hi: 10 }]);
        assert_eq!(one("SSH"), [PortRange::single(22)]);
        assert_eq!(one("msp"), [PortRange::single(18), PortRange::single(2438)]);
    }

    #[test]
    fn refuses_bad_input_with_one_clear_line() {
        for bad in [
            "abc",
            "70000",
            "-1",
            "9000-8000",
            "1-2-3",
            "",
            "1-",
            "-",
            "+5",
            "05",
            "00",
            "+05-010",
            " 5",
            "5 ",
            "5.0",
            "\u{ff11}",
            "99999999999999999999",
            "0x16",
        ] {
            let err = message(ports(bad));
            assert!(!err.contains('\n'), "{bad}: {err}");
        }
        assert!(message(ports("70000")).contains("0 to 65535"));
        assert!(message(ports("070000")).contains("0 to 65535"));
        assert!(message(ports("9000-8000")).contains("greater"));
        assert!(message(ports("5.0")).ends_with("not a number"));
        assert!(message(ports("0x16")).starts_with("unknown port or service name"));
    }

    #[test]
    fn a_sign_or_a_leading_zero_is_refused_with_the_plain_spelling() {
        for (bad, plain) in [
            ("+22", "22"),
            ("022", "22"),
            ("00", "0"),
            ("+022", "22"),
            ("080-090", "80-90"),
            ("+1-+2", "1-2"),
        ] {
            let err = message(ports(bad));
            assert!(err.ends_with(&format!("write {plain}")), "{bad}: {err}");
        }
    }

    #[test]
    fn one_port_or_one_range_where_one_is_wanted() {
        let services = Services::default();
        assert_eq!(parse_port("ssh", &services).unwrap(), 22);
        assert_eq!(parse_port("8080", &services).unwrap(), 8080);
        assert!(message(parse_port("22-23", &services)).contains("where one port is wanted"));
        assert!(message(parse_port("x11", &services)).contains("several ports (6000-6063)"));
        assert!(message(parse_port("msp", &services)).contains("several ports (18, 2438)"));
        // x11's registrations overlap: one range.
        assert_eq!(
            parse_range("x11", &services).unwrap(),
            PortRange { lo: 6000, hi: 6063 }
        );
        assert!(message(parse_range("msp", &services)).contains("give one range"));
        assert_eq!(message(parse_port("+22", &services)), message(ports("+22")));
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
