//! The cgroup v2 hierarchy, to name the cgroup a socket was created in.
//!
//! sock_diag gives each socket's cgroup as a number: the id of a cgroup
//! v2, which is the inode number of its directory on the cgroup2
//! filesystem. The hierarchy is mounted at `/sys/fs/cgroup` on a pure v2
//! host and at `/sys/fs/cgroup/unified` on a hybrid one; the mount table
//! says where. One walk of its directories maps ids to paths; the walk
//! reads directory entries only (their inode numbers come with them), so
//! any user may do it and it costs no stat per cgroup. From a path,
//! [`unit_of`] names the systemd unit and [`crate::holders::container::from_path`]
//! the container.

use std::collections::{HashMap, HashSet};
use std::ffi::{CStr, CString};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::holders::container::{self, Container};
use crate::holders::mountinfo::{self, Mount};
use crate::sys::ProcRoot;

/// The suffixes of the systemd units that have a cgroup.
const UNIT_SUFFIXES: [&str; 6] = [".service", ".scope", ".slice", ".socket", ".mount", ".swap"];

/// Where the cgroup v2 hierarchy is mounted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hierarchy {
    /// The mount point (`/sys/fs/cgroup/unified`).
    pub dir: PathBuf,
    /// The cgroup the mount shows as its root: `/` unless only a
    /// subtree is mounted (a bind mount, or a cgroup namespace seen from
    /// outside it).
    pub root: String,
}

impl Hierarchy {
    /// The cgroup2 mount of lsport's mount namespace; None on a host
    /// without one (cgroup v1 only) or when the mount table cannot be
    /// read.
    pub fn locate(proc_root: &ProcRoot) -> Option<Hierarchy> {
        find(&mountinfo::read(proc_root)?)
    }

    /// A cgroup as the user gave it, as a path in the hierarchy: either
    /// already one (`/system.slice/nginx.service`, as /proc/PID/cgroup and
    /// ss show it) or a directory under the mount point.
    pub fn cgroup_path(&self, given: &str) -> String {
        let under_mount = Path::new(given)
            .strip_prefix(&self.dir)
            .ok()
            .map(|rest| join(&self.root, &rest.to_string_lossy()));
        normalize(&under_mount.unwrap_or_else(|| given.to_string()))
    }

    /// The processes of the cgroup at `path` (as the tree names it), from
    /// its cgroup.procs; empty where that cannot be read.
    pub fn processes(&self, path: &str) -> Vec<u32> {
        let root = normalize(&self.root);
        let Some(below) = path.strip_prefix(root.trim_end_matches('/')) else {
            return Vec::new();
        };
        let file = self
            .dir
            .join(below.trim_start_matches('/'))
            .join("cgroup.procs");
        // A cgroup with more processes than this is no narrow search.
        const LIMIT: usize = 1 << 20;
        let Ok(text) = crate::files::read_bounded(&file, LIMIT) else {
            return Vec::new();
        };
        text.split(|b| *b == b'\n')
            .filter_map(|line| std::str::from_utf8(line).ok()?.parse().ok())
            .collect()
    }

    /// Walks the hierarchy and maps each cgroup's id to its path. With
    /// `wanted`, the walk stops once every id in it is found. Directories
    /// that vanish or cannot be read while it runs are passed over.
    pub fn walk(&self, wanted: Option<&HashSet<u64>>) -> CgroupTree {
        let mut paths = HashMap::new();
        let Ok(top) = std::fs::metadata(&self.dir) else {
            return CgroupTree { paths };
        };
        let mut missing = wanted.map_or(usize::MAX, HashSet::len);
        let mut note = |id: u64, path: String| {
            if wanted.is_some_and(|w| w.contains(&id)) {
                missing = missing.saturating_sub(1);
            }
            paths.insert(id, path);
            missing == 0
        };
        let root = normalize(&self.root);
        if !note(top.ino(), root.clone()) {
            let dir = std::fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC)
                .open(&self.dir);
            if let Ok(dir) = dir {
                walk_below(&OwnedFd::from(dir), &root, 0, &mut Vec::new(), &mut note);
            }
        }
        CgroupTree { paths }
    }
}

