//! Network namespaces: finding every one on the host, and running work
//! inside one.
//!
//! Namespaces are found through /proc/PID/ns/net (de-duplicated by
//! inode), the bind mounts of ip-netns under /run/netns, and the ones
//! Docker keeps under /var/run/docker/netns. Work runs inside a
//! namespace on a thread of its own that calls setns(2) first: a network
//! namespace belongs to a thread, so nothing leaks into the rest of the
//! run.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use nix::sched::{CloneFlags, setns};

use crate::error::Error;
use crate::holders::container::Container;
use crate::sys::ProcRoot;

/// Where ip-netns(8) keeps its named namespaces.
pub const IP_NETNS_DIR: &str = "/run/netns";
/// Where Docker keeps the namespaces of its containers' sandboxes.
pub const DOCKER_NETNS_DIR: &str = "/var/run/docker/netns";

/// How a report names the network namespace it speaks for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetnsLabel {
    /// The namespace's inode, the INODE of `net:[INODE]`; known only when
    /// every namespace is probed
    /// ([`NetnsChoice::All`](crate::query::NetnsChoice::All)).
    pub inode: Option<u64>,
    /// The ip-netns name, or Docker's sandbox id, where one is known.
    pub name: Option<String>,
    /// The container whose processes live in it, where one is known.
    pub container: Option<Container>,
}

/// One network namespace and what is known about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Namespace {
    /// The namespace's inode, the INODE of `net:[INODE]`: what tells one
    /// namespace from another.
    pub inode: u64,
    /// A file that refers to it, to open and setns(2) into.
    pub path: PathBuf,
    /// Its ip-netns name, if it has one.
    pub name: Option<String>,
    /// The sandbox id Docker names its namespace file after.
    pub docker_sandbox: Option<String>,
    /// Processes that live in it (the first few are enough to enter it).
    pub pids: Vec<u32>,
}

/// Every network namespace visible from here, ordered by inode.
pub fn discover(root: &ProcRoot) -> Vec<Namespace> {
    let mut found: BTreeMap<u64, Namespace> = BTreeMap::new();
    fn add(found: &mut BTreeMap<u64, Namespace>, inode: u64, path: PathBuf) -> &mut Namespace {
        found.entry(inode).or_insert_with(|| Namespace {
            inode,
            path,
            name: None,
            docker_sandbox: None,
            pids: Vec::new(),
        })
    }
    if let Ok(entries) = std::fs::read_dir(root.base()) {
        for entry in entries.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            let path = entry.path().join("ns/net");
            // A process that exits now, or one we may not inspect, is skipped.
            if let Some(inode) = inode_of(&path) {
                add(&mut found, inode, path).pids.push(pid);
            }
        }
    }
    // A file under /run/netns is a namespace only once mounted over:
    // `ip netns add` creates it empty first. Namespace files all live on
    // the kernel's nsfs, which our own namespace file tells apart.
    let nsfs = std::fs::metadata(root.path("thread-self/ns/net"))
        .ok()
        .map(|m| m.dev());
    for (dir, docker) in [(IP_NETNS_DIR, false), (DOCKER_NETNS_DIR, true)] {
        let Ok(entries) = std::fs::read_dir(dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(meta) = std::fs::metadata(&path) else {
                continue;
            };
            if nsfs.is_some_and(|dev| meta.dev() != dev) {
                continue;
            }
            let inode = meta.ino();
            let file_name = entry.file_name().to_string_lossy().into_owned();
            let namespace = add(&mut found, inode, path.clone());
            // A named file is a steadier handle than a pid that may exit.
            namespace.path = path;
            if docker {
                namespace.docker_sandbox.get_or_insert(file_name);
            } else {
                namespace.name.get_or_insert(file_name);
            }
        }
    }
    found.into_values().collect()
}

