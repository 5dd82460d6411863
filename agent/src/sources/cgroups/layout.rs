//! Which cgroup hierarchies the host mounts and where.
//!
//! - v2 (unified): one tree; `cgroup.controllers` exists at its root.
//! - v1: one tree per controller (`cpu`, `cpuacct`, `memory`, `blkio`;
//!   `cpu,cpuacct` may be one mount with symlinks).
//! - hybrid: v1 controllers plus a v2 tree at `unified/` that carries no
//!   controllers but still offers PSI files. Stats come from v1, pressure
//!   from the v2 tree.

use std::path::{Path, PathBuf};

/// The hierarchies found under a cgroup mount root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Layout {
    /// Pure cgroup v2.
    V2 {
        /// The unified root.
        root: PathBuf,
    },
    /// cgroup v1, possibly with a v2 tree beside it (hybrid).
    V1 {
        /// `cpu` controller root (quota, shares, throttling).
        cpu: Option<PathBuf>,
        /// `cpuacct` controller root (usage).
        cpuacct: Option<PathBuf>,
        /// `memory` controller root.
        memory: Option<PathBuf>,
        /// `blkio` controller root.
        blkio: Option<PathBuf>,
        /// The v2 tree of a hybrid host, for PSI.
        unified: Option<PathBuf>,
    },
}

/// Errors finding the hierarchies.
#[derive(Debug, thiserror::Error)]
pub enum LayoutError {
    /// Nothing usable below the root.
    #[error(
        "no cgroup hierarchy found under {root}: expected cgroup.controllers (v2) or cpuacct/memory directories (v1)"
    )]
    NotFound {
        /// The root searched.
        root: PathBuf,
    },
}

impl Layout {
    /// Detects the layout below `root` (normally `/sys/fs/cgroup`, or the
    /// host's mounted at `/host/sys/fs/cgroup` in a DaemonSet).
    pub fn detect(root: &Path) -> Result<Layout, LayoutError> {
        if root.join("cgroup.controllers").is_file() {
            return Ok(Layout::V2 {
                root: root.to_path_buf(),
            });
        }
        let controller = |name: &str| {
            let path = root.join(name);
            path.is_dir().then_some(path)
        };
        let cpuacct = controller("cpuacct").or_else(|| controller("cpu,cpuacct"));
        let cpu = controller("cpu").or_else(|| controller("cpu,cpuacct"));
        let memory = controller("memory");
        let blkio = controller("blkio");
        if cpuacct.is_none() && memory.is_none() {
            return Err(LayoutError::NotFound {
                root: root.to_path_buf(),
            });
        }
        let unified = root.join("unified");
        let unified = unified
            .join("cgroup.controllers")
            .is_file()
            .then_some(unified);
        Ok(Layout::V1 {
            cpu,
            cpuacct,
            memory,
            blkio,
            unified,
        })
    }

    /// The tree discovery walks: v2's root, or v1's memory (else cpuacct).
    pub fn discovery_root(&self) -> &Path {
        match self {
            Layout::V2 { root } => root,
            Layout::V1 {
                memory, cpuacct, ..
            } => memory
                .as_deref()
                .or(cpuacct.as_deref())
                .unwrap_or(Path::new("/")),
        }
    }

    /// `1` or `2`, for labels. Hybrid counts as 1: stats come from v1.
    pub fn version(&self) -> u8 {
        match self {
            Layout::V2 { .. } => 2,
            Layout::V1 { .. } => 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_each_layout() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        assert!(Layout::detect(root).is_err());

        std::fs::create_dir_all(root.join("memory")).expect("mkdir");
        std::fs::create_dir_all(root.join("cpu,cpuacct")).expect("mkdir");
        let layout = Layout::detect(root).expect("v1");
        assert_eq!(layout.version(), 1);
        assert_eq!(layout.discovery_root(), root.join("memory"));
        match &layout {
            Layout::V1 {
                cpu,
                cpuacct,
                unified,
                ..
            } => {
                assert_eq!(cpu.as_deref(), Some(root.join("cpu,cpuacct").as_path()));
                assert_eq!(cpuacct, cpu);
                assert!(unified.is_none());
            }
            Layout::V2 { .. } => panic!("expected v1"),
        }

        std::fs::create_dir_all(root.join("unified")).expect("mkdir");
        std::fs::write(root.join("unified/cgroup.controllers"), "").expect("write");
        match Layout::detect(root).expect("hybrid") {
            Layout::V1 { unified, .. } => assert_eq!(unified, Some(root.join("unified"))),
            Layout::V2 { .. } => panic!("expected hybrid"),
        }

        std::fs::write(root.join("cgroup.controllers"), "cpu memory io\n").expect("write");
        assert_eq!(
            Layout::detect(root).expect("v2"),
            Layout::V2 {
                root: root.to_path_buf()
            }
        );
    }
}
