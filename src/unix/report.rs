//! The join for Unix sockets: the sockets a source gave, the files the
//! targets lead to and the holders the fd walk found, made into the
//! answer `lsport PATH`, `lsport @NAME` and `lsport --unix` print. No
//! I/O: `unix::probe` gathers, this decides.

use std::collections::{HashMap, HashSet};
use std::io;

use crate::holders::HolderWalk;
use crate::holders::procfs::FdScan;
use crate::holders::unseen::Unseen;
use crate::holders::users::UserNames;
use crate::query::Filters;
use crate::report::{HolderBook, Holders};
use crate::source::SourceKind;
use crate::source::unix::procfs::UnixBlindSpot;

use super::socket::{UnixPeer, UnixSocket};
use super::target::{self, FileKind, FileVerdict, SocketFile, UnixGroup, UnixTarget, file_verdict};

/// What a socket is to the name it is shown for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum UnixRole {
    /// A stream or seqpacket socket that listens.
    Listener,
    /// A named datagram socket that takes datagrams by its name.
    Bound,
    /// The server end of a connection accepted from a listener.
    Accepted,
    /// The client end of a connection, or a datagram socket connected
    /// to a server.
    Client,
    /// A client whose connection waits in the listener's queue.
    Waiting,
    /// Anything else (with -a): an unnamed socket, a socketpair's end.
    Other,
}

impl UnixRole {
    /// The role's name in the table and in JSON.
    pub fn name(self) -> &'static str {
        match self {
            UnixRole::Listener => "listener",
            UnixRole::Bound => "bound",
            UnixRole::Accepted => "accepted",
            UnixRole::Client => "client",
            UnixRole::Waiting => "waiting",
            UnixRole::Other => "other",
        }
    }

    /// The role of a socket seen alone, without a target (the listing).
    pub fn alone(socket: &UnixSocket) -> UnixRole {
        if socket.is_listening() {
            UnixRole::Listener
        } else if socket.takes_by_name() {
            UnixRole::Bound
        } else if socket.socket_type.is_connection_oriented() && socket.name.is_named() {
            UnixRole::Accepted
        } else if socket.peer == Some(UnixPeer::AwaitingAccept) {
            UnixRole::Waiting
        } else if socket.peer.is_some() {
            UnixRole::Client
        } else {
            UnixRole::Other
        }
    }

    /// A socket that takes connections or datagrams by the name: what
    /// `kill PATH` signals and `wait --listening PATH` waits for.
    pub fn is_server(self) -> bool {
        matches!(self, UnixRole::Listener | UnixRole::Bound)
    }
}

/// One socket of the answer, with who holds it.
#[derive(Debug, Clone)]
pub struct UnixRow {
    /// The socket as the source gave it.
    pub socket: UnixSocket,
    /// What it is to its target (or alone, in the listing).
    pub role: UnixRole,
    /// The processes that hold it.
    pub holders: Holders,
    /// No holder was found, and some processes could not be read: its
    /// holder may be among them.
    pub holders_hidden: bool,
    /// The name of the socket's uid (its creator's), where known.
    pub owner: Option<String>,
    /// The row of its peer, where the peer is in the answer.
    pub peer_row: Option<usize>,
}

/// How a path was matched to sockets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchedBy {
    /// By the file's device and inode (sock_diag's bound file).
    File,
    /// By the name the socket was bound with: /proc/net/unix gives no
    /// bound file, or the file could not be reached.
    Name,
    /// An abstract name, compared as printed.
    AbstractName,
}

impl MatchedBy {
    /// The name in JSON.
    pub fn id(self) -> &'static str {
        match self {
            MatchedBy::File => "file",
            MatchedBy::Name => "name",
            MatchedBy::AbstractName => "abstract_name",
        }
    }
}

/// The verdict on one target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnixVerdict {
    /// A socket is bound to it.
    InUse,
    /// No socket is bound to it and no file is in the way (a path that
    /// does not exist, an abstract name nobody holds).
    Free,
    /// A socket file nothing is bound to.
    Stale,
    /// The path leads to something that is not a socket file.
    NotASocket,
    /// The file could not be reached (permission), and no socket is
    /// bound by its name: lsport cannot tell.
    Unknown,
}

