//! Real cgroups on this machine: the tests create cgroups named like a
//! Kubernetes container (cgroupfs driver), move processes that burn a known
//! amount of CPU and hold a known amount of memory into them, and check the
//! agent's readings against the kernel's own per-process accounting.
//!
//! They need root (creating cgroups and moving processes). Without root
//! each prints a `SKIP` line saying so. CI runs them as root.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tally_agent::sources::cgroups::CgroupSource;
use tally_agent::sources::cgroups::discovery::Runtime;
use tally_agent::sources::cgroups::layout::Layout;
use tally_agent::telemetry::SourceHealth;

const ROOT: &str = "/sys/fs/cgroup";
const POD_UID: &str = "5e1f6a2b-3c4d-4e5f-8a9b-0c1d2e3f4a5b";

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

fn skip_unless_root(test: &str) -> bool {
    if is_root() {
        return false;
    }
    eprintln!("SKIP {test}: creating cgroups needs root; run as root (CI does)");
    true
}

/// This process's cgroup path in the v1 hierarchy of `controller`, or in
/// the v2 tree for `""`.
fn own_cgroup(controller: &str) -> String {
    let content = std::fs::read_to_string("/proc/self/cgroup").expect("read /proc/self/cgroup");
    for line in content.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = (parts.next(), parts.next(), parts.next());
        let (Some(controllers), Some(path)) = (controllers, path) else {
            continue;
        };
        let matches = if controller.is_empty() {
            controllers.is_empty()
        } else {
            controllers.split(',').any(|c| c == controller)
        };
        if matches {
            return path.trim_start_matches('/').to_owned();
        }
    }
    String::new()
}

fn container_id(tag: u32) -> String {
    format!(
        "{:064x}",
        0xfeed_0000_u64 + u64::from(tag) + u64::from(std::process::id()) * 1000
    )
}

/// Cgroup directories created for one test, removed on drop.
struct TestCgroup {
    /// Directories, deepest first for removal, per hierarchy.
    created: Vec<PathBuf>,
    /// The container directory in each hierarchy.
    leaves: Vec<PathBuf>,
    relative: String,
    children: Vec<Child>,
}

impl TestCgroup {
    /// Creates `<base>/tally-it-<pid>-<tag>/kubepods/burstable/pod<uid>/<id>`
    /// in each hierarchy root given, where `<base>` is this process's own
    /// cgroup (the same relative path in every hierarchy).
    fn create(roots: &[PathBuf], base: &str, tag: u32) -> TestCgroup {
        let top = format!("tally-it-{}-{tag}", std::process::id());
        let relative = [
            base,
            &top,
            "kubepods/burstable",
            &format!("pod{POD_UID}"),
            &container_id(tag),
        ]
        .iter()
        .filter(|s| !s.is_empty())
        .copied()
        .collect::<Vec<_>>()
        .join("/");
        let mut created = Vec::new();
        let mut leaves = Vec::new();
        for root in roots {
            let leaf = root.join(&relative);
            std::fs::create_dir_all(&leaf)
                .unwrap_or_else(|e| panic!("mkdir {}: {e}", leaf.display()));
            let stop = root.join(base).join(&top);
            let mut dir = leaf.clone();
            while dir != stop {
                created.push(dir.clone());
                dir.pop();
            }
            created.push(stop);
            leaves.push(leaf);
        }
        TestCgroup {
            created,
            leaves,
            relative,
            children: Vec::new(),
        }
    }

    fn write(&self, file: &str, value: &str) {
        for leaf in &self.leaves {
            let path = leaf.join(file);
            if path.exists() {
                std::fs::write(&path, value)
                    .unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
            }
        }
    }

    /// Starts `python3 -c program` inside the cgroup; the program starts
    /// only after the process has been moved in, so all its CPU is charged
    /// here.
    fn run_python(&mut self, program: &str) -> u32 {
        // `exec` the real interpreter, not a version-manager shim whose
        // helper processes would also be charged to the cgroup.
        let mut child = Command::new("sh")
            .arg("-c")
            .arg("read go; exec \"$0\" -c \"$1\"")
            .arg(python())
            .arg(program)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("spawn sh");
        let pid = child.id();
        for leaf in &self.leaves {
            std::fs::write(leaf.join("cgroup.procs"), pid.to_string())
                .unwrap_or_else(|e| panic!("move {pid} into {}: {e}", leaf.display()));
        }
        if let Some(stdin) = child.stdin.as_mut() {
            stdin.write_all(b"go\n").expect("release child");
        }
        self.children.push(child);
        pid
    }
}

