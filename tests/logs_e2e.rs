//! Container logs end to end on real files: a pod log tree written the way
//! kubelet and containerd write it (CRI lines, partial pieces, JSON and
//! text messages, a rename-and-create rotation), the real `tally agent`
//! following it and the real `tally collector` receiving the records over
//! OTLP. Every line carries a sequence number; the test checks the set
//! that arrives, and that a SIGKILLed agent resumes from its checkpoint.

mod common;

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;

const UID: &str = "6f1c2e7a-3b4d-4e5f-8a9b-0c1d2e3f4a5b";

fn append(path: &Path, lines: &[String]) {
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("open log");
    for line in lines {
        file.write_all(line.as_bytes()).expect("write");
        file.write_all(b"\n").expect("write");
    }
}

/// CRI lines for messages `from..to`: JSON with a sequence number, every
/// fifth an error, every seventh written as two partial pieces.
fn cri_lines(from: u32, to: u32) -> Vec<String> {
    let mut out = Vec::new();
    for seq in from..to {
        let level = if seq % 5 == 0 { "error" } else { "info" };
        let message = format!(
            r#"{{"level":"{level}","msg":"request done","seq":{seq},"latency_ms":{},"model":"qwen-7b"}}"#,
            seq % 100
        );
        let time = "2026-12-01T16:15:00.000000001Z";
        if seq % 7 == 0 {
            let (head, tail) = message.split_at(message.len() / 2);
            out.push(format!("{time} stdout P {head}"));
            out.push(format!("{time} stdout F {tail}"));
        } else {
            out.push(format!("{time} stdout F {message}"));
        }
    }
    out
}

fn start_agent(dir: &Path, root: &Path, port: u16) -> (common::Running, String) {
    let listen = format!("127.0.0.1:{}", common::free_port());
    let agent = common::start_agent(
        &[
            "--listen",
            &listen,
            "--collector",
            &format!("http://127.0.0.1:{port}"),
        ],
        &[
            ("TALLY_CGROUPS_ROOT", dir.to_str().expect("utf8")),
            ("TALLY_SPOOL_DIR", dir.join("spool").to_str().expect("utf8")),
            ("TALLY_GPU_MODE", "off"),
            ("TALLY_LOGS_ROOT", root.to_str().expect("utf8")),
            (
                "TALLY_LOGS_CHECKPOINT_FILE",
                dir.join("checkpoints.json").to_str().expect("utf8"),
            ),
            ("TALLY_LOGS_POLL_INTERVAL", "50ms"),
            ("TALLY_LOGS_RESCAN_INTERVAL", "100ms"),
            ("TALLY_SAMPLING_INTERVAL", "100ms"),
            ("TALLY_SAMPLING_EXPORT_INTERVAL", "500ms"),
        ],
        &dir.join("agent.log"),
    );
    (agent, listen)
}

/// Sequence numbers received so far, with how often each came.
fn received(port: u16) -> (BTreeMap<u64, u32>, Vec<Value>) {
    let (status, body) =
        common::http_get(&format!("http://127.0.0.1:{port}/api/v1/logs?limit=10000"))
            .expect("logs");
    assert_eq!(status, 200, "{body}");
    let logs: Value = serde_json::from_str(&body).expect("json");
    let records = logs["records"].as_array().cloned().unwrap_or_default();
    let mut seen = BTreeMap::new();
    for record in &records {
        let attributes = record["attributes"].as_array().cloned().unwrap_or_default();
        let seq = attributes
            .iter()
            .find(|pair| pair[0] == "seq")
            .and_then(|pair| pair[1].as_str())
            .and_then(|s| s.parse().ok());
        if let Some(seq) = seq {
            *seen.entry(seq).or_insert(0) += 1;
        }
    }
    (seen, records)
}

