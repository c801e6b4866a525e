//! `lsport PATH`, `lsport @NAME`, `lsport --unix`: the stages in order.
//! The files of the targets are looked at first, then the namespace's
//! Unix socket table is dumped (sock_diag, or /proc/net/unix where it is
//! refused) while the fd walk runs, then the join (`unix::report`).

use std::collections::{HashMap, HashSet};

use crate::error::Error;
use crate::filter::{self, CgroupPathFilter};
use crate::holders::cgroups;
use crate::holders::procfs::{self as holder_walk, FdScan};
use crate::holders::search::HolderSearch;
use crate::holders::unseen::Unseen;
use crate::holders::users::UserNames;
use crate::query::{HolderDetail, NetnsChoice, Query, SourceChoice, View};
use crate::report::HolderBook;
use crate::source::unix::netlink::{ALL_STATES, UnixSession};
use crate::source::unix::procfs::{self, UnixBlindSpot};
use crate::source::{SourceKind, netlink_unavailable};
use crate::sys::ProcRoot;

use super::report::{self, FileError, UnixInputs, UnixReport};
use super::socket::UnixSocket;
use super::target::{SocketFile, UnixTarget};

/// The Unix sockets of one network namespace's table, from the source
/// asked for.
pub struct UnixTable {
    /// Every socket of the table.
    pub sockets: Vec<UnixSocket>,
    /// The source that answered.
    pub source: SourceKind,
    /// Why sock_diag was given up, when it was.
    pub fallback: Option<String>,
    /// Messages or lines that could not be decoded.
    pub skipped: usize,
}

/// The whole table of the calling thread's network namespace: sock_diag,
/// or with `auto` /proc/net/unix where sock_diag is refused.
pub fn read_table(query: &Query) -> Result<UnixTable, Error> {
    let from_proc = |fallback: Option<String>| -> Result<UnixTable, Error> {
        let mut sockets = Vec::new();
        let counts = procfs::read_table(&query.proc_root, &mut |_| true, &mut sockets).map_err(
            |source| Error::Io {
                path: query.proc_root.thread_path("net/unix"),
                source,
            },
        )?;
        Ok(UnixTable {
            sockets,
            source: SourceKind::Proc,
            fallback,
            skipped: counts.bad,
        })
    };
    let from_netlink = || -> Result<UnixTable, Error> {
        let mut sockets = Vec::new();
        let skipped = UnixSession::default()
            .dump(ALL_STATES, &mut |_| true, &mut sockets)
            .map_err(|e| Error::Netlink {
                errno: e.errno,
                message: e.message,
            })?;
        Ok(UnixTable {
            sockets,
            source: SourceKind::Netlink,
            fallback: None,
            skipped,
        })
    };
    match query.source {
        SourceChoice::Proc => from_proc(None),
        SourceChoice::Netlink => from_netlink(),
        SourceChoice::Auto => match from_netlink() {
            Err(Error::Netlink { errno, message }) if netlink_unavailable(errno) => {
                from_proc(Some(message))
            }
            other => other,
        },
    }
}

/// [`read_table`] in the namespace the query names.
pub fn read_table_in_namespace(query: &Query) -> Result<UnixTable, Error> {
    match &query.netns {
        NetnsChoice::Current => read_table(query),
        NetnsChoice::One(path) => crate::netns::run_in(path, None, || read_table(query))
            .map_err(|e| e.into_error(path))?,
        NetnsChoice::All => Err(Error::usage(
            "Unix sockets are looked up in one network namespace: use --netns, not --all-netns",
        )),
    }
}

/// The file each path target leads to (stat, following symlinks).
pub fn look_at_files(
    targets: &[UnixTarget],
) -> Vec<(UnixTarget, Option<Result<SocketFile, FileError>>)> {
    targets
        .iter()
        .map(|target| {
            let file = match target {
                UnixTarget::Path(path) => {
                    Some(SocketFile::stat(path).map_err(|e| FileError::of(&e)))
                }
                UnixTarget::Abstract(_) => None,
            };
            (target.clone(), file)
        })
        .collect()
}

/// Answers the query's Unix targets, or lists its Unix sockets.
pub fn probe(query: &Query) -> Result<UnixReport, Error> {
    // Checked before anything is read: no hierarchy, no cgroup filter.
    let hierarchy = if query.filters.by_cgroup() {
        Some(filter::cgroup_hierarchy(query)?)
    } else {
        None
    };
    let targets = look_at_files(&query.unix_targets);
    // -l keeps the listing to servers, in a reverse query too.
    let every_socket = query.view == View::All && !query.listening_only;
    let root = &query.proc_root;
    let mut search = HolderSearch::plan(query);
    // The reverse query tests holders, even where none is shown (-q).
    let walk = query.holders == HolderDetail::Processes || !query.filters.is_empty();
    let (table, scan) = if walk {
        let ((table, wanted), mut scan) = search.run_while(query, |_start| {
            let table = read_table_in_namespace(query)?;
            let (chosen, _) = report::select(&table.sockets, table.source, &targets, every_socket);
            let wanted: HashSet<u64> = chosen
                .iter()
                .map(|&(i, _)| table.sockets[i].inode)
                .collect();
            Ok::<_, Error>(((table, wanted.clone()), wanted))
        })?;
        search.note_refused_tables(root, &mut scan, &wanted);
        (table, scan)
    } else {
        (read_table_in_namespace(query)?, FdScan::default())
    };
    let processes: HashMap<u32, holder_walk::ProcessInfo> = scan
        .holding_pids()
        .into_iter()
        .map(|pid| {
            (
                pid,
                holder_walk::process_info(root, pid, query.process_fields),
            )
        })
        .collect();
    let users = if query.user_names {
        UserNames::load("/etc/passwd")
    } else {
        UserNames::none()
    };
    let book = HolderBook::new(&processes, &users);
    let UnixTable {
        sockets,
        source,
        fallback,
        skipped,
    } = table;
    let cgroup_holders = hierarchy.map(|hierarchy| {
        let paths = CgroupPathFilter::new(&hierarchy, &query.filters);
        holders_in_cgroups(root, processes.keys().copied(), &paths)
    });
    let report::Joined {
        rows,
        answers,
        untested_by_filter,
    } = report::build(UnixInputs {
        sockets,
        targets,
        every_socket,
        filters: &query.filters,
        cgroup_holders: cgroup_holders.as_ref(),
        source,
        scan: &scan,
        book: &book,
        users: &users,
    });
    let hidden = rows.iter().any(|r| r.holders_hidden);
    Ok(UnixReport {
        source,
        fallback,
        blind_spots: match source {
            SourceKind::Proc => UnixBlindSpot::ALL.to_vec(),
            SourceKind::Netlink => Vec::new(),
        },
        targets: answers,
        rows,
        skipped,
        unseen: if hidden {
            Unseen::of(root, &scan)
        } else {
            Unseen::default()
        },
        untested_by_filter,
        holders_from: walk.then_some(search.from),
    })
}

/// The holders whose cgroup (/proc/PID/cgroup) passes the cgroup
/// filters. One that exited since the fd walk is in none.
fn holders_in_cgroups(
    root: &ProcRoot,
    pids: impl Iterator<Item = u32>,
    paths: &CgroupPathFilter<'_>,
) -> HashSet<u32> {
    pids.filter(|&pid| cgroups::of_process(root, pid).is_some_and(|path| paths.matches(&path)))
        .collect()
}
