//! Model-serving telemetry: inference servers on this node scraped,
//! parsed and normalised into the catalog's `tally_model_*` families.
//!
//! A task of its own scrapes every target each `serving.interval`, all at
//! once, each cut at `serving.timeout`, so a hanging server delays nobody.
//! Pages are parsed by [`exposition`], read through the engine's map
//! ([`normalise`]) and turned into window deltas ([`window`]). The sampler
//! copies [`ServingState::snapshot`] into each published snapshot (gauges
//! and counters on `/metrics` and OTLP); the exporter takes the windows'
//! distributions ([`ServingState::take_windows`]) as delta exponential
//! histograms.

pub mod discovery;
pub mod engine;
pub mod exposition;
pub mod normalise;
pub mod ollama;
pub mod sglang;
pub mod tgi;
pub mod triton;
pub mod vllm;
pub mod window;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use tally_schema::catalog;
use tally_schema::exphist::ExpHistogram;
use tally_schema::identity::ContainerIdentity;
use tokio::sync::watch;

use self::discovery::Target;
use self::engine::Engine;
use self::normalise::{Dist, ModelPage};
use self::window::{ModelWindow, Tracker};
use crate::config::ServingConfig;
use crate::sources::gpu::{ContainerGpuPoints, GpuPoint};
use crate::sources::pods::model::SharedPodStore;
use crate::telemetry::SourceHealth;

/// Why a scrape failed.
#[derive(Debug, thiserror::Error)]
pub enum ScrapeError {
    /// No answer within `serving.timeout`.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// Connection or protocol failure.
    #[error("{0}")]
    Connect(String),
    /// An answer other than 200.
    #[error("HTTP {0}")]
    Status(u16),
    /// The page exceeded `serving.max_bytes`.
    #[error("page larger than {0} bytes")]
    TooLarge(u64),
}

impl ScrapeError {
    /// The `kind` label.
    pub fn kind(&self) -> &'static str {
        match self {
            ScrapeError::Timeout(_) => "timeout",
            ScrapeError::Connect(_) => "connect",
            ScrapeError::Status(_) => "http_status",
            ScrapeError::TooLarge(_) => "body_too_large",
        }
    }
}

/// A target's health, for the `tally_agent_scrape_*` families.
#[derive(Debug, Clone, PartialEq)]
pub struct TargetHealth {
    /// The page's URL.
    pub url: String,
    /// The engine, once known.
    pub engine: Option<Engine>,
    /// The serving pod's namespace (empty for a static target).
    pub namespace: String,
    /// The serving pod (empty for a static target).
    pub pod: String,
    /// The last scrape succeeded.
    pub up: bool,
    /// The last scrape's duration, seconds.
    pub duration_seconds: f64,
    /// Samples on the last page.
    pub samples: usize,
    /// Failures and rejected lines by kind, since the agent started.
    pub errors: BTreeMap<&'static str, u64>,
}

/// One served model's latest readings.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelSeries {
    /// The serving container.
    pub identity: ContainerIdentity,
    /// The engine.
    pub engine: Engine,
    /// The served model.
    pub model: String,
    /// Requests running.
    pub running: Option<f64>,
    /// Requests waiting.
    pub waiting: Option<f64>,
    /// KV-cache fraction.
    pub kv_cache: Option<f64>,
    /// Finished requests by (outcome, reason), cumulative.
    pub requests: Vec<(&'static str, String, f64)>,
    /// Prompt tokens, cumulative.
    pub prompt_tokens: Option<f64>,
    /// Generated tokens, cumulative.
    pub generation_tokens: Option<f64>,
    /// GPU memory the loaded model holds (Ollama).
    pub gpu_memory: Option<f64>,
    /// Derived distributions: (catalog family, method).
    pub derived: Vec<(String, &'static str)>,
    /// When the page was read.
    pub scraped_at: SystemTime,
    /// The engine's version, `unknown` until its info endpoint answers.
    pub engine_version: String,
}

/// What the sampler publishes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ServingSnapshot {
    /// Every target.
    pub targets: Vec<TargetHealth>,
    /// Every served model.
    pub models: Vec<ModelSeries>,
}

