//! Finding containers in a cgroup hierarchy and naming them.
//!
//! Kubernetes pods and containers are recognised from the cgroup path alone
//! for the systemd and cgroupfs drivers and for containerd, CRI-O and
//! Docker naming (see docs/ARCHITECTURE.md for the table); plain Docker and
//! podman containers outside Kubernetes too. A leaf cgroup that holds
//! processes but matches none of these is reported with runtime `unknown`
//! (its ID is its path), never dropped.

use std::io;
use std::path::Path;

/// Which runtime created a container's cgroup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Runtime {
    /// containerd (`cri-containerd-<id>.scope`, `…:cri-containerd:<id>`).
    Containerd,
    /// CRI-O (`crio-<id>.scope`).
    CriO,
    /// Docker or cri-dockerd (`docker-<id>.scope`, `docker/<id>`).
    Docker,
    /// podman (`libpod-<id>.scope`).
    Podman,
    /// A Kubernetes container under the cgroupfs driver, whose path does
    /// not name the runtime (`kubepods/<qos>/pod<uid>/<id>`).
    Cri,
    /// A cgroup with processes that matches no known layout.
    Unknown,
}

impl Runtime {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Runtime::Containerd => "containerd",
            Runtime::CriO => "cri-o",
            Runtime::Docker => "docker",
            Runtime::Podman => "podman",
            Runtime::Cri => "cri",
            Runtime::Unknown => "unknown",
        }
    }

    /// Every runtime, for rendering zero counts.
    pub const ALL: [Runtime; 6] = [
        Runtime::Containerd,
        Runtime::CriO,
        Runtime::Docker,
        Runtime::Podman,
        Runtime::Cri,
        Runtime::Unknown,
    ];
}

/// A container cgroup found by discovery.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DiscoveredCgroup {
    /// Path relative to the hierarchy root, `/`-separated, no leading `/`.
    pub relative: String,
    /// Runtime that created it.
    pub runtime: Runtime,
    /// 64-hex container ID, or the relative path for unknown cgroups.
    pub container_id: String,
    /// Pod UID with dashes, empty outside Kubernetes.
    pub pod_uid: String,
}

/// What a path is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Classification {
    /// A container.
    Container {
        /// Runtime.
        runtime: Runtime,
        /// 64-hex container ID.
        container_id: String,
        /// Pod UID, empty outside Kubernetes.
        pod_uid: String,
    },
    /// Known and not a container: a runtime's monitor (conmon) or the
    /// Kubernetes hierarchy above containers. Not reported.
    Structural,
    /// Nothing known.
    Unclassified,
}