impl Drop for TestCgroup {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        for dir in &self.created {
            // A cgroup can be removed only once empty; retry briefly while
            // killed processes are reaped.
            for _ in 0..50 {
                if std::fs::remove_dir(dir).is_ok() || !dir.exists() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

/// The real python3 binary (`sys.executable`).
fn python() -> String {
    let output = Command::new("python3")
        .args(["-c", "import sys; print(sys.executable)"])
        .output()
        .expect("python3 is needed by the live cgroup tests");
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// CPU time of a process in seconds from `/proc/<pid>/schedstat`: the
/// scheduler's own nanosecond `sum_exec_runtime` (utime/stime in
/// `/proc/<pid>/stat` are tick-sampled and lag by tens of ms).
fn process_cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/schedstat")).expect("read schedstat");
    let nanos: u64 = stat
        .split_whitespace()
        .next()
        .and_then(|v| v.parse().ok())
        .expect("runtime");
    nanos as f64 / 1e9
}

/// Waits until the process has burned `at_least` seconds and is asleep
/// (state `S`: the program sleeps once done), so a process that is merely
/// starved of CPU on a busy machine is not mistaken for a finished one.
fn wait_for_burn(pid: u32, at_least: f64) -> bool {
    wait_until(Duration::from_secs(30), || {
        let sleeping = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|stat| {
                stat.rsplit(')')
                    .next()
                    .map(|rest| rest.trim_start().starts_with('S'))
                    .unwrap_or(false)
            })
            .unwrap_or(false);
        sleeping && process_cpu_seconds(pid) >= at_least
    })
}

fn wait_until(limit: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if check() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

const BURN_THEN_HOLD: &str = "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.4: pass\nb = b'x' * (64 << 20)\ntime.sleep(120)\n";

fn v1_roots() -> Option<Vec<PathBuf>> {
    match Layout::detect(Path::new(ROOT)).ok()? {
        Layout::V1 {
            cpu,
            cpuacct,
            memory,
            blkio,
            ..
        } => {
            let mut roots: Vec<PathBuf> = [cpu, cpuacct, memory, blkio]
                .into_iter()
                .flatten()
                .collect();
            roots.dedup();
            Some(roots)
        }
        Layout::V2 { .. } => None,
    }
}

#[test]
fn v1_cpu_and_memory_agree_with_the_kernel() {
    if skip_unless_root("v1_cpu_and_memory_agree_with_the_kernel") {
        return;
    }
    let Some(roots) = v1_roots() else {
        eprintln!(
            "SKIP v1_cpu_and_memory_agree_with_the_kernel: this kernel mounts no cgroup v1 hierarchies"
        );
        return;
    };
    let base = own_cgroup("memory");
    let mut cgroup = TestCgroup::create(&roots, &base, 1);
    let pid = cgroup.run_python(BURN_THEN_HOLD);

    let health = SourceHealth::new("cgroups");
    let mut source = CgroupSource::new(
        Path::new(ROOT),
        Duration::from_secs(60),
        Arc::clone(&health),
    )
    .expect("layout");
    // Wait until the burn is done and the memory is held.
    assert!(
        wait_until(Duration::from_secs(20), || {
            wait_for_burn(pid, 0.4)
                && std::fs::read_to_string(format!("/proc/{pid}/status"))
                    .map(|s| {
                        s.lines().any(|l| {
                            l.starts_with("VmRSS:")
                                && l.split_whitespace()
                                    .nth(1)
                                    .and_then(|v| v.parse::<u64>().ok())
                                    .unwrap_or(0)
                                    > 64 * 1024
                        })
                    })
                    .unwrap_or(false)
        }),
        "child never burned its CPU or held its memory"
    );
    source.discover(Instant::now());
    source.collect_full(Instant::now());
    let container = source
        .containers()
        .find(|c| c.cgroup.relative == cgroup.relative)
        .unwrap_or_else(|| panic!("container {} not discovered", cgroup.relative));
    assert_eq!(container.cgroup.runtime, Runtime::Cri);
    assert_eq!(container.cgroup.pod_uid, POD_UID);
    assert_eq!(container.cgroup.container_id, container_id(1));

    let kernel_cpu = process_cpu_seconds(pid);
    let agent_cpu = container.stats.fast.cpu_usage_seconds.expect("cpu usage");
    // The cgroup also charges the shell that exec'd python (a few ms).
    assert!(agent_cpu >= 0.39, "agent cpu {agent_cpu}");
    assert!(
        (agent_cpu - kernel_cpu).abs() < 0.02 + 0.02 * kernel_cpu,
        "agent {agent_cpu} vs kernel {kernel_cpu}"
    );

    let usage = container
        .stats
        .fast
        .memory_usage_bytes
        .expect("memory usage");
    let working_set = container
        .stats
        .fast
        .memory_working_set_bytes
        .expect("working set");
    let rss = container.stats.memory_rss_bytes.expect("rss");
    let kernel_usage: u64 = std::fs::read_to_string(
        roots
            .iter()
            .find(|r| r.ends_with("memory"))
            .expect("memory root")
            .join(&cgroup.relative)
            .join("memory.usage_in_bytes"),
    )
    .expect("read usage")
    .trim()
    .parse()
    .expect("number");
    assert!(working_set >= 64 << 20, "working set {working_set}");
    assert!(working_set <= usage);
    assert!((64 << 20..160 << 20).contains(&rss), "rss {rss}");
    assert!(
        usage.abs_diff(kernel_usage) < 8 << 20,
        "agent {usage} vs kernel {kernel_usage}"
    );
    assert_eq!(health.error_count("parse"), 0);
    assert_eq!(health.error_count("io"), 0);

    // A limit set on the cgroup is read back.
    cgroup.write("cpu.cfs_quota_us", "50000");
    cgroup.write("memory.limit_in_bytes", &(512u64 << 20).to_string());
    source.collect_full(Instant::now());
    let container = source
        .containers()
        .find(|c| c.cgroup.relative == cgroup.relative)
        .expect("still there");
    assert_eq!(container.stats.cpu_limit_cores, Some(0.5));
    assert_eq!(container.stats.memory_limit_bytes, Some(512 << 20));

    // Samples go through kept-open handles: they must see new CPU time.
    source.sample(Instant::now());
    let before = source
        .containers()
        .find(|c| c.cgroup.relative == cgroup.relative)
        .and_then(|c| c.stats.fast.cpu_usage_seconds)
        .expect("sampled cpu");
    let second = cgroup.run_python(
        "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.2: pass\ntime.sleep(60)\n",
    );
    assert!(wait_for_burn(second, 0.2));
    source.sample(Instant::now());
    let after = source
        .containers()
        .find(|c| c.cgroup.relative == cgroup.relative)
        .and_then(|c| c.stats.fast.cpu_usage_seconds)
        .expect("sampled cpu");
    assert!(
        after - before >= 0.2,
        "handles returned stale values: {before} then {after}"
    );

    // Sampling folds per-second CPU into the histogram.
    source.sample(Instant::now());
    std::thread::sleep(Duration::from_millis(200));
    source.sample(Instant::now());
    let histograms = source.take_histograms();
    let (_, cpu, memory) = histograms
        .iter()
        .find(|(c, _, _)| c.relative == cgroup.relative)
        .expect("histograms");
    assert!(cpu.count() >= 1);
    assert!(memory.count() >= 2);
    assert!(memory.min().unwrap_or(0.0) >= (64u64 << 20) as f64);

    // The cgroup disappears: the next sample drops it.
    drop(cgroup);
    source.sample(Instant::now());
    assert!(source.containers().all(|c| {
        !c.cgroup
            .relative
            .contains(&format!("tally-it-{}-1", std::process::id()))
    }));
}

#[test]
fn v1_oom_kill_is_reported() {
    if skip_unless_root("v1_oom_kill_is_reported") {
        return;
    }
    let Some(roots) = v1_roots() else {
        eprintln!("SKIP v1_oom_kill_is_reported: this kernel mounts no cgroup v1 hierarchies");
        return;
    };
    let base = own_cgroup("memory");
    let mut cgroup = TestCgroup::create(&roots, &base, 2);
    cgroup.write("memory.limit_in_bytes", &(48u64 << 20).to_string());
    let health = SourceHealth::new("cgroups");
    let mut source =
        CgroupSource::new(Path::new(ROOT), Duration::from_secs(60), health).expect("layout");
    source.discover(Instant::now());
    source.collect_full(Instant::now());
    let before = source
        .containers()
        .find(|c| c.cgroup.relative == cgroup.relative)
        .and_then(|c| c.stats.oom_kills)
        .expect("oom_kill counter readable");
    assert_eq!(before, 0);

    let pid = cgroup.run_python("b = b'x' * (256 << 20)\nimport time\ntime.sleep(60)\n");
    let child = cgroup.children.last_mut().expect("child");
    let status = (0..200)
        .find_map(|_| {
            let status = child.try_wait().ok().flatten();
            if status.is_none() {
                std::thread::sleep(Duration::from_millis(50));
            }
            status
        })
        .unwrap_or_else(|| panic!("process {pid} was not OOM-killed"));
    use std::os::unix::process::ExitStatusExt as _;
    assert_eq!(
        status.signal(),
        Some(9),
        "expected SIGKILL from the OOM killer, got {status:?}"
    );

    source.collect_full(Instant::now());
    let container = source
        .containers()
        .find(|c| c.cgroup.relative == cgroup.relative)
        .expect("container");
    assert!(
        container.stats.oom_kills.unwrap_or(0) >= 1,
        "{:?}",
        container.stats.oom_kills
    );
    assert!(container.stats.memory_peak_bytes.unwrap_or(0) >= 40 << 20);
}

#[test]
fn v2_cpu_usage_agrees_with_the_kernel() {
    if skip_unless_root("v2_cpu_usage_agrees_with_the_kernel") {
        return;
    }
    let v2_root = if Path::new(ROOT).join("cgroup.controllers").is_file() {
        PathBuf::from(ROOT)
    } else if Path::new(ROOT).join("unified/cgroup.controllers").is_file() {
        PathBuf::from(ROOT).join("unified")
    } else {
        eprintln!("SKIP v2_cpu_usage_agrees_with_the_kernel: no cgroup v2 tree on this kernel");
        return;
    };
    let base = own_cgroup("");
    let mut cgroup = TestCgroup::create(std::slice::from_ref(&v2_root), &base, 3);
    let pid = cgroup.run_python("import time\nt = time.process_time()\nwhile time.process_time() - t < 0.3: pass\ntime.sleep(60)\n");
    assert!(wait_until(Duration::from_secs(20), || process_cpu_seconds(
        pid
    ) >= 0.3));

    let health = SourceHealth::new("cgroups");
    let mut source = CgroupSource::with_layout(
        Layout::V2 {
            root: v2_root.clone(),
        },
        Duration::from_secs(60),
        Arc::clone(&health),
    );
    source.discover(Instant::now());
    source.collect_full(Instant::now());
    let container = source
        .containers()
        .find(|c| c.cgroup.relative == cgroup.relative)
        .unwrap_or_else(|| panic!("container {} not discovered", cgroup.relative));
    assert_eq!(container.cgroup_version(), 2);
    let agent_cpu = container
        .stats
        .fast
        .cpu_usage_seconds
        .expect("cpu.stat usage_usec");
    let kernel_cpu = process_cpu_seconds(pid);
    // The shell's few ms before it was moved in are not charged here.
    assert!(agent_cpu >= 0.29, "agent cpu {agent_cpu}");
    assert!(
        (agent_cpu - kernel_cpu).abs() < 0.02 + 0.02 * kernel_cpu,
        "agent {agent_cpu} vs kernel {kernel_cpu}"
    );
    // PSI is in every v2 cgroup on kernels with CONFIG_PSI.
    if v2_root.join(&cgroup.relative).join("cpu.pressure").exists() {
        assert!(container.stats.pressure_cpu.is_some());
    }
    assert_eq!(health.error_count("parse"), 0);
}
