//! Which model servers this agent scrapes: the static `--scrape URL`s and
//! the pods on its own node (the pod store holds no others) that are
//! annotated, run a known engine's image, or declare an engine's
//! distinctive port.
//!
//! Annotations, most specific first: `tally.dev/scrape: "false"` opts a
//! pod out; `tally.dev/engine` names the engine (`vllm`, `sglang`, `tgi`,
//! `triton`); `tally.dev/model` names the served model where the engine's
//! page does not (TGI); `tally.dev/port` and `tally.dev/path`, then
//! `prometheus.io/port`, `prometheus.io/path` and `prometheus.io/scheme`,
//! say where the page is. A pod with `prometheus.io/scrape: "true"` and no
//! engine is scraped and the engine read from its page.

use tally_schema::identity::ContainerIdentity;

use super::engine::Engine;
use crate::sources::pods::model::{PodInfo, PodStore};

/// How a target was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// `--scrape URL` / `serving.scrape`.
    Static,
    /// A pod annotation.
    Annotation,
    /// A known engine's image or port.
    Image,
}

/// One model server to scrape.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    /// The page's URL.
    pub url: String,
    /// The engine, when known before the first scrape.
    pub engine: Option<Engine>,
    /// The container serving it (for a static target: `container_id`
    /// `scrape:<url>`, nothing else).
    pub identity: ContainerIdentity,
    /// The model for samples without a model label (TGI).
    pub model: String,
    /// `model` was named by the `tally.dev/model` annotation (else it is a
    /// default the engine's own answer may replace).
    pub model_named: bool,
    /// How it was found.
    pub origin: Origin,
}

/// Engines whose default port is distinctive enough to scrape a pod that
/// declares it without an annotation or a known image.
const DISTINCT_PORTS: &[(u16, Engine)] = &[(30000, Engine::Sglang), (8002, Engine::Triton)];

/// Every target: static URLs first, then pods on this node.
pub fn discover(static_urls: &[String], pods: Option<&PodStore>) -> Vec<Target> {
    let mut targets: Vec<Target> = static_urls
        .iter()
        .map(|url| Target {
            url: url.clone(),
            engine: Engine::from_url(url),
            identity: ContainerIdentity {
                container_id: format!("scrape:{url}"),
                ..ContainerIdentity::default()
            },
            model: "unknown".to_owned(),
            model_named: false,
            origin: Origin::Static,
        })
        .collect();
    if let Some(pods) = pods {
        for pod in pods.pods() {
            if let Some(target) = pod_target(pod)
                && !targets.iter().any(|t| t.url == target.url)
            {
                targets.push(target);
            }
        }
    }
    targets
}

