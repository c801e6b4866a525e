//! What takes a port without a socket of its own: userland proxies,
//! named by their command lines ([`proxy`]). This module sees only the
//! model ([`crate::socket`]) and the system helpers.

pub mod proxy;
