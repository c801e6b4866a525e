//! A `/proc` that hides processes: mounted `hidepid=1|2` (`noaccess`,
//! `invisible`, `ptraceable`) other users' processes cannot be read or
//! are not even listed, and `subset=pid` leaves out everything but the
//! processes (`/proc/sys` with it). Under hidepid the fd scan cannot tell
//! a socket nobody holds from one whose holder it was not shown, so every
//! socket without a visible holder counts as hidden, never as free.

use std::path::Path;

use crate::holders::mountinfo::{self, Mount};
use crate::sys::ProcRoot;

/// CAP_SYS_PTRACE: its holder sees every process whatever hidepid says.
const CAP_SYS_PTRACE: u32 = 19;

/// How the `/proc` lsport reads is restricted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcRestriction {
    /// The hidepid value as the mount table gives it (`invisible`, `2`),
    /// when it hides other users' processes from lsport.
    pub hidepid: Option<String>,
    /// Mounted `subset=pid`: nothing but the processes.
    pub subset_pid: bool,
}

impl ProcRestriction {
    /// Whether other users' processes are hidden from lsport.
    pub fn hides_processes(&self) -> bool {
        self.hidepid.is_some()
    }

    /// What it means for the holders shown, in one line; None when
    /// nothing is hidden. (What `subset=pid` means for the port settings
    /// the port facts say themselves: read another way, or assumed.)
    pub fn describe(&self) -> Option<String> {
        self.hidepid.as_ref().map(|value| format!(
            "/proc is mounted hidepid={value}: other users' processes cannot be seen, so their sockets are shown with hidden holders, and with the owner and cgroup the kernel records"
        ))
    }
}

/// The restriction of the `/proc` at `root`, as far as it applies to this
/// process: hidepid does not hide processes from a holder of
/// CAP_SYS_PTRACE, nor from members of the group its `gid=` names. None
/// when nothing is restricted or the mount table cannot be read.
pub fn detect(root: &ProcRoot) -> Option<ProcRestriction> {
    let mounts = mountinfo::read(root)?;
    let mount = proc_mount(&mounts, root.base())?;
    let hidepid = hidepid_of(mount).filter(|_| !exempt(root, mount));
    let restriction = ProcRestriction {
        hidepid,
        subset_pid: mount.option("subset") == Some("pid"),
    };
    (restriction.hidepid.is_some() || restriction.subset_pid).then_some(restriction)
}

/// The mount on `dir` that is seen there: the last one mounted on it.
pub fn proc_mount<'a>(mounts: &'a [Mount], dir: &Path) -> Option<&'a Mount> {
    mounts
        .iter()
        .rev()
        .find(|m| m.fs_type == "proc" && m.mount_point == dir)
}

/// The hidepid value of a proc mount, if it hides anything (`0` and
/// `off` hide nothing; kernels before 5.8 write numbers, later ones names).
pub fn hidepid_of(mount: &Mount) -> Option<String> {
    mount
        .option("hidepid")
        .filter(|v| !matches!(*v, "" | "0" | "off"))
        .map(str::to_string)
}

/// Whether hidepid lets this process see every process anyway.
fn exempt(root: &ProcRoot, mount: &Mount) -> bool {
    if has_ptrace(root) {
        return true;
    }
    let Some(gid) = mount.option("gid").and_then(|g| g.parse::<u32>().ok()) else {
        return false;
    };
    nix::unistd::getegid().as_raw() == gid
        || nix::unistd::getgroups().is_ok_and(|groups| groups.iter().any(|g| g.as_raw() == gid))
}

/// Whether lsport holds CAP_SYS_PTRACE, which lets it read every
/// process's fds whatever its owner and capabilities.
pub fn has_ptrace(root: &ProcRoot) -> bool {
    let status = root.read_to_string("self/status").unwrap_or_default();
    has_capability(&status, CAP_SYS_PTRACE)
}

/// Whether the `CapEff:` mask of a /proc/PID/status holds capability `bit`.
fn has_capability(status: &str, bit: u32) -> bool {
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|mask| u64::from_str_radix(mask.trim(), 16).ok())
        .is_some_and(|mask| mask & (1 << bit) != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_proc_mount_on_the_directory_is_the_one_seen() {
        let mounts = mountinfo::parse(
            "22 27 0:21 / /proc rw - proc proc rw\n\
             65 46 0:39 / /proc rw,nosuid - proc proc rw,hidepid=invisible,gid=4\n\
             66 46 0:40 / /mnt/proc rw - proc proc rw,subset=pid\n",
        );
        let seen = proc_mount(&mounts, Path::new("/proc")).unwrap();
        assert_eq!(hidepid_of(seen).as_deref(), Some("invisible"));
        assert_eq!(seen.option("gid"), Some("4"));
        let other = proc_mount(&mounts, Path::new("/mnt/proc")).unwrap();
        assert_eq!(hidepid_of(other), None);
        assert_eq!(other.option("subset"), Some("pid"));
        assert!(proc_mount(&mounts, Path::new("/tmp/fixture")).is_none());
    }

    #[test]
    fn hidepid_zero_or_off_hides_nothing() {
        for (options, hidden) in [
            ("rw,hidepid=0", None),
            ("rw,hidepid=off", None),
            ("rw,hidepid=2", Some("2")),
            ("rw,hidepid=noaccess", Some("noaccess")),
            ("rw", None),
        ] {
            let mounts = mountinfo::parse(&format!("1 1 0:1 / /proc rw - proc proc {options}\n"));
            assert_eq!(hidepid_of(&mounts[0]).as_deref(), hidden, "{options}");
        }
    }

    #[test]
    fn reads_cap_sys_ptrace_from_the_effective_set() {
        let root = "CapInh:\t0000000000000000\nCapEff:\t000001ffffffffff\n";
        assert!(has_capability(root, CAP_SYS_PTRACE));
        let nobody = "CapEff:\t0000000000000000\n";
        assert!(!has_capability(nobody, CAP_SYS_PTRACE));
        assert!(!has_capability("", CAP_SYS_PTRACE));
    }

    #[test]
    fn the_line_says_what_each_restriction_means() {
        let both = ProcRestriction {
            hidepid: Some("invisible".to_string()),
            subset_pid: true,
        };
        let line = both.describe().unwrap();
        assert!(line.contains("hidepid=invisible"));
        assert!(!line.contains('\n'));
        let subset_only = ProcRestriction {
            hidepid: None,
            subset_pid: true,
        };
        assert_eq!(subset_only.describe(), None);
    }
}
