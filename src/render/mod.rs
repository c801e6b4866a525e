//! The only code that turns a report into text.

pub mod ephemeral;
pub mod escape;
pub mod json;
mod services;
pub mod table;