impl UnixVerdict {
    /// The name in JSON.
    pub fn id(self) -> &'static str {
        match self {
            UnixVerdict::InUse => "in_use",
            UnixVerdict::Free => "free",
            UnixVerdict::Stale => "stale",
            UnixVerdict::NotASocket => "not_a_socket",
            UnixVerdict::Unknown => "unknown",
        }
    }
}

/// Why the path's file could not be looked at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileError {
    /// The errno of stat().
    pub errno: Option<i32>,
    /// What stat() said.
    pub message: String,
}

impl FileError {
    /// From stat()'s error.
    pub fn of(err: &io::Error) -> FileError {
        FileError {
            errno: err.raw_os_error(),
            message: err.to_string(),
        }
    }

    /// The path does not exist (or a directory on the way does not).
    pub fn is_missing(&self) -> bool {
        matches!(self.errno, Some(libc::ENOENT | libc::ENOTDIR))
    }
}

/// The answer for one target.
#[derive(Debug, Clone)]
pub struct TargetAnswer {
    /// What the user named.
    pub target: UnixTarget,
    /// The file a path leads to, or why it could not be looked at; None
    /// for an abstract name.
    pub file: Option<Result<SocketFile, FileError>>,
    /// The verdict.
    pub verdict: UnixVerdict,
    /// How sockets were matched to it.
    pub matched_by: MatchedBy,
    /// Its rows, servers first, then accepted ends, clients, waiting
    /// clients (indexes into [`UnixReport::rows`]).
    pub rows: Vec<usize>,
}

impl TargetAnswer {
    /// The rows of its servers (listeners and bound datagram sockets).
    pub fn servers<'a>(&'a self, rows: &'a [UnixRow]) -> impl Iterator<Item = &'a UnixRow> + 'a {
        self.rows
            .iter()
            .map(|&i| &rows[i])
            .filter(|row| row.role.is_server())
    }
}

/// The whole answer on Unix sockets.
#[derive(Debug, Clone)]
pub struct UnixReport {
    /// The source that answered.
    pub source: SourceKind,
    /// Why sock_diag was given up for /proc/net/unix, when it was.
    pub fallback: Option<String>,
    /// What the source cannot see.
    pub blind_spots: Vec<UnixBlindSpot>,
    /// One answer per target, in the order given; empty for the listing.
    pub targets: Vec<TargetAnswer>,
    /// Every socket shown.
    pub rows: Vec<UnixRow>,
    /// Messages the source gave that could not be decoded.
    pub skipped: usize,
    /// What kept holders out of sight, when some are.
    pub unseen: Unseen,
    /// Sockets left out of the listing because `--unit`, `--container`
    /// or `--cgroup` could not be tested on them: they are tested by
    /// their holders' cgroups, and their holders are hidden.
    pub untested_by_filter: usize,
    /// The walk that named the holders; None when none was looked for.
    pub holders_from: Option<HolderWalk>,
}

impl UnixReport {
    /// How many sockets have holders lsport could not see.
    pub fn hidden_holders(&self) -> usize {
        self.rows.iter().filter(|r| r.holders_hidden).count()
    }

    /// Whether anything matched: a target in use, or (the listing) a
    /// socket shown.
    pub fn any_match(&self) -> bool {
        if self.targets.is_empty() {
            !self.rows.is_empty()
        } else {
            self.targets.iter().any(|t| t.verdict == UnixVerdict::InUse)
        }
    }
}

