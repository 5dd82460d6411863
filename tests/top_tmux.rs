//! `tally top` end to end in a real terminal: tmux (a private server,
//! fixed size) runs the dashboard against a real collector filled by
//! `tally simulate`; the test sends keys and reads the screen with
//! `capture-pane`, then checks the terminal is restored (cooked mode,
//! main screen, cursor shown) after `q` and after a forced panic.

mod common;

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// One tmux server of the test's own.
struct Tmux {
    tmux: std::path::PathBuf,
    socket: String,
}

impl Tmux {
    fn run(&self, args: &[&str]) -> Output {
        Command::new(&self.tmux)
            .args(["-L", &self.socket, "-f", "/dev/null"])
            .args(args)
            .output()
            .expect("run tmux")
    }

    fn start(&self, command: &str) {
        let out = self.run(&[
            "new-session",
            "-d",
            "-s",
            "t",
            "-x",
            "100",
            "-y",
            "30",
            command,
        ]);
        assert!(
            out.status.success(),
            "tmux: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn screen(&self) -> String {
        String::from_utf8_lossy(&self.run(&["capture-pane", "-p", "-t", "t"]).stdout).into_owned()
    }

    fn keys(&self, keys: &[&str]) {
        for key in keys {
            self.run(&["send-keys", "-t", "t", key]);
        }
    }

    fn typed(&self, text: &str) {
        self.run(&["send-keys", "-t", "t", "-l", text]);
    }

    /// Waits for `text` on screen; the screen on failure.
    fn wait_for(&self, text: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let screen = self.screen();
            if screen.contains(text) {
                return screen;
            }
            assert!(
                Instant::now() < deadline,
                "{text:?} never appeared; screen:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn display(&self, format: &str) -> String {
        String::from_utf8_lossy(
            &self
                .run(&["display-message", "-p", "-t", "t", format])
                .stdout,
        )
        .trim()
        .to_owned()
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.run(&["kill-server"]);
    }
}

fn tmux(test: &str) -> Option<Tmux> {
    let tmux = common::peer("tmux", test)?;
    Some(Tmux {
        tmux,
        socket: format!("tally-top-{}-{test}", std::process::id()),
    })
}

/// A collector with six hours of a five-node fleet, analysed.
fn filled_collector(dir: &Path) -> (common::Running, u16) {
    let (collector, port) = common::ready_collector(dir);
    let out = Command::new(env!("CARGO_BIN_EXE_tally"))
        .args([
            "simulate",
            "--collector",
            &format!("http://127.0.0.1:{port}"),
        ])
        .args(["--nodes", "5", "--backfill", "6h"])
        .output()
        .expect("simulate");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (status, _) = common::http_post(port, "/api/v1/analyze", &[], b"");
    assert_eq!(status, 200);
    (collector, port)
}

/// The pane's command: the dashboard, then the terminal's state after it.
fn command(dir: &Path, port: u16, extra: &str) -> String {
    format!(
        "env NO_COLOR=1 {bin} top --collector http://127.0.0.1:{port} --refresh 2 {extra}; \
         echo \"exit=$?\" > {dir}/exit; stty -a > {dir}/stty; sleep 600",
        bin = env!("CARGO_BIN_EXE_tally"),
        dir = dir.display()
    )
}

/// Waits for the dashboard to exit; its exit status and `stty -a`.
fn after_exit(dir: &Path) -> (String, String) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !dir.join("stty").exists() {
        assert!(Instant::now() < deadline, "tally top did not exit");
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(200));
    (
        std::fs::read_to_string(dir.join("exit")).unwrap_or_default(),
        std::fs::read_to_string(dir.join("stty")).unwrap_or_default(),
    )
}

fn assert_restored(tmux: &Tmux, stty: &str) {
    // Raw mode off: canonical input and echo are back.
    let words: Vec<&str> = stty.split_whitespace().collect();
    assert!(words.contains(&"icanon"), "still raw: {stty}");
    assert!(words.contains(&"echo"), "echo off: {stty}");
    assert_eq!(
        tmux.display("#{alternate_on}"),
        "0",
        "alternate screen kept"
    );
    assert_eq!(tmux.display("#{cursor_flag}"), "1", "cursor hidden");
}

#[test]
fn keys_drive_the_dashboard_and_quit_restores_the_terminal() {
    let Some(tmux) = tmux("keys_drive") else {
        return;
    };
    let dir = tempfile::tempdir().expect("dir");
    let (_collector, port) = filled_collector(dir.path());
    tmux.start(&command(dir.path(), port, ""));

    let screen = tmux.wait_for("Top recommendations");
    assert!(screen.contains("SIMULATED DATA"), "{screen}");
    assert!(screen.contains("connected"), "{screen}");

    // Tab: nodes and GPUs, with pods joined to GPUs.
    tmux.keys(&["Tab"]);
    let screen = tmux.wait_for("GPUs [");
    assert!(screen.contains("Nodes ["), "{screen}");

    // Command mode to Workloads, a filter, a sort, a drill-down and back.
    tmux.typed(":workloads");
    tmux.keys(&["Enter"]);
    tmux.wait_for("Workloads (usage over");
    tmux.typed("/qwen");
    tmux.keys(&["Enter"]);
    let screen = tmux.wait_for("] /qwen");
    let rows: Vec<&str> = screen.lines().filter(|l| l.contains("deploy/")).collect();
    assert!(!rows.is_empty(), "{screen}");
    assert!(rows.iter().all(|l| l.contains("qwen")), "{screen}");
    tmux.keys(&["s"]);
    tmux.wait_for("Sort by");
    tmux.keys(&["2"]);
    tmux.wait_for("WORKLOAD↑");
    tmux.keys(&["Enter"]);
    tmux.wait_for("CPU request");
    tmux.keys(&["Escape"]);
    tmux.wait_for("Workloads (usage over");

    // Recommendations: the card's detail with its patch.
    tmux.typed(":recommendations");
    tmux.keys(&["Enter"]);
    tmux.wait_for("Recommendations: $");
    tmux.keys(&["Enter"]);
    tmux.wait_for("Apply (copy)");
    tmux.keys(&["Escape"]);

    // Help, then quit.
    tmux.keys(&["?"]);
    tmux.wait_for("Read-only by design");
    tmux.keys(&["Escape", "q"]);
    let (exit, stty) = after_exit(dir.path());
    assert_eq!(exit.trim(), "exit=0");
    assert_restored(&tmux, &stty);
}

#[test]
fn a_panic_restores_the_terminal_and_shows_the_message() {
    let Some(tmux) = tmux("panic") else {
        return;
    };
    let dir = tempfile::tempdir().expect("dir");
    let (_collector, port) = filled_collector(dir.path());
    tmux.start(&command(dir.path(), port, "--panic-after-frames 3"));
    let (exit, stty) = after_exit(dir.path());
    assert_eq!(exit.trim(), "exit=101", "a panic exits with 101");
    assert_restored(&tmux, &stty);
    let screen = tmux.wait_for("forced panic");
    assert!(screen.contains("--panic-after-frames"), "{screen}");
}

#[test]
fn an_unreachable_collector_gets_a_clear_screen() {
    let Some(tmux) = tmux("unreachable") else {
        return;
    };
    let dir = tempfile::tempdir().expect("dir");
    let port = common::free_port();
    tmux.start(&command(dir.path(), port, ""));
    let screen = tmux.wait_for("Collector unreachable");
    assert!(screen.contains("Retrying in"), "{screen}");
    tmux.keys(&["q"]);
    let (exit, stty) = after_exit(dir.path());
    assert_eq!(exit.trim(), "exit=0");
    assert_restored(&tmux, &stty);
}

#[test]
fn a_backfill_shows_a_progress_bar_on_a_terminal_only() {
    let Some(tmux) = tmux("progress") else {
        return;
    };
    let dir = tempfile::tempdir().expect("dir");
    let (_collector, port) = common::ready_collector(dir.path());
    let url = format!("http://127.0.0.1:{port}");
    tmux.start(&format!(
        "{bin} simulate --collector {url} --nodes 3 --backfill 2h --step 5m; sleep 600",
        bin = env!("CARGO_BIN_EXE_tally")
    ));
    let screen = tmux.wait_for("24/24");
    assert!(screen.contains("backfill ["), "{screen}");
    assert!(screen.contains("100%"), "{screen}");
    // Off a terminal: no bar and no escape codes in the log.
    let out = Command::new(env!("CARGO_BIN_EXE_tally"))
        .args([
            "simulate",
            "--collector",
            &url,
            "--nodes",
            "3",
            "--backfill",
            "1h",
        ])
        .output()
        .expect("simulate");
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("backfill ["), "{stderr}");
    assert!(!stderr.contains('\r'), "{stderr}");
}

