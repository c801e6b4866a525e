//! The JSON documents, through serde. Each is a tree of small structs
//! that borrow from the report, so its shape is written down once, here,
//! and matches the committed schemas (doc/schema/). Documented fields may
//! be added, never renamed or removed, without a new `schema_version`.
//!
//! Strings from other processes are escaped by serde_json, and then some:
//! `TerminalSafe`, the formatter, also escapes C1 controls and the
//! invisible characters that reorder text, so that no JSON viewer on a
//! terminal obeys them.

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::HashMap;
use std::io;
use std::rc::Rc;

use serde::Serialize;
use serde::ser::{SerializeSeq, Serializer};
use serde_json::value::RawValue;

use crate::commands::ephemeral::{EphemeralReport, NamespaceAnalysis};
use crate::forwards::proxy::{Proxy, ProxyTarget};
use crate::forwards::{Direction, Forward, InterfaceName, Target, UndecodedRule, Unreadable};
use crate::holders::HolderWalk;
use crate::holders::cgroups::SocketCgroup;
use crate::holders::container::Container;
use crate::holders::unseen::UnreadableProcess;
use crate::netns::NetnsLabel;
use crate::render::ephemeral::{SYSCTL_D_FILE, reserved_fix};
use crate::render::escape::needs_escape_in_json;
use crate::render::unix::UnixPart;
use crate::render::{columns, ordered};

mod rows;
use crate::report::{
    ForwardTarget, Holder, NamespaceReport, PortVerdict, Report, Row, RulesCoverage,
    TargetListeners,
};
use crate::services::{Service, Services};
use crate::socket::{Endpoint, PortRange};
use crate::unix::report::UnixReport;

/// The version every document carries.
pub const SCHEMA_VERSION: u32 = 1;

/// Writes the probe's document to `sink`, as it is made: `-a` on a busy
/// host makes hundreds of megabytes, which need not sit in memory. The
/// top-level `netns` is the first namespace's; `namespaces` lists them
/// all; every port verdict and socket names its own.
pub fn write_probe(report: &Report, sink: &mut dyn io::Write) -> io::Result<()> {
    write_probe_with_unix(report, None, sink)
}

/// `lsport --json` with Unix socket targets or `--unix`: the same
/// document, with its `unix` part.
pub fn write_probe_with_unix(
    report: &Report,
    unix: Option<&UnixReport>,
    sink: &mut dyn io::Write,
) -> io::Result<()> {
    let Some(first) = report.namespaces.first() else {
        return sink.write_all(b"{}\n");
    };
    let blind_spots: Vec<&'static str> = first
        .blind_spots
        .iter()
        .map(|s| s.id())
        .chain(report.rules_unread().iter().map(|u| u.id()))
        .collect();
    let unreadable: Vec<UnreadableEntry> = report
        .unseen
        .processes
        .iter()
        .map(UnreadableEntry::of)
        .collect();
    let namespaces: Vec<NamespaceWithPolicy> = report
        .namespaces
        .iter()
        .map(NamespaceWithPolicy::of)
        .collect();
    // The fields in the order probe.schema.json lists them.
    let mut out = io::BufWriter::with_capacity(64 * 1024, sink);
    let mut document = TopLevel::begin(&mut out)?;
    document.field("schema_version", &SCHEMA_VERSION)?;
    document.field("source", first.source.name())?;
    document.field("iana_registry_updated", Services::iana_updated())?;
    document.field("blind_spots", &blind_spots)?;
    document.field("netns", &NamespaceWithPolicy::of(first))?;
    document.field("namespaces", &namespaces)?;
    document.field("ports", &PortEntries(&report.namespaces))?;
    document.field_written_by("sockets", |out| write_sockets(&report.namespaces, out))?;
    document.field("hidden_holders", &report.hidden_sockets())?;
    document.field("unreadable_processes", &unreadable)?;
    document.field("holders_from", &report.holders_from.map(HolderWalk::id))?;
    document.field("unix", &unix.map(UnixPart::of))?;
    document.end()
}

/// The probe's document, written a field at a time, so that its sockets
/// (nearly all of its bytes with `-a`) can be made on several threads.
struct TopLevel<'w, W: io::Write> {
    out: &'w mut W,
    first: bool,
}

