//! Shared by the dashboard's tests: the fixture fleet (the collector's
//! API answers for `tally simulate --nodes 10 --backfill 6h`, seed 1,
//! captured into `tests/fixtures/fleet/`) and a state built from it.

#![allow(dead_code)]

use serde::de::DeserializeOwned;
use tally_tui::api::Snapshot;
use tally_tui::state::State;
use tally_tui::theme::{Palette, Thresholds};

fn fixture<T: DeserializeOwned>(name: &str) -> T {
    let path = format!(
        "{}/tests/fixtures/fleet/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The fixture fleet.
pub fn snapshot() -> Snapshot {
    Snapshot {
        status: fixture("status"),
        agents: fixture("agents"),
        nodes: fixture("nodes"),
        workloads: fixture("workloads"),
        workload_costs: fixture("costs-workload"),
        gpus: fixture("gpus"),
        models: fixture("models"),
        model_costs: fixture("costs-model"),
        egress: fixture("egress"),
        recommendations: fixture("recommendations"),
        logs: fixture("logs"),
    }
}

/// When the fixture's analysis ran, unix seconds.
pub fn analysed_at() -> f64 {
    snapshot()
        .status
        .analyzer
        .and_then(|a| a.last_run_ns)
        .map_or(0.0, |ns| ns as f64 / 1e9)
}

/// The palette of a colour terminal with Unicode.
pub const COLOUR: Palette = Palette {
    color: true,
    unicode: true,
};

/// A state that has the fixture on screen, read `age` seconds ago.
pub fn state_with_data(palette: Palette, age: f64) -> State {
    let mut state = State::new(
        "http://127.0.0.1:4318".to_owned(),
        palette,
        Thresholds::default(),
        2.0,
    );
    let at = analysed_at() + 30.0;
    state.now = at + age;
    tally_tui::update::update(
        &mut state,
        tally_tui::update::Msg::Data(Box::new(snapshot()), at),
    );
    state
}