/// Everything the join reads.
pub struct UnixInputs<'a> {
    /// Every socket the source gave (the whole table of the namespace).
    pub sockets: Vec<UnixSocket>,
    /// The targets with their files (stat() done by the caller).
    pub targets: Vec<(UnixTarget, Option<Result<SocketFile, FileError>>)>,
    /// For the listing: every socket, not only those that take
    /// connections or datagrams by name.
    pub every_socket: bool,
    /// The reverse query's pids and uids.
    pub filters: &'a Filters,
    /// With `--unit`, `--container` or `--cgroup`: the holders whose
    /// cgroup passes them (unix_diag gives no socket's cgroup, so a
    /// socket is tested by its holders').
    pub cgroup_holders: Option<&'a HashSet<u32>>,
    /// The source that gave the sockets.
    pub source: SourceKind,
    /// The holders.
    pub scan: &'a FdScan,
    /// What is known of the holding processes.
    pub book: &'a HolderBook,
    /// The users' names, for the sockets' uids.
    pub users: &'a UserNames,
}

/// Which sockets of the table are shown, with their roles and targets:
/// per target its group; for the listing, those that take connections
/// or datagrams by name (or every one).
pub fn select(
    sockets: &[UnixSocket],
    source: SourceKind,
    targets: &[(UnixTarget, Option<Result<SocketFile, FileError>>)],
    every_socket: bool,
) -> (Vec<(usize, UnixRole)>, Vec<TargetAnswer>) {
    let mut chosen: Vec<(usize, UnixRole)> = Vec::new();
    let mut answers = Vec::new();
    if targets.is_empty() {
        chosen = sockets
            .iter()
            .enumerate()
            .filter(|(_, s)| every_socket || s.takes_by_name())
            .map(|(i, s)| (i, UnixRole::alone(s)))
            .collect();
        return (chosen, answers);
    }
    for (target, file) in targets {
        let (bound, matched_by) = bound_to(sockets, source, target, file.as_ref());
        let verdict = verdict(file.as_ref(), &bound);
        let group = UnixGroup::of(sockets, &bound);
        let mut indexes = Vec::new();
        for (list, role) in [
            (&group.servers, None),
            (&group.accepted, Some(UnixRole::Accepted)),
            (&group.clients, Some(UnixRole::Client)),
            (&group.waiting, Some(UnixRole::Waiting)),
        ] {
            for &socket in list {
                let role = role.unwrap_or_else(|| {
                    if sockets[socket].is_listening() {
                        UnixRole::Listener
                    } else {
                        UnixRole::Bound
                    }
                });
                let at = match chosen.iter().position(|(i, _)| *i == socket) {
                    Some(at) => at,
                    None => {
                        chosen.push((socket, role));
                        chosen.len() - 1
                    }
                };
                indexes.push(at);
            }
        }
        answers.push(TargetAnswer {
            target: target.clone(),
            file: file.clone(),
            verdict,
            matched_by,
            rows: indexes,
        });
    }
    (chosen, answers)
}

/// The sockets bound to a target, and how they were matched.
fn bound_to(
    sockets: &[UnixSocket],
    source: SourceKind,
    target: &UnixTarget,
    file: Option<&Result<SocketFile, FileError>>,
) -> (Vec<usize>, MatchedBy) {
    match (target, file) {
        (UnixTarget::Abstract(name), _) => (
            target::on_abstract_name(name, sockets),
            MatchedBy::AbstractName,
        ),
        (UnixTarget::Path(_), Some(Ok(file))) if source == SourceKind::Netlink => {
            (target::on_file(file, sockets), MatchedBy::File)
        }
        // A file that cannot be reached, or a source without bound
        // files: the names it may have been bound by.
        (UnixTarget::Path(path), _) => {
            let names = target::path_names(path);
            (target::on_path_name(&names, sockets), MatchedBy::Name)
        }
    }
}

fn verdict(file: Option<&Result<SocketFile, FileError>>, bound: &[usize]) -> UnixVerdict {
    match file {
        None if bound.is_empty() => UnixVerdict::Free,
        None => UnixVerdict::InUse,
        Some(Ok(file)) => match file_verdict(file, bound) {
            FileVerdict::InUse => UnixVerdict::InUse,
            FileVerdict::Stale => UnixVerdict::Stale,
            FileVerdict::NotASocket => UnixVerdict::NotASocket,
        },
        // Bound by this name to a file since removed: in use, but no
        // one can connect by the path.
        Some(Err(_)) if !bound.is_empty() => UnixVerdict::InUse,
        Some(Err(err)) if err.is_missing() => UnixVerdict::Free,
        Some(Err(_)) => UnixVerdict::Unknown,
    }
}

