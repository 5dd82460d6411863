//! The node-scoped pod watch: list, then watch, the pods bound to this node
//! and keep the [`SharedPodStore`] current.
//!
//! The loop follows the usual Kubernetes reflector pattern:
//!
//! 1. GET the node (labels → [`NodeIdentity`](tally_schema::identity::NodeIdentity)),
//! 2. LIST `pods?fieldSelector=spec.nodeName=<node>` and replace the store,
//! 3. WATCH from the list's `resourceVersion` with bookmarks; apply
//!    `ADDED`/`MODIFIED`/`DELETED`, follow `BOOKMARK`s, re-watch from the last
//!    version when the server ends the stream, relist on `410 Gone`.
//!
//! Failures back off from 1 s doubling to 30 s and are counted on the
//! source's [`SourceHealth`] by kind: `node`, `list`, `watch`, `decode`,
//! `owner`, `quantity` (the controller refresh beside it adds `workload`
//! and `pdb`, see [`super::controllers`]).

use std::collections::HashMap;
use std::sync::{Arc, RwLockWriteGuard};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::client::{KubeClient, KubeError};
use super::convert::{self, MetaOnly, Pod, PodList, Status, WatchEvent};
use super::model::{PodInfo, PodStore, SharedPodStore};
use crate::telemetry::SourceHealth;

/// Server-side timeout asked of each watch request.
const WATCH_TIMEOUT_SECONDS: u64 = 300;
/// Client-side bound on a whole watch request.
const WATCH_REQUEST_TIMEOUT: Duration = Duration::from_secs(WATCH_TIMEOUT_SECONDS + 30);
/// First retry delay.
const BACKOFF_START: Duration = Duration::from_secs(1);
/// Longest retry delay.
const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// A watch that ends sooner than this without delivering anything is
/// retried after a backoff rather than at once.
const MIN_HEALTHY_WATCH: Duration = Duration::from_secs(1);
/// ReplicaSet owners remembered at most (cleared when exceeded).
const OWNER_CACHE_MAX: usize = 4096;

/// Lists and watches the pods on `node_name` until `shutdown` turns `true`
/// (or its sender is dropped), keeping `store` and `health` current. Never
/// returns early on errors: it counts them, backs off and retries.
pub async fn run_pod_watch(
    client: KubeClient,
    node_name: String,
    store: SharedPodStore,
    health: Arc<SourceHealth>,
    mut shutdown: watch::Receiver<bool>,
) {
    tracing::info!(node = %node_name, "starting the pod watch");
    let mut watcher = PodWatch {
        client,
        node_name,
        store,
        health,
        resource_version: None,
        owners: HashMap::new(),
        backoff: Backoff::default(),
    };
    loop {
        let delay = tokio::select! {
            biased;
            () = stopped(&mut shutdown) => break,
            delay = watcher.cycle() => delay,
        };
        if let Some(delay) = delay {
            tracing::debug!(?delay, "pod watch backing off");
            tokio::select! {
                biased;
                () = stopped(&mut shutdown) => break,
                () = tokio::time::sleep(delay) => {}
            }
        }
    }
    tracing::info!("pod watch stopped");
}

/// Resolves when shutdown is requested or nobody can request it any more.
pub(super) async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    // An error means the sender is gone: nothing can keep us running.
    let _ = shutdown.wait_for(|stop| *stop).await;
}

/// Why a watch event could not be used.
#[derive(Debug, thiserror::Error)]
enum EventError {
    #[error("malformed watch event: {0}")]
    Json(#[from] serde_json::Error),
    #[error("unknown watch event type {0:?}")]
    UnknownType(String),
    #[error("watch ERROR event: code {code}, reason {reason:?}: {message}")]
    Status {
        code: u16,
        reason: String,
        message: String,
    },
}

/// What the watch loop does after one event.
enum Applied {
    Continue,
    /// The resource version expired: list again.
    Gone,
    /// The server reported an error: retry after a backoff.
    Failed(EventError),
}

struct PodWatch {
    client: KubeClient,
    node_name: String,
    store: SharedPodStore,
    health: Arc<SourceHealth>,
    /// Where to watch from; `None` means list first.
    resource_version: Option<String>,
    /// `(namespace, replicaset)` → top-level `(kind, name)`.
    owners: HashMap<(String, String), (String, String)>,
    backoff: Backoff,
}

impl PodWatch {
    /// One list or one watch request; returns how long to wait before the
    /// next, if at all.
    async fn cycle(&mut self) -> Option<Duration> {
        match self.resource_version.clone() {
            None => self.relist().await,
            Some(version) => self.watch_from(&version).await,
        }
    }

