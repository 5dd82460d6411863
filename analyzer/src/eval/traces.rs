//! Deterministic 14-day traces of 1-minute CPU and working-set samples,
//! eight workload shapes with randomized parameters. Sizes are drawn
//! log-uniformly because real containers spread over orders of magnitude;
//! current requests are oversized 1.5–4× as in real clusters.

use std::f64::consts::TAU;
use std::ops::Range;

use super::rng::Rng;

/// Minutes in a day.
pub const MINUTES_PER_DAY: usize = 1440;
/// Days 1-7: what the strategies see.
pub const TRAIN_MINUTES: usize = 7 * MINUTES_PER_DAY;
/// Days 1-14: days 8-14 are scored.
pub const TOTAL_MINUTES: usize = 14 * MINUTES_PER_DAY;

const MIB: f64 = 1024.0 * 1024.0;
const GIB: f64 = 1024.0 * MIB;

/// The workload shapes of issue #4.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Shape {
    /// Flat CPU and memory with small noise.
    Steady,
    /// Daily cycle, quieter weekends.
    Diurnal,
    /// Low base with short bursts a few times an hour.
    Bursty,
    /// Memory grows linearly and never resets.
    Leaking,
    /// A job a few hours a day, idle otherwise.
    Batch,
    /// Restarts with a memory and CPU spike while starting.
    StartupSpike,
    /// Pods of a workload scaled by a CPU HPA.
    HpaScaled,
    /// Host side of a model server: big staged weights, load-driven CPU.
    GpuInference,
}

impl Shape {
    /// Every shape, in report order.
    pub const ALL: [Shape; 8] = [
        Shape::Steady,
        Shape::Diurnal,
        Shape::Bursty,
        Shape::Leaking,
        Shape::Batch,
        Shape::StartupSpike,
        Shape::HpaScaled,
        Shape::GpuInference,
    ];

    /// Short name for tables.
    pub fn name(self) -> &'static str {
        match self {
            Shape::Steady => "steady",
            Shape::Diurnal => "diurnal",
            Shape::Bursty => "bursty",
            Shape::Leaking => "leaking",
            Shape::Batch => "batch",
            Shape::StartupSpike => "start-up spike",
            Shape::HpaScaled => "HPA-scaled",
            Shape::GpuInference => "GPU inference",
        }
    }
}

/// CPU request (cores; no CPU limit) and memory request = limit (bytes).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Resources {
    /// CPU request, cores.
    pub cpu_cores: f64,
    /// Memory request and limit, bytes.
    pub memory_bytes: f64,
}

/// A CPU HorizontalPodAutoscaler in front of identical pods.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Hpa {
    /// Target CPU utilization of the request (0..1).
    pub target: f64,
    /// Fewest replicas.
    pub min_replicas: u32,
    /// Most replicas.
    pub max_replicas: u32,
    /// Working set a pod adds per core of its CPU usage (buffers, caches
    /// that follow load), bytes.
    pub memory_per_core: f64,
}

impl Hpa {
    /// The replicas the HPA settles on for `total` cores of demand:
    /// clamp(ceil(total / (target × request)), min, max).
    pub fn replicas(&self, total: f64, request: f64) -> u32 {
        if request <= 0.0 {
            return self.max_replicas;
        }
        let wanted = (total / (self.target * request)).ceil().max(0.0);
        (wanted.min(f64::from(self.max_replicas)) as u32)
            .clamp(self.min_replicas, self.max_replicas)
    }
}

/// One container's (or HPA workload's) 14 days.
#[derive(Debug, Clone, PartialEq)]
pub struct Trace {
    /// Its shape.
    pub shape: Shape,
    /// `shape-index`, for reading results.
    pub name: String,
    /// CPU cores per minute: the container's usage, or for an HPA
    /// workload the total demand over all pods.
    pub cpu: Vec<f64>,
    /// Working set per minute; for an HPA workload the per-pod part that
    /// does not follow load.
    pub memory: Vec<f64>,
    /// Minutes at which the container (re)started.
    pub starts: Vec<usize>,
    /// The requests in force today.
    pub current: Resources,
    /// The autoscaler, for the HPA shape.
    pub hpa: Option<Hpa>,
}

