//! Keeps what the API says about the controllers, disruption budgets and
//! horizontal autoscalers of this node's pods current in the
//! [`SharedPodStore`].
//!
//! Every second it looks at the pods the watch holds: for each distinct
//! top-level controller with replicas (a Deployment, a StatefulSet, a
//! ReplicaSet without a Deployment) it GETs the object, and for each
//! namespace it LISTs `policy/v1` PodDisruptionBudgets and
//! `autoscaling/v2` HorizontalPodAutoscalers, each at most once per
//! refresh interval (`kubernetes.controller_refresh_interval`, 5 min).
//! A Deployment is read by the name the watch resolved from the pod's
//! ReplicaSet, so no ReplicaSet is read twice; a pod left with a
//! ReplicaSet workload (its ReplicaSet could not be read then) has it
//! read again here and followed to its Deployment.
//!
//! Failures (403 without the RBAC, 404, a malformed object) are counted on
//! the pod source's health as `workload`, `pdb` or `hpa` and logged once
//! per kind;
//! what could not be read is absent until the next refresh retries it, and
//! the pod watch carries on unaffected.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::client::{KubeClient, KubeError};
use super::convert::{
    self, Controller, HorizontalPodAutoscalerList, PodDisruptionBudgetList, PolicyError,
};
use super::model::SharedPodStore;
use super::watch::{encode_path_segment, stopped};
use super::workloads::{Autoscaler, ControllerFacts, DisruptionBudget, WorkloadRef};
use crate::telemetry::SourceHealth;

/// How often the pods are checked for controllers and namespaces not read
/// yet or due again (a look at the store; the API is only asked when
/// something is new or due).
pub const POLL_INTERVAL: Duration = Duration::from_secs(1);

/// Reads controllers, disruption budgets and autoscalers of `store`'s pods
/// until
/// `shutdown` turns `true` (or its sender is dropped), re-reading each
/// every `refresh`. Never returns early on errors.
pub async fn run_controller_refresh(
    client: KubeClient,
    store: SharedPodStore,
    health: Arc<SourceHealth>,
    refresh: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    tracing::info!(
        ?refresh,
        "starting the controller, disruption budget and autoscaler refresh"
    );
    let mut refresher = Refresher {
        client,
        store,
        health,
        refresh,
        controllers: HashMap::new(),
        namespaces: HashMap::new(),
    };
    loop {
        tokio::select! {
            biased;
            () = stopped(&mut shutdown) => break,
            () = refresher.pass() => {}
        }
        tokio::select! {
            biased;
            () = stopped(&mut shutdown) => break,
            () = tokio::time::sleep(POLL_INTERVAL) => {}
        }
    }
    tracing::info!("controller refresh stopped");
}

/// A read and when it was made; `None` when it failed (retried when due).
struct Cached<T> {
    read_at: Instant,
    value: Option<T>,
}

/// The lists of one namespace, read together; each `None` when its list
/// failed (both are retried when due).
struct NamespaceLists {
    read_at: Instant,
    budgets: Option<Vec<DisruptionBudget>>,
    autoscalers: Option<Vec<Autoscaler>>,
}

struct Refresher {
    client: KubeClient,
    store: SharedPodStore,
    health: Arc<SourceHealth>,
    refresh: Duration,
    controllers: HashMap<WorkloadRef, Cached<ControllerFacts>>,
    namespaces: HashMap<String, NamespaceLists>,
}

