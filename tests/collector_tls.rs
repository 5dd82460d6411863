//! The collector over HTTPS: a real certificate made by `openssl`, real
//! `curl` as the client (pinning that certificate as its CA), a plain-HTTP
//! client refused and counted, and an unusable key failing the start with
//! a clear message.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

fn openssl(args: &[&str], dir: &Path) {
    let status = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stderr(std::process::Stdio::null())
        .status()
        .expect("run openssl");
    assert!(status.success(), "openssl {args:?} failed");
}

/// A test CA (`ca.crt`) once per directory, and a server certificate
/// `<name>.crt`/`<name>.key` for 127.0.0.1 signed by it (webpki, rightly,
/// refuses a CA certificate used as a server's own).
fn make_certificate(dir: &Path, name: &str) {
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    if !dir.join("ca.crt").exists() {
        let mut args = vec!["req", "-x509"];
        args.extend(ec);
        args.extend([
            "-days",
            "2",
            "-subj",
            "/CN=tally-test-ca",
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
        ]);
        openssl(&args, dir);
    }
    let (key, csr, crt, ext) = (
        format!("{name}.key"),
        format!("{name}.csr"),
        format!("{name}.crt"),
        format!("{name}.ext"),
    );
    std::fs::write(
        dir.join(&ext),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .expect("extensions");
    let mut args = vec!["req"];
    args.extend(ec);
    args.extend([
        "-subj",
        "/CN=tally-collector",
        "-keyout",
        &key,
        "-out",
        &csr,
    ]);
    openssl(&args, dir);
    openssl(
        &[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            &ext,
            "-out",
            &crt,
        ],
        dir,
    );
}

/// `curl` against the collector; returns (status, body).
fn curl(ca: &Path, url: &str, extra: &[&str]) -> (u16, String) {
    let output = Command::new("curl")
        .args(["-s", "--max-time", "5", "-w", "\n%{http_code}", "--cacert"])
        .arg(ca)
        .args(extra)
        .arg(url)
        .output()
        .expect("run curl");
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_owned())
}

