//! The exact change a card proposes, as a `kubectl patch` to copy (or,
//! where no patch applies, the step to take). Shared by `tally top` and
//! `tally recommend --patch`; nothing here runs kubectl.

use serde_json::{Value, json};

use crate::api::{Recommendation, WorkloadRef};

/// A figure by its key's unit: cores, bytes, fractions, counts.
pub fn figure(key: &str, value: f64) -> String {
    if key.ends_with("_cores") {
        cpu_quantity(value)
    } else if key.ends_with("_bytes") {
        memory_quantity(value)
    } else if key.ends_with("monthly_cost") {
        format!("{value:.2}")
    } else if value.fract() == 0.0 {
        format!("{value:.0}")
    } else {
        format!("{value:.3}")
    }
}

/// Cores as a Kubernetes quantity: `250m`, `2`.
pub fn cpu_quantity(cores: f64) -> String {
    let millis = (cores * 1000.0).ceil().max(1.0);
    if millis % 1000.0 == 0.0 {
        format!("{}", millis / 1000.0)
    } else {
        format!("{millis}m")
    }
}

/// Bytes as a Kubernetes quantity, rounded up to whole MiB: `512Mi`, `2Gi`.
pub fn memory_quantity(bytes: f64) -> String {
    let mib = (bytes / 1_048_576.0).ceil().max(1.0);
    if mib % 1024.0 == 0.0 {
        format!("{}Gi", mib / 1024.0)
    } else {
        format!("{mib}Mi")
    }
}

/// The kubectl resource of a workload kind.
fn resource(kind: &str) -> Option<&'static str> {
    Some(match kind {
        "Deployment" => "deployment",
        "StatefulSet" => "statefulset",
        "DaemonSet" => "daemonset",
        "ReplicaSet" => "replicaset",
        "Job" => "job",
        "CronJob" => "cronjob",
        _ => return None,
    })
}

/// Wraps a pod-spec fragment at the workload kind's pod template.
fn at_pod_template(kind: &str, pod_spec: Value) -> Value {
    let template = json!({ "template": { "spec": pod_spec } });
    if kind == "CronJob" {
        json!({ "spec": { "jobTemplate": { "spec": template } } })
    } else {
        json!({ "spec": template })
    }
}

/// A `kubectl patch` for a workload.
fn kubectl_patch(workload: &WorkloadRef, resource: &str, patch: &Value) -> String {
    format!(
        "kubectl -n {} patch {resource} {} --type=strategic -p '{}'",
        workload.namespace, workload.name, patch
    )
}

/// The patch for a card, if the change is a patch to its workload.
pub fn kubectl(card: &Recommendation) -> Option<String> {
    let workload = card.workload.as_ref()?;
    let resource = resource(&workload.kind)?;
    // A Job's pod template is immutable; its manifest changes instead.
    if resource == "job" {
        return None;
    }
    let container = card.target.as_str();
    let patch = match card.kind.as_str() {
        "cpu_request" => {
            let cores = card.proposed.get("cpu_request_cores")?;
            at_pod_template(
                &workload.kind,
                json!({ "containers": [{ "name": container, "resources": { "requests": { "cpu": cpu_quantity(*cores) } } }] }),
            )
        }
        "memory_request" => {
            let mut resources = serde_json::Map::new();
            if let Some(bytes) = card.proposed.get("memory_request_bytes") {
                resources.insert(
                    "requests".to_owned(),
                    json!({ "memory": memory_quantity(*bytes) }),
                );
            }
            if let Some(bytes) = card.proposed.get("memory_limit_bytes") {
                resources.insert(
                    "limits".to_owned(),
                    json!({ "memory": memory_quantity(*bytes) }),
                );
            }
            if resources.is_empty() {
                return None;
            }
            at_pod_template(
                &workload.kind,
                json!({ "containers": [{ "name": container, "resources": resources }] }),
            )
        }
        "inference_replicas" | "gpu_idle" | "gpu_unused"
            if matches!(resource, "deployment" | "statefulset" | "replicaset") =>
        {
            let replicas = match card.kind.as_str() {
                "inference_replicas" => *card.proposed.get("replicas")?,
                _ => 0.0,
            };
            json!({ "spec": { "replicas": replicas.round() as u64 } })
        }
        "spot" => at_pod_template(
            &workload.kind,
            json!({ "nodeSelector": { "karpenter.sh/capacity-type": "spot" } }),
        ),
        _ => return None,
    };
    Some(kubectl_patch(workload, resource, &patch))
}

