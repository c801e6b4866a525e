//! Unix domain sockets (AF_UNIX): the model ([`socket`]), what a
//! socket path or abstract name given as an argument names ([`target`]),
//! the join into an answer ([`report`]) and the stages that gather it
//! ([`probe`]).
//! The sources that fill the model are in `source::unix`.

pub mod probe;
pub mod report;
pub mod socket;
pub mod target;