#[test]
fn https_ingest_and_api_with_plain_http_refused() {
    if common::peer("openssl", "collector_tls").is_none()
        || common::peer("curl", "collector_tls").is_none()
    {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    make_certificate(dir.path(), "server");
    let port = common::free_port();
    let cert = dir.path().join("server.crt");
    let key = dir.path().join("server.key");
    let ca = dir.path().join("ca.crt");
    let _collector = common::start_collector_with_env(
        port,
        &dir.path().join("data"),
        &dir.path().join("collector.log"),
        &[
            (
                "TALLY_COLLECTOR_TLS_CERT_FILE",
                cert.to_str().expect("utf-8"),
            ),
            ("TALLY_COLLECTOR_TLS_KEY_FILE", key.to_str().expect("utf-8")),
        ],
    );
    let base = format!("https://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while curl(&ca, &format!("{base}/readyz"), &[]).0 != 200 {
        assert!(
            Instant::now() < deadline,
            "collector never became ready over HTTPS; log: {}",
            std::fs::read_to_string(dir.path().join("collector.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_nanos();
    let body = format!(
        r#"{{"resourceMetrics":[{{"resource":{{"attributes":[{{"key":"service.name","value":{{"stringValue":"tls-test"}}}}]}},"scopeMetrics":[{{"metrics":[{{"name":"tls_probe","gauge":{{"dataPoints":[{{"timeUnixNano":"{now}","asDouble":7.5}}]}}}}]}}]}}]}}"#
    );
    let (status, response) = curl(
        &cert,
        &format!("{base}/v1/metrics"),
        &[
            "-H",
            "Content-Type: application/json",
            "--data-binary",
            &body,
        ],
    );
    assert_eq!(status, 200, "{response}");
    let (status, series) = curl(
        &cert,
        &format!("{base}/api/v1/series?metric=tls_probe"),
        &[],
    );
    assert_eq!(status, 200);
    assert!(series.contains("7.5"), "{series}");

    // Plain HTTP to the TLS port gets no HTTP answer, and is counted.
    assert!(
        common::http_get(&format!("http://127.0.0.1:{port}/readyz"))
            .map(|(status, _)| status != 200)
            .unwrap_or(true)
    );
    let (_, metrics) = curl(&ca, &format!("{base}/metrics"), &[]);
    let failures = metrics
        .lines()
        .find_map(|l| l.strip_prefix("tally_collector_tls_handshake_failures_total "))
        .and_then(|v| v.trim().parse::<u64>().ok());
    assert!(failures.is_some_and(|f| f >= 1), "{metrics}");
}

/// `tally agent` exporting to an HTTPS collector that requires a token:
/// the agent trusts the collector's certificate through `export.ca_file`
/// and authenticates with `export.token_file`.
#[test]
fn the_agent_exports_over_https_with_a_token() {
    if common::peer("openssl", "collector_tls").is_none()
        || common::peer("curl", "collector_tls").is_none()
    {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    make_certificate(dir.path(), "server");
    let cert = dir.path().join("server.crt");
    let key = dir.path().join("server.key");
    let ca = dir.path().join("ca.crt");
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "agent-s3cret\n").expect("token");
    let path = |p: &Path| p.to_str().expect("utf-8").to_owned();
    let port = common::free_port();
    let _collector = common::start_collector_with_env(
        port,
        &dir.path().join("data"),
        &dir.path().join("collector.log"),
        &[
            ("TALLY_COLLECTOR_TLS_CERT_FILE", &path(&cert)),
            ("TALLY_COLLECTOR_TLS_KEY_FILE", &path(&key)),
            ("TALLY_COLLECTOR_TOKEN", "agent-s3cret"),
        ],
    );
    let cgroups = dir.path().join("cgroup");
    std::fs::create_dir_all(&cgroups).expect("cgroup root");
    let _agent = common::start_agent(
        &[
            "--listen",
            &format!("127.0.0.1:{}", common::free_port()),
            "--collector",
            &format!("https://127.0.0.1:{port}"),
        ],
        &[
            ("TALLY_CGROUPS_ROOT", &path(&cgroups)),
            ("TALLY_SPOOL_DIR", &path(&dir.path().join("spool"))),
            ("TALLY_SAMPLING_INTERVAL", "100ms"),
            ("TALLY_SAMPLING_EXPORT_INTERVAL", "500ms"),
            ("TALLY_NODE_NAME", "tls-node"),
            ("TALLY_EXPORT_TOKEN_FILE", &path(&token_file)),
            ("TALLY_EXPORT_CA_FILE", &path(&ca)),
        ],
        &dir.path().join("agent.log"),
    );
    let url = format!("https://127.0.0.1:{port}/api/v1/agents");
    let auth = ["-H", "Authorization: Bearer agent-s3cret"];
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, body) = curl(&ca, &url, &auth);
        if status == 200 && body.contains("tls-node") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the agent never reached the HTTPS collector: {status} {body}; agent log: {}",
            std::fs::read_to_string(dir.path().join("agent.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // Without the token the API refuses.
    assert_eq!(curl(&ca, &url, &[]).0, 401);
}

#[test]
fn a_key_that_does_not_match_fails_the_start_clearly() {
    if common::peer("openssl", "collector_tls").is_none() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    make_certificate(dir.path(), "one");
    make_certificate(dir.path(), "two");
    let output = Command::new(env!("CARGO_BIN_EXE_tally"))
        .args(["collector", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path().join("data"))
        .arg("--tls-cert-file")
        .arg(dir.path().join("one.crt"))
        .arg("--tls-key-file")
        .arg(dir.path().join("two.key"))
        .output()
        .expect("run tally collector");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("TLS certificate and key"), "{stderr}");
}
