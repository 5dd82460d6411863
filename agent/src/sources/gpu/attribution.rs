//! Host PID → container: NVML reports host PIDs, so each is looked up in
//! the host's `/proc/<pid>/cgroup` (the DaemonSet mounts the host's proc)
//! and its cgroup path classified by the agent core's parser. A PID keeps
//! its cgroup for life, so each is read once and remembered while NVML
//! still lists it.

use std::collections::{HashMap, HashSet};
use std::io;
use std::path::{Path, PathBuf};

use crate::sources::cgroups::discovery::{Classification, classify};

/// A container's ids as its cgroup path names them.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ContainerRef {
    /// 64-hex container id.
    pub container_id: String,
    /// Pod UID, empty outside Kubernetes.
    pub pod_uid: String,
}

/// The container of the cgroup file's text (`/proc/<pid>/cgroup`: v2's
/// `0::<path>` or v1's `<id>:<controllers>:<path>` lines); `None` for a
/// process outside any container.
pub fn container_of_cgroup_file(text: &str) -> Option<ContainerRef> {
    text.lines().find_map(|line| {
        let path = line.splitn(3, ':').nth(2)?;
        match classify(path.trim_start_matches('/')) {
            Classification::Container {
                container_id,
                pod_uid,
                ..
            } => Some(ContainerRef {
                container_id,
                pod_uid,
            }),
            _ => None,
        }
    })
}

/// Remembers the container of each PID seen.
#[derive(Debug)]
pub struct PidMap {
    proc_root: PathBuf,
    known: HashMap<u32, Option<ContainerRef>>,
}

impl PidMap {
    /// Reads `<proc_root>/<pid>/cgroup` (`/proc`, or the host's mounted
    /// into the DaemonSet).
    pub fn new(proc_root: &Path) -> Self {
        Self {
            proc_root: proc_root.to_path_buf(),
            known: HashMap::new(),
        }
    }

    /// The container of `pid`; `Err` when its cgroup file cannot be read
    /// (the process exited, or the host's proc is not mounted).
    pub fn container(&mut self, pid: u32) -> io::Result<Option<ContainerRef>> {
        if let Some(known) = self.known.get(&pid) {
            return Ok(known.clone());
        }
        let text = std::fs::read_to_string(self.proc_root.join(pid.to_string()).join("cgroup"))?;
        let found = container_of_cgroup_file(&text);
        self.known.insert(pid, found.clone());
        Ok(found)
    }

    /// Forgets PIDs NVML no longer lists (PIDs are reused).
    pub fn retain(&mut self, alive: &HashSet<u32>) {
        self.known.retain(|pid, _| alive.contains(pid));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "8f2a5d0c1b3e4f6a7b8c9d0e1f2a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c";

    #[test]
    fn cgroup_files_of_both_versions_and_drivers_name_the_container() {
        let v2_systemd = format!(
            "0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1b4e28ba_2fa1_11d2_883f_0016d3cca427.slice/cri-containerd-{ID}.scope\n"
        );
        let found = container_of_cgroup_file(&v2_systemd).expect("container");
        assert_eq!(found.container_id, ID);
        assert_eq!(found.pod_uid, "1b4e28ba-2fa1-11d2-883f-0016d3cca427");
        let v1_cgroupfs = format!(
            "12:pids:/kubepods/besteffort/pod1b4e28ba-2fa1-11d2-883f-0016d3cca427/{ID}\n11:memory:/kubepods/besteffort/pod1b4e28ba-2fa1-11d2-883f-0016d3cca427/{ID}\n"
        );
        assert_eq!(container_of_cgroup_file(&v1_cgroupfs), Some(found));
        assert_eq!(
            container_of_cgroup_file("0::/user.slice/session-3.scope\n"),
            None
        );
        assert_eq!(container_of_cgroup_file("garbage"), None);
    }

    #[test]
    fn pids_are_read_once_and_forgotten_when_gone() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(dir.path().join("42")).expect("pid dir");
        let cgroup = dir.path().join("42").join("cgroup");
        std::fs::write(&cgroup, format!("0::/docker/{ID}\n")).expect("write");
        let mut pids = PidMap::new(dir.path());
        let first = pids.container(42).expect("read").expect("container");
        assert_eq!(first.container_id, ID);
        // Remembered: the file is not read again.
        std::fs::remove_file(&cgroup).expect("remove");
        assert_eq!(pids.container(42).expect("cached"), Some(first));
        pids.retain(&HashSet::new());
        assert!(
            pids.container(42).is_err(),
            "forgotten, and the file is gone"
        );
        assert!(pids.container(7).is_err());
    }
}
