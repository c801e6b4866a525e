//! Which sockets are on a Unix socket path or abstract name, through the
//! library's Unix socket source: the sockets alone, without holders (the
//! probe does not answer for Unix sockets yet).
//!
//!     cargo run --example unix_path -- /run/app.sock
//!     cargo run --example unix_path -- @/containerd-shim/x.sock
//!
//! With `--proc`, /proc/net/unix answers instead of sock_diag (a path is
//! then matched by name). With `--narrow`, the dump keeps only the
//! sockets bound to the file and the clients are then looked up one by
//! one, by inode: less to decode on a host with many sockets.
//!
//! Exit status: 0 when something is bound to it, 1 when nothing is (a
//! stale file included), 2 on bad input or when no source could be read.

use std::ffi::OsString;
use std::process::ExitCode;

use lsport::render::escape::{escape_bytes, escape_str};
use lsport::source::unix::{netlink, procfs};
use lsport::sys::ProcRoot;
use lsport::unix::socket::{UnixQueue, UnixSocket};
use lsport::unix::target::{self, FileVerdict, SocketFile, UnixGroup, UnixTarget};

fn main() -> ExitCode {
    let mut args: Vec<OsString> = std::env::args_os().skip(1).collect();
    let proc = take_flag(&mut args, "--proc");
    let narrow = take_flag(&mut args, "--narrow");
    let [argument] = &args[..] else {
        eprintln!("usage: unix_path [--proc | --narrow] PATH|@NAME");
        return ExitCode::from(2);
    };
    let Some(unix_target) = UnixTarget::parse(argument) else {
        eprintln!("unix_path: a path holds a '/', an abstract name starts with '@'");
        return ExitCode::from(2);
    };
    let file = match &unix_target {
        UnixTarget::Path(path) => match SocketFile::stat(path) {
            Ok(file) => Some(file),
            Err(err) => {
                println!(
                    "{}: {}",
                    escape_bytes(path.as_os_str().as_encoded_bytes()),
                    err
                );
                return ExitCode::from(1);
            }
        },
        UnixTarget::Abstract(_) => None,
    };

    let (sockets, bound) = match gather(&unix_target, file.as_ref(), proc, narrow) {
        Ok(found) => found,
        Err(message) => {
            eprintln!("unix_path: {}", escape_str(&message));
            return ExitCode::from(2);
        }
    };
    let group = UnixGroup::of(&sockets, &bound);
    if let Some(file) = &file {
        let verdict = if proc {
            "matched by name: /proc/net/unix shows no bound file"
        } else {
            match target::file_verdict(file, &bound) {
                FileVerdict::InUse => "in use",
                FileVerdict::Stale => {
                    "stale: a socket file nothing in this network namespace is bound to"
                }
                FileVerdict::NotASocket => "not a socket file",
            }
        };
        println!(
            "{} (device {}, inode {}, mode {:o}, uid {}): {verdict}",
            escape_bytes(file.path.as_os_str().as_encoded_bytes()),
            file.device,
            file.inode,
            file.mode,
            file.uid
        );
    }
    for (role, indexes) in [
        ("server", &group.servers),
        ("accepted", &group.accepted),
        ("client", &group.clients),
        ("waiting", &group.waiting),
    ] {
        for &index in indexes {
            println!("{role:<8} {}", describe(&sockets[index]));
        }
    }
    if bound.is_empty() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

fn take_flag(args: &mut Vec<OsString>, flag: &str) -> bool {
    let before = args.len();
    args.retain(|arg| arg != flag);
    args.len() != before
}

/// The sockets to look at, and which of them are bound to the target.
fn gather(
    unix_target: &UnixTarget,
    file: Option<&SocketFile>,
    proc: bool,
    narrow: bool,
) -> Result<(Vec<UnixSocket>, Vec<usize>), String> {
    let mut sockets = Vec::new();
    if proc {
        procfs::read_table(&ProcRoot::default(), &mut |_| true, &mut sockets)
            .map_err(|err| format!("/proc/net/unix: {err}"))?;
        let bound = match unix_target {
            UnixTarget::Path(path) => target::on_path_name(&target::path_names(path), &sockets),
            UnixTarget::Abstract(name) => target::on_abstract_name(name, &sockets),
        };
        return Ok((sockets, bound));
    }
    let mut session = netlink::UnixSession::default();
    match (file, narrow) {
        (Some(file), true) => {
            session
                .dump(
                    netlink::ALL_STATES,
                    &mut |s| s.bound_file.is_some_and(|b| b.is(file.device, file.inode)),
                    &mut sockets,
                )
                .map_err(|err| err.to_string())?;
            // The clients: peers of the accepted ends, and those waiting
            // in the listener's queue.
            let wanted: Vec<u64> = sockets
                .iter()
                .flat_map(|s| {
                    s.peer_inode()
                        .into_iter()
                        .chain(s.pending_connections.iter().flatten().copied())
                })
                .collect();
            for inode in wanted {
                if let Some(client) = session.lookup(inode, None).map_err(|e| e.to_string())? {
                    sockets.push(client);
                }
            }
        }
        _ => {
            session
                .dump(netlink::ALL_STATES, &mut |_| true, &mut sockets)
                .map_err(|err| err.to_string())?;
        }
    }
    let bound = match (unix_target, file) {
        (_, Some(file)) => target::on_file(file, &sockets),
        (UnixTarget::Abstract(name), None) => target::on_abstract_name(name, &sockets),
        (UnixTarget::Path(_), None) => Vec::new(),
    };
    Ok((sockets, bound))
}

fn describe(socket: &UnixSocket) -> String {
    let mut line = format!(
        "{:<9} {:<11} inode {}",
        socket.socket_type.name(),
        socket.state.kernel_name(),
        socket.inode
    );
    if socket.name.is_named() {
        line += &format!(" name {}", escape_bytes(&socket.name.printed()));
    }
    if let Some(peer) = socket.peer_inode() {
        line += &format!(" peer {peer}");
    }
    match socket.queue {
        Some(UnixQueue::Listener { pending, backlog }) => {
            line += &format!(" pending {pending}/{backlog}");
        }
        Some(UnixQueue::Data { receive, send }) if receive + send > 0 => {
            line += &format!(" queued {receive} in, {send} out");
        }
        _ => {}
    }
    if let Some(uid) = socket.uid {
        line += &format!(" uid {uid}");
    }
    line
}
