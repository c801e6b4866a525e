//! What a port is: its IANA range, and where it stands against the
//! kernel's ephemeral range, reserved ports and privileged ports of the
//! network namespace probed.

use crate::services::{Service, Services};
use crate::socket::PortRange;
use crate::sys::ProcRoot;

/// The kernel's default `ip_local_port_range` (since Linux 2.6.x).
pub const DEFAULT_EPHEMERAL: PortRange = PortRange {
    lo: 32768,
    hi: 60999,
};
/// The kernel's default `ip_unprivileged_port_start`.
pub const DEFAULT_UNPRIVILEGED_START: u32 = 1024;

/// IANA's three ranges (RFC 6335, section 6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IanaRange {
    /// Ports 0-1023, assigned by IANA through IETF review.
    System,
    /// Ports 1024-49151, registered with IANA on request.
    User,
    /// Ports 49152-65535, never registered: free for private and
    /// temporary use.
    Dynamic,
}

impl IanaRange {
    /// The range the port falls in.
    pub fn of(port: u16) -> IanaRange {
        [IanaRange::System, IanaRange::User]
            .into_iter()
            .find(|range| port <= range.bounds().1)
            .unwrap_or(IanaRange::Dynamic)
    }

    /// The range's first and last port.
    pub fn bounds(self) -> (u16, u16) {
        match self {
            IanaRange::System => (0, 1023),
            IanaRange::User => (1024, 49151),
            IanaRange::Dynamic => (49152, 65535),
        }
    }

    /// The range's name as JSON output gives it: `system`, `user` or
    /// `dynamic`.
    pub fn name(self) -> &'static str {
        match self {
            IanaRange::System => "system",
            IanaRange::User => "user",
            IanaRange::Dynamic => "dynamic",
        }
    }

    /// The range in words with its bounds, as the table output prints
    /// it, e.g. "user port (1024-49151)".
    pub fn describe(self) -> &'static str {
        match self {
            IanaRange::System => "system port (0-1023)",
            IanaRange::User => "user port (1024-49151)",
            IanaRange::Dynamic => "dynamic/private port (49152-65535)",
        }
    }
}

/// A value read from /proc/sys, or the kernel default when it could not
/// be read (and then marked as assumed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting<T> {
    /// The value read, or the kernel default when `assumed`.
    pub value: T,
    /// True when the file could not be read or parsed and `value` is
    /// the kernel default, which the namespace may not use.
    pub assumed: bool,
}

/// Where the port settings of a namespace were read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SettingsSource {
    /// `sys/net/ipv4` of the /proc lsport was given.
    Proc,
    /// A proc instance of lsport's own, as the /proc it was given has no
    /// `sys/` (mounted `subset=pid`); see `private_proc`.
    PrivateProc,
    /// Nowhere: every setting is assumed.
    Nowhere,
}

impl SettingsSource {
    /// The stable name in JSON output: `proc`, `private_proc`, or null
    /// for nowhere.
    pub fn id(self) -> Option<&'static str> {
        match self {
            SettingsSource::Proc => Some("proc"),
            SettingsSource::PrivateProc => Some("private_proc"),
            SettingsSource::Nowhere => None,
        }
    }
}

/// The three sysctls of the port policy, under `sys/net/ipv4`.
const SYSCTLS: [&str; 3] = [
    "ip_local_port_range",
    "ip_local_reserved_ports",
    "ip_unprivileged_port_start",
];

/// The port policy of one network namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelPortPolicy {
    /// `ip_local_port_range`: the ports the kernel picks from for
    /// outgoing connections and for binds to port 0.
    pub ephemeral: Setting<PortRange>,
    /// `ip_local_reserved_ports`: ports the kernel never picks on its own
    /// (an explicit bind still gets them); empty when none.
    pub reserved: Setting<Vec<PortRange>>,
    /// `ip_unprivileged_port_start`: the first port a process without
    /// CAP_NET_BIND_SERVICE may bind.
    ///
    /// 0..=65536 in the kernel; kept wide so 65536 ("none privileged"
    /// is 0, "all privileged" is 65536) fits.
    pub unprivileged_start: Setting<u32>,
    /// Where the settings not assumed were read.
    pub read_from: SettingsSource,
}

impl KernelPortPolicy {
    /// A policy with known values, none assumed (for tests).
    #[cfg(test)]
    pub fn known(ephemeral: PortRange, reserved: Vec<PortRange>, unprivileged_start: u32) -> Self {
        KernelPortPolicy {
            ephemeral: Setting {
                value: ephemeral,
                assumed: false,
            },
            reserved: Setting {
                value: reserved,
                assumed: false,
            },
            unprivileged_start: Setting {
                value: unprivileged_start,
                assumed: false,
            },
            read_from: SettingsSource::Proc,
        }
    }

