//! Scenarios: what the simulated fleet is made to show. `demo` is the
//! fleet as drawn, with every case the analyzer must find planted in it
//! (idle GPUs, oversized requests, memory that grows into OOM kills,
//! services in overload), plus a crash-looping pod so that OOM kills show
//! within minutes, not hours. `healthy` takes those problems out, so that a
//! monitoring stack watching it must stay quiet; each other scenario is
//! the healthy fleet with one problem planted, so that the matching alert
//! must fire and no other.
//!
//! A scenario reshapes the fleet after it is drawn and draws nothing from
//! the fleet's stream, so every other series stays as the seed made it.

use std::fmt;
use std::str::FromStr;

use super::Rng;
use super::fleet::{Container, Fleet, GIB, PodNamer};
use super::gpu::Work;
use super::serving;

/// What the fleet shows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Scenario {
    /// The fleet as drawn, every analyzer case planted, plus the leaking
    /// pod of `oom-loop`.
    #[default]
    Demo,
    /// Nothing to alert on: GPUs busy (no idle or half-used one, no small
    /// model alone on a whole GPU), memory flat, no CPU limits to throttle
    /// against, model servers out of overload.
    Healthy,
    /// Healthy, but one allocated GPU runs nothing: the notebook alone on
    /// a whole GPU of the planted p5 (node 1; needs two nodes or more).
    IdleGpu,
    /// Healthy, plus a pod that leaks memory into its limit and is
    /// OOM-killed every few steps.
    OomLoop,
    /// Healthy, but one model service's time to first token is 20 times
    /// its usual.
    TtftRegression,
}

/// Every scenario, by its command-line name.
pub const SCENARIOS: [(&str, Scenario); 5] = [
    ("demo", Scenario::Demo),
    ("healthy", Scenario::Healthy),
    ("idle-gpu", Scenario::IdleGpu),
    ("oom-loop", Scenario::OomLoop),
    ("ttft-regression", Scenario::TtftRegression),
];

impl FromStr for Scenario {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        SCENARIOS
            .iter()
            .find(|(name, _)| *name == text)
            .map(|(_, scenario)| *scenario)
            .ok_or_else(|| {
                let names: Vec<&str> = SCENARIOS.iter().map(|(name, _)| *name).collect();
                format!(
                    "unknown scenario {text:?}; expected one of {}",
                    names.join(", ")
                )
            })
    }
}

impl fmt::Display for Scenario {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = SCENARIOS
            .iter()
            .find(|(_, scenario)| scenario == self)
            .map_or("demo", |(name, _)| *name);
        f.write_str(name)
    }
}

/// Busy share of capacity a healthy model server stays under: below the
/// point where the simulated server starts to queue.
const HEALTHY_LOAD_CAP: f64 = 0.7;

/// The node whose idle notebook `idle-gpu` keeps: the planted p5.
const IDLE_GPU_NODE: usize = 1;

/// How much slower the regressed service's first token is.
const TTFT_REGRESSION_FACTOR: f64 = 20.0;

/// Seed mix of the leaking pod's own stream.
const LEAK_SEED: u64 = 0x1ea4_0000_0000_0004;

/// Steps from a restart to the next OOM kill of the leaking pod.
const LEAK_STEPS_TO_OOM: f64 = 3.0;

/// Reshapes a freshly drawn `fleet` into `scenario`.
pub fn apply(fleet: &mut Fleet, scenario: Scenario, seed: u64) {
    let nodes = fleet.nodes_mut();
    if scenario == Scenario::Demo {
        plant_leak(seed, nodes);
        return;
    }
    for (n, node) in nodes.iter_mut().enumerate() {
        for container in &mut node.containers {
            container.memory_growth = 0.0;
            container.cpu_limit = None;
            if let Some(work) = &mut container.gpu_work {
                // The p5's idle notebook is the only user of its GPU (the
                // g5's shares its GPU with a busy server).
                let keep_idle =
                    scenario == Scenario::IdleGpu && n == IDLE_GPU_NODE && *work == Work::Idle;
                if !keep_idle && matches!(work, Work::Idle | Work::Partial) {
                    *work = Work::Busy;
                }
            }
            if let Some(server) = &mut container.server {
                server.load_cap = HEALTHY_LOAD_CAP;
            }
            // The small model alone on a whole H100 is the analyzer's MIG
            // case: a healthy fleet runs a training job there instead.
            let alone = container
                .server
                .as_ref()
                .is_some_and(|server| server.model().workload == serving::QWEN_1_5B.workload);
            if alone {
                container.server = None;
                container.gpu_work = Some(Work::Busy);
            }
        }
    }
    match scenario {
        Scenario::OomLoop => plant_leak(seed, nodes),
        Scenario::TtftRegression => {
            let server = nodes
                .iter_mut()
                .flat_map(|node| &mut node.containers)
                .find_map(|container| container.server.as_mut());
            if let Some(server) = server {
                server.ttft_factor = TTFT_REGRESSION_FACTOR;
            }
        }
        _ => {}
    }
}

