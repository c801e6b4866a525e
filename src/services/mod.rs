//! What a port is meant for: IANA's service-name registry, carried in
//! the binary, plus the names of the local services file that IANA
//! lacks. Lookups by port and protocol, by name, and suggestions.

mod iana;
#[rustfmt::skip]
mod iana_table;
mod local;
mod protocols;

pub use protocols::Protocols;

use std::path::Path;

use crate::error::Error;
use crate::socket::PortRange;
use crate::socket::Protocol;

/// The default local services file; LSPORT_SERVICES_FILE overrides it.
pub const DEFAULT_SERVICES_FILE: &str = "/etc/services";

/// Where a service registration comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// IANA's registry, as carried in the binary.
    Iana,
    /// The local services file (`/etc/services` by default), for a name
    /// IANA does not have on that port and protocol.
    Local,
}

impl Source {
    /// The source's name in JSON output: `iana` or `local`.
    pub fn name(self) -> &'static str {
        match self {
            Source::Iana => "iana",
            Source::Local => "local",
        }
    }
}

/// One registration of a service on a port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    /// Empty for IANA rows without a name, such as "Reserved".
    pub name: String,
    /// The protocols the registration is for.
    pub protocols: Protocols,
    /// IANA's description; None for local names and for the few IANA
    /// rows that have none.
    pub description: Option<String>,
    /// The registration's ports: x11 covers 6000-6063.
    pub ports: PortRange,
    /// IANA's registry or the local services file.
    pub source: Source,
}

/// The registry: IANA's table plus the local names it lacks.
#[derive(Debug, Clone, Default)]
pub struct Services {
    /// Sorted by port.
    local: Vec<local::LocalName>,
}

impl Services {
    /// IANA's table with the local names read from `path`. A missing
    /// file adds nothing: it is never required. One that cannot be read,
    /// is not a regular file, or is larger than 16 MiB is an error, for
    /// the caller to mention and go on without.
    pub fn load(path: &Path) -> Result<Services, Error> {
        match crate::files::read_bounded(path, crate::files::TABLE_FILE_LIMIT) {
            Ok(bytes) => Ok(Services::with_local(&String::from_utf8_lossy(&bytes))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Services::default()),
            Err(source) => Err(Error::Io {
                path: path.to_path_buf(),
                source,
            }),
        }
    }

    /// Every local name, by port (stable: the file's order within a
    /// port), to be binary-searched like IANA's table. Which of them IANA
    /// already has is decided per lookup: a few names on one port then,
    /// rather than hundreds at every start.
    fn with_local(text: &str) -> Services {
        let mut local = local::parse(text);
        local.sort_by_key(|name| name.port);
        Services { local }
    }

    /// The local names on `port` that IANA does not have on the same
    /// port and protocol, with protocols merged per name.
    fn local_on(&self, port: u16) -> Vec<local::LocalName> {
        let start = self.local.partition_point(|l| l.port < port);
        let mut kept: Vec<local::LocalName> = Vec::new();
        for name in self.local[start..].iter().take_while(|l| l.port == port) {
            let known = iana::on_port(port).any(|e| {
                e.name().eq_ignore_ascii_case(&name.name) && e.protocols().overlaps(name.protocols)
            });
            if known {
                continue;
            }
            match kept
                .iter_mut()
                .find(|k| k.name.eq_ignore_ascii_case(&name.name))
            {
                Some(k) => k.protocols.0 |= name.protocols.0,
                None => kept.push(name.clone()),
            }
        }
        kept
    }

    /// Everything registered on `port`: IANA's rows in the registry's
    /// order, then local names.
    pub fn on_port(&self, port: u16) -> Vec<Service> {
        let iana = iana::on_port(port).map(|e| Service {
            name: e.name().to_string(),
            protocols: e.protocols(),
            description: Some(e.description())
                .filter(|d| !d.is_empty())
                .map(str::to_string),
            ports: PortRange {
                lo: e.ports().0,
                hi: e.ports().1,
            },
            source: Source::Iana,
        });
        let local = self.local_on(port).into_iter().map(|l| Service {
            name: l.name,
            protocols: l.protocols,
            description: None,
            ports: PortRange::single(l.port),
            source: Source::Local,
        });
        iana.chain(local).collect()
    }

    /// The first name registered on `port` for `protocol`: what a socket
    /// there is most likely meant to be.
    pub fn name_for(&self, port: u16, protocol: Protocol) -> Option<String> {
        self.on_port(port)
            .into_iter()
            .find(|s| !s.name.is_empty() && s.protocols.covers(protocol))
            .map(|s| s.name)
    }