impl<'w, W: io::Write> TopLevel<'w, W> {
    fn begin(out: &'w mut W) -> io::Result<TopLevel<'w, W>> {
        out.write_all(b"{")?;
        Ok(TopLevel { out, first: true })
    }

    /// `"key":value`; keys are lsport's own, and need no escaping.
    fn field(&mut self, key: &'static str, value: &(impl Serialize + ?Sized)) -> io::Result<()> {
        self.field_written_by(key, |out| {
            let mut serializer = serde_json::Serializer::with_formatter(out, TerminalSafe);
            value.serialize(&mut serializer).map_err(io::Error::from)
        })
    }

    fn field_written_by(
        &mut self,
        key: &'static str,
        write_value: impl FnOnce(&mut W) -> io::Result<()>,
    ) -> io::Result<()> {
        let comma = if self.first { "" } else { "," };
        self.first = false;
        write!(self.out, "{comma}\"{key}\":")?;
        write_value(self.out)
    }

    fn end(self) -> io::Result<()> {
        self.out.write_all(b"}\n")?;
        self.out.flush()
    }
}

/// Every namespace's rows, as one array, rendered on several threads
/// (render/ordered.rs) and written in their order.
fn write_sockets(namespaces: &[NamespaceReport], out: &mut dyn io::Write) -> io::Result<()> {
    out.write_all(b"[")?;
    let mut rows_before = false;
    for report in namespaces {
        ordered::write(
            &report.rows,
            || rows::RowWriter::new(&report.netns),
            |writer, index, chunk, buffer| {
                for (at, row) in chunk.iter().enumerate() {
                    if rows_before || index > 0 || at > 0 {
                        buffer.push(b',');
                    }
                    writer.write(row, buffer)?;
                }
                Ok::<(), io::Error>(())
            },
            out,
        )?;
        rows_before |= !report.rows.is_empty();
    }
    out.write_all(b"]")
}

/// `lsport ephemeral --json`: one document, or a list of them when
/// several namespaces were probed.
pub fn write_ephemeral(
    report: &EphemeralReport,
    top: usize,
    sink: &mut dyn io::Write,
) -> io::Result<()> {
    let documents: Vec<EphemeralDocument<'_>> = report
        .namespaces
        .iter()
        .map(|n| EphemeralDocument::of(n, top))
        .collect();
    match documents.as_slice() {
        [one] => write_document(one, sink),
        several => write_document(&several, sink),
    }
}

/// `lsport suggest --json`.
/// `rules_unread`: the forwarding rules that could not be read, so that
/// a port suggested may still be forwarded (`blind_spots`).
pub fn write_suggestions(
    ports: &[u16],
    rules_unread: &[Unreadable],
    sink: &mut dyn io::Write,
) -> io::Result<()> {
    #[derive(Serialize)]
    struct Suggestions<'a> {
        schema_version: u32,
        ports: &'a [u16],
        blind_spots: Vec<&'static str>,
    }
    let mut blind_spots: Vec<&'static str> = Vec::new();
    for id in rules_unread.iter().map(Unreadable::id) {
        if !blind_spots.contains(&id) {
            blind_spots.push(id);
        }
    }
    let document = Suggestions {
        schema_version: SCHEMA_VERSION,
        ports,
        blind_spots,
    };
    write_document(&document, sink)
}

/// `lsport -o help --json`: the column registry, for scripts that build
/// `-o` lists or label the fields of `--json`.
pub fn write_columns(sink: &mut dyn io::Write) -> io::Result<()> {
    #[derive(Serialize)]
    struct ColumnEntry {
        name: &'static str,
        header: &'static str,
        default: bool,
        help: &'static str,
        json_keys: Vec<&'static str>,
    }
    #[derive(Serialize)]
    struct Columns {
        schema_version: u32,
        columns: Vec<ColumnEntry>,
    }
    let document = Columns {
        schema_version: SCHEMA_VERSION,
        columns: columns::COLUMNS
            .iter()
            .map(|c| ColumnEntry {
                name: c.name,
                header: c.header,
                default: columns::DEFAULT.contains(&c.id),
                help: c.help,
                json_keys: c.json_key.split(", ").collect(),
            })
            .collect(),
    };
    write_document(&document, sink)
}