impl ServingSnapshot {
    /// The catalog's points: scrape health under the node, model families
    /// under the serving container (the GPU source's point shapes, so the
    /// same renderers write both).
    pub fn points(&self) -> (Vec<GpuPoint>, Vec<ContainerGpuPoints>) {
        let mut node = Vec::new();
        for target in &self.targets {
            let engine = target.engine.map_or("unknown", Engine::as_str);
            let labels = || {
                vec![
                    ("target", target.url.clone()),
                    ("engine", engine.to_owned()),
                    ("namespace", target.namespace.clone()),
                    ("pod", target.pod.clone()),
                ]
            };
            let mut push = |def, attributes, value| {
                node.push(GpuPoint {
                    def,
                    attributes,
                    value,
                })
            };
            push(
                &catalog::AGENT_SCRAPE_UP,
                labels(),
                f64::from(u8::from(target.up)),
            );
            push(
                &catalog::AGENT_SCRAPE_DURATION,
                labels(),
                target.duration_seconds,
            );
            push(
                &catalog::AGENT_SCRAPE_SAMPLES,
                labels(),
                target.samples as f64,
            );
            for (kind, n) in &target.errors {
                let mut attributes = labels();
                attributes.push(("kind", (*kind).to_owned()));
                push(&catalog::AGENT_SCRAPE_ERRORS, attributes, *n as f64);
            }
        }
        let mut containers: Vec<ContainerGpuPoints> = Vec::new();
        for model in &self.models {
            let base = || {
                vec![
                    ("engine", model.engine.as_str().to_owned()),
                    ("model", model.model.clone()),
                ]
            };
            let mut points = Vec::new();
            let mut push = |def, attributes, value: Option<f64>| {
                if let Some(value) = value {
                    points.push(GpuPoint {
                        def,
                        attributes,
                        value,
                    });
                }
            };
            let mut info = base();
            info.push(("engine_version", model.engine_version.clone()));
            push(&catalog::MODEL_INFO, info, Some(1.0));
            push(&catalog::MODEL_REQUESTS_RUNNING, base(), model.running);
            push(&catalog::MODEL_REQUESTS_WAITING, base(), model.waiting);
            push(&catalog::MODEL_KV_CACHE_USAGE, base(), model.kv_cache);
            push(&catalog::MODEL_GPU_MEMORY, base(), model.gpu_memory);
            push(&catalog::MODEL_PROMPT_TOKENS, base(), model.prompt_tokens);
            push(
                &catalog::MODEL_GENERATION_TOKENS,
                base(),
                model.generation_tokens,
            );
            for (outcome, reason, value) in &model.requests {
                let mut attributes = base();
                attributes.push(("outcome", (*outcome).to_owned()));
                attributes.push(("reason", reason.clone()));
                push(&catalog::MODEL_REQUESTS, attributes, Some(*value));
            }
            for (family, method) in &model.derived {
                let mut attributes = base();
                attributes.push(("family", family.clone()));
                attributes.push(("method", (*method).to_owned()));
                push(&catalog::MODEL_DERIVED, attributes, Some(1.0));
            }
            match containers.iter_mut().find(|c| c.identity == model.identity) {
                Some(container) => container.points.extend(points),
                None => containers.push(ContainerGpuPoints {
                    identity: model.identity.clone(),
                    points,
                    read_at: Some(model.scraped_at),
                }),
            }
        }
        (node, containers)
    }
}

/// One model's distributions of one export window.
#[derive(Debug, Clone)]
pub struct ModelHistograms {
    /// The serving container.
    pub identity: ContainerIdentity,
    /// The engine.
    pub engine: Engine,
    /// The served model.
    pub model: String,
    /// New observations per distribution, seconds.
    pub histograms: Vec<(Dist, ExpHistogram)>,
}

/// What an engine says of itself on its info endpoint.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EngineInfo {
    /// Its version.
    pub version: Option<String>,
    /// The served model (TGI, whose page names none).
    pub model: Option<String>,
}

/// Where an engine answers with its version: vLLM `/version`, SGLang
/// `/get_server_info`, TGI `/info` (with `model_id`), Triton `/v2` (on its
/// HTTP port; a metrics-only port answers 404 and the version stays
/// unknown).
pub fn info_path(engine: Engine) -> &'static str {
    match engine {
        Engine::Vllm => "/version",
        Engine::Sglang => "/get_server_info",
        Engine::Tgi => "/info",
        Engine::Triton => "/v2",
        Engine::Ollama => "/api/version",
    }
}

