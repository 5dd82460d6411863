//! The OTLP/HTTP sender: drains the [`Spool`] oldest first, one batch at a
//! time, following the OTLP/HTTP rules on what to retry.
//!
//! - 2xx: delivered (a `partial_success` is counted and logged, never
//!   retried, since resending would duplicate the accepted points).
//! - 429, 502, 503, 504: the collector is overloaded or restarting; the same
//!   batch is retried after `Retry-After` or an exponential backoff.
//! - Any other status: the collector will never accept this batch; it is
//!   dropped (counted and logged) so it cannot block the ones behind it.
//! - No connection or timeout: the collector is down; retried with backoff.
//!
//! A newer batch is never sent before an older one is acked or dropped, so
//! cumulative series reach the collector in order.

use crate::export::spool::{Spool, SpoolEntry, SpoolError};
use crate::telemetry::SourceHealth;
use reqwest::StatusCode;
use reqwest::header::{CONTENT_ENCODING, CONTENT_TYPE, RETRY_AFTER};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::{Notify, watch};

/// How many bytes of a rejecting response body go into the log.
const BODY_EXCERPT: usize = 200;

/// Where and how to send batches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SenderConfig {
    /// Collector base URL, e.g. `http://127.0.0.1:4318`; batches are POSTed
    /// to `{endpoint}/v1/metrics` (a trailing `/` is ignored).
    pub endpoint: String,
    /// Limit on one whole request, response body included, so a hung
    /// collector cannot stall the sender.
    pub timeout: Duration,
    /// First retry delay ceiling; doubles per failure up to `max_backoff`.
    pub initial_backoff: Duration,
    /// Largest retry delay ceiling.
    pub max_backoff: Duration,
    /// Cap on an honoured `Retry-After`, so a misconfigured collector cannot
    /// park the agent for hours.
    pub max_retry_after: Duration,
    /// Bearer token sent with every request.
    pub token: Option<String>,
    /// Extra trusted CA certificates (PEM) for an `https://` collector.
    pub ca_pem: Option<Vec<u8>>,
}

impl SenderConfig {
    /// The defaults (10 s timeout, 1 s–30 s backoff, Retry-After capped at
    /// 300 s) for `endpoint`.
    pub fn new(endpoint: impl Into<String>) -> Self {
        Self {
            endpoint: endpoint.into(),
            timeout: Duration::from_secs(10),
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(30),
            max_retry_after: Duration::from_secs(300),
            token: None,
            ca_pem: None,
        }
    }

    /// The HTTP client: timeout, bearer token and extra trusted CAs.
    pub fn client(&self) -> Result<reqwest::Client, String> {
        let mut builder = reqwest::Client::builder().timeout(self.timeout);
        if let Some(token) = &self.token {
            let mut value = reqwest::header::HeaderValue::try_from(format!("Bearer {token}"))
                .map_err(|_| {
                    "the export token holds characters a header cannot carry".to_owned()
                })?;
            // Kept out of debug output and logs.
            value.set_sensitive(true);
            let mut headers = reqwest::header::HeaderMap::new();
            headers.insert(reqwest::header::AUTHORIZATION, value);
            builder = builder.default_headers(headers);
        }
        if let Some(pem) = &self.ca_pem {
            let certificates = reqwest::Certificate::from_pem_bundle(pem)
                .map_err(|e| format!("export CA file: {}", error_chain(&e)))?;
            if certificates.is_empty() {
                return Err("export CA file holds no PEM certificate".to_owned());
            }
            for certificate in certificates {
                builder = builder.add_root_certificate(certificate);
            }
        }
        builder.build().map_err(|e| error_chain(&e))
    }

    /// The URL batches are POSTed to.
    pub fn metrics_url(&self) -> String {
        format!("{}/v1/metrics", self.endpoint.trim_end_matches('/'))
    }
}

/// Export outcomes since start, shared with the agent's self-telemetry.
#[derive(Debug, Default)]
pub struct ExportStats {
    /// Batches fully accepted.
    pub success: AtomicU64,
    /// Batches accepted with a `partial_success` (some points rejected).
    pub partial: AtomicU64,
    /// Attempts answered 429/502/503/504 (batch kept and retried).
    pub retryable: AtomicU64,
    /// Batches answered with a non-retryable status and dropped.
    pub rejected: AtomicU64,
    /// Attempts that got no response (connection error, timeout).
    pub unreachable: AtomicU64,
    /// Data points the collector reported rejecting in partial successes.
    pub rejected_points: AtomicU64,
}

