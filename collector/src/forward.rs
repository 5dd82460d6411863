//! Forwarding accepted log requests to another OTLP backend: every
//! request `/v1/logs` accepted is queued (as the protobuf written to the
//! write-ahead log) and re-sent as OTLP/HTTP protobuf by one background
//! task, in order.
//!
//! Ingest never waits for the target: the queue is bounded by bytes, and
//! when it is full the oldest waiting request is dropped (counted).
//! Connection errors, timeouts, 429 and 5xx are retried with exponential
//! backoff (honouring `Retry-After`), holding the request at the head of
//! the queue; another 4xx means the target refuses the request, which is
//! dropped (counted). The queue lives in memory: requests still in it
//! when the collector stops are not forwarded.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::body::Bytes;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use tokio::sync::{Notify, watch};

/// First wait before a retry.
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
/// Longest wait between retries (also the cap on `Retry-After`).
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Where and how to forward.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForwardOptions {
    /// Target URL; `/v1/logs` is appended when it has no path.
    pub endpoint: String,
    /// Extra request headers (`Authorization`, a tenant header, …).
    pub headers: Vec<(String, String)>,
    /// Timeout of one request.
    pub timeout: Duration,
    /// Most bytes of requests waiting.
    pub queue_bytes: usize,
}

/// Unusable forwarding settings.
#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    /// The endpoint is not an http(s) URL.
    #[error("logs_forward_endpoint {url:?}: {reason}")]
    Endpoint {
        /// The configured text.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A header is not `Name: value` with a valid name and value.
    #[error("logs_forward_headers: {0:?} is not a valid `Name: value` HTTP header")]
    Header(String),
    /// The HTTP client could not be built.
    #[error("cannot build the HTTP client for log forwarding: {0}")]
    Client(#[source] reqwest::Error),
    /// The endpoint is this collector: every request would come back.
    #[error(
        "logs_forward_endpoint {url} is this collector's own listen address {listen}: forwarding would loop"
    )]
    Loop {
        /// The endpoint.
        url: String,
        /// The listen address.
        listen: std::net::SocketAddr,
    },
}

/// The URL requests go to: `endpoint`, with `/v1/logs` when it has no
/// path (as OTLP exporters treat a base URL).
pub fn endpoint_url(endpoint: &str) -> Result<reqwest::Url, ForwardError> {
    let invalid = |reason: String| ForwardError::Endpoint {
        url: endpoint.to_owned(),
        reason,
    };
    let mut url = reqwest::Url::parse(endpoint).map_err(|e| invalid(e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid("the scheme must be http or https".to_owned()));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(invalid("the URL has no host".to_owned()));
    }
    if matches!(url.path(), "" | "/") {
        url.set_path("/v1/logs");
    }
    Ok(url)
}

/// Parses `Name: value`.
pub fn parse_header(text: &str) -> Result<(String, String), ForwardError> {
    let (name, value) = text
        .split_once(':')
        .ok_or_else(|| ForwardError::Header(text.to_owned()))?;
    let (name, value) = (name.trim(), value.trim());
    if HeaderName::from_bytes(name.as_bytes()).is_err() || HeaderValue::from_str(value).is_err() {
        return Err(ForwardError::Header(text.to_owned()));
    }
    Ok((name.to_owned(), value.to_owned()))
}

/// Why an attempt failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// No connection, or it broke.
    Connection,
    /// No answer within the timeout.
    Timeout,
    /// 429.
    Throttled,
    /// 5xx.
    Server,
    /// Another 4xx: the request is dropped.
    Rejected,
}

impl Failure {
    const ALL: [Failure; 5] = [
        Failure::Connection,
        Failure::Timeout,
        Failure::Throttled,
        Failure::Server,
        Failure::Rejected,
    ];

    fn label(self) -> &'static str {
        match self {
            Failure::Connection => "connection",
            Failure::Timeout => "timeout",
            Failure::Throttled => "throttled",
            Failure::Server => "server_error",
            Failure::Rejected => "rejected",
        }
    }
}

