//! Userland proxies, named by their command lines (which any user may
//! read): a process that holds a host port only to pass its traffic to
//! a container, a namespace or a Kubernetes pod. lsport shows the
//! proxy's pid as the holder; this says where the traffic really goes.
//! Pure functions over the bytes of `/proc/PID/cmdline`.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::socket::{PortRange, Protocol};

/// Which proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProxyKind {
    /// Docker's `docker-proxy`, one process per published port (with
    /// `userland-proxy`, the default). Since Docker 28 dockerd may open
    /// the listener and pass it (`-use-listen-fd`); the command line
    /// still names the container's address.
    DockerProxy,
    /// Rootless Docker's `rootlesskit-docker-proxy`, which takes
    /// docker-proxy's flags and asks RootlessKit for the host port.
    RootlesskitDockerProxy,
    /// Rootless Podman's `rootlessport`.
    Rootlessport,
    /// `pasta` (passt's namespace mode), rootless Podman's network.
    Pasta,
    /// `slirp4netns`, rootless Podman's and Docker's older network.
    Slirp4netns,
    /// `kubectl port-forward` (or OpenShift's `oc port-forward`).
    KubectlPortForward,
}

impl ProxyKind {
    /// The proxy's name as its program is called.
    pub fn name(self) -> &'static str {
        match self {
            ProxyKind::DockerProxy => "docker-proxy",
            ProxyKind::RootlesskitDockerProxy => "rootlesskit-docker-proxy",
            ProxyKind::Rootlessport => "rootlessport",
            ProxyKind::Pasta => "pasta",
            ProxyKind::Slirp4netns => "slirp4netns",
            ProxyKind::KubectlPortForward => "kubectl port-forward",
        }
    }
}

/// Where a proxy sends what arrives on its host port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProxyTarget {
    /// An address and port: a container's (docker-proxy).
    Address {
        /// The address.
        address: IpAddr,
        /// The port.
        port: u16,
    },
    /// Ports inside a network namespace (pasta).
    Namespace {
        /// The namespace as the command line names it (a path or a
        /// pid), where it does.
        netns: Option<String>,
        /// The ports there.
        ports: PortRange,
    },
    /// A Kubernetes pod or service, and its port (a number or a name).
    Kubernetes {
        /// The Kubernetes namespace, where the command line names one.
        namespace: Option<String>,
        /// `pod/NAME`, `svc/NAME`, `deployment/NAME` or a pod's name.
        resource: String,
        /// The remote port, as given.
        port: String,
    },
}

impl fmt::Display for ProxyTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProxyTarget::Address {
                address: IpAddr::V6(v6),
                port,
            } => write!(f, "[{v6}]:{port}"),
            ProxyTarget::Address { address, port } => write!(f, "{address}:{port}"),
            ProxyTarget::Namespace {
                netns: Some(netns),
                ports,
            } => write!(f, "port {ports} in network namespace {netns}"),
            ProxyTarget::Namespace { netns: None, ports } => {
                write!(f, "port {ports} in the proxy's network namespace")
            }
            ProxyTarget::Kubernetes {
                namespace,
                resource,
                port,
            } => match namespace {
                Some(namespace) => write!(f, "{resource} port {port} (namespace {namespace})"),
                None => write!(f, "{resource} port {port}"),
            },
        }
    }
}

/// One port (or range) a proxy forwards.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyForward {
    /// TCP or UDP; None for another protocol (SCTP) or where the
    /// command line does not say.
    pub protocol: Option<Protocol>,
    /// The host address it listens on; None where the command line
    /// does not say (every address, or the proxy's default).
    pub host_address: Option<IpAddr>,
    /// The host ports.
    pub host_ports: PortRange,
    /// Where the traffic goes.
    pub target: ProxyTarget,
}

/// A proxy recognized from its command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proxy {
    /// Which proxy.
    pub kind: ProxyKind,
    /// The forwards its command line names.
    pub forwards: Vec<ProxyForward>,
    /// What the command line does not say, where something is missing:
    /// rootlessport and slirp4netns get their ports over a pipe or a
    /// socket, `kubectl port-forward :80` lets the kernel pick.
    pub unsaid: Option<String>,
}

