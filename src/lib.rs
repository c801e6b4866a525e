//! lsport: who holds a TCP or UDP port, and what the port is.
//!
//! The library behind the `lsport` command. It asks the kernel's
//! sock_diag interface for sockets (with the port filter running in the
//! kernel), falls back to the `/proc/net` tables where sock_diag is
//! refused, finds each socket's holders ([`holders`]: the kernel's
//! walk of every fd table where lsport may load it, else
//! `/proc/PID/fd`), and joins them with what the port is: its IANA
//! range and registered services,
//! and where it stands against the network namespace's ephemeral range,
//! reserved ports and privileged ports.
//!
//! Data flows one way: sources ([`source`], [`holders`]) → model
//! ([`socket`]) → join ([`report`]) → render ([`render`]).
//!
//! # Example
//!
//! ```
//! use lsport::query::{HolderDetail, Query};
//! use lsport::socket::PortRange;
//!
//! // What the port is, without probing anything.
//! let facts = lsport::ports::IanaRange::of(8080);
//! assert_eq!(facts.name(), "user");
//!
//! // Who holds port 22 here: sockets only, no /proc fd scan.
//! let mut query = Query::ports([PortRange::single(22)]);
//! query.holders = HolderDetail::None;
//! match lsport::probe(&query) {
//!     Ok(report) => {
//!         for namespace in &report.namespaces {
//!             for row in &namespace.rows {
//!                 println!("{} {}", row.role.name(), row.socket.local);
//!             }
//!         }
//!     }
//!     // Neither sock_diag nor /proc/net is readable here.
//!     Err(err) => eprintln!("lsport: {err}"),
//! }
//! ```

#![warn(missing_docs)]

mod closest;
mod collect;
pub mod commands;
pub mod decimal;
pub mod duration;
pub mod error;
mod files;
pub mod filter;
pub mod forwards;
pub mod holders;
mod int_hash;
pub mod netns;
pub mod ports;
pub mod portspec;
mod private_proc;
mod probe;
pub mod query;
pub mod render;
pub mod report;
pub mod services;
pub mod socket;
pub mod source;
pub mod sys;
pub mod unix;

pub use error::Error;
pub use probe::{find_holders, probe};
pub use query::Query;
pub use report::Report;
