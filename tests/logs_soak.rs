//! Container logs under load, end to end on real files and processes: a
//! writer process (Python, the way a runtime writes CRI lines) appends
//! JSON lines at 5,000 lines/s while the test rotates the file the way
//! kubelet does, then copy-truncates it, then truncates it; the real
//! `tally agent` follows it and ships over OTLP/HTTP.
//!
//! The receiving end is an OTLP/HTTP logs receiver inside the test that
//! records every sequence number it acknowledges: the suites check sets
//! of hundreds of thousands of lines, and the collector's API returns at
//! most 10,000 records (the collector's own `/v1/logs` path is covered by
//! `logs_e2e.rs`). It acknowledges only what it recorded, as the
//! collector does after its WAL write.

mod common;

use std::collections::BTreeMap;
use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use prost::Message as _;

const UID: &str = "7a2d3e4f-5b6c-4d7e-8f9a-0b1c2d3e4f5a";

/// Appends CRI lines `{"level":…,"msg":"request done","seq":N,…}` at a
/// rate; every seventh message is two partial (`P`) pieces. SIGHUP makes
/// it reopen the path (what containerd does when kubelet rotates).
const WRITER: &str = r#"
import os, signal, sys, time
path, rate, total = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
reopen = False
def hup(signum, frame):
    global reopen
    reopen = True
signal.signal(signal.SIGHUP, hup)
flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT
fd = os.open(path, flags, 0o644)
start = time.monotonic()
seq = 0
pad = "x" * 120
while seq < total:
    if reopen:
        reopen = False
        os.close(fd)
        fd = os.open(path, flags, 0o644)
    due = min(total, int((time.monotonic() - start) * rate) + 1)
    if due <= seq:
        time.sleep(0.002)
        continue
    out = []
    while seq < due:
        level = "error" if seq % 20 == 0 else "info"
        msg = '{"level":"%s","msg":"request done","seq":%d,"latency_ms":%d,"pad":"%s"}' % (level, seq, seq % 250, pad)
        stamp = "2026-12-01T16:15:00.000000001Z"
        if seq % 7 == 0:
            half = len(msg) // 2
            out.append("%s stdout P %s\n%s stdout F %s\n" % (stamp, msg[:half], stamp, msg[half:]))
        else:
            out.append("%s stdout F %s\n" % (stamp, msg))
        seq += 1
    os.write(fd, "".join(out).encode())
"#;

/// What the receiver saw.
#[derive(Default)]
struct Received {
    /// Sequence number → times received.
    seqs: BTreeMap<u64, u32>,
    /// Most records in one request.
    largest_request: usize,
    requests: u64,
}

/// The in-test OTLP/HTTP logs receiver; stopping it is an outage.
struct Receiver {
    port: u16,
    received: Arc<Mutex<Received>>,
    runtime: tokio::runtime::Runtime,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<()>>,
}

fn record_request(received: &Mutex<Received>, body: &[u8], gzip: bool) -> bool {
    let mut raw = Vec::new();
    if gzip {
        if flate2::read::GzDecoder::new(body)
            .read_to_end(&mut raw)
            .is_err()
        {
            return false;
        }
    } else {
        raw.extend_from_slice(body);
    }
    let Ok(request) =
        opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest::decode(
            raw.as_slice(),
        )
    else {
        return false;
    };
    let mut received = received.lock().expect("lock");
    let mut records = 0;
    for resource in &request.resource_logs {
        for scope in &resource.scope_logs {
            for record in &scope.log_records {
                records += 1;
                let seq = record
                    .attributes
                    .iter()
                    .find(|a| a.key == "seq")
                    .and_then(|a| match a.value.as_ref()?.value.as_ref()? {
                        opentelemetry_proto::tonic::common::v1::any_value::Value::StringValue(
                            s,
                        ) => s.parse().ok(),
                        _ => None,
                    });
                if let Some(seq) = seq {
                    *received.seqs.entry(seq).or_insert(0) += 1;
                }
            }
        }
    }
    received.requests += 1;
    received.largest_request = received.largest_request.max(records);
    true
}

