//! Properties of the analyzer over random fleets (a seeded generator, 300
//! cases each): a node's allocated and idle lines sum to its price; no
//! card saves a negative amount; memory is never proposed below an
//! observed OOM point; the de-duplicated total never exceeds the plain
//! sum of the cards.

use std::collections::BTreeMap;

use tally_analyzer::allocation::allocate;
use tally_analyzer::config::AnalyzerConfig;
use tally_analyzer::distribution::Distribution;
use tally_analyzer::input::{Container, FleetSnapshot, GpuDevice, GpuUser, Node, WorkloadKey};
use tally_analyzer::pricing::PriceBook;
use tally_analyzer::recommend::analyze;
use tally_analyzer::rightsizing::{Policy, UsageHistory, recommend_memory};

const GIB: f64 = 1024.0 * 1024.0 * 1024.0;
const HOUR_NS: u64 = 3_600_000_000_000;

/// xorshift64*: reproducible cases without a dependency.
struct Rng(u64);

impl Rng {
    fn unit(&mut self) -> f64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    }
    fn below(&mut self, n: usize) -> usize {
        (self.unit() * n as f64) as usize % n.max(1)
    }
}

const TYPES: &[(&str, f64, f64, u32, Option<&str>)] = &[
    ("m6i.2xlarge", 8.0, 32.0, 0, None),
    ("r6i.xlarge", 4.0, 32.0, 0, None),
    ("g5.2xlarge", 8.0, 32.0, 1, Some("NVIDIA A10G")),
    (
        "p5.48xlarge",
        192.0,
        2048.0,
        8,
        Some("NVIDIA H100 80GB HBM3"),
    ),
    ("custom-box", 16.0, 64.0, 2, Some("NVIDIA L4")),
];

fn fleet(rng: &mut Rng) -> FleetSnapshot {
    let hours = 24.0 + rng.unit() * 24.0 * 6.0;
    let mut snapshot = FleetSnapshot {
        from_ns: 0,
        to_ns: (hours * HOUR_NS as f64) as u64,
        ..FleetSnapshot::default()
    };
    for n in 0..(1 + rng.below(5)) {
        let (instance_type, cpus, memory, gpus, model) = TYPES[rng.below(TYPES.len())];
        let node = format!("node-{n}");
        snapshot.nodes.push(Node {
            name: node.clone(),
            instance_type: instance_type.into(),
            zone: "us-east-1a".into(),
            region: "us-east-1".into(),
            capacity_type: if rng.unit() < 0.3 {
                "spot"
            } else {
                "on-demand"
            }
            .into(),
            cpus,
            memory_bytes: memory * GIB,
            gpu_model: model.map(str::to_owned),
            gpu_count: gpus,
            hours: hours * (0.5 + rng.unit() * 0.5),
        });
        for c in 0..rng.below(12) {
            let workload = WorkloadKey {
                namespace: format!("ns-{}", rng.below(3)),
                kind: ["Deployment", "Job", "StatefulSet"][rng.below(3)].into(),
                name: format!("app-{}", rng.below(6)),
            };
            let cpu_request = rng.unit() * cpus / 3.0;
            let memory_request = rng.unit() * memory * GIB / 3.0;
            let cpu_mean = rng.unit() * cpu_request * 2.0;
            let memory_mean = rng.unit() * memory_request * 2.0;
            let samples: Vec<f64> = (0..500).map(|_| cpu_mean * 2.0 * rng.unit()).collect();
            let memory_samples: Vec<f64> =
                (0..500).map(|_| memory_mean * (0.5 + rng.unit())).collect();
            let oom_kills = (rng.unit() < 0.2) as u64 * (1 + rng.below(3) as u64);
            let pod = format!("{}-{n}-{c}", workload.name);
            if gpus > 0 && rng.unit() < 0.5 {
                snapshot.gpu_devices.push(GpuDevice {
                    node: node.clone(),
                    gpu_uuid: format!("GPU-{n}-{c}"),
                    gpu_model: model.unwrap_or_default().into(),
                    mig_profile: (model == Some("NVIDIA H100 80GB HBM3") && rng.unit() < 0.5)
                        .then(|| "3g.40gb".to_owned()),
                    sharing: "exclusive".into(),
                    memory_total: 24.0 * GIB,
                    utilization_mean: rng.unit(),
                    recent_utilization_max: Some(rng.unit() * 0.1),
                    recent_power_mean: Some(rng.unit() * 200.0),
                    hours,
                    users: vec![GpuUser {
                        workload: workload.clone(),
                        pod: pod.clone(),
                        container: "main".into(),
                        utilization_mean: rng.unit(),
                        utilization_p95: rng.unit(),
                        memory_mean: rng.unit() * 20.0 * GIB,
                        memory_p99: rng.unit() * 20.0 * GIB,
                        memory_max: rng.unit() * 22.0 * GIB,
                    }],
                });
            }
            snapshot.containers.push(Container {
                workload,
                pod,
                pod_uid: format!("uid-{n}-{c}"),
                container: "main".into(),
                node: node.clone(),
                cpu_request,
                cpu_limit: None,
                memory_request,
                memory_limit: Some(memory_request * 1.5),
                devices: BTreeMap::new(),
                cpu_mean,
                memory_mean,
                hours: hours * rng.unit(),
                // A random day-night cycle over 48 hours (schedules).
                cpu_hourly: (0..48)
                    .map(|h| {
                        (
                            h * HOUR_NS,
                            if rng.unit() < 0.4 {
                                0.0
                            } else {
                                3600.0 * cpu_mean
                            },
                        )
                    })
                    .collect(),
                // A random weekly cycle over 14 days.
                cpu_daily: (0..14)
                    .map(|d| {
                        let busy = rng.unit() < 0.7;
                        (
                            d * 24 * HOUR_NS,
                            if busy { 86_400.0 * cpu_mean } else { 0.0 },
                        )
                    })
                    .collect(),
                usage: UsageHistory {
                    cpu: Some(Distribution::from_values(samples)),
                    memory: Some(Distribution::from_values(memory_samples)),
                    memory_daily_peaks: (0..7).map(|_| memory_mean * (1.0 + rng.unit())).collect(),
                    oom_kills,
                    oom_limit_bytes: (oom_kills > 0).then_some(memory_request * 1.5),
                    history_hours: hours,
                    ..UsageHistory::default()
                },
            });
        }
    }
    snapshot
}

