//! systemd socket units: a listener created in a `.socket` unit's cgroup
//! is the unit's (systemd creates it there, then holds it in pid 1 and
//! passes it to the service it starts). This reads which service a
//! socket unit starts, from its unit file where one is readable.

use std::path::Path;

/// Where systemd looks for unit files, highest priority first.
const UNIT_DIRS: [&str; 5] = [
    "/etc/systemd/system",
    "/run/systemd/system",
    "/usr/local/lib/systemd/system",
    "/usr/lib/systemd/system",
    "/lib/systemd/system",
];

/// Whether `unit` names a socket unit (`ssh.socket`).
pub fn is_socket_unit(unit: &str) -> bool {
    unit.len() > ".socket".len() && unit.ends_with(".socket")
}

/// The service the socket unit `unit` starts, read from the first unit
/// file of that name in systemd's directories: its `Service=`, else
/// `NAME@.service` with `Accept=yes` (one instance per connection),
/// else `NAME.service`. None when no unit file could be read: lsport
/// does not guess.
pub fn activated_service(unit: &str) -> Option<String> {
    if !is_socket_unit(unit) || unit.contains('/') {
        return None;
    }
    UNIT_DIRS
        .iter()
        .find_map(|dir| crate::files::read_at_most(&Path::new(dir).join(unit), 64 << 10).ok())
        .map(|bytes| service_of(unit, &String::from_utf8_lossy(&bytes)))
}

/// The service a socket unit's file names, by systemd's rules.
fn service_of(unit: &str, text: &str) -> String {
    let stem = unit.trim_end_matches(".socket");
    let mut in_socket = false;
    let mut service = None;
    let mut accept = false;
    for line in text.lines().map(str::trim) {
        if line.starts_with('[') {
            in_socket = line == "[Socket]";
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        match (in_socket, key.trim()) {
            (true, "Service") => service = Some(value.trim().to_string()),
            (true, "Accept") => {
                accept = matches!(value.trim(), "yes" | "true" | "1" | "on");
            }
            _ => {}
        }
    }
    match (service, accept) {
        (Some(service), _) if !service.is_empty() => service,
        (_, true) => format!("{stem}@.service"),
        _ => format!("{stem}.service"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_socket_unit_starts_its_service_by_systemd_s_rules() {
        assert_eq!(
            service_of("ssh.socket", "[Socket]\nListenStream=22\n"),
            "ssh.service"
        );
        assert_eq!(
            service_of("ssh.socket", "[Socket]\nListenStream=22\nAccept=yes\n"),
            "ssh@.service"
        );
        assert_eq!(
            service_of(
                "web.socket",
                "[Unit]\nService=no\n[Socket]\nService=nginx.service\n"
            ),
            "nginx.service"
        );
        assert!(is_socket_unit("a.socket"));
        assert!(!is_socket_unit(".socket"));
        assert!(!is_socket_unit("a.service"));
    }
}
