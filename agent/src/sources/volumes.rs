//! Pod volumes: the size and use of every volume the kubelet mounted for a
//! pod, by `statfs` of `<kubelet_root>/pods/<pod_uid>/volumes/<plugin>/<name>`
//! (`…/kubernetes.io~csi/<pv>/mount` for CSI), the same call kubelet's own
//! volume stats make.
//!
//! - Attribution: the pod by the UID in the path (joined with the pod
//!   watch when it runs); the persistent volume from a CSI volume's
//!   `vol_data.json` (`specVolID`), else from the directory name, which the
//!   kubelet names after the PV for persistent volumes (`pvc-<uid>`,
//!   local volumes). The claim's name is not in the path and the pod watch
//!   does not keep pod volumes, so `persistentvolumeclaim` stays empty.
//! - Used bytes only for a volume that is a filesystem of its own (its
//!   path is a mount point in `/proc/self/mountinfo`): an emptyDir on the
//!   node's disk shares that disk, and statfs cannot split it; measuring
//!   it would need a `du`, which Tally does not run.
//! - Projected, secret, configMap and downwardAPI volumes are skipped: a
//!   few kilobytes each, one or more in every pod.
//! - A network filesystem (NFS, SMB, CephFS, FUSE…) whose server is gone
//!   blocks `statfs` in the kernel, uninterruptibly. Such mounts are
//!   statted on a helper thread with a deadline; one that misses it is
//!   counted (`timeout`) and left out until that call returns. Local
//!   mounts are statted inline. Directories are only listed (their
//!   parents are on the kubelet's local disk), never `stat`ed, so a hung
//!   mount cannot block the walk itself.

use std::collections::HashMap;
use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, TryRecvError};
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::common::v1::KeyValue;
use tally_schema::catalog::{self, MetricDef};
use tally_schema::identity::ContainerIdentity;
use tally_schema::otlp::string_attribute;

use crate::exposition::Pair;
use crate::sources::pods::model::PodStore;
use crate::telemetry::SourceHealth;

/// Where the agent's own mount table is: the paths statted are the ones
/// this process sees, so its own mount namespace is the one that counts.
const MOUNTINFO: &str = "/proc/self/mountinfo";
/// How long a network filesystem may take to answer `statfs`.
const REMOTE_TIMEOUT: Duration = Duration::from_secs(1);
/// Plugins whose volumes are not storage anyone pays for.
const SKIPPED_PLUGINS: &[&str] = &[
    "kubernetes.io/projected",
    "kubernetes.io/secret",
    "kubernetes.io/configmap",
    "kubernetes.io/downward-api",
];
/// Plugins whose volume directories are always named after a PV.
const PV_PLUGINS: &[&str] = &["kubernetes.io/local-volume"];
/// Filesystem types served over the network (or by a user-space daemon)
/// whose `statfs` can block indefinitely.
const REMOTE_FSTYPES: &[&str] = &[
    "nfs",
    "nfs4",
    "cifs",
    "smb3",
    "smbfs",
    "ceph",
    "glusterfs",
    "lustre",
    "beegfs",
    "gpfs",
    "afs",
    "9p",
];

/// One pod volume.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PodVolume {
    /// The pod (container fields empty): its UID from the path, the rest
    /// from the pod watch when it knows the pod.
    pub identity: ContainerIdentity,
    /// Volume directory name: the pod's volume name, or the PV's name for
    /// persistent volumes (the kubelet names those after the PV).
    pub volume: String,
    /// Persistent volume name; empty for ephemeral volumes.
    pub persistentvolume: String,
    /// Volume plugin, e.g. `kubernetes.io/csi`, `kubernetes.io/empty-dir`.
    pub plugin: String,
    /// Size of the filesystem holding the volume, bytes.
    pub capacity_bytes: u64,
    /// Bytes used, when the volume is a filesystem of its own.
    pub used_bytes: Option<u64>,
}