/// Why a controller could not be read.
#[derive(Debug, thiserror::Error)]
enum WorkloadError {
    #[error("reading the {kind} {namespace}/{name}: {source}")]
    Api {
        kind: &'static str,
        namespace: String,
        name: String,
        source: KubeError,
    },
    #[error(transparent)]
    Policy(#[from] PolicyError),
}

/// Why a namespace's disruption budgets or autoscalers could not be
/// listed.
#[derive(Debug, thiserror::Error)]
#[error("listing the {resource} of namespace {namespace}: {source}")]
struct ListError {
    /// `PodDisruptionBudgets` or `HorizontalPodAutoscalers`.
    resource: &'static str,
    namespace: String,
    source: KubeError,
}

impl Refresher {
    /// Reads what is new or due and publishes the result when anything
    /// changed.
    async fn pass(&mut self) {
        let (workloads, namespaces) = self.wanted();
        let cached = self.controllers.len() + self.namespaces.len();
        // Controllers and namespaces no pod on the node uses any more.
        self.controllers.retain(|key, _| workloads.contains(key));
        self.namespaces
            .retain(|namespace, _| namespaces.contains(namespace));
        let mut changed = cached != self.controllers.len() + self.namespaces.len();
        for key in workloads {
            if self.is_fresh(self.controllers.get(&key).map(|c| c.read_at)) {
                continue;
            }
            let value = match self.controller(&key).await {
                Ok(facts) => Some(facts),
                Err(error) => {
                    self.health.error("workload", &error);
                    None
                }
            };
            tracing::debug!(?key, ?value, "controller read");
            let read_at = Instant::now();
            self.controllers.insert(key, Cached { read_at, value });
            changed = true;
        }
        for namespace in namespaces {
            if self.is_fresh(self.namespaces.get(&namespace).map(|c| c.read_at)) {
                continue;
            }
            let budgets = self.disruption_budgets(&namespace).await;
            let autoscalers = self.autoscalers(&namespace).await;
            let lists = NamespaceLists {
                read_at: Instant::now(),
                budgets,
                autoscalers,
            };
            self.namespaces.insert(namespace, lists);
            changed = true;
        }
        if changed {
            self.publish();
        }
    }

    fn is_fresh(&self, read_at: Option<Instant>) -> bool {
        read_at.is_some_and(|at| at.elapsed() < self.refresh)
    }

    /// The controllers and namespaces of the pods on the node, sorted so
    /// reads happen in a stable order.
    fn wanted(&self) -> (BTreeSet<WorkloadRef>, BTreeSet<String>) {
        let store = match self.store.read() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        let mut workloads = BTreeSet::new();
        let mut namespaces = BTreeSet::new();
        for pod in store.pods() {
            if pod.namespace.is_empty() {
                continue;
            }
            if !namespaces.contains(&pod.namespace) {
                namespaces.insert(pod.namespace.clone());
            }
            if let Some(key) =
                WorkloadRef::of(&pod.namespace, &pod.workload_kind, &pod.workload_name)
            {
                workloads.insert(key);
            }
        }
        (workloads, namespaces)
    }

    fn publish(&self) {
        let controllers = self
            .controllers
            .iter()
            .filter_map(|(key, cached)| {
                cached
                    .value
                    .as_ref()
                    .map(|facts| (key.clone(), facts.clone()))
            })
            .collect();
        let budgets = self
            .namespaces
            .iter()
            .filter_map(|(namespace, lists)| {
                let budgets = lists.budgets.as_ref()?;
                Some((namespace.clone(), budgets.clone()))
            })
            .collect();
        let autoscalers = self
            .namespaces
            .iter()
            .filter_map(|(namespace, lists)| {
                let autoscalers = lists.autoscalers.as_ref()?;
                Some((namespace.clone(), autoscalers.clone()))
            })
            .collect();
        // A panicking reader cannot leave the maps half-written; keep going.
        let mut store = self
            .store
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        store.set_controllers(controllers);
        store.set_disruption_budgets(budgets);
        store.set_autoscalers(autoscalers);
    }

