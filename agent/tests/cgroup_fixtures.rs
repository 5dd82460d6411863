//! Cgroup trees written by the tests into temp dirs, one per layout the
//! agent supports (v2, v1, hybrid; systemd and cgroupfs drivers;
//! containerd, CRI-O, Docker and podman naming), including malformed and
//! truncated files and a cgroup that vanishes between discovery and read.
//! File contents follow the kernel's formats byte for byte.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tally_agent::sources::cgroups::CgroupSource;
use tally_agent::sources::cgroups::discovery::Runtime;
use tally_agent::sources::cgroups::layout::Layout;
use tally_agent::telemetry::SourceHealth;

const ID_A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const ID_B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
const ID_C: &str = "cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc";
const ID_D: &str = "dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd";
const UID: &str = "11111111-2222-3333-4444-555555555555";
const UID_: &str = "11111111_2222_3333_4444_555555555555";

fn write(dir: &Path, name: &str, content: &str) {
    std::fs::create_dir_all(dir).expect("mkdir");
    std::fs::write(dir.join(name), content).expect("write");
}

fn v2_container(root: &Path, relative: &str, cpu_usec: u64, memory: u64, inactive: u64) {
    let dir = root.join(relative);
    write(&dir, "cgroup.procs", "1234\n");
    write(
        &dir,
        "cpu.stat",
        &format!(
            "usage_usec {cpu_usec}\nuser_usec {}\nsystem_usec {}\nnr_periods 100\nnr_throttled 7\nthrottled_usec 250000\nnr_bursts 0\nburst_usec 0\n",
            cpu_usec * 3 / 4,
            cpu_usec / 4
        ),
    );
    write(&dir, "cpu.max", "200000 100000\n");
    write(&dir, "cpu.weight", "79\n");
    write(&dir, "memory.current", &format!("{memory}\n"));
    write(&dir, "memory.peak", &format!("{}\n", memory * 2));
    write(&dir, "memory.max", "max\n");
    write(
        &dir,
        "memory.stat",
        &format!(
            "anon {}\nfile {}\nkernel 4096\nactive_file 100\ninactive_file {inactive}\npgfault 10\n",
            memory / 2,
            memory / 2
        ),
    );
    write(
        &dir,
        "memory.events",
        "low 0\nhigh 0\nmax 5\noom 2\noom_kill 1\noom_group_kill 0\n",
    );
    write(
        &dir,
        "io.stat",
        "8:0 rbytes=1000 wbytes=2000 rios=3 wios=4 dbytes=0 dios=0\n",
    );
    write(
        &dir,
        "cpu.pressure",
        "some avg10=0.00 avg60=0.00 avg300=0.00 total=1500000\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=500000\n",
    );
    write(
        &dir,
        "memory.pressure",
        "some avg10=0.00 avg60=0.00 avg300=0.00 total=0\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n",
    );
    write(
        &dir,
        "io.pressure",
        "some avg10=0.00 avg60=0.00 avg300=0.00 total=42\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=41\n",
    );
}

fn source_for(root: &Path) -> (CgroupSource, Arc<SourceHealth>) {
    let health = SourceHealth::new("cgroups");
    let source =
        CgroupSource::new(root, Duration::from_secs(10), Arc::clone(&health)).expect("layout");
    (source, health)
}