/// Reads an info endpoint's JSON answer.
pub fn parse_info(engine: Engine, body: &[u8]) -> EngineInfo {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) else {
        return EngineInfo::default();
    };
    let text = |key: &str| {
        value
            .get(key)
            .and_then(|v| v.as_str())
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    };
    EngineInfo {
        version: text("version"),
        model: match engine {
            Engine::Tgi => text("model_id"),
            _ => None,
        },
    }
}

/// `scheme://host:port` of a URL.
fn origin(url: &str) -> &str {
    let after = url.find("://").map_or(0, |i| i + 3);
    let end = url[after..].find('/').map_or(url.len(), |i| after + i);
    &url[..end]
}

/// How long before an unanswered info endpoint is asked again.
const INFO_RETRY: Duration = Duration::from_secs(600);

#[derive(Debug)]
struct TargetState {
    target: Target,
    engine: Option<Engine>,
    info: Option<EngineInfo>,
    info_asked: Option<Instant>,
    tracker: Tracker,
    health: TargetHealth,
    logged: BTreeSet<&'static str>,
    models: BTreeMap<String, ModelPage>,
    scraped_at: SystemTime,
    window: BTreeMap<String, ModelWindow>,
    derived: BTreeMap<String, BTreeSet<(Dist, &'static str)>>,
}

/// Everything the scrape task knows, shared with the sampler.
#[derive(Debug, Default)]
pub struct ServingState {
    targets: BTreeMap<String, TargetState>,
}

/// The state behind its lock.
pub type SharedServingState = Arc<Mutex<ServingState>>;

/// Locks the state, recovering from a panicked holder (the state stays
/// consistent: every update is a whole replacement).
pub fn lock(state: &SharedServingState) -> MutexGuard<'_, ServingState> {
    match state.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    }
}

/// The catalog family of a distribution.
pub fn dist_def(dist: Dist) -> &'static catalog::MetricDef {
    match dist {
        Dist::TimeToFirstToken => &catalog::MODEL_TIME_TO_FIRST_TOKEN,
        Dist::InterTokenLatency => &catalog::MODEL_INTER_TOKEN_LATENCY,
        Dist::TimePerOutputToken => &catalog::MODEL_TIME_PER_OUTPUT_TOKEN,
        Dist::E2eLatency => &catalog::MODEL_E2E_REQUEST_LATENCY,
        Dist::QueueTime => &catalog::MODEL_REQUEST_QUEUE_TIME,
    }
}

impl ServingState {
    /// Makes the target list `targets`: new ones start, vanished ones go
    /// (with their pending window).
    pub fn set_targets(&mut self, targets: Vec<Target>) {
        let urls: BTreeSet<&str> = targets.iter().map(|t| t.url.as_str()).collect();
        self.targets.retain(|url, _| urls.contains(url.as_str()));
        for target in targets {
            let state = self.targets.entry(target.url.clone());
            let state = state.or_insert_with(|| TargetState {
                health: TargetHealth {
                    url: target.url.clone(),
                    engine: target.engine,
                    namespace: target.identity.namespace.clone(),
                    pod: target.identity.pod.clone(),
                    up: false,
                    duration_seconds: 0.0,
                    samples: 0,
                    errors: BTreeMap::new(),
                },
                engine: target.engine,
                info: None,
                info_asked: None,
                tracker: Tracker::default(),
                logged: BTreeSet::new(),
                models: BTreeMap::new(),
                scraped_at: SystemTime::UNIX_EPOCH,
                window: BTreeMap::new(),
                derived: BTreeMap::new(),
                target: target.clone(),
            });
            // A pod's container or model may change under the same URL.
            state.target = target;
        }
    }

    /// The targets, each with the engine whose info endpoint to ask now
    /// (known engine, no answer yet, not asked in the last 10 minutes).
    fn work(&mut self, now: Instant) -> Vec<(Target, Option<Engine>)> {
        self.targets
            .values_mut()
            .map(|state| {
                let ask = state.engine.filter(|_| {
                    state.info.is_none()
                        && state
                            .info_asked
                            .is_none_or(|at| now.duration_since(at) >= INFO_RETRY)
                });
                if ask.is_some() {
                    state.info_asked = Some(now);
                }
                (state.target.clone(), ask)
            })
            .collect()
    }

    /// Records an engine's info answer.
    pub fn record_info(&mut self, url: &str, info: EngineInfo) {
        if let Some(state) = self.targets.get_mut(url)
            && (info.version.is_some() || info.model.is_some())
        {
            tracing::info!(
                url,
                version = info.version.as_deref().unwrap_or(""),
                model = info.model.as_deref().unwrap_or(""),
                "model server info"
            );
            state.info = Some(info);
        }
    }

