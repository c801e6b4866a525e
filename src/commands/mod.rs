//! The commands beyond the probe, each over the probe's answer: one
//! function that takes a [`Query`](crate::query::Query) and the command's
//! own options, and returns a value to render.

pub mod ephemeral;
pub mod kill;
pub mod suggest;
pub mod wait;
pub mod watch;
pub mod why;