    /// The kernel's defaults, known (not assumed): for unit tests.
    #[cfg(test)]
    pub(crate) fn kernel_defaults() -> Self {
        Self::known(DEFAULT_EPHEMERAL, Vec::new(), DEFAULT_UNPRIVILEGED_START)
    }

    /// Reads the three sysctls under `sys/net/ipv4` of `root`, as the
    /// calling thread's network namespace has them. Where `root` is a
    /// procfs that cannot give them (mounted `subset=pid`), they are read
    /// from a proc instance of lsport's own. A setting read nowhere is the
    /// kernel default, marked assumed.
    pub fn read(root: &ProcRoot) -> KernelPortPolicy {
        let from_root = |name: &str| root.read_to_string(&format!("sys/net/ipv4/{name}")).ok();
        let policy = Self::from_texts(SYSCTLS.map(from_root), SettingsSource::Proc);
        if !policy.any_assumed() || !crate::files::is_procfs(root.base()) {
            return policy;
        }
        match crate::private_proc::PrivateProc::open() {
            Some(private) => {
                let from_private = |name: &str| private.read(&format!("sys/net/ipv4/{name}"));
                let again =
                    Self::from_texts(SYSCTLS.map(from_private), SettingsSource::PrivateProc);
                if again.read_count() > policy.read_count() {
                    again
                } else {
                    policy
                }
            }
            None => policy,
        }
    }

    /// The policy from the three sysctls' texts (None: unreadable), read
    /// from `source`.
    fn from_texts(texts: [Option<String>; 3], source: SettingsSource) -> KernelPortPolicy {
        fn setting<T>(text: Option<&str>, parse: fn(&str) -> Option<T>, default: T) -> Setting<T> {
            match text.and_then(parse) {
                Some(value) => Setting {
                    value,
                    assumed: false,
                },
                None => Setting {
                    value: default,
                    assumed: true,
                },
            }
        }
        let [range, reserved, unprivileged] = texts;
        let mut policy = KernelPortPolicy {
            ephemeral: setting(range.as_deref(), parse_port_range_sysctl, DEFAULT_EPHEMERAL),
            reserved: setting(reserved.as_deref(), parse_reserved_ports, Vec::new()),
            unprivileged_start: setting(
                unprivileged.as_deref(),
                |text| text.trim().parse().ok(),
                DEFAULT_UNPRIVILEGED_START,
            ),
            read_from: source,
        };
        if policy.read_count() == 0 {
            policy.read_from = SettingsSource::Nowhere;
        }
        policy
    }

    /// How many of the three settings were read.
    fn read_count(&self) -> usize {
        [
            self.ephemeral.assumed,
            self.reserved.assumed,
            self.unprivileged_start.assumed,
        ]
        .iter()
        .filter(|assumed| !**assumed)
        .count()
    }

    /// Whether some setting could not be read and is the kernel default.
    pub fn any_assumed(&self) -> bool {
        self.read_count() < 3
    }

    /// True when the port lies in the ephemeral range (reserved or not).
    pub fn is_ephemeral(&self, port: u16) -> bool {
        self.ephemeral.value.contains(port)
    }

    /// True when the port is in `ip_local_reserved_ports`.
    pub fn is_reserved(&self, port: u16) -> bool {
        self.reserved.value.iter().any(|range| range.contains(port))
    }

    /// True when binding the port takes CAP_NET_BIND_SERVICE: it lies
    /// below `ip_unprivileged_port_start`.
    pub fn is_privileged(&self, port: u16) -> bool {
        u32::from(port) < self.unprivileged_start.value
    }

    /// True when an outgoing connection may be given this port.
    pub fn may_be_taken_by_outgoing(&self, port: u16) -> bool {
        self.is_ephemeral(port) && !self.is_reserved(port)
    }
}

/// `ip_local_port_range` holds two numbers separated by whitespace.
pub fn parse_port_range_sysctl(text: &str) -> Option<PortRange> {
    let mut numbers = text.split_whitespace().map(|n| n.parse::<u16>());
    let lo = numbers.next()?.ok()?;
    let hi = numbers.next()?.ok()?;
    if numbers.next().is_some() || lo > hi {
        return None;
    }
    Some(PortRange { lo, hi })
}

/// `ip_local_reserved_ports` is a comma-separated list of ports and
/// ranges, e.g. `8080,9000-9100`; empty when nothing is reserved.
pub fn parse_reserved_ports(text: &str) -> Option<Vec<PortRange>> {
    let text = text.trim();
    if text.is_empty() {
        return Some(Vec::new());
    }
    text.split(',')
        .map(|item| {
            let item = item.trim();
            match item.split_once('-') {
                Some((lo, hi)) => {
                    let range = PortRange {
                        lo: lo.parse().ok()?,
                        hi: hi.parse().ok()?,
                    };
                    (range.lo <= range.hi).then_some(range)
                }
                None => item.parse().ok().map(PortRange::single),
            }
        })
        .collect()
}

