//! Which container a process runs in, read from its cgroup path
//! (/proc/PID/cgroup). Container runtimes name the cgroups they create
//! after the container, each in its own format; this module knows those
//! formats and nothing else: functions over text, and one that reads the
//! cgroup files of a few processes.

use procfs::FromRead;
use procfs::ProcessCGroups;

use crate::sys::ProcRoot;

/// A container as far as its cgroup path tells.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Container {
    /// docker, containerd, cri-o, podman, lxc or systemd.
    pub runtime: &'static str,
    /// The container id (64 hex digits for OCI runtimes), the LXC
    /// container name, or the systemd unit.
    pub id: String,
    /// A human name where the path carries one (LXC, systemd units).
    pub name: Option<String>,
    /// The Kubernetes pod uid, with dashes, when the container is a pod's.
    pub pod_uid: Option<String>,
}

/// The container of a process, from the whole text of /proc/PID/cgroup
/// (parsed by procfs). The unified (cgroup v2) line `0::PATH` is
/// preferred; on cgroup v1 the first line that names a container wins.
pub fn from_proc_cgroup(text: &str) -> Option<Container> {
    let groups = ProcessCGroups::from_read(text.as_bytes()).ok()?;
    let mut paths: Vec<&str> = Vec::new();
    for group in &groups {
        if group.hierarchy == 0 {
            paths.insert(0, &group.pathname);
        } else {
            paths.push(&group.pathname);
        }
    }
    paths.into_iter().find_map(from_path)
}

/// The container named by one cgroup path.
pub fn from_path(path: &str) -> Option<Container> {
    let pod_uid = path.split('/').find_map(pod_uid_of);
    // The innermost component that names a container decides.
    let components: Vec<&str> = path.split('/').filter(|c| !c.is_empty()).collect();
    for (index, component) in components.iter().enumerate().rev() {
        if let Some(mut container) =
            from_component(component, components.get(index.wrapping_sub(1)).copied())
        {
            if container.pod_uid.is_none() {
                container.pod_uid = pod_uid.clone();
            }
            return Some(container);
        }
    }
    // systemd: the innermost service unit, e.g. system.slice/nginx.service.
    components
        .iter()
        .rev()
        .find(|c| c.ends_with(".service"))
        .map(|unit| Container {
            runtime: "systemd",
            id: unit.to_string(),
            name: Some(unit.trim_end_matches(".service").to_string()),
            pod_uid: None,
        })
}

fn from_component(component: &str, parent: Option<&str>) -> Option<Container> {
    let oci = |runtime: &'static str, id: &str| {
        is_container_id(id).then(|| Container {
            runtime,
            id: id.to_string(),
            name: None,
            pod_uid: None,
        })
    };
    // systemd cgroup driver: PREFIX-ID.scope
    if let Some(stem) = component.strip_suffix(".scope") {
        for (prefix, runtime) in [
            ("docker-", "docker"),
            ("cri-containerd-", "containerd"),
            ("crio-", "cri-o"),
            ("libpod-", "podman"),
        ] {
            if let Some(id) = stem.strip_prefix(prefix) {
                return oci(runtime, id);
            }
        }
    }
    // containerd's CRI plugin with the systemd driver, as seen from
    // cgroup v1 controllers: SLICE:cri-containerd:ID
    if let Some((_, id)) = component.split_once(":cri-containerd:") {
        return oci("containerd", id);
    }
    // cgroupfs driver: /docker/ID, /libpod_parent/libpod-ID, and under
    // /kubepods/.../podUID/ID the bare id (runtime unknown from the path).
    match parent {
        Some("docker") => return oci("docker", component),
        Some("libpod_parent") => {
            return component
                .strip_prefix("libpod-")
                .and_then(|id| oci("podman", id));
        }
        Some(p) if pod_uid_of(p).is_some() => return oci("kubernetes", component),
        _ => {}
    }
    // LXC: lxc.payload.NAME (LXC 4 and later, and LXD), or /lxc/NAME.
    let lxc_name = component.strip_prefix("lxc.payload.").or(match parent {
        Some("lxc") => Some(component),
        _ => None,
    });
    lxc_name.filter(|n| !n.is_empty()).map(|name| Container {
        runtime: "lxc",
        id: name.to_string(),
        name: Some(name.to_string()),
        pod_uid: None,
    })
}

