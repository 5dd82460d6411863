//! A cgroup v2 tree written into a temp dir with one Kubernetes container
//! (systemd driver, containerd naming) whose values are known, so
//! end-to-end tests can assert exact numbers. The live cgroup tests in
//! `agent/tests/cgroup_live.rs` cover reading real kernel cgroups.

use std::path::Path;

/// Container ID of the fixture container.
pub const CONTAINER_ID: &str = "c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00";
/// Pod UID of the fixture container.
pub const POD_UID: &str = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d";
/// CPU usage the fixture reports, seconds.
pub const CPU_SECONDS: f64 = 2.5;
/// Working set the fixture reports, bytes.
pub const WORKING_SET: u64 = 96 << 20;

fn write(dir: &Path, name: &str, content: &str) {
    std::fs::create_dir_all(dir).expect("mkdir");
    std::fs::write(dir.join(name), content).expect("write");
}

/// Writes the tree below `root`.
pub fn write_tree(root: &Path) {
    write(root, "cgroup.controllers", "cpuset cpu io memory pids\n");
    let uid = POD_UID.replace('-', "_");
    let dir = root.join(format!(
        "kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{uid}.slice/cri-containerd-{CONTAINER_ID}.scope"
    ));
    write(&dir, "cgroup.procs", "4242\n");
    write(
        &dir,
        "cpu.stat",
        "usage_usec 2500000\nuser_usec 2000000\nsystem_usec 500000\nnr_periods 10\nnr_throttled 1\nthrottled_usec 1000\n",
    );
    write(&dir, "cpu.max", "100000 100000\n");
    write(&dir, "cpu.weight", "100\n");
    write(
        &dir,
        "memory.current",
        &format!("{}\n", WORKING_SET + (4 << 20)),
    );
    write(&dir, "memory.peak", &format!("{}\n", 200u64 << 20));
    write(&dir, "memory.max", &format!("{}\n", 512u64 << 20));
    write(
        &dir,
        "memory.stat",
        &format!(
            "anon {}\nfile {}\ninactive_file {}\n",
            64u64 << 20,
            36u64 << 20,
            4u64 << 20
        ),
    );
    write(
        &dir,
        "memory.events",
        "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\n",
    );
    write(
        &dir,
        "io.stat",
        "8:0 rbytes=4096 wbytes=8192 rios=1 wios=2 dbytes=0 dios=0\n",
    );
    write(
        &dir,
        "cpu.pressure",
        "some avg10=0.00 avg60=0.00 avg300=0.00 total=1000\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=500\n",
    );
}