fn pod_target(pod: &PodInfo) -> Option<Target> {
    let annotation = |key: &str| pod.scrape_annotations.get(key).map(String::as_str);
    if pod.phase != "Running"
        || pod.pod_ip.is_empty()
        || annotation("tally.dev/scrape") == Some("false")
    {
        return None;
    }
    let annotated_engine = annotation("tally.dev/engine").and_then(Engine::parse);
    let annotated = annotated_engine.is_some()
        || annotation("tally.dev/scrape") == Some("true")
        || annotation("prometheus.io/scrape") == Some("true");
    let port_annotation = annotation("tally.dev/port")
        .or(annotation("prometheus.io/port"))
        .and_then(|p| p.trim().parse::<u16>().ok());

    // The serving container: the one declaring the annotated port, else
    // a known engine's image, else one declaring a distinctive port.
    let by_image = pod
        .containers
        .iter()
        .find_map(|c| Engine::from_image(&c.image).map(|e| (c, e)));
    let by_port = pod.containers.iter().find_map(|c| {
        DISTINCT_PORTS
            .iter()
            .find(|(port, _)| c.ports.contains(port))
            .map(|(port, engine)| (c, *engine, *port))
    });
    let (container, engine, port) = if annotated {
        let container = port_annotation
            .and_then(|port| pod.containers.iter().find(|c| c.ports.contains(&port)))
            .or(by_image.map(|(c, _)| c))
            .or(pod.containers.first())?;
        let engine = annotated_engine.or(by_image.map(|(_, e)| e));
        let port = port_annotation
            .or(engine.map(|e| e.default_endpoint().0))
            .or(container.ports.first().copied())?;
        (container, engine, port)
    } else if let Some((container, engine)) = by_image {
        let (default_port, _) = engine.default_endpoint();
        let port = if container.ports.is_empty() || container.ports.contains(&default_port) {
            default_port
        } else {
            container.ports[0]
        };
        (container, Some(engine), port)
    } else if let Some((container, engine, port)) = by_port {
        (container, Some(engine), port)
    } else {
        return None;
    };
    let path = annotation("tally.dev/path")
        .or(annotation("prometheus.io/path"))
        .unwrap_or(engine.map_or("/metrics", |e| e.default_endpoint().1));
    let scheme = match annotation("prometheus.io/scheme") {
        Some("https") => "https",
        _ => "http",
    };
    let path = if path.starts_with('/') {
        path.to_owned()
    } else {
        format!("/{path}")
    };
    let host = if pod.pod_ip.contains(':') {
        format!("[{}]", pod.pod_ip)
    } else {
        pod.pod_ip.clone()
    };
    Some(Target {
        url: format!("{scheme}://{host}:{port}{path}"),
        engine,
        identity: ContainerIdentity {
            namespace: pod.namespace.clone(),
            pod: pod.name.clone(),
            container: container.name.clone(),
            workload_kind: pod.workload_kind.clone(),
            workload_name: pod.workload_name.clone(),
            pod_uid: pod.uid.clone(),
            container_id: container.container_id.clone(),
        },
        model: annotation("tally.dev/model")
            .map(str::to_owned)
            .unwrap_or_else(|| pod.workload_name.clone()),
        model_named: annotation("tally.dev/model").is_some(),
        origin: if annotated {
            Origin::Annotation
        } else {
            Origin::Image
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::pods::model::PodContainer;

    fn pod(name: &str, image: &str, ports: &[u16], annotations: &[(&str, &str)]) -> PodInfo {
        PodInfo {
            uid: format!("uid-{name}"),
            namespace: "ml".into(),
            name: name.into(),
            phase: "Running".into(),
            workload_kind: "Deployment".into(),
            workload_name: name.into(),
            pod_ip: "10.0.0.7".into(),
            containers: vec![
                PodContainer {
                    name: "sidecar".into(),
                    image: "envoyproxy/envoy:v1.31".into(),
                    ports: vec![9901],
                    ..PodContainer::default()
                },
                PodContainer {
                    name: "server".into(),
                    container_id: format!("cid-{name}"),
                    image: image.into(),
                    ports: ports.to_vec(),
                    ..PodContainer::default()
                },
            ],
            scrape_annotations: annotations
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            ..PodInfo::default()
        }
    }

    fn urls(pods: Vec<PodInfo>) -> Vec<(String, Option<Engine>, String, Origin)> {
        let mut store = PodStore::default();
        for p in pods {
            store.upsert(p);
        }
        let mut found: Vec<_> = discover(&["http://127.0.0.1:8000/metrics".into()], Some(&store))
            .into_iter()
            .map(|t| (t.url, t.engine, t.identity.container, t.origin))
            .collect();
        found.sort_by(|a, b| a.0.cmp(&b.0));
        found
    }

    #[test]
    fn pods_are_found_by_annotation_image_and_port() {
        let found = urls(vec![
            pod("llama", "vllm/vllm-openai:v0.12.0", &[8000], &[]),
            pod(
                "custom",
                "corp/llm-server:3",
                &[9000],
                &[("tally.dev/engine", "tgi"), ("prometheus.io/port", "9000")],
            ),
            pod("qwen", "corp/sglang-fork:1", &[30000], &[]),
            pod("web", "nginx:1.27", &[80], &[]),
            pod(
                "opted-out",
                "vllm/vllm-openai:v0.12.0",
                &[8000],
                &[("tally.dev/scrape", "false")],
            ),
            pod(
                "exporter",
                "corp/app:1",
                &[8080],
                &[
                    ("prometheus.io/scrape", "true"),
                    ("prometheus.io/port", "8080"),
                    ("prometheus.io/path", "stats"),
                ],
            ),
        ]);
        let expected = vec![
            (
                "http://10.0.0.7:30000/metrics".to_owned(),
                Some(Engine::Sglang),
                "server".to_owned(),
                Origin::Image,
            ),
            (
                "http://10.0.0.7:8000/metrics".to_owned(),
                Some(Engine::Vllm),
                "server".to_owned(),
                Origin::Image,
            ),
            (
                "http://10.0.0.7:8080/stats".to_owned(),
                None,
                "server".to_owned(),
                Origin::Annotation,
            ),
            (
                "http://10.0.0.7:9000/metrics".to_owned(),
                Some(Engine::Tgi),
                "server".to_owned(),
                Origin::Annotation,
            ),
            (
                "http://127.0.0.1:8000/metrics".to_owned(),
                None,
                String::new(),
                Origin::Static,
            ),
        ];
        assert_eq!(found, expected);
    }

    #[test]
    fn pending_pods_and_pods_without_an_ip_are_skipped() {
        let mut pending = pod("llama", "vllm/vllm-openai:v0.12.0", &[8000], &[]);
        pending.phase = "Pending".into();
        let mut no_ip = pod("qwen", "vllm/vllm-openai:v0.12.0", &[8000], &[]);
        no_ip.pod_ip.clear();
        assert_eq!(urls(vec![pending, no_ip]).len(), 1);
    }
}
