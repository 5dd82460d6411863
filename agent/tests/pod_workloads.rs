//! Start-up, controller, PodDisruptionBudget and HorizontalPodAutoscaler
//! facts of the node's pods, read by the pod watch and the controller
//! refresh from a stand-in Kubernetes API server.
//!
//! No API server can run on the build machines, so an axum server on
//! 127.0.0.1 takes its place, over real HTTP, and replays objects kept
//! under `tests/fixtures/k8s/` (`workloads-pods.json`, a `PodList`, and
//! `workloads-objects.json`: Deployments, ReplicaSets, a StatefulSet,
//! `policy/v1` PodDisruptionBudgetLists and `autoscaling/v2`
//! HorizontalPodAutoscalerLists keyed by the API path that returns them).
//! They follow kube-apiserver's JSON wire format field for field (see
//! `generate.py` there). The server also answers what a real one would on
//! failure: a 404 for a deleted Deployment, a 403 `Status` where the
//! agent's RBAC lacks the PodDisruptionBudget list of one namespace and the
//! HorizontalPodAutoscaler list of another, and one list cut short as a
//! broken proxy might deliver it.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use opentelemetry_proto::tonic::metrics::v1::metric::Data;
use opentelemetry_proto::tonic::metrics::v1::number_data_point::Value;
use tally_agent::config::GpuNames;
use tally_agent::export::batch::{Window, build_request};
use tally_agent::exposition::{self, Format};
use tally_agent::snapshot::{Shared, Snapshot};
use tally_agent::sources::pods::model::{PodStore, SharedPodStore};
use tally_agent::sources::pods::workloads::PodFacts;
use tally_agent::sources::pods::{KubeClient, KubeConfig, run_controller_refresh, run_pod_watch};
use tally_agent::telemetry::SourceHealth;
use tally_schema::otlp;

const NODE: &str = "ip-10-0-12-34.us-west-2.compute.internal";
const NODE_JSON: &str = include_str!("fixtures/k8s/node.json");
const PODS_JSON: &str = include_str!("fixtures/k8s/workloads-pods.json");
const OBJECTS_JSON: &str = include_str!("fixtures/k8s/workloads-objects.json");

/// The start of a list whose connection broke off.
const CUT_SHORT: &str = r#"{"kind":"PodDisruptionBudgetList","apiVersion":"policy/v1","metadata":{"resourceVersion":"49105"},"items":[{"metadata":{"name":"legacy-api","namesp"#;

struct Api {
    objects: HashMap<String, serde_json::Value>,
    /// Paths requested under `/apis/`, in order.
    reads: Mutex<Vec<String>>,
}