    fn pods_path(&self) -> String {
        format!(
            "/api/v1/pods?fieldSelector={}",
            encode_query_value(&format!("spec.nodeName={}", self.node_name))
        )
    }

    async fn relist(&mut self) -> Option<Duration> {
        let started = Instant::now();
        self.refresh_node().await;
        let list: PodList = match self.client.get_json(&self.pods_path()).await {
            Ok(list) => list,
            Err(e) => {
                self.health.record_degraded(started.elapsed());
                self.health.error("list", &e);
                return Some(self.backoff.next_delay());
            }
        };
        let mut pods = Vec::with_capacity(list.items.len());
        for pod in &list.items {
            pods.push(self.convert(pod).await);
        }
        self.owners.retain(|(namespace, name), _| {
            list.items.iter().any(|pod| {
                pod.metadata.namespace == *namespace
                    && pod
                        .metadata
                        .controller()
                        .is_some_and(|o| o.kind == "ReplicaSet" && o.name == *name)
            })
        });
        tracing::info!(
            pods = pods.len(),
            resource_version = %list.metadata.resource_version,
            "listed the pods on this node"
        );
        lock(&self.store).replace_all(pods);
        self.resource_version = Some(list.metadata.resource_version);
        // The list is the source's "collection": time it.
        self.health.record_success(started.elapsed());
        self.backoff.reset();
        None
    }

    async fn refresh_node(&mut self) {
        let path = format!("/api/v1/nodes/{}", encode_path_segment(&self.node_name));
        match self.client.get_json::<MetaOnly>(&path).await {
            Ok(node) => {
                let identity = convert::node_identity(&self.node_name, &node.metadata.labels);
                tracing::debug!(?identity, "node identity");
                lock(&self.store).set_node(identity);
            }
            Err(e) => {
                self.health.error("node", &e);
                let mut store = lock(&self.store);
                if store.node().is_none() {
                    store.set_node(tally_schema::identity::NodeIdentity {
                        name: self.node_name.clone(),
                        ..Default::default()
                    });
                }
            }
        }
    }

    async fn watch_from(&mut self, version: &str) -> Option<Duration> {
        let mut path = format!(
            "{}&watch=1&allowWatchBookmarks=true&timeoutSeconds={WATCH_TIMEOUT_SECONDS}",
            self.pods_path()
        );
        if !version.is_empty() {
            path.push_str("&resourceVersion=");
            path.push_str(&encode_query_value(version));
        }
        let started = Instant::now();
        let mut stream = match self.client.watch(&path, WATCH_REQUEST_TIMEOUT).await {
            Ok(stream) => stream,
            Err(e) if e.status() == Some(410) => {
                tracing::info!(error = %e, "watch resource version expired; relisting");
                self.resource_version = None;
                return None;
            }
            Err(e) => return Some(self.watch_failed(&e)),
        };
        self.health.set_up(true);
        let mut applied = 0_u64;
        loop {
            let line = match stream.next_line().await {
                Ok(Some(line)) => line,
                Ok(None) => break,
                Err(e) => return Some(self.watch_failed(&e)),
            };
            match self.apply(&line).await {
                Applied::Continue => {
                    applied += 1;
                    self.backoff.reset();
                }
                Applied::Gone => {
                    tracing::info!("watch answered 410 Gone; relisting");
                    self.resource_version = None;
                    return None;
                }
                Applied::Failed(e) => return Some(self.watch_failed(&e)),
            }
        }
        tracing::debug!(applied, "watch stream ended; watching again");
        if applied == 0 && started.elapsed() < MIN_HEALTHY_WATCH {
            // A server or proxy closing at once must not become a hot loop.
            return Some(self.backoff.next_delay());
        }
        self.backoff.reset();
        None
    }