impl Receiver {
    fn start() -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let mut receiver = Self {
            port: common::free_port(),
            received: Arc::default(),
            runtime,
            stop: None,
            server: None,
        };
        receiver.resume();
        receiver
    }

    /// Starts serving (again) on the same port.
    fn resume(&mut self) {
        let received = Arc::clone(&self.received);
        let app = axum::Router::new().route(
            "/v1/logs",
            axum::routing::post(
                move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
                    let received = Arc::clone(&received);
                    async move {
                        let gzip = headers
                            .get("content-encoding")
                            .is_some_and(|v| v.as_bytes() == b"gzip");
                        if record_request(&received, &body, gzip) {
                            axum::http::StatusCode::OK
                        } else {
                            axum::http::StatusCode::BAD_REQUEST
                        }
                    }
                },
            ),
        );
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let port = self.port;
        let listener = self.runtime.block_on(async move {
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                match tokio::net::TcpListener::bind(("127.0.0.1", port)).await {
                    Ok(listener) => return listener,
                    Err(error) if Instant::now() < deadline => {
                        let _ = error;
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    Err(error) => panic!("bind {port}: {error}"),
                }
            }
        });
        self.server = Some(self.runtime.spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await;
        }));
        self.stop = Some(stop);
    }

    /// An outage: the port refuses connections until `resume`.
    fn pause(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            let _ = self.runtime.block_on(server);
        }
    }

    fn snapshot(&self) -> (usize, u64, usize) {
        let received = self.received.lock().expect("lock");
        (
            received.seqs.len(),
            received.seqs.values().map(|n| u64::from(n - 1)).sum(),
            received.largest_request,
        )
    }

    fn has(&self, seq: u64) -> bool {
        self.received.lock().expect("lock").seqs.contains_key(&seq)
    }
}

/// The pod's container log directory under a fresh root.
fn pod_dir(root: &Path, pod: &str, container: &str) -> PathBuf {
    let dir = root.join(format!("ml_{pod}_{UID}")).join(container);
    std::fs::create_dir_all(&dir).expect("pod dir");
    dir
}

fn spawn_writer(live: &Path, rate: u64, total: u64) -> Child {
    Command::new("python3")
        .args(["-c", WRITER])
        .arg(live)
        .args([rate.to_string(), total.to_string()])
        .stdout(Stdio::null())
        .spawn()
        .expect("python3 writer")
}

fn signal(pid: u32, name: &str) {
    let status = Command::new("kill")
        .args([&format!("-{name}"), &pid.to_string()])
        .status()
        .expect("kill");
    assert!(status.success(), "kill -{name} {pid}");
}

/// The agent, as a plain process (so the crash suite can SIGKILL it).
fn spawn_agent(
    dir: &Path,
    root: &Path,
    port: u16,
    wrap: &[&str],
    round: u32,
    listen: u16,
) -> Child {
    let log = std::fs::File::create(dir.join(format!("agent-{round}.log"))).expect("log");
    let (program, args) = match wrap.split_first() {
        Some((first, rest)) => (first.to_string(), rest.to_vec()),
        None => (env!("CARGO_BIN_EXE_tally").to_owned(), Vec::new()),
    };
    let mut command = Command::new(program);
    command.args(args);
    if !wrap.is_empty() {
        command.arg(env!("CARGO_BIN_EXE_tally"));
    }
    command
        .args([
            "agent",
            "--listen",
            &format!("127.0.0.1:{listen}"),
            "--collector",
            &format!("http://127.0.0.1:{port}"),
        ])
        .env("TALLY_LOG_FORMAT", "json")
        .env_remove("KUBERNETES_SERVICE_HOST")
        .env("TALLY_CGROUPS_ROOT", dir)
        .env("TALLY_SPOOL_DIR", dir.join("spool"))
        .env("TALLY_GPU_MODE", "off")
        .env("TALLY_SERVING_DISCOVER_PODS", "false")
        .env("TALLY_LOGS_ROOT", root)
        .env("TALLY_LOGS_CHECKPOINT_FILE", dir.join("checkpoints.json"))
        .env("TALLY_LOGS_POLL_INTERVAL", "100ms")
        .env("TALLY_LOGS_RESCAN_INTERVAL", "500ms")
        .env("TALLY_LOGS_BATCH_BYTES", "262144")
        .env("TALLY_EXPORT_MAX_BACKOFF", "1s")
        .stdout(Stdio::null())
        .stderr(log);
    command.spawn().expect("spawn tally agent")
}