    /// Records one scrape's outcome.
    pub fn record(&mut self, url: &str, outcome: Result<Vec<u8>, ScrapeError>, took: Duration) {
        let Some(state) = self.targets.get_mut(url) else {
            return;
        };
        state.health.duration_seconds = took.as_secs_f64();
        let body = match outcome {
            Ok(body) => body,
            Err(error) => {
                state.health.up = false;
                // Stale readings go, as Prometheus marks a failed target's
                // series stale; the baseline stays for the next deltas.
                state.models.clear();
                count(state, error.kind(), &error);
                return;
            }
        };
        let fallback = match state.info.as_ref().and_then(|i| i.model.as_deref()) {
            Some(model) if !state.target.model_named => model,
            _ => state.target.model.as_str(),
        };
        let page = normalise::read_page(&body, state.engine, fallback);
        state.health.up = true;
        state.health.samples = page.samples;
        if state.engine.is_none() && page.engine.is_some() {
            state.engine = page.engine;
            state.health.engine = page.engine;
            tracing::info!(
                url,
                engine = page.engine.map_or("", Engine::as_str),
                "model server detected from its page"
            );
        }
        for (kind, n) in &page.errors {
            *state.health.errors.entry(kind).or_insert(0) += n;
            if state.logged.insert(kind) {
                let at = page
                    .first_errors
                    .get(kind)
                    .map(|e| e.to_string())
                    .unwrap_or_default();
                tracing::warn!(url, kind, lines = n, first = %at, "model server page has rejected lines; the rest is read");
            }
        }
        state.tracker.observe(&page, &mut state.window);
        for (model, window) in &state.window {
            state
                .derived
                .entry(model.clone())
                .or_default()
                .extend(window.derived.iter().copied());
        }
        state.models = page.models;
        state.scraped_at = SystemTime::now();
    }

    /// Health and latest readings of every target.
    pub fn snapshot(&self) -> ServingSnapshot {
        let mut out = ServingSnapshot::default();
        for state in self.targets.values() {
            out.targets.push(state.health.clone());
            let Some(engine) = state.engine else { continue };
            for (model, page) in &state.models {
                let requests = page
                    .finished_requests()
                    .into_iter()
                    .map(|((outcome, reason), value)| (outcome, reason, value))
                    .collect();
                let derived = state
                    .derived
                    .get(model)
                    .into_iter()
                    .flatten()
                    .map(|(dist, method)| (dist_def(*dist).full_name(), *method))
                    .collect();
                out.models.push(ModelSeries {
                    identity: state.target.identity.clone(),
                    engine,
                    model: model.clone(),
                    running: page.running.sum(),
                    waiting: page.waiting.sum(),
                    kv_cache: page.kv_cache_fraction(),
                    requests,
                    prompt_tokens: page.prompt_tokens,
                    generation_tokens: page.generation_tokens,
                    gpu_memory: page.gpu_memory,
                    derived,
                    scraped_at: state.scraped_at,
                    engine_version: state
                        .info
                        .as_ref()
                        .and_then(|i| i.version.clone())
                        .unwrap_or_else(|| "unknown".to_owned()),
                });
            }
        }
        out
    }

    /// The distributions observed since the last call.
    pub fn take_windows(&mut self) -> Vec<ModelHistograms> {
        let mut out = Vec::new();
        for state in self.targets.values_mut() {
            let Some(engine) = state.engine else { continue };
            for (model, window) in std::mem::take(&mut state.window) {
                let histograms: Vec<(Dist, ExpHistogram)> = window
                    .histograms
                    .into_iter()
                    .filter(|(_, h)| !h.is_empty())
                    .collect();
                if !histograms.is_empty() {
                    out.push(ModelHistograms {
                        identity: state.target.identity.clone(),
                        engine,
                        model,
                        histograms,
                    });
                }
            }
        }
        out
    }
}

fn count(state: &mut TargetState, kind: &'static str, error: &dyn std::fmt::Display) {
    *state.health.errors.entry(kind).or_insert(0) += 1;
    if state.logged.insert(kind) {
        tracing::warn!(url = %state.target.url, kind, %error, "model server scrape failed; counted from now on, logged once");
    }
}