fn json(body: String) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// A `meta/v1 Status` body as the API server sends with error codes.
fn status(code: StatusCode, reason: &str, message: &str) -> Response {
    let body = serde_json::json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": message, "reason": reason, "code": code.as_u16(),
    });
    (
        code,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

async fn node() -> Response {
    json(NODE_JSON.to_owned())
}

async fn pods(Query(query): Query<HashMap<String, String>>) -> Response {
    assert_eq!(
        query.get("fieldSelector").map(String::as_str),
        Some(format!("spec.nodeName={NODE}").as_str())
    );
    if query.get("watch").map(String::as_str) == Some("1") {
        // Nothing changes: the stream ends at once and is watched again.
        return json(String::new());
    }
    json(PODS_JSON.to_owned())
}

async fn apis(State(api): State<Arc<Api>>, uri: Uri) -> Response {
    let path = uri.path().to_owned();
    api.reads.lock().expect("reads").push(path.clone());
    if path == "/apis/policy/v1/namespaces/batch/poddisruptionbudgets" {
        return status(
            StatusCode::FORBIDDEN,
            "Forbidden",
            "poddisruptionbudgets.policy is forbidden: User \"system:serviceaccount:tally:tally-agent\" cannot list resource \"poddisruptionbudgets\" in API group \"policy\" in the namespace \"batch\"",
        );
    }
    if path == "/apis/autoscaling/v2/namespaces/ml/horizontalpodautoscalers" {
        return status(
            StatusCode::FORBIDDEN,
            "Forbidden",
            "horizontalpodautoscalers.autoscaling is forbidden: User \"system:serviceaccount:tally:tally-agent\" cannot list resource \"horizontalpodautoscalers\" in API group \"autoscaling\" in the namespace \"ml\"",
        );
    }
    if path == "/apis/policy/v1/namespaces/legacy/poddisruptionbudgets" {
        return json(CUT_SHORT.to_owned());
    }
    match api.objects.get(&path) {
        Some(object) => json(object.to_string()),
        None => {
            let name = path.rsplit('/').next().unwrap_or_default();
            status(
                StatusCode::NOT_FOUND,
                "NotFound",
                &format!("\"{name}\" not found"),
            )
        }
    }
}

struct Harness {
    api: Arc<Api>,
    store: SharedPodStore,
    health: Arc<SourceHealth>,
    shutdown: tokio::sync::watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

async fn start() -> Harness {
    let objects: HashMap<String, serde_json::Value> =
        serde_json::from_str(OBJECTS_JSON).expect("objects fixture");
    let api = Arc::new(Api {
        objects,
        reads: Mutex::default(),
    });
    let app = Router::new()
        .route("/api/v1/nodes/{name}", get(node))
        .route("/api/v1/pods", get(pods))
        .fallback(get(apis))
        .with_state(api.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });

    let client = KubeClient::new(&KubeConfig {
        api_url: format!("http://{address}"),
        token_path: None,
        ca_path: None,
        insecure_skip_tls_verify: false,
    })
    .expect("client");
    let store: SharedPodStore = Arc::new(RwLock::new(PodStore::default()));
    let health = SourceHealth::new("pods");
    let (shutdown, receiver) = tokio::sync::watch::channel(false);
    let tasks = vec![
        tokio::spawn(run_pod_watch(
            client.clone(),
            NODE.to_owned(),
            store.clone(),
            health.clone(),
            receiver.clone(),
        )),
        // Long enough that nothing is read twice during the test.
        tokio::spawn(run_controller_refresh(
            client,
            store.clone(),
            health.clone(),
            Duration::from_secs(3600),
            receiver,
        )),
    ];
    Harness {
        api,
        store,
        health,
        shutdown,
        tasks,
    }
}

impl Harness {
    /// Waits until every controller and namespace was read once.
    async fn wait_for_reads(&self) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let (budgets_read, autoscalers_read) = {
                let reads = self.api.reads.lock().expect("reads");
                let count = |suffix: &str| reads.iter().filter(|p| p.ends_with(suffix)).count();
                (
                    count("/poddisruptionbudgets"),
                    count("/horizontalpodautoscalers"),
                )
            };
            let facts = self.facts();
            let replicas_known = facts.values().filter(|f| f.replicas.is_some()).count();
            let autoscaled = facts.values().filter(|f| f.hpa_replicas.is_some()).count();
            if budgets_read == 5
                && autoscalers_read == 5
                && replicas_known == 7
                && autoscaled == 4
                && self.health.error_count("workload") == 1
            {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out: {budgets_read} budget and {autoscalers_read} autoscaler lists read, \
                 {replicas_known} pods with replicas, {autoscaled} with an autoscaler"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Facts by pod name.
    fn facts(&self) -> BTreeMap<String, PodFacts> {
        self.store
            .read()
            .expect("store")
            .all_facts()
            .into_iter()
            .map(|f| (f.identity.pod.clone(), f))
            .collect()
    }

    async fn stop(self) {
        self.shutdown.send(true).expect("tasks alive");
        for task in self.tasks {
            tokio::time::timeout(Duration::from_secs(3), task)
                .await
                .expect("the task stops promptly on shutdown")
                .expect("the task did not panic");
        }
    }
}

fn budgets(pairs: &[(&str, u64)]) -> Vec<(String, u64)> {
    pairs.iter().map(|(n, p)| ((*n).to_owned(), *p)).collect()
}

/// `(startup, replicas, rollout max unavailable, budgets)` of a pod.
type Expected = (Option<f64>, Option<u64>, Option<u64>, Vec<(String, u64)>);

fn expected() -> Vec<(&'static str, Expected)> {
    vec![
        // 25 % of 6 rounds down to 1; minAvailable 2; maxUnavailable 50 %
        // through In/NotIn (6 − 3); minAvailable 30 % of 6 rounds up to 2;
        // `payments` selects other pods and `orphan` has a null selector.
        (
            "checkout-6c8d9f7b1-abcde",
            (
                Some(24.0),
                Some(6),
                Some(1),
                budgets(&[("checkout", 2), ("frontend", 3), ("shop-wide", 2)]),
            ),
        ),
        // maxUnavailable 2 (an int); the canary track is NotIn `frontend`.
        (
            "cart-6c8d9f7b2-fghij",
            (Some(31.0), Some(4), Some(2), budgets(&[("shop-wide", 2)])),
        ),
        // Recreate takes every replica down; 30 % of 2 rounds up to 1.
        (
            "search-indexer-6c8d9f7b3-klmno",
            (Some(12.0), Some(2), Some(2), budgets(&[("shop-wide", 1)])),
        ),
        // The Deployment is gone (404): no replicas, so no percent budget.
        (
            "gone-api-6c8d9f7b4-pqrst",
            (Some(15.0), None, None, Vec::new()),
        ),
        // Minutes to Ready while the model loads; 25 % of 3 rounds down to
        // 0; maxUnavailable 1 through In/Exists/DoesNotExist.
        (
            "vllm-server-6c8d9f7b5-x2k4p",
            (
                Some(370.0),
                Some(3),
                Some(0),
                budgets(&[("vllm-server", 2)]),
            ),
        ),
        // Budgets of `batch` are forbidden: none, the rest still there.
        (
            "queue-worker-6c8d9f7b6-uvwxy",
            (Some(9.0), Some(3), Some(0), Vec::new()),
        ),
        (
            "nightly-report-29001234-7c9vq",
            (Some(5.0), None, None, Vec::new()),
        ),
        // Running but not Ready: no start-up yet; maxUnavailable 40 % of
        // 2 rounds up to 1.
        (
            "trainer-0",
            (None, Some(2), None, budgets(&[("trainer", 1)])),
        ),
        // A ReplicaSet without a Deployment: its replicas, no rollout; its
        // namespace's list came back cut short.
        (
            "legacy-api-5f6d7c8b9-zzzzz",
            (Some(20.0), Some(2), None, Vec::new()),
        ),
    ]
}

/// `(utilization targets, (min, max) replicas)` of a pod's autoscaler.
type ExpectedAutoscaler = (Vec<(&'static str, f64)>, (u64, u64));

/// The autoscaler of each pod that has one; every other pod has none.
fn expected_autoscalers() -> Vec<(&'static str, ExpectedAutoscaler)> {
    vec![
        // The pod's ReplicaSet is followed to the Deployment the
        // autoscaler names.
        ("checkout-6c8d9f7b1-abcde", (vec![("cpu", 0.7)], (2, 10))),
        // A memory target (its Pods metric left out); minReplicas unset.
        ("cart-6c8d9f7b2-fghij", (vec![("memory", 0.75)], (1, 8))),
        // An AverageValue CPU target and an External metric: no
        // utilization, the bounds alone.
        ("search-indexer-6c8d9f7b3-klmno", (Vec::new(), (2, 6))),
        // A bare ReplicaSet is scaled under its own name.
        ("legacy-api-5f6d7c8b9-zzzzz", (vec![("cpu", 0.5)], (2, 4))),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn controllers_budgets_and_autoscalers_resolve_into_pod_facts() {
    let h = start().await;
    h.wait_for_reads().await;

    let facts = h.facts();
    for (pod, (startup, replicas, rollout, budgets)) in expected() {
        let f = facts
            .get(pod)
            .unwrap_or_else(|| panic!("{pod} has no facts: {facts:?}"));
        assert_eq!(f.startup_seconds, startup, "{pod} start-up");
        assert_eq!(f.replicas, replicas, "{pod} replicas");
        assert_eq!(f.rollout_max_unavailable, rollout, "{pod} rollout");
        assert_eq!(f.disruption_budgets, budgets, "{pod} budgets");
    }
    assert_eq!(facts.len(), expected().len(), "{facts:?}");
    // `payments` scales a Deployment with no pod here, `checkout-canary` an
    // Argo Rollout; `trainer`'s list is forbidden; the rest have none.
    let autoscalers: BTreeMap<_, _> = expected_autoscalers().into_iter().collect();
    for (pod, f) in &facts {
        match autoscalers.get(pod.as_str()) {
            Some((targets, bounds)) => {
                assert_eq!(&f.hpa_targets, targets, "{pod} autoscaler targets");
                assert_eq!(f.hpa_replicas, Some(*bounds), "{pod} autoscaler bounds");
            }
            None => {
                assert!(f.hpa_targets.is_empty(), "{pod}: {f:?}");
                assert_eq!(f.hpa_replicas, None, "{pod}");
            }
        }
    }
    let checkout = &facts["checkout-6c8d9f7b1-abcde"].identity;
    assert_eq!(
        (
            checkout.workload_kind.as_str(),
            checkout.workload_name.as_str()
        ),
        ("Deployment", "checkout")
    );

    // Each controller once; Deployments by the name the watch resolved
    // (no ReplicaSet read twice), the bare ReplicaSet once more.
    {
        let reads = h.api.reads.lock().expect("reads");
        let count = |path: &str| reads.iter().filter(|p| *p == path).count();
        for path in [
            "/apis/apps/v1/namespaces/shop/deployments/checkout",
            "/apis/apps/v1/namespaces/shop/deployments/gone-api",
            "/apis/apps/v1/namespaces/inference/deployments/vllm-server",
            "/apis/apps/v1/namespaces/ml/statefulsets/trainer",
            "/apis/policy/v1/namespaces/shop/poddisruptionbudgets",
            "/apis/policy/v1/namespaces/batch/poddisruptionbudgets",
            "/apis/autoscaling/v2/namespaces/shop/horizontalpodautoscalers",
            "/apis/autoscaling/v2/namespaces/ml/horizontalpodautoscalers",
        ] {
            assert_eq!(count(path), 1, "{path} in {reads:?}");
        }
        assert_eq!(
            count("/apis/apps/v1/namespaces/shop/replicasets/checkout-6c8d9f7b1"),
            1,
            "read by the watch only"
        );
        assert_eq!(
            count("/apis/apps/v1/namespaces/legacy/replicasets/legacy-api-5f6d7c8b9"),
            2,
            "by the watch for the owner, by the refresh for the replicas"
        );
    }

    // The 403s, the cut-short list and the 404 are counted; nothing else.
    assert_eq!(h.health.error_count("pdb"), 2, "403 and the broken list");
    assert_eq!(h.health.error_count("hpa"), 1, "the forbidden list");
    assert_eq!(
        h.health.error_count("workload"),
        1,
        "the deleted Deployment"
    );
    for kind in ["list", "watch", "node", "owner", "decode", "quantity"] {
        assert_eq!(h.health.error_count(kind), 0, "{kind}");
    }

    check_metrics_page(&h);
    check_otlp(&h);
    h.stop().await;
}

/// The facts on `/metrics`, pod labels first; the pods of the namespace
/// whose budgets are forbidden keep their other families.
fn check_metrics_page(h: &Harness) {
    let (pods, pod_facts) = {
        let store = h.store.read().expect("store");
        (store.pods().cloned().collect(), store.all_facts())
    };
    let shared = Arc::new(Shared::new(NODE.to_owned(), vec![h.health.clone()]));
    shared.publish(Snapshot {
        pods,
        pod_facts,
        ..Default::default()
    });
    let registry = exposition::registry(shared);
    let page = exposition::render(&registry, Format::Prometheus).expect("render");
    let line = |prefix: &str| {
        page.lines()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no {prefix} in\n{page}"))
            .to_owned()
    };
    let startup = line(
        "tally_pod_startup_seconds{node=\"ip-10-0-12-34.us-west-2.compute.internal\",namespace=\"inference\",pod=\"vllm-server-6c8d9f7b5-x2k4p\",workload_kind=\"Deployment\",workload_name=\"vllm-server\",pod_uid=",
    );
    assert!(startup.ends_with(" 370"), "{startup}");
    let pdb = line(
        "tally_pod_disruption_budget_min_available{node=\"ip-10-0-12-34.us-west-2.compute.internal\",namespace=\"shop\",pod=\"checkout-6c8d9f7b1-abcde\",workload_kind=\"Deployment\",workload_name=\"checkout\",pod_uid=",
    );
    assert!(pdb.contains(",pdb=\"checkout\"} 2"), "{pdb}");
    let replicas = line("tally_workload_replicas{");
    assert!(replicas.contains("namespace=\""), "{replicas}");
    assert!(page.contains("# TYPE tally_workload_rollout_max_unavailable gauge"));
    assert!(
        page.lines()
            .any(|l| l.starts_with("tally_workload_replicas{")
                && l.contains("pod=\"queue-worker-6c8d9f7b6-uvwxy\"")
                && l.ends_with(" 3")),
        "{page}"
    );
    assert!(
        !page.lines().any(
            |l| l.starts_with("tally_pod_disruption_budget_min_available{")
                && l.contains("namespace=\"batch\"")
        ),
        "no budget series where the list is forbidden"
    );
    assert!(
        !page
            .lines()
            .any(|l| l.starts_with("tally_pod_startup_seconds{") && l.contains("pod=\"trainer-0\"")),
        "no start-up before Ready"
    );
    assert!(
        page.contains("tally_agent_source_errors_total{node=\"ip-10-0-12-34.us-west-2.compute.internal\",source=\"pods\",kind=\"pdb\"} 2"),
        "{page}"
    );

    // Autoscalers: pod labels, then the resource or the bound.
    let checkout = "{node=\"ip-10-0-12-34.us-west-2.compute.internal\",namespace=\"shop\",pod=\"checkout-6c8d9f7b1-abcde\",workload_kind=\"Deployment\",workload_name=\"checkout\",pod_uid=";
    let target = line(&format!(
        "tally_workload_hpa_target_utilization_ratio{checkout}"
    ));
    assert!(target.ends_with(",resource=\"cpu\"} 0.7"), "{target}");
    for (bound, value) in [("min", 2), ("max", 10)] {
        assert!(
            page.lines().any(
                |l| l.starts_with(&format!("tally_workload_hpa_replicas{checkout}"))
                    && l.ends_with(&format!(",bound=\"{bound}\"}} {value}"))
            ),
            "{bound} in\n{page}"
        );
    }
    assert!(
        page.contains("# TYPE tally_workload_hpa_target_utilization_ratio gauge"),
        "{page}"
    );
    assert!(
        page.lines().any(
            |l| l.starts_with("tally_workload_hpa_target_utilization_ratio{")
                && l.contains("pod=\"cart-6c8d9f7b2-fghij\"")
                && l.ends_with(",resource=\"memory\"} 0.75")
        ),
        "{page}"
    );
    // Where the autoscaler list is forbidden, its families alone are
    // missing.
    let trainer = |family: &str| {
        page.lines()
            .any(|l| l.starts_with(&format!("{family}{{")) && l.contains("pod=\"trainer-0\""))
    };
    assert!(trainer("tally_workload_replicas"));
    assert!(trainer("tally_pod_disruption_budget_min_available"));
    assert!(!trainer("tally_workload_hpa_replicas"));
    assert!(!trainer("tally_workload_hpa_target_utilization_ratio"));
    assert!(
        page.contains("tally_agent_source_errors_total{node=\"ip-10-0-12-34.us-west-2.compute.internal\",source=\"pods\",kind=\"hpa\"} 1"),
        "{page}"
    );
}

/// Over OTLP each pod is a resource and `pdb`, `resource` and `bound`
/// point attributes.
fn check_otlp(h: &Harness) {
    let pod_facts = h.store.read().expect("store").all_facts();
    let snapshot = Snapshot {
        pod_facts,
        ..Default::default()
    };
    let now = SystemTime::now();
    let window = Window {
        process_start: now,
        window_start: now,
        now,
    };
    let request = build_request(
        &snapshot,
        NODE,
        Vec::new(),
        Default::default(),
        &window,
        "test",
        GpuNames::Tally,
    );
    let mut budgets = Vec::new();
    let mut autoscalers = Vec::new();
    let mut startups = 0;
    for rm in &request.resource_metrics {
        let attributes = &rm.resource.as_ref().expect("resource").attributes;
        let pod = otlp::find_string(attributes, "k8s.pod.name").unwrap_or_default();
        for metric in rm.scope_metrics.iter().flat_map(|s| &s.metrics) {
            let Some(Data::Gauge(gauge)) = &metric.data else {
                panic!("{} is not a gauge", metric.name);
            };
            for point in &gauge.data_points {
                let value = match point.value {
                    Some(Value::AsDouble(v)) => v,
                    Some(Value::AsInt(v)) => v as f64,
                    None => f64::NAN,
                };
                match metric.name.as_str() {
                    "tally_pod_disruption_budget_min_available" => budgets.push((
                        pod.to_owned(),
                        otlp::find_string(&point.attributes, "pdb")
                            .unwrap_or_default()
                            .to_owned(),
                        value,
                    )),
                    "tally_pod_startup_seconds" => startups += 1,
                    "tally_workload_hpa_target_utilization_ratio"
                    | "tally_workload_hpa_replicas" => {
                        let label = otlp::find_string(&point.attributes, "resource")
                            .or_else(|| otlp::find_string(&point.attributes, "bound"))
                            .unwrap_or_default();
                        autoscalers.push(format!("{pod} {label} {value}"));
                    }
                    _ => {}
                }
            }
        }
    }
    assert_eq!(startups, 8, "every Ready pod");
    assert!(
        budgets.contains(&("trainer-0".to_owned(), "trainer".to_owned(), 1.0)),
        "{budgets:?}"
    );
    assert_eq!(budgets.len(), 7, "{budgets:?}");
    autoscalers.sort();
    assert_eq!(
        autoscalers,
        [
            "cart-6c8d9f7b2-fghij max 8",
            "cart-6c8d9f7b2-fghij memory 0.75",
            "cart-6c8d9f7b2-fghij min 1",
            "checkout-6c8d9f7b1-abcde cpu 0.7",
            "checkout-6c8d9f7b1-abcde max 10",
            "checkout-6c8d9f7b1-abcde min 2",
            "legacy-api-5f6d7c8b9-zzzzz cpu 0.5",
            "legacy-api-5f6d7c8b9-zzzzz max 4",
            "legacy-api-5f6d7c8b9-zzzzz min 2",
            "search-indexer-6c8d9f7b3-klmno max 6",
            "search-indexer-6c8d9f7b3-klmno min 2",
        ]
    );
}
