//! The table's columns, one registry entry each: the name `-o` takes,
//! the header, where the same value sits in the JSON document, the help
//! text, and how a cell is made. The table, `-o help`, `--help` and the
//! man page all read this list, so a column is added in one place.

use crate::closest::closest;
use crate::error::Error;
use crate::holders::cgroups::SocketCgroup;
use crate::netns::NetnsLabel;
use crate::render::escape::{escape_bytes, escape_into, escape_str};
use crate::report::{Holder, Row};
use crate::socket::{Endpoint, Family, Protocol, Socket, State};
use std::borrow::Cow;
use std::net::IpAddr;

/// A column of the socket table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnId {
    /// tcp, udp, tcp6, udp6, tcp46 or udp46.
    Proto,
    /// The kernel's state name.
    State,
    /// What the socket does with its port.
    Role,
    /// Local address and port.
    Local,
    /// The service registered on the local port.
    Service,
    /// Remote address and port.
    Remote,
    /// The holder's pid.
    Pid,
    /// The holder's user.
    User,
    /// The holder's fd.
    Fd,
    /// The holder's command name.
    Command,
    /// The holder's command line.
    Args,
    /// The uid the kernel records as the socket's owner.
    Uid,
    /// The socket's inode.
    Inode,
    /// The network namespace's inode.
    Netns,
    /// The container the holder runs in.
    Container,
    /// The cgroup the socket was created in.
    Cgroup,
    /// The systemd unit the socket was created in.
    Unit,
}

/// What one cell is made from: a socket row, one of its holders (none
/// for a socket without a visible holder), and its namespace.
pub struct CellSource<'a> {
    /// The socket.
    pub row: &'a Row,
    /// The holder this line is for, if the socket has any.
    pub holder: Option<&'a Holder>,
    /// The namespace the socket lives in.
    pub netns: &'a NetnsLabel,
    /// Mark risky listeners with `!` in the ROLE column.
    pub mark_risky: bool,
}