impl PodVolume {
    /// Label values in the order of the `tally_pod_volume_*` families
    /// (the claim and storage class are not known on the node).
    pub fn labels<'a>(&'a self, node: &'a str) -> [Pair<'a>; 11] {
        let id = &self.identity;
        [
            ("node", node),
            ("namespace", &id.namespace),
            ("pod", &id.pod),
            ("workload_kind", &id.workload_kind),
            ("workload_name", &id.workload_name),
            ("pod_uid", &id.pod_uid),
            ("volume", &self.volume),
            ("persistentvolume", &self.persistentvolume),
            ("persistentvolumeclaim", ""),
            ("storage_class", ""),
            ("plugin", &self.plugin),
        ]
    }

    /// OTLP data-point attributes (the pod is the resource); empty values
    /// are left out.
    pub fn point_attributes(&self) -> Vec<KeyValue> {
        [
            ("volume", &self.volume),
            ("persistentvolume", &self.persistentvolume),
            ("plugin", &self.plugin),
        ]
        .into_iter()
        .filter(|(_, value)| !value.is_empty())
        .map(|(key, value)| string_attribute(key, value.as_str()))
        .collect()
    }
}

/// Reads one value of a volume family.
pub type VolumeValue = fn(&PodVolume) -> Option<f64>;

/// Every volume family and how to read it, shared by `/metrics` and the
/// OTLP exporter.
pub const VOLUME_VALUES: &[(&MetricDef, VolumeValue)] = &[
    (&catalog::POD_VOLUME_CAPACITY, |v| {
        Some(v.capacity_bytes as f64)
    }),
    (&catalog::POD_VOLUME_USED, |v| {
        v.used_bytes.map(|b| b as f64)
    }),
];

/// `statfs` figures of one filesystem, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FsUsage {
    /// Size (`f_blocks × f_frsize`).
    pub capacity_bytes: u64,
    /// Used, as `df` counts it (`(f_blocks − f_bfree) × f_frsize`).
    pub used_bytes: u64,
}

/// `statvfs(3)` of `path`.
#[allow(unsafe_code)]
// The block counts are u32 on 32-bit targets.
#[allow(clippy::unnecessary_cast)]
pub fn statvfs(path: &Path) -> io::Result<FsUsage> {
    let c_path = CString::new(path.as_os_str().as_bytes())?;
    let mut buf = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `c_path` is NUL-terminated and outlives the call; `buf` is
    // writable memory of the size and alignment of `struct statvfs`.
    let rc = unsafe { libc::statvfs(c_path.as_ptr(), buf.as_mut_ptr()) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: statvfs returned 0, so it filled the whole struct.
    let s = unsafe { buf.assume_init() };
    let block = s.f_frsize as u64;
    let blocks = s.f_blocks as u64;
    Ok(FsUsage {
        capacity_bytes: blocks.saturating_mul(block),
        used_bytes: blocks
            .saturating_sub(s.f_bfree as u64)
            .saturating_mul(block),
    })
}

/// A `statfs` running on a helper thread.
type Pending = Receiver<io::Result<FsUsage>>;

/// Starts `stat` on a helper thread; the answer arrives on the receiver.
fn spawn_stat(stat: impl FnOnce() -> io::Result<FsUsage> + Send + 'static) -> io::Result<Pending> {
    let (tx, rx) = mpsc::channel();
    std::thread::Builder::new()
        .name("tally-statfs".to_owned())
        .spawn(move || {
            let _ = tx.send(stat());
        })?;
    Ok(rx)
}

/// What a bounded `statfs` came to.
#[derive(Debug)]
enum Bounded {
    Done(io::Result<FsUsage>),
    /// Still running after the deadline; poll the receiver later.
    TimedOut(Pending),
}

fn wait(pending: Pending, timeout: Duration) -> Bounded {
    match pending.recv_timeout(timeout) {
        Ok(result) => Bounded::Done(result),
        Err(RecvTimeoutError::Timeout) => Bounded::TimedOut(pending),
        Err(RecvTimeoutError::Disconnected) => Bounded::Done(Err(io::Error::other(
            "statfs thread ended without an answer",
        ))),
    }
}

/// One line of `/proc/self/mountinfo`: where, and what type.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Mount {
    mount_point: PathBuf,
    fstype: String,
}