fn is_container_id(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Pod UID from one path component, undoing systemd's `-` → `_` escaping.
fn pod_uid_of(component: &str) -> Option<String> {
    // systemd: kubepods-burstable-pod<uid_>.slice, kubepods-pod<uid_>.slice
    let component = component.split(':').next().unwrap_or(component);
    if let Some(rest) = component.strip_suffix(".slice") {
        let index = rest.rfind("-pod")?;
        if !rest.starts_with("kubepods") {
            return None;
        }
        let uid = rest[index + 4..].replace('_', "-");
        return valid_uid(&uid).then_some(uid);
    }
    // cgroupfs: pod<uid>
    let uid = component.strip_prefix("pod")?;
    valid_uid(uid).then(|| uid.to_owned())
}

fn valid_uid(uid: &str) -> bool {
    uid.len() == 36 && uid.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-')
}

/// Classifies a cgroup by its path relative to the hierarchy root.
pub fn classify(relative: &str) -> Classification {
    let components: Vec<&str> = relative.split('/').filter(|c| !c.is_empty()).collect();
    let Some(leaf) = components.last().copied() else {
        return Classification::Structural;
    };
    let pod_uid = components
        .iter()
        .rev()
        .find_map(|c| pod_uid_of(c))
        .unwrap_or_default();
    let in_kubepods = components.iter().any(|c| c.starts_with("kubepods"));
    let container = |runtime, id: &str| Classification::Container {
        runtime,
        container_id: id.to_owned(),
        pod_uid: pod_uid.clone(),
    };

    // containerd's v1 systemd quirk: `<pod slice>:cri-containerd:<id>`.
    let mut colon_parts = leaf.split(':');
    if let (Some(_slice), Some(kind), Some(id), None) = (
        colon_parts.next(),
        colon_parts.next(),
        colon_parts.next(),
        colon_parts.next(),
    ) && is_container_id(id)
    {
        let runtime = match kind {
            "cri-containerd" => Runtime::Containerd,
            "crio" => Runtime::CriO,
            "docker" => Runtime::Docker,
            _ => Runtime::Unknown,
        };
        return container(runtime, id);
    }

    let stem = leaf.strip_suffix(".scope").unwrap_or(leaf);
    if stem.starts_with("crio-conmon-") || stem.starts_with("libpod-conmon-") {
        return Classification::Structural;
    }
    for (prefix, runtime) in [
        ("cri-containerd-", Runtime::Containerd),
        ("crio-", Runtime::CriO),
        ("docker-", Runtime::Docker),
        ("libpod-", Runtime::Podman),
    ] {
        if let Some(id) = stem.strip_prefix(prefix)
            && is_container_id(id)
        {
            return container(runtime, id);
        }
    }
    if is_container_id(stem) {
        let parent = components.len().checked_sub(2).map(|i| components[i]);
        let runtime = if !pod_uid.is_empty() {
            Runtime::Cri
        } else if parent == Some("docker") {
            Runtime::Docker
        } else if parent == Some("libpod_parent") {
            Runtime::Podman
        } else {
            Runtime::Unknown
        };
        return container(runtime, stem);
    }
    if in_kubepods {
        return Classification::Structural;
    }
    Classification::Unclassified
}

/// Walks a hierarchy and returns every container cgroup plus every
/// unclassified leaf that holds processes. Directories that vanish during
/// the walk are skipped: containers come and go.
pub fn discover(root: &Path, max_depth: usize) -> io::Result<Vec<DiscoveredCgroup>> {
    let mut found = Vec::new();
    // The root must exist; everything below it may race with deletion.
    let entries = std::fs::read_dir(root)?;
    // (relative path, its entries, depth, whether it is unclassified)
    let mut stack: Vec<(String, std::fs::ReadDir, usize, bool)> =
        vec![(String::new(), entries, 0, false)];
    while let Some((relative, mut entries, depth, unclassified)) = stack.pop() {
        let mut child_dirs = Vec::new();
        for entry in entries.by_ref().flatten() {
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if !kind.is_dir() {
                continue;
            }
            let name = entry.file_name();
            let Some(name) = name.to_str() else {
                continue;
            };
            child_dirs.push(if relative.is_empty() {
                name.to_owned()
            } else {
                format!("{relative}/{name}")
            });
        }
        if unclassified && child_dirs.is_empty() && has_processes(&root.join(&relative)) {
            found.push(DiscoveredCgroup {
                container_id: relative.clone(),
                relative,
                runtime: Runtime::Unknown,
                pod_uid: String::new(),
            });
            continue;
        }
        for child in child_dirs {
            match classify(&child) {
                Classification::Container {
                    runtime,
                    container_id,
                    pod_uid,
                } => found.push(DiscoveredCgroup {
                    relative: child,
                    runtime,
                    container_id,
                    pod_uid,
                }),
                other => {
                    let unclassified = other == Classification::Unclassified;
                    if depth + 1 < max_depth
                        && let Ok(entries) = std::fs::read_dir(root.join(&child))
                    {
                        stack.push((child, entries, depth + 1, unclassified));
                    }
                }
            }
        }
    }
    found.sort();
    Ok(found)
}

fn has_processes(dir: &Path) -> bool {
    std::fs::read(dir.join("cgroup.procs"))
        .map(|content| content.iter().any(|b| b.is_ascii_digit()))
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    const UID: &str = "3f7c2a0e-1b2c-4d5e-8f90-a1b2c3d4e5f6";
    const UID_: &str = "3f7c2a0e_1b2c_4d5e_8f90_a1b2c3d4e5f6";

    fn container(runtime: Runtime, uid: &str) -> Classification {
        Classification::Container {
            runtime,
            container_id: ID.to_owned(),
            pod_uid: uid.to_owned(),
        }
    }

    #[test]
    fn kubernetes_layouts() {
        let cases = [
            (
                format!(
                    "kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UID_}.slice/cri-containerd-{ID}.scope"
                ),
                Runtime::Containerd,
            ),
            (
                format!(
                    "kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{UID_}.slice/crio-{ID}.scope"
                ),
                Runtime::CriO,
            ),
            (
                format!(
                    "kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UID_}.slice/docker-{ID}.scope"
                ),
                Runtime::Docker,
            ),
            (
                format!("kubepods.slice/kubepods-pod{UID_}.slice/cri-containerd-{ID}.scope"),
                Runtime::Containerd,
            ),
            (format!("kubepods/burstable/pod{UID}/{ID}"), Runtime::Cri),
            (format!("kubepods/pod{UID}/{ID}"), Runtime::Cri),
            (
                format!("kubepods/besteffort/pod{UID}/crio-{ID}"),
                Runtime::CriO,
            ),
            (
                format!(
                    "system.slice/containerd.service/kubepods-besteffort-pod{UID_}.slice:cri-containerd:{ID}"
                ),
                Runtime::Containerd,
            ),
        ];
        for (path, runtime) in cases {
            assert_eq!(classify(&path), container(runtime, UID), "{path}");
        }
    }

    #[test]
    fn outside_kubernetes() {
        assert_eq!(
            classify(&format!("system.slice/docker-{ID}.scope")),
            container(Runtime::Docker, "")
        );
        assert_eq!(
            classify(&format!("docker/{ID}")),
            container(Runtime::Docker, "")
        );
        assert_eq!(
            classify(&format!(
                "user.slice/user-1000.slice/user@1000.service/user.slice/libpod-{ID}.scope"
            )),
            container(Runtime::Podman, "")
        );
        assert_eq!(
            classify(&format!("machine.slice/libpod-conmon-{ID}.scope")),
            Classification::Structural
        );
        assert_eq!(
            classify("system.slice/sshd.service"),
            Classification::Unclassified
        );
    }

    #[test]
    fn structure_and_lookalikes() {
        assert_eq!(classify("kubepods.slice"), Classification::Structural);
        assert_eq!(
            classify(&format!("kubepods.slice/kubepods-pod{UID_}.slice")),
            Classification::Structural
        );
        assert_eq!(
            classify(&format!("kubepods.slice/x/crio-conmon-{ID}.scope")),
            Classification::Structural
        );
        // A short ID is not a container ID.
        assert_eq!(
            classify("system.slice/docker-abc.scope"),
            Classification::Unclassified
        );
        // A malformed pod UID is not used.
        assert_eq!(
            classify(&format!("kubepods/podnot-a-uid/{ID}")),
            container(Runtime::Unknown, "")
        );
    }
}
