//! Host metrics: CPU by mode, load, memory, swap, filesystems, disk IO,
//! network interfaces, uptime and boot id.
//!
//! sysinfo provides memory, swap, load, uptime, kernel and filesystems;
//! CPU time by mode, disk IO and interface drops are not in sysinfo's
//! model, so they come straight from `/proc/stat`, `/proc/diskstats` and
//! `/proc/net/dev` (the same files node_exporter reads).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use sysinfo::{Disks, System};
use tally_schema::catalog::{self, MetricDef};

use crate::telemetry::SourceHealth;

/// `USER_HZ`: the unit of `/proc/stat`, fixed at 100 by the kernel ABI.
const USER_HZ: f64 = 100.0;
/// `/proc/diskstats` counts 512-byte sectors regardless of the device.
const SECTOR_BYTES: u64 = 512;
/// The CPU modes of `/proc/stat`, in column order (guest time is already
/// inside user and nice, so it is not repeated).
const CPU_MODES: [&str; 8] = [
    "user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal",
];

/// One mounted filesystem.
#[derive(Debug, Clone, PartialEq)]
pub struct Filesystem {
    /// Device name.
    pub device: String,
    /// Mount point.
    pub mountpoint: String,
    /// Filesystem type.
    pub fstype: String,
    /// Size, bytes.
    pub size_bytes: u64,
    /// Available to unprivileged users, bytes.
    pub avail_bytes: u64,
}

/// IO counters of one block device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskIo {
    /// Device name.
    pub device: String,
    /// Bytes read.
    pub read_bytes: u64,
    /// Bytes written.
    pub written_bytes: u64,
    /// Reads completed.
    pub reads: u64,
    /// Writes completed.
    pub writes: u64,
}

/// Counters of one network interface.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Interface {
    /// Interface name.
    pub name: String,
    /// Bytes received.
    pub rx_bytes: u64,
    /// Packets received.
    pub rx_packets: u64,
    /// Receive errors.
    pub rx_errors: u64,
    /// Received packets dropped.
    pub rx_drops: u64,
    /// Bytes transmitted.
    pub tx_bytes: u64,
    /// Packets transmitted.
    pub tx_packets: u64,
    /// Transmit errors.
    pub tx_errors: u64,
    /// Transmitted packets dropped.
    pub tx_drops: u64,
}

/// One host reading.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HostStats {
    /// CPU seconds by mode, summed over CPUs.
    pub cpu_seconds: Vec<(&'static str, f64)>,
    /// Logical CPUs.
    pub cpu_count: u64,
    /// 1, 5 and 15 minute load averages.
    pub load: Option<[f64; 3]>,
    /// Physical memory, bytes.
    pub memory_total: u64,
    /// MemAvailable, bytes.
    pub memory_available: u64,
    /// MemFree, bytes.
    pub memory_free: u64,
    /// Swap size, bytes.
    pub swap_total: u64,
    /// Free swap, bytes.
    pub swap_free: u64,
    /// Mounted filesystems.
    pub filesystems: Vec<Filesystem>,
    /// Block device IO.
    pub disks: Vec<DiskIo>,
    /// Network interfaces.
    pub interfaces: Vec<Interface>,
    /// Boot time, seconds since the epoch.
    pub boot_time: Option<u64>,
    /// Seconds since boot.
    pub uptime: Option<u64>,
    /// `/proc/sys/kernel/random/boot_id`.
    pub boot_id: String,
    /// Kernel release.
    pub kernel_version: String,
    /// OS name and version.
    pub os: String,
}

/// Reads one counter of a block device.
pub type DiskValue = fn(&DiskIo) -> u64;
/// Reads one counter of a network interface.
pub type InterfaceValue = fn(&Interface) -> u64;

/// Every disk family and how to read it, shared by `/metrics` and OTLP.
pub const DISK_VALUES: &[(&MetricDef, DiskValue)] = &[
    (&catalog::NODE_DISK_READ, |d| d.read_bytes),
    (&catalog::NODE_DISK_WRITTEN, |d| d.written_bytes),
    (&catalog::NODE_DISK_READS, |d| d.reads),
    (&catalog::NODE_DISK_WRITES, |d| d.writes),
];

/// Every interface family and how to read it, shared by `/metrics` and OTLP.
pub const INTERFACE_VALUES: &[(&MetricDef, InterfaceValue)] = &[
    (&catalog::NODE_NET_RX_BYTES, |i| i.rx_bytes),
    (&catalog::NODE_NET_TX_BYTES, |i| i.tx_bytes),
    (&catalog::NODE_NET_RX_PACKETS, |i| i.rx_packets),
    (&catalog::NODE_NET_TX_PACKETS, |i| i.tx_packets),
    (&catalog::NODE_NET_RX_ERRORS, |i| i.rx_errors),
    (&catalog::NODE_NET_TX_ERRORS, |i| i.tx_errors),
    (&catalog::NODE_NET_RX_DROPS, |i| i.rx_drops),
    (&catalog::NODE_NET_TX_DROPS, |i| i.tx_drops),
];