/// What the join made: the rows, the answers per target, and how many
/// sockets the reverse query could not test.
pub struct Joined {
    /// The sockets shown.
    pub rows: Vec<UnixRow>,
    /// One per target.
    pub answers: Vec<TargetAnswer>,
    /// See [`UnixReport::untested_by_filter`].
    pub untested_by_filter: usize,
}

/// The join: the rows chosen, with holders and peers; the reverse
/// query applied to the listing.
pub fn build(inputs: UnixInputs<'_>) -> Joined {
    let UnixInputs {
        sockets,
        targets,
        every_socket,
        filters,
        cgroup_holders,
        source,
        scan,
        book,
        users,
    } = inputs;
    let (chosen, answers) = select(&sockets, source, &targets, every_socket);
    let mut rows: Vec<UnixRow> = chosen
        .iter()
        .map(|&(index, role)| {
            let socket = sockets[index].clone();
            let holders = book.holders(socket.inode, scan);
            UnixRow {
                holders_hidden: holders.is_empty() && scan.may_hide_holders(),
                owner: socket
                    .uid
                    .and_then(|uid| users.name(uid))
                    .map(str::to_string),
                socket,
                role,
                holders,
                peer_row: None,
            }
        })
        .collect();
    let mut untested_by_filter = 0;
    if answers.is_empty() && !filters.is_empty() {
        rows.retain(|row| match passes(row, filters, cgroup_holders) {
            Pass::Yes => true,
            Pass::No => false,
            Pass::Untested => {
                untested_by_filter += 1;
                false
            }
        });
    }
    // Peers are linked among the rows kept: one the filter left out has
    // no row.
    let by_inode: HashMap<u64, usize> = rows
        .iter()
        .enumerate()
        .map(|(i, r)| (r.socket.inode, i))
        .collect();
    for row in &mut rows {
        row.peer_row = row
            .socket
            .peer_inode()
            .and_then(|inode| by_inode.get(&inode).copied());
    }
    Joined {
        rows,
        answers,
        untested_by_filter,
    }
}

/// Whether a socket passes the reverse query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pass {
    Yes,
    No,
    /// It passes the other filters, but its holders, whose cgroups the
    /// cgroup filters test, are hidden.
    Untested,
}

/// The reverse query on a Unix socket: held by one of the pids, created
/// by (or held by) one of the uids, held by a process in a cgroup that
/// passes `--unit`, `--container` and `--cgroup`.
fn passes(row: &UnixRow, filters: &Filters, cgroup_holders: Option<&HashSet<u32>>) -> Pass {
    let by_pid =
        filters.pids.is_empty() || row.holders.iter().any(|h| filters.pids.contains(&h.pid));
    let by_uid = filters.uids.is_empty()
        || row
            .socket
            .uid
            .is_some_and(|uid| filters.uids.contains(&uid))
        || row
            .holders
            .iter()
            .any(|h| h.uid().is_some_and(|uid| filters.uids.contains(&uid)));
    if !(by_pid && by_uid) {
        return Pass::No;
    }
    match cgroup_holders {
        None => Pass::Yes,
        Some(pids) if row.holders.iter().any(|h| pids.contains(&h.pid)) => Pass::Yes,
        Some(_) if row.holders_hidden => Pass::Untested,
        Some(_) => Pass::No,
    }
}

