//! The filters of a reverse query ([`Filters`]): which sockets a
//! process holds, a user owns, or a unit, container or cgroup created.
//! `prepare` turns them, once per probe, into sets a socket is tested
//! against: the socket inodes in the processes' fd tables, the uids, and
//! the ids of the cgroups that match (one walk of the cgroup v2
//! hierarchy). The cgroup ids also go to the kernel, whose filter tests
//! them where it can (Linux 5.8+); lsport tests every socket anyway.

use std::collections::HashSet;

use crate::error::Error;
use crate::holders::cgroups::{self, CgroupTree, Hierarchy};
use crate::holders::procfs::{self, TableRead};
use crate::query::{Filters, Query, SourceChoice};
use crate::socket::{Socket, State};
use crate::sys::ProcRoot;

/// The filters, ready to test sockets.
#[derive(Debug, Default)]
pub struct SocketFilter {
    /// `--pid`: the inodes of the sockets those processes hold.
    inodes: Option<HashSet<u64>>,
    /// `--user`: the owners' uids.
    uids: Option<Vec<u32>>,
    /// `--unit`, `--container`, `--cgroup`: the ids of the cgroups that
    /// match them all, sorted.
    cgroups: Option<Vec<u64>>,
}

impl SocketFilter {
    /// Whether a socket passes every filter.
    pub fn matches(&self, socket: &Socket) -> bool {
        self.inodes
            .as_ref()
            .is_none_or(|inodes| socket.inode != 0 && inodes.contains(&socket.inode))
            && self
                .uids
                .as_ref()
                .is_none_or(|uids| owner_known(socket) && uids.contains(&socket.uid))
            && self.cgroups.as_ref().is_none_or(|ids| {
                socket
                    .cgroup_id
                    .is_some_and(|id| ids.binary_search(&id.get()).is_ok())
            })
    }

    /// Whether any filter is set.
    pub fn is_active(&self) -> bool {
        self.inodes.is_some() || self.uids.is_some() || self.cgroups.is_some()
    }

    /// The cgroup ids for the kernel's filter, when a filter is on cgroups.
    pub fn kernel_cgroups(&self) -> Option<&[u64]> {
        self.cgroups.as_deref()
    }
}

/// The kernel records no owner for TIME_WAIT and request sockets (it
/// reports uid 0 for them), nor for an orphaned FIN_WAIT2 connection it
/// keeps as a timewait socket; an orphan is nobody's anyway: no `--user`
/// matches them.
fn owner_known(socket: &Socket) -> bool {
    !(socket.ends_by_itself()
        || (socket.inode == 0 && matches!(socket.state, State::SynRecv | State::NewSynRecv)))
}

/// The filters of `query`, ready to test sockets, and the cgroup tree
/// walked for them (None when no filter is on cgroups). Errors: a pid
/// that is no process or whose fds may not be read, a cgroup filter
/// without a cgroup v2 hierarchy or with `--source proc`.
pub(crate) fn prepare(query: &Query) -> Result<(SocketFilter, Option<CgroupTree>), Error> {
    let filters = &query.filters;
    let mut filter = SocketFilter::default();
    if !filters.pids.is_empty() {
        let mut inodes = HashSet::new();
        for &pid in &filters.pids {
            sockets_of(&query.proc_root, pid, &mut inodes)?;
        }
        filter.inodes = Some(inodes);
    }
    if !filters.uids.is_empty() {
        filter.uids = Some(filters.uids.clone());
    }
    let mut tree = None;
    if filters.by_cgroup() {
        if query.source == SourceChoice::Proc {
            return Err(Error::usage(
                "--unit, --container and --cgroup need sock_diag, which gives each socket's cgroup; /proc/net does not (drop --source proc)",
            ));
        }
        let hierarchy = cgroup_hierarchy(query)?;
        let walked = hierarchy.walk(None);
        let paths = CgroupPathFilter::new(&hierarchy, filters);
        filter.cgroups = Some(walked.ids_where(|path| paths.matches(path)));
        tree = Some(walked);
    }
    Ok((filter, tree))
}

/// The cgroup v2 hierarchy `--unit`, `--container` and `--cgroup` are
/// tested in; an error where none is mounted.
pub(crate) fn cgroup_hierarchy(query: &Query) -> Result<Hierarchy, Error> {
    Hierarchy::locate(&query.proc_root).ok_or_else(|| {
        Error::usage(
            "--unit, --container and --cgroup need the cgroup v2 hierarchy, and none is mounted here",
        )
    })
}

/// `--unit`, `--container` and `--cgroup`, ready to test a cgroup's path
/// (as the hierarchy and /proc/PID/cgroup name it).
pub(crate) struct CgroupPathFilter<'a> {
    filters: &'a Filters,
    /// The `--cgroup` values as paths in the hierarchy.
    wanted_cgroups: Vec<String>,
}

