//! The local services file (/etc/services): `name port/protocol
//! [aliases...] [# comment]`. It is optional; a line that does not parse,
//! or names a protocol lsport does not know (ddp), is skipped.

use super::protocols::Protocols;

/// One name from the file, on one port and protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalName {
    /// The port the line names.
    pub port: u16,
    /// The line's protocol; several once the lines of one name are
    /// merged.
    pub protocols: Protocols,
    /// The service name or one of its aliases, as the file spells it.
    pub name: String,
}

/// Every name and alias on every line that parses.
pub fn parse(text: &str) -> Vec<LocalName> {
    let mut names = Vec::new();
    for line in text.lines() {
        parse_line(line, &mut names);
    }
    names
}

fn parse_line(line: &str, names: &mut Vec<LocalName>) {
    let line = line.split_once('#').map_or(line, |(before, _)| before);
    let mut words = line.split_ascii_whitespace();
    let (Some(name), Some(spec)) = (words.next(), words.next()) else {
        return;
    };
    let Some((port, protocol)) = spec.split_once('/') else {
        return;
    };
    // Digits only: u16's parser would take "+22".
    if !port.bytes().all(|b| b.is_ascii_digit()) {
        return;
    }
    let (Ok(port), Some(protocols)) = (port.parse::<u16>(), Protocols::named(protocol)) else {
        return;
    };
    for name in std::iter::once(name).chain(words).filter(|n| valid_name(n)) {
        names.push(LocalName {
            port,
            protocols,
            name: name.to_string(),
        });
    }
}

/// Service names are short and printable (RFC 6335 allows letters,
/// digits and hyphens; older files use a few more punctuation marks).
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name.bytes().any(|b| b.is_ascii_alphabetic())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.+*/".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_names_aliases_and_skips_what_does_not_parse() {
        let text = "\
# comment
ssh\t\t22/tcp\t\t\t# SSH Remote Login Protocol
http 80/tcp www # WorldWideWeb
rtmp 1/ddp
broken 99999/tcp
noproto 123
bad +22/tcp
lonely
myapp 40123/udp
";
        let names: Vec<String> = parse(text)
            .iter()
            .map(|n| format!("{}/{} {}", n.port, n.protocols.label(), n.name))
            .collect();
        assert_eq!(
            names,
            vec!["22/tcp ssh", "80/tcp http", "80/tcp www", "40123/udp myapp"]
        );
    }
}
