//! A minimal Kubernetes API client: bearer-token GETs that decode JSON and
//! streaming watches read line by line.
//!
//! Tally needs one watched resource, a few kinds of GET and one list, so
//! this small client over `reqwest` replaces kube-rs and k8s-openapi
//! (minutes of compile time on small build machines for a few hundred
//! lines of use).

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::de::DeserializeOwned;

/// Where the service-account token and CA live inside a pod.
pub const SERVICE_ACCOUNT_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// The longest single watch line accepted (one serialised event).
pub const MAX_LINE_BYTES: usize = 16 * 1024 * 1024;

/// How long a plain GET may take, connection included.
const GET_TIMEOUT: Duration = Duration::from_secs(30);

/// Connection timeout for every request.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How much of an error body goes into an error message.
const BODY_EXCERPT_BYTES: usize = 512;

/// How to reach the API server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubeConfig {
    /// Base URL, e.g. `https://10.96.0.1:443`, without a trailing slash.
    pub api_url: String,
    /// Bearer-token file, re-read on every request; no `Authorization`
    /// header when `None`.
    pub token_path: Option<PathBuf>,
    /// PEM file of the CA(s) that signed the API server's certificate. When
    /// set, only these CAs are trusted.
    pub ca_path: Option<PathBuf>,
    /// Accept any server certificate (test clusters only).
    pub insecure_skip_tls_verify: bool,
}

impl KubeConfig {
    /// The in-cluster configuration from `KUBERNETES_SERVICE_HOST`,
    /// `KUBERNETES_SERVICE_PORT` and the mounted service account; `None`
    /// when not running in a cluster (no env or no token file).
    pub fn in_cluster() -> Option<KubeConfig> {
        let host = std::env::var("KUBERNETES_SERVICE_HOST").ok();
        let port = std::env::var("KUBERNETES_SERVICE_PORT").ok();
        Self::in_cluster_from(
            host.as_deref(),
            port.as_deref(),
            Path::new(SERVICE_ACCOUNT_DIR),
        )
    }

    /// [`Self::in_cluster`] with the environment values and the
    /// service-account directory passed in.
    pub fn in_cluster_from(
        host: Option<&str>,
        port: Option<&str>,
        service_account_dir: &Path,
    ) -> Option<KubeConfig> {
        let host = host.map(str::trim).filter(|h| !h.is_empty())?;
        let port = port
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .unwrap_or("443");
        let token_path = service_account_dir.join("token");
        if !token_path.is_file() {
            return None;
        }
        let ca_path = service_account_dir.join("ca.crt");
        // An IPv6 service address needs brackets in a URL.
        let host = if host.contains(':') && !host.starts_with('[') {
            format!("[{host}]")
        } else {
            host.to_owned()
        };
        Some(KubeConfig {
            api_url: format!("https://{host}:{port}"),
            token_path: Some(token_path),
            ca_path: ca_path.is_file().then_some(ca_path),
            insecure_skip_tls_verify: false,
        })
    }
}