#[derive(Debug, Default)]
struct Counters {
    requests: AtomicU64,
    records: AtomicU64,
    failures: [AtomicU64; 5],
    logged: [AtomicBool; 5],
    dropped_queue_full: AtomicU64,
    dropped_rejected: AtomicU64,
}

/// One queued request.
#[derive(Debug)]
struct Item {
    payload: Bytes,
    records: u64,
}

#[derive(Debug, Default)]
struct Queue {
    waiting: VecDeque<Item>,
    /// Bytes waiting plus the request being sent.
    bytes: usize,
    /// Bytes of the request being sent (never dropped for room).
    in_flight: usize,
}

/// The forwarding queue and its counters.
#[derive(Debug)]
pub struct Forwarder {
    url: reqwest::Url,
    client: reqwest::Client,
    max_bytes: usize,
    queue: Mutex<Queue>,
    wake: Notify,
    counters: Counters,
}

impl Forwarder {
    /// A forwarder for `options` (the task starts with [`Forwarder::run`]).
    pub fn new(options: &ForwardOptions) -> Result<Forwarder, ForwardError> {
        let url = endpoint_url(&options.endpoint)?;
        let mut headers = HeaderMap::new();
        headers.insert(
            reqwest::header::CONTENT_TYPE,
            HeaderValue::from_static("application/x-protobuf"),
        );
        for (name, value) in &options.headers {
            let header = || ForwardError::Header(format!("{name}: {value}"));
            headers.insert(
                HeaderName::from_bytes(name.as_bytes()).map_err(|_| header())?,
                HeaderValue::from_str(value).map_err(|_| header())?,
            );
        }
        let client = reqwest::Client::builder()
            .timeout(options.timeout)
            .connect_timeout(options.timeout)
            .user_agent(concat!("tally-collector/", env!("CARGO_PKG_VERSION")))
            .default_headers(headers)
            .build()
            .map_err(ForwardError::Client)?;
        Ok(Forwarder {
            url,
            client,
            max_bytes: options.queue_bytes,
            queue: Mutex::new(Queue::default()),
            wake: Notify::new(),
            counters: Counters::default(),
        })
    }

    /// The URL requests go to.
    pub fn url(&self) -> &reqwest::Url {
        &self.url
    }

    /// Refuses an endpoint that is the collector's own `listen` address.
    pub fn check_not_self(&self, listen: std::net::SocketAddr) -> Result<(), ForwardError> {
        let loopback = |ip: std::net::IpAddr| ip.is_loopback() || ip.is_unspecified();
        let host = self.url.host_str().unwrap_or("");
        let same_host = match host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
        {
            Ok(ip) => ip == listen.ip() || (ip.is_loopback() && loopback(listen.ip())),
            Err(_) => host == "localhost" && loopback(listen.ip()),
        };
        if same_host && self.url.port_or_known_default() == Some(listen.port()) {
            return Err(ForwardError::Loop {
                url: self.url.to_string(),
                listen,
            });
        }
        Ok(())
    }

    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues an accepted request (`records` log records) without
    /// waiting; past the byte bound the oldest waiting ones are dropped.
    pub fn enqueue(&self, payload: Bytes, records: u64) {
        {
            let mut queue = self.lock();
            queue.bytes += payload.len();
            queue.waiting.push_back(Item { payload, records });
            while queue.bytes > self.max_bytes {
                let Some(oldest) = queue.waiting.pop_front() else {
                    break;
                };
                queue.bytes -= oldest.payload.len();
                self.counters
                    .dropped_queue_full
                    .fetch_add(oldest.records, Ordering::Relaxed);
            }
        }
        self.wake.notify_one();
    }

    fn take(&self) -> Option<Item> {
        let mut queue = self.lock();
        let item = queue.waiting.pop_front()?;
        queue.in_flight = item.payload.len();
        Some(item)
    }

    fn done(&self) {
        let mut queue = self.lock();
        queue.bytes -= queue.in_flight;
        queue.in_flight = 0;
    }