    /// A Deployment or StatefulSet by name; a ReplicaSet, followed to the
    /// Deployment that controls it when there is one.
    async fn controller(&self, key: &WorkloadRef) -> Result<ControllerFacts, WorkloadError> {
        let namespace = key.namespace.as_str();
        match key.kind.as_str() {
            "Deployment" => self.read("Deployment", namespace, &key.name).await,
            "StatefulSet" => self.read("StatefulSet", namespace, &key.name).await,
            _ => {
                let replicaset = self.get("ReplicaSet", namespace, &key.name).await?;
                match replicaset.metadata.controller() {
                    Some(owner) if owner.kind == "Deployment" => {
                        let mut facts = self.read("Deployment", namespace, &owner.name).await?;
                        facts.deployment = Some(owner.name.clone());
                        Ok(facts)
                    }
                    _ => Ok(convert::controller_facts("ReplicaSet", &replicaset)?),
                }
            }
        }
    }

    async fn read(
        &self,
        kind: &'static str,
        namespace: &str,
        name: &str,
    ) -> Result<ControllerFacts, WorkloadError> {
        let controller = self.get(kind, namespace, name).await?;
        Ok(convert::controller_facts(kind, &controller)?)
    }

    async fn get(
        &self,
        kind: &'static str,
        namespace: &str,
        name: &str,
    ) -> Result<Controller, WorkloadError> {
        let resource = match kind {
            "Deployment" => "deployments",
            "StatefulSet" => "statefulsets",
            _ => "replicasets",
        };
        let path = format!(
            "/apis/apps/v1/namespaces/{}/{resource}/{}",
            encode_path_segment(namespace),
            encode_path_segment(name)
        );
        self.client
            .get_json(&path)
            .await
            .map_err(|source| WorkloadError::Api {
                kind,
                namespace: namespace.to_owned(),
                name: name.to_owned(),
                source,
            })
    }

    /// The namespace's budgets that can be applied; a malformed budget is
    /// counted and left out, a failed list is counted and yields `None`.
    async fn disruption_budgets(&self, namespace: &str) -> Option<Vec<DisruptionBudget>> {
        let path = format!(
            "/apis/policy/v1/namespaces/{}/poddisruptionbudgets",
            encode_path_segment(namespace)
        );
        let list: PodDisruptionBudgetList = match self.client.get_json(&path).await {
            Ok(list) => list,
            Err(source) => {
                let error = ListError {
                    resource: "PodDisruptionBudgets",
                    namespace: namespace.to_owned(),
                    source,
                };
                self.health.error("pdb", &error);
                return None;
            }
        };
        let mut budgets = Vec::with_capacity(list.items.len());
        for item in &list.items {
            match convert::disruption_budget(item) {
                Ok(Some(budget)) => budgets.push(budget),
                Ok(None) => {}
                Err(error) => self.health.error("pdb", &error),
            }
        }
        tracing::debug!(
            namespace,
            budgets = budgets.len(),
            "disruption budgets read"
        );
        Some(budgets)
    }

    /// The namespace's autoscalers of `apps` controllers, by name; a
    /// malformed one is counted and left out, a failed list is counted and
    /// yields `None`.
    async fn autoscalers(&self, namespace: &str) -> Option<Vec<Autoscaler>> {
        let path = format!(
            "/apis/autoscaling/v2/namespaces/{}/horizontalpodautoscalers",
            encode_path_segment(namespace)
        );
        let list: HorizontalPodAutoscalerList = match self.client.get_json(&path).await {
            Ok(list) => list,
            Err(source) => {
                let error = ListError {
                    resource: "HorizontalPodAutoscalers",
                    namespace: namespace.to_owned(),
                    source,
                };
                self.health.error("hpa", &error);
                return None;
            }
        };
        let mut autoscalers = Vec::with_capacity(list.items.len());
        for item in &list.items {
            match convert::autoscaler(item) {
                Ok(Some(autoscaler)) => autoscalers.push(autoscaler),
                Ok(None) => {}
                Err(error) => self.health.error("hpa", &error),
            }
        }
        // The API lists by name already; the pod facts rely on it.
        autoscalers.sort_by(|a, b| a.name.cmp(&b.name));
        tracing::debug!(
            namespace,
            autoscalers = autoscalers.len(),
            "autoscalers read"
        );
        Some(autoscalers)
    }
}