/// One entry of the registry.
pub struct Column {
    /// Which column this is.
    pub id: ColumnId,
    /// The name `-o` takes (lower case).
    pub name: &'static str,
    /// The table's header.
    pub header: &'static str,
    /// Where the same value is found in a socket of `--json`.
    pub json_key: &'static str,
    /// One line for `-o help`, `--help` and the man page.
    pub help: &'static str,
    /// Writes the cell's text, escaped for a terminal, at the end of
    /// the buffer it is given (a table of 200,000 lines makes no string
    /// per cell).
    pub cell: fn(&CellSource<'_>, &mut String),
}

/// Every column, in the order `-o help` lists them.
pub static COLUMNS: [Column; 17] = [
    Column {
        id: ColumnId::Proto,
        name: "proto",
        header: "PROTO",
        json_key: "protocol, family, v6only",
        help: "tcp or udp; 6 for IPv6, 46 for an IPv6 wildcard socket that also takes IPv4",
        cell: |c, out| push_protocol_label(out, &c.row.socket),
    },
    Column {
        id: ColumnId::State,
        name: "state",
        header: "STATE",
        json_key: "state",
        help: "the kernel's state (UNCONN for an unconnected UDP socket)",
        cell: |c, out| out.push_str(&state_label(c.row)),
    },
    Column {
        id: ColumnId::Role,
        name: "role",
        header: "ROLE",
        json_key: "role, risky",
        help: "listener, bound-only, accepted, outgoing, time-wait or orphaned; ! marks a port an outgoing connection may take",
        cell: |c, out| {
            out.push_str(c.row.role.name());
            if c.mark_risky && c.row.risky {
                out.push('!');
            }
        },
    },
    Column {
        id: ColumnId::Local,
        name: "local",
        header: "LOCAL",
        json_key: "local",
        help: "local address and port",
        cell: |c, out| push_endpoint(out, &c.row.socket.local),
    },
    Column {
        id: ColumnId::Service,
        name: "service",
        header: "SERVICE",
        json_key: "service",
        help: "the service registered on the local port for this protocol",
        cell: |c, out| match c.row.service.as_deref() {
            Some(s) => escape_into(out, s),
            None => out.push('-'),
        },
    },
    Column {
        id: ColumnId::Remote,
        name: "remote",
        header: "REMOTE",
        json_key: "remote",
        help: "remote address and port (*:* when not connected)",
        cell: |c, out| push_endpoint(out, &c.row.socket.remote),
    },
    Column {
        id: ColumnId::Pid,
        name: "pid",
        header: "PID",
        json_key: "holders[].pid, holders[].pid_in_namespace",
        help: "the holding process; HOST/INNER for a process in another pid namespace",
        cell: |c, out| match c.holder {
            Some(h) => {
                push_number(out, h.pid.into());
                if let Some(inner) = h.pid_in_namespace() {
                    out.push('/');
                    push_number(out, inner.into());
                }
            }
            None => out.push('-'),
        },
    },
    Column {
        id: ColumnId::User,
        name: "user",
        header: "USER",
        json_key: "holders[].user, holders[].uid",
        help: "the holder's user (the socket's owner when the holder is hidden)",
        cell: |c, out| match c.holder {
            Some(h) => match (h.user(), h.uid()) {
                (Some(name), _) => escape_into(out, name),
                (None, Some(uid)) => push_number(out, uid.into()),
                (None, None) => out.push('?'),
            },
            None if c.row.holders_hidden => match c.row.owner.as_deref() {
                Some(name) => out.push_str(&escape_str(name)),
                None => push_number(out, c.row.socket.uid.into()),
            },
            None => out.push('-'),
        },
    },
    Column {
        id: ColumnId::Fd,
        name: "fd",
        header: "FD",
        json_key: "holders[].fd",
        help: "the holder's file descriptor for the socket",
        cell: |c, out| match c.holder {
            Some(h) => push_number(out, h.fd.into()),
            None => out.push('-'),
        },
    },
    Column {
        id: ColumnId::Command,
        name: "command",
        header: "COMMAND",
        json_key: "holders[].command",
        help: "the holder's command name; (hidden) when this user may not see it, with the socket's owner and where it was created",
        cell: |c, out| match c.holder {
            Some(h) => out.push_str(&escape_bytes(h.command())),
            None if c.row.holders_hidden => out.push_str(&hidden_holder(c.row)),
            None => out.push('-'),
        },
    },
    Column {
        id: ColumnId::Args,
        name: "args",
        header: "ARGS",
        json_key: "holders[].cmdline",
        help: "the holder's command line",
        cell: |c, out| {
            for (i, arg) in c.holder.iter().flat_map(|h| h.cmdline()).enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                out.push_str(&escape_bytes(arg));
            }
        },
    },
    Column {
        id: ColumnId::Uid,
        name: "uid",
        header: "UID",
        json_key: "uid",
        help: "the uid the kernel records as the socket's owner",
        cell: |c, out| push_number(out, c.row.socket.uid.into()),
    },
    Column {
        id: ColumnId::Inode,
        name: "inode",
        header: "INODE",
        json_key: "inode",
        help: "the socket's inode (0 for sockets no file refers to)",
        cell: |c, out| push_number(out, c.row.socket.inode),
    },
    Column {
        id: ColumnId::Netns,
        name: "netns",
        header: "NETNS",
        json_key: "netns.inode",
        help: "the inode of the socket's network namespace",
        cell: |c, out| match c.netns.inode {
            Some(inode) => push_number(out, inode),
            None => out.push('-'),
        },
    },
    Column {
        id: ColumnId::Container,
        name: "container",
        header: "CONTAINER",
        json_key: "holders[].container",
        help: "the container the holder runs in, from its cgroup; for a socket without a visible holder, the container it was created in or whose network namespace it lives in",
        cell: |c, out| {
            let container = match c.holder {
                Some(holder) => holder.container(),
                None => c
                    .row
                    .cgroup
                    .as_deref()
                    .and_then(|g| g.container.as_ref())
                    .or(c.netns.container.as_ref()),
            };
            match container {
                Some(k) => {
                    let name = k
                        .name
                        .clone()
                        .unwrap_or_else(|| k.id.chars().take(12).collect());
                    out.push_str(&format!("{}:{}", k.runtime, escape_str(&name)));
                }
                None => out.push('-'),
            }
        },
    },
    Column {
        id: ColumnId::Cgroup,
        name: "cgroup",
        header: "CGROUP",
        json_key: "cgroup.path, cgroup.id",
        help: "the cgroup v2 the socket was created in (its id when it is not in the hierarchy mounted here)",
        cell: |c, out| match c.row.cgroup.as_deref() {
            Some(SocketCgroup {
                path: Some(path), ..
            }) => out.push_str(&escape_str(path)),
            Some(cgroup) => out.push_str(&format!("id:{}", cgroup.id)),
            None => out.push('-'),
        },
    },
    Column {
        id: ColumnId::Unit,
        name: "unit",
        header: "UNIT",
        json_key: "cgroup.unit",
        help: "the systemd unit the socket was created in, from its cgroup",
        cell: |c, out| {
            let unit = c.row.cgroup.as_deref().and_then(|g| g.unit.as_deref());
            match unit {
                Some(unit) => out.push_str(&escape_str(unit)),
                None => out.push('-'),
            }
        },
    },
];