/// The host source.
pub struct HostSource {
    proc_root: PathBuf,
    system: Option<System>,
    disks: Option<Disks>,
    health: Arc<SourceHealth>,
}

impl std::fmt::Debug for HostSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostSource")
            .field("proc_root", &self.proc_root)
            .finish_non_exhaustive()
    }
}

impl HostSource {
    /// A source reading `proc_root` (normally `/proc`).
    pub fn new(proc_root: &Path, health: Arc<SourceHealth>) -> Self {
        let system = System::new()
            .map_err(|error| health.error("sysinfo", &error))
            .ok();
        let disks = Disks::new_with_refreshed_list()
            .map_err(|error| health.error("sysinfo", &error))
            .ok();
        Self {
            proc_root: proc_root.to_path_buf(),
            system,
            disks,
            health,
        }
    }

    /// Reads everything. Parts that fail are counted and left empty.
    pub fn collect(&mut self) -> HostStats {
        let started = Instant::now();
        let mut stats = HostStats::default();
        let mut failed = false;
        let health = Arc::clone(&self.health);
        let mut fail = |kind: &'static str, message: String| {
            failed = true;
            health.error(kind, &message);
        };

        match self.read_proc("stat").map(|c| parse_proc_stat(&c)) {
            Ok(Ok((modes, count))) => {
                stats.cpu_seconds = modes;
                stats.cpu_count = count;
            }
            Ok(Err(message)) => fail("parse", format!("stat: {message}")),
            Err(message) => fail("io", message),
        }
        match self.read_proc("diskstats").map(|c| parse_diskstats(&c)) {
            Ok(Ok(disks)) => stats.disks = disks,
            Ok(Err(message)) => fail("parse", format!("diskstats: {message}")),
            Err(message) => fail("io", message),
        }
        match self.read_proc("net/dev").map(|c| parse_net_dev(&c)) {
            Ok(Ok(interfaces)) => stats.interfaces = interfaces,
            Ok(Err(message)) => fail("parse", format!("net/dev: {message}")),
            Err(message) => fail("io", message),
        }
        match self.read_proc("sys/kernel/random/boot_id") {
            Ok(id) => stats.boot_id = id.trim().to_owned(),
            Err(message) => fail("io", message),
        }

        if let Some(system) = &mut self.system {
            system.refresh_memory();
            stats.memory_total = system.total_memory();
            stats.memory_available = system.available_memory();
            stats.memory_free = system.free_memory();
            stats.swap_total = system.total_swap();
            stats.swap_free = system.free_swap();
        }
        stats.load = System::load_average()
            .ok()
            .map(|l| [l.one, l.five, l.fifteen]);
        stats.boot_time = System::boot_time().ok();
        stats.uptime = System::uptime().ok();
        stats.kernel_version = System::kernel_version().unwrap_or_default();
        stats.os = System::long_os_version().unwrap_or_default();
        if let Some(disks) = &mut self.disks {
            disks.refresh(true);
            stats.filesystems = disks
                .iter()
                .map(|d| Filesystem {
                    device: d.name().to_string_lossy().into_owned(),
                    mountpoint: d.mount_point().to_string_lossy().into_owned(),
                    fstype: d.file_system().to_string_lossy().into_owned(),
                    size_bytes: d.total_space(),
                    avail_bytes: d.available_space(),
                })
                .collect();
        }

        if failed {
            self.health.record_degraded(started.elapsed());
        } else {
            self.health.record_success(started.elapsed());
        }
        stats
    }

    fn read_proc(&self, relative: &str) -> Result<String, String> {
        let path = self.proc_root.join(relative);
        std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))
    }
}