/// Parses mountinfo (`proc(5)`): field 5 is the mount point (octal
/// escapes for space, tab, newline, backslash), the type follows ` - `.
fn parse_mountinfo(text: &str) -> Vec<Mount> {
    text.lines()
        .filter_map(|line| {
            let (head, tail) = line.split_once(" - ")?;
            let mount_point = head.split(' ').nth(4)?;
            let fstype = tail.split(' ').next()?;
            Some(Mount {
                mount_point: PathBuf::from(unescape_octal(mount_point)),
                fstype: fstype.to_owned(),
            })
        })
        .collect()
}

fn unescape_octal(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let digits = bytes.get(i + 1..i + 4);
        if bytes[i] == b'\\'
            && let Some(digits) = digits
            && digits.iter().all(|d| (b'0'..=b'7').contains(d))
        {
            let value = digits
                .iter()
                .fold(0u32, |acc, d| acc * 8 + u32::from(d - b'0'));
            out.push(value as u8);
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The mount `path` lives on (the last of the longest matching mount
/// points, since a later mount hides an earlier one at the same place).
fn mount_of<'a>(mounts: &'a [Mount], path: &Path) -> Option<&'a Mount> {
    mounts
        .iter()
        .filter(|m| path.starts_with(&m.mount_point))
        .fold(None, |best: Option<&Mount>, m| match best {
            Some(b) if b.mount_point.as_os_str().len() > m.mount_point.as_os_str().len() => Some(b),
            _ => Some(m),
        })
}

fn is_remote(fstype: &str) -> bool {
    REMOTE_FSTYPES.contains(&fstype) || fstype.starts_with("fuse")
}

/// The part of a CSI `vol_data.json` that names the volume.
#[derive(Debug, serde::Deserialize)]
struct VolData {
    #[serde(rename = "specVolID", default)]
    spec_vol_id: String,
    #[serde(rename = "volumeLifecycleMode", default)]
    lifecycle_mode: String,
}

/// The error kind of an IO error, as counted.
fn io_kind(error: &io::Error) -> &'static str {
    match error.kind() {
        io::ErrorKind::PermissionDenied => "permission",
        _ => "read_dir",
    }
}

/// The volumes source.
#[derive(Debug)]
pub struct VolumeSource {
    kubelet_root: PathBuf,
    health: Arc<SourceHealth>,
    /// Whether the last collection found no kubelet directory (counted
    /// once per absence, not every collection: outside Kubernetes it is
    /// simply not there).
    root_missing: bool,
    /// Network mounts whose `statfs` missed its deadline, by path.
    hung: HashMap<PathBuf, Pending>,
    volumes: Vec<PodVolume>,
}

impl VolumeSource {
    /// A source walking `kubelet_root` (normally `/var/lib/kubelet`).
    pub fn new(kubelet_root: &Path, health: Arc<SourceHealth>) -> Self {
        Self {
            kubelet_root: kubelet_root.to_path_buf(),
            health,
            root_missing: false,
            hung: HashMap::new(),
            volumes: Vec::new(),
        }
    }

    /// The volumes of the last collection, by pod UID, plugin and name,
    /// with only the pod UID as identity.
    pub fn volumes(&self) -> &[PodVolume] {
        &self.volumes
    }

