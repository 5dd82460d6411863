//! What one collection reads from the GPUs: the contract between a
//! [`super::backend::GpuBackend`] and the source. Every NVML getter may
//! answer `NotSupported` on some SKUs or in MIG mode, so every reading is
//! optional; `None` means "not supported or not readable here", never 0.
//!
//! The same structs, as JSON, are the replay fixtures `tally gpu-check`
//! writes on a GPU machine and the replay backend reads in CI.

use serde::{Deserialize, Serialize};

/// Fixture format version.
pub const FIXTURE_VERSION: u32 = 1;

/// A recorded sequence of frames (a replay fixture).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recording {
    /// [`FIXTURE_VERSION`].
    pub version: u32,
    /// Where the readings came from: `nvml` (a real GPU, with the model
    /// and driver) or `documentation` (written by hand from the NVML
    /// documentation, marked as such).
    pub source: String,
    /// Free text: machine, GPU model, driver, what ran on it.
    #[serde(default)]
    pub description: String,
    /// Frames in the order they were read.
    pub frames: Vec<Frame>,
}

/// Every GPU at one moment.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Frame {
    /// When the frame was read, ms since the Unix epoch.
    pub time_ms: u64,
    /// Driver version (`nvmlSystemGetDriverVersion`).
    #[serde(default)]
    pub driver_version: Option<String>,
    /// The GPUs, by index.
    pub devices: Vec<Device>,
    /// Events drained since the previous frame.
    #[serde(default)]
    pub events: Vec<Event>,
}

/// One physical GPU.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Device {
    /// NVML index.
    pub index: u32,
    /// `GPU-…` UUID.
    pub uuid: String,
    /// Product name, e.g. `NVIDIA H100 80GB HBM3`.
    pub name: String,
    /// PCI bus id, e.g. `00000000:18:00.0`.
    pub pci_bus_id: String,
    /// The GPU fell off the bus (`GpuLost`): nothing else is read.
    pub lost: bool,
    /// MIG mode currently enabled.
    pub mig_enabled: Option<bool>,
    /// `utilization.gpu`, percent.
    pub utilization_gpu_percent: Option<u32>,
    /// `utilization.memory`, percent.
    pub utilization_memory_percent: Option<u32>,
    /// Framebuffer in use, bytes.
    pub memory_used_bytes: Option<u64>,
    /// Framebuffer free, bytes.
    pub memory_free_bytes: Option<u64>,
    /// Framebuffer size, bytes.
    pub memory_total_bytes: Option<u64>,
    /// Power draw, milliwatts.
    pub power_milliwatts: Option<u32>,
    /// Enforced power limit, milliwatts.
    pub power_limit_milliwatts: Option<u32>,
    /// Energy since the driver loaded, millijoules (a counter).
    pub energy_millijoules: Option<u64>,
    /// GPU die temperature, °C.
    pub temperature_celsius: Option<u32>,
    /// SM clock, MHz.
    pub sm_clock_mhz: Option<u32>,
    /// Memory clock, MHz.
    pub memory_clock_mhz: Option<u32>,
    /// Active clock throttle reasons, snake case (`gpu_idle`,
    /// `sw_power_cap`, `hw_slowdown`, …); `None` when not readable.
    pub throttle_reasons: Option<Vec<String>>,
    /// PCIe transmit throughput, bytes per second.
    pub pcie_tx_bytes_per_second: Option<u64>,
    /// PCIe receive throughput, bytes per second.
    pub pcie_rx_bytes_per_second: Option<u64>,
    /// PCIe replays since the driver loaded (a counter).
    pub pcie_replays: Option<u64>,
    /// Corrected ECC errors since the driver loaded (volatile counter).
    pub ecc_corrected: Option<u64>,
    /// Uncorrected ECC errors since the driver loaded.
    pub ecc_uncorrected: Option<u64>,
    /// Pages retired (pre-Ampere), single- and double-bit together.
    pub retired_pages: Option<u64>,
    /// Rows remapped (Ampere and newer), correctable and uncorrectable.
    pub remapped_rows: Option<u64>,
    /// A row remapping waits for a GPU reset.
    pub remap_pending: Option<bool>,
    /// Performance state, 0 (P0, fastest) to 15.
    pub performance_state: Option<u32>,
    /// Compute processes with their memory.
    pub processes: Vec<Process>,
    /// Per-process utilization samples since the last read.
    pub process_utilization: Vec<ProcessUtilization>,
    /// MIG instances when MIG is enabled.
    pub mig_devices: Vec<MigDevice>,
}

/// A compute process on a GPU (host PID).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Process {
    /// Host PID (NVML is not PID-namespace aware).
    pub pid: u32,
    /// GPU memory the process holds, bytes.
    pub used_memory_bytes: Option<u64>,
    /// MIG GPU instance the process runs in.
    pub gpu_instance_id: Option<u32>,
    /// MIG compute instance the process runs in.
    pub compute_instance_id: Option<u32>,
}

/// A process utilization sample (`nvmlDeviceGetProcessUtilization`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProcessUtilization {
    /// Host PID.
    pub pid: u32,
    /// SM utilization, percent.
    pub sm_percent: u32,
    /// Memory utilization, percent.
    pub memory_percent: u32,
    /// When the sample was taken, µs (the next read asks for samples
    /// after the newest one seen).
    pub timestamp_us: u64,
}

/// A MIG instance.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MigDevice {
    /// `MIG-…` UUID.
    pub uuid: String,
    /// GPU instance id.
    pub gpu_instance_id: u32,
    /// Compute instance id.
    pub compute_instance_id: u32,
    /// Profile, e.g. `1g.10gb`, `3g.40gb`.
    pub profile: String,
    /// Memory in use, bytes.
    pub memory_used_bytes: Option<u64>,
    /// Memory size, bytes.
    pub memory_total_bytes: Option<u64>,
    /// GPM SM activity, 0..1 (Hopper and newer).
    pub sm_activity: Option<f64>,
    /// GPM tensor pipe activity, 0..1.
    pub tensor_activity: Option<f64>,
    /// GPM DRAM bandwidth use, 0..1.
    pub dram_bandwidth: Option<f64>,
}

/// An NVML event.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Event {
    /// The GPU's UUID.
    pub uuid: String,
    /// `xid`, `ecc_single_bit`, `ecc_double_bit`, `pstate`, `clock`,
    /// `power_source`.
    pub kind: String,
    /// The event's data (the XID number for `xid`).
    pub data: u64,
    /// When it happened, ms since the Unix epoch.
    pub time_ms: u64,
}