/// The deepest a walk goes: far below any real hierarchy, and a bound on
/// the fds it holds (one per level).
const MAX_DEPTH: usize = 64;

/// The buffer for one directory's entries: a cgroup has a few dozen.
const DIRENT_BUFFER: usize = 8192;

/// The longest entry getdents64 writes: its 19-byte header, a name of
/// 255 bytes and its NUL, rounded up to 8.
const MAX_DIRENT: usize = 280;

/// Calls `note` for every cgroup below `dir` (at `path`), depth first;
/// each directory is opened relative to its parent, so no path is looked
/// up twice. Returns true once `note` says to stop.
///
/// The entries are read with getdents64 itself, which gives each one's
/// type and inode (a cgroup's id): no stat and no libc directory stream.
/// cgroupfs (kernfs) fills the buffer until it runs out of entries or of
/// room, so an answer that left room for another entry was the last, and
/// most directories take one call rather than two.
fn walk_below(
    dir: &OwnedFd,
    path: &str,
    depth: usize,
    buffers: &mut Vec<Vec<u8>>,
    note: &mut impl FnMut(u64, String) -> bool,
) -> bool {
    let mut buffer = buffers.pop().unwrap_or_else(|| vec![0u8; DIRENT_BUFFER]);
    let stop = loop {
        // SAFETY: the buffer is valid for its length; the fd is open.
        let read = unsafe {
            libc::syscall(
                libc::SYS_getdents64,
                dir.as_raw_fd(),
                buffer.as_mut_ptr(),
                buffer.len(),
            )
        };
        let Ok(read) = usize::try_from(read) else {
            break false;
        };
        if read == 0 {
            break false;
        }
        let mut subdirs: Vec<(u64, CString)> = Vec::new();
        let mut at = 0;
        while let Some(entry) = buffer.get(at..read).and_then(Dirent::parse) {
            at += entry.length;
            if entry.kind == libc::DT_DIR && !matches!(entry.name.to_bytes(), b"." | b"..") {
                subdirs.push((entry.inode, entry.name.to_owned()));
            }
            if entry.length == 0 {
                break;
            }
        }
        for (inode, name) in subdirs {
            let child = join(path, &name.to_string_lossy());
            if note(inode, child.clone()) {
                buffers.push(buffer);
                return true;
            }
            if depth + 1 >= MAX_DEPTH {
                continue;
            }
            if let Some(below) = open_dir_at(dir, &name) {
                if walk_below(&below, &child, depth + 1, buffers, note) {
                    buffers.push(buffer);
                    return true;
                }
            }
        }
        if read + MAX_DIRENT <= buffer.len() {
            break false;
        }
    };
    buffers.push(buffer);
    stop
}

/// One linux_dirent64: inode (u64), offset (i64), length (u16), type
/// (u8), then the name and a NUL.
struct Dirent<'a> {
    inode: u64,
    length: usize,
    kind: u8,
    name: &'a CStr,
}

impl Dirent<'_> {
    fn parse(bytes: &[u8]) -> Option<Dirent<'_>> {
        let inode = u64::from_ne_bytes(bytes.get(0..8)?.try_into().ok()?);
        let length = usize::from(u16::from_ne_bytes(bytes.get(16..18)?.try_into().ok()?));
        let kind = *bytes.get(18)?;
        let name = CStr::from_bytes_until_nul(bytes.get(19..length)?).ok()?;
        Some(Dirent {
            inode,
            length,
            kind,
            name,
        })
    }
}

/// Opens the directory `name` below `parent`.
fn open_dir_at(parent: &OwnedFd, name: &CStr) -> Option<OwnedFd> {
    let flags = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC | libc::O_NOFOLLOW;
    // SAFETY: `name` is NUL-terminated; the fd returned is ours to own.
    let fd = unsafe { libc::openat(parent.as_raw_fd(), name.as_ptr(), flags) };
    // SAFETY: a new fd that nothing else owns.
    (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd) })
}

/// The cgroup2 mount to use among those of a mount table: one that shows
/// the whole hierarchy if there is one, and of those the one nearest the
/// root of the file tree (`/sys/fs/cgroup` before a copy bind-mounted
/// elsewhere).
pub fn find(mounts: &[Mount]) -> Option<Hierarchy> {
    mounts
        .iter()
        .filter(|m| m.fs_type == "cgroup2")
        .min_by_key(|m| (m.root != "/", m.mount_point.components().count()))
        .map(|m| Hierarchy {
            dir: m.mount_point.clone(),
            root: m.root.clone(),
        })
}

