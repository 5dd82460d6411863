//! `tally`: one binary, one subcommand per role.

use std::io::IsTerminal as _;
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
    /// Print the metric catalog.
    Catalog {
        /// Render as the Markdown page checked in at docs/metrics.md.
        #[arg(long)]
        markdown: bool,
    },
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