    /// Sends queued requests one at a time until `shutdown` turns true.
    pub async fn run(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        tracing::info!(endpoint = %self.url, "forwarding accepted logs over OTLP/HTTP");
        loop {
            let item = match self.take() {
                Some(item) => item,
                None => {
                    // The guard `wait_for` returns is not `Send`: drop it inside.
                    tokio::select! {
                        _ = self.wake.notified() => continue,
                        _ = async { let _ = shutdown.wait_for(|stop| *stop).await; } => return,
                    }
                }
            };
            let delivered = tokio::select! {
                () = self.deliver(&item) => true,
                _ = async { let _ = shutdown.wait_for(|stop| *stop).await; } => false,
            };
            self.done();
            if !delivered {
                return;
            }
        }
    }

    /// Sends one request until it is accepted or refused for good.
    async fn deliver(&self, item: &Item) {
        let mut backoff = FIRST_BACKOFF;
        loop {
            let (failure, retry_after) = match self
                .client
                .post(self.url.clone())
                .body(item.payload.clone())
                .send()
                .await
            {
                Ok(response) => {
                    let status = response.status();
                    let retry_after = response
                        .headers()
                        .get(reqwest::header::RETRY_AFTER)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.trim().parse::<u64>().ok())
                        .map(Duration::from_secs);
                    // Read to the end so the connection is reused.
                    let _ = response.bytes().await;
                    if status.is_success() {
                        self.counters.requests.fetch_add(1, Ordering::Relaxed);
                        self.counters
                            .records
                            .fetch_add(item.records, Ordering::Relaxed);
                        return;
                    }
                    let failure = match status.as_u16() {
                        429 => Failure::Throttled,
                        500..=599 => Failure::Server,
                        _ => Failure::Rejected,
                    };
                    (failure, retry_after)
                }
                Err(error) => {
                    let failure = if error.is_timeout() {
                        Failure::Timeout
                    } else {
                        Failure::Connection
                    };
                    self.failed(failure, &error);
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    continue;
                }
            };
            self.failed(failure, &format!("the endpoint answered {failure:?}"));
            if failure == Failure::Rejected {
                self.counters
                    .dropped_rejected
                    .fetch_add(item.records, Ordering::Relaxed);
                return;
            }
            tokio::time::sleep(retry_after.unwrap_or(backoff).min(MAX_BACKOFF)).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    /// Counts a failure and logs the first of its kind.
    fn failed(&self, failure: Failure, error: &dyn std::fmt::Display) {
        let index = failure as usize;
        self.counters.failures[index].fetch_add(1, Ordering::Relaxed);
        if !self.counters.logged[index].swap(true, Ordering::Relaxed) {
            tracing::warn!(endpoint = %self.url, kind = failure.label(), %error, "log forwarding failed; retrying unless refused (counted in tally_collector_log_forward_failures_total, logged once per kind)");
        }
    }

    /// Requests delivered.
    pub fn delivered_requests(&self) -> u64 {
        self.counters.requests.load(Ordering::Relaxed)
    }
}

/// Appends the forwarding metrics (zeros when forwarding is off).
pub fn render(forwarder: Option<&Forwarder>, out: &mut String) {
    use std::fmt::Write as _;
    let load = |f: fn(&Counters) -> &AtomicU64| {
        forwarder.map_or(0, |fw| f(&fw.counters).load(Ordering::Relaxed))
    };
    let (queue_bytes, queue_requests) = forwarder.map_or((0, 0), |fw| {
        let queue = fw.lock();
        (
            queue.bytes,
            queue.waiting.len() + usize::from(queue.in_flight > 0),
        )
    });
    let _ = write!(
        out,
        "# HELP tally_collector_log_forward_requests_total Log requests forwarded to logs_forward_endpoint and accepted there.\n\
         # TYPE tally_collector_log_forward_requests_total counter\n\
         tally_collector_log_forward_requests_total {}\n\
         # HELP tally_collector_log_forward_records_total Log records forwarded to logs_forward_endpoint and accepted there.\n\
         # TYPE tally_collector_log_forward_records_total counter\n\
         tally_collector_log_forward_records_total {}\n\
         # HELP tally_collector_log_forward_failures_total Forwarding attempts that failed, by kind (all but rejected are retried).\n\
         # TYPE tally_collector_log_forward_failures_total counter\n",
        load(|c| &c.requests),
        load(|c| &c.records),
    );
    for failure in Failure::ALL {
        let _ = writeln!(
            out,
            "tally_collector_log_forward_failures_total{{kind=\"{}\"}} {}",
            failure.label(),
            forwarder.map_or(0, |fw| fw.counters.failures[failure as usize]
                .load(Ordering::Relaxed))
        );
    }
    let _ = write!(
        out,
        "# HELP tally_collector_log_forward_dropped_records_total Log records not forwarded: the queue was full (oldest dropped) or the endpoint refused them (4xx).\n\
         # TYPE tally_collector_log_forward_dropped_records_total counter\n\
         tally_collector_log_forward_dropped_records_total{{reason=\"queue_full\"}} {}\n\
         tally_collector_log_forward_dropped_records_total{{reason=\"rejected\"}} {}\n\
         # HELP tally_collector_log_forward_queue_bytes Bytes of log requests waiting to be forwarded (bounded by logs_forward_queue_bytes).\n\
         # TYPE tally_collector_log_forward_queue_bytes gauge\n\
         tally_collector_log_forward_queue_bytes {queue_bytes}\n\
         # HELP tally_collector_log_forward_queue_requests Log requests waiting to be forwarded.\n\
         # TYPE tally_collector_log_forward_queue_requests gauge\n\
         tally_collector_log_forward_queue_requests {queue_requests}\n",
        load(|c| &c.dropped_queue_full),
        load(|c| &c.dropped_rejected),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(queue_bytes: usize) -> ForwardOptions {
        ForwardOptions {
            endpoint: "http://127.0.0.1:1".to_owned(),
            headers: vec![],
            timeout: Duration::from_secs(1),
            queue_bytes,
        }
    }

    #[test]
    fn endpoints_get_the_otlp_path_when_they_have_none() {
        let url = |text| endpoint_url(text).map(|u| u.to_string());
        assert_eq!(
            url("http://backend:4318").expect("url"),
            "http://backend:4318/v1/logs"
        );
        assert_eq!(
            url("https://backend/").expect("url"),
            "https://backend/v1/logs"
        );
        assert_eq!(
            url("http://backend:4318/otlp/v1/logs").expect("url"),
            "http://backend:4318/otlp/v1/logs"
        );
        assert!(url("ftp://backend").is_err());
        assert!(url("backend:4318").is_err());
        assert!(url("").is_err());
    }

    #[test]
    fn an_endpoint_that_is_this_collector_is_refused() {
        let forwarder = |endpoint: &str| {
            Forwarder::new(&ForwardOptions {
                endpoint: endpoint.to_owned(),
                ..options(1 << 20)
            })
            .expect("forwarder")
        };
        let listen = "127.0.0.1:4318".parse().expect("address");
        assert!(
            forwarder("http://127.0.0.1:4318")
                .check_not_self(listen)
                .is_err()
        );
        assert!(
            forwarder("http://localhost:4318/v1/logs")
                .check_not_self(listen)
                .is_err()
        );
        assert!(
            forwarder("http://127.0.0.1:4318")
                .check_not_self("0.0.0.0:4318".parse().expect("address"))
                .is_err()
        );
        assert!(
            forwarder("http://127.0.0.1:4319")
                .check_not_self(listen)
                .is_ok()
        );
        assert!(
            forwarder("http://backend:4318")
                .check_not_self(listen)
                .is_ok()
        );
    }

    #[test]
    fn headers_parse_as_name_colon_value() {
        assert_eq!(
            parse_header("X-Scope-OrgID: tenant-1").expect("header"),
            ("X-Scope-OrgID".to_owned(), "tenant-1".to_owned())
        );
        assert!(parse_header("no colon").is_err());
        assert!(parse_header("bad name: x").is_err());
    }

    /// A real HTTP server on loopback that answers the first request 503,
    /// the second 429 (`Retry-After: 0`), refuses a body `refuse` with 400
    /// and accepts the rest.
    #[tokio::test]
    async fn server_errors_and_throttling_are_retried_and_refusals_dropped() {
        use axum::http::{StatusCode, header};
        use axum::response::IntoResponse;
        let seen: Arc<Mutex<Vec<Vec<u8>>>> = Arc::default();
        let recorder = Arc::clone(&seen);
        let app = axum::Router::new().route(
            "/v1/logs",
            axum::routing::post(move |body: Bytes| {
                let recorder = Arc::clone(&recorder);
                async move {
                    let attempt = {
                        let mut seen = recorder.lock().unwrap_or_else(|p| p.into_inner());
                        seen.push(body.to_vec());
                        seen.len()
                    };
                    if body.as_ref() == b"refuse" {
                        return StatusCode::BAD_REQUEST.into_response();
                    }
                    match attempt {
                        1 => StatusCode::SERVICE_UNAVAILABLE.into_response(),
                        2 => (StatusCode::TOO_MANY_REQUESTS, [(header::RETRY_AFTER, "0")])
                            .into_response(),
                        _ => StatusCode::OK.into_response(),
                    }
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let address = listener.local_addr().expect("address");
        tokio::spawn(async move { axum::serve(listener, app).await });

        let forwarder = Arc::new(
            Forwarder::new(&ForwardOptions {
                endpoint: format!("http://{address}"),
                ..options(1 << 20)
            })
            .expect("forwarder"),
        );
        let (stop, shutdown) = watch::channel(false);
        let task = tokio::spawn(Arc::clone(&forwarder).run(shutdown));
        forwarder.enqueue(Bytes::from_static(b"first"), 2);
        forwarder.enqueue(Bytes::from_static(b"refuse"), 3);
        forwarder.enqueue(Bytes::from_static(b"second"), 4);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while forwarder.delivered_requests() < 2 {
            assert!(tokio::time::Instant::now() < deadline, "not delivered");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let _ = stop.send(true);
        let _ = task.await;
        let attempts: Vec<Vec<u8>> = seen.lock().unwrap_or_else(|p| p.into_inner()).clone();
        assert_eq!(
            attempts,
            [&b"first"[..], b"first", b"first", b"refuse", b"second"]
                .map(<[u8]>::to_vec)
                .to_vec()
        );
        let count = |f: Failure| forwarder.counters.failures[f as usize].load(Ordering::Relaxed);
        assert_eq!(count(Failure::Server), 1);
        assert_eq!(count(Failure::Throttled), 1);
        assert_eq!(count(Failure::Rejected), 1);
        assert_eq!(count(Failure::Connection), 0);
        assert_eq!(forwarder.counters.records.load(Ordering::Relaxed), 6);
        assert_eq!(
            forwarder.counters.dropped_rejected.load(Ordering::Relaxed),
            3
        );
        assert_eq!(forwarder.lock().bytes, 0);
    }

    #[test]
    fn a_full_queue_drops_the_oldest_waiting_requests() {
        let forwarder = Forwarder::new(&options(100)).expect("forwarder");
        forwarder.enqueue(Bytes::from(vec![0u8; 40]), 4);
        forwarder.enqueue(Bytes::from(vec![1u8; 40]), 5);
        // The first is being sent: it stays.
        let first = forwarder.take().expect("first");
        assert_eq!(first.records, 4);
        forwarder.enqueue(Bytes::from(vec![2u8; 40]), 6);
        assert_eq!(
            forwarder
                .counters
                .dropped_queue_full
                .load(Ordering::Relaxed),
            5
        );
        forwarder.done();
        assert_eq!(forwarder.take().map(|i| i.records), Some(6));
        forwarder.done();
        assert!(forwarder.take().is_none());
        assert_eq!(forwarder.lock().bytes, 0);
        // One larger than the whole queue is dropped itself.
        forwarder.enqueue(Bytes::from(vec![3u8; 200]), 7);
        assert!(forwarder.take().is_none());
        let mut metrics = String::new();
        render(Some(&forwarder), &mut metrics);
        assert!(
            metrics.contains(
                "tally_collector_log_forward_dropped_records_total{reason=\"queue_full\"} 12\n"
            ),
            "{metrics}"
        );
    }
}