/// A plain copy of [`ExportStats`] for rendering and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExportCounts {
    /// See [`ExportStats::success`].
    pub success: u64,
    /// See [`ExportStats::partial`].
    pub partial: u64,
    /// See [`ExportStats::retryable`].
    pub retryable: u64,
    /// See [`ExportStats::rejected`].
    pub rejected: u64,
    /// See [`ExportStats::unreachable`].
    pub unreachable: u64,
    /// See [`ExportStats::rejected_points`].
    pub rejected_points: u64,
}

impl ExportStats {
    /// Current values.
    pub fn snapshot(&self) -> ExportCounts {
        ExportCounts {
            success: self.success.load(Ordering::Relaxed),
            partial: self.partial.load(Ordering::Relaxed),
            retryable: self.retryable.load(Ordering::Relaxed),
            rejected: self.rejected.load(Ordering::Relaxed),
            unreachable: self.unreachable.load(Ordering::Relaxed),
            rejected_points: self.rejected_points.load(Ordering::Relaxed),
        }
    }
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// Failure of a spool call made from the sender.
#[derive(Debug, thiserror::Error)]
enum SpoolCallError {
    #[error(transparent)]
    Spool(#[from] SpoolError),
    #[error("spool task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// What one POST came to.
#[derive(Debug)]
enum Outcome {
    /// 2xx, nothing rejected.
    Success,
    /// 2xx whose body could not be read or decoded: delivered, unverified.
    SuccessUnverified(String),
    /// 2xx with a partial success.
    Partial {
        rejected_points: u64,
        message: String,
    },
    /// 429/502/503/504.
    Retryable {
        status: StatusCode,
        retry_after: Option<Duration>,
    },
    /// Any other status.
    Rejected { status: StatusCode, body: String },
    /// No response.
    Unreachable(String),
}

/// Drains `spool` to the collector until `shutdown` turns true (or its
/// sender is dropped). Sleeps on `wake` while the spool is empty: the
/// producer calls `notify_one` after each push. On shutdown it returns
/// promptly, even mid-request or mid-backoff; the batch in flight stays in
/// the spool for the next run.
pub async fn run_sender(
    spool: Arc<Mutex<Spool>>,
    config: SenderConfig,
    stats: Arc<ExportStats>,
    health: Arc<SourceHealth>,
    wake: Arc<Notify>,
    mut shutdown: watch::Receiver<bool>,
) {
    let client = match config.client() {
        Ok(client) => client,
        Err(e) => {
            health.set_up(false);
            health.error("client", &e);
            return;
        }
    };
    let url = config.metrics_url();
    let mut backoff = Backoff::new(config.initial_backoff, config.max_backoff);
    // A batch delivered (or dropped) whose ack has not succeeded yet: ack it
    // before anything else so it is not sent twice.
    let mut pending_ack: Option<u64> = None;
    tracing::info!(%url, "OTLP sender started");

    loop {
        if *shutdown.borrow() {
            break;
        }
        if let Some(seq) = pending_ack {
            match spool_call(&spool, move |s| s.ack(seq)).await {
                Ok(()) => pending_ack = None,
                Err(e) => {
                    health.error("spool", &e);
                    if !sleep_or_shutdown(backoff.next_delay(), &mut shutdown).await {
                        break;
                    }
                    continue;
                }
            }
        }

        // Register for wake-ups before looking, so a push between the look
        // and the wait is not missed.
        let notified = wake.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let entry = match spool_call(&spool, Spool::oldest).await {
            Ok(Some(entry)) => entry,
            Ok(None) => {
                tokio::select! {
                    () = notified => continue,
                    () = wait_shutdown(&mut shutdown) => break,
                }
            }
            Err(e) => {
                health.error("spool", &e);
                if !sleep_or_shutdown(backoff.next_delay(), &mut shutdown).await {
                    break;
                }
                continue;
            }
        };

        let SpoolEntry { seq, payload } = entry;
        let sent_at = std::time::Instant::now();
        let outcome = tokio::select! {
            outcome = send(&client, &url, payload) => outcome,
            () = wait_shutdown(&mut shutdown) => break,
        };
        let delay = match outcome {
            Outcome::Success => {
                bump(&stats.success);
                tracing::debug!(seq, "batch delivered");
                None
            }
            Outcome::SuccessUnverified(why) => {
                bump(&stats.success);
                health.error(
                    "bad_response",
                    &format!("batch {seq} accepted but the response was unusable: {why}"),
                );
                None
            }
            Outcome::Partial {
                rejected_points,
                message,
            } => {
                bump(&stats.partial);
                stats
                    .rejected_points
                    .fetch_add(rejected_points, Ordering::Relaxed);
                health.error(
                    "partial_success",
                    &format!(
                        "collector accepted batch {seq} but rejected {rejected_points} data points: {message}"
                    ),
                );
                None
            }
            Outcome::Retryable {
                status,
                retry_after,
            } => {
                bump(&stats.retryable);
                let delay = match retry_after {
                    Some(after) => after.min(config.max_retry_after),
                    None => backoff.next_delay(),
                };
                health.error(
                    &format!("retryable_{}", status.as_u16()),
                    &format!(
                        "collector answered {status} to batch {seq}; retrying it in {delay:?}"
                    ),
                );
                Some(delay)
            }
            Outcome::Rejected { status, body } => {
                bump(&stats.rejected);
                health.error(
                    &format!("rejected_{}", status.as_u16()),
                    &format!(
                        "collector rejected batch {seq} with {status}; dropping it (never retried): {body}"
                    ),
                );
                pending_ack = Some(seq);
                backoff.reset();
                continue;
            }
            Outcome::Unreachable(why) => {
                bump(&stats.unreachable);
                health.record_degraded(sent_at.elapsed());
                let delay = backoff.next_delay();
                health.error(
                    "unreachable",
                    &format!("cannot reach collector at {url}: {why}; retrying in {delay:?}"),
                );
                Some(delay)
            }
        };
        match delay {
            Some(delay) => {
                if !sleep_or_shutdown(delay, &mut shutdown).await {
                    break;
                }
            }
            None => {
                // Every 2xx lands here; the request is the source's
                // "collection", so its duration is what is timed.
                health.record_success(sent_at.elapsed());
                backoff.reset();
                pending_ack = Some(seq);
            }
        }
    }
    tracing::info!("OTLP sender stopped");
}

/// Runs a spool operation off the async workers (it may touch the disk),
/// holding the lock only for the operation itself.
async fn spool_call<T, F>(spool: &Arc<Mutex<Spool>>, op: F) -> Result<T, SpoolCallError>
where
    T: Send + 'static,
    F: FnOnce(&mut Spool) -> Result<T, SpoolError> + Send + 'static,
{
    let spool = Arc::clone(spool);
    let result = tokio::task::spawn_blocking(move || {
        // A panic elsewhere while holding the lock leaves the spool's index
        // no worse than after a crash; keep going.
        let mut guard = spool.lock().unwrap_or_else(|p| p.into_inner());
        op(&mut guard)
    })
    .await?;
    Ok(result?)
}

async fn send(client: &reqwest::Client, url: &str, payload: Vec<u8>) -> Outcome {
    let response = match client
        .post(url)
        .header(CONTENT_TYPE, "application/x-protobuf")
        .header(CONTENT_ENCODING, "gzip")
        .body(payload)
        .send()
        .await
    {
        Ok(response) => response,
        Err(e) => return Outcome::Unreachable(error_chain(&e)),
    };
    let status = response.status();
    let retry_after = response
        .headers()
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| parse_retry_after(v, SystemTime::now()));
    let body = response.bytes().await;

    if status.is_success() {
        let body = match body {
            Ok(body) => body,
            Err(e) => return Outcome::SuccessUnverified(error_chain(&e)),
        };
        if body.is_empty() {
            return Outcome::Success;
        }
        return match tally_schema::otlp::decode_metrics_response(&body) {
            Ok(response) => match response.partial_success {
                Some(partial)
                    if partial.rejected_data_points > 0 || !partial.error_message.is_empty() =>
                {
                    Outcome::Partial {
                        rejected_points: u64::try_from(partial.rejected_data_points).unwrap_or(0),
                        message: partial.error_message,
                    }
                }
                _ => Outcome::Success,
            },
            Err(e) => Outcome::SuccessUnverified(e.to_string()),
        };
    }
    if matches!(status.as_u16(), 429 | 502 | 503 | 504) {
        return Outcome::Retryable {
            status,
            retry_after,
        };
    }
    let body = body
        .map(|b| String::from_utf8_lossy(&b[..b.len().min(BODY_EXCERPT)]).into_owned())
        .unwrap_or_default();
    Outcome::Rejected { status, body }
}

/// Parses a `Retry-After` value: delta-seconds or an HTTP-date (a date in
/// the past means "now").
fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        // Absurdly long digit strings overflow u64: treat as "very long",
        // the caller caps it.
        return Some(Duration::from_secs(value.parse().unwrap_or(u64::MAX)));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// Resolves once shutdown is requested or can no longer be (sender dropped).
async fn wait_shutdown(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}

/// Sleeps for `delay`; false if shutdown came first.
async fn sleep_or_shutdown(delay: Duration, shutdown: &mut watch::Receiver<bool>) -> bool {
    tokio::select! {
        () = tokio::time::sleep(delay) => true,
        () = wait_shutdown(shutdown) => false,
    }
}

/// An error with its sources, since reqwest's top-level message ("error
/// sending request") hides the cause.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// Exponential backoff with full jitter: each delay is uniform in
/// `[0, ceiling]`, and the ceiling doubles per failure up to the maximum.
/// Jitter keeps a fleet of agents from retrying in lockstep after a
/// collector restart.
#[derive(Debug)]
struct Backoff {
    initial: Duration,
    max: Duration,
    ceiling: Duration,
    rng: XorShift,
}

impl Backoff {
    fn new(initial: Duration, max: Duration) -> Self {
        let initial = initial.min(max);
        Self {
            initial,
            max,
            ceiling: initial,
            rng: XorShift::from_clock(),
        }
    }