    /// Walks the pod directories and statfs every volume. Errors are
    /// counted and their volumes left out.
    pub fn collect(&mut self) {
        let started = Instant::now();
        self.volumes.clear();
        let root = match std::fs::canonicalize(&self.kubelet_root) {
            Ok(root) => root,
            Err(error) if error.kind() == io::ErrorKind::NotFound => {
                if self.root_missing {
                    self.health.record_degraded(started.elapsed());
                } else {
                    self.root_missing = true;
                    let message = format!(
                        "{}: {error} (not a Kubernetes node, or the kubelet directory is not mounted)",
                        self.kubelet_root.display()
                    );
                    self.health
                        .record_failure(started.elapsed(), "missing_root", &message);
                }
                return;
            }
            Err(error) => {
                let message = format!("{}: {error}", self.kubelet_root.display());
                self.health
                    .record_failure(started.elapsed(), io_kind(&error), &message);
                return;
            }
        };
        self.root_missing = false;
        let mut failed = false;
        let mounts = match std::fs::read_to_string(MOUNTINFO) {
            Ok(text) => parse_mountinfo(&text),
            Err(error) => {
                // Without the table every volume is treated as remote
                // (bounded) and shared (no used bytes): slower, never hung.
                failed = true;
                self.health
                    .error("mountinfo", &format!("{MOUNTINFO}: {error}"));
                Vec::new()
            }
        };
        let mut seen = Vec::new();
        for (pod_uid, plugin, name, path, persistentvolume) in self.walk(&root, &mut failed) {
            let mount = mount_of(&mounts, &path);
            let dedicated = mount.is_some_and(|m| m.mount_point == path);
            let remote = mount.is_none_or(|m| is_remote(&m.fstype));
            seen.push(path.clone());
            let usage = if remote {
                self.remote_stat(&path)
            } else {
                Some(statvfs(&path))
            };
            match usage {
                Some(Ok(usage)) => self.volumes.push(PodVolume {
                    identity: ContainerIdentity {
                        pod_uid,
                        ..Default::default()
                    },
                    volume: name,
                    persistentvolume,
                    plugin,
                    capacity_bytes: usage.capacity_bytes,
                    used_bytes: dedicated.then_some(usage.used_bytes),
                }),
                Some(Err(error)) => {
                    failed = true;
                    let kind = match error.kind() {
                        io::ErrorKind::PermissionDenied => "permission",
                        _ => "statfs",
                    };
                    self.health
                        .error(kind, &format!("{}: {error}", path.display()));
                }
                None => failed = true,
            }
        }
        // Forget hung calls of volumes that are gone; their threads stay
        // blocked in the kernel, which nothing in user space can undo.
        self.hung.retain(|path, _| seen.contains(path));
        if failed {
            self.health.record_degraded(started.elapsed());
        } else {
            self.health.record_success(started.elapsed());
        }
    }

    /// `statfs` of a network mount on a helper thread, bounded by
    /// [`REMOTE_TIMEOUT`]; `None` while an earlier call is still blocked or
    /// this one missed the deadline (counted once, as `timeout`).
    fn remote_stat(&mut self, path: &Path) -> Option<io::Result<FsUsage>> {
        if let Some(pending) = self.hung.get(path) {
            match pending.try_recv() {
                Err(TryRecvError::Empty) => return None,
                // It came back: the server answers again; ask afresh.
                Ok(_) | Err(TryRecvError::Disconnected) => {
                    self.hung.remove(path);
                }
            }
        }
        let owned = path.to_path_buf();
        let pending = match spawn_stat(move || statvfs(&owned)) {
            Ok(pending) => pending,
            Err(error) => return Some(Err(error)),
        };
        match wait(pending, REMOTE_TIMEOUT) {
            Bounded::Done(result) => Some(result),
            Bounded::TimedOut(pending) => {
                self.health.error(
                    "timeout",
                    &format!(
                        "{}: statfs gave no answer within {REMOTE_TIMEOUT:?} (network filesystem unreachable?)",
                        path.display()
                    ),
                );
                self.hung.insert(path.to_path_buf(), pending);
                None
            }
        }
    }