/// Cgroup paths by id, from one walk.
#[derive(Debug, Default)]
pub struct CgroupTree {
    paths: HashMap<u64, String>,
}

impl CgroupTree {
    /// The path of the cgroup with this id (`/system.slice/nginx.service`);
    /// None when the walk did not meet it (removed since, or outside the
    /// part of the hierarchy mounted here).
    pub fn path(&self, id: u64) -> Option<&str> {
        self.paths.get(&id).map(String::as_str)
    }

    /// The ids of the cgroups whose path passes `keep`, sorted.
    pub fn ids_where(&self, keep: impl Fn(&str) -> bool) -> Vec<u64> {
        let mut ids: Vec<u64> = self
            .paths
            .iter()
            .filter(|(_, path)| keep(path))
            .map(|(id, _)| *id)
            .collect();
        ids.sort_unstable();
        ids
    }

    /// How many cgroups the walk found.
    pub fn len(&self) -> usize {
        self.paths.len()
    }

    /// Whether the walk found none.
    pub fn is_empty(&self) -> bool {
        self.paths.is_empty()
    }
}

/// The cgroup a socket was created in, named.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SocketCgroup {
    /// The cgroup v2 id the kernel gave.
    pub id: u64,
    /// Its path in the hierarchy; None when it is not in the hierarchy
    /// mounted here (removed since, or outside this cgroup namespace).
    pub path: Option<String>,
    /// The innermost systemd unit of the path (`nginx.service`).
    pub unit: Option<String>,
    /// The container the path names (Docker, containerd, CRI-O, Podman,
    /// LXC, a Kubernetes pod's); a plain systemd unit is no container.
    pub container: Option<Container>,
    /// For a socket unit's cgroup (`ssh.socket`): the service it starts,
    /// where its unit file could be read.
    pub activates: Option<String>,
}

impl SocketCgroup {
    /// Names the cgroup `id` found at `path`.
    pub fn new(id: u64, path: Option<&str>) -> SocketCgroup {
        SocketCgroup {
            id,
            path: path.map(str::to_string),
            unit: path.and_then(unit_of).map(str::to_string),
            container: path.and_then(container_of),
            activates: None,
        }
    }

    /// The socket unit whose listener this is (`ssh.socket`), when the
    /// cgroup is a socket unit's.
    pub fn socket_unit(&self) -> Option<&str> {
        self.unit
            .as_deref()
            .filter(|u| crate::holders::socket_units::is_socket_unit(u))
    }
}

/// The cgroup v2 path of a process: the `0::PATH` line of
/// /proc/PID/cgroup, as lsport's cgroup namespace sees it. None when the
/// process is gone or its file has no such line.
pub fn of_process(root: &ProcRoot, pid: u32) -> Option<String> {
    // The file has a line per v1 hierarchy and one for v2: a few hundred
    // bytes.
    const LIMIT: usize = 64 << 10;
    let text = crate::files::read_at_most(&root.path(&format!("{pid}/cgroup")), LIMIT).ok()?;
    // Lossy, as the walk names the hierarchy's directories.
    unified_path(&text).map(|path| String::from_utf8_lossy(path).into_owned())
}

/// The path of the cgroup v2 line (`0::PATH`) of a /proc/PID/cgroup text.
fn unified_path(text: &[u8]) -> Option<&[u8]> {
    text.split(|b| *b == b'\n')
        .find_map(|line| line.strip_prefix(b"0::"))
        .filter(|path| path.starts_with(b"/"))
}

/// The container a cgroup path names, other than a systemd unit.
pub fn container_of(path: &str) -> Option<Container> {
    container::from_path(path).filter(|c| c.runtime != "systemd")
}

/// The innermost systemd unit of a cgroup path:
/// `/system.slice/nginx.service` → `nginx.service`.
pub fn unit_of(path: &str) -> Option<&str> {
    path.split('/').rev().find(|c| is_unit_name(c))
}