/// The columns shown without `-o`.
pub const DEFAULT: [ColumnId; 11] = [
    ColumnId::Proto,
    ColumnId::State,
    ColumnId::Role,
    ColumnId::Local,
    ColumnId::Service,
    ColumnId::Remote,
    ColumnId::Pid,
    ColumnId::User,
    ColumnId::Fd,
    ColumnId::Command,
    ColumnId::Args,
];

impl ColumnId {
    /// The column's registry entry.
    pub fn column(self) -> &'static Column {
        COLUMNS
            .iter()
            .find(|c| c.id == self)
            .expect("every column id has an entry")
    }

    /// Whether a line's cell in this column depends only on its holder's
    /// process (when it has one), so that a table can make it once per
    /// process rather than once per socket.
    pub fn is_per_process(self) -> bool {
        matches!(
            self,
            ColumnId::Pid
                | ColumnId::User
                | ColumnId::Command
                | ColumnId::Args
                | ColumnId::Container
        )
    }

    /// Whether the column shows the socket's cgroup, which is named only
    /// when asked for.
    pub fn is_about_cgroups(self) -> bool {
        matches!(self, ColumnId::Cgroup | ColumnId::Unit)
    }

    /// Whether the column shows something of the holding process.
    pub fn is_about_holders(self) -> bool {
        matches!(
            self,
            ColumnId::Pid
                | ColumnId::User
                | ColumnId::Fd
                | ColumnId::Command
                | ColumnId::Args
                | ColumnId::Container
        )
    }
}

/// Reads `-o`'s list: names separated by commas, any case. An unknown
/// name is an error that lists the close ones.
pub fn parse_list(list: &str) -> Result<Vec<ColumnId>, Error> {
    let mut chosen = Vec::new();
    for name in list.split(',').map(str::trim) {
        if name.is_empty() {
            return Err(Error::Usage(format!(
                "invalid column list '{list}': an empty column name ('-o help' lists them)"
            )));
        }
        let found = COLUMNS.iter().find(|c| c.name.eq_ignore_ascii_case(name));
        match found {
            Some(column) => chosen.push(column.id),
            None => {
                let close = closest(name, COLUMNS.iter().map(|c| c.name), 3);
                let hint = if close.is_empty() {
                    String::new()
                } else {
                    format!(" (did you mean: {}?)", close.join(", "))
                };
                return Err(Error::Usage(format!(
                    "unknown column '{name}'{hint}; '-o help' lists the columns"
                )));
            }
        }
    }
    Ok(chosen)
}

/// `-o help`: each column's name, header, help and JSON key.
pub fn list() -> String {
    let width = COLUMNS.iter().map(|c| c.name.len()).max().unwrap_or(0);
    let mut out = String::from("Columns for -o (the default ones marked *):\n");
    for c in &COLUMNS {
        let mark = if DEFAULT.contains(&c.id) { '*' } else { ' ' };
        out.push_str(&format!(
            "  {mark} {:width$}  {}. JSON: {}\n",
            c.name, c.help, c.json_key
        ));
    }
    out
}

/// `-o`'s long help, with the column list: `--help` and the man page
/// print it.
pub fn long_help() -> String {
    let names: Vec<&str> = COLUMNS.iter().map(|c| c.name).collect();
    let defaults: Vec<&str> = DEFAULT.iter().map(|id| id.column().name).collect();
    format!(
        "The table's columns, in order, separated by commas (`-o proto,local,pid,command`); `-o help` describes each. Columns: {}. The default: {}. JSON output always has every field.",
        names.join(", "),
        defaults.join(",")
    )
}

/// A socket whose holders lsport could not see:
/// `(hidden) owned by uid 33 (www-data), in nginx.service`.
pub fn hidden_holder(row: &Row) -> String {
    format!("(hidden) {}", crate::render::unseen::owner_words(row))
}

/// A cgroup in a few words: its container, else its unit, else its path
/// (nothing for the root cgroup, which says nothing).
pub fn cgroup_label(cgroup: &SocketCgroup) -> Option<String> {
    if let Some(k) = &cgroup.container {
        let name = k
            .name
            .clone()
            .unwrap_or_else(|| k.id.chars().take(12).collect());
        return Some(format!("{} {}", k.runtime, escape_str(&name)));
    }
    cgroup
        .unit
        .as_deref()
        .or(cgroup.path.as_deref().filter(|p| *p != "/"))
        .map(escape_str)
}