/// The proxy a process runs, from its `/proc/PID/cmdline` (arguments
/// separated by NUL bytes); None for any other program.
pub fn recognize(cmdline: &[u8]) -> Option<Proxy> {
    let cmdline = cmdline.strip_suffix(&[0]).unwrap_or(cmdline);
    let args: Vec<&[u8]> = cmdline.split(|&b| b == 0).collect();
    recognize_args(&args)
}

/// The proxy a process runs, from its arguments (the program first).
pub fn recognize_args(args: &[&[u8]]) -> Option<Proxy> {
    let program = args.first()?;
    let base = program.rsplit(|&b| b == b'/').next().unwrap_or(program);
    let rest: Vec<String> = args[1..]
        .iter()
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    match base {
        b"docker-proxy" => Some(docker_proxy(ProxyKind::DockerProxy, &rest)),
        b"rootlesskit-docker-proxy" => Some(docker_proxy(ProxyKind::RootlesskitDockerProxy, &rest)),
        b"rootlessport" => Some(Proxy {
            kind: ProxyKind::Rootlessport,
            forwards: Vec::new(),
            unsaid: Some(
                "rootlessport reads its ports from Podman, not from its command line".into(),
            ),
        }),
        b"slirp4netns" => Some(Proxy {
            kind: ProxyKind::Slirp4netns,
            forwards: Vec::new(),
            unsaid: Some(
                "slirp4netns is given its ports through its API socket, not its command line"
                    .into(),
            ),
        }),
        // passt ships pasta.avx2 beside pasta.
        _ if base == b"pasta" || base.starts_with(b"pasta.") => Some(pasta(&rest)),
        b"kubectl" | b"oc" => kubectl(&rest),
        _ => None,
    }
}

/// A flag of Go's `flag` package: `-name`, `--name`, with `=value` or
/// the next argument as its value.
fn go_flag(arg: &str) -> Option<(&str, Option<&str>)> {
    let name = arg.strip_prefix("--").or_else(|| arg.strip_prefix('-'))?;
    if name.is_empty() {
        return None;
    }
    Some(match name.split_once('=') {
        Some((name, value)) => (name, Some(value)),
        None => (name, None),
    })
}

/// A short option's letter and what is attached to it (`-t8080`). The
/// letter may be any character: a command line is any bytes.
fn split_first_char(text: &str) -> (&str, &str) {
    text.split_at(text.chars().next().map_or(0, char::len_utf8))
}

fn docker_proxy(kind: ProxyKind, args: &[String]) -> Proxy {
    const WITH_VALUES: [&str; 5] = [
        "proto",
        "host-ip",
        "host-port",
        "container-ip",
        "container-port",
    ];
    let mut values: Vec<(&str, &str)> = Vec::new();
    let mut i = 0;
    while i < args.len() {
        if let Some((name, value)) = go_flag(&args[i]) {
            if WITH_VALUES.contains(&name) {
                let value = match value {
                    Some(value) => Some(value),
                    None => {
                        i += 1;
                        args.get(i).map(String::as_str)
                    }
                };
                if let Some(value) = value {
                    values.push((name, value));
                }
            }
        }
        i += 1;
    }
    let get = |name: &str| {
        values
            .iter()
            .rev()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| *v)
    };
    // docker-proxy's default protocol is tcp.
    let protocol = match get("proto").unwrap_or("tcp") {
        "tcp" => Some(Protocol::Tcp),
        "udp" => Some(Protocol::Udp),
        _ => None,
    };
    let host_port = get("host-port").and_then(|p| p.parse::<u16>().ok());
    let address = get("container-ip").and_then(|a| a.parse::<IpAddr>().ok());
    let port = get("container-port").and_then(|p| p.parse::<u16>().ok());
    let (Some(host_port), Some(address), Some(port)) = (host_port, address, port) else {
        return Proxy {
            kind,
            forwards: Vec::new(),
            unsaid: Some(format!(
                "{}'s command line does not name its host port and container address",
                kind.name()
            )),
        };
    };
    Proxy {
        kind,
        forwards: vec![ProxyForward {
            protocol,
            host_address: get("host-ip").and_then(|a| a.parse().ok()),
            host_ports: PortRange::single(host_port),
            target: ProxyTarget::Address { address, port },
        }],
        unsaid: None,
    }
}