#[test]
fn a_nodes_lines_sum_to_its_price() {
    let prices = PriceBook::builtin().expect("prices");
    let mut rng = Rng(0x5eed_0001);
    for case in 0..300 {
        let snapshot = fleet(&mut rng);
        let allocation = allocate(&snapshot, &prices);
        for node in &allocation.nodes {
            let allocated: f64 = allocation
                .containers
                .iter()
                .filter(|c| c.node == node.node)
                .map(|c| c.total())
                .sum();
            let lines = allocated + node.idle();
            assert!(
                (lines - node.total).abs() <= 1e-6 * node.total.max(1.0),
                "case {case}: {} lines {lines} vs price {}",
                node.node,
                node.total
            );
            assert!(node.cpu_idle >= 0.0 && node.memory_idle >= 0.0 && node.gpu_idle >= 0.0);
        }
        for c in &allocation.containers {
            assert!(
                c.cpu_cost >= 0.0 && c.memory_cost >= 0.0 && c.gpu_cost >= 0.0,
                "case {case}"
            );
            assert!((0.0..=1.0).contains(&c.efficiency()), "case {case}: {c:?}");
        }
    }
}

#[test]
fn no_card_saves_a_negative_amount_and_totals_do_not_double_count() {
    let prices = PriceBook::builtin().expect("prices");
    let config = AnalyzerConfig::default();
    let mut rng = Rng(0x5eed_0002);
    for case in 0..300 {
        let snapshot = fleet(&mut rng);
        let report = analyze(&snapshot, &config, &prices).expect("report");
        for card in &report.recommendations {
            assert!(card.monthly_savings >= 0.0, "case {case}: {card:?}");
            assert!(
                (0.0..=1.0).contains(&card.confidence),
                "case {case}: {card:?}"
            );
        }
        assert!(report.totals.monthly_savings <= report.totals.monthly_savings_sum + 1e-9);
        assert!(report.totals.realizable_monthly_savings >= 0.0);
    }
}

#[test]
fn memory_is_never_proposed_below_an_observed_oom_point() {
    let mut rng = Rng(0x5eed_0003);
    for case in 0..300 {
        let limit = (0.1 + rng.unit() * 16.0) * GIB;
        let peak = limit * rng.unit();
        let usage = UsageHistory {
            cpu: Some(Distribution::from_values(vec![0.1; 200])),
            memory: Some(Distribution::from_values(
                (0..200).map(|_| peak * rng.unit()).collect::<Vec<_>>(),
            )),
            memory_daily_peaks: (0..rng.below(8)).map(|_| peak * rng.unit()).collect(),
            oom_kills: 1 + rng.below(5) as u64,
            oom_limit_bytes: Some(limit),
            history_hours: 24.0 * 7.0,
            ..UsageHistory::default()
        };
        let proposal = recommend_memory(&usage, &Policy::default()).expect("proposal");
        assert!(
            proposal.bytes > limit,
            "case {case}: {} not above the OOM point {limit}",
            proposal.bytes
        );
    }
}