impl<'a> CgroupPathFilter<'a> {
    pub(crate) fn new(hierarchy: &Hierarchy, filters: &'a Filters) -> CgroupPathFilter<'a> {
        CgroupPathFilter {
            filters,
            wanted_cgroups: filters
                .cgroups
                .iter()
                .map(|c| hierarchy.cgroup_path(c))
                .collect(),
        }
    }

    /// Whether a cgroup path passes every cgroup filter.
    pub(crate) fn matches(&self, path: &str) -> bool {
        let filters = self.filters;
        (filters.units.is_empty() || filters.units.iter().any(|u| cgroups::in_unit(path, u)))
            && (filters.containers.is_empty()
                || cgroups::container_of(path).is_some_and(|c| {
                    filters
                        .containers
                        .iter()
                        .any(|w| cgroups::is_container(&c, w))
                }))
            && (self.wanted_cgroups.is_empty()
                || self
                    .wanted_cgroups
                    .iter()
                    .any(|c| cgroups::in_cgroup(path, c)))
    }
}

/// Adds the inodes of the sockets `pid` holds, in its fd table and in
/// those of its threads that have their own.
fn sockets_of(root: &ProcRoot, pid: u32, inodes: &mut HashSet<u64>) -> Result<(), Error> {
    let proc_dir = procfs::open_proc(root).ok_or_else(|| Error::Io {
        path: root.base().to_path_buf(),
        source: std::io::Error::last_os_error(),
    })?;
    match procfs::read_socket_fds(&proc_dir, pid, |inode, _| {
        inodes.insert(inode);
    }) {
        TableRead::Read => {}
        TableRead::Gone => return Err(Error::Usage(format!("--pid {pid}: no such process"))),
        // Root is refused by the process itself (or lacks CAP_SYS_PTRACE):
        // running as root would not help.
        TableRead::Refused(why) if nix::unistd::geteuid().is_root() => {
            return Err(Error::Usage(format!(
                "--pid {pid}: its file descriptors cannot be read: {} ({})",
                why.describe(),
                why.error()
            )));
        }
        TableRead::Refused(_) => {
            return Err(Error::Usage(format!(
                "--pid {pid}: its file descriptors cannot be read by this user (run as root, or as its owner)"
            )));
        }
    }
    let tasks = std::fs::read_dir(root.path(&format!("{pid}/task")));
    for task in tasks.into_iter().flatten().flatten() {
        let Some(tid) = task
            .file_name()
            .to_str()
            .and_then(|t| t.parse::<u32>().ok())
        else {
            continue;
        };
        if tid != pid {
            procfs::thread_socket_fds(&proc_dir, pid, tid, |inode, _| {
                inodes.insert(inode);
            });
        }
    }
    Ok(())
}

/// A user as `--user` takes it: a name from `passwd`, or a number.
pub fn parse_user(text: &str, passwd: &str) -> Result<u32, Error> {
    if let Ok(uid) = text.parse::<u32>() {
        return Ok(uid);
    }
    crate::holders::users::UserNames::load(passwd)
        .uid(text)
        .ok_or_else(|| Error::Usage(format!("--user {text}: no such user in {passwd}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn socket(state: State, uid: u32, inode: u64, cgroup_id: Option<u64>) -> Socket {
        Socket {
            uid,
            inode,
            cgroup_id: cgroup_id.and_then(std::num::NonZeroU64::new),
            ..Socket::example(state, "127.0.0.1:80", "127.0.0.1:80")
        }
    }

    #[test]
    fn every_filter_must_pass_and_any_value_of_one() {
        let filter = SocketFilter {
            inodes: None,
            uids: Some(vec![33, 1000]),
            cgroups: Some(vec![5, 9]),
        };
        assert!(filter.matches(&socket(State::Listen, 33, 1, Some(9))));
        assert!(filter.matches(&socket(State::Listen, 1000, 1, Some(5))));
        assert!(!filter.matches(&socket(State::Listen, 34, 1, Some(5))));
        assert!(!filter.matches(&socket(State::Listen, 33, 1, Some(6))));
        assert!(!filter.matches(&socket(State::Listen, 33, 1, None)));
        assert!(SocketFilter::default().matches(&socket(State::Listen, 0, 0, None)));
    }

    #[test]
    fn sockets_without_an_owner_match_no_user() {
        let root = SocketFilter {
            uids: Some(vec![0]),
            ..SocketFilter::default()
        };
        assert!(root.matches(&socket(State::Listen, 0, 7, None)));
        assert!(!root.matches(&socket(State::TimeWait, 0, 0, None)));
        assert!(!root.matches(&socket(State::SynRecv, 0, 0, None)));
        assert!(!root.matches(&socket(State::FinWait2, 0, 0, None)));
        // A connection its process still holds keeps its owner.
        assert!(root.matches(&socket(State::FinWait2, 0, 7, None)));
    }

    #[test]
    fn a_process_filter_keeps_the_inodes_it_holds() {
        let filter = SocketFilter {
            inodes: Some([7u64].into()),
            ..SocketFilter::default()
        };
        assert!(filter.matches(&socket(State::Listen, 0, 7, None)));
        assert!(!filter.matches(&socket(State::Listen, 0, 8, None)));
        assert!(!filter.matches(&socket(State::TimeWait, 0, 0, None)));
    }

    #[test]
    fn users_are_names_or_numbers() {
        assert_eq!(parse_user("33", "/nonexistent").unwrap(), 33);
        let err = parse_user("nosuchuser", "/nonexistent").unwrap_err();
        assert!(err.to_string().contains("no such user"), "{err}");
    }
}