    /// Every volume directory: (pod UID, plugin, name, path to statfs,
    /// PV name). Directories are listed, never statted.
    #[allow(clippy::type_complexity)]
    fn walk(
        &self,
        root: &Path,
        failed: &mut bool,
    ) -> Vec<(String, String, String, PathBuf, String)> {
        let mut out = Vec::new();
        let pods_dir = root.join("pods");
        let health = &self.health;
        let broken = std::cell::Cell::new(false);
        let list = |dir: &Path, missing_ok: bool| -> Vec<(String, PathBuf)> {
            match std::fs::read_dir(dir) {
                Ok(entries) => {
                    let mut names: Vec<(String, PathBuf)> = entries
                        .filter_map(Result::ok)
                        .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path()))
                        .collect();
                    names.sort();
                    names
                }
                Err(error) if missing_ok && error.kind() == io::ErrorKind::NotFound => Vec::new(),
                Err(error) => {
                    broken.set(true);
                    health.error(io_kind(&error), &format!("{}: {error}", dir.display()));
                    Vec::new()
                }
            }
        };
        // A kubelet directory without pods yet is an empty node.
        for (pod_uid, pod_dir) in list(&pods_dir, true) {
            for (plugin_dir_name, plugin_dir) in list(&pod_dir.join("volumes"), true) {
                let plugin = plugin_dir_name.replace('~', "/");
                if SKIPPED_PLUGINS.contains(&plugin.as_str()) {
                    continue;
                }
                let csi = plugin == "kubernetes.io/csi";
                for (name, volume_dir) in list(&plugin_dir, false) {
                    let named_pv = || {
                        if PV_PLUGINS.contains(&plugin.as_str()) || name.starts_with("pvc-") {
                            name.clone()
                        } else {
                            String::new()
                        }
                    };
                    if !csi {
                        let pv = named_pv();
                        out.push((pod_uid.clone(), plugin.clone(), name, volume_dir, pv));
                        continue;
                    }
                    // CSI: `<name>/mount` is the filesystem, `<name>/vol_data.json`
                    // says what it is; a volume without `mount` is not staged yet.
                    let children = list(&volume_dir, false);
                    if !children.iter().any(|(child, _)| child == "mount") {
                        continue;
                    }
                    let data_path = volume_dir.join("vol_data.json");
                    let pv = if children.iter().any(|(child, _)| child == "vol_data.json") {
                        match std::fs::read(&data_path)
                            .map_err(|e| e.to_string())
                            .and_then(|bytes| {
                                serde_json::from_slice::<VolData>(&bytes).map_err(|e| e.to_string())
                            }) {
                            Ok(data) if data.lifecycle_mode == "Ephemeral" => String::new(),
                            Ok(data) if !data.spec_vol_id.is_empty() => data.spec_vol_id,
                            Ok(_) => named_pv(),
                            Err(error) => {
                                broken.set(true);
                                health.error(
                                    "vol_data",
                                    &format!("{}: {error}", data_path.display()),
                                );
                                named_pv()
                            }
                        }
                    } else {
                        named_pv()
                    };
                    let mount = volume_dir.join("mount");
                    out.push((pod_uid.clone(), plugin.clone(), name, mount, pv));
                }
            }
        }
        *failed |= broken.get();
        out
    }
}

