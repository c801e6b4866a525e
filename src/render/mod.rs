//! The only code that turns answers into text: tables for people, JSON
//! documents through serde, Prometheus metrics.

pub mod columns;
pub mod ephemeral;
pub mod escape;
pub mod forwards;
pub mod json;
pub mod kill;
mod ordered;
mod services;
pub mod table;
pub mod unix;
pub mod unseen;
pub mod wait;
pub mod watch;
pub mod why;