/// kubelet's rotation: rename the live file to `<n>.log.<stamp>`, have
/// the runtime reopen it, gzip the rotated files but the newest once
/// they are 5 s old, keep three compressed ones at most.
fn kubelet_rotate(dir: &Path, live: &Path, writer: u32, generation: u32) {
    let stamp = format!("20261201-{:06}", generation);
    std::fs::rename(live, dir.join(format!("0.log.{stamp}"))).expect("rotate");
    signal(writer, "HUP");
    let mut rotated: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("read dir")
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            name.starts_with("0.log.") && !name.ends_with(".gz")
        })
        .collect();
    rotated.sort();
    rotated.pop(); // the newest stays plain
    // kubelet compresses at its next monitor pass (every 10 s), so a
    // rotated file stays plain for a while: here 5 s.
    rotated.retain(|p| {
        std::fs::metadata(p)
            .and_then(|m| m.modified())
            .is_ok_and(|t| t.elapsed().unwrap_or_default() >= Duration::from_secs(5))
    });
    for old in rotated {
        let text = std::fs::read(&old).expect("read rotated");
        let gz = PathBuf::from(format!("{}.gz", old.display()));
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(&text).expect("gzip");
        std::fs::write(&gz, encoder.finish().expect("gzip")).expect("write gz");
        std::fs::remove_file(&old).expect("remove rotated");
    }
    let mut compressed: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("read dir")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "gz"))
        .collect();
    compressed.sort();
    while compressed.len() > 3 {
        std::fs::remove_file(compressed.remove(0)).expect("remove old gz");
    }
}

/// logrotate's copytruncate, with the writer held still so the copy and
/// the truncation see the same bytes (logrotate itself loses lines
/// written between the two).
fn copytruncate(dir: &Path, live: &Path, writer: u32, generation: u32) {
    signal(writer, "STOP");
    std::fs::copy(live, dir.join(format!("0.log.20261201-{generation:06}"))).expect("copy");
    std::fs::OpenOptions::new()
        .write(true)
        .open(live)
        .and_then(|f| f.set_len(0))
        .expect("truncate");
    signal(writer, "CONT");
}

/// The sequence numbers in a file's complete lines.
fn seqs_in(path: &Path) -> Vec<u64> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .filter(|l| l.contains(" F "))
        .filter_map(|l| {
            let at = l.find("\"seq\":")? + 6;
            l[at..]
                .split(|c: char| !c.is_ascii_digit())
                .next()?
                .parse()
                .ok()
        })
        .collect()
}