/// One document and a newline, through a buffer.
pub(crate) fn write_document(
    document: &impl Serialize,
    sink: &mut dyn io::Write,
) -> io::Result<()> {
    let mut buffered = io::BufWriter::with_capacity(64 * 1024, sink);
    let mut serializer = serde_json::Serializer::with_formatter(&mut buffered, TerminalSafe);
    document
        .serialize(&mut serializer)
        .map_err(io::Error::from)?;
    io::Write::write_all(&mut buffered, b"\n")?;
    io::Write::flush(&mut buffered)
}

/// serde_json's compact output, with the characters a terminal would
/// obey escaped as `\uXXXX`.
struct TerminalSafe;

impl serde_json::ser::Formatter for TerminalSafe {
    fn write_string_fragment<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        // Every character to escape beyond serde_json's own is DEL or
        // not ASCII: an ASCII fragment, the usual case, goes out whole.
        if fragment.bytes().all(|b| b < 0x7f) {
            return writer.write_all(fragment.as_bytes());
        }
        let mut start = 0;
        for (at, c) in fragment.char_indices() {
            if needs_escape_in_json(c) {
                writer.write_all(&fragment.as_bytes()[start..at])?;
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    write!(writer, "\\u{unit:04x}")?;
                }
                start = at + c.len_utf8();
            }
        }
        writer.write_all(&fragment.as_bytes()[start..])
    }
}

/// A process whose fds could not be read, when some socket's holder
/// may be among them.
#[derive(Serialize)]
pub(crate) struct UnreadableEntry<'a> {
    pid: u32,
    command: Cow<'a, str>,
    uid: Option<u32>,
    reason: &'static str,
    error: &'static str,
}

impl<'a> UnreadableEntry<'a> {
    pub(crate) fn of(process: &'a UnreadableProcess) -> UnreadableEntry<'a> {
        UnreadableEntry {
            pid: process.pid,
            command: String::from_utf8_lossy(&process.command),
            uid: process.uid,
            reason: process.why.id(),
            error: process.why.error(),
        }
    }
}

/// A `[lo, hi]` pair.
fn pair(range: PortRange) -> [u16; 2] {
    [range.lo, range.hi]
}

#[derive(Serialize)]
pub(crate) struct NetnsView<'a> {
    inode: Option<u64>,
    name: Option<&'a str>,
    container: Option<ContainerView<'a>>,
}

impl<'a> NetnsView<'a> {
    pub(crate) fn of(netns: &'a NetnsLabel) -> NetnsView<'a> {
        NetnsView {
            inode: netns.inode,
            name: netns.name.as_deref(),
            container: netns.container.as_ref().map(ContainerView::of),
        }
    }
}

#[derive(Serialize)]
struct NamespaceWithPolicy<'a> {
    #[serde(flatten)]
    netns: NetnsView<'a>,
    ephemeral_range: [u16; 2],
    ephemeral_range_assumed: bool,
    reserved_ports: Vec<[u16; 2]>,
    reserved_ports_assumed: bool,
    unprivileged_port_start: u32,
    unprivileged_port_start_assumed: bool,
    port_settings_read_from: Option<&'static str>,
}

impl<'a> NamespaceWithPolicy<'a> {
    fn of(report: &'a NamespaceReport) -> NamespaceWithPolicy<'a> {
        let policy = &report.policy;
        NamespaceWithPolicy {
            netns: NetnsView::of(&report.netns),
            ephemeral_range: pair(policy.ephemeral.value),
            ephemeral_range_assumed: policy.ephemeral.assumed,
            reserved_ports: policy.reserved.value.iter().copied().map(pair).collect(),
            reserved_ports_assumed: policy.reserved.assumed,
            unprivileged_port_start: policy.unprivileged_start.value,
            unprivileged_port_start_assumed: policy.unprivileged_start.assumed,
            port_settings_read_from: policy.read_from.id(),
        }
    }
}

#[derive(Serialize)]
pub(crate) struct ContainerView<'a> {
    runtime: &'static str,
    id: &'a str,
    name: Option<&'a str>,
    pod_uid: Option<&'a str>,
}

