//! `tally`: one binary, one subcommand per role.

use std::io::IsTerminal as _;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use tally_agent::config::{AgentConfig, FlagOverrides, LogConfig, LogFormat};
use tokio::sync::watch;

/// Exit code for a configuration the agent cannot use.
const EXIT_BAD_CONFIG: u8 = 2;

#[derive(Debug, Parser)]
#[command(
    name = "tally",
    version,
    about = "See, and cut, what AI infrastructure costs"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the node agent: host, container and pod telemetry on /metrics and over OTLP.
    Agent(AgentArgs),
    /// Run the collector: OTLP ingest, embedded store, JSON API.
    Collector(CollectorArgs),
    /// Run Tally on this machine: the collector on the embedded store plus
    /// an agent for this machine, in one process.
    Up(UpArgs),
    /// Push a deterministic simulated fleet to a collector (real time or backfill).
    Simulate(SimulateArgs),
    /// The terminal dashboard over a collector: costs, GPUs, workloads,
    /// recommendations, models, egress and logs.
    Top(TopArgs),
    /// Print the collector's recommendations: what to change, what it saves, how sure, how risky.
    Recommend(RecommendArgs),
    /// Replay the right-sizing quality bench: Tally, KRR-simple and VPA on simulated traces.
    Eval(EvalArgs),
    /// Check this machine's NVIDIA GPUs through NVML under a small load,
    /// print what NVML answered and write a replay fixture (exits 0 without a GPU).
    GpuCheck(GpuCheckArgs),
    /// Exit 0 when this host's agent or collector answers /healthz (the
    /// container image's HEALTHCHECK: distroless has no shell or curl).
    Healthcheck(HealthcheckArgs),
    /// Print the metric catalog.
    Catalog {
        /// Render as the Markdown page checked in at docs/metrics.md.
        #[arg(long)]
        markdown: bool,
    },
}

#[derive(Debug, clap::Args)]
struct HealthcheckArgs {
    /// /healthz URLs to try; the first to answer 200 passes (default: the
    /// agent's and the collector's ports, from TALLY_LISTEN and
    /// TALLY_COLLECTOR_LISTEN or 9470 and 4318, on 127.0.0.1).
    #[arg(long = "url", value_name = "URL")]
    urls: Vec<String>,
}

#[derive(Debug, clap::Args)]
struct AgentArgs {
    /// YAML config file (version: 1). Environment TALLY_* and flags override it.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Admin address for /metrics, /healthz and /readyz.
    #[arg(long, value_name = "ADDR")]
    listen: Option<String>,
    /// Collector OTLP/HTTP base URL (e.g. http://127.0.0.1:4318); no push when absent.
    #[arg(long, value_name = "URL")]
    collector: Option<String>,
    /// A model server's /metrics page to scrape (vLLM, SGLang, TGI, Triton;
    /// the engine is read from the page). Repeatable.
    #[arg(long, value_name = "URL")]
    scrape: Vec<String>,
    /// Run one full collection, print the OpenMetrics page and exit.
    #[arg(long)]
    once: bool,
    /// Print the effective configuration as YAML and exit.
    #[arg(long)]
    print_config: bool,
    /// Print the configuration reference (docs/configuration.md) and exit.
    #[arg(long)]
    config_reference: bool,
}

#[derive(Debug, clap::Args)]
struct CollectorArgs {
    /// YAML config file (version: 1). Environment TALLY_COLLECTOR_* and flags override it.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Address for OTLP/HTTP ingest, the API and /metrics (default 127.0.0.1:4318).
    #[arg(long, value_name = "ADDR")]
    listen: Option<String>,
    /// Data directory (write-ahead log).
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// File holding the bearer token required to push (and to read, unless --read-token-file).
    #[arg(long, value_name = "FILE")]
    token_file: Option<PathBuf>,
    /// File holding the bearer token required by the read API.
    #[arg(long, value_name = "FILE")]
    read_token_file: Option<PathBuf>,
    /// Allow listening on a non-loopback address without a token.
    #[arg(long)]
    insecure: bool,
    /// PEM certificate chain: serve HTTPS (needs --tls-key-file).
    #[arg(long, value_name = "FILE")]
    tls_cert_file: Option<PathBuf>,
    /// PEM private key for --tls-cert-file.
    #[arg(long, value_name = "FILE")]
    tls_key_file: Option<PathBuf>,
    /// Print the configuration reference (docs/collector-configuration.md) and exit.
    #[arg(long)]
    config_reference: bool,
    /// Print the effective configuration as YAML and exit (2 when it is invalid).
    #[arg(long)]
    print_config: bool,
}

