//! The port view's lines on what a port is registered for.

use std::fmt::Write;

use crate::ports::{IanaRange, PortFacts};
use crate::render::escape::escape_str;
use crate::report::PortVerdict;
use crate::services::{Protocols, Service, Source};

/// One line per registered name, or one line saying there is none.
pub fn lines(out: &mut String, facts: &PortFacts) {
    let port = facts.port;
    for service in merged(&facts.services) {
        let _ = writeln!(out, "  {port}: {}.", describe(&service));
    }
    if facts.services.iter().any(|s| s.source == Source::Iana) {
        return;
    }
    let _ = if facts.iana_range == IanaRange::Dynamic {
        writeln!(
            out,
            "  {port}: nothing is registered on it with IANA: ports 49152-65535 are dynamic/private and never assigned."
        )
    } else {
        writeln!(out, "  {port}: nothing is registered on it with IANA.")
    };
}

/// For a range asked by name (`lsport x11`): what spans it.
pub fn range_lines(out: &mut String, verdict: &PortVerdict) {
    for service in merged(&verdict.range_services) {
        let _ = writeln!(out, "  {}: {}.", verdict.asked, describe(&service));
    }
}

/// IANA registers a name once per protocol (http on tcp, udp and sctp,
/// the last with a shorter description): one line per name and ports,
/// with the protocols together and the first description.
fn merged(services: &[Service]) -> Vec<Service> {
    let mut lines: Vec<Service> = Vec::new();
    for service in services {
        let same = lines.iter_mut().find(|l| {
            !l.name.is_empty()
                && l.name.eq_ignore_ascii_case(&service.name)
                && l.ports == service.ports
                && l.source == service.source
        });
        match same {
            Some(line) => line.protocols = Protocols(line.protocols.0 | service.protocols.0),
            None => lines.push(service.clone()),
        }
    }
    lines
}

fn describe(service: &Service) -> String {
    let mut what = service.protocols.label();
    if what == "any" {
        what = "any protocol".to_string();
    }
    if service.ports.lo != service.ports.hi {
        let _ = write!(what, "; ports {}", service.ports);
    }
    let description = service
        .description
        .as_deref()
        .map(|d| escape_str(d.strip_suffix('.').unwrap_or(d)));
    match (service.source, service.name.is_empty(), description) {
        (Source::Local, _, _) => format!(
            "local service {} ({what}), from the local services file",
            escape_str(&service.name)
        ),
        (Source::Iana, true, Some(d)) => format!("IANA: {d} ({what})"),
        (Source::Iana, true, None) => format!("IANA: an unnamed entry ({what})"),
        (Source::Iana, false, Some(d)) => {
            format!("IANA service {} ({what}): {d}", escape_str(&service.name))
        }
        (Source::Iana, false, None) => {
            format!("IANA service {} ({what})", escape_str(&service.name))
        }
    }
}
