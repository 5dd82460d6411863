//! The sender against a real HTTP collector on 127.0.0.1, draining a real
//! spool in a temporary directory.

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use prost::Message;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tally_agent::export::sender::{ExportCounts, ExportStats, SenderConfig, run_sender};
use tally_agent::export::spool::Spool;
use tally_agent::telemetry::SourceHealth;
use tally_schema::otlp::{ExportMetricsPartialSuccess, ExportMetricsServiceResponse};
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

/// Bound on every wait, so a broken sender fails the test instead of
/// hanging it.
const PATIENCE: Duration = Duration::from_secs(15);

/// A scripted answer; once the script runs out the collector answers 200.
struct Reply {
    status: u16,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
}

impl Reply {
    fn status(status: u16) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }
}

/// One request the collector saw.
#[derive(Clone)]
struct Seen {
    at: Instant,
    headers: HeaderMap,
    body: Vec<u8>,
}

#[derive(Clone, Default)]
struct Collector {
    seen: Arc<Mutex<Vec<Seen>>>,
    script: Arc<Mutex<VecDeque<Reply>>>,
}

impl Collector {
    fn scripted(replies: Vec<Reply>) -> Self {
        Self {
            script: Arc::new(Mutex::new(replies.into())),
            ..Default::default()
        }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().expect("lock").clone()
    }

    fn bodies(&self) -> Vec<Vec<u8>> {
        self.seen().into_iter().map(|s| s.body).collect()
    }

    async fn serve_on(self, listener: tokio::net::TcpListener) -> JoinHandle<()> {
        let app = Router::new()
            .route("/v1/metrics", post(handle))
            .with_state(self);
        tokio::spawn(async move {
            axum::serve(listener, app).await.expect("serve");
        })
    }

    async fn serve(self) -> (SocketAddr, JoinHandle<()>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        (addr, self.serve_on(listener).await)
    }
}

async fn handle(State(collector): State<Collector>, headers: HeaderMap, body: Bytes) -> Response {
    collector.seen.lock().expect("lock").push(Seen {
        at: Instant::now(),
        headers,
        body: body.to_vec(),
    });
    let reply = collector.script.lock().expect("lock").pop_front();
    let Some(reply) = reply else {
        return StatusCode::OK.into_response();
    };
    let mut response = (
        StatusCode::from_u16(reply.status).expect("status"),
        reply.body,
    )
        .into_response();
    for (name, value) in reply.headers {
        response
            .headers_mut()
            .insert(name, value.parse().expect("header value"));
    }
    response
}

/// A spool in a temp dir plus a running sender.
struct Agent {
    spool: Arc<Mutex<Spool>>,
    stats: Arc<ExportStats>,
    health: Arc<SourceHealth>,
    wake: Arc<Notify>,
    shutdown: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
    _dir: tempfile::TempDir,
}

impl Agent {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let spool = Spool::open(dir.path(), 1 << 20).expect("open spool");
        let (shutdown, _) = watch::channel(false);
        Self {
            spool: Arc::new(Mutex::new(spool)),
            stats: Arc::new(ExportStats::default()),
            health: SourceHealth::new("export"),
            wake: Arc::new(Notify::new()),
            shutdown,
            task: None,
            _dir: dir,
        }
    }

    fn config(addr: SocketAddr) -> SenderConfig {
        SenderConfig {
            endpoint: format!("http://{addr}/"),
            timeout: Duration::from_secs(2),
            initial_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_millis(200),
            max_retry_after: Duration::from_secs(5),
            token: None,
            ca_pem: None,
        }
    }

    fn start(&mut self, config: SenderConfig) {
        self.task = Some(tokio::spawn(run_sender(
            Arc::clone(&self.spool),
            config,
            Arc::clone(&self.stats),
            Arc::clone(&self.health),
            Arc::clone(&self.wake),
            self.shutdown.subscribe(),
        )));
    }

    fn push(&self, payload: &[u8]) -> u64 {
        let seq = self
            .spool
            .lock()
            .expect("lock")
            .push(payload)
            .expect("push");
        self.wake.notify_one();
        seq
    }

    fn batches(&self) -> u64 {
        self.spool.lock().expect("lock").stats().batches
    }

    fn counts(&self) -> ExportCounts {
        self.stats.snapshot()
    }

    async fn stop(&mut self) {
        self.shutdown.send_replace(true);
        if let Some(task) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(2), task)
                .await
                .expect("sender stops promptly on shutdown")
                .expect("sender task");
        }
    }
}

async fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn ok_delivers_in_order_and_acks() {
    let collector = Collector::default();
    let (addr, _server) = collector.clone().serve().await;
    let mut agent = Agent::new();
    // Started on an empty spool: it must wake up on the pushes.
    agent.start(Agent::config(addr));
    tokio::time::sleep(Duration::from_millis(100)).await;
    agent.push(b"batch-1");
    agent.push(b"batch-2");
    wait_until("both batches", || agent.counts().success == 2).await;
    assert_eq!(
        collector.bodies(),
        vec![b"batch-1".to_vec(), b"batch-2".to_vec()]
    );
    let seen = collector.seen();
    assert_eq!(seen[0].headers["content-type"], "application/x-protobuf");
    assert_eq!(seen[0].headers["content-encoding"], "gzip");
    wait_until("acks", || agent.batches() == 0).await;
    assert!(agent.health.is_up());
    assert_eq!(
        agent.counts(),
        ExportCounts {
            success: 2,
            ..Default::default()
        }
    );
    agent.stop().await;
}