#[derive(Debug, clap::Args)]
struct UpArgs {
    /// Collector address (the agent's admin port is the next one up from 9470).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:4318")]
    listen: String,
    /// Data directory; defaults to $XDG_DATA_HOME/tally or ~/.local/share/tally.
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// The agent's admin address (/metrics, /healthz, /readyz).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:9470")]
    agent_listen: String,
    /// A model server's /metrics page to scrape, e.g. a local vLLM at
    /// http://127.0.0.1:8000/metrics. Repeatable.
    #[arg(long, value_name = "URL")]
    scrape: Vec<String>,
    /// Do not open `tally top` even when run in a terminal.
    #[arg(long)]
    no_top: bool,
}

#[derive(Debug, clap::Args)]
struct TopArgs {
    /// Collector base URL (default http://127.0.0.1:4318).
    #[arg(long, value_name = "URL", env = "TALLY_COLLECTOR_URL")]
    collector: Option<String>,
    /// File holding the collector's read token (else TALLY_COLLECTOR_TOKEN).
    #[arg(long, value_name = "FILE")]
    token_file: Option<PathBuf>,
    /// YAML config file (version: 1): thresholds, refresh, colours. The
    /// environment and flags override it.
    #[arg(long, value_name = "FILE", env = "TALLY_TOP_CONFIG")]
    config: Option<PathBuf>,
    /// Seconds between refreshes (at least 2).
    #[arg(long, value_name = "SECONDS", env = "TALLY_TOP_REFRESH")]
    refresh: Option<f64>,
    /// No colours (NO_COLOR does the same).
    #[arg(long)]
    no_color: bool,
    /// ASCII only: no block or box-drawing characters.
    #[arg(long)]
    ascii: bool,
    /// Test hook: panic after this many frames, to check the terminal is restored.
    #[arg(long, hide = true, value_name = "N")]
    panic_after_frames: Option<u64>,
}

#[derive(Debug, clap::Args)]
struct SimulateArgs {
    /// Collector OTLP/HTTP base URL.
    #[arg(long, value_name = "URL")]
    collector: String,
    /// Nodes in the simulated fleet.
    #[arg(long, default_value_t = 10)]
    nodes: usize,
    /// Seed; the same seed gives the same fleet and values.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// What the fleet shows: demo (every case the analyzer finds), healthy
    /// (nothing to alert on), or healthy plus one problem: idle-gpu,
    /// oom-loop or ttft-regression.
    #[arg(long, default_value = "demo")]
    scenario: tally_collector::simulate::Scenario,
    /// Generate this much history (e.g. 14d) as fast as possible, then exit.
    #[arg(long, value_name = "DURATION")]
    backfill: Option<String>,
    /// Time between batches (default 15s in real time, 5m when backfilling).
    #[arg(long, value_name = "DURATION")]
    step: Option<String>,
    /// Stop after this many real-time batches.
    #[arg(long)]
    ticks: Option<u64>,
    /// File holding the collector's bearer token.
    #[arg(long, value_name = "FILE")]
    token_file: Option<PathBuf>,
    /// With --backfill: write the points as Prometheus text with timestamps to FILE instead of sending them.
    #[arg(long, value_name = "FILE")]
    dump_prometheus: Option<PathBuf>,
    /// In real time, also serve the fleet as its agents' /metrics pages on ADDR (for Prometheus).
    #[arg(long, value_name = "ADDR")]
    listen: Option<std::net::SocketAddr>,
}

#[derive(Debug, clap::Args)]
struct RecommendArgs {
    /// Collector base URL.
    #[arg(long, value_name = "URL", default_value = "http://127.0.0.1:4318")]
    collector: String,
    /// Output: table, json, yaml, csv or parquet.
    #[arg(long, default_value = "table")]
    format: String,
    /// Write to this file instead of standard output (parquet is binary:
    /// it goes to a file or a pipe, never to a terminal).
    #[arg(long, value_name = "FILE")]
    output: Option<PathBuf>,
    /// Only this namespace.
    #[arg(long, value_name = "NS")]
    namespace: Option<String>,
    /// Only this kind (cpu_request, memory_request, gpu_idle, …).
    #[arg(long, value_name = "KIND")]
    kind: Option<String>,
    /// Only cards saving at least this much a month.
    #[arg(long, value_name = "AMOUNT")]
    min_savings: Option<f64>,
    /// Run a fresh analysis first instead of reading the newest.
    #[arg(long)]
    refresh: bool,
    /// File holding the collector's read (or ingest) bearer token.
    #[arg(long, value_name = "FILE")]
    token_file: Option<PathBuf>,
    /// Print the kubectl patch (or the step, where no patch applies) for
    /// each selected card instead of the report.
    #[arg(long)]
    patch: bool,
    /// Exit with code 4 when the selected cards save more than this much
    /// a month (overlapping cards counted once): a CI gate.
    #[arg(long, value_name = "AMOUNT")]
    fail_above: Option<f64>,
    /// Read again every SECONDS (default 60) until interrupted.
    #[arg(long, value_name = "SECONDS", num_args = 0..=1, default_missing_value = "60")]
    watch: Option<f64>,
}

