//! Who a container log file belongs to, from its path alone:
//! `/var/log/pods/<namespace>_<pod>_<uid>/<container>/<restart>.log`, and
//! the rotated siblings kubelet leaves beside it
//! (`<restart>.log.<YYYYMMDD-hhmmss>`, later `.gz`). Namespace and pod
//! names cannot hold `_`, so the split is unambiguous.

use std::path::Path;

/// A pod log file's identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodLogPath {
    /// Kubernetes namespace.
    pub namespace: String,
    /// Pod name.
    pub pod: String,
    /// Pod UID.
    pub pod_uid: String,
    /// Container name.
    pub container: String,
    /// Container restart count (the file's number).
    pub restart_count: u32,
    /// How the file stands in kubelet's rotation.
    pub rotation: Rotation,
}

/// A log file's place in kubelet's rotation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rotation {
    /// `<n>.log`: the file being written.
    Live,
    /// `<n>.log.<stamp>`: renamed away, still plain text (read to its end).
    Rotated(String),
    /// `<n>.log.<stamp>.gz` (or the `.tmp` being written): compressed, not
    /// read (its lines were read before it was compressed).
    Compressed,
}

/// Parses a path under the pod log root; `None` for anything else.
pub fn parse(path: &Path) -> Option<PodLogPath> {
    let mut parts = path.iter().rev().filter_map(|p| p.to_str());
    let file = parts.next()?;
    let container = parts.next()?;
    let pod_dir = parts.next()?;
    let (number, rotation) = match file.split_once(".log") {
        Some((number, "")) => (number, Rotation::Live),
        Some((number, rest)) => {
            let rest = rest.strip_prefix('.')?;
            if rest.ends_with(".gz") || rest.ends_with(".tmp") {
                (number, Rotation::Compressed)
            } else {
                (number, Rotation::Rotated(rest.to_owned()))
            }
        }
        None => return None,
    };
    let restart_count = number.parse().ok()?;
    let mut fields = pod_dir.splitn(3, '_');
    let (namespace, pod, pod_uid) = (fields.next()?, fields.next()?, fields.next()?);
    let uid_ok = !pod_uid.is_empty() && pod_uid.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-');
    if namespace.is_empty() || pod.is_empty() || !uid_ok || container.is_empty() {
        return None;
    }
    Some(PodLogPath {
        namespace: namespace.to_owned(),
        pod: pod.to_owned(),
        pod_uid: pod_uid.to_owned(),
        container: container.to_owned(),
        restart_count,
        rotation,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const UID: &str = "6f1c2e7a-3b4d-4e5f-8a9b-0c1d2e3f4a5b";

    #[test]
    fn live_rotated_and_compressed_files() {
        let live = parse(Path::new(&format!(
            "/var/log/pods/ml_vllm-qwen-7b-5d9c_{UID}/vllm/0.log"
        )))
        .expect("live");
        assert_eq!(live.namespace, "ml");
        assert_eq!(live.pod, "vllm-qwen-7b-5d9c");
        assert_eq!(live.pod_uid, UID);
        assert_eq!(live.container, "vllm");
        assert_eq!(live.restart_count, 0);
        assert_eq!(live.rotation, Rotation::Live);
        let rotated = parse(Path::new(&format!(
            "/var/log/pods/ml_p_{UID}/c/3.log.20261201-161500"
        )))
        .expect("rotated");
        assert_eq!(rotated.restart_count, 3);
        assert_eq!(
            rotated.rotation,
            Rotation::Rotated("20261201-161500".into())
        );
        for name in ["3.log.20261201-161500.gz", "3.log.20261201-161500.tmp"] {
            let path = format!("/var/log/pods/ml_p_{UID}/c/{name}");
            assert_eq!(
                parse(Path::new(&path)).map(|p| p.rotation),
                Some(Rotation::Compressed)
            );
        }
    }

    #[test]
    fn other_paths_are_not_pod_logs() {
        for path in [
            "/var/log/syslog".to_owned(),
            format!("/var/log/pods/ml_p_{UID}/c/notes.txt"),
            format!("/var/log/pods/ml_p_{UID}/c/x.log"),
            "/var/log/pods/ml_p_NOT-A-UID!/c/0.log".to_owned(),
            format!("/var/log/pods/mlp{UID}/c/0.log"),
            format!("/var/log/pods/_p_{UID}/c/0.log"),
        ] {
            assert_eq!(parse(Path::new(&path)), None, "{path}");
        }
    }
}