/// What one pod shows over a span of minutes under a given CPU request.
#[derive(Debug, Clone, PartialEq)]
pub struct PodSeries {
    /// Pods running each minute (1 without an HPA).
    pub replicas: Vec<u32>,
    /// CPU cores of one pod.
    pub cpu: Vec<f64>,
    /// Working set of one pod, bytes.
    pub memory: Vec<f64>,
}

/// What a right-sizer reads of days 1-7: per-pod samples under today's
/// requests, the starts it saw and the requests themselves.
#[derive(Debug, Clone, PartialEq)]
pub struct History {
    /// CPU cores per minute of one pod.
    pub cpu: Vec<f64>,
    /// Working set per minute of one pod, bytes.
    pub memory: Vec<f64>,
    /// Minutes (within the history) at which the container started.
    pub starts: Vec<usize>,
    /// Today's requests.
    pub current: Resources,
    /// The HPA's target utilization when one scales the workload.
    pub hpa_target: Option<f64>,
}

impl Trace {
    /// The trace of container `index` of `shape` for `seed`; each container
    /// has its own stream, so adding containers leaves the others alone.
    pub fn generate(shape: Shape, seed: u64, index: usize) -> Trace {
        let stream = ((shape as u64) << 32 | index as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let mut rng = Rng::new(seed ^ stream);
        let mut trace = match shape {
            Shape::Steady => steady(&mut rng),
            Shape::Diurnal => diurnal(&mut rng),
            Shape::Bursty => bursty(&mut rng),
            Shape::Leaking => leaking(&mut rng),
            Shape::Batch => batch(&mut rng),
            Shape::StartupSpike => startup_spike(&mut rng),
            Shape::HpaScaled => hpa_scaled(&mut rng),
            Shape::GpuInference => gpu_inference(&mut rng),
        };
        trace.shape = shape;
        trace.name = format!("{}-{index}", shape.name());
        trace
    }

    /// One pod's samples over `minutes` with `cpu_request`: the trace
    /// itself, or for an HPA workload the demand split over the replicas
    /// the HPA would run at that request.
    pub fn pod_series(&self, cpu_request: f64, minutes: Range<usize>) -> PodSeries {
        let minutes = minutes.start.min(self.cpu.len())..minutes.end.min(self.cpu.len());
        let Some(hpa) = self.hpa else {
            return PodSeries {
                replicas: vec![1; minutes.len()],
                cpu: self.cpu[minutes.clone()].to_vec(),
                memory: self.memory[minutes].to_vec(),
            };
        };
        let mut series = PodSeries {
            replicas: Vec::with_capacity(minutes.len()),
            cpu: Vec::with_capacity(minutes.len()),
            memory: Vec::with_capacity(minutes.len()),
        };
        for (total, fixed) in self.cpu[minutes.clone()].iter().zip(&self.memory[minutes]) {
            let replicas = hpa.replicas(*total, cpu_request);
            let per_pod = total / f64::from(replicas);
            series.replicas.push(replicas);
            series.cpu.push(per_pod);
            series.memory.push(fixed + hpa.memory_per_core * per_pod);
        }
        series
    }

    /// Days 1-7 as the strategies see them.
    pub fn history(&self) -> History {
        let series = self.pod_series(self.current.cpu_cores, 0..TRAIN_MINUTES);
        History {
            cpu: series.cpu,
            memory: series.memory,
            starts: self
                .starts
                .iter()
                .copied()
                .filter(|s| *s < TRAIN_MINUTES)
                .collect(),
            current: self.current,
            hpa_target: self.hpa.map(|h| h.target),
        }
    }
}

/// Mean-reverting noise (AR(1)): a working set drifts smoothly from minute
/// to minute instead of jumping like CPU.
struct Drift {
    sigma: f64,
    x: f64,
}

impl Drift {
    /// Per-minute correlation: about an hour to forget.
    const PHI: f64 = 0.98;

    fn new(sigma: f64) -> Drift {
        Drift { sigma, x: 0.0 }
    }