#[derive(Debug, clap::Args)]
struct EvalArgs {
    /// Seed of the simulated traces.
    #[arg(long, default_value_t = tally_analyzer::eval::DEFAULT_SEED)]
    seed: u64,
    /// Containers (HPA: workloads) per shape.
    #[arg(long, default_value_t = tally_analyzer::eval::DEFAULT_CONTAINERS_PER_SHAPE)]
    containers_per_shape: usize,
    /// Output: markdown or json.
    #[arg(long, default_value = "markdown")]
    format: String,
}

#[derive(Debug, clap::Args)]
struct GpuCheckArgs {
    /// Seconds of readings, one frame a second (at most 180).
    #[arg(long, default_value_t = tally_agent::gpu_check::DEFAULT_SECONDS)]
    seconds: u64,
    /// Replay fixture to write
    /// [default: agent/tests/fixtures/gpu/nvml-<model>-<driver>.json].
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
}

/// Exit code when the collector has no analysis or cannot be reached.
const EXIT_UNAVAILABLE: u8 = 3;

/// Exit code of `tally recommend --fail-above` when the savings are above it.
const EXIT_SAVINGS_ABOVE: u8 = 4;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Catalog { markdown } => {
            if markdown {
                print!("{}", tally_schema::catalog::markdown());
            } else {
                for def in tally_schema::catalog::CATALOG {
                    println!("{}", def.full_name());
                }
            }
            ExitCode::SUCCESS
        }
        Command::Collector(args) => finish("collector", collector(args)),
        Command::Up(args) => finish("up", up(args)),
        Command::Simulate(args) => finish("simulate", simulate(args)),
        Command::Healthcheck(args) => finish("healthcheck", healthcheck(args)),
        Command::Top(args) => finish("top", top(args)),
        Command::Recommend(args) => match recommend(args) {
            Ok(code) => code,
            Err(error) => {
                eprintln!("tally recommend: {error:#}");
                ExitCode::from(EXIT_UNAVAILABLE)
            }
        },
        Command::Eval(args) => eval(&args),
        Command::GpuCheck(args) => finish("gpu-check", gpu_check(args)),
        Command::Agent(args) => match agent(args) {
            Ok(code) => code,
            Err(error) => {
                tracing::error!(error = format!("{error:#}"), "agent failed");
                eprintln!("tally agent: {error:#}");
                ExitCode::FAILURE
            }
        },
    }
}

fn agent(args: AgentArgs) -> anyhow::Result<ExitCode> {
    if args.config_reference {
        print!("{}", tally_agent::config::reference_markdown());
        return Ok(ExitCode::SUCCESS);
    }
    let env: Vec<(String, String)> = std::env::vars().collect();
    let flags = FlagOverrides {
        listen: args.listen.clone(),
        collector: args.collector.clone(),
        scrape: args.scrape.clone(),
    };
    let config = match AgentConfig::load(args.config.as_deref(), &env, &flags) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("tally agent: {error}");
            return Ok(ExitCode::from(EXIT_BAD_CONFIG));
        }
    };
    if args.print_config {
        print!("{}", config.to_yaml());
        return Ok(ExitCode::SUCCESS);
    }
    let node_name = config.resolved_node_name(&env);
    if args.once {
        // stdout carries the page; logs go to stderr.
        init_logging(&config.log);
        let page = tally_agent::runtime::collect_once(&config, node_name)?;
        print!("{page}");
        return Ok(ExitCode::SUCCESS);
    }
    init_logging(&config.log);
    // One async thread is plenty: it serves scrapes and sends a batch every
    // 15 s, while sampling has its own thread. Fewer threads also means
    // fewer malloc arenas, which is most of the agent's RSS.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .thread_name("tally-agent")
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let (stop, shutdown) = watch::channel(false);
        tokio::spawn(async move {
            wait_for_signal().await;
            let _ = stop.send(true);
        });
        tally_agent::runtime::run(config, node_name, shutdown).await
    })?;
    Ok(ExitCode::SUCCESS)
}