/// Whether a cgroup path lies in the unit `name` (that unit's cgroup or
/// one below it, as systemd counts a unit's processes). A name without a
/// unit suffix means a service, as systemctl reads it.
pub fn in_unit(path: &str, name: &str) -> bool {
    let service;
    let name = if is_unit_name(name) {
        name
    } else {
        service = format!("{name}.service");
        &service
    };
    path.split('/').any(|c| c == name)
}

/// Whether a cgroup path is `cgroup` or lies below it.
pub fn in_cgroup(path: &str, cgroup: &str) -> bool {
    cgroup == "/"
        || path
            .strip_prefix(cgroup)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// Whether a container named by a cgroup path is `wanted`: its id
/// starts with it (as `docker ps` abbreviates ids), or its name is it.
pub fn is_container(container: &Container, wanted: &str) -> bool {
    !wanted.is_empty()
        && (container.id.starts_with(wanted) || container.name.as_deref() == Some(wanted))
}

fn is_unit_name(component: &str) -> bool {
    UNIT_SUFFIXES
        .iter()
        .any(|s| component.len() > s.len() && component.ends_with(s))
}

fn join(parent: &str, name: &str) -> String {
    if parent.ends_with('/') {
        format!("{parent}{name}")
    } else {
        format!("{parent}/{name}")
    }
}

/// One leading slash, none at the end (but `/` itself), no empty parts.
fn normalize(path: &str) -> String {
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    format!("/{}", parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mount(root: &str, point: &str, fs_type: &str) -> Mount {
        Mount {
            root: root.to_string(),
            mount_point: PathBuf::from(point),
            fs_type: fs_type.to_string(),
            super_options: "rw".to_string(),
        }
    }

    #[test]
    fn the_v2_mount_is_found_on_hybrid_and_pure_hosts() {
        let hybrid = [
            mount("/", "/sys/fs/cgroup", "tmpfs"),
            mount("/", "/sys/fs/cgroup/systemd", "cgroup"),
            mount("/", "/sys/fs/cgroup/unified", "cgroup2"),
        ];
        assert_eq!(
            find(&hybrid).unwrap().dir,
            PathBuf::from("/sys/fs/cgroup/unified")
        );
        let pure = [
            mount("/docker/abc", "/var/lib/x/cgroup", "cgroup2"),
            mount("/", "/sys/fs/cgroup", "cgroup2"),
        ];
        assert_eq!(
            find(&pure),
            Some(Hierarchy {
                dir: PathBuf::from("/sys/fs/cgroup"),
                root: "/".to_string()
            })
        );
        assert_eq!(find(&hybrid[..2]), None, "cgroup v1 only");
    }

    #[test]
    fn cgroups_given_as_directories_become_paths() {
        let h = Hierarchy {
            dir: PathBuf::from("/sys/fs/cgroup/unified"),
            root: "/".to_string(),
        };
        assert_eq!(
            h.cgroup_path("/sys/fs/cgroup/unified/system.slice/a.service/"),
            "/system.slice/a.service"
        );
        assert_eq!(
            h.cgroup_path("system.slice//a.service"),
            "/system.slice/a.service"
        );
        assert_eq!(h.cgroup_path("/sys/fs/cgroup/unified"), "/");
        let sub = Hierarchy {
            dir: PathBuf::from("/mnt/cg"),
            root: "/lxc.payload.web".to_string(),
        };
        assert_eq!(
            sub.cgroup_path("/mnt/cg/init.scope"),
            "/lxc.payload.web/init.scope"
        );
    }

    #[test]
    fn units_are_the_innermost_unit_of_the_path() {
        assert_eq!(
            unit_of("/system.slice/nginx.service"),
            Some("nginx.service")
        );
        assert_eq!(
            unit_of("/user.slice/user-1000.slice/user@1000.service/app.slice/app-x.scope"),
            Some("app-x.scope")
        );
        assert_eq!(unit_of("/lsport-test.slice"), Some("lsport-test.slice"));
        assert_eq!(unit_of("/"), None);
        assert_eq!(unit_of("/kubepods/burstable/podx/abc"), None);
        assert_eq!(unit_of("/.service"), None);
    }

    #[test]
    fn a_unit_holds_its_own_cgroup_and_those_below() {
        let path = "/system.slice/nginx.service/worker";
        assert!(in_unit(path, "nginx.service"));
        assert!(in_unit(path, "nginx"));
        assert!(in_unit(path, "system.slice"));
        assert!(!in_unit(path, "nginx.scope"));
        assert!(!in_unit(path, "ngin"));
        assert!(!in_unit("/system.slice/nginx-extra.service", "nginx"));
        assert!(in_cgroup(path, "/system.slice/nginx.service"));
        assert!(in_cgroup(path, path));
        assert!(in_cgroup(path, "/"));
        assert!(!in_cgroup(
            "/system.slice/nginx.services",
            "/system.slice/nginx.service"
        ));
    }

    #[test]
    fn a_socket_cgroup_names_its_unit_and_container() {
        let id = "d0b3604b67ac7930dd34ba3a796627e3e4717d12309e90a4afe3f38b6816ac98";
        let named = SocketCgroup::new(7, Some(&format!("/system.slice/docker-{id}.scope")));
        assert_eq!(named.unit.as_deref(), Some(&*format!("docker-{id}.scope")));
        let container = named.container.unwrap();
        assert_eq!(container.runtime, "docker");
        assert!(is_container(&container, "d0b3604b"));
        assert!(!is_container(&container, "e0b3"));
        assert!(!is_container(&container, ""));
        let service = SocketCgroup::new(8, Some("/system.slice/nginx.service"));
        assert_eq!(service.container, None, "a unit is no container");
        let unknown = SocketCgroup::new(9, None);
        assert_eq!((unknown.path, unknown.unit), (None, None));
    }

    #[test]
    fn a_process_cgroup_is_its_unified_line() {
        let hybrid = b"12:pids:/system.slice/a.service\n1:name=systemd:/system.slice/a.service\n0::/system.slice/a.service\n";
        assert_eq!(unified_path(hybrid), Some(&b"/system.slice/a.service"[..]));
        assert_eq!(unified_path(b"0::/\n"), Some(&b"/"[..]));
        // v1 only: no unified line.
        assert_eq!(unified_path(b"3:cpu:/x\n"), None);
        assert_eq!(unified_path(b""), None);
    }

    #[test]
    fn the_walk_maps_directory_inodes_to_paths() {
        // Any directory tree walks the same way as cgroupfs.
        let base = std::env::temp_dir().join(format!("lsport-cgroups-walk-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        std::fs::create_dir_all(base.join("a.slice/b.service")).unwrap();
        std::fs::create_dir_all(base.join("c.scope")).unwrap();
        std::fs::write(base.join("a.slice/cgroup.procs"), "").unwrap();
        let ino = |p: &str| std::fs::metadata(base.join(p)).unwrap().ino();
        let h = Hierarchy {
            dir: base.clone(),
            root: "/".to_string(),
        };
        let tree = h.walk(None);
        assert_eq!(tree.len(), 4, "the root and three directories, no file");
        assert_eq!(
            tree.path(ino("a.slice/b.service")),
            Some("/a.slice/b.service")
        );
        assert_eq!(tree.path(ino("")), Some("/"));
        assert_eq!(tree.ids_where(|p| p.starts_with("/a.slice")).len(), 2);
        let wanted: HashSet<u64> = [ino("c.scope")].into();
        assert!(h.walk(Some(&wanted)).path(ino("c.scope")).is_some());
        std::fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn a_cgroup_lists_its_processes_from_where_the_mount_shows_it() {
        let base =
            std::env::temp_dir().join(format!("lsport-cgroups-procs-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        std::fs::create_dir_all(base.join("b.service")).unwrap();
        std::fs::write(base.join("b.service/cgroup.procs"), "300\n12\n").unwrap();
        std::fs::write(base.join("cgroup.procs"), "1\n").unwrap();
        // The mount shows /a.slice: its paths start there.
        let h = Hierarchy {
            dir: base.clone(),
            root: "/a.slice".to_string(),
        };
        assert_eq!(h.processes("/a.slice/b.service"), [300, 12]);
        assert_eq!(h.processes("/a.slice"), [1]);
        assert_eq!(h.processes("/a.slice/gone.service"), [] as [u32; 0]);
        std::fs::remove_dir_all(&base).unwrap();
    }
}