    fn next_delay(&mut self) -> Duration {
        let ceiling = self.ceiling;
        self.ceiling = ceiling.saturating_mul(2).min(self.max);
        ceiling.mul_f64(self.rng.unit())
    }

    fn reset(&mut self) {
        self.ceiling = self.initial;
    }
}

/// xorshift64* seeded from the clock: plenty for jitter, no dependency.
#[derive(Debug)]
struct XorShift(u64);

impl XorShift {
    fn from_clock() -> Self {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0x9e37_79b9_7f4a_7c15);
        // splitmix64 finaliser spreads clock bits; `| 1` keeps it non-zero.
        let mut z = nanos.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        Self((z ^ (z >> 31)) | 1)
    }

    fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in `[0, 1)`.
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_url_strips_trailing_slash() {
        assert_eq!(
            SenderConfig::new("http://c:4318/").metrics_url(),
            "http://c:4318/v1/metrics"
        );
        assert_eq!(
            SenderConfig::new("http://c:4318").metrics_url(),
            "http://c:4318/v1/metrics"
        );
    }

    #[test]
    fn retry_after_seconds_and_dates() {
        let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(parse_retry_after("1", now), Some(Duration::from_secs(1)));
        assert_eq!(
            parse_retry_after(" 120 ", now),
            Some(Duration::from_secs(120))
        );
        let later = httpdate::fmt_http_date(now + Duration::from_secs(42));
        assert_eq!(
            parse_retry_after(&later, now),
            Some(Duration::from_secs(42))
        );
        let earlier = httpdate::fmt_http_date(now - Duration::from_secs(42));
        assert_eq!(parse_retry_after(&earlier, now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-1", now), None);
        assert_eq!(
            parse_retry_after("99999999999999999999999", now),
            Some(Duration::from_secs(u64::MAX))
        );
    }

    #[test]
    fn backoff_doubles_with_full_jitter_and_resets() {
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_millis(800));
        let ceilings = [100u64, 200, 400, 800, 800, 800];
        for ceiling in ceilings {
            let delay = backoff.next_delay();
            assert!(
                delay <= Duration::from_millis(ceiling),
                "{delay:?} > {ceiling}"
            );
        }
        backoff.reset();
        assert!(backoff.next_delay() <= Duration::from_millis(100));
        // Jitter actually varies.
        let delays: std::collections::BTreeSet<Duration> =
            (0..20).map(|_| backoff.next_delay()).collect();
        assert!(delays.len() > 5, "{delays:?}");
    }

    #[test]
    fn jitter_is_uniform_enough() {
        let mut rng = XorShift::from_clock();
        let samples: Vec<f64> = (0..10_000).map(|_| rng.unit()).collect();
        assert!(samples.iter().all(|x| (0.0..1.0).contains(x)));
        let mean = samples.iter().sum::<f64>() / samples.len() as f64;
        assert!((0.45..0.55).contains(&mean), "{mean}");
    }

    #[test]
    fn counts_snapshot() {
        let stats = ExportStats::default();
        bump(&stats.success);
        bump(&stats.partial);
        stats.rejected_points.fetch_add(7, Ordering::Relaxed);
        assert_eq!(
            stats.snapshot(),
            ExportCounts {
                success: 1,
                partial: 1,
                rejected_points: 7,
                ..Default::default()
            }
        );
    }
}
