//! The only code that turns a report into text.

pub mod escape;
pub mod json;
mod services;
pub mod table;