fn gpu_check(args: GpuCheckArgs) -> anyhow::Result<ExitCode> {
    // Warnings only: the report on stdout is the output.
    init_logging(&LogConfig {
        format: LogFormat::Pretty,
        level: "warn".to_owned(),
    });
    let options = tally_agent::gpu_check::Options {
        seconds: args.seconds,
        out: args.out,
    };
    tally_agent::gpu_check::run(&options, &mut std::io::stdout().lock())?;
    Ok(ExitCode::SUCCESS)
}

fn eval(args: &EvalArgs) -> ExitCode {
    let report = tally_analyzer::eval::run(&tally_analyzer::eval::EvalOptions {
        seed: args.seed,
        containers_per_shape: args.containers_per_shape.max(1),
    });
    match args.format.as_str() {
        "json" => println!("{:#}", report.to_json()),
        "markdown" => print!("{}", report.markdown()),
        other => {
            eprintln!("tally eval: unknown format {other:?}; use markdown or json");
            return ExitCode::from(EXIT_BAD_CONFIG);
        }
    }
    // A missed target is a finding, not a failure of the command.
    ExitCode::SUCCESS
}

/// Reads a token file (trimmed); empty files are refused.
fn read_token(path: &std::path::Path) -> anyhow::Result<String> {
    let token = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read token file {}", path.display()))?;
    let token = token.trim().to_owned();
    anyhow::ensure!(!token.is_empty(), "token file {} is empty", path.display());
    Ok(token)
}

/// One read of the collector's recommendations, or the exit code of why not.
struct Selection {
    cards: Vec<tally_analyzer::recommendation::Recommendation>,
    /// The same cards as the API's JSON (for `--patch`).
    items: Vec<tally_tui::api::Recommendation>,
    currency: String,
    /// Savings of these cards, overlapping ones counted once.
    savings: f64,
}

/// Reads (after a fresh analysis with `--refresh`) the filtered cards.
async fn read_recommendations(
    args: &RecommendArgs,
    token: Option<&str>,
) -> anyhow::Result<Result<Selection, ExitCode>> {
    let base = args.collector.trim_end_matches('/').to_owned();
    let mut query: Vec<(&str, String)> = Vec::new();
    if let Some(ns) = &args.namespace {
        query.push(("namespace", ns.clone()));
    }
    if let Some(kind) = &args.kind {
        query.push(("kind", kind.clone()));
    }
    if let Some(min) = args.min_savings {
        query.push(("min_savings", min.to_string()));
    }
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(120))
        .build()
        .context("cannot build the HTTP client")?;
    let authorized = |request: reqwest::RequestBuilder| match token {
        Some(token) => request.bearer_auth(token),
        None => request,
    };
    if args.refresh {
        let response = authorized(client.post(format!("{base}/api/v1/analyze")))
            .send()
            .await
            .with_context(|| format!("cannot reach the collector at {base}"))?;
        anyhow::ensure!(
            response.status().is_success(),
            "the analysis failed: {} {}",
            response.status(),
            response.text().await.unwrap_or_default()
        );
    }
    let response = authorized(
        client
            .get(format!("{base}/api/v1/recommendations"))
            .query(&query),
    )
    .send()
    .await
    .with_context(|| format!("cannot reach the collector at {base}"))?;
    let status = response.status();
    let body = response.text().await.context("cannot read the answer")?;
    let value: serde_json::Value = serde_json::from_str(&body)
        .with_context(|| format!("the collector answered {status} with no JSON: {body}"))?;
    if !status.is_success() {
        let reason = value["reason"]
            .as_str()
            .or_else(|| value["error"].as_str())
            .unwrap_or("no reason given");
        eprintln!("tally recommend: the collector answered {status}: {reason}");
        return Ok(Err(ExitCode::from(if status.as_u16() == 400 {
            EXIT_BAD_CONFIG
        } else {
            EXIT_UNAVAILABLE
        })));
    }
    let cards: Vec<tally_analyzer::recommendation::Recommendation> =
        serde_json::from_value(value["items"].clone())
            .context("the collector's recommendations do not parse")?;
    let items: Vec<tally_tui::api::Recommendation> = serde_json::from_value(value["items"].clone())
        .context("the collector's recommendations do not parse")?;
    let (savings, _) = tally_analyzer::recommend::deduplicated(&cards);
    Ok(Ok(Selection {
        cards,
        items,
        currency: value["currency"].as_str().unwrap_or("USD").to_owned(),
        savings,
    }))
}

