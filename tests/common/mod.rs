//! Helpers shared by the end-to-end suites: run the real `tally` binary,
//! find free loopback ports, wait for readiness, find peers.

#![allow(dead_code)]

pub mod fixture;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A free TCP port on 127.0.0.1 (bound then released), never one this
/// process was already given: the kernel hands a just-released port out
/// again, and two servers of one test given the same port collide.
pub fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut given = GIVEN.lock().unwrap_or_else(|p| p.into_inner());
    // Hold every candidate until a new one turns up, so the kernel cannot
    // offer the same one twice in this loop either.
    let mut held = Vec::new();
    loop {
        let listener = TcpListener::bind("127.0.0.1:0").expect("free port");
        let port = listener.local_addr().expect("address").port();
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
        held.push(listener);
    }
}

/// A child process killed on drop.
pub struct Running {
    pub child: Child,
    pub name: &'static str,
}

impl Running {
    /// Asks the process to stop (SIGTERM) and waits for it to exit.
    pub fn stop(&mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        self.child.wait().expect("wait for the process")
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `tally agent` with `args` and extra environment.
pub fn start_agent(args: &[&str], env: &[(&str, &str)], log: &Path) -> Running {
    let log_file = std::fs::File::create(log).expect("agent log");
    let mut command = Command::new(env!("CARGO_BIN_EXE_tally"));
    command
        .arg("agent")
        .args(args)
        .env("TALLY_LOG_FORMAT", "json")
        .env_remove("KUBERNETES_SERVICE_HOST")
        .stdout(Stdio::null())
        .stderr(log_file);
    for (key, value) in env {
        command.env(key, value);
    }
    Running {
        child: command.spawn().expect("spawn tally agent"),
        name: "tally agent",
    }
}

/// Polls `url` until it answers 200 or `limit` passes.
pub fn wait_ready(url: &str, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if http_get(url)
            .map(|(status, _)| status == 200)
            .unwrap_or(false)
        {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    false
}

/// A minimal blocking HTTP/1.1 GET on loopback: (status, body).
pub fn http_get(url: &str) -> std::io::Result<(u16, String)> {
    http_get_with(url, &[])
}

/// GET with extra headers.
pub fn http_get_with(url: &str, headers: &[(&str, &str)]) -> std::io::Result<(u16, String)> {
    use std::io::{Read, Write};
    let rest = url.strip_prefix("http://").unwrap_or(url);
    let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
    let mut stream = std::net::TcpStream::connect(host)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut request = format!("GET /{path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
    for (k, v) in headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes())?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response)?;
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_owned()
    };
    Ok((status, body))
}

fn dechunk(body: &str) -> String {
    let mut out = String::new();
    let mut rest = body;
    while let Some((size, after)) = rest.split_once("\r\n") {
        let Ok(size) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if size == 0 || after.len() < size {
            break;
        }
        out.push_str(&after[..size]);
        rest = after[size..].trim_start_matches("\r\n");
    }
    out
}

/// Whether this process runs as root (`/proc/self` belongs to the
/// effective user).
pub fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt as _;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// Finds an executable on PATH.
pub fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|path| path.is_file())
    })
}

/// A missing peer (`what`): a SKIP line, or with `TALLY_REQUIRE_PEERS=1`
/// (set by `.ci/run`) a failure.
pub fn missing_peer(test: &str, what: &str) {
    if std::env::var("TALLY_REQUIRE_PEERS").as_deref() == Ok("1") {
        panic!("{test}: {what} is not installed (run scripts/install-test-peers.sh)");
    }
    eprintln!("SKIP {test}: {what} is not installed; run scripts/install-test-peers.sh");
}

/// A peer binary, or `None` after [`missing_peer`].
pub fn peer(name: &str, test: &str) -> Option<PathBuf> {
    let found = which(name);
    if found.is_none() {
        missing_peer(test, &format!("peer {name}"));
    }
    found
}

/// Starts `tally collector` on `port` with its data in `data`.
pub fn start_collector(port: u16, data: &Path, log: &Path) -> Running {
    start_collector_with_env(port, data, log, &[])
}

/// `tally collector` with extra environment (configuration overrides).
pub fn start_collector_with_env(
    port: u16,
    data: &Path,
    log: &Path,
    env: &[(&str, &str)],
) -> Running {
    let log = std::fs::File::create(log).expect("collector log");
    Running {
        child: Command::new(env!("CARGO_BIN_EXE_tally"))
            .envs(env.iter().copied())
            .args([
                "collector",
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--data-dir",
            ])
            .arg(data)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn tally collector"),
        name: "tally collector",
    }
}

/// A running collector on a free port with its data in `dir`, ready.
pub fn ready_collector(dir: &Path) -> (Running, u16) {
    let port = free_port();
    let collector = start_collector(port, &dir.join("data"), &dir.join("collector.log"));
    assert!(
        wait_ready(
            &format!("http://127.0.0.1:{port}/readyz"),
            Duration::from_secs(10)
        ),
        "collector not ready; log: {}",
        std::fs::read_to_string(dir.join("collector.log")).unwrap_or_default()
    );
    (collector, port)
}

/// A program from the project's Python peer venv (`.venv-peers`), or a
/// skip line; with `TALLY_REQUIRE_PEERS=1` a missing one fails.
pub fn venv_peer(name: &str, test: &str) -> Option<PathBuf> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(".venv-peers/bin")
        .join(name);
    if path.is_file() {
        return Some(path);
    }
    missing_peer(test, name);
    None
}

/// A real Prometheus (`binary`) scraping `target` as job `job` every
/// second, its data under `dir`; returns it and its base URL once ready.
pub fn start_prometheus(binary: &Path, dir: &Path, job: &str, target: &str) -> (Running, String) {
    let port = free_port();
    let config = dir.join("prometheus.yml");
    std::fs::write(
        &config,
        format!("global: {{scrape_interval: 1s, evaluation_interval: 1s}}\nscrape_configs:\n  - job_name: {job}\n    static_configs: [{{targets: ['{target}']}}]\n"),
    )
    .expect("prometheus config");
    let running = Running {
        child: Command::new(binary)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start prometheus"),
        name: "prometheus",
    };
    let url = format!("http://127.0.0.1:{port}");
    assert!(
        wait_ready(&format!("{url}/-/ready"), Duration::from_secs(30)),
        "prometheus not ready"
    );
    (running, url)
}

/// An instant PromQL query's JSON answer.
pub fn prom_query(prometheus: &str, promql: &str) -> serde_json::Value {
    let encoded: String = promql
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect();
    let (status, body) =
        http_get(&format!("{prometheus}/api/v1/query?query={encoded}")).expect("query");
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).expect("json")
}

/// POST with a raw body; returns (status, body).
pub fn http_post(port: u16, path: &str, headers: &[(&str, &str)], body: &[u8]) -> (u16, Vec<u8>) {
    use std::io::{Read as _, Write as _};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut head = format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    // The server may answer (413) and close before the body is sent.
    let _ = stream
        .write_all(head.as_bytes())
        .and_then(|()| stream.write_all(body));
    let mut response = Vec::new();
    stream.read_to_end(&mut response).expect("read");
    let split = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|p| p + 4)
        .unwrap_or(response.len());
    let status = String::from_utf8_lossy(&response[..split])
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, response[split..].to_vec())
}