impl<'a> ContainerView<'a> {
    pub(crate) fn of(container: &'a Container) -> ContainerView<'a> {
        ContainerView {
            runtime: container.runtime,
            id: &container.id,
            name: container.name.as_deref(),
            pod_uid: container.pod_uid.as_deref(),
        }
    }
}

/// Every port verdict of every namespace: one entry per port a verdict
/// speaks for (the port asked, or each port of an asked range that is
/// in use).
struct PortEntries<'a>(&'a [NamespaceReport]);

impl Serialize for PortEntries<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(None)?;
        for report in self.0 {
            for verdict in &report.ports {
                for entry in PortEntry::all(verdict, &report.netns) {
                    seq.serialize_element(&entry)?;
                }
            }
        }
        seq.end()
    }
}

#[derive(Serialize)]
struct PortEntry<'a> {
    port: u16,
    iana_range: &'static str,
    ephemeral: bool,
    reserved: bool,
    privileged: bool,
    in_use: bool,
    verdict: &'static str,
    forwards: Vec<ForwardEntry<'a>>,
    undecoded_rules: Vec<String>,
    services: Vec<ServiceEntry<'a>>,
    netns: NetnsView<'a>,
}

impl<'a> PortEntry<'a> {
    fn all(verdict: &'a PortVerdict, netns: &'a NetnsLabel) -> impl Iterator<Item = PortEntry<'a>> {
        verdict.facts.iter().map(move |facts| {
            let in_use = verdict.in_use_ports.contains(&facts.port);
            let forwards: Vec<ForwardEntry<'a>> = verdict
                .forwards_of(facts.port)
                .map(|f| ForwardEntry::of(f, verdict.target_of(f), verdict.asked))
                .collect();
            let undecoded: Vec<&UndecodedRule> = verdict
                .undecoded
                .iter()
                .filter(|u| u.ports.iter().any(|r| r.contains(facts.port)))
                .collect();
            let verdict_name = if in_use {
                "in_use"
            } else if !forwards.is_empty() {
                "forwarded"
            } else if verdict.rules == RulesCoverage::Incomplete {
                "free_of_sockets"
            } else {
                "free"
            };
            PortEntry {
                port: facts.port,
                iana_range: facts.iana_range.name(),
                ephemeral: facts.ephemeral,
                reserved: facts.reserved,
                privileged: facts.privileged,
                in_use,
                verdict: verdict_name,
                forwards,
                undecoded_rules: undecoded.iter().map(|u| u.to_string()).collect(),
                services: facts.services.iter().flat_map(ServiceEntry::all).collect(),
                netns: NetnsView::of(netns),
            }
        })
    }
}

/// A forwarding rule that takes a port, as the JSON gives it.
#[derive(Serialize)]
pub(crate) struct ForwardEntry<'a> {
    source: &'static str,
    table_family: &'static str,
    table: &'a str,
    chains: &'a [String],
    hook: &'static str,
    rule: u64,
    position: u64,
    comment: Option<&'a str>,
    families: Vec<&'static str>,
    protocols: Vec<&'static str>,
    ports: Vec<[u16; 2]>,
    interfaces: Vec<InterfaceEntry<'a>>,
    destinations: Vec<DestinationMatchEntry>,
    destination_types: Vec<String>,
    unread_conditions: &'a [String],
    target: TargetEntry,
    target_netns: Option<NetnsView<'a>>,
    target_sockets: Option<TargetSocketsEntry<'a>>,
    delete_command: String,
}

/// What listens on a forward's target ports in the target's namespace
/// (the probe's forwards and kill's give the same).
#[derive(Serialize)]
pub(crate) struct TargetSocketsEntry<'a> {
    protocols: Vec<&'static str>,
    ports: [u16; 2],
    taking: Vec<SocketEntry<'a>>,
    elsewhere: Vec<SocketEntry<'a>>,
    error: Option<&'a str>,
}

impl<'a> TargetSocketsEntry<'a> {
    pub(crate) fn of(
        listeners: &'a TargetListeners,
        netns: &'a NetnsLabel,
    ) -> TargetSocketsEntry<'a> {
        let (taking, elsewhere, error) = match &listeners.found {
            Ok(found) => (
                found
                    .taking
                    .iter()
                    .map(|r| SocketEntry::of(r, netns))
                    .collect(),
                found
                    .elsewhere
                    .iter()
                    .map(|r| SocketEntry::of(r, netns))
                    .collect(),
                None,
            ),
            Err(message) => (Vec::new(), Vec::new(), Some(message.as_str())),
        };
        TargetSocketsEntry {
            protocols: listeners.protocols.iter().map(|p| p.name()).collect(),
            ports: pair(listeners.ports),
            taking,
            elsewhere,
            error,
        }
    }
}