/// The kubectl patches (or the steps) for the selected cards.
fn patches(selection: &Selection) -> Vec<u8> {
    let mut out = String::new();
    for card in &selection.items {
        let workload = tally_tui::views::recommendations::workload_text(card);
        out.push_str(&format!(
            "# {} {workload} ({}): saves {:.2} {}/month, risk {}, confidence {:.0}%\n",
            card.kind,
            card.target,
            card.monthly_savings,
            selection.currency,
            card.risk.level,
            card.confidence * 100.0
        ));
        out.push_str(&tally_tui::patch::instructions(card));
        out.push_str("\n\n");
    }
    out.into_bytes()
}

/// Writes the output whole (a file via a temporary and a rename, so a
/// failed run never leaves half a file where the last good one was).
fn write_output(path: Option<&std::path::Path>, rendered: &[u8]) -> anyhow::Result<()> {
    match path {
        Some(path) => {
            let partial = path.with_extension("partial");
            std::fs::write(&partial, rendered)
                .and_then(|()| std::fs::rename(&partial, path))
                .with_context(|| format!("cannot write {}", path.display()))
        }
        None => {
            let mut stdout = std::io::stdout().lock();
            stdout
                .write_all(rendered)
                .and_then(|()| stdout.flush())
                .context("cannot write to standard output")
        }
    }
}

fn recommend(args: RecommendArgs) -> anyhow::Result<ExitCode> {
    use tally_analyzer::output::{self, Format};
    let Some(format) = Format::parse(&args.format) else {
        eprintln!(
            "tally recommend: unknown format {:?}; use table, json, yaml, csv or parquet",
            args.format
        );
        return Ok(ExitCode::from(EXIT_BAD_CONFIG));
    };
    if format.is_binary() && !args.patch && args.output.is_none() && std::io::stdout().is_terminal()
    {
        eprintln!(
            "tally recommend: {} is binary; pass --output FILE or redirect standard output",
            args.format
        );
        return Ok(ExitCode::from(EXIT_BAD_CONFIG));
    }
    if let Some(limit) = args.fail_above
        && !(limit.is_finite() && limit >= 0.0)
    {
        eprintln!("tally recommend: --fail-above must be an amount of 0 or more");
        return Ok(ExitCode::from(EXIT_BAD_CONFIG));
    }
    let token = args.token_file.as_deref().map(read_token).transpose()?;
    let runtime = single_thread_runtime()?;
    let render = |selection: &Selection| -> anyhow::Result<Vec<u8>> {
        if args.patch {
            return Ok(patches(selection));
        }
        Ok(output::render(
            &selection.cards,
            format,
            Some(selection.savings),
            &selection.currency,
        )?)
    };
    let above = |selection: &Selection| {
        args.fail_above
            .filter(|limit| selection.savings > *limit)
            .map(|limit| {
                format!(
                    "the selected cards save {:.2} {}/month, above --fail-above {limit}",
                    selection.savings, selection.currency
                )
            })
    };
    let Some(seconds) = args.watch else {
        let selection = match runtime.block_on(read_recommendations(&args, token.as_deref()))? {
            Ok(selection) => selection,
            Err(code) => return Ok(code),
        };
        write_output(args.output.as_deref(), &render(&selection)?)?;
        if let Some(message) = above(&selection) {
            eprintln!("tally recommend: {message}");
            return Ok(ExitCode::from(EXIT_SAVINGS_ABOVE));
        }
        return Ok(ExitCode::SUCCESS);
    };
    // --watch: read again every interval until interrupted; errors are
    // shown and retried, as `watch` does.
    anyhow::ensure!(
        seconds.is_finite() && seconds >= 1.0,
        "--watch needs an interval of at least 1 second"
    );
    let interval = std::time::Duration::from_secs_f64(seconds);
    let on_terminal = args.output.is_none() && std::io::stdout().is_terminal();
    runtime.block_on(async {
        loop {
            let read = read_recommendations(&args, token.as_deref()).await;
            let header = format!("Every {seconds}s: tally recommend, {}\n\n", httpdate_now());
            let body = match read {
                Ok(Ok(selection)) => {
                    let mut body = render(&selection)?;
                    if let Some(message) = above(&selection) {
                        body.extend_from_slice(format!("\n{message}\n").as_bytes());
                    }
                    body
                }
                Ok(Err(_)) => b"(the collector has no answer yet; retrying)\n".to_vec(),
                Err(error) => format!("{error:#}\n").into_bytes(),
            };
            let mut frame = Vec::new();
            if on_terminal {
                // Clear and home, as watch(1) does.
                frame.extend_from_slice(b"\x1b[2J\x1b[H");
                frame.extend_from_slice(header.as_bytes());
            }
            frame.extend_from_slice(&body);
            write_output(args.output.as_deref(), &frame)?;
            tokio::select! {
                () = tokio::time::sleep(interval) => {}
                () = wait_for_signal() => return anyhow::Ok(()),
            }
        }
    })?;
    Ok(ExitCode::SUCCESS)
}