/// OCI runtimes name containers by 64 lowercase hex digits.
fn is_container_id(text: &str) -> bool {
    text.len() == 64
        && text
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

/// `pod<UID>` (cgroupfs) or `kubepods-<qos>-pod<UID>.slice` (systemd,
/// with the uid's dashes written as underscores).
fn pod_uid_of(component: &str) -> Option<String> {
    // containerd's "SLICE:cri-containerd:ID" form names the pod's slice first.
    let component = component.split(':').next().unwrap_or(component);
    let stem = component.strip_suffix(".slice").unwrap_or(component);
    let start = stem.rfind("pod")?;
    let before = &stem[..start];
    if !(before.is_empty() || before.ends_with('-')) {
        return None;
    }
    let uid = stem[start + 3..].replace('_', "-");
    let looks_like_uid = uid.len() == 36 && uid.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-');
    // Static pods use a 32-hex-digit hash of their manifest instead.
    let looks_like_hash = uid.len() == 32 && uid.bytes().all(|b| b.is_ascii_hexdigit());
    (looks_like_uid || looks_like_hash).then_some(uid)
}

/// The container a namespace's processes belong to, from the first few
/// of them whose cgroup names one.
pub(crate) fn of_processes(root: &ProcRoot, pids: &[u32]) -> Option<Container> {
    pids.iter().take(16).find_map(|pid| {
        let path = root.path(&format!("{pid}/cgroup"));
        let bytes = crate::files::read_at_most(&path, 64 << 10).ok()?;
        let text = String::from_utf8_lossy(&bytes);
        from_proc_cgroup(&text)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(
        runtime: &'static str,
        id: &str,
        name: Option<&str>,
        pod: Option<&str>,
    ) -> Option<Container> {
        Some(Container {
            runtime,
            id: id.to_string(),
            name: name.map(str::to_string),
            pod_uid: pod.map(str::to_string),
        })
    }

    // The paths below are real ones, quoted from public bug reports and
    // documentation (cited per case); only the formats matter here.

    #[test]
    fn docker_with_the_systemd_driver_under_kubernetes() {
        // lxc/lxc issue 3890 (/proc/self/cgroup of a Kubernetes pod on Docker).
        let path = "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod7d4424e6_bb13_42f4_a47a_45a4828bf54d.slice/docker-d0b3604b67ac7930dd34ba3a796627e3e4717d12309e90a4afe3f38b6816ac98.scope";
        assert_eq!(
            from_path(path),
            c(
                "docker",
                "d0b3604b67ac7930dd34ba3a796627e3e4717d12309e90a4afe3f38b6816ac98",
                None,
                Some("7d4424e6-bb13-42f4-a47a-45a4828bf54d")
            )
        );
    }

    #[test]
    fn docker_with_the_systemd_driver_alone() {
        // moby/moby pull request 4450 (systemd-cgls output of Docker's scopes).
        let text = "0::/system.slice/docker-e160a6955208fa7edabb1694762b0757adc64425f7d1c5a86fb0b1c3676a04bb.scope\n";
        assert_eq!(
            from_proc_cgroup(text),
            c(
                "docker",
                "e160a6955208fa7edabb1694762b0757adc64425f7d1c5a86fb0b1c3676a04bb",
                None,
                None
            )
        );
    }

    #[test]
    fn docker_with_the_cgroupfs_driver() {
        // Docker's runtime metrics documentation: /sys/fs/cgroup/memory/docker/<longid>/.
        let id = "ae836c95b4c3c9e9179e0e91015512da89fdec91612f63cebae57df9a5444c79";
        assert_eq!(
            from_path(&format!("/docker/{id}")),
            c("docker", id, None, None)
        );
    }

    #[test]
    fn containerd_under_kubernetes() {
        // netdata/netdata issue 4868 (cgroup tree of a containerd node).
        let path = "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod55c6c714_b240_4dec_9a45_57b61696ab6e.slice/cri-containerd-2032491dcae31e6746f47daa0ac74564f2843a1bd847c5e6c4eb501ca132ac36.scope";
        assert_eq!(
            from_path(path),
            c(
                "containerd",
                "2032491dcae31e6746f47daa0ac74564f2843a1bd847c5e6c4eb501ca132ac36",
                None,
                Some("55c6c714-b240-4dec-9a45-57b61696ab6e")
            )
        );
        // A static pod, named by its manifest hash.
        let path = "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod8daa50c3a64c9ff60bb9eab7b44b56fd.slice/cri-containerd-2884d57c0e100d7a9a2f9487ce0bc2986bca3430e988af7a4865aff061f51ac5.scope";
        assert_eq!(
            from_path(path).unwrap().pod_uid.as_deref(),
            Some("8daa50c3a64c9ff60bb9eab7b44b56fd")
        );
    }

    #[test]
    fn containerd_as_seen_on_cgroup_v1_controllers() {
        // open-telemetry/opentelemetry-java issue 4507 (/proc/self/cgroup in a pod).
        let text = "11:perf_event:/kubepods-besteffort-pod0125ec2f_b64a_4868_8f5b_94b56cbab864.slice:cri-containerd:ee4b20e90ac7f42a10bd004d05646b13d8ab5e2c5e7cbc01abf8006bac016459\n";
        assert_eq!(
            from_proc_cgroup(text),
            c(
                "containerd",
                "ee4b20e90ac7f42a10bd004d05646b13d8ab5e2c5e7cbc01abf8006bac016459",
                None,
                Some("0125ec2f-b64a-4868-8f5b-94b56cbab864")
            )
        );
    }

    #[test]
    fn cri_o_under_kubernetes() {
        // opencontainers/runc issue 4620 (cat /proc/PID/cgroup on a CRI-O node).
        let text = "13:freezer:/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-poda5c1f8d5_1919_434d_add7_4afaafdaef89.slice/crio-5eed917563583925ffdbd40a64efb2aaffe58638e57add8becaf460fe74f5b1c.scope\n11:files:/\n";
        assert_eq!(
            from_proc_cgroup(text),
            c(
                "cri-o",
                "5eed917563583925ffdbd40a64efb2aaffe58638e57add8becaf460fe74f5b1c",
                None,
                Some("a5c1f8d5-1919-434d-add7-4afaafdaef89")
            )
        );
    }

    #[test]
    fn podman() {
        // containers/podman issue 10602 (/proc/PID/cgroup of a systemd container).
        let text = "1:name=systemd:/machine.slice/libpod-2521e906f0a0c758c3a7dc4fd68c197e32e96abb4b36807d0b0ede6d014a7c24.scope/init.scope\n0::/machine.slice/libpod-2521e906f0a0c758c3a7dc4fd68c197e32e96abb4b36807d0b0ede6d014a7c24.scope\n";
        assert_eq!(
            from_proc_cgroup(text),
            c(
                "podman",
                "2521e906f0a0c758c3a7dc4fd68c197e32e96abb4b36807d0b0ede6d014a7c24",
                None,
                None
            )
        );
        // Rootless podman nests the container below the user's manager.
        let path = "/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-2521e906f0a0c758c3a7dc4fd68c197e32e96abb4b36807d0b0ede6d014a7c24.scope/container";
        assert_eq!(from_path(path).unwrap().runtime, "podman");
    }

    #[test]
    fn lxc_both_layouts() {
        // LXC 4.0 moved containers to lxc.payload.NAME; older LXC used /lxc/NAME.
        assert_eq!(
            from_path("/lxc.payload.web01"),
            c("lxc", "web01", Some("web01"), None)
        );
        assert_eq!(
            from_path("/lxc.payload.web01/system.slice/nginx.service"),
            c("lxc", "web01", Some("web01"), None)
        );
        assert_eq!(from_path("/lxc/db"), c("lxc", "db", Some("db"), None));
    }

    #[test]
    fn systemd_services() {
        assert_eq!(
            from_path("/system.slice/nginx.service"),
            c("systemd", "nginx.service", Some("nginx"), None)
        );
        assert_eq!(
            from_proc_cgroup("0::/system.slice/system-getty.slice/getty@tty1.service\n"),
            c("systemd", "getty@tty1.service", Some("getty@tty1"), None)
        );
    }

    #[test]
    fn ordinary_processes_are_in_no_container() {
        assert_eq!(from_proc_cgroup("0::/\n"), None);
        assert_eq!(
            from_proc_cgroup("0::/user.slice/user-1000.slice/session-3.scope\n"),
            None
        );
        assert_eq!(from_path("/docker/not-an-id"), None);
        assert_eq!(from_proc_cgroup("garbage"), None);
    }
}