/// The ip-netns name of the namespace with this inode, if it has one:
/// `--netns PID` and `ip netns exec NAME lsport` name it as
/// `--netns NAME` does.
pub fn ip_netns_name(inode: u64) -> Option<String> {
    std::fs::read_dir(IP_NETNS_DIR)
        .ok()?
        .flatten()
        .find(|entry| inode_of(&entry.path()) == Some(inode))
        .and_then(|entry| entry.file_name().to_str().map(str::to_string))
}

/// The namespace inode behind a namespace file (`/proc/PID/ns/net` or a
/// bind mount of one).
pub fn inode_of(path: &Path) -> Option<u64> {
    let meta = std::fs::metadata(path).ok()?;
    Some(meta.ino())
}

/// What TARGET in `--netns TARGET` means: a pid, a path, or an ip-netns name.
pub fn resolve_target(target: &str, root: &ProcRoot) -> Result<PathBuf, Error> {
    if !target.is_empty() && target.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(root.path(&format!("{target}/ns/net")));
    }
    if target.contains('/') {
        return Ok(PathBuf::from(target));
    }
    if target.is_empty() || target == "." || target == ".." {
        return Err(Error::usage("empty network namespace name"));
    }
    Ok(Path::new(IP_NETNS_DIR).join(target))
}

/// Why a namespace could not be entered.
#[derive(Debug)]
pub enum EnterError {
    /// It is gone: its file vanished or its last process exited.
    Gone,
    /// It is there but may not be entered (not root), or something else failed.
    Refused(String),
}

impl EnterError {
    /// The error for a namespace the user named by its file: a pid that
    /// does not exist, or a name with no file, is said as such.
    pub fn into_error(self, path: &Path) -> Error {
        let reason = match self {
            EnterError::Gone => match pid_of_file(path) {
                Some(pid) => format!("no such process {pid}"),
                None => "no such network namespace".to_string(),
            },
            EnterError::Refused(message) => message,
        };
        Error::Netns {
            target: path.display().to_string(),
            reason,
        }
    }
}

/// The pid in a `/proc/PID/ns/net` path, if it is one.
fn pid_of_file(path: &Path) -> Option<u32> {
    let ns_dir = path.parent()?;
    let pid_dir = ns_dir.parent()?;
    (path.file_name()? == "net" && ns_dir.file_name()? == "ns")
        .then(|| pid_dir.file_name()?.to_str()?.parse().ok())
        .flatten()
}

/// Runs `work` on a new thread inside the namespace that `path` refers
/// to, and returns its result.
/// `expected` is the namespace's inode when the caller found it by
/// discovery: a file that no longer refers to it (ip netns del unmounts
/// the file before removing it) means the namespace is gone.
pub fn run_in<T: Send>(
    path: &Path,
    expected: Option<u64>,
    work: impl FnOnce() -> T + Send,
) -> Result<T, EnterError> {
    // Non-blocking, and only a namespace: a fifo here must not hang.
    let file = crate::files::open_namespace_file(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => EnterError::Gone,
        _ => EnterError::Refused(format!("opening {}: {e}", path.display())),
    })?;
    if expected.is_some() && file.metadata().ok().map(|m| m.ino()) != expected {
        return Err(EnterError::Gone);
    }
    std::thread::scope(|scope| {
        std::thread::Builder::new()
            .spawn_scoped(scope, move || {
                setns(&file, CloneFlags::CLONE_NEWNET).map_err(|e| {
                    let hint = match e {
                        nix::errno::Errno::EPERM => {
                            " (entering a network namespace needs CAP_SYS_ADMIN: run as root)"
                        }
                        nix::errno::Errno::EINVAL => " (not a network namespace file)",
                        _ => "",
                    };
                    EnterError::Refused(format!(
                        "entering the network namespace of {}: {e}{hint}",
                        path.display()
                    ))
                })?;
                Ok(work())
            })
            // No thread to be had (a pids limit, a small ulimit -v).
            .map_err(|e| {
                EnterError::Refused(format!(
                    "cannot start a thread to enter the network namespace of {}: {e}",
                    path.display()
                ))
            })?
            .join()
            .unwrap_or_else(|_| Err(EnterError::Refused("a namespace worker panicked".into())))
    })
}