#[test]
fn v2_systemd_tree_with_every_runtime() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    write(root, "cgroup.controllers", "cpuset cpu io memory pids\n");
    let pod = format!("kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UID_}.slice");
    v2_container(
        root,
        &format!("{pod}/cri-containerd-{ID_A}.scope"),
        2_000_000,
        100 << 20,
        30 << 20,
    );
    v2_container(
        root,
        &format!("{pod}/crio-{ID_B}.scope"),
        1_000_000,
        10 << 20,
        20 << 20,
    );
    v2_container(root, &format!("{pod}/crio-conmon-{ID_B}.scope"), 1, 1, 0);
    v2_container(root, &format!("system.slice/docker-{ID_C}.scope"), 5, 5, 0);
    v2_container(root, &format!("machine.slice/libpod-{ID_D}.scope"), 5, 5, 0);
    v2_container(root, "system.slice/sshd.service", 5, 5, 0);
    // An empty leaf is not reported: nothing runs there.
    std::fs::create_dir_all(root.join("system.slice/empty.service")).expect("mkdir");

    let (mut source, health) = source_for(root);
    assert_eq!(
        source.layout(),
        &Layout::V2 {
            root: root.to_path_buf()
        }
    );
    source.discover(Instant::now());
    source.collect_full(Instant::now());

    let by_runtime = source.discovered_by_runtime();
    for runtime in [
        Runtime::Containerd,
        Runtime::CriO,
        Runtime::Docker,
        Runtime::Podman,
        Runtime::Unknown,
    ] {
        assert_eq!(
            by_runtime.get(&runtime),
            Some(&1),
            "{runtime:?}: {by_runtime:?}"
        );
    }
    assert_eq!(source.containers().count(), 5, "conmon is not a container");
    let unknown = source
        .containers()
        .find(|c| c.cgroup.runtime == Runtime::Unknown)
        .expect("unknown");
    assert_eq!(unknown.cgroup.container_id, "system.slice/sshd.service");

    let a = source
        .containers()
        .find(|c| c.cgroup.container_id == ID_A)
        .expect("containerd container");
    assert_eq!(a.cgroup.pod_uid, UID);
    let s = &a.stats;
    assert_eq!(s.fast.cpu_usage_seconds, Some(2.0));
    assert_eq!(s.cpu_user_seconds, Some(1.5));
    assert_eq!(s.cpu_system_seconds, Some(0.5));
    assert_eq!(s.cpu_periods, Some(100));
    assert_eq!(s.cpu_throttled_periods, Some(7));
    assert_eq!(s.cpu_throttled_seconds, Some(0.25));
    assert_eq!(s.cpu_limit_cores, Some(2.0));
    assert_eq!(s.cpu_weight, Some(79));
    assert_eq!(s.fast.memory_usage_bytes, Some(100 << 20));
    assert_eq!(s.fast.memory_working_set_bytes, Some(70 << 20));
    assert_eq!(s.memory_rss_bytes, Some(50 << 20));
    assert_eq!(s.memory_peak_bytes, Some(200 << 20));
    assert_eq!(s.memory_limit_bytes, None, "max means unlimited");
    assert_eq!(s.oom_events, Some(2));
    assert_eq!(s.oom_kills, Some(1));
    let io = s.io.expect("io");
    assert_eq!(
        (io.read_bytes, io.write_bytes, io.reads, io.writes),
        (1000, 2000, 3, 4)
    );
    assert_eq!(s.pressure_cpu.map(|p| p.some_us), Some(1_500_000));
    assert_eq!(s.pressure_io.and_then(|p| p.full_us), Some(41));

    // inactive_file larger than usage floors the working set at 0.
    let b = source
        .containers()
        .find(|c| c.cgroup.container_id == ID_B)
        .expect("cri-o container");
    assert_eq!(b.stats.fast.memory_working_set_bytes, Some(0));
    assert_eq!(health.error_count("parse"), 0);
    assert!(health.is_up());
}

