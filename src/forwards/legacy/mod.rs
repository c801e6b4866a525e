//! The legacy x_tables (`iptables-legacy`, `ip6tables-legacy`), where
//! the kernel has them: `/proc/net/ip_tables_names` (and
//! `ip6_tables_names`) lists the tables that exist in the namespace, and
//! a raw socket's getsockopt (IPT_SO_GET_INFO, IPT_SO_GET_ENTRIES) gives
//! a table's rules, to root only.
//!
//! Only tables the names file lists are asked for: asking for a table
//! that does not exist yet makes the kernel create it, with its hooks,
//! in the namespace probed. A probe never does that.

pub mod entries;

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use super::conditions::PortSet;
use super::model::Unreadable;
use super::walk::Table;
use crate::socket::Family;
use crate::sys::ProcRoot;
use entries::{INFO_LEN, TableInfo};

/// What was read of the legacy tables.
#[derive(Debug, Default)]
pub struct LegacyRead {
    /// The nat tables read, ready to walk.
    pub tables: Vec<Table>,
    /// The (family, table) pairs read.
    pub read: Vec<(Family, String)>,
    /// What could not be read.
    pub unreadable: Vec<Unreadable>,
    /// Whether the kernel has the legacy tables at all.
    pub present: bool,
}

/// The getsockopt options, the same number for IPv4 and IPv6.
const SO_GET_INFO: libc::c_int = 64;
const SO_GET_ENTRIES: libc::c_int = 65;
/// offsetof(struct ipt_get_entries, entrytable).
const GET_ENTRIES_HEADER: usize = 40;
/// The kernel says EAGAIN when the table changed between the two calls.
const ATTEMPTS: usize = 5;

/// Reads the legacy nat tables of the calling thread's network
/// namespace, keeping the rules that may take a port of `asked`.
pub fn read(proc: &ProcRoot, asked: &PortSet) -> LegacyRead {
    let mut out = LegacyRead::default();
    for (family, names) in [
        (Family::Inet, "net/ip_tables_names"),
        (Family::Inet6, "net/ip6_tables_names"),
    ] {
        let path = proc.thread_path(names);
        let text = match crate::files::read_bounded(&path, crate::files::SYSCTL_LIMIT) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => {
                out.present = true;
                out.unreadable.push(Unreadable::LegacyTableNames {
                    family,
                    errno: e.raw_os_error().unwrap_or(libc::EIO),
                });
                continue;
            }
        };
        out.present = true;
        // Only nat tables hold DNAT and REDIRECT rules.
        if !text.split(|&b| b == b'\n').any(|line| line == b"nat") {
            continue;
        }
        match read_table(family, "nat") {
            Ok((info, blob)) => match entries::table_of(family, "nat", &info, &blob, asked) {
                Ok(table) => {
                    out.tables.push(table);
                    out.read.push((family, "nat".into()));
                }
                Err(_) => out.unreadable.push(Unreadable::LegacyTable {
                    family,
                    table: "nat".into(),
                    errno: libc::EBADMSG,
                }),
            },
            Err(errno) => out.unreadable.push(Unreadable::LegacyTable {
                family,
                table: "nat".into(),
                errno,
            }),
        }
    }
    out
}

/// A table's info and its blob of entries, or the errno that refused
/// them.
fn read_table(family: Family, name: &str) -> Result<(TableInfo, Vec<u8>), i32> {
    let (domain, level) = match family {
        Family::Inet => (libc::AF_INET, libc::SOL_IP),
        Family::Inet6 => (libc::AF_INET6, libc::SOL_IPV6),
    };
    // SAFETY: a plain system call; the descriptor is owned at once.
    let raw = unsafe {
        libc::socket(
            domain,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            libc::IPPROTO_RAW,
        )
    };
    if raw < 0 {
        return Err(last_errno());
    }
    // SAFETY: `raw` is a new descriptor nothing else owns.
    let socket = unsafe { OwnedFd::from_raw_fd(raw) };
    let mut name_field = [0u8; 32];
    let bytes = name.as_bytes();
    name_field[..bytes.len().min(31)].copy_from_slice(&bytes[..bytes.len().min(31)]);
    for _ in 0..ATTEMPTS {
        let mut info = [0u8; INFO_LEN];
        info[..32].copy_from_slice(&name_field);
        get(&socket, level, SO_GET_INFO, &mut info)?;
        let info = TableInfo::decode(&info).ok_or(libc::EBADMSG)?;
        // struct ipt_get_entries { char name[32]; u32 size; entries }.
        let mut buffer = vec![0u8; GET_ENTRIES_HEADER + info.size as usize];
        buffer[..32].copy_from_slice(&name_field);
        buffer[32..36].copy_from_slice(&info.size.to_ne_bytes());
        match get(&socket, level, SO_GET_ENTRIES, &mut buffer) {
            Ok(()) => return Ok((info, buffer.split_off(GET_ENTRIES_HEADER))),
            Err(libc::EAGAIN) => continue,
            Err(errno) => return Err(errno),
        }
    }
    Err(libc::EAGAIN)
}

fn get(
    socket: &OwnedFd,
    level: libc::c_int,
    option: libc::c_int,
    buffer: &mut [u8],
) -> Result<(), i32> {
    let mut len = buffer.len() as libc::socklen_t;
    // SAFETY: the kernel writes at most `len` bytes into `buffer`.
    let rc = unsafe {
        libc::getsockopt(
            socket.as_raw_fd(),
            level,
            option,
            buffer.as_mut_ptr().cast(),
            &mut len,
        )
    };
    if rc < 0 { Err(last_errno()) } else { Ok(()) }
}

fn last_errno() -> i32 {
    io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EIO)
}