#[derive(Serialize)]
struct InterfaceEntry<'a> {
    direction: &'static str,
    name: Option<&'a str>,
    prefix: Option<&'a str>,
    index: Option<u32>,
    negated: bool,
}

#[derive(Serialize)]
struct DestinationMatchEntry {
    network: std::net::IpAddr,
    prefix: u8,
    negated: bool,
}

#[derive(Serialize)]
struct TargetEntry {
    kind: &'static str,
    addresses: Option<[std::net::IpAddr; 2]>,
    ports: Option<[u16; 2]>,
    text: String,
}

impl<'a> ForwardEntry<'a> {
    pub(crate) fn of(
        forward: &'a Forward,
        lands: Option<&'a ForwardTarget>,
        asked: PortRange,
    ) -> ForwardEntry<'a> {
        let place = &forward.place;
        let target = match forward.target {
            Target::Dnat { addresses, ports } => TargetEntry {
                kind: "dnat",
                addresses: addresses.map(|(a, b)| [a, b]),
                ports: ports.map(pair),
                text: forward.target.to_string(),
            },
            Target::Redirect { ports } => TargetEntry {
                kind: "redirect",
                addresses: None,
                ports: ports.map(pair),
                text: forward.target.to_string(),
            },
        };
        ForwardEntry {
            source: place.source.name(),
            table_family: place.family.name(),
            table: &place.table,
            chains: &place.chains,
            hook: place.hook.name(),
            rule: place.rule,
            position: place.position,
            comment: forward.comment.as_deref(),
            families: forward.families.iter().map(|f| f.name()).collect(),
            protocols: forward.protocols.iter().map(|p| p.name()).collect(),
            ports: forward.ports.iter().copied().map(pair).collect(),
            interfaces: forward
                .interfaces
                .iter()
                .map(|i| {
                    let (name, prefix, index) = match &i.name {
                        InterfaceName::Exact(name) => (Some(name.as_str()), None, None),
                        InterfaceName::Prefix(prefix) => (None, Some(prefix.as_str()), None),
                        InterfaceName::Index(index) => (None, None, Some(*index)),
                    };
                    InterfaceEntry {
                        direction: match i.direction {
                            Direction::In => "in",
                            Direction::Out => "out",
                        },
                        name,
                        prefix,
                        index,
                        negated: i.negated,
                    }
                })
                .collect(),
            destinations: forward
                .destinations
                .iter()
                .map(|d| DestinationMatchEntry {
                    network: d.network,
                    prefix: d.prefix,
                    negated: d.negated,
                })
                .collect(),
            destination_types: forward
                .destination_types
                .iter()
                .map(|t| t.to_string())
                .collect(),
            unread_conditions: &forward.unread_conditions,
            target,
            target_netns: lands.map(|t| NetnsView::of(&t.netns)),
            target_sockets: lands.and_then(|t| {
                let listeners = t.listener_for(forward, asked)?;
                Some(TargetSocketsEntry::of(listeners, &t.netns))
            }),
            delete_command: place.delete_command(),
        }
    }
}

/// One entry per protocol of a registration, as a JSON consumer filters
/// by protocol: ssh on tcp and udp gives two.
#[derive(Serialize)]
struct ServiceEntry<'a> {
    name: Option<&'a str>,
    protocol: &'static str,
    description: Option<&'a str>,
    ports: [u16; 2],
    source: &'static str,
}