/// The volumes with their pods' identity from the pod store (pods it
/// does not know keep their UID only).
pub fn resolve(pods: &PodStore, volumes: &[PodVolume]) -> Vec<PodVolume> {
    volumes
        .iter()
        .map(|volume| {
            let mut volume = volume.clone();
            if let Some(pod) = pods.get(&volume.identity.pod_uid) {
                let id = &mut volume.identity;
                id.namespace = pod.namespace.clone();
                id.pod = pod.name.clone();
                id.workload_kind = pod.workload_kind.clone();
                id.workload_name = pod.workload_name.clone();
            }
            volume
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::pods::model::PodInfo;
    use std::process::Command;

    const POD_UID: &str = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0";

    fn is_root() -> bool {
        // The effective UID from procfs, so the tests need no libc call.
        std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("Uid:"))
                    .and_then(|l| l.split_whitespace().nth(1).map(|u| u == "0"))
            })
            .unwrap_or(false)
    }

    /// `df`'s own figures for `path` (size, used), bytes: an independent
    /// reading of the same statfs.
    fn df(path: &Path) -> (u64, u64) {
        let output = Command::new("df")
            .args(["-B1", "--output=size,used"])
            .arg(path)
            .output()
            .expect("df runs");
        let text = String::from_utf8_lossy(&output.stdout);
        let line = text.lines().nth(1).expect("df prints a row");
        let mut fields = line
            .split_whitespace()
            .map(|f| f.parse::<u64>().expect("a number"));
        (fields.next().expect("size"), fields.next().expect("used"))
    }

    /// A kubelet directory with one pod: an emptyDir with a file, a CSI
    /// persistent volume with its `vol_data.json`, a projected token
    /// volume (skipped) and a CSI volume not staged yet (no `mount`).
    fn kubelet_tree() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().expect("tempdir");
        let volumes = dir.path().join("pods").join(POD_UID).join("volumes");
        let cache = volumes.join("kubernetes.io~empty-dir").join("cache");
        std::fs::create_dir_all(&cache).expect("mkdir");
        std::fs::write(cache.join("blob"), vec![7u8; 256 * 1024]).expect("write");
        let pvc = volumes.join("kubernetes.io~csi").join("pvc-123");
        std::fs::create_dir_all(pvc.join("mount")).expect("mkdir");
        std::fs::write(
            pvc.join("vol_data.json"),
            r#"{"attachmentID":"csi-9f","driverName":"ebs.csi.aws.com","nodeName":"node-a","specVolID":"pvc-123","volumeHandle":"vol-0abc","volumeLifecycleMode":"Persistent"}"#,
        )
        .expect("write");
        std::fs::write(pvc.join("mount").join("checkpoint"), vec![1u8; 64 * 1024]).expect("write");
        std::fs::create_dir_all(volumes.join("kubernetes.io~csi").join("pvc-unstaged"))
            .expect("mkdir");
        std::fs::create_dir_all(
            volumes
                .join("kubernetes.io~projected")
                .join("kube-api-access-x"),
        )
        .expect("mkdir");
        let root = std::fs::canonicalize(dir.path()).expect("canonical");
        (dir, root)
    }

    fn find<'a>(volumes: &'a [PodVolume], name: &str) -> &'a PodVolume {
        volumes
            .iter()
            .find(|v| v.volume == name)
            .unwrap_or_else(|| panic!("{name} in {volumes:?}"))
    }

    #[test]
    fn reads_a_kubelet_tree_on_a_real_filesystem() {
        let (_dir, root) = kubelet_tree();
        let health = SourceHealth::new("volumes");
        let mut source = VolumeSource::new(&root, Arc::clone(&health));
        source.collect();
        assert!(health.is_up(), "{:?}", health.snapshot());
        let volumes = source.volumes();
        assert_eq!(volumes.len(), 2, "{volumes:?}");

        let cache = find(volumes, "cache");
        assert_eq!(cache.identity.pod_uid, POD_UID);
        assert_eq!(cache.plugin, "kubernetes.io/empty-dir");
        assert_eq!(cache.persistentvolume, "");
        let cache_path = root
            .join("pods")
            .join(POD_UID)
            .join("volumes/kubernetes.io~empty-dir/cache");
        assert_eq!(cache.capacity_bytes, df(&cache_path).0);
        // On the temp directory's filesystem, shared: no used bytes.
        assert_eq!(cache.used_bytes, None);

        let pv = find(volumes, "pvc-123");
        assert_eq!(pv.plugin, "kubernetes.io/csi");
        assert_eq!(pv.persistentvolume, "pvc-123");
        let mount = root
            .join("pods")
            .join(POD_UID)
            .join("volumes/kubernetes.io~csi/pvc-123/mount");
        assert_eq!(pv.capacity_bytes, df(&mount).0);
        assert_eq!(
            pv.capacity_bytes,
            statvfs(&mount).expect("statvfs").capacity_bytes
        );
    }

    #[test]
    fn a_volume_mount_of_its_own_reports_its_use() {
        if !is_root() {
            println!("SKIP a_volume_mount_of_its_own_reports_its_use: mounting tmpfs needs root");
            return;
        }
        let (_dir, root) = kubelet_tree();
        let mount = root
            .join("pods")
            .join(POD_UID)
            .join("volumes/kubernetes.io~csi/pvc-123/mount");
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=64m", "tally-test"])
            .arg(&mount)
            .status();
        if !mounted.is_ok_and(|s| s.success()) {
            println!("SKIP a_volume_mount_of_its_own_reports_its_use: mount -t tmpfs refused");
            return;
        }
        struct Unmount(PathBuf);
        impl Drop for Unmount {
            fn drop(&mut self) {
                let _ = Command::new("umount").arg(&self.0).status();
            }
        }
        let _unmount = Unmount(mount.clone());
        std::fs::write(mount.join("weights"), vec![3u8; 4 * 1024 * 1024]).expect("write");
        let health = SourceHealth::new("volumes");
        let mut source = VolumeSource::new(&root, Arc::clone(&health));
        source.collect();
        assert!(health.is_up(), "{:?}", health.snapshot());
        let pv = find(source.volumes(), "pvc-123");
        let (size, used) = df(&mount);
        assert_eq!(pv.capacity_bytes, 64 * 1024 * 1024);
        assert_eq!(pv.capacity_bytes, size);
        assert_eq!(pv.used_bytes, Some(used));
        assert!(used >= 4 * 1024 * 1024, "{used}");
        // The emptyDir next to it still shares the temp filesystem.
        assert_eq!(find(source.volumes(), "cache").used_bytes, None);
    }

    #[test]
    fn a_missing_kubelet_directory_is_down_and_counted_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let health = SourceHealth::new("volumes");
        let mut source = VolumeSource::new(&dir.path().join("no-kubelet"), Arc::clone(&health));
        source.collect();
        source.collect();
        assert!(!health.is_up());
        assert_eq!(health.error_count("missing_root"), 1);
        assert_eq!(health.snapshot().duration_count, 2);
        assert!(source.volumes().is_empty());
    }

    #[test]
    fn an_unreadable_pod_directory_is_counted() {
        if is_root() {
            println!("SKIP an_unreadable_pod_directory_is_counted: root reads through mode 000");
            return;
        }
        let (_dir, root) = kubelet_tree();
        let volumes = root.join("pods").join(POD_UID).join("volumes");
        let plugin = volumes.join("kubernetes.io~empty-dir");
        std::fs::set_permissions(&plugin, std::os::unix::fs::PermissionsExt::from_mode(0o000))
            .expect("chmod");
        let health = SourceHealth::new("volumes");
        let mut source = VolumeSource::new(&root, Arc::clone(&health));
        source.collect();
        std::fs::set_permissions(&plugin, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .expect("chmod back");
        assert_eq!(health.error_count("permission"), 1);
        assert!(!health.is_up());
        // The readable volume is still reported.
        assert_eq!(
            find(source.volumes(), "pvc-123").persistentvolume,
            "pvc-123"
        );
    }

    #[test]
    fn a_broken_vol_data_is_counted_and_the_name_still_attributes() {
        let (_dir, root) = kubelet_tree();
        let pvc = root
            .join("pods")
            .join(POD_UID)
            .join("volumes/kubernetes.io~csi/pvc-123");
        std::fs::write(pvc.join("vol_data.json"), "{not json").expect("write");
        let inline = root
            .join("pods")
            .join(POD_UID)
            .join("volumes/kubernetes.io~csi/scratch");
        std::fs::create_dir_all(inline.join("mount")).expect("mkdir");
        std::fs::write(
            inline.join("vol_data.json"),
            r#"{"driverName":"csi.example.com","specVolID":"scratch","volumeLifecycleMode":"Ephemeral"}"#,
        )
        .expect("write");
        let health = SourceHealth::new("volumes");
        let mut source = VolumeSource::new(&root, Arc::clone(&health));
        source.collect();
        assert_eq!(health.error_count("vol_data"), 1);
        assert_eq!(
            find(source.volumes(), "pvc-123").persistentvolume,
            "pvc-123"
        );
        assert_eq!(find(source.volumes(), "scratch").persistentvolume, "");
    }

    #[test]
    fn pods_from_the_watch_name_the_volume() {
        let (_dir, root) = kubelet_tree();
        let mut source = VolumeSource::new(&root, SourceHealth::new("volumes"));
        source.collect();
        let mut pods = PodStore::default();
        pods.upsert(PodInfo {
            uid: POD_UID.to_owned(),
            namespace: "ml-training".to_owned(),
            name: "trainer-0".to_owned(),
            workload_kind: "StatefulSet".to_owned(),
            workload_name: "trainer".to_owned(),
            ..Default::default()
        });
        let resolved = resolve(&pods, source.volumes());
        let pv = find(&resolved, "pvc-123");
        let labels = pv.labels("node-a");
        assert_eq!(
            labels.map(|(k, _)| k),
            *<&[&str; 11]>::try_from(catalog::POD_VOLUME_CAPACITY.labels).expect("11 labels")
        );
        assert_eq!(pv.identity.pod, "trainer-0");
        assert_eq!(pv.identity.workload_name, "trainer");
        let unknown = resolve(&PodStore::default(), source.volumes());
        assert_eq!(find(&unknown, "pvc-123").identity.pod, "");
        assert_eq!(find(&unknown, "pvc-123").identity.pod_uid, POD_UID);
    }

    #[test]
    fn volumes_travel_as_pod_resources_over_otlp() {
        use crate::export::batch::{Window, build_request};
        use crate::snapshot::Snapshot;
        use opentelemetry_proto::tonic::metrics::v1::metric::Data;
        use tally_schema::otlp::find_string;

        let (_dir, root) = kubelet_tree();
        let mut source = VolumeSource::new(&root, SourceHealth::new("volumes"));
        source.collect();
        let mut pods = PodStore::default();
        pods.upsert(PodInfo {
            uid: POD_UID.to_owned(),
            namespace: "ml-training".to_owned(),
            name: "trainer-0".to_owned(),
            workload_kind: "StatefulSet".to_owned(),
            workload_name: "trainer".to_owned(),
            ..Default::default()
        });
        let snapshot = Snapshot {
            volumes: resolve(&pods, source.volumes()),
            ..Default::default()
        };
        let now = std::time::SystemTime::now();
        let window = Window {
            process_start: now,
            window_start: now,
            now,
        };
        let request = build_request(
            &snapshot,
            "node-a",
            Vec::new(),
            Default::default(),
            &window,
            "test",
            crate::config::GpuNames::Tally,
        );
        let pv = request
            .resource_metrics
            .iter()
            .find_map(|rm| {
                let metric = rm.scope_metrics.iter().flat_map(|s| &s.metrics).find(|m| {
                    m.name == "tally_pod_volume_capacity_bytes"
                        && matches!(&m.data, Some(Data::Gauge(g)) if find_string(&g.data_points[0].attributes, "persistentvolume") == Some("pvc-123"))
                })?;
                Some((rm.resource.clone()?.attributes, metric.clone()))
            })
            .expect("the PV's capacity is sent");
        let (resource, metric) = pv;
        assert_eq!(find_string(&resource, "k8s.pod.uid"), Some(POD_UID));
        assert_eq!(find_string(&resource, "k8s.pod.name"), Some("trainer-0"));
        assert_eq!(
            find_string(&resource, "k8s.statefulset.name"),
            Some("trainer")
        );
        assert_eq!(find_string(&resource, "k8s.node.name"), Some("node-a"));
        assert_eq!(find_string(&resource, "k8s.container.name"), None);
        let Some(Data::Gauge(gauge)) = &metric.data else {
            panic!("a gauge");
        };
        let point = &gauge.data_points[0];
        assert_eq!(
            find_string(&point.attributes, "plugin"),
            Some("kubernetes.io/csi")
        );
        assert_eq!(
            find_string(&point.attributes, "persistentvolumeclaim"),
            None
        );
    }

    #[test]
    fn mountinfo_is_parsed_with_escapes_and_the_deepest_mount_wins() {
        let text = "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n\
                    40 22 0:50 / /var/lib/kubelet/pods/u/volumes/kubernetes.io~nfs/my\\040share rw - nfs4 server:/export rw\n\
                    41 22 0:51 / /mnt/fuse rw - fuse.s3fs s3fs rw\n";
        let mounts = parse_mountinfo(text);
        assert_eq!(mounts.len(), 3);
        let share = Path::new("/var/lib/kubelet/pods/u/volumes/kubernetes.io~nfs/my share");
        let mount = mount_of(&mounts, share).expect("a mount");
        assert_eq!(mount.mount_point, share);
        assert!(is_remote(&mount.fstype));
        let local = mount_of(&mounts, Path::new("/var/lib/kubelet/pods/u/volumes/x")).expect("/");
        assert_eq!(local.fstype, "ext4");
        assert!(is_remote("fuse.s3fs") && !is_remote("tmpfs"));
    }

    #[test]
    fn a_statfs_past_its_deadline_is_left_pending() {
        let pending = spawn_stat(|| {
            std::thread::sleep(Duration::from_millis(300));
            Ok(FsUsage {
                capacity_bytes: 1,
                used_bytes: 0,
            })
        })
        .expect("thread");
        let Bounded::TimedOut(pending) = wait(pending, Duration::from_millis(20)) else {
            panic!("answered before the deadline");
        };
        let late = pending
            .recv_timeout(Duration::from_secs(5))
            .expect("answers later");
        assert_eq!(late.expect("ok").capacity_bytes, 1);
    }
}