/// Everything lsport says about what one port is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortFacts {
    /// The port these facts are about.
    pub port: u16,
    /// IANA's range the port falls in.
    pub iana_range: IanaRange,
    /// The port lies in the namespace's ephemeral range.
    pub ephemeral: bool,
    /// The port is in the namespace's `ip_local_reserved_ports`.
    pub reserved: bool,
    /// Binding the port takes CAP_NET_BIND_SERVICE in the namespace.
    pub privileged: bool,
    /// What is registered on it: IANA's rows, then local names.
    pub services: Vec<Service>,
}

impl PortFacts {
    /// Joins the port's IANA range, where it stands against `policy`, and
    /// what `services` registers on it.
    pub fn of(port: u16, policy: &KernelPortPolicy, services: &Services) -> PortFacts {
        PortFacts {
            port,
            iana_range: IanaRange::of(port),
            ephemeral: policy.is_ephemeral(port),
            reserved: policy.is_reserved(port),
            privileged: policy.is_privileged(port),
            services: services.on_port(port),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_port_range_sysctl() {
        assert_eq!(
            parse_port_range_sysctl("32768\t60999\n"),
            Some(PortRange {
                lo: 32768,
                hi: 60999
            })
        );
        assert_eq!(
            parse_port_range_sysctl("40000 40099"),
            Some(PortRange {
                lo: 40000,
                hi: 40099
            })
        );
        assert_eq!(parse_port_range_sysctl("5 4"), None);
        assert_eq!(parse_port_range_sysctl("1"), None);
        assert_eq!(parse_port_range_sysctl("1 2 3"), None);
        assert_eq!(parse_port_range_sysctl("x y"), None);
    }

    #[test]
    fn parses_the_reserved_ports_list() {
        assert_eq!(parse_reserved_ports("\n"), Some(vec![]));
        assert_eq!(
            parse_reserved_ports("8080,9000-9100\n"),
            Some(vec![
                PortRange::single(8080),
                PortRange { lo: 9000, hi: 9100 }
            ])
        );
        assert_eq!(parse_reserved_ports("8080,x"), None);
        assert_eq!(parse_reserved_ports("9-8"), None);
    }

    #[test]
    fn iana_ranges_have_their_published_bounds() {
        assert_eq!(IanaRange::of(0), IanaRange::System);
        assert_eq!(IanaRange::of(1023), IanaRange::System);
        assert_eq!(IanaRange::of(1024), IanaRange::User);
        assert_eq!(IanaRange::of(49151), IanaRange::User);
        assert_eq!(IanaRange::of(49152), IanaRange::Dynamic);
        assert_eq!(IanaRange::of(65535), IanaRange::Dynamic);
    }

    #[test]
    fn a_setting_that_cannot_be_read_is_the_default_and_marked_assumed() {
        let text = |t: &str| Some(t.to_string());
        let policy = KernelPortPolicy::from_texts(
            [text("40000 40999\n"), None, text("80\n")],
            SettingsSource::Proc,
        );
        assert_eq!(
            policy.ephemeral.value,
            PortRange {
                lo: 40000,
                hi: 40999
            }
        );
        assert!(!policy.ephemeral.assumed && !policy.unprivileged_start.assumed);
        assert_eq!(policy.unprivileged_start.value, 80);
        assert!(policy.reserved.assumed && policy.reserved.value.is_empty());
        assert!(policy.any_assumed());
        assert_eq!(policy.read_from, SettingsSource::Proc);
        let none = KernelPortPolicy::from_texts([None, text("x"), None], SettingsSource::Proc);
        assert_eq!(none.read_from, SettingsSource::Nowhere);
        assert_eq!(none.unprivileged_start.value, DEFAULT_UNPRIVILEGED_START);
        assert!(none.ephemeral.assumed && none.reserved.assumed && none.unprivileged_start.assumed);
    }

    #[test]
    fn facts_follow_the_policy_with_inclusive_ends() {
        let policy = KernelPortPolicy::known(
            PortRange {
                lo: 40000,
                hi: 40099,
            },
            vec![PortRange::single(40050)],
            1024,
        );
        assert!(policy.may_be_taken_by_outgoing(40000));
        assert!(policy.may_be_taken_by_outgoing(40099));
        assert!(!policy.may_be_taken_by_outgoing(40100));
        assert!(!policy.may_be_taken_by_outgoing(40050));
        assert!(policy.is_privileged(1023));
        assert!(!policy.is_privileged(1024));
    }
}
