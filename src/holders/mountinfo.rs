//! The mount table of lsport's mount namespace (`/proc/self/mountinfo`,
//! through the [`ProcRoot`]): where the cgroup v2 hierarchy is mounted,
//! and with which options `/proc` is. A pure parser plus one read.

use std::path::PathBuf;

use crate::sys::ProcRoot;

/// One line of mountinfo, the fields lsport reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// The directory of the filesystem that is mounted (`/` for its
    /// root; a subdirectory for a bind mount or a cgroup namespace).
    pub root: String,
    /// Where it is mounted.
    pub mount_point: PathBuf,
    /// The filesystem type: `proc`, `cgroup2`...
    pub fs_type: String,
    /// The filesystem's own options (`rw,hidepid=invisible`).
    pub super_options: String,
}

impl Mount {
    /// The value of a filesystem option (`hidepid` in `hidepid=2`);
    /// Some("") for a bare flag; None when absent.
    pub fn option(&self, name: &str) -> Option<&str> {
        self.super_options
            .split(',')
            .find_map(|o| match o.split_once('=') {
                Some((key, value)) if key == name => Some(value),
                None if o == name => Some(""),
                _ => None,
            })
    }
}

/// Reads the calling process's mount table; None when it cannot be read
/// (a fixture tree without one, a /proc that hides it).
pub fn read(root: &ProcRoot) -> Option<Vec<Mount>> {
    let bytes =
        crate::files::read_bounded(&root.path("self/mountinfo"), crate::files::TABLE_FILE_LIMIT)
            .ok()?;
    Some(parse(&String::from_utf8_lossy(&bytes)))
}

/// Every line that has the fields of mountinfo(5); others are skipped.
/// `ID PARENT MAJ:MIN ROOT MOUNT_POINT OPTIONS [OPTIONAL...] - TYPE SOURCE SUPER_OPTIONS`
pub fn parse(text: &str) -> Vec<Mount> {
    text.lines().filter_map(parse_line).collect()
}

fn parse_line(line: &str) -> Option<Mount> {
    let (before, after) = line.split_once(" - ")?;
    let mut fields = before.split(' ');
    let root = fields.nth(3)?;
    let mount_point = fields.next()?;
    let mut after = after.split(' ');
    let fs_type = after.next()?;
    let _source = after.next()?;
    let super_options = after.next().unwrap_or("");
    Some(Mount {
        root: unescape(root),
        mount_point: PathBuf::from(unescape(mount_point)),
        fs_type: unescape(fs_type),
        super_options: unescape(super_options),
    })
}

/// The kernel writes a space, tab, newline and backslash in a path as
/// `\040`, `\011`, `\012` and `\134`.
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .filter(|d| bytes[i] == b'\\' && d.iter().all(|b| (b'0'..=b'7').contains(b)))
            .map(|d| d.iter().fold(0u32, |v, b| v * 8 + u32::from(b - b'0')));
        match octal.and_then(|v| u8::try_from(v).ok()) {
            Some(byte) => {
                out.push(byte);
                i += 4;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    // Lines as this machine's kernel writes them (a hybrid host, then a
    // /proc remounted with hidepid inside a private mount namespace).
    const HYBRID: &str = "\
22 27 0:21 / /proc rw,relatime - proc proc rw
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
65 46 0:39 / /proc rw,nosuid,nodev,noexec,relatime - proc proc rw,hidepid=invisible
90 41 0:40 / /mnt/with\\040space rw shared:7 - ext4 /dev/sda1 rw
not a mount line
";

    #[test]
    fn reads_the_fields_lsport_needs() {
        let mounts = parse(HYBRID);
        assert_eq!(mounts.len(), 6);
        assert_eq!(mounts[3].fs_type, "cgroup2");
        assert_eq!(
            mounts[3].mount_point,
            PathBuf::from("/sys/fs/cgroup/unified")
        );
        assert_eq!(mounts[3].root, "/");
        assert_eq!(mounts[4].option("hidepid"), Some("invisible"));
        assert_eq!(mounts[4].option("rw"), Some(""));
        assert_eq!(mounts[4].option("subset"), None);
        // Optional fields (shared:7) before the separator are passed over.
        assert_eq!(mounts[5].mount_point, PathBuf::from("/mnt/with space"));
        assert_eq!(mounts[5].fs_type, "ext4");
    }

    #[test]
    fn escapes_are_undone_and_odd_ones_kept() {
        assert_eq!(unescape("a\\040b\\011c\\134d"), "a b\tc\\d");
        assert_eq!(unescape("a\\04"), "a\\04");
        assert_eq!(unescape("a\\999"), "a\\999");
        assert_eq!(unescape("\\777"), "\\777");
    }
}