/// What the file's kind is, in words.
pub fn kind_name(kind: FileKind) -> &'static str {
    match kind {
        FileKind::Socket => "socket",
        FileKind::Directory => "directory",
        FileKind::Other => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::unix::socket::{BoundFile, DeviceNumber, UnixName, UnixState, UnixType};
    use std::path::PathBuf;

    const DEV: DeviceNumber = DeviceNumber {
        major: 0,
        minor: 40,
    };

    fn socket_file(inode: u64, kind: FileKind) -> SocketFile {
        SocketFile {
            path: "/run/a.sock".into(),
            device: DEV,
            inode,
            kind,
            uid: 0,
            gid: 0,
            mode: 0o755,
            may_connect: true,
        }
    }

    fn listener(inode: u64, file_inode: u32) -> UnixSocket {
        let mut socket = UnixSocket::new(
            UnixType::Stream,
            UnixState::Listen,
            inode,
            UnixName::Path("/run/a.sock".into()),
        );
        socket.bound_file = Some(BoundFile {
            device: DEV,
            inode: file_inode,
        });
        socket
    }

    fn path_target() -> UnixTarget {
        UnixTarget::Path(PathBuf::from("/run/a.sock"))
    }

    #[test]
    fn verdicts_follow_the_file_and_what_is_bound_to_it() {
        let sockets = vec![listener(10, 500)];
        let verdict_of = |file: Option<Result<SocketFile, FileError>>| {
            let (_, answers) = select(
                &sockets,
                SourceKind::Netlink,
                &[(path_target(), file)],
                false,
            );
            answers[0].verdict
        };
        assert_eq!(
            verdict_of(Some(Ok(socket_file(500, FileKind::Socket)))),
            UnixVerdict::InUse
        );
        assert_eq!(
            verdict_of(Some(Ok(socket_file(501, FileKind::Socket)))),
            UnixVerdict::Stale
        );
        assert_eq!(
            verdict_of(Some(Ok(socket_file(501, FileKind::Directory)))),
            UnixVerdict::NotASocket
        );
        let missing = FileError {
            errno: Some(libc::ENOENT),
            message: "No such file".into(),
        };
        let refused = FileError {
            errno: Some(libc::EACCES),
            message: "Permission denied".into(),
        };
        // Bound by the name to a file since removed: in use by name.
        assert_eq!(verdict_of(Some(Err(missing.clone()))), UnixVerdict::InUse);
        assert_eq!(verdict_of(Some(Err(refused.clone()))), UnixVerdict::InUse);
        let none: Vec<UnixSocket> = Vec::new();
        let (_, answers) = select(
            &none,
            SourceKind::Netlink,
            &[(path_target(), Some(Err(missing)))],
            false,
        );
        assert_eq!(answers[0].verdict, UnixVerdict::Free);
        let (_, answers) = select(
            &none,
            SourceKind::Netlink,
            &[(path_target(), Some(Err(refused)))],
            false,
        );
        assert_eq!(answers[0].verdict, UnixVerdict::Unknown);
        assert_eq!(answers[0].matched_by, MatchedBy::Name);
    }

    #[test]
    fn the_proc_source_matches_by_name() {
        // No bound file: the listener is found by its name only.
        let mut socket = listener(10, 500);
        socket.bound_file = None;
        let (chosen, answers) = select(
            &[socket],
            SourceKind::Proc,
            &[(path_target(), Some(Ok(socket_file(999, FileKind::Socket))))],
            false,
        );
        assert_eq!(answers[0].matched_by, MatchedBy::Name);
        assert_eq!(answers[0].verdict, UnixVerdict::InUse);
        assert_eq!(chosen, [(0, UnixRole::Listener)]);
    }

    #[test]
    fn the_listing_keeps_servers_unless_every_socket_is_asked() {
        let unnamed = UnixSocket::new(
            UnixType::Stream,
            UnixState::Connected,
            11,
            UnixName::Unnamed,
        );
        let sockets = vec![listener(10, 500), unnamed];
        let (chosen, _) = select(&sockets, SourceKind::Netlink, &[], false);
        assert_eq!(chosen, [(0, UnixRole::Listener)]);
        let (chosen, _) = select(&sockets, SourceKind::Netlink, &[], true);
        assert_eq!(chosen.len(), 2);
        assert_eq!(chosen[1].1, UnixRole::Other);
    }
}