/// Appends `value` as Display writes it.
/// A number in decimal (the table writes several per line, twice:
/// measured, then written).
fn push_number(out: &mut String, n: u64) {
    let mut digits = [0; 20];
    let digits = crate::decimal::digits(n, &mut digits);
    out.extend(digits.iter().map(|&d| char::from(d)));
}

/// An endpoint as its `Display` writes it; an IPv4 address, the usual
/// case, without the formatting machinery.
fn push_endpoint(out: &mut String, endpoint: &Endpoint) {
    match endpoint.address {
        IpAddr::V4(address) if !address.is_unspecified() => {
            for (i, octet) in address.octets().into_iter().enumerate() {
                if i > 0 {
                    out.push('.');
                }
                push_number(out, octet.into());
            }
            out.push(':');
            match endpoint.port {
                0 => out.push('*'),
                port => push_number(out, port.into()),
            }
        }
        _ => {
            use std::fmt::Write;
            let _ = write!(out, "{endpoint}");
        }
    }
}

/// A socket's protocol as every command labels it: tcp/udp for IPv4,
/// tcp6/udp6 for IPv6, and tcp46/udp46 for an IPv6 wildcard socket that
/// also takes IPv4; mptcp, mptcp6 and mptcp46 for the TCP sockets of an
/// MPTCP socket. (An IPv6 socket on an IPv4-mapped address is tcp6,
/// and its address is written as the kernel has it, `[::ffff:a.b.c.d]`.)
pub fn protocol_label(s: &Socket) -> String {
    let mut label = String::new();
    push_protocol_label(&mut label, s);
    label
}

/// [`protocol_label`], appended to `out`.
fn push_protocol_label(out: &mut String, s: &Socket) {
    let suffix = match (s.family, s.v6only) {
        (Family::Inet, _) => "",
        (Family::Inet6, Some(false)) if s.local.is_unspecified() => "46",
        (Family::Inet6, _) => "6",
    };
    // An MPTCP socket's subflows and listener are TCP sockets to the
    // kernel; the program asked for MPTCP, so they are named that.
    let name = match s.mptcp {
        Some(true) => "mptcp",
        _ => s.protocol.name(),
    };
    out.push_str(name);
    out.push_str(suffix);
}

fn state_label(row: &Row) -> Cow<'static, str> {
    socket_state_label(&row.socket)
}

/// A socket's state as every command writes it: the kernel's name, but
/// UNCONN for a UDP socket with no peer (the kernel's CLOSE), as ss says.
pub fn socket_state_label(s: &Socket) -> Cow<'static, str> {
    match (s.protocol, s.state) {
        (Protocol::Udp, State::Close) => Cow::Borrowed("UNCONN"),
        (_, state) => state.kernel_name(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_are_written_as_display_writes_them() {
        for text in [
            "0.0.0.0",
            "127.0.0.1",
            "10.200.3.255",
            "255.255.255.255",
            "::",
            "::1",
            "fe80::1",
        ] {
            for port in [0u16, 7, 80, 65_535] {
                let endpoint = Endpoint {
                    address: text.parse().unwrap(),
                    port,
                };
                let mut out = String::new();
                push_endpoint(&mut out, &endpoint);
                assert_eq!(out, endpoint.to_string());
            }
        }
    }

    #[test]
    fn every_column_has_one_entry_and_a_unique_name() {
        for (i, c) in COLUMNS.iter().enumerate() {
            assert_eq!(c.id.column().name, c.name);
            assert!(COLUMNS[i + 1..].iter().all(|o| o.name != c.name));
            assert_eq!(c.header, c.name.to_ascii_uppercase());
        }
    }

    #[test]
    fn lists_are_read_in_order_and_unknown_names_get_close_ones() {
        assert_eq!(
            parse_list("proto,LOCAL, pid,command").unwrap(),
            vec![
                ColumnId::Proto,
                ColumnId::Local,
                ColumnId::Pid,
                ColumnId::Command
            ]
        );
        let err = parse_list("proto,comand").unwrap_err().to_string();
        assert!(err.contains("unknown column 'comand'"), "{err}");
        assert!(err.contains("did you mean: command"), "{err}");
        assert!(parse_list("proto,,pid").is_err());
    }

    #[test]
    fn the_help_names_every_column() {
        let help = long_help();
        let listing = list();
        for c in &COLUMNS {
            assert!(help.contains(c.name), "{}", c.name);
            assert!(listing.contains(c.help), "{}", c.name);
        }
    }
}
