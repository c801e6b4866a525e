//! How another Rust program uses lsport: is a port free here, and if
//! not, who holds it?
//!
//!     cargo run --example free_port -- 8080
//!
//! Exit status: 0 when the port is free, 1 when something holds it, 2 on
//! bad input or when no source of sockets could be read.

use std::process::ExitCode;

use lsport::query::Query;
use lsport::render::escape::escape_bytes;
use lsport::services::Services;
use lsport::socket::PortRange;

fn main() -> ExitCode {
    let Some(port) = std::env::args().nth(1) else {
        eprintln!("usage: free_port PORT");
        return ExitCode::from(2);
    };
    // A number, or a service name of IANA's registry.
    let port = match lsport::portspec::parse_port(&port, &Services::default()) {
        Ok(port) => port,
        Err(err) => {
            eprintln!(
                "free_port: {}",
                lsport::render::escape::escape_str(&err.to_string())
            );
            return ExitCode::from(2);
        }
    };
    let report = match lsport::probe(&Query::ports([PortRange::single(port)])) {
        Ok(report) => report,
        Err(err) => {
            eprintln!("free_port: {err}");
            return ExitCode::from(2);
        }
    };
    let Some(here) = report.namespaces.first() else {
        return ExitCode::from(2);
    };
    if here.rows.is_empty() {
        let facts = &here.ports[0].facts[0];
        println!(
            "{port} is free ({} port{})",
            facts.iana_range.name(),
            if facts.ephemeral && !facts.reserved {
                "; inside the ephemeral range, so an outgoing connection may take it"
            } else {
                ""
            }
        );
        return ExitCode::SUCCESS;
    }
    for row in &here.rows {
        let holders: Vec<String> = row
            .holders
            .iter()
            .map(|h| format!("{} (pid {})", escape_bytes(h.command()), h.pid))
            .collect();
        println!(
            "{} {} {}: {}",
            row.socket.protocol.name(),
            row.role.name(),
            row.socket.local,
            if holders.is_empty() {
                "no visible holder".to_string()
            } else {
                holders.join(", ")
            }
        );
    }
    ExitCode::from(1)
}