/// `batch/etl-leaky` on the first node: its working set climbs from half
/// its 1 GiB limit to the limit in [`LEAK_STEPS_TO_OOM`] steps, and the
/// OOM killer restarts it, again and again.
fn plant_leak(seed: u64, nodes: &mut [super::fleet::Node]) {
    let Some(node) = nodes.first_mut() else {
        return;
    };
    let mut rng = Rng::new(seed ^ LEAK_SEED);
    let identity = PodNamer::new(0, 20_480).pod(&mut rng, "batch", "Deployment", "etl-leaky");
    let mut container = Container::new(&mut rng, identity, 0.5, GIB);
    container.cpu_limit = None;
    container.memory_growth = 0.0;
    container.memory_limit = GIB;
    container.memory_base = 0.5 * GIB;
    container.leak_per_step = (container.memory_limit - container.memory_base) / LEAK_STEPS_TO_OOM;
    container.own_rng = Some(Rng::new(seed ^ LEAK_SEED ^ 1));
    node.containers.push(container);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::simulate::agent_page;
    use std::time::Duration;

    /// Every series of `name` on the page, with its value.
    fn values<'a>(page: &'a str, name: &str) -> Vec<(&'a str, f64)> {
        page.lines()
            .filter(|line| line.starts_with(&format!("{name}{{")))
            .map(|line| {
                let (series, value) = line.rsplit_once(' ').expect("value");
                (series, value.parse().expect("number"))
            })
            .collect()
    }

    fn run(scenario: Scenario, steps: u64) -> String {
        let step = Duration::from_secs(15);
        let mut fleet = Fleet::new(3, 5, 0);
        apply(&mut fleet, scenario, 5);
        let mut page = String::new();
        for i in 1..=steps {
            page = agent_page::render(&fleet.step(i * 15_000_000_000, step));
        }
        page
    }

    #[test]
    fn names_round_trip_and_unknown_ones_are_refused() {
        for (name, scenario) in SCENARIOS {
            assert_eq!(name.parse::<Scenario>(), Ok(scenario));
            assert_eq!(scenario.to_string(), name);
        }
        let error = "idle".parse::<Scenario>().expect_err("unknown");
        assert!(error.contains("idle-gpu"), "{error}");
    }

    #[test]
    fn the_healthy_fleet_has_no_idle_gpu_oom_or_throttling() {
        let page = run(Scenario::Healthy, 20);
        let allocated: Vec<String> = values(&page, "tally_container_gpu_utilization_ratio")
            .iter()
            .map(|(series, _)| series.split("gpu_uuid=").nth(1).expect("gpu").to_owned())
            .collect();
        assert!(!allocated.is_empty());
        for (series, value) in values(&page, "tally_container_gpu_utilization_ratio") {
            assert!(value > 0.05, "idle holder {series} {value}");
        }
        for (series, value) in values(&page, "tally_container_memory_oom_kills_total") {
            assert_eq!(value, 0.0, "{series}");
        }
        assert!(values(&page, "tally_container_cpu_cfs_throttled_periods_total").is_empty());
        for (series, value) in values(&page, "tally_model_requests_waiting") {
            assert_eq!(value, 0.0, "{series}");
        }
    }

    #[test]
    fn each_planted_problem_shows_only_in_its_scenario() {
        let idle = |page: &str| {
            values(page, "tally_container_gpu_utilization_ratio")
                .iter()
                .filter(|(_, value)| *value < 0.05)
                .count()
        };
        assert_eq!(idle(&run(Scenario::IdleGpu, 20)), 1);
        assert_eq!(idle(&run(Scenario::OomLoop, 20)), 0);

        let leaky = run(Scenario::OomLoop, 20);
        let kills: Vec<(&str, f64)> = values(&leaky, "tally_container_memory_oom_kills_total")
            .into_iter()
            .filter(|(_, value)| *value > 0.0)
            .collect();
        assert_eq!(kills.len(), 1, "{kills:?}");
        assert!(kills[0].0.contains("workload_name=\"etl-leaky\""));
        // A restart every three steps or so: several in 20 steps.
        assert!(kills[0].1 >= 5.0, "{kills:?}");
        let healthy_kills = values(
            &run(Scenario::IdleGpu, 20),
            "tally_container_memory_oom_kills_total",
        )
        .iter()
        .filter(|(_, value)| *value > 0.0)
        .count();
        assert_eq!(healthy_kills, 0);
    }

    #[test]
    fn the_demo_fleet_is_the_fleet_as_drawn_plus_the_leaking_pod() {
        let step = Duration::from_secs(15);
        let mut drawn = Fleet::new(3, 5, 0);
        let mut demo = Fleet::new(3, 5, 0);
        apply(&mut demo, Scenario::Demo, 5);
        for i in 1..=5 {
            let t = i * 15_000_000_000;
            let (drawn, mut demo) = (drawn.step(t, step), demo.step(t, step));
            // The leaking pod is the only addition: take it out and the
            // rest is identical.
            let leaky = demo
                .resource_metrics
                .iter()
                .position(|r| format!("{:?}", r.resource).contains("etl-leaky"))
                .expect("leaking pod");
            demo.resource_metrics.remove(leaky);
            assert_eq!(drawn, demo);
        }
    }
}
