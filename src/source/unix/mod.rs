//! Where Unix sockets come from: sock_diag's unix_diag ([`netlink`])
//! first, /proc/net/unix ([`procfs`]) where it is refused.

pub mod netlink;
pub mod procfs;