/// What can go wrong talking to the API server.
#[derive(Debug, thiserror::Error)]
pub enum KubeError {
    /// A token or CA file could not be read.
    #[error("reading {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The CA file is not a usable PEM bundle.
    #[error("CA file {}: {reason}", path.display())]
    Certificate {
        /// The file.
        path: PathBuf,
        /// Why it was rejected.
        reason: String,
    },
    /// The HTTP client could not be built.
    #[error("building the HTTP client: {0}")]
    Client(#[source] reqwest::Error),
    /// The request failed before a status arrived, or the body broke off.
    #[error("request to {url}: {source}")]
    Http {
        /// The URL requested.
        url: String,
        /// The cause.
        source: reqwest::Error,
    },
    /// The API server answered with a non-success status.
    #[error("{url} answered HTTP {status}: {body}")]
    Status {
        /// The URL requested.
        url: String,
        /// HTTP status code.
        status: u16,
        /// The start of the response body (usually a `Status` object).
        body: String,
    },
    /// The response body was not the JSON expected.
    #[error("decoding the response from {url}: {source}")]
    Decode {
        /// The URL requested.
        url: String,
        /// The cause.
        source: serde_json::Error,
    },
    /// A watch line exceeded [`MAX_LINE_BYTES`].
    #[error("watch line from {url} longer than {limit} bytes")]
    LineTooLong {
        /// The URL watched.
        url: String,
        /// The limit.
        limit: usize,
    },
}

impl KubeError {
    /// The HTTP status for [`KubeError::Status`].
    pub fn status(&self) -> Option<u16> {
        match self {
            KubeError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// A cheap-to-clone API client.
#[derive(Debug, Clone)]
pub struct KubeClient {
    http: reqwest::Client,
    base: String,
    token_path: Option<PathBuf>,
}

impl KubeClient {
    /// Builds a client for `config`, loading its CA file.
    pub fn new(config: &KubeConfig) -> Result<Self, KubeError> {
        let mut builder = reqwest::Client::builder().connect_timeout(CONNECT_TIMEOUT);
        if let Some(ca_path) = &config.ca_path {
            let pem = std::fs::read(ca_path).map_err(|source| KubeError::Io {
                path: ca_path.clone(),
                source,
            })?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
                KubeError::Certificate {
                    path: ca_path.clone(),
                    reason: e.to_string(),
                }
            })?;
            if certs.is_empty() {
                return Err(KubeError::Certificate {
                    path: ca_path.clone(),
                    reason: "no PEM certificate in the file".to_owned(),
                });
            }
            // Trust the cluster CA only, not the public web roots.
            builder = builder.tls_built_in_root_certs(false);
            for cert in certs {
                builder = builder.add_root_certificate(cert);
            }
        }
        if config.insecure_skip_tls_verify {
            builder = builder.danger_accept_invalid_certs(true);
        }
        let http = builder.build().map_err(KubeError::Client)?;
        Ok(Self {
            http,
            base: config.api_url.trim_end_matches('/').to_owned(),
            token_path: config.token_path.clone(),
        })
    }

    /// GETs `path` (with its query string) and decodes the JSON body.
    pub async fn get_json<T: DeserializeOwned>(&self, path: &str) -> Result<T, KubeError> {
        let url = self.url(path);
        let response = self.send(&url, GET_TIMEOUT).await?;
        let body = response.bytes().await.map_err(|source| KubeError::Http {
            url: url.clone(),
            source,
        })?;
        serde_json::from_slice(&body).map_err(|source| KubeError::Decode { url, source })
    }

    /// Starts a watch on `path` (which should carry `watch=1`); the stream
    /// yields one event per line. `timeout` bounds the whole request and
    /// should exceed the server-side `timeoutSeconds`.
    pub async fn watch(&self, path: &str, timeout: Duration) -> Result<WatchStream, KubeError> {
        let url = self.url(path);
        let response = self.send(&url, timeout).await?;
        Ok(WatchStream {
            url,
            response,
            buffer: Vec::new(),
            scanned: 0,
            finished: false,
            max_line: MAX_LINE_BYTES,
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    async fn send(&self, url: &str, timeout: Duration) -> Result<reqwest::Response, KubeError> {
        let mut request = self
            .http
            .get(url)
            .timeout(timeout)
            .header(reqwest::header::ACCEPT, "application/json");
        if let Some(token) = self.token()? {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.map_err(|source| KubeError::Http {
            url: url.to_owned(),
            source,
        })?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        // The body is only for the message; a broken one leaves it empty.
        let body = response.bytes().await.unwrap_or_default();
        Err(KubeError::Status {
            url: url.to_owned(),
            status: status.as_u16(),
            body: excerpt(&body),
        })
    }

    /// Re-reads the token file: projected service-account tokens rotate.
    fn token(&self) -> Result<Option<String>, KubeError> {
        let Some(path) = &self.token_path else {
            return Ok(None);
        };
        let token = std::fs::read_to_string(path).map_err(|source| KubeError::Io {
            path: path.clone(),
            source,
        })?;
        Ok(Some(token.trim().to_owned()))
    }
}

/// The body of a watch, split into newline-terminated lines.
#[derive(Debug)]
pub struct WatchStream {
    url: String,
    response: reqwest::Response,
    buffer: Vec<u8>,
    /// How much of `buffer` is known to hold no newline.
    scanned: usize,
    finished: bool,
    max_line: usize,
}

impl WatchStream {
    /// The next non-empty line without its `\n` (or `\r\n`); `None` when
    /// the server closed the stream. A final line without a newline is
    /// still returned.
    pub async fn next_line(&mut self) -> Result<Option<Vec<u8>>, KubeError> {
        loop {
            if let Some(offset) = self.buffer[self.scanned..].iter().position(|b| *b == b'\n') {
                let end = self.scanned + offset;
                if end > self.max_line {
                    return Err(self.too_long());
                }
                let mut line: Vec<u8> = self.buffer.drain(..=end).collect();
                self.scanned = 0;
                line.pop();
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                return Ok(Some(line));
            }
            self.scanned = self.buffer.len();
            if self.buffer.len() > self.max_line {
                return Err(self.too_long());
            }
            if self.finished {
                let rest = std::mem::take(&mut self.buffer);
                self.scanned = 0;
                if rest.iter().all(u8::is_ascii_whitespace) {
                    return Ok(None);
                }
                return Ok(Some(rest));
            }
            match self.response.chunk().await {
                Ok(Some(chunk)) => self.buffer.extend_from_slice(&chunk),
                Ok(None) => self.finished = true,
                Err(source) => {
                    return Err(KubeError::Http {
                        url: self.url.clone(),
                        source,
                    });
                }
            }
        }
    }
}

impl WatchStream {
    fn too_long(&self) -> KubeError {
        KubeError::LineTooLong {
            url: self.url.clone(),
            limit: self.max_line,
        }
    }
}

/// The first [`BODY_EXCERPT_BYTES`] of a body as text, cut at a character
/// boundary.
fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.len() <= BODY_EXCERPT_BYTES {
        return text.to_owned();
    }
    let mut end = BODY_EXCERPT_BYTES;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_cluster_needs_env_and_token() {
        let dir = tempfile::tempdir().expect("tempdir");
        // No token file yet.
        assert_eq!(
            KubeConfig::in_cluster_from(Some("10.96.0.1"), Some("443"), dir.path()),
            None
        );
        std::fs::write(dir.path().join("token"), "abc\n").expect("write token");
        // No env.
        assert_eq!(
            KubeConfig::in_cluster_from(None, Some("443"), dir.path()),
            None
        );
        assert_eq!(
            KubeConfig::in_cluster_from(Some(""), None, dir.path()),
            None
        );

        let config = KubeConfig::in_cluster_from(Some("10.96.0.1"), Some("6443"), dir.path())
            .expect("in cluster");
        assert_eq!(config.api_url, "https://10.96.0.1:6443");
        assert_eq!(config.token_path, Some(dir.path().join("token")));
        assert_eq!(config.ca_path, None, "no ca.crt written");
        assert!(!config.insecure_skip_tls_verify);

        std::fs::write(dir.path().join("ca.crt"), "pem").expect("write ca");
        let config =
            KubeConfig::in_cluster_from(Some("fd00::1"), None, dir.path()).expect("in cluster");
        assert_eq!(config.api_url, "https://[fd00::1]:443");
        assert_eq!(config.ca_path, Some(dir.path().join("ca.crt")));
    }

    #[test]
    fn a_ca_file_without_certificates_is_rejected() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ca = dir.path().join("ca.crt");
        std::fs::write(&ca, "not a certificate\n").expect("write ca");
        let config = KubeConfig {
            api_url: "https://127.0.0.1:1".into(),
            token_path: None,
            ca_path: Some(ca.clone()),
            insecure_skip_tls_verify: false,
        };
        let err = KubeClient::new(&config).expect_err("garbage CA");
        assert!(matches!(err, KubeError::Certificate { .. }), "{err}");
        assert!(err.to_string().contains("ca.crt"), "{err}");

        let missing = KubeConfig {
            ca_path: Some(dir.path().join("missing.crt")),
            ..config
        };
        let err = KubeClient::new(&missing).expect_err("missing CA");
        assert!(matches!(err, KubeError::Io { .. }), "{err}");
        assert!(err.to_string().contains("missing.crt"), "{err}");
    }

    /// Serves one chunked HTTP response, writing `chunks` with pauses so
    /// they reach the client as separate reads.
    async fn serve_chunks(chunks: &'static [&'static str]) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let address = listener.local_addr().expect("address");
        tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.expect("accept");
            let mut request = Vec::new();
            let mut buf = [0u8; 1024];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = socket.read(&mut buf).await.expect("read");
                assert!(n > 0, "request cut short");
                request.extend_from_slice(&buf[..n]);
            }
            let head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n";
            socket.write_all(head.as_bytes()).await.expect("write");
            for chunk in chunks {
                let framed = format!("{:x}\r\n{chunk}\r\n", chunk.len());
                socket.write_all(framed.as_bytes()).await.expect("write");
                socket.flush().await.expect("flush");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            // The client may already have hung up (line too long).
            let _ = socket.write_all(b"0\r\n\r\n").await;
        });
        format!("http://{address}")
    }