/// Now, as an HTTP date (UTC), for the watch header.
fn httpdate_now() -> String {
    let seconds = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let day = seconds % 86_400;
    format!(
        "{:02}:{:02}:{:02} UTC",
        day / 3600,
        day % 3600 / 60,
        day % 60
    )
}

fn single_thread_runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

fn collector(args: CollectorArgs) -> anyhow::Result<ExitCode> {
    use tally_collector::config::{CollectorConfig, CollectorFlags};
    if args.config_reference {
        print!("{}", tally_collector::config::reference_markdown());
        return Ok(ExitCode::SUCCESS);
    }
    let env: Vec<(String, String)> = std::env::vars().collect();
    let flags = CollectorFlags {
        listen: args.listen,
        data_dir: args.data_dir,
        token_file: args.token_file,
        read_token_file: args.read_token_file,
        insecure: args.insecure,
        tls_cert_file: args.tls_cert_file,
        tls_key_file: args.tls_key_file,
    };
    if args.print_config {
        return Ok(
            match CollectorConfig::load(args.config.as_deref(), &env, &flags) {
                Ok(config) => {
                    print!("{}", tally_config::to_yaml(&config));
                    ExitCode::SUCCESS
                }
                Err(error) => {
                    eprintln!("tally collector: {error}");
                    ExitCode::from(EXIT_BAD_CONFIG)
                }
            },
        );
    }
    let options = match CollectorConfig::load(args.config.as_deref(), &env, &flags)
        .and_then(|c| c.options(&env))
    {
        Ok(options) => options,
        Err(error) => {
            eprintln!("tally collector: {error}");
            return Ok(ExitCode::from(EXIT_BAD_CONFIG));
        }
    };
    init_logging(&LogConfig::default());
    let collector = match tally_collector::server::Collector::open(options) {
        Ok(collector) => collector,
        Err(error) => {
            eprintln!("tally collector: {error}");
            return Ok(ExitCode::from(EXIT_BAD_CONFIG));
        }
    };
    // Ingest is fsync-bound and runs on blocking threads; the API is light.
    let runtime = single_thread_runtime()?;
    runtime.block_on(async move {
        let (stop, shutdown) = watch::channel(false);
        tokio::spawn(async move {
            wait_for_signal().await;
            let _ = stop.send(true);
        });
        tally_collector::server::serve(collector, shutdown).await
    })?;
    Ok(ExitCode::SUCCESS)
}