/// pasta's forwards: `-t SPEC`, `-tSPEC`, `--tcp-ports SPEC` or
/// `--tcp-ports=SPEC` (and `-u`, `--udp-ports` for UDP); the namespace
/// from `--netns`.
fn pasta(args: &[String]) -> Proxy {
    let mut specs: Vec<(Protocol, &str)> = Vec::new();
    let mut netns = None;
    let mut i = 0;
    while i < args.len() {
        let arg = args[i].as_str();
        let (option, attached) = if let Some(long) = arg.strip_prefix("--") {
            match long.split_once('=') {
                Some((name, value)) => (name, Some(value)),
                None => (long, None),
            }
        } else if let Some(short) = arg.strip_prefix('-').filter(|s| !s.is_empty()) {
            let (name, value) = split_first_char(short);
            (name, (!value.is_empty()).then_some(value))
        } else {
            i += 1;
            continue;
        };
        let protocol = match option {
            "t" | "tcp-ports" => Some(Protocol::Tcp),
            "u" | "udp-ports" => Some(Protocol::Udp),
            _ => None,
        };
        if protocol.is_some() || option == "netns" {
            let value = match attached {
                Some(value) => Some(value),
                None => {
                    i += 1;
                    args.get(i).map(String::as_str)
                }
            };
            match (protocol, value) {
                (Some(protocol), Some(value)) => specs.push((protocol, value)),
                (None, Some(value)) => netns = Some(value.to_string()),
                _ => {}
            }
        }
        i += 1;
    }
    let mut forwards = Vec::new();
    let mut unsaid = Vec::new();
    for (protocol, spec) in specs {
        match spec {
            "none" => {}
            "auto" | "all" => unsaid.push(format!(
                "pasta forwards {} ports chosen at run time ({spec})",
                protocol.name()
            )),
            _ => {
                if !pasta_spec(protocol, spec, &netns, &mut forwards) {
                    unsaid.push(format!(
                        "pasta's port specification {spec:?} was not understood"
                    ));
                }
            }
        }
    }
    Proxy {
        kind: ProxyKind::Pasta,
        forwards,
        unsaid: (!unsaid.is_empty()).then(|| unsaid.join("; ")),
    }
}

/// One pasta specification: a comma-separated list of
/// `[ADDRESS[%INTERFACE]/]PORTS[:TARGET_PORTS]`, with `~PORTS` to leave
/// ports out. False where it does not parse.
fn pasta_spec(
    protocol: Protocol,
    spec: &str,
    netns: &Option<String>,
    out: &mut Vec<ProxyForward>,
) -> bool {
    let mut excluded: Vec<PortRange> = Vec::new();
    let mut mapped: Vec<(Option<IpAddr>, PortRange, PortRange)> = Vec::new();
    for item in spec.split(',') {
        if let Some(range) = item.strip_prefix('~') {
            match port_range(range) {
                Some(range) => excluded.push(range),
                None => return false,
            }
            continue;
        }
        let (address, ports) = match item.rsplit_once('/') {
            Some((address, ports)) => {
                let address = address.split('%').next().unwrap_or("");
                if address.is_empty() {
                    (None, ports)
                } else {
                    match address.parse::<IpAddr>() {
                        Ok(address) => (Some(address), ports),
                        Err(_) => return false,
                    }
                }
            }
            None => (None, item),
        };
        let (host, target) = match ports.split_once(':') {
            Some((host, target)) => (port_range(host), port_range(target)),
            None => (port_range(ports), port_range(ports)),
        };
        let (Some(host), Some(target)) = (host, target) else {
            return false;
        };
        mapped.push((address, host, target));
    }
    if mapped.is_empty() {
        // Only exclusions: every other port, which lsport does not list.
        return false;
    }
    for (address, host, target) in mapped {
        for (lo, hi) in split_around(host, &excluded) {
            let shift = |port: u16| target.lo.saturating_add(port - host.lo);
            out.push(ProxyForward {
                protocol: Some(protocol),
                host_address: address,
                host_ports: PortRange { lo, hi },
                target: ProxyTarget::Namespace {
                    netns: netns.clone(),
                    ports: PortRange {
                        lo: shift(lo),
                        hi: shift(hi).min(target.hi),
                    },
                },
            });
        }
    }
    true
}