fn v1_container(root: &Path, relative: &str, with_unified: bool) {
    let cpuacct = root.join("cpuacct").join(relative);
    write(&cpuacct, "cgroup.procs", "42\n");
    write(&cpuacct, "cpuacct.usage", "3000000000\n");
    write(&cpuacct, "cpuacct.stat", "user 200\nsystem 100\n");
    let cpu = root.join("cpu").join(relative);
    write(
        &cpu,
        "cpu.stat",
        "nr_periods 50\nnr_throttled 5\nthrottled_time 1500000000\n",
    );
    write(&cpu, "cpu.cfs_quota_us", "-1\n");
    write(&cpu, "cpu.cfs_period_us", "100000\n");
    write(&cpu, "cpu.shares", "1024\n");
    let memory = root.join("memory").join(relative);
    write(&memory, "cgroup.procs", "42\n");
    write(
        &memory,
        "memory.usage_in_bytes",
        &format!("{}\n", 300u64 << 20),
    );
    write(
        &memory,
        "memory.max_usage_in_bytes",
        &format!("{}\n", 400u64 << 20),
    );
    write(&memory, "memory.limit_in_bytes", "9223372036854771712\n");
    write(
        &memory,
        "memory.stat",
        &format!(
            "cache 0\nrss 0\ninactive_file 0\ntotal_cache {}\ntotal_rss {}\ntotal_inactive_file {}\n",
            100u64 << 20,
            200u64 << 20,
            60u64 << 20
        ),
    );
    write(
        &memory,
        "memory.oom_control",
        "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n",
    );
    let blkio = root.join("blkio").join(relative);
    write(
        &blkio,
        "blkio.throttle.io_service_bytes_recursive",
        "8:0 Read 4096\n8:0 Write 8192\n8:0 Sync 0\n8:0 Async 0\n8:0 Discard 0\n8:0 Total 12288\nTotal 12288\n",
    );
    write(
        &blkio,
        "blkio.throttle.io_serviced_recursive",
        "8:0 Read 1\n8:0 Write 2\n8:0 Total 3\nTotal 3\n",
    );
    if with_unified {
        let unified = root.join("unified").join(relative);
        write(
            &unified,
            "cpu.pressure",
            "some avg10=0.00 avg60=0.00 avg300=0.00 total=77\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=7\n",
        );
    }
}

#[test]
fn v1_cgroupfs_and_hybrid_psi() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    write(&root.join("unified"), "cgroup.controllers", "\n");
    let guaranteed = format!("kubepods/pod{UID}/{ID_A}");
    let burstable = format!("kubepods/burstable/pod{UID}/{ID_B}");
    v1_container(root, &guaranteed, true);
    v1_container(root, &burstable, false);
    let quirk = format!(
        "system.slice/containerd.service/kubepods-besteffort-pod{UID_}.slice:cri-containerd:{ID_C}"
    );
    v1_container(root, &quirk, false);
    v1_container(root, &format!("docker/{ID_D}"), false);

    let (mut source, health) = source_for(root);
    source.discover(Instant::now());
    source.collect_full(Instant::now());
    assert_eq!(source.containers().count(), 4);

    let a = source
        .containers()
        .find(|c| c.cgroup.container_id == ID_A)
        .expect("guaranteed");
    assert_eq!(a.cgroup.runtime, Runtime::Cri);
    assert_eq!(a.cgroup.pod_uid, UID);
    assert_eq!(a.cgroup_version(), 1);
    let s = &a.stats;
    assert_eq!(s.fast.cpu_usage_seconds, Some(3.0));
    assert_eq!(s.cpu_user_seconds, Some(2.0));
    assert_eq!(s.cpu_system_seconds, Some(1.0));
    assert_eq!(s.cpu_throttled_seconds, Some(1.5));
    assert_eq!(s.cpu_limit_cores, None, "quota -1 is unlimited");
    assert_eq!(s.cpu_weight, Some(39), "1024 shares = weight 39");
    assert_eq!(s.fast.memory_working_set_bytes, Some(240 << 20));
    assert_eq!(s.memory_rss_bytes, Some(200 << 20));
    assert_eq!(s.memory_cache_bytes, Some(100 << 20));
    assert_eq!(s.memory_peak_bytes, Some(400 << 20));
    assert_eq!(s.memory_limit_bytes, None, "v1's huge limit is unlimited");
    assert_eq!(s.oom_kills, Some(3));
    assert_eq!(s.oom_events, None, "v1 has no oom event counter");
    let io = s.io.expect("io");
    assert_eq!(
        (io.read_bytes, io.write_bytes, io.reads, io.writes),
        (4096, 8192, 1, 2)
    );
    assert_eq!(
        s.pressure_cpu.map(|p| (p.some_us, p.full_us)),
        Some((77, Some(7)))
    );

    let c = source
        .containers()
        .find(|c| c.cgroup.container_id == ID_C)
        .expect("quirk");
    assert_eq!(
        (c.cgroup.runtime, c.cgroup.pod_uid.as_str()),
        (Runtime::Containerd, UID)
    );
    let d = source
        .containers()
        .find(|c| c.cgroup.container_id == ID_D)
        .expect("docker");
    assert_eq!(
        (d.cgroup.runtime, d.cgroup.pod_uid.as_str()),
        (Runtime::Docker, "")
    );
    assert_eq!(health.error_count("parse"), 0);
}