#[tokio::test]
async fn retry_after_is_honoured_then_delivered_once() {
    let collector = Collector::scripted(vec![Reply {
        headers: vec![("retry-after", "1".to_owned())],
        ..Reply::status(503)
    }]);
    let (addr, _server) = collector.clone().serve().await;
    let mut agent = Agent::new();
    agent.push(b"only");
    agent.start(Agent::config(addr));
    wait_until("delivery", || agent.counts().success == 1).await;
    wait_until("ack", || agent.batches() == 0).await;
    let seen = collector.seen();
    assert_eq!(seen.len(), 2, "one 503, one delivery");
    assert_eq!(seen[0].body, b"only");
    assert_eq!(seen[1].body, b"only");
    let gap = seen[1].at - seen[0].at;
    assert!(gap >= Duration::from_millis(950), "retried after {gap:?}");
    assert!(gap < Duration::from_secs(3), "retried after {gap:?}");
    let counts = agent.counts();
    assert_eq!((counts.retryable, counts.success), (1, 1));
    agent.stop().await;
}

#[tokio::test]
async fn bad_request_is_dropped_not_retried() {
    let collector = Collector::scripted(vec![Reply {
        body: b"unknown metric family".to_vec(),
        ..Reply::status(400)
    }]);
    let (addr, _server) = collector.clone().serve().await;
    let mut agent = Agent::new();
    agent.push(b"poison");
    agent.push(b"fine");
    agent.start(Agent::config(addr));
    wait_until("both handled", || agent.batches() == 0).await;
    // Give a wrongful retry time to show up.
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(
        collector.bodies(),
        vec![b"poison".to_vec(), b"fine".to_vec()],
        "the rejected batch is sent exactly once and does not block the next"
    );
    let counts = agent.counts();
    assert_eq!(
        (counts.rejected, counts.success, counts.retryable),
        (1, 1, 0)
    );
    assert_eq!(agent.health.error_count("rejected_400"), 1);
    agent.stop().await;
}

#[tokio::test]
async fn partial_success_is_counted_and_not_retried() {
    let response = ExportMetricsServiceResponse {
        partial_success: Some(ExportMetricsPartialSuccess {
            rejected_data_points: 3,
            error_message: "3 points had NaN timestamps".to_owned(),
        }),
    };
    let collector = Collector::scripted(vec![Reply {
        body: response.encode_to_vec(),
        ..Reply::status(200)
    }]);
    let (addr, _server) = collector.clone().serve().await;
    let mut agent = Agent::new();
    agent.push(b"some bad points");
    agent.start(Agent::config(addr));
    wait_until("ack", || agent.batches() == 0).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(collector.seen().len(), 1);
    assert_eq!(
        agent.counts(),
        ExportCounts {
            partial: 1,
            rejected_points: 3,
            ..Default::default()
        }
    );
    assert_eq!(agent.health.error_count("partial_success"), 1);
    assert!(agent.health.is_up());
    agent.stop().await;
}

#[tokio::test]
async fn outage_then_recovery_delivers_everything_in_order_once() {
    // A free port with nothing listening on it.
    let addr = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        probe.local_addr().expect("addr")
    };
    let mut agent = Agent::new();
    let sent: Vec<Vec<u8>> = (1..=5).map(|i| format!("batch-{i}").into_bytes()).collect();
    for payload in &sent {
        agent.push(payload);
    }
    agent.start(Agent::config(addr));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(agent.counts().unreachable > 0);
    assert!(!agent.health.is_up());
    assert_eq!(agent.batches(), 5, "nothing lost while down");

    let collector = Collector::default();
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .expect("rebind port");
    let _server = collector.clone().serve_on(listener).await;
    wait_until("all five", || agent.counts().success == 5).await;
    wait_until("acks", || agent.batches() == 0).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(collector.bodies(), sent, "in order, exactly once");
    assert!(agent.health.is_up());
    assert!(agent.health.error_count("unreachable") > 0);
    agent.stop().await;
}

#[tokio::test]
async fn shutdown_interrupts_backoff_and_keeps_the_batch() {
    let addr = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        probe.local_addr().expect("addr")
    };
    let mut agent = Agent::new();
    agent.push(b"kept");
    let mut config = Agent::config(addr);
    config.initial_backoff = Duration::from_secs(60);
    config.max_backoff = Duration::from_secs(60);
    agent.start(config);
    wait_until("first attempt", || agent.counts().unreachable == 1).await;
    let started = Instant::now();
    agent.stop().await;
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!(agent.batches(), 1, "the batch waits for the next run");
    let entry = agent
        .spool
        .lock()
        .expect("lock")
        .oldest()
        .expect("oldest")
        .expect("entry");
    assert_eq!(entry.payload, b"kept");
}

#[tokio::test]
async fn shutdown_while_idle_returns() {
    let mut agent = Agent::new();
    agent.start(Agent::config("127.0.0.1:9".parse().expect("addr")));
    tokio::time::sleep(Duration::from_millis(100)).await;
    agent.stop().await;
    assert_eq!(agent.counts(), ExportCounts::default());
}