impl<'a> ServiceEntry<'a> {
    fn all(service: &'a Service) -> impl Iterator<Item = ServiceEntry<'a>> {
        service.protocols.names().map(move |protocol| ServiceEntry {
            name: Some(service.name.as_str()).filter(|n| !n.is_empty()),
            protocol,
            description: service.description.as_deref(),
            ports: pair(service.ports),
            source: service.source.name(),
        })
    }
}

#[derive(Serialize)]
pub(crate) struct EndpointView {
    address: std::net::IpAddr,
    port: u16,
}

impl EndpointView {
    pub(crate) fn of(endpoint: &Endpoint) -> EndpointView {
        EndpointView {
            address: endpoint.readable_address(),
            port: endpoint.port,
        }
    }
}

#[derive(Serialize)]
pub(crate) struct SocketEntry<'a> {
    protocol: &'static str,
    family: &'static str,
    state: Cow<'static, str>,
    role: &'static str,
    local: EndpointView,
    remote: EndpointView,
    v6only: Option<bool>,
    mptcp: Option<bool>,
    service: Option<&'a str>,
    uid: u32,
    inode: u64,
    ends_in_ms: Option<u32>,
    risky: bool,
    holders: Vec<HolderEntry<'a>>,
    holders_hidden: bool,
    cgroup: Option<CgroupView<'a>>,
    netns: NetnsView<'a>,
}

/// The cgroup a socket was created in.
#[derive(Serialize)]
struct CgroupView<'a> {
    id: u64,
    path: Option<&'a str>,
    unit: Option<&'a str>,
    container: Option<ContainerView<'a>>,
}

impl<'a> CgroupView<'a> {
    fn of(cgroup: &'a SocketCgroup) -> CgroupView<'a> {
        CgroupView {
            id: cgroup.id,
            path: cgroup.path.as_deref(),
            unit: cgroup.unit.as_deref(),
            container: cgroup.container.as_ref().map(ContainerView::of),
        }
    }
}

impl<'a> SocketEntry<'a> {
    pub(crate) fn of(row: &'a Row, netns: &'a NetnsLabel) -> SocketEntry<'a> {
        SocketEntry::with_texts(row, netns, &HolderTexts::default())
    }

    /// `of`, taking the holders' command lines from `texts`.
    fn with_texts(row: &'a Row, netns: &'a NetnsLabel, texts: &HolderTexts) -> SocketEntry<'a> {
        let s = &row.socket;
        SocketEntry {
            protocol: s.protocol.name(),
            family: s.family.name(),
            state: s.state.kernel_name(),
            role: row.role.name(),
            local: EndpointView::of(&s.local),
            remote: EndpointView::of(&s.remote),
            v6only: s.v6only,
            mptcp: s.mptcp,
            service: row.service.as_deref().map(String::as_str),
            uid: s.uid,
            inode: s.inode,
            // Only a socket that goes by itself has an end to tell.
            ends_in_ms: s.timer_ms.filter(|_| s.ends_by_itself()),
            risky: row.risky,
            holders: row
                .holders
                .iter()
                .map(|h| HolderEntry::with_texts(h, texts))
                .collect(),
            holders_hidden: row.holders_hidden,
            cgroup: row.cgroup.as_deref().map(CgroupView::of),
            netns: NetnsView::of(netns),
        }
    }
}

#[derive(Serialize)]
pub(crate) struct HolderEntry<'a> {
    #[serde(flatten)]
    process: HolderProcessView<'a>,
    fd: u32,
    #[serde(flatten)]
    proxy: HolderProxyView<'a>,
}

/// What a holder's fields say of its process, before its `fd`: the same
/// for every fd of the process (json/rows.rs writes it once).
#[derive(Serialize)]
struct HolderProcessView<'a> {
    pid: u32,
    command: JsonText,
    cmdline: JsonText,
    user: Option<&'a str>,
    uid: Option<u32>,
    pid_in_namespace: Option<u32>,
    container: Option<ContainerView<'a>>,
}

/// A holder's fields after its `fd`.
#[derive(Serialize)]
struct HolderProxyView<'a> {
    proxy: Option<ProxyView<'a>>,
}

/// A userland proxy, as its command line says.
#[derive(Serialize)]
struct ProxyView<'a> {
    kind: &'static str,
    forwards: Vec<ProxyForwardView<'a>>,
    unsaid: Option<&'a str>,
}

#[derive(Serialize)]
struct ProxyForwardView<'a> {
    protocol: Option<&'static str>,
    host_address: Option<std::net::IpAddr>,
    host_ports: [u16; 2],
    target: String,
    target_address: Option<std::net::IpAddr>,
    target_port: Option<u16>,
    target_netns: Option<&'a str>,
}

