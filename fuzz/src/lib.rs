//! lsport's parsers, compiled from its own source files so that the
//! fuzzers exercise exactly the code that ships. lsport is a binary
//! crate; this mirrors just the modules the parsers need, under the same
//! paths, so that their `crate::` imports resolve unchanged.

#![allow(dead_code)]

#[path = "../../src/ports.rs"]
pub mod ports;
#[path = "../../src/socket.rs"]
pub mod socket;
#[path = "../../src/sys.rs"]
pub mod sys;

pub mod source;