    /// The next relative deviation (stationary standard deviation `sigma`).
    fn next(&mut self, rng: &mut Rng) -> f64 {
        self.x =
            Self::PHI * self.x + (1.0 - Self::PHI * Self::PHI).sqrt() * self.sigma * rng.normal();
        self.x.max(-0.5)
    }
}

/// `level` with log-normal noise of about `sigma`, mean `level`.
fn jitter(rng: &mut Rng, level: f64, sigma: f64) -> f64 {
    level * (sigma * rng.normal() - sigma * sigma / 2.0).exp()
}

/// 1 + amplitude × a daily cosine peaking at `peak_minute` of the day.
fn daily(minute: usize, amplitude: f64, peak_minute: f64) -> f64 {
    let of_day = (minute % MINUTES_PER_DAY) as f64;
    1.0 + amplitude * (TAU * (of_day - peak_minute) / MINUTES_PER_DAY as f64).cos()
}

/// `factor` on days 6-7 and 13-14, 1 otherwise.
fn weekend(minute: usize, factor: f64) -> f64 {
    if (minute / MINUTES_PER_DAY) % 7 >= 5 {
        factor
    } else {
        1.0
    }
}

/// Today's requests: `typical` usage times 1.5–4, drawn per resource.
fn oversized(rng: &mut Rng, typical_cpu: f64, typical_memory: f64) -> Resources {
    Resources {
        cpu_cores: typical_cpu * rng.range(1.5, 4.0),
        memory_bytes: typical_memory * rng.range(1.5, 4.0),
    }
}

/// Minute 0 plus `per_week` more starts at random minutes each week.
fn starts(rng: &mut Rng, per_week: impl Fn(&mut Rng) -> u64) -> Vec<usize> {
    let mut starts = vec![0];
    for week in 0..TOTAL_MINUTES / TRAIN_MINUTES {
        for _ in 0..per_week(rng) {
            starts.push(week * TRAIN_MINUTES + rng.below(TRAIN_MINUTES as u64) as usize);
        }
    }
    starts.sort_unstable();
    starts.dedup();
    starts
}

fn empty(cpu: Vec<f64>, memory: Vec<f64>, current: Resources) -> Trace {
    Trace {
        shape: Shape::Steady,
        name: String::new(),
        cpu,
        memory,
        starts: Vec::new(),
        current,
        hpa: None,
    }
}

fn steady(rng: &mut Rng) -> Trace {
    let cpu_level = rng.log_range(0.05, 2.0);
    let cpu_sigma = rng.range(0.05, 0.12);
    let memory_level = rng.log_range(128.0 * MIB, 4.0 * GIB);
    let mut drift = Drift::new(rng.range(0.005, 0.02));
    let (mut cpu, mut memory) = (
        Vec::with_capacity(TOTAL_MINUTES),
        Vec::with_capacity(TOTAL_MINUTES),
    );
    for _ in 0..TOTAL_MINUTES {
        cpu.push(jitter(rng, cpu_level, cpu_sigma));
        memory.push(memory_level * (1.0 + drift.next(rng)));
    }
    let current = oversized(rng, cpu_level, memory_level);
    empty(cpu, memory, current)
}

fn diurnal(rng: &mut Rng) -> Trace {
    let cpu_mean = rng.log_range(0.1, 3.0);
    let amplitude = rng.range(0.3, 0.7);
    let peak = rng.range(600.0, 960.0);
    let quiet = rng.range(0.4, 0.8);
    let cpu_sigma = rng.range(0.08, 0.15);
    let memory_base = rng.log_range(256.0 * MIB, 4.0 * GIB);
    // Caches and connection buffers follow load in part.
    let memory_load = rng.range(0.1, 0.3);
    let mut drift = Drift::new(rng.range(0.005, 0.02));
    let (mut cpu, mut memory) = (
        Vec::with_capacity(TOTAL_MINUTES),
        Vec::with_capacity(TOTAL_MINUTES),
    );
    for t in 0..TOTAL_MINUTES {
        let load = daily(t, amplitude, peak) * weekend(t, quiet);
        cpu.push(jitter(rng, cpu_mean * load, cpu_sigma));
        memory.push(memory_base * (1.0 + memory_load * (load - 1.0)) * (1.0 + drift.next(rng)));
    }
    let current = oversized(rng, cpu_mean, memory_base);
    empty(cpu, memory, current)
}

fn bursty(rng: &mut Rng) -> Trace {
    let base = rng.log_range(0.02, 0.3);
    let cpu_sigma = rng.range(0.1, 0.2);
    let per_hour = rng.range(2.0, 6.0);
    let memory_base = rng.log_range(64.0 * MIB, GIB);
    // Request buffers held during a burst.
    let memory_bump = rng.range(0.05, 0.2);
    let mut drift = Drift::new(rng.range(0.005, 0.02));
    let (mut left, mut height) = (0u64, 1.0);
    let (mut cpu, mut memory) = (
        Vec::with_capacity(TOTAL_MINUTES),
        Vec::with_capacity(TOTAL_MINUTES),
    );
    for _ in 0..TOTAL_MINUTES {
        if left == 0 && rng.uniform() < per_hour / 60.0 {
            left = 1 + rng.below(5);
            height = rng.range(3.0, 8.0);
        }
        let bursting = left > 0;
        left = left.saturating_sub(1);
        let level = if bursting { base * height } else { base };
        cpu.push(jitter(rng, level, cpu_sigma));
        let bump = if bursting { memory_bump } else { 0.0 };
        memory.push(memory_base * (1.0 + bump + drift.next(rng)));
    }
    let current = oversized(rng, base, memory_base);
    empty(cpu, memory, current)
}

fn leaking(rng: &mut Rng) -> Trace {
    let cpu_level = rng.log_range(0.05, 1.0);
    let amplitude = rng.range(0.1, 0.3);
    let peak = rng.range(600.0, 960.0);
    let memory_base = rng.log_range(256.0 * MIB, 2.0 * GIB);
    let leak_per_day = rng.range(0.01, 0.05);
    // Days since the last deploy at minute 0.
    let age = rng.range(0.0, 3.0);
    let mut drift = Drift::new(rng.range(0.005, 0.015));
    let (mut cpu, mut memory) = (
        Vec::with_capacity(TOTAL_MINUTES),
        Vec::with_capacity(TOTAL_MINUTES),
    );
    for t in 0..TOTAL_MINUTES {
        cpu.push(jitter(rng, cpu_level * daily(t, amplitude, peak), 0.08));
        let days = age + t as f64 / MINUTES_PER_DAY as f64;
        memory.push(memory_base * (1.0 + leak_per_day * days) * (1.0 + drift.next(rng)));
    }
    let current = oversized(rng, cpu_level, memory_base);
    empty(cpu, memory, current)
}

fn batch(rng: &mut Rng) -> Trace {
    // A long-running worker that runs one job a day (no pod per run).
    let start = rng.below(MINUTES_PER_DAY as u64) as f64;
    let hours = rng.range(1.0, 4.0);
    let job_cpu = rng.log_range(0.5, 4.0);
    let idle_cpu = rng.range(0.005, 0.03);
    let job_memory = rng.log_range(GIB, 8.0 * GIB);
    let idle_memory = rng.log_range(64.0 * MIB, 256.0 * MIB);
    let mut drift = Drift::new(rng.range(0.005, 0.02));
    // Per minute: the day's job peak and the job's progress, when running.
    let mut job: Vec<Option<(f64, f64)>> = vec![None; TOTAL_MINUTES];
    for day in 0..TOTAL_MINUTES / MINUTES_PER_DAY {
        let begin = day as f64 * MINUTES_PER_DAY as f64 + start + rng.range(-15.0, 15.0);
        let length = hours * 60.0 * rng.range(0.8, 1.2);
        // The day's input volume sets its memory.
        let peak = job_memory * rng.range(0.85, 1.15);
        let first = begin.max(0.0) as usize;
        let last = ((begin + length).max(0.0) as usize).min(TOTAL_MINUTES);
        for (minute, slot) in job.iter_mut().enumerate().take(last).skip(first) {
            *slot = Some((peak, (minute as f64 - begin) / length));
        }
    }
    let (mut cpu, mut memory) = (
        Vec::with_capacity(TOTAL_MINUTES),
        Vec::with_capacity(TOTAL_MINUTES),
    );
    for slot in &job {
        let noise = 1.0 + drift.next(rng);
        match slot {
            Some((peak, progress)) => {
                cpu.push(jitter(rng, job_cpu, 0.1));
                // Loads its input over the first fifth, then holds it.
                let loaded = (progress / 0.2).clamp(0.0, 1.0);
                memory.push((idle_memory + (peak - idle_memory) * loaded) * noise);
            }
            None => {
                cpu.push(jitter(rng, idle_cpu, 0.2));
                memory.push(idle_memory * noise);
            }
        }
    }
    // Sized for the job, the part anyone looks at.
    let current = oversized(rng, job_cpu, job_memory);
    empty(cpu, memory, current)
}

/// Start-up profile of one start: memory peak (× steady), minutes it
/// lasts, CPU (× steady) while it lasts.
struct Startup {
    memory: f64,
    minutes: f64,
    cpu: f64,
}

/// Memory and CPU multipliers `since` minutes after a start: the spike,
/// then the excess released over a few minutes (GC, cache trimming).
fn startup_factor(profile: &Startup, since: f64, release_minutes: f64) -> (f64, f64) {
    if since < profile.minutes {
        (profile.memory, profile.cpu)
    } else {
        let excess = (profile.memory - 1.0) * (-(since - profile.minutes) / release_minutes).exp();
        (1.0 + excess, 1.0)
    }
}

fn startup_spike(rng: &mut Rng) -> Trace {
    let starts = starts(rng, |rng| 1 + rng.below(2));
    let cpu_level = rng.log_range(0.05, 1.0);
    let memory_level = rng.log_range(256.0 * MIB, 4.0 * GIB);
    let spike = rng.range(2.0, 3.0);
    let spike_minutes = rng.range(5.0, 20.0);
    let startup_cpu = rng.range(2.0, 4.0);
    let profiles: Vec<Startup> = starts
        .iter()
        .map(|_| Startup {
            memory: spike * rng.range(0.93, 1.07),
            minutes: spike_minutes * rng.range(0.8, 1.2),
            cpu: startup_cpu,
        })
        .collect();
    let mut drift = Drift::new(rng.range(0.005, 0.02));
    let (mut cpu, mut memory) = (
        Vec::with_capacity(TOTAL_MINUTES),
        Vec::with_capacity(TOTAL_MINUTES),
    );
    let mut current_start = 0;
    for t in 0..TOTAL_MINUTES {
        while current_start + 1 < starts.len() && starts[current_start + 1] <= t {
            current_start += 1;
        }
        let since = (t - starts[current_start]) as f64;
        let (memory_factor, cpu_factor) = startup_factor(&profiles[current_start], since, 4.0);
        cpu.push(jitter(rng, cpu_level * cpu_factor, 0.08));
        memory.push(memory_level * memory_factor * (1.0 + drift.next(rng)));
    }
    let mut current = oversized(rng, cpu_level, memory_level);
    // Nobody runs a limit below the start-up peak for long: it crash-loops.
    current.memory_bytes = current.memory_bytes.max(1.2 * spike * 1.07 * memory_level);
    Trace {
        starts,
        ..empty(cpu, memory, current)
    }
}

fn hpa_scaled(rng: &mut Rng) -> Trace {
    let target = rng.range(0.6, 0.8);
    let min_replicas = 2 + rng.below(2) as u32;
    let max_replicas = 8 + rng.below(17) as u32;
    let request = rng.log_range(0.25, 2.0);
    // Today's peak needs 50–85 % of the maximum replicas.
    let peak_total = f64::from(max_replicas) * target * request * rng.range(0.5, 0.85);
    let amplitude = rng.range(0.4, 0.7);
    let peak_minute = rng.range(600.0, 960.0);
    let quiet = rng.range(0.5, 0.8);
    let mean_total = peak_total / (1.0 + amplitude);
    let memory_base = rng.log_range(256.0 * MIB, 2.0 * GIB);
    let memory_per_core = rng.log_range(128.0 * MIB, GIB);
    let mut drift = Drift::new(rng.range(0.005, 0.02));
    let (mut cpu, mut memory) = (
        Vec::with_capacity(TOTAL_MINUTES),
        Vec::with_capacity(TOTAL_MINUTES),
    );
    for t in 0..TOTAL_MINUTES {
        // Summed over many pods, the total is smoother than one pod.
        let load = daily(t, amplitude, peak_minute) * weekend(t, quiet);
        cpu.push(jitter(rng, mean_total * load, 0.05));
        memory.push(memory_base * (1.0 + drift.next(rng)));
    }
    let typical_memory = memory_base + memory_per_core * target * request;
    let current = Resources {
        cpu_cores: request,
        memory_bytes: typical_memory * rng.range(1.5, 4.0),
    };
    Trace {
        hpa: Some(Hpa {
            target,
            min_replicas,
            max_replicas,
            memory_per_core,
        }),
        ..empty(cpu, memory, current)
    }
}

fn gpu_inference(rng: &mut Rng) -> Trace {
    // A new model version now and then.
    let starts = starts(rng, |rng| {
        u64::from(rng.uniform() < 0.7) + u64::from(rng.uniform() < 0.2)
    });
    let cpu_mean = rng.log_range(0.5, 4.0);
    let amplitude = rng.range(0.3, 0.7);
    let peak = rng.range(600.0, 960.0);
    let quiet = rng.range(0.6, 0.9);
    // Weights staged in host RAM plus the runtime.
    let memory_level = rng.log_range(8.0 * GIB, 48.0 * GIB);
    let memory_load = rng.range(0.01, 0.04);
    // Deserializing weights needs a second, pinned staging copy.
    let spike = rng.range(1.3, 2.0);
    let spike_minutes = rng.range(5.0, 15.0);
    let startup_cpu = rng.range(1.5, 3.0);
    let profiles: Vec<Startup> = starts
        .iter()
        .map(|_| Startup {
            memory: spike * rng.range(0.95, 1.05),
            minutes: spike_minutes * rng.range(0.8, 1.2),
            cpu: startup_cpu,
        })
        .collect();
    let mut drift = Drift::new(rng.range(0.003, 0.01));
    let (mut cpu, mut memory) = (
        Vec::with_capacity(TOTAL_MINUTES),
        Vec::with_capacity(TOTAL_MINUTES),
    );
    let mut current_start = 0;
    for t in 0..TOTAL_MINUTES {
        while current_start + 1 < starts.len() && starts[current_start + 1] <= t {
            current_start += 1;
        }
        let since = (t - starts[current_start]) as f64;
        let (memory_factor, cpu_factor) = startup_factor(&profiles[current_start], since, 3.0);
        let load = daily(t, amplitude, peak) * weekend(t, quiet);
        let steady_cpu = cpu_mean * load;
        let cpu_level = if cpu_factor > 1.0 {
            steady_cpu.max(cpu_mean * cpu_factor)
        } else {
            steady_cpu
        };
        cpu.push(jitter(rng, cpu_level, 0.1));
        let steady_memory = memory_level * (1.0 + memory_load * (load - 1.0));
        memory.push(steady_memory * memory_factor * (1.0 + drift.next(rng)));
    }
    let mut current = oversized(rng, cpu_mean, memory_level);
    current.memory_bytes = current.memory_bytes.max(1.2 * spike * 1.05 * memory_level);
    Trace {
        starts,
        ..empty(cpu, memory, current)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_generator_is_deterministic_for_a_seed() {
        for shape in Shape::ALL {
            let a = Trace::generate(shape, 42, 3);
            assert_eq!(a, Trace::generate(shape, 42, 3), "{}", shape.name());
            assert_ne!(a.cpu, Trace::generate(shape, 43, 3).cpu, "{}", shape.name());
            assert_ne!(a.cpu, Trace::generate(shape, 42, 4).cpu, "{}", shape.name());
            assert_eq!(a.cpu.len(), TOTAL_MINUTES);
            assert_eq!(a.memory.len(), TOTAL_MINUTES);
            assert!(
                a.cpu
                    .iter()
                    .chain(&a.memory)
                    .all(|v| v.is_finite() && *v >= 0.0)
            );
        }
    }

    #[test]
    fn hpa_replicas_follow_the_request() {
        let hpa = Hpa {
            target: 0.8,
            min_replicas: 2,
            max_replicas: 10,
            memory_per_core: 0.0,
        };
        // 4 cores at 0.8 × 1 core per pod: 5 pods; half the request: 10.
        assert_eq!(hpa.replicas(4.0, 1.0), 5);
        assert_eq!(hpa.replicas(4.0, 0.5), 10);
        assert_eq!(hpa.replicas(4.0, 0.25), 10);
        assert_eq!(hpa.replicas(0.1, 1.0), 2);
    }

    #[test]
    fn start_up_traces_spike_after_each_start() {
        let trace = Trace::generate(Shape::StartupSpike, 1, 0);
        assert_eq!(trace.starts[0], 0);
        assert!(trace.starts.len() >= 3, "{:?}", trace.starts);
        let steady = trace.memory[trace.starts[1] - 1];
        assert!(trace.memory[trace.starts[1] + 1] > 1.8 * steady);
    }
}