fn wait_for(port: u16, count: u64, dir: &Path) -> BTreeMap<u64, u32> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (seen, _) = received(port);
        if seen.len() as u64 >= count {
            return seen;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {count} lines arrived; agent log: {}",
            seen.len(),
            std::fs::read_to_string(dir.join("agent.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn every_line_arrives_once_through_rotation_and_a_crash() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("pods");
    let container: PathBuf = root.join(format!("ml_chat-0_{UID}")).join("server");
    std::fs::create_dir_all(&container).expect("pod dir");
    let live = container.join("0.log");
    append(&live, &cri_lines(0, 500));
    // Garbage between good lines: not a CRI line, and one that is not
    // UTF-8. Both arrive as text records and are counted; nothing stops.
    {
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&live)
            .expect("open log");
        file.write_all(
            b"\x00\x01\x02 not a log line\n2026-12-01T16:15:00Z stderr F caf\xe9 cr\xe8me\n",
        )
        .expect("write");
    }
    let (_collector, port) = common::ready_collector(dir.path());
    let (agent, listen) = start_agent(dir.path(), &root, port);

    let seen = wait_for(port, 500, dir.path());
    assert!(seen.values().all(|n| *n == 1), "duplicates: {seen:?}");

    // kubelet's rotation: rename, the runtime reopens a new file; lines
    // written just before the rename must not be lost.
    append(&live, &cri_lines(500, 600));
    std::fs::rename(&live, container.join("0.log.20261201-161500")).expect("rotate");
    append(&live, &cri_lines(600, 800));
    let seen = wait_for(port, 800, dir.path());
    assert!(seen.values().all(|n| *n == 1), "duplicates: {seen:?}");

    // A crash: lines written while the agent is down arrive after it
    // restarts, nothing delivered before is sent again (no batch was in
    // flight: the writer was idle at the kill).
    let (_, records) = received(port);
    let record = records
        .iter()
        .find(|r| r["body"] == "request done")
        .expect("a record");
    let attributes: BTreeMap<String, String> = record["attributes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| Some((p[0].as_str()?.to_owned(), p[1].as_str()?.to_owned())))
        .collect();
    assert_eq!(
        attributes.get("k8s.namespace.name").map(String::as_str),
        Some("ml")
    );
    assert_eq!(
        attributes.get("k8s.pod.name").map(String::as_str),
        Some("chat-0")
    );
    assert_eq!(attributes.get("k8s.pod.uid").map(String::as_str), Some(UID));
    assert_eq!(
        attributes.get("k8s.container.name").map(String::as_str),
        Some("server")
    );
    assert_eq!(
        attributes.get("log.iostream").map(String::as_str),
        Some("stdout")
    );
    let errors = records.iter().filter(|r| r["severity"] == "error").count();
    assert_eq!(errors, 160, "every fifth of 800 is an error");

    // The metrics derived from the same lines, on the agent and, for the
    // latency the messages report, at the collector.
    let (status, page) = common::http_get(&format!("http://{listen}/metrics")).expect("metrics");
    assert_eq!(status, 200);
    let lines = |severity: &str| -> f64 {
        page.lines()
            .find(|l| {
                l.starts_with("tally_container_log_lines_total{")
                    && l.contains("pod=\"chat-0\"")
                    && l.contains(&format!("severity=\"{severity}\""))
            })
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(f64::NAN)
    };
    assert_eq!(lines("error"), 160.0, "{page}");
    let source_errors = |kind: &str| -> f64 {
        page.lines()
            .find(|l| {
                l.starts_with("tally_agent_source_errors_total{")
                    && l.contains("source=\"logs\"")
                    && l.contains(&format!("kind=\"{kind}\""))
            })
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0)
    };
    assert!(source_errors("time") >= 1.0, "{page}");
    let text_lines = page
        .lines()
        .find(|l| {
            l.starts_with("tally_container_log_text_lines_total{") && l.contains("pod=\"chat-0\"")
        })
        .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok());
    assert_eq!(
        text_lines,
        Some(2.0),
        "the garbage and the Latin-1 line: {page}"
    );
    assert!(source_errors("invalid_utf8") >= 1.0, "{page}");
    // The API's filters.
    let count = |query: &str| -> usize {
        let (status, body) = common::http_get(&format!(
            "http://127.0.0.1:{port}/api/v1/logs?limit=10000&{query}"
        ))
        .expect("logs");
        assert_eq!(status, 200, "{body}");
        let answer: Value = serde_json::from_str(&body).expect("json");
        answer["records"].as_array().map_or(0, Vec::len)
    };
    assert_eq!(count("pod=chat-0&severity=ERROR"), 160);
    assert_eq!(count("namespace=ml&container=server&text=not%20a%20log"), 1);
    assert_eq!(count("namespace=other"), 0);
    let bodies: Vec<&str> = records.iter().filter_map(|r| r["body"].as_str()).collect();
    assert!(
        bodies.contains(&"\u{0}\u{1}\u{2} not a log line"),
        "kept as text"
    );
    assert!(
        bodies.contains(&"caf\u{fffd} cr\u{fffd}me"),
        "replaced, not dropped"
    );
    assert_eq!(lines("info"), 640.0, "{page}");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, body) = common::http_get(&format!(
            "http://127.0.0.1:{port}/api/v1/query?metric=tally_container_log_latency_seconds&stat=max&window=1h"
        ))
        .expect("query");
        assert_eq!(status, 200, "{body}");
        let answer: Value = serde_json::from_str(&body).expect("json");
        if let Some(max) = answer["results"][0]["value"].as_f64() {
            // latency_ms is seq % 100: at most 99 ms.
            assert!((max - 0.099).abs() < 0.002, "{answer}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no latency distribution: {answer}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    // SIGKILL (Running's drop).
    drop(agent);
    append(&live, &cri_lines(800, 1000));
    let _agent = start_agent(dir.path(), &root, port).0;
    let seen = wait_for(port, 1000, dir.path());
    assert_eq!(seen.len(), 1000);
    assert!(
        seen.values().all(|n| *n == 1),
        "resumed from the checkpoint: {:?}",
        seen.iter().filter(|(_, n)| **n > 1).collect::<Vec<_>>()
    );
}

/// The agent is away while kubelet rotates the file it was reading and
/// compresses it (`0.log.<stamp>.gz`, the plain file deleted): at restart
/// the lines it had not delivered are read from the `.gz`, from where the
/// plain file was left; nothing is read twice.
#[test]
fn a_rotation_compressed_while_the_agent_was_away_is_finished_from_the_gz() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("pods");
    let container: PathBuf = root.join(format!("ml_chat-9_{UID}")).join("server");
    std::fs::create_dir_all(&container).expect("pod dir");
    let live = container.join("0.log");
    append(&live, &cri_lines(0, 300));
    let (_collector, port) = common::ready_collector(dir.path());
    let (mut agent, _) = start_agent(dir.path(), &root, port);
    wait_for(port, 300, dir.path());
    agent.stop();

    // While it is down: more lines, the rotation, the compression.
    append(&live, &cri_lines(300, 500));
    let rotated = container.join("0.log.20261201-161500");
    std::fs::rename(&live, &rotated).expect("rotate");
    append(&live, &cri_lines(500, 600));
    let text = std::fs::read(&rotated).expect("read rotated");
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(&text).expect("gzip");
    std::fs::write(
        container.join("0.log.20261201-161500.gz"),
        encoder.finish().expect("gzip"),
    )
    .expect("write gz");
    std::fs::remove_file(&rotated).expect("remove plain");
    // An older .gz this agent never left unfinished is not read again.
    let mut old = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    old.write_all(b"2026-12-01T16:00:00Z stdout F {\"msg\":\"old\",\"seq\":99999}\n")
        .expect("gzip");
    std::fs::write(
        container.join("0.log.20261201-150000.gz"),
        old.finish().expect("gzip"),
    )
    .expect("write old gz");

    let _agent = start_agent(dir.path(), &root, port).0;
    let seen = wait_for(port, 600, dir.path());
    assert_eq!(seen.len(), 600, "{:?}", seen.keys().last());
    assert!(
        seen.values().all(|n| *n == 1),
        "duplicates: {:?}",
        seen.iter().filter(|(_, n)| **n > 1).collect::<Vec<_>>()
    );
    assert!(!seen.contains_key(&99999), "the older .gz is not re-read");
}