#[test]
fn tally_up_opens_the_dashboard_in_a_terminal_and_q_stops_it() {
    let Some(tmux) = tmux("up") else {
        return;
    };
    let dir = tempfile::tempdir().expect("dir");
    let (port, agent_port) = (common::free_port(), common::free_port());
    tmux.start(&format!(
        "env NO_COLOR=1 {bin} up --listen 127.0.0.1:{port} --agent-listen 127.0.0.1:{agent_port} \
         --data-dir {data}; echo \"exit=$?\" > {dir}/exit; stty -a > {dir}/stty; sleep 600",
        bin = env!("CARGO_BIN_EXE_tally"),
        data = dir.path().join("data").display(),
        dir = dir.path().display()
    ));
    // The dashboard shows this machine's collector (its first analysis
    // may still be pending: that is not an outage).
    let screen = tmux.wait_for("connected");
    assert!(
        screen.contains(&format!("http://127.0.0.1:{port}")),
        "{screen}"
    );
    let screen = tmux.wait_for("Analyzer");
    assert!(!screen.to_lowercase().contains("unreachable"), "{screen}");
    // The collector and the agent serve while it is open.
    let ready = |p: u16| {
        common::wait_ready(
            &format!("http://127.0.0.1:{p}/readyz"),
            Duration::from_secs(10),
        )
    };
    assert!(ready(port) && ready(agent_port));
    tmux.keys(&["q"]);
    let (exit, stty) = after_exit(dir.path());
    assert_eq!(exit.trim(), "exit=0");
    assert_restored(&tmux, &stty);
    // Quitting the dashboard stopped Tally, and its logs went to a file.
    assert!(common::http_get(&format!("http://127.0.0.1:{port}/readyz")).is_err());
    let log = std::fs::read_to_string(dir.path().join("data/tally-up.log")).unwrap_or_default();
    assert!(!log.is_empty(), "no log file");
}