    fn watch_failed(&mut self, error: &dyn std::fmt::Display) -> Duration {
        self.health.set_up(false);
        self.health.error("watch", error);
        self.backoff.next_delay()
    }

    /// Applies one watch line. Malformed lines are counted as `decode`
    /// errors and skipped.
    async fn apply(&mut self, line: &[u8]) -> Applied {
        match self.try_apply(line).await {
            Ok(applied) => applied,
            Err(e) => {
                self.health.error("decode", &e);
                Applied::Continue
            }
        }
    }

    async fn try_apply(&mut self, line: &[u8]) -> Result<Applied, EventError> {
        let event: WatchEvent = serde_json::from_slice(line)?;
        match event.kind.as_str() {
            "ADDED" | "MODIFIED" => {
                let pod: Pod = serde_json::from_value(event.object)?;
                self.advance(&pod.metadata.resource_version);
                let info = self.convert(&pod).await;
                tracing::debug!(kind = %event.kind, pod = %info.name, namespace = %info.namespace, "pod event");
                lock(&self.store).upsert(info);
            }
            "DELETED" => {
                let pod: MetaOnly = serde_json::from_value(event.object)?;
                self.advance(&pod.metadata.resource_version);
                tracing::debug!(pod = %pod.metadata.name, namespace = %pod.metadata.namespace, "pod deleted");
                lock(&self.store).remove(&pod.metadata.uid);
            }
            "BOOKMARK" => {
                let bookmark: MetaOnly = serde_json::from_value(event.object)?;
                self.advance(&bookmark.metadata.resource_version);
            }
            "ERROR" => {
                let status: Status = serde_json::from_value(event.object)?;
                if status.code == 410 {
                    return Ok(Applied::Gone);
                }
                return Ok(Applied::Failed(EventError::Status {
                    code: status.code,
                    reason: status.reason,
                    message: status.message,
                }));
            }
            other => return Err(EventError::UnknownType(other.to_owned())),
        }
        Ok(Applied::Continue)
    }

    fn advance(&mut self, version: &str) {
        if !version.is_empty() {
            self.resource_version = Some(version.to_owned());
        }
    }

    async fn convert(&mut self, pod: &Pod) -> PodInfo {
        let (kind, name) = self.workload(pod).await;
        let (info, errors) = convert::pod_info(pod, kind, name);
        for e in errors {
            self.health.error("quantity", &e);
        }
        info
    }

    /// The pod's top-level owner.
    ///
    /// * ReplicaSet → the ReplicaSet's controlling Deployment, read with a
    ///   GET (cached by namespace/name); the ReplicaSet itself when it has no
    ///   Deployment owner or cannot be read.
    /// * Job → CronJob by name only. RBAC grants the agent pods, nodes and
    ///   the apps controllers, not jobs, so the Job object cannot be read.
    ///   The CronJob controller names its Jobs `<cronjob>-<scheduled time
    ///   in minutes since the epoch>`, so a Job whose name ends in `-` and
    ///   8 or more digits is attributed to the CronJob named by the prefix;
    ///   any other Job stays a Job. A hand-made Job named like `backup-20240101` is
    ///   misattributed to a CronJob `backup`.
    /// * StatefulSet, DaemonSet and any other controller → itself.
    /// * No owner → kind `Pod`, name the pod's name.
    async fn workload(&mut self, pod: &Pod) -> (String, String) {
        let Some(owner) = pod.metadata.controller() else {
            return ("Pod".to_owned(), pod.metadata.name.clone());
        };
        match owner.kind.as_str() {
            "ReplicaSet" => {
                self.replicaset_owner(&pod.metadata.namespace, &owner.name)
                    .await
            }
            "Job" => match cronjob_of_job(&owner.name) {
                Some(cronjob) => ("CronJob".to_owned(), cronjob.to_owned()),
                None => ("Job".to_owned(), owner.name.clone()),
            },
            _ => (owner.kind.clone(), owner.name.clone()),
        }
    }