/// The parts of `range` outside every range of `excluded`.
fn split_around(range: PortRange, excluded: &[PortRange]) -> Vec<(u16, u16)> {
    let mut parts = vec![(range.lo, range.hi)];
    for cut in excluded {
        let mut next = Vec::new();
        for (lo, hi) in parts {
            if cut.hi < lo || cut.lo > hi {
                next.push((lo, hi));
                continue;
            }
            if cut.lo > lo {
                next.push((lo, cut.lo - 1));
            }
            if cut.hi < hi {
                next.push((cut.hi + 1, hi));
            }
        }
        parts = next;
    }
    parts
}

fn port_range(text: &str) -> Option<PortRange> {
    let range = match text.split_once('-') {
        Some((lo, hi)) => PortRange {
            lo: lo.parse().ok()?,
            hi: hi.parse().ok()?,
        },
        None => PortRange::single(text.parse().ok()?),
    };
    (range.lo <= range.hi).then_some(range)
}

/// kubectl's (and oc's) flags that take a value, long and short; any
/// other flag is taken to be a switch.
const KUBECTL_VALUE_FLAGS: &[&str] = &[
    "address",
    "as",
    "as-group",
    "as-uid",
    "cache-dir",
    "certificate-authority",
    "client-certificate",
    "client-key",
    "cluster",
    "context",
    "kubeconfig",
    "log-dir",
    "log-file",
    "log-file-max-size",
    "n",
    "namespace",
    "password",
    "pod-running-timeout",
    "profile",
    "profile-output",
    "request-timeout",
    "s",
    "server",
    "stderrthreshold",
    "tls-server-name",
    "token",
    "user",
    "username",
    "v",
    "vmodule",
];

