//! Fetching a model server's page over real HTTP on loopback: every way a
//! scrape fails has its own kind, and none waits past the timeout.

use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::http::StatusCode;
use axum::routing::get;
use tally_agent::sources::serving::{ScrapeError, fetch};

async fn serve() -> String {
    let app = Router::new()
        .route("/ok", get(|| async { "vllm:num_requests_running 1\n" }))
        .route(
            "/error",
            get(|| async { (StatusCode::INTERNAL_SERVER_ERROR, "boom") }),
        )
        .route("/large", get(|| async { "x".repeat(4096) }))
        .route(
            "/streamed",
            get(|| async {
                // No content length: the limit must hold while reading.
                let chunks = (0..64).map(|_| Ok::<_, std::io::Error>(vec![b'y'; 1024]));
                Body::from_stream(futures_stream(chunks))
            }),
        )
        .route(
            "/hang",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(3600)).await;
                ""
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://{address}")
}

/// A stream over an iterator (futures-core is already in the tree through
/// hyper; the full futures crate is not needed).
fn futures_stream<I: Iterator + Unpin>(items: I) -> IterStream<I> {
    IterStream(items)
}

struct IterStream<I>(I);

impl<I: Iterator + Unpin> futures_core::Stream for IterStream<I> {
    type Item = I::Item;
    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<I::Item>> {
        std::task::Poll::Ready(self.0.next())
    }
}

#[tokio::test]
async fn each_failure_has_its_kind() {
    let base = serve().await;
    let client = reqwest::Client::new();
    let timeout = Duration::from_millis(300);
    let get = |path: &str, max: u64| {
        let client = client.clone();
        let url = format!("{base}{path}");
        async move { fetch(&client, &url, timeout, max).await }
    };
    let page = get("/ok", 1024).await.expect("page");
    assert_eq!(page, b"vllm:num_requests_running 1\n");
    let kind = |r: Result<Vec<u8>, ScrapeError>| r.err().map(|e| e.kind());
    assert_eq!(kind(get("/error", 1024).await), Some("http_status"));
    assert_eq!(kind(get("/large", 1024).await), Some("body_too_large"));
    assert_eq!(kind(get("/streamed", 4096).await), Some("body_too_large"));
    assert!(get("/streamed", 65536).await.is_ok(), "64 KiB fits 64 KiB");
    let started = Instant::now();
    assert_eq!(kind(get("/hang", 1024).await), Some("timeout"));
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "cut at the timeout"
    );
    // Nothing listens on port 1.
    let refused = fetch(&client, "http://127.0.0.1:1/metrics", timeout, 1024).await;
    assert_eq!(kind(refused), Some("connect"));
}