/// What to do, as text to copy: the patch, or the step where no patch
/// applies (a node pool, a commitment, a route table, a volume).
pub fn instructions(card: &Recommendation) -> String {
    if let Some(command) = kubectl(card) {
        return command;
    }
    if let Some(snippet) = resources_snippet(card) {
        return snippet;
    }
    let step = match card.kind.as_str() {
        "gpu_mig_profile" => {
            "Request the MIG profile named in the explanation instead of nvidia.com/gpu \
             (resources.limits: nvidia.com/mig-<profile>: 1) and enable that profile on a node."
        }
        "gpu_time_slice" => {
            "Enable GPU time-slicing in the NVIDIA device plugin's config on the node pool, \
             then lower the workload's nvidia.com/gpu request to the shared unit."
        }
        "gpu_smaller_type" => {
            "Schedule the workload on the cheaper GPU type named in the explanation \
             (a node pool of that type and a nodeSelector on node.kubernetes.io/instance-type)."
        }
        "egress" => "Change the network path named in the target (no workload change).",
        "commitment" => "Buy the commitment with the provider; nothing changes in the cluster.",
        "schedule" => {
            "Scale the workload to zero in the idle hours (a CronJob running \
             kubectl scale, or KEDA's cron scaler)."
        }
        "volume_unclaimed" | "volume_stale" => {
            "Snapshot the volume if it may be needed, then delete the PersistentVolume."
        }
        "volume_oversized" => {
            "Volumes cannot shrink: copy the data to a smaller PersistentVolumeClaim and switch the workload to it."
        }
        _ => "Apply the change described in the explanation.",
    };
    format!("# {step}")
}

/// A request change that cannot be patched (a Job, a bare Pod), as the
/// YAML to put in the manifest that creates it.
fn resources_snippet(card: &Recommendation) -> Option<String> {
    let (resource, quantity) = match card.kind.as_str() {
        "cpu_request" => (
            "cpu",
            cpu_quantity(*card.proposed.get("cpu_request_cores")?),
        ),
        "memory_request" => (
            "memory",
            memory_quantity(*card.proposed.get("memory_request_bytes")?),
        ),
        _ => return None,
    };
    let kind = card
        .workload
        .as_ref()
        .map_or("workload", |w| w.kind.as_str());
    Some(format!(
        "# A {kind}'s pod template cannot be patched; in the manifest that creates it:\n\
         containers:\n\
         - name: {}\n  resources:\n    requests:\n      {resource}: {quantity}",
        card.target
    ))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn card(kind: &str, workload_kind: &str, proposed: &[(&str, f64)]) -> Recommendation {
        Recommendation {
            id: "x".to_owned(),
            kind: kind.to_owned(),
            target: "main".to_owned(),
            workload: Some(WorkloadRef {
                namespace: "web".to_owned(),
                kind: workload_kind.to_owned(),
                name: "shop".to_owned(),
            }),
            proposed: proposed
                .iter()
                .map(|(k, v)| ((*k).to_owned(), *v))
                .collect::<BTreeMap<_, _>>(),
            ..Recommendation::default()
        }
    }

    fn patch_json(command: &str) -> Value {
        let start = command.find("-p '").expect("patch") + 4;
        serde_json::from_str(&command[start..command.len() - 1]).expect("json")
    }

    #[test]
    fn quantities_round_up() {
        assert_eq!(cpu_quantity(0.2501), "251m");
        assert_eq!(cpu_quantity(2.0), "2");
        assert_eq!(memory_quantity(536_870_912.0), "512Mi");
        assert_eq!(memory_quantity(2.0 * 1_073_741_824.0), "2Gi");
        assert_eq!(memory_quantity(1.0), "1Mi");
    }

    #[test]
    fn cpu_request_patches_the_container_of_a_deployment() {
        let command = kubectl(&card(
            "cpu_request",
            "Deployment",
            &[("cpu_request_cores", 0.25)],
        ))
        .expect("patch");
        assert!(command.starts_with("kubectl -n web patch deployment shop --type=strategic"));
        let patch = patch_json(&command);
        let container = &patch["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(container["name"], "main");
        assert_eq!(container["resources"]["requests"]["cpu"], "250m");
    }

    #[test]
    fn cronjobs_are_patched_at_the_job_template() {
        let command = kubectl(&card(
            "memory_request",
            "CronJob",
            &[("memory_request_bytes", 1_073_741_824.0)],
        ))
        .expect("patch");
        let patch = patch_json(&command);
        assert_eq!(
            patch["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["resources"]
                ["requests"]["memory"],
            "1Gi"
        );
    }

    #[test]
    fn replicas_and_idle_gpus_scale() {
        let command = kubectl(&card(
            "inference_replicas",
            "Deployment",
            &[("replicas", 2.0)],
        ))
        .expect("patch");
        assert_eq!(patch_json(&command)["spec"]["replicas"], 2);
        let command = kubectl(&card("gpu_idle", "StatefulSet", &[])).expect("patch");
        assert_eq!(patch_json(&command)["spec"]["replicas"], 0);
        // A Job cannot be scaled: the step is described instead.
        assert!(kubectl(&card("gpu_idle", "Job", &[])).is_none());
        assert!(instructions(&card("gpu_idle", "Job", &[])).starts_with('#'));
    }

    #[test]
    fn jobs_get_the_manifest_snippet() {
        let job = card("cpu_request", "Job", &[("cpu_request_cores", 2.108)]);
        assert!(kubectl(&job).is_none());
        let text = instructions(&job);
        let yaml: Value = serde_yaml_ng::from_str(&text).expect("yaml");
        assert_eq!(yaml["containers"][0]["name"], "main");
        assert_eq!(
            yaml["containers"][0]["resources"]["requests"]["cpu"],
            "2108m"
        );
    }
}