    /// The ports of a service name, over every protocol, without regard
    /// to case. The error is one line, with up to three suggestions.
    pub fn resolve(&self, name: &str) -> Result<Vec<PortRange>, Error> {
        let mut ports: Vec<PortRange> = iana::named(name)
            .map(|e| PortRange {
                lo: e.ports().0,
                hi: e.ports().1,
            })
            .chain(
                self.local
                    .iter()
                    .filter(|l| l.name.eq_ignore_ascii_case(name))
                    .map(|l| PortRange::single(l.port)),
            )
            .collect();
        ports.sort();
        ports.dedup();
        if !ports.is_empty() {
            return Ok(ports);
        }
        let shown = name;
        let mut names: Vec<&str> = iana::names().collect();
        names.extend(self.local.iter().map(|l| l.name.as_str()));
        let close = crate::closest::closest(name, names.into_iter(), 3);
        Err(Error::Usage(if close.is_empty() {
            format!("unknown port or service name '{shown}'")
        } else {
            format!(
                "unknown port or service name '{shown}' (did you mean: {}?)",
                close.join(", ")
            )
        }))
    }

    /// The date of the IANA registry carried in the binary, as
    /// `YYYY-MM-DD`.
    pub fn iana_updated() -> &'static str {
        iana::updated()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names_on(services: &Services, port: u16) -> Vec<(String, String, Source)> {
        services
            .on_port(port)
            .into_iter()
            .map(|s| (s.name, s.protocols.label(), s.source))
            .collect()
    }

    fn owned(list: &[(&str, &str, Source)]) -> Vec<(String, String, Source)> {
        list.iter()
            .map(|(n, p, s)| (n.to_string(), p.to_string(), *s))
            .collect()
    }

    #[test]
    fn ssh_is_on_22_over_three_protocols() {
        let services = Services::default();
        let on_22 = services.on_port(22);
        assert_eq!(
            names_on(&services, 22),
            owned(&[
                ("ssh", "tcp, udp", Source::Iana),
                ("ssh", "sctp", Source::Iana)
            ])
        );
        assert_eq!(
            on_22[0].description.as_deref(),
            Some("The Secure Shell (SSH) Protocol")
        );
        assert_eq!(services.name_for(22, Protocol::Udp).as_deref(), Some("ssh"));
    }

    #[test]
    fn several_names_on_one_port_keep_the_registry_order() {
        let services = Services::default();
        let tcp: Vec<String> = services
            .on_port(80)
            .into_iter()
            .filter(|s| s.protocols.covers(Protocol::Tcp))
            .map(|s| s.name)
            .collect();
        assert_eq!(tcp, vec!["http", "www", "www-http"]);
        assert_eq!(
            services.name_for(80, Protocol::Tcp).as_deref(),
            Some("http")
        );
    }

    #[test]
    fn ranges_reserved_ports_and_rows_without_a_protocol() {
        let services = Services::default();
        let x11 = services.on_port(6010);
        assert_eq!(x11[0].name, "x11");
        assert_eq!(x11[0].ports, PortRange { lo: 6000, hi: 6063 });
        for port in [1023, 1024, 49151] {
            let on = services.on_port(port);
            assert!(!on.is_empty(), "{port}");
            assert!(on.iter().all(|s| s.name.is_empty()), "{port}");
            assert!(
                on.iter()
                    .all(|s| s.description.as_deref() == Some("Reserved")),
                "{port}"
            );
        }
        assert_eq!(services.on_port(49151)[0].protocols.label(), "any");
        // boe-cms was registered without a protocol: it covers both.
        assert_eq!(
            services.name_for(6400, Protocol::Udp).as_deref(),
            Some("boe-cms")
        );
        assert!(services.on_port(60403).is_empty());
        // Unassigned rows are left out.
        assert!(services.on_port(1).iter().all(|s| s.name == "tcpmux"));
    }

    #[test]
    fn names_resolve_without_regard_to_case_over_every_protocol() {
        let services = Services::default();
        assert_eq!(
            services.resolve("SSH").unwrap(),
            vec![PortRange::single(22)]
        );
        assert_eq!(
            services.resolve("msp").unwrap(),
            vec![PortRange::single(18), PortRange::single(2438)]
        );
        assert_eq!(
            services.resolve("x11").unwrap(),
            vec![PortRange { lo: 6000, hi: 6063 }]
        );
        let http_alt: Vec<u16> = services
            .resolve("http-alt")
            .unwrap()
            .iter()
            .map(|r| r.lo)
            .collect();
        assert_eq!(http_alt, vec![591, 8008, 8080]);
        let err = services.resolve("postgress").unwrap_err().to_string();
        assert!(err.contains("did you mean: postgresql"), "{err}");
        assert!(!err.contains('\n'));
    }

    #[test]
    fn local_names_fill_gaps_only() {
        let services = Services::with_local(
            "ssh 22/tcp\nmy-app 40123/tcp\nmy-app 40123/udp\nhttp 80/tcp web-local\nbad 99999/tcp\n",
        );
        assert_eq!(
            names_on(&services, 40123),
            owned(&[("my-app", "tcp, udp", Source::Local)])
        );
        assert_eq!(names_on(&services, 22).len(), 2);
        assert!(names_on(&services, 80).contains(&(
            "web-local".into(),
            "tcp".into(),
            Source::Local
        )));
        assert_eq!(
            services.resolve("MY-APP").unwrap(),
            vec![PortRange::single(40123)]
        );
    }
}