/// CPU seconds by mode.
pub type CpuModes = Vec<(&'static str, f64)>;

/// `/proc/stat` → (seconds by mode, logical CPU count).
pub fn parse_proc_stat(content: &str) -> Result<(CpuModes, u64), String> {
    let mut modes = None;
    let mut count = 0;
    for line in content.lines() {
        let mut fields = line.split_ascii_whitespace();
        match fields.next() {
            Some("cpu") => {
                let values: Vec<u64> = fields
                    .take(CPU_MODES.len())
                    .map(|v| v.parse::<u64>().map_err(|_| format!("cpu field {v:?}")))
                    .collect::<Result<_, _>>()?;
                if values.len() < 4 {
                    return Err(format!("cpu line has {} fields", values.len()));
                }
                modes = Some(
                    CPU_MODES
                        .iter()
                        .zip(values)
                        .map(|(mode, ticks)| (*mode, ticks as f64 / USER_HZ))
                        .collect(),
                );
            }
            Some(name) if name.starts_with("cpu") => count += 1,
            _ => {}
        }
    }
    let modes = modes.ok_or("no aggregate cpu line")?;
    Ok((modes, count))
}

/// `/proc/diskstats` → IO counters of whole devices (loop and ram
/// devices are left out, as node_exporter does by default).
pub fn parse_diskstats(content: &str) -> Result<Vec<DiskIo>, String> {
    let mut disks = Vec::new();
    for line in content.lines() {
        let fields: Vec<&str> = line.split_ascii_whitespace().collect();
        if fields.is_empty() {
            continue;
        }
        if fields.len() < 10 {
            return Err(format!("diskstats line has {} fields", fields.len()));
        }
        let device = fields[2];
        if device.starts_with("loop") || device.starts_with("ram") {
            continue;
        }
        let number = |i: usize| {
            fields[i]
                .parse::<u64>()
                .map_err(|_| format!("diskstats field {i} of {device}: {:?}", fields[i]))
        };
        disks.push(DiskIo {
            device: device.to_owned(),
            reads: number(3)?,
            read_bytes: number(5)? * SECTOR_BYTES,
            writes: number(7)?,
            written_bytes: number(9)? * SECTOR_BYTES,
        });
    }
    Ok(disks)
}

/// `/proc/net/dev` → interface counters.
pub fn parse_net_dev(content: &str) -> Result<Vec<Interface>, String> {
    let mut interfaces = Vec::new();
    // Two header lines, then `name: 16 numbers`.
    for line in content.lines().skip(2) {
        let Some((name, counters)) = line.split_once(':') else {
            if line.trim().is_empty() {
                continue;
            }
            return Err(format!("net/dev line without ':': {line:?}"));
        };
        let values: Vec<u64> = counters
            .split_ascii_whitespace()
            .map(|v| v.parse::<u64>().map_err(|_| format!("net/dev value {v:?}")))
            .collect::<Result<_, _>>()?;
        if values.len() < 16 {
            return Err(format!("net/dev line has {} values", values.len()));
        }
        interfaces.push(Interface {
            name: name.trim().to_owned(),
            rx_bytes: values[0],
            rx_packets: values[1],
            rx_errors: values[2],
            rx_drops: values[3],
            tx_bytes: values[8],
            tx_packets: values[9],
            tx_errors: values[10],
            tx_drops: values[11],
        });
    }
    Ok(interfaces)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_stat() {
        let content = "cpu  100 2 30 4000 5 6 7 8 0 0\ncpu0 50 1 15 2000 2 3 3 4 0 0\ncpu1 50 1 15 2000 3 3 4 4 0 0\nintr 1 2\nctxt 3\n";
        let (modes, count) = parse_proc_stat(content).expect("parses");
        assert_eq!(count, 2);
        assert_eq!(modes[0], ("user", 1.0));
        assert_eq!(modes[3], ("idle", 40.0));
        assert_eq!(modes.len(), 8);
        assert!(parse_proc_stat("intr 1\n").is_err());
        assert!(parse_proc_stat("cpu 1 x 3 4\n").is_err());
    }

    #[test]
    fn diskstats() {
        let content = "   8       0 sda 100 0 2048 50 200 0 4096 80 0 100 130 0 0 0 0\n   7       0 loop0 1 0 2 0 0 0 0 0 0 0 0\n";
        let disks = parse_diskstats(content).expect("parses");
        assert_eq!(
            disks,
            vec![DiskIo {
                device: "sda".into(),
                reads: 100,
                read_bytes: 2048 * 512,
                writes: 200,
                written_bytes: 4096 * 512
            }]
        );
        assert!(parse_diskstats("8 0 sda 1 2\n").is_err());
    }

    #[test]
    fn net_dev() {
        let content = "Inter-|   Receive                                                |  Transmit\n face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n    lo: 100 2 0 0 0 0 0 0 100 2 0 0 0 0 0 0\n  eth0: 5000 40 1 2 0 0 0 0 7000 50 3 4 0 0 0 0\n";
        let interfaces = parse_net_dev(content).expect("parses");
        assert_eq!(interfaces.len(), 2);
        assert_eq!(interfaces[1].name, "eth0");
        assert_eq!(interfaces[1].rx_drops, 2);
        assert_eq!(interfaces[1].tx_bytes, 7000);
        assert_eq!(interfaces[1].tx_drops, 4);
        assert!(parse_net_dev("h\nh\neth0: 1 2 3\n").is_err());
    }

    #[test]
    fn missing_proc_counts_errors_and_marks_down() {
        let dir = tempfile::tempdir().expect("tempdir");
        let health = SourceHealth::new("host");
        let mut source = HostSource::new(dir.path(), Arc::clone(&health));
        let stats = source.collect();
        assert!(stats.cpu_seconds.is_empty());
        assert!(!health.is_up());
        assert!(health.error_count("io") >= 1);
    }

    #[test]
    fn reads_this_host() {
        let health = SourceHealth::new("host");
        let mut source = HostSource::new(Path::new("/proc"), Arc::clone(&health));
        let stats = source.collect();
        assert!(health.is_up(), "{:?}", health.snapshot());
        assert!(stats.cpu_count >= 1);
        assert!(stats.memory_total > 0);
        assert!(!stats.boot_id.is_empty());
        assert!(stats.interfaces.iter().any(|i| i.name == "lo"));
    }
}