/// Fetches one page within `timeout`, refusing pages over `max_bytes`.
pub async fn fetch(
    client: &reqwest::Client,
    url: &str,
    timeout: Duration,
    max_bytes: u64,
) -> Result<Vec<u8>, ScrapeError> {
    let work = async {
        let mut response = client
            .get(url)
            .header(
                "Accept",
                "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
            )
            .send()
            .await
            .map_err(|e| ScrapeError::Connect(e.to_string()))?;
        if response.status() != reqwest::StatusCode::OK {
            return Err(ScrapeError::Status(response.status().as_u16()));
        }
        if response.content_length().is_some_and(|n| n > max_bytes) {
            return Err(ScrapeError::TooLarge(max_bytes));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| ScrapeError::Connect(e.to_string()))?
        {
            if (body.len() + chunk.len()) as u64 > max_bytes {
                return Err(ScrapeError::TooLarge(max_bytes));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    };
    tokio::time::timeout(timeout, work)
        .await
        .unwrap_or(Err(ScrapeError::Timeout(timeout)))
}

/// Scrapes every target once, all at once; returns when the slowest is
/// done or cut.
pub async fn scrape_once(
    client: &reqwest::Client,
    state: &SharedServingState,
    config: &ServingConfig,
) {
    let work = lock(state).work(Instant::now());
    let mut tasks = tokio::task::JoinSet::new();
    for (target, ask_info) in work {
        let client = client.clone();
        let (timeout, max_bytes) = (config.timeout, config.max_bytes);
        tasks.spawn(async move {
            let started = Instant::now();
            let outcome = fetch(&client, &target.url, timeout, max_bytes).await;
            let took = started.elapsed();
            let info = match (ask_info, &outcome) {
                (Some(engine), Ok(_)) => {
                    let url = format!("{}{}", origin(&target.url), info_path(engine));
                    // Small JSON answers; any failure leaves the version
                    // unknown until the next try.
                    fetch(&client, &url, timeout, 1 << 20)
                        .await
                        .ok()
                        .map(|body| parse_info(engine, &body))
                }
                _ => None,
            };
            (target.url, outcome, took, info)
        });
    }
    while let Some(done) = tasks.join_next().await {
        if let Ok((url, outcome, took, info)) = done {
            let mut state = lock(state);
            if let Some(info) = info {
                state.record_info(&url, info);
            }
            state.record(&url, outcome, took);
        }
    }
}

/// The scrape loop: discovery, then every target, each interval, until
/// shutdown.
pub async fn run(
    config: ServingConfig,
    state: SharedServingState,
    pods: Option<SharedPodStore>,
    health: Arc<SourceHealth>,
    mut shutdown: watch::Receiver<bool>,
) {
    let client = match reqwest::Client::builder()
        .connect_timeout(config.timeout)
        .build()
    {
        Ok(client) => client,
        Err(error) => {
            health.error("client", &error);
            return;
        }
    };
    let mut ticker = tokio::time::interval(config.interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = shutdown.wait_for(|stop| *stop) => return,
        }
        let started = Instant::now();
        let targets = {
            let store = pods
                .as_ref()
                .filter(|_| config.discover_pods)
                .map(|p| p.read().unwrap_or_else(|poisoned| poisoned.into_inner()));
            discovery::discover(&config.scrape, store.as_deref())
        };
        lock(&state).set_targets(targets);
        scrape_once(&client, &state, &config).await;
        health.record_success(started.elapsed());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn info_answers_and_origins() {
        let vllm = parse_info(Engine::Vllm, br#"{"version":"0.12.0"}"#);
        assert_eq!(vllm.version.as_deref(), Some("0.12.0"));
        let tgi = parse_info(
            Engine::Tgi,
            br#"{"model_id":"mistralai/Mistral-7B-Instruct-v0.3","version":"3.3.4","max_total_tokens":4096}"#,
        );
        assert_eq!(
            tgi.model.as_deref(),
            Some("mistralai/Mistral-7B-Instruct-v0.3")
        );
        assert_eq!(tgi.version.as_deref(), Some("3.3.4"));
        assert_eq!(
            parse_info(Engine::Triton, b"<html>404</html>"),
            EngineInfo::default()
        );
        assert_eq!(
            origin("http://10.0.0.7:8000/metrics"),
            "http://10.0.0.7:8000"
        );
        assert_eq!(origin("https://[fd00::7]:9000"), "https://[fd00::7]:9000");
    }
}