fn up(args: UpArgs) -> anyhow::Result<ExitCode> {
    let env: Vec<(String, String)> = std::env::vars().collect();
    let data_dir = match args.data_dir {
        Some(dir) => dir,
        None => std::env::var_os("XDG_DATA_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
            .unwrap_or_else(|| PathBuf::from("."))
            .join("tally"),
    };
    let mut agent_config = match AgentConfig::load(
        None,
        &env,
        &FlagOverrides {
            listen: Some(args.agent_listen.clone()),
            collector: Some(format!("http://{}", args.listen)),
            scrape: args.scrape.clone(),
        },
    ) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("tally up: {error}");
            return Ok(ExitCode::from(EXIT_BAD_CONFIG));
        }
    };
    agent_config.spool.dir = data_dir.join("spool");
    agent_config.logs.checkpoint_file = data_dir.join("logs-checkpoints.json");
    // In a terminal, `tally up` opens the dashboard; its logs go to a
    // file so they do not draw over it, and quitting it stops Tally.
    let with_top =
        !args.no_top && std::io::stdout().is_terminal() && std::io::stdin().is_terminal();
    let log_file = data_dir.join("tally-up.log");
    if with_top {
        std::fs::create_dir_all(&data_dir)
            .with_context(|| format!("cannot create {}", data_dir.display()))?;
        init_file_logging(&agent_config.log, &log_file)?;
    } else {
        init_logging(&agent_config.log);
    }
    let options = tally_collector::server::CollectorOptions {
        listen: args.listen.clone(),
        data_dir: data_dir.join("collector"),
        ..Default::default()
    };
    let collector = match tally_collector::server::Collector::open(options) {
        Ok(collector) => collector,
        Err(error) => {
            eprintln!("tally up: {error}");
            return Ok(ExitCode::from(EXIT_BAD_CONFIG));
        }
    };
    let node_name = agent_config.resolved_node_name(&env);
    let runtime = single_thread_runtime()?;
    let (stop, shutdown) = watch::channel(false);
    let stop = std::sync::Arc::new(stop);
    let dashboard = if with_top {
        let options = tally_tui::TopOptions {
            collector: format!("http://{}", args.listen),
            token: None,
            refresh: std::time::Duration::from_secs(tally_tui::MIN_REFRESH_SECS),
            palette: tally_tui::theme::Palette::detect(false, false),
            thresholds: tally_tui::theme::Thresholds::default(),
            panic_after_frames: None,
        };
        let stop = std::sync::Arc::clone(&stop);
        Some(std::thread::spawn(move || {
            let result = tally_tui::run(options);
            let _ = stop.send(true);
            result
        }))
    } else {
        None
    };
    let listen = args.listen.clone();
    let data_dir_shown = data_dir.clone();
    runtime.block_on(async move {
        let signal_stop = std::sync::Arc::clone(&stop);
        tokio::spawn(async move {
            wait_for_signal().await;
            let _ = signal_stop.send(true);
        });
        let collector_task = tokio::spawn(tally_collector::server::serve(collector, shutdown.clone()));
        if !with_top {
            eprintln!("tally up: data in {}", data_dir_shown.display());
            eprintln!("  collector  http://{listen}  (OTLP /v1/metrics, API /api/v1/containers, /api/v1/openapi.json)");
            eprintln!("  agent      http://{}/metrics", args.agent_listen);
            eprintln!("  press Ctrl-C to stop");
        }
        let agent = tally_agent::runtime::run(agent_config, node_name, shutdown).await;
        let collector = collector_task.await;
        agent?;
        match collector {
            Ok(result) => result.map_err(anyhow::Error::from),
            Err(error) => Err(anyhow::anyhow!("collector task failed: {error}")),
        }
    })?;
    if let Some(dashboard) = dashboard {
        match dashboard.join() {
            Ok(result) => result?,
            Err(_) => anyhow::bail!("the dashboard panicked"),
        }
        eprintln!(
            "tally up: stopped; data in {}, logs in {}",
            data_dir.display(),
            log_file.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// The dashboard's settings: file, then environment, then flags.
fn top_options(args: TopArgs) -> anyhow::Result<tally_tui::TopOptions> {
    let file = match &args.config {
        Some(path) => tally_tui::config::TopConfig::load(path)?,
        None => tally_tui::config::TopConfig::default(),
    };
    let token = match &args.token_file {
        Some(path) => Some(read_token(path)?),
        None => std::env::var("TALLY_COLLECTOR_TOKEN")
            .ok()
            .filter(|t| !t.is_empty()),
    };
    let refresh = args.refresh.unwrap_or(file.refresh_seconds);
    anyhow::ensure!(
        refresh.is_finite() && refresh > 0.0,
        "--refresh must be a positive number of seconds"
    );
    Ok(tally_tui::TopOptions {
        collector: args
            .collector
            .or(file.collector)
            .unwrap_or_else(|| "http://127.0.0.1:4318".to_owned()),
        token,
        refresh: std::time::Duration::from_secs_f64(refresh),
        palette: tally_tui::theme::Palette::detect(
            args.no_color || file.no_color,
            args.ascii || file.ascii,
        ),
        thresholds: file.thresholds,
        panic_after_frames: args.panic_after_frames,
    })
}

fn top(args: TopArgs) -> anyhow::Result<ExitCode> {
    let options = top_options(args)?;
    // Logs would draw over the screen: they go to the file
    // TALLY_TOP_LOG names, or nowhere.
    if let Some(path) = std::env::var_os("TALLY_TOP_LOG") {
        init_file_logging(&LogConfig::default(), std::path::Path::new(&path))?;
    }
    tally_tui::run(options)?;
    Ok(ExitCode::SUCCESS)
}

fn simulate(args: SimulateArgs) -> anyhow::Result<ExitCode> {
    use tally_config::duration_text;
    init_logging(&LogConfig::default());
    let parse = |text: &str| duration_text::parse(text).map_err(|e| anyhow::anyhow!(e));
    let backfill = args.backfill.as_deref().map(parse).transpose()?;
    let step = match args.step.as_deref() {
        Some(text) => parse(text)?,
        None if backfill.is_some() => std::time::Duration::from_secs(300),
        None => std::time::Duration::from_secs(15),
    };
    anyhow::ensure!(
        step >= std::time::Duration::from_secs(1),
        "--step must be at least 1s"
    );
    let token = match &args.token_file {
        Some(path) => Some(
            std::fs::read_to_string(path)
                .with_context(|| format!("cannot read token file {}", path.display()))?
                .trim()
                .to_owned(),
        ),
        None => std::env::var("TALLY_COLLECTOR_TOKEN").ok(),
    };
    let options = tally_collector::simulate::SimulateOptions {
        collector: args.collector,
        nodes: args.nodes,
        seed: args.seed,
        scenario: args.scenario,
        backfill,
        step,
        ticks: args.ticks,
        token,
        dump_prometheus: args.dump_prometheus,
        listen: args.listen,
        // A progress bar while backfilling, on a terminal only.
        progress: backfill.map(|_| {
            let bar = std::sync::Arc::new(tally_tui::progress::Bar::new("backfill"));
            tally_collector::simulate::Progress(std::sync::Arc::new(move |done, total, points| {
                bar.update(done, total, points, "points");
                if done == total {
                    bar.finish();
                }
            }))
        }),
    };
    let runtime = single_thread_runtime()?;
    let started = std::time::Instant::now();
    let report = runtime.block_on(async move {
        let (stop, shutdown) = watch::channel(false);
        tokio::spawn(async move {
            wait_for_signal().await;
            let _ = stop.send(true);
        });
        tally_collector::simulate::run(options, shutdown).await
    })?;
    let seconds = started.elapsed().as_secs_f64();
    eprintln!(
        "tally simulate: {} batches, {} points ({} rejected) in {:.1} s: {:.0} points/s",
        report.batches,
        report.points,
        report.rejected_points,
        seconds,
        report.points as f64 / seconds.max(1e-9)
    );
    Ok(ExitCode::SUCCESS)
}

fn healthcheck(args: HealthcheckArgs) -> anyhow::Result<ExitCode> {
    let urls = if args.urls.is_empty() {
        // The addresses the agent and the collector listen on, from the
        // same environment they read, with a wildcard host probed on
        // loopback.
        let address = |key: &str, default: &str| {
            let listen = std::env::var(key).unwrap_or_else(|_| default.to_owned());
            let port = listen.rsplit(':').next().unwrap_or_default().to_owned();
            format!("127.0.0.1:{port}")
        };
        let agent = address("TALLY_LISTEN", "0.0.0.0:9470");
        let collector = address("TALLY_COLLECTOR_LISTEN", "127.0.0.1:4318");
        vec![
            format!("http://{agent}/healthz"),
            format!("http://{collector}/healthz"),
            format!("https://{collector}/healthz"),
        ]
    } else {
        args.urls
    };
    // A loopback probe of our own process: the certificate names the
    // Service, not 127.0.0.1.
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(3))
        .danger_accept_invalid_certs(true)
        .build()
        .context("cannot build the HTTP client")?;
    let runtime = single_thread_runtime()?;
    let answers = runtime.block_on(async {
        let mut answers = Vec::new();
        for url in &urls {
            match client.get(url).send().await {
                Ok(response) if response.status().is_success() => return Ok(()),
                Ok(response) => answers.push(format!("{url}: {}", response.status())),
                Err(error) => answers.push(format!("{url}: {error}")),
            }
        }
        Err(answers)
    });
    match answers {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(answers) => {
            eprintln!("tally healthcheck: unhealthy: {}", answers.join("; "));
            Ok(ExitCode::FAILURE)
        }
    }
}

/// Exit code of a subcommand, printing its error if any.
fn finish(command: &str, result: anyhow::Result<ExitCode>) -> ExitCode {
    result.unwrap_or_else(|error| {
        eprintln!("tally {command}: {error:#}");
        ExitCode::FAILURE
    })
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// JSON logs to a file, for while a dashboard owns the terminal.
fn init_file_logging(config: &LogConfig, path: &std::path::Path) -> anyhow::Result<()> {
    use tracing_subscriber::EnvFilter;
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("cannot open the log file {}", path.display()))?;
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&config.level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::sync::Mutex::new(file))
        .with_ansi(false)
        .json()
        .flatten_event(true)
        .try_init();
    Ok(())
}

/// JSON logs in containers (stderr not a terminal), pretty on a terminal.
fn init_logging(config: &LogConfig) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&config.level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let json = match config.format {
        LogFormat::Json => true,
        LogFormat::Pretty => false,
        LogFormat::Auto => !std::io::stderr().is_terminal(),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        let _ = builder.json().flatten_event(true).try_init();
    } else {
        let _ = builder.try_init();
    }
}