    fn client(api_url: String) -> KubeClient {
        KubeClient::new(&KubeConfig {
            api_url,
            token_path: None,
            ca_path: None,
            insecure_skip_tls_verify: false,
        })
        .expect("client")
    }

    #[tokio::test]
    async fn watch_lines_are_reassembled_across_chunks() {
        let url = serve_chunks(&["{\"a\":1}\n{\"b\"", ":2}\r\n\n", "{\"c\":3}"]).await;
        let mut stream = client(url)
            .watch("/w?watch=1", Duration::from_secs(10))
            .await
            .expect("watch");
        let mut lines = Vec::new();
        while let Some(line) = stream.next_line().await.expect("line") {
            lines.push(String::from_utf8(line).expect("utf-8"));
        }
        assert_eq!(lines, [r#"{"a":1}"#, r#"{"b":2}"#, r#"{"c":3}"#]);
    }

    #[tokio::test]
    async fn an_overlong_watch_line_is_an_error() {
        let url = serve_chunks(&["0123456789", "abcdef", "\n"]).await;
        let mut stream = client(url)
            .watch("/w?watch=1", Duration::from_secs(10))
            .await
            .expect("watch");
        stream.max_line = 12;
        let err = stream.next_line().await.expect_err("too long");
        assert!(
            matches!(err, KubeError::LineTooLong { limit: 12, .. }),
            "{err}"
        );
    }

    #[tokio::test]
    async fn error_statuses_carry_code_and_body() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let address = listener.local_addr().expect("address");
        tokio::spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let (mut socket, _) = listener.accept().await.expect("accept");
            let mut buf = [0u8; 4096];
            let _ = socket.read(&mut buf).await;
            let body = r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"pods is forbidden","reason":"Forbidden","code":403}"#;
            let response = format!(
                "HTTP/1.1 403 Forbidden\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
            socket.write_all(response.as_bytes()).await.expect("write");
        });
        let err = client(format!("http://{address}"))
            .get_json::<serde_json::Value>("/api/v1/pods")
            .await
            .expect_err("forbidden");
        assert_eq!(err.status(), Some(403));
        let message = err.to_string();
        assert!(message.contains("HTTP 403"), "{message}");
        assert!(message.contains("pods is forbidden"), "{message}");
    }

    #[test]
    fn excerpts_are_cut_at_a_character_boundary() {
        let body = "é".repeat(400);
        let cut = excerpt(body.as_bytes());
        assert!(cut.ends_with('…'));
        assert!(cut.len() <= BODY_EXCERPT_BYTES + '…'.len_utf8());
        assert_eq!(excerpt(b"  short \n"), "short");
    }
}