    async fn replicaset_owner(&mut self, namespace: &str, name: &str) -> (String, String) {
        let key = (namespace.to_owned(), name.to_owned());
        if let Some(owner) = self.owners.get(&key) {
            return owner.clone();
        }
        let path = format!(
            "/apis/apps/v1/namespaces/{}/replicasets/{}",
            encode_path_segment(namespace),
            encode_path_segment(name)
        );
        match self.client.get_json::<MetaOnly>(&path).await {
            Ok(replicaset) => {
                let owner = match replicaset.metadata.controller() {
                    Some(o) if o.kind == "Deployment" => ("Deployment".to_owned(), o.name.clone()),
                    _ => ("ReplicaSet".to_owned(), name.to_owned()),
                };
                if self.owners.len() >= OWNER_CACHE_MAX {
                    self.owners.clear();
                }
                self.owners.insert(key, owner.clone());
                owner
            }
            Err(e) => {
                // Not cached: the next event for this pod tries again.
                self.health.error("owner", &OwnerError { path, source: e });
                ("ReplicaSet".to_owned(), name.to_owned())
            }
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("resolving the owner of a ReplicaSet ({path}): {source}")]
struct OwnerError {
    path: String,
    source: KubeError,
}

/// The CronJob that, by the CronJob controller's naming, created the Job
/// `job`: `nightly-report-29001234` → `nightly-report`. See
/// `PodWatch::workload` for the heuristic's limits.
pub fn cronjob_of_job(job: &str) -> Option<&str> {
    let (prefix, suffix) = job.rsplit_once('-')?;
    (!prefix.is_empty() && suffix.len() >= 8 && suffix.bytes().all(|b| b.is_ascii_digit()))
        .then_some(prefix)
}

fn lock(store: &SharedPodStore) -> RwLockWriteGuard<'_, PodStore> {
    // A panicking reader cannot leave the map half-written; keep going.
    store
        .write()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
fn encode_query_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Object names are DNS labels or subdomains, but encode defensively.
pub(super) fn encode_path_segment(value: &str) -> String {
    encode_query_value(value)
}

/// 1 s doubling to 30 s.
#[derive(Debug)]
struct Backoff {
    next: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            next: BACKOFF_START,
        }
    }
}

impl Backoff {
    fn next_delay(&mut self) -> Duration {
        let delay = self.next;
        self.next = (self.next * 2).min(BACKOFF_MAX);
        delay
    }

    fn reset(&mut self) {
        self.next = BACKOFF_START;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cronjob_names_need_eight_or_more_digits() {
        assert_eq!(
            cronjob_of_job("nightly-report-29001234"),
            Some("nightly-report")
        );
        assert_eq!(cronjob_of_job("x-123456789"), Some("x"));
        assert_eq!(cronjob_of_job("migrate-1234567"), None, "7 digits");
        assert_eq!(cronjob_of_job("migrate-db"), None);
        assert_eq!(cronjob_of_job("-29001234"), None);
        assert_eq!(cronjob_of_job("29001234"), None);
        assert_eq!(cronjob_of_job("job-2900123a"), None);
    }

    #[test]
    fn backoff_doubles_to_thirty_seconds_and_resets() {
        let mut backoff = Backoff::default();
        let delays: Vec<u64> = (0..7).map(|_| backoff.next_delay().as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 30, 30]);
        backoff.reset();
        assert_eq!(backoff.next_delay(), Duration::from_secs(1));
    }

    #[test]
    fn query_values_are_percent_encoded() {
        assert_eq!(
            encode_query_value("spec.nodeName=ip-10-0-1-2.ec2.internal"),
            "spec.nodeName%3Dip-10-0-1-2.ec2.internal"
        );
        assert_eq!(encode_query_value("a b/c"), "a%20b%2Fc");
    }
}
