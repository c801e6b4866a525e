//! Unix domain sockets (AF_UNIX): the model ([`socket`]) and what a
//! socket path or abstract name given as an argument names ([`target`]).
//! The sources that fill the model are in `source::unix`.

pub mod socket;
pub mod target;