impl<'a> ProxyView<'a> {
    fn of(proxy: &'a Proxy) -> ProxyView<'a> {
        ProxyView {
            kind: proxy.kind.name(),
            forwards: proxy
                .forwards
                .iter()
                .map(|f| {
                    let (address, port, netns) = match &f.target {
                        ProxyTarget::Address { address, port } => {
                            (Some(*address), Some(*port), None)
                        }
                        ProxyTarget::Namespace { netns, .. } => (None, None, netns.as_deref()),
                        ProxyTarget::Kubernetes { .. } => (None, None, None),
                    };
                    ProxyForwardView {
                        protocol: f.protocol.map(|p| p.name()),
                        host_address: f.host_address,
                        host_ports: pair(f.host_ports),
                        target: f.target.to_string(),
                        target_address: address,
                        target_port: port,
                        target_netns: netns,
                    }
                })
                .collect(),
            unsaid: proxy.unsaid.as_deref(),
        }
    }
}

impl<'a> HolderEntry<'a> {
    pub(crate) fn of(holder: &'a Holder) -> HolderEntry<'a> {
        HolderEntry::with_texts(holder, &HolderTexts::default())
    }

    /// `of`, taking the command line from `texts`.
    fn with_texts(holder: &'a Holder, texts: &HolderTexts) -> HolderEntry<'a> {
        HolderEntry {
            process: HolderProcessView::of(holder, texts),
            fd: holder.fd,
            proxy: HolderProxyView {
                proxy: holder.proxy().map(ProxyView::of),
            },
        }
    }
}

impl<'a> HolderProcessView<'a> {
    /// What `holder` says of its process, the command line from `texts`.
    fn of(holder: &'a Holder, texts: &HolderTexts) -> HolderProcessView<'a> {
        let (command, cmdline) = texts.of(holder);
        HolderProcessView {
            pid: holder.pid,
            command,
            cmdline,
            user: holder.user(),
            uid: holder.uid(),
            pid_in_namespace: holder.pid_in_namespace(),
            container: holder.container().map(ContainerView::of),
        }
    }
}

/// JSON text made once and written as is wherever it is needed.
#[derive(Clone)]
struct JsonText(Rc<RawValue>);

impl JsonText {
    /// `value` as JSON, escaped by [`TerminalSafe`].
    fn of(value: &impl Serialize) -> JsonText {
        let mut bytes = Vec::new();
        let mut serializer = serde_json::Serializer::with_formatter(&mut bytes, TerminalSafe);
        value
            .serialize(&mut serializer)
            .expect("strings and arrays of strings serialize");
        let text = String::from_utf8(bytes).expect("serde_json writes UTF-8");
        JsonText(
            RawValue::from_string(text)
                .expect("serde_json writes JSON")
                .into(),
        )
    }
}

impl Serialize for JsonText {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

/// The holders' commands and command lines as JSON, made once per
/// process: `-a` on 200,000 sockets held by 500 processes escapes each
/// command line 500 times, not 200,000.
#[derive(Default)]
struct HolderTexts(RefCell<HashMap<u32, (JsonText, JsonText)>>);

impl HolderTexts {
    /// The command and command line of `holder`'s process.
    fn of(&self, holder: &Holder) -> (JsonText, JsonText) {
        self.0
            .borrow_mut()
            .entry(holder.pid)
            .or_insert_with(|| {
                let cmdline: Vec<Cow<str>> = holder
                    .cmdline()
                    .iter()
                    .map(|arg| String::from_utf8_lossy(arg))
                    .collect();
                (
                    JsonText::of(&String::from_utf8_lossy(holder.command())),
                    JsonText::of(&cmdline),
                )
            })
            .clone()
    }
}

#[derive(Serialize)]
struct EphemeralDocument<'a> {
    schema_version: u32,
    netns: EphemeralNetns,
    range: [u16; 2],
    range_assumed: bool,
    size: u32,
    reserved_in_range: u32,
    same_parity: bool,
    usable: u32,
    hard_bound_ports: &'a [u16],
    in_use: StateCountsView,
    destinations: Vec<DestinationEntry>,
    risky_listeners: Vec<RiskyEntry>,
    forwarded_ports: Vec<[u16; 2]>,
    overlaps: Vec<OverlapEntry>,
    fix: Option<FixEntry>,
    problems: &'a [String],
    healthy: bool,
}

#[derive(Serialize)]
struct EphemeralNetns {
    inode: Option<u64>,
}

#[derive(Serialize)]
struct StateCountsView {
    established: u32,
    closing: u32,
    time_wait: u32,
}

#[derive(Serialize)]
struct DestinationEntry {
    address: std::net::IpAddr,
    port: u16,
    established: u32,
    closing: u32,
    time_wait: u32,
    headroom: u32,
    /// Rounded to two decimals.
    headroom_percent: f64,
}

#[derive(Serialize)]
struct RiskyEntry {
    protocol: &'static str,
    role: &'static str,
    address: std::net::IpAddr,
    port: u16,
    pids: Vec<u32>,
}

#[derive(Serialize)]
struct OverlapEntry {
    planned: [u16; 2],
    overlap: Option<[u16; 2]>,
    unreserved: u32,
}

#[derive(Serialize)]
struct FixEntry {
    reserved_ports: String,
    now: String,
    persistent_file: &'static str,
    persistent_line: String,
}

impl<'a> EphemeralDocument<'a> {
    fn of(namespace: &'a NamespaceAnalysis, top: usize) -> EphemeralDocument<'a> {
        let a = &namespace.analysis;
        let counts = |c: &crate::commands::ephemeral::StateCounts| StateCountsView {
            established: c.established,
            closing: c.closing,
            time_wait: c.time_wait,
        };
        EphemeralDocument {
            schema_version: SCHEMA_VERSION,
            netns: EphemeralNetns {
                inode: namespace.netns.inode,
            },
            range: pair(a.range),
            range_assumed: a.range_assumed,
            size: a.size,
            reserved_in_range: a.reserved_in_range,
            same_parity: a.same_parity,
            usable: a.usable,
            hard_bound_ports: &a.hard_bound_ports,
            in_use: counts(&a.in_use),
            destinations: a
                .destinations
                .iter()
                .take(top)
                .map(|d| DestinationEntry {
                    address: d.remote.address,
                    port: d.remote.port,
                    established: d.in_use.established,
                    closing: d.in_use.closing,
                    time_wait: d.in_use.time_wait,
                    headroom: d.headroom,
                    headroom_percent: (d.headroom_percent * 100.0).round() / 100.0,
                })
                .collect(),
            risky_listeners: a
                .risky
                .iter()
                .map(|row| RiskyEntry {
                    protocol: row.socket.protocol.name(),
                    role: row.role.name(),
                    address: row.socket.local.readable_address(),
                    port: row.socket.local.port,
                    pids: row.holders.iter().map(|h| h.pid).collect(),
                })
                .collect(),
            forwarded_ports: a.forwarded.iter().copied().map(pair).collect(),
            overlaps: a
                .overlaps
                .iter()
                .map(|o| OverlapEntry {
                    planned: pair(o.planned),
                    overlap: o.overlap.map(pair),
                    unreserved: o.unreserved,
                })
                .collect(),
            fix: reserved_fix(a, &namespace.policy).map(|ports| FixEntry {
                now: format!("sysctl -w net.ipv4.ip_local_reserved_ports={ports}"),
                persistent_file: SYSCTL_D_FILE,
                persistent_line: format!("net.ipv4.ip_local_reserved_ports = {ports}"),
                reserved_ports: ports,
            }),
            problems: &namespace.problems,
            healthy: namespace.problems.is_empty(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json_string(text: &str) -> String {
        let mut out = Vec::new();
        let mut serializer = serde_json::Serializer::with_formatter(&mut out, TerminalSafe);
        text.serialize(&mut serializer).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn strings_escape_every_character_a_terminal_obeys() {
        assert_eq!(
            json_string("a\"b\\c\x1b[2J\u{9b}\u{7f}"),
            r#""a\"b\\c\u001b[2J\u009b\u007f""#
        );
        assert_eq!(json_string("evil\u{202e}txt"), r#""evil\u202etxt""#);
        assert_eq!(json_string("nginx: worker ü"), "\"nginx: worker ü\"");
        // Still JSON: the escapes read back as the same text.
        let back: String = serde_json::from_str(&json_string("x\u{9b}\u{2028}y")).unwrap();
        assert_eq!(back, "x\u{9b}\u{2028}y");
    }
}