#[test]
fn malformed_and_truncated_files_are_counted_not_guessed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    write(root, "cgroup.controllers", "cpu memory\n");
    let relative = format!("kubepods.slice/kubepods-pod{UID_}.slice/cri-containerd-{ID_A}.scope");
    v2_container(root, &relative, 1_000_000, 10 << 20, 0);
    let container = root.join(&relative);
    // Truncated mid-number and garbage.
    write(&container, "memory.current", "12ab");
    write(&container, "cpu.max", "");
    write(&container, "io.stat", "8:0 rbytes=10 wbytes\n");
    write(
        &container,
        "cpu.pressure",
        "some avg10=0.00 avg60=0.00 avg300=0.00 total=\n",
    );

    let (mut source, health) = source_for(root);
    source.discover(Instant::now());
    source.collect_full(Instant::now());
    let c = source.containers().next().expect("container");
    assert_eq!(c.stats.fast.memory_usage_bytes, None);
    assert_eq!(c.stats.fast.memory_working_set_bytes, None);
    assert_eq!(c.stats.cpu_limit_cores, None);
    assert_eq!(c.stats.io, None);
    assert_eq!(c.stats.pressure_cpu, None);
    // Fields from intact files are still read.
    assert_eq!(c.stats.fast.cpu_usage_seconds, Some(1.0));
    assert_eq!(c.stats.memory_peak_bytes, Some(20 << 20));
    assert_eq!(health.error_count("parse"), 4);

    // Missing files (a controller that is not enabled) are not errors.
    std::fs::remove_file(container.join("io.stat")).expect("rm");
    std::fs::remove_file(container.join("memory.peak")).expect("rm");
    source.collect_full(Instant::now());
    let c = source.containers().next().expect("container");
    assert_eq!(c.stats.memory_peak_bytes, None);
    assert_eq!(
        health.error_count("parse"),
        7,
        "only the 3 still-malformed files count again"
    );
}

#[test]
fn vanished_cgroups_are_dropped() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    write(root, "cgroup.controllers", "cpu memory\n");
    let gone = format!("kubepods.slice/kubepods-pod{UID_}.slice/cri-containerd-{ID_A}.scope");
    let stays = format!("kubepods.slice/kubepods-pod{UID_}.slice/cri-containerd-{ID_B}.scope");
    v2_container(root, &gone, 1, 1, 0);
    v2_container(root, &stays, 1, 1, 0);
    let (mut source, health) = source_for(root);
    source.discover(Instant::now());
    assert_eq!(source.containers().count(), 2);
    std::fs::remove_dir_all(root.join(&gone)).expect("rm");
    source.sample(Instant::now());
    let ids: Vec<_> = source
        .containers()
        .map(|c| c.cgroup.container_id.clone())
        .collect();
    assert_eq!(ids, vec![ID_B.to_owned()]);
    assert_eq!(
        health.error_count("io"),
        0,
        "a vanished cgroup is churn, not an error"
    );

    // Vanishing during a full read too.
    std::fs::remove_dir_all(root.join(&stays)).expect("rm");
    source.collect_full(Instant::now());
    assert_eq!(source.containers().count(), 0);
}

#[test]
fn missing_root_is_a_clear_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let error = CgroupSource::new(
        &dir.path().join("nope"),
        Duration::from_secs(1),
        SourceHealth::new("cgroups"),
    )
    .expect_err("no hierarchy");
    assert!(
        error.to_string().contains("no cgroup hierarchy found"),
        "{error}"
    );
}