fn wait_all(receiver: &Receiver, total: u64, limit: Duration, logs: &Path) {
    let deadline = Instant::now() + limit;
    loop {
        let (distinct, _, _) = receiver.snapshot();
        if distinct as u64 >= total {
            return;
        }
        if Instant::now() >= deadline {
            let received = receiver.received.lock().expect("lock");
            let mut runs: Vec<(u64, u64)> = Vec::new();
            for seq in (0..total).filter(|s| !received.seqs.contains_key(s)) {
                match runs.last_mut() {
                    Some(run) if run.1 + 1 == seq => run.1 = seq,
                    _ => runs.push((seq, seq)),
                }
            }
            panic!(
                "{distinct} of {total} lines arrived, missing {:?}; agent log: {}",
                &runs[..runs.len().min(20)],
                std::fs::read_to_string(logs).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A pod log tree, the receiver and an agent following the tree.
struct Soak {
    dir: tempfile::TempDir,
    container: PathBuf,
    live: PathBuf,
    receiver: Receiver,
    agent: Child,
}

impl Soak {
    fn start(pod: &str) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("pods");
        let container = pod_dir(&root, pod, "server");
        let live = container.join("0.log");
        let receiver = Receiver::start();
        let agent = spawn_agent(
            dir.path(),
            &root,
            receiver.port,
            &[],
            0,
            common::free_port(),
        );
        Self {
            dir,
            container,
            live,
            receiver,
            agent,
        }
    }
}

/// Waits for the writer and for every line, then stops the agent:
/// (distinct lines, duplicates, most records in one request).
fn finish(
    writer: &mut Child,
    receiver: &Receiver,
    agent: &mut Child,
    total: u64,
    agent_log: &Path,
) -> (usize, u64, usize) {
    assert!(writer.wait().expect("writer").success());
    wait_all(receiver, total, Duration::from_secs(120), agent_log);
    let seen = receiver.snapshot();
    let _ = agent.kill();
    let _ = agent.wait();
    seen
}

fn soak_seconds() -> u64 {
    std::env::var("TALLY_SOAK_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(120)
}

/// 5,000 lines/s: kubelet rotation every 1 MiB for two minutes (gzip of
/// the older files included), then copytruncate, then truncation. Every
/// line arrives exactly once.
#[test]
fn soak_rotation_copytruncate_and_truncation_lose_nothing() {
    let Soak {
        dir,
        container,
        live,
        mut receiver,
        mut agent,
        ..
    } = Soak::start("chat-0");

    let rate = 5_000;
    let rotation_secs = soak_seconds();
    let (copy_secs, truncate_secs) = (20, 10);
    let total = rate * (rotation_secs + copy_secs + truncate_secs);
    let mut writer = spawn_writer(&live, rate, total);
    let pid = writer.id();
    let started = Instant::now();
    let (mut rotations, mut copies, mut truncations) = (0u32, 0u32, 0u32);
    let mut last_truncation = Instant::now();
    while writer.try_wait().expect("writer").is_none() {
        std::thread::sleep(Duration::from_millis(50));
        let size = std::fs::metadata(&live).map(|m| m.len()).unwrap_or(0);
        let elapsed = started.elapsed().as_secs();
        if elapsed < rotation_secs {
            if size >= 1 << 20 {
                rotations += 1;
                kubelet_rotate(&container, &live, pid, rotations);
            }
        } else if elapsed < rotation_secs + copy_secs {
            if size >= 1 << 20 {
                copies += 1;
                copytruncate(&container, &live, pid, 1_000 + copies);
            }
        } else if last_truncation.elapsed() >= Duration::from_secs(3) {
            // A plain truncation loses what was not read yet, by nature:
            // hold the writer, wait until every line in the file arrived,
            // truncate, go on.
            signal(pid, "STOP");
            for seq in seqs_in(&live) {
                let deadline = Instant::now() + Duration::from_secs(60);
                while !receiver.has(seq) {
                    assert!(Instant::now() < deadline, "line {seq} never arrived");
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
            std::fs::OpenOptions::new()
                .write(true)
                .open(&live)
                .and_then(|f| f.set_len(0))
                .expect("truncate");
            truncations += 1;
            last_truncation = Instant::now();
            signal(pid, "CONT");
        }
    }
    let (distinct, duplicates, _) = finish(
        &mut writer,
        &receiver,
        &mut agent,
        total,
        &dir.path().join("agent-0.log"),
    );
    receiver.pause();
    println!(
        "{total} lines, {rotations} kubelet rotations, {copies} copytruncates, \
         {truncations} truncations: {distinct} distinct, {duplicates} duplicates"
    );
    assert!(
        rotations >= rotation_secs as u32 / 2,
        "{rotations} rotations"
    );
    assert!(
        copies >= 5 && truncations >= 2,
        "{copies} copies, {truncations} truncations"
    );
    assert_eq!(distinct as u64, total);
    if duplicates > 0 {
        let received = receiver.received.lock().expect("lock");
        let twice: Vec<u64> = received
            .seqs
            .iter()
            .filter(|(_, n)| **n > 1)
            .map(|(seq, _)| *seq)
            .collect();
        let mut runs: Vec<(u64, u64)> = Vec::new();
        for seq in twice {
            match runs.last_mut() {
                Some(run) if run.1 + 1 == seq => run.1 = seq,
                _ => runs.push((seq, seq)),
            }
        }
        let log = std::fs::read_to_string(dir.path().join("agent-0.log")).unwrap_or_default();
        let notable: Vec<&str> = log
            .lines()
            .filter(|l| l.contains("WARN") || l.contains("compressed"))
            .collect();
        panic!(
            "{duplicates} duplicates, in runs {:?}; agent: {notable:#?}",
            &runs[..runs.len().min(40)]
        );
    }
    let received = receiver.received.lock().expect("lock");
    assert_eq!(received.seqs.keys().next_back(), Some(&(total - 1)));
}

/// The same writer while the agent is SIGKILLed 20 times at random
/// moments and restarted: no line lost; duplicates at most one batch per
/// kill (the batch in flight).
#[test]
fn soak_twenty_sigkills_lose_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("pods");
    let container = pod_dir(&root, "chat-1", "server");
    let live = container.join("0.log");
    let receiver = Receiver::start();
    let rate = 5_000;
    let total = rate * 40;
    let mut writer = spawn_writer(&live, rate, total);
    let pid = writer.id();
    let mut seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(1)
        | 1;
    println!("random seed {seed}");
    let mut random = move || {
        // xorshift64
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut rotations = 0;
    let mut kills = 0;
    let mut agent = spawn_agent(
        dir.path(),
        &root,
        receiver.port,
        &[],
        0,
        common::free_port(),
    );
    let mut next_kill = Instant::now() + Duration::from_millis(300 + random() % 1_500);
    while kills < 20 || writer.try_wait().expect("writer").is_none() {
        std::thread::sleep(Duration::from_millis(20));
        if std::fs::metadata(&live).map(|m| m.len()).unwrap_or(0) >= 1 << 20 {
            rotations += 1;
            kubelet_rotate(&container, &live, pid, rotations);
        }
        if kills < 20 && Instant::now() >= next_kill {
            agent.kill().expect("SIGKILL");
            agent.wait().expect("reap");
            kills += 1;
            agent = spawn_agent(
                dir.path(),
                &root,
                receiver.port,
                &[],
                kills,
                common::free_port(),
            );
            next_kill = Instant::now() + Duration::from_millis(300 + random() % 1_500);
        }
    }
    let (distinct, duplicates, largest) = finish(
        &mut writer,
        &receiver,
        &mut agent,
        total,
        &dir.path().join(format!("agent-{kills}.log")),
    );
    println!(
        "{total} lines, {kills} SIGKILLs, {rotations} rotations: {distinct} distinct, \
         {duplicates} duplicates, largest request {largest} records"
    );
    assert_eq!(distinct as u64, total, "no line lost");
    assert!(
        duplicates <= kills as u64 * largest as u64,
        "{duplicates} duplicates exceed one batch ({largest} records) per kill"
    );
}

/// VmRSS of a process, in bytes.
fn rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map(|kib| kib * 1024)
        .unwrap_or(0)
}

/// The receiver goes away for 10 s mid-stream while the writer keeps
/// writing 5,000 lines/s: the agent stops reading instead of buffering
/// (memory stays flat), then delivers everything.
#[test]
fn soak_collector_outage_loses_nothing_and_memory_stays_flat() {
    let Soak {
        dir,
        live,
        mut receiver,
        mut agent,
        ..
    } = Soak::start("chat-2");
    let rate = 5_000;
    let total = rate * 30;
    let mut writer = spawn_writer(&live, rate, total);
    std::thread::sleep(Duration::from_secs(8));
    let before = rss(agent.id());
    receiver.pause();
    let (at_outage, _, _) = receiver.snapshot();
    let mut peak = before;
    for _ in 0..40 {
        std::thread::sleep(Duration::from_millis(250));
        peak = peak.max(rss(agent.id()));
    }
    receiver.resume();
    let (distinct, duplicates, largest) = finish(
        &mut writer,
        &receiver,
        &mut agent,
        total,
        &dir.path().join("agent-0.log"),
    );
    println!(
        "outage of 10 s at {at_outage} lines: RSS {:.1} MiB before, peak {:.1} MiB during; \
         {distinct} distinct, {duplicates} duplicates",
        before as f64 / 1048576.0,
        peak as f64 / 1048576.0
    );
    assert!(before > 0, "read the agent's RSS");
    assert!(
        peak <= before + (16 << 20),
        "memory grew by {} bytes during the outage",
        peak - before
    );
    assert_eq!(distinct as u64, total);
    // A request cut by the outage after it was recorded is sent again.
    assert!(duplicates <= largest as u64);
}

fn errors_of(metrics: &str, kind: &str) -> f64 {
    metrics
        .lines()
        .find(|l| {
            l.starts_with("tally_agent_source_errors_total{")
                && l.contains("source=\"logs\"")
                && l.contains(&format!("kind=\"{kind}\""))
        })
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or(0.0)
}

/// Hostile input beside good input: a 50 MiB line with no newline, a
/// line completed only later, a file that vanishes, a directory the
/// agent may not read. Each is counted; the other files keep flowing.
#[test]
fn malformed_input_is_counted_and_the_rest_flows() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("pods");
    let huge = pod_dir(&root, "huge-0", "server").join("0.log");
    let partial = pod_dir(&root, "partial-0", "server").join("0.log");
    let vanishing = pod_dir(&root, "gone-0", "server").join("0.log");
    let locked_dir = pod_dir(&root, "locked-0", "server");
    let good = pod_dir(&root, "good-0", "server").join("0.log");
    let line = |seq: u64| {
        format!(
            "2026-12-01T16:15:00Z stdout F {{\"level\":\"info\",\"msg\":\"ok\",\"seq\":{seq}}}\n"
        )
    };
    std::fs::write(locked_dir.join("0.log"), line(900)).expect("write");
    // Without DAC override even root is refused a mode-000 directory.
    let root_user = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"));
    let wrap: Vec<&str> = if root_user {
        vec![
            "setpriv",
            "--inh-caps=-dac_override,-dac_read_search",
            "--bounding-set=-dac_override,-dac_read_search",
        ]
    } else {
        Vec::new()
    };
    let mut permissions = std::fs::metadata(&locked_dir).expect("meta").permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut permissions, 0o000);
    std::fs::set_permissions(&locked_dir, permissions).expect("chmod 000");

    // 50 MiB without a newline, then the newline and a good line.
    {
        let mut file = std::fs::File::create(&huge).expect("create");
        file.write_all(b"2026-12-01T16:15:00Z stdout F ")
            .expect("write");
        let chunk = vec![b'z'; 1 << 20];
        for _ in 0..50 {
            file.write_all(&chunk).expect("write");
        }
    }
    std::fs::write(&vanishing, line(700)).expect("write");
    std::fs::write(
        &partial,
        "2026-12-01T16:15:00Z stdout F {\"level\":\"info\",\"msg\":\"ok\",",
    )
    .expect("write");
    std::fs::write(&good, line(0)).expect("write");

    let receiver = Receiver::start();
    let listen_port = common::free_port();
    let mut agent = spawn_agent(dir.path(), &root, receiver.port, &wrap, 1, listen_port);
    let wait_seq = |seq: u64| {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !receiver.has(seq) {
            assert!(
                Instant::now() < deadline,
                "line {seq} never arrived; agent log: {}",
                std::fs::read_to_string(dir.path().join("agent-1.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    wait_seq(0);
    wait_seq(700);
    // The file vanishes; lines written to it before are in; the good
    // file goes on.
    std::fs::remove_file(&vanishing).expect("rm");
    // The partial line completed.
    std::fs::OpenOptions::new()
        .append(true)
        .open(&partial)
        .and_then(|mut f| f.write_all(b"\"seq\":800}\n"))
        .expect("complete the line");
    wait_seq(800);
    std::fs::OpenOptions::new()
        .append(true)
        .open(&huge)
        .and_then(|mut f| f.write_all(format!("\n{}", line(600)).as_bytes()))
        .expect("end the huge line");
    wait_seq(600);
    std::fs::OpenOptions::new()
        .append(true)
        .open(&good)
        .and_then(|mut f| f.write_all(line(1).as_bytes()))
        .expect("append");
    wait_seq(1);

    let metrics_url = format!("http://127.0.0.1:{listen_port}/metrics");
    let (status, metrics) = common::http_get(&metrics_url).expect("metrics");
    assert_eq!(status, 200);
    assert!(errors_of(&metrics, "line_too_long") >= 1.0, "{metrics}");
    assert!(
        errors_of(&metrics, "permission") >= 1.0,
        "the locked directory is counted: {metrics}"
    );
    assert!(!receiver.has(900), "the locked file was not readable");
    let (_, duplicates, _) = receiver.snapshot();
    assert_eq!(duplicates, 0);
    let rss_bytes = rss(agent.id());
    println!(
        "agent RSS after a 50 MiB line: {:.1} MiB",
        rss_bytes as f64 / 1048576.0
    );
    assert!(rss_bytes < 100 << 20, "a 50 MiB line is not held whole");
    let _ = agent.kill();
    let _ = agent.wait();
    let mut permissions = std::fs::metadata(&locked_dir).expect("meta").permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut permissions, 0o755);
    std::fs::set_permissions(&locked_dir, permissions).expect("chmod back");
}