fn kubectl(args: &[String]) -> Option<Proxy> {
    let mut positional: Vec<&str> = Vec::new();
    let mut flags: Vec<(&str, &str)> = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let arg = args[i].as_str();
        if arg == "--" {
            positional.extend(args[i + 1..].iter().map(String::as_str));
            break;
        }
        let flag = if let Some(long) = arg.strip_prefix("--") {
            Some(match long.split_once('=') {
                Some((name, value)) => (name, Some(value)),
                None => (long, None),
            })
        } else if let Some(short) = arg.strip_prefix('-').filter(|s| !s.is_empty()) {
            let (name, value) = split_first_char(short);
            Some((
                name,
                (!value.is_empty()).then(|| value.trim_start_matches('=')),
            ))
        } else {
            None
        };
        match flag {
            Some((name, value)) => {
                if KUBECTL_VALUE_FLAGS.contains(&name) {
                    let value = match value {
                        Some(value) => Some(value),
                        None => {
                            i += 1;
                            args.get(i).map(String::as_str)
                        }
                    };
                    if let Some(value) = value {
                        flags.push((name, value));
                    }
                }
            }
            None => positional.push(arg),
        }
        i += 1;
    }
    let [command, resource, ports @ ..] = positional.as_slice() else {
        return None;
    };
    if *command != "port-forward" {
        return None;
    }
    let namespace = flags
        .iter()
        .rev()
        .find(|(n, _)| *n == "n" || *n == "namespace")
        .map(|(_, v)| v.to_string());
    // The default address is localhost: 127.0.0.1 and ::1.
    let mut addresses: Vec<IpAddr> = Vec::new();
    let mut unsaid = Vec::new();
    let address_list = flags
        .iter()
        .filter(|(n, _)| *n == "address")
        .map(|(_, v)| *v)
        .collect::<Vec<_>>();
    let address_list = if address_list.is_empty() {
        vec!["localhost"]
    } else {
        address_list
    };
    for list in address_list {
        for address in list.split(',') {
            match address {
                "localhost" => addresses.extend([
                    IpAddr::V4(Ipv4Addr::LOCALHOST),
                    IpAddr::V6(Ipv6Addr::LOCALHOST),
                ]),
                other => match other.parse() {
                    Ok(address) => addresses.push(address),
                    Err(_) => unsaid.push(format!("the address {other:?}")),
                },
            }
        }
    }
    let mut forwards = Vec::new();
    for spec in ports {
        let (local, remote) = spec.split_once(':').unwrap_or((spec, spec));
        if local.is_empty() {
            unsaid.push(format!(
                "the local port of {spec:?}, which kubectl picks at run time"
            ));
            continue;
        }
        let Ok(port) = local.parse::<u16>() else {
            unsaid.push(format!("the port specification {spec:?}"));
            continue;
        };
        for address in &addresses {
            forwards.push(ProxyForward {
                protocol: Some(Protocol::Tcp),
                host_address: Some(*address),
                host_ports: PortRange::single(port),
                target: ProxyTarget::Kubernetes {
                    namespace: namespace.clone(),
                    resource: resource.to_string(),
                    port: remote.to_string(),
                },
            });
        }
    }
    Some(Proxy {
        kind: ProxyKind::KubectlPortForward,
        forwards,
        unsaid: (!unsaid.is_empty()).then(|| format!("not read: {}", unsaid.join(", "))),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmdline(args: &[&str]) -> Vec<u8> {
        let mut out = Vec::new();
        for arg in args {
            out.extend_from_slice(arg.as_bytes());
            out.push(0);
        }
        out
    }

    #[test]
    fn docker_proxy_as_dockerd_starts_it() {
        let proxy = recognize(&cmdline(&[
            "/usr/bin/docker-proxy",
            "-proto",
            "tcp",
            "-host-ip",
            "0.0.0.0",
            "-host-port",
            "8080",
            "-container-ip",
            "172.17.0.2",
            "-container-port",
            "80",
        ]))
        .unwrap();
        assert_eq!(proxy.kind, ProxyKind::DockerProxy);
        assert_eq!(proxy.unsaid, None);
        assert_eq!(
            proxy.forwards,
            [ProxyForward {
                protocol: Some(Protocol::Tcp),
                host_address: Some("0.0.0.0".parse().unwrap()),
                host_ports: PortRange::single(8080),
                target: ProxyTarget::Address {
                    address: "172.17.0.2".parse().unwrap(),
                    port: 80
                },
            }]
        );
        assert_eq!(proxy.forwards[0].target.to_string(), "172.17.0.2:80");
    }

    #[test]
    fn docker_proxy_given_its_listener_over_ipv6_and_udp() {
        // Docker 28: dockerd opens the socket and passes it as fd 4.
        let proxy = recognize(&cmdline(&[
            "/usr/libexec/docker/docker-proxy",
            "-proto",
            "udp",
            "-host-ip",
            "::",
            "-host-port",
            "5353",
            "-container-ip=fd00:dead::2",
            "--container-port=53",
            "-use-listen-fd",
        ]))
        .unwrap();
        let forward = &proxy.forwards[0];
        assert_eq!(forward.protocol, Some(Protocol::Udp));
        assert_eq!(forward.host_address, Some("::".parse().unwrap()));
        assert_eq!(forward.target.to_string(), "[fd00:dead::2]:53");
    }

    #[test]
    fn a_docker_proxy_without_its_flags_is_named_and_says_what_is_missing() {
        let proxy = recognize(&cmdline(&["docker-proxy", "-v"])).unwrap();
        assert!(proxy.forwards.is_empty());
        assert!(proxy.unsaid.unwrap().contains("host port"));
    }

    #[test]
    fn pasta_as_podman_starts_it() {
        let proxy = recognize(&cmdline(&[
            "/usr/bin/pasta",
            "--config-net",
            "-t",
            "8080-8081:80-81",
            "-u",
            "127.0.0.1/5353:53",
            "--dns-forward",
            "169.254.1.1",
            "-T",
            "none",
            "-U",
            "none",
            "--no-map-gw",
            "--quiet",
            "--netns",
            "/run/user/1000/netns/netns-4b1c",
        ]))
        .unwrap();
        assert_eq!(proxy.kind, ProxyKind::Pasta);
        assert_eq!(proxy.unsaid, None);
        let netns = Some("/run/user/1000/netns/netns-4b1c".to_string());
        assert_eq!(
            proxy.forwards,
            [
                ProxyForward {
                    protocol: Some(Protocol::Tcp),
                    host_address: None,
                    host_ports: PortRange { lo: 8080, hi: 8081 },
                    target: ProxyTarget::Namespace {
                        netns: netns.clone(),
                        ports: PortRange { lo: 80, hi: 81 }
                    },
                },
                ProxyForward {
                    protocol: Some(Protocol::Udp),
                    host_address: Some("127.0.0.1".parse().unwrap()),
                    host_ports: PortRange::single(5353),
                    target: ProxyTarget::Namespace {
                        netns,
                        ports: PortRange::single(53)
                    },
                },
            ]
        );
    }

    #[test]
    fn pasta_exclusions_attached_values_and_auto() {
        let proxy = recognize(&cmdline(&[
            "pasta.avx2",
            "-t9000-9010,~9005",
            "--udp-ports=auto",
            "1234",
        ]))
        .unwrap();
        let ports: Vec<PortRange> = proxy.forwards.iter().map(|f| f.host_ports).collect();
        assert_eq!(
            ports,
            [
                PortRange { lo: 9000, hi: 9004 },
                PortRange { lo: 9006, hi: 9010 }
            ]
        );
        assert!(matches!(
            &proxy.forwards[1].target,
            ProxyTarget::Namespace { ports, .. } if *ports == PortRange { lo: 9006, hi: 9010 }
        ));
        assert!(proxy.unsaid.unwrap().contains("(auto)"));
    }

    #[test]
    fn kubectl_port_forward_with_namespace_and_addresses() {
        let proxy = recognize(&cmdline(&[
            "kubectl",
            "--context",
            "prod",
            "-n",
            "shop",
            "port-forward",
            "svc/web",
            "8080:80",
            ":9090",
            "--address=0.0.0.0",
        ]))
        .unwrap();
        assert_eq!(proxy.kind, ProxyKind::KubectlPortForward);
        assert_eq!(
            proxy.forwards,
            [ProxyForward {
                protocol: Some(Protocol::Tcp),
                host_address: Some("0.0.0.0".parse().unwrap()),
                host_ports: PortRange::single(8080),
                target: ProxyTarget::Kubernetes {
                    namespace: Some("shop".into()),
                    resource: "svc/web".into(),
                    port: "80".into()
                },
            }]
        );
        assert!(proxy.unsaid.unwrap().contains(":9090"));
        assert_eq!(
            proxy.forwards[0].target.to_string(),
            "svc/web port 80 (namespace shop)"
        );
    }

    #[test]
    fn kubectl_port_forward_listens_on_both_loopbacks_by_default() {
        let proxy = recognize(&cmdline(&[
            "/usr/local/bin/kubectl",
            "port-forward",
            "mypod",
            "5432",
        ]))
        .unwrap();
        let addresses: Vec<Option<IpAddr>> =
            proxy.forwards.iter().map(|f| f.host_address).collect();
        assert_eq!(
            addresses,
            [
                Some("127.0.0.1".parse().unwrap()),
                Some("::1".parse().unwrap())
            ]
        );
        assert!(
            matches!(&proxy.forwards[0].target, ProxyTarget::Kubernetes { namespace: None, port, .. } if port == "5432")
        );
    }

    #[test]
    fn proxies_whose_ports_are_not_on_the_command_line_say_so() {
        for program in ["rootlessport", "/usr/bin/slirp4netns"] {
            let proxy = recognize(&cmdline(&[program, "--mtu=65520", "tap0"])).unwrap();
            assert!(proxy.forwards.is_empty());
            assert!(proxy.unsaid.is_some(), "{program}");
        }
    }

    #[test]
    fn options_that_are_not_utf8_are_not_a_panic() {
        // Found by the fuzzer: an option whose first byte is not UTF-8.
        for (program, kind) in [
            ("pasta", ProxyKind::Pasta),
            ("kubectl", ProxyKind::KubectlPortForward),
        ] {
            let mut line = cmdline(&[program, "port-forward", "pod/x"]);
            line.extend_from_slice(b"-\xff\xfe8080\0-\xc3\xa98\0");
            assert_eq!(recognize(&line).map(|p| p.kind), Some(kind));
        }
    }

    #[test]
    fn other_programs_are_not_proxies() {
        assert_eq!(recognize(&cmdline(&["nginx", "-g", "daemon off;"])), None);
        assert_eq!(recognize(&cmdline(&["kubectl", "get", "pods"])), None);
        assert_eq!(recognize(b""), None);
        assert_eq!(
            recognize(&cmdline(&["/opt/docker-proxy.sh", "-host-port", "1"])),
            None
        );
    }
}
