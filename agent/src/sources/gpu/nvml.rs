//! The NVML backend: every GPU of the node through nvml-wrapper 0.13.
//!
//! `libnvidia-ml.so.1` is opened at run time, so the agent builds and runs
//! on nodes without a driver: there [`NvmlBackend::new`] answers
//! [`GpuError::NoGpu`] once and the source never retries. Every getter is
//! optional (`NotSupported` per SKU, in MIG mode or in a container), so a
//! failing getter blanks its field only; a GPU that falls off the bus
//! (`GpuLost`) is marked `lost` and not read further. Events (XID, ECC,
//! clocks, power) arrive on a dedicated blocking thread.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TryRecvError, TrySendError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use nvml_wrapper::bitmasks::device::ThrottleReasons;
use nvml_wrapper::bitmasks::event::EventTypes;
use nvml_wrapper::enum_wrappers::device::{
    Clock, EccCounter, MemoryError, PcieUtilCounter, PerformanceState, RetirementCause,
    TemperatureSensor,
};
use nvml_wrapper::enums::device::{SampleValue, UsedGpuMemory};
use nvml_wrapper::enums::event::XidError;
use nvml_wrapper::enums::gpm::GpmMetricId;
use nvml_wrapper::error::{NvmlError, nvml_sym, nvml_try};
use nvml_wrapper::gpm::gpm_metrics_get;
use nvml_wrapper::struct_wrappers::device::ProcessInfo;
use nvml_wrapper::struct_wrappers::event::EventData;
use nvml_wrapper::structs::device::FieldId;
use nvml_wrapper::sys_exports::field_id::{
    NVML_FI_DEV_REMAPPED_COR, NVML_FI_DEV_REMAPPED_PENDING, NVML_FI_DEV_REMAPPED_UNC,
};
use nvml_wrapper::{Device, EventSet, GpmSample, Nvml};

use super::backend::{GpuBackend, GpuError};
use super::readings::{self, Event, Frame, MigDevice, Process, ProcessUtilization};

/// How long the event thread blocks in one `nvmlEventSetWait`; also how
/// late it notices that the backend was dropped.
const EVENT_WAIT_MS: u32 = 500;
/// Events buffered between two reads; more are dropped (a storm of
/// pstate changes must not grow memory while nobody reads).
const EVENT_QUEUE: usize = 1024;
/// Unexpected event-wait errors in a row before the thread gives up.
const EVENT_MAX_FAILURES: u32 = 10;
/// The events asked for, where a GPU supports them. MIG reconfiguration
/// needs no event: MIG devices are re-enumerated on every read.
const WANTED_EVENTS: EventTypes = EventTypes::CRITICAL_XID_ERROR
    .union(EventTypes::SINGLE_BIT_ECC_ERROR)
    .union(EventTypes::DOUBLE_BIT_ECC_ERROR)
    .union(EventTypes::PSTATE_CHANGE)
    .union(EventTypes::CLOCK_CHANGE)
    .union(EventTypes::POWER_SOURCE_CHANGE);
/// The window between the two GPM samples of a MIG instance. GPM metrics
/// are differences of two samples; one short window per read keeps the
/// backend free of samples that outlive a read (they borrow `Nvml`).
const GPM_WINDOW: Duration = Duration::from_millis(100);
/// GPM metrics read per MIG instance, in the order of [`apply_gpm`].
const GPM_METRICS: [GpmMetricId; 3] = [
    GpmMetricId::SmUtil,
    GpmMetricId::AnyTensorUtil,
    GpmMetricId::DramBwUtil,
];
/// `nvmlDeviceGetMigMode`'s "enabled".
const MIG_ENABLED: u32 = 1;
/// A MIG instance id NVML would not give (nvml.h's "invalid" value).
pub const UNKNOWN_INSTANCE_ID: u32 = u32::MAX;

/// Throttle (clock event) reasons and their names, in NVML's bit order.
const THROTTLE_NAMES: [(ThrottleReasons, &str); 9] = [
    (ThrottleReasons::GPU_IDLE, "gpu_idle"),
    (
        ThrottleReasons::APPLICATIONS_CLOCKS_SETTING,
        "applications_clocks_setting",
    ),
    (ThrottleReasons::SW_POWER_CAP, "sw_power_cap"),
    (ThrottleReasons::HW_SLOWDOWN, "hw_slowdown"),
    (ThrottleReasons::SYNC_BOOST, "sync_boost"),
    (ThrottleReasons::SW_THERMAL_SLOWDOWN, "sw_thermal_slowdown"),
    (ThrottleReasons::HW_THERMAL_SLOWDOWN, "hw_thermal_slowdown"),
    (
        ThrottleReasons::HW_POWER_BRAKE_SLOWDOWN,
        "hw_power_brake_slowdown",
    ),
    (
        ThrottleReasons::DISPLAY_CLOCK_SETTING,
        "display_clock_setting",
    ),
];

/// Every GPU of the node through NVML.
pub struct NvmlBackend {
    /// Shared with the event thread; `nvmlShutdown` runs when both let go.
    nvml: Arc<Nvml>,
    /// Events from the event thread; `None` when it could not start.
    events: Option<Receiver<Event>>,
    /// Tells the event thread to stop (set on drop).
    stop: Arc<AtomicBool>,
    /// Newest process-utilization timestamp seen per GPU UUID, µs: the
    /// next read asks only for samples after it.
    last_seen_us: HashMap<String, u64>,
}

impl std::fmt::Debug for NvmlBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NvmlBackend")
            .field("events", &self.events.is_some())
            .finish_non_exhaustive()
    }
}

impl NvmlBackend {
    /// Loads NVML once and starts the event thread.
    ///
    /// # Errors
    /// [`GpuError::NoGpu`] when the library is absent (`LibloadingError`)
    /// or the driver is not loaded: a non-GPU node, not worth a retry.
    /// [`GpuError::Nvml`] for any other init failure.
    pub fn new() -> Result<Self, GpuError> {
        let nvml = Arc::new(Nvml::init().map_err(init_error)?);
        let stop = Arc::new(AtomicBool::new(false));
        let events = spawn_event_thread(Arc::clone(&nvml), Arc::clone(&stop));
        tracing::info!(
            source = "gpu",
            driver = nvml.sys_driver_version().unwrap_or_default(),
            events = events.is_some(),
            "nvml loaded"
        );
        Ok(NvmlBackend {
            nvml,
            events,
            stop,
            last_seen_us: HashMap::new(),
        })
    }

    /// One physical GPU; `None` when NVML gives no handle for it (e.g.
    /// `NoPermission` for a GPU this container may not see).
    fn read_device<'n>(
        &mut self,
        nvml: &'n Nvml,
        index: u32,
        gpm: &mut Vec<GpmPending<'n>>,
    ) -> Option<readings::Device> {
        let device = match nvml.device_by_index(index) {
            Ok(device) => device,
            Err(NvmlError::GpuLost) => {
                return Some(readings::Device {
                    index,
                    lost: true,
                    ..readings::Device::default()
                });
            }
            Err(error) => {
                tracing::debug!(source = "gpu", gpu = index, %error, "no handle for gpu");
                return None;
            }
        };
        let mut out = readings::Device {
            index,
            ..readings::Device::default()
        };
        if self.fill_device(nvml, &device, &mut out, gpm).is_err() {
            tracing::warn!(source = "gpu", gpu = index, uuid = out.uuid, "gpu lost");
            out.lost = true;
        }
        Some(out)
    }

    /// Reads every field of `out`; stops at the first `GpuLost`.
    fn fill_device<'n>(
        &mut self,
        nvml: &'n Nvml,
        device: &Device<'n>,
        out: &mut readings::Device,
        gpm: &mut Vec<GpmPending<'n>>,
    ) -> Result<(), Lost> {
        out.uuid = opt(device.uuid())?.unwrap_or_default();
        out.name = opt(device.name())?.unwrap_or_default();
        out.pci_bus_id = opt(device.pci_info())?
            .map(|pci| pci.bus_id)
            .unwrap_or_default();
        out.mig_enabled = opt(device.mig_mode())?.map(|mode| mode.current == MIG_ENABLED);
        if let Some(utilization) = opt(device.utilization_rates())? {
            out.utilization_gpu_percent = Some(utilization.gpu);
            out.utilization_memory_percent = Some(utilization.memory);
        }
        if let Some(memory) = opt(device.memory_info())? {
            out.memory_used_bytes = Some(memory.used);
            out.memory_free_bytes = Some(memory.free);
            out.memory_total_bytes = Some(memory.total);
        }
        out.power_milliwatts = opt(device.power_usage())?;
        out.power_limit_milliwatts = opt(device.enforced_power_limit())?;
        out.energy_millijoules = opt(device.total_energy_consumption())?;
        out.temperature_celsius = opt(device.temperature(TemperatureSensor::Gpu))?;
        out.sm_clock_mhz = opt(device.clock_info(Clock::SM))?;
        out.memory_clock_mhz = opt(device.clock_info(Clock::Memory))?;
        out.throttle_reasons = opt(device.current_throttle_reasons())?.map(throttle_reason_names);
        out.pcie_tx_bytes_per_second =
            opt(device.pcie_throughput(PcieUtilCounter::Send))?.map(kib_per_second_to_bytes);
        out.pcie_rx_bytes_per_second =
            opt(device.pcie_throughput(PcieUtilCounter::Receive))?.map(kib_per_second_to_bytes);
        out.pcie_replays = opt(device.pcie_replay_counter())?.map(u64::from);
        out.ecc_corrected =
            opt(device.total_ecc_errors(MemoryError::Corrected, EccCounter::Volatile))?;
        out.ecc_uncorrected =
            opt(device.total_ecc_errors(MemoryError::Uncorrected, EccCounter::Volatile))?;
        out.retired_pages = sum_known(
            opt(device.retired_pages(RetirementCause::MultipleSingleBitEccErrors))?
                .map(|pages| pages.len() as u64),
            opt(device.retired_pages(RetirementCause::DoubleBitEccError))?
                .map(|pages| pages.len() as u64),
        );
        let (correctable, uncorrectable, pending) = remapped_rows(device)?;
        out.remapped_rows = sum_known(correctable, uncorrectable);
        out.remap_pending = pending.map(|value| value != 0);
        out.performance_state = opt(device.performance_state())?.and_then(pstate_number);
        out.processes = opt(device.running_compute_processes())?
            .unwrap_or_default()
            .into_iter()
            .map(process)
            .collect();
        out.process_utilization = self.process_utilization(device, out)?;
        if out.mig_enabled == Some(true) {
            out.mig_devices = read_mig_devices(nvml, device, out.index, gpm)?;
        }
        Ok(())
    }

    /// Process utilization samples newer than the last read's.
    fn process_utilization(
        &mut self,
        device: &Device<'_>,
        out: &readings::Device,
    ) -> Result<Vec<ProcessUtilization>, Lost> {
        let key = if out.uuid.is_empty() {
            format!("index:{}", out.index)
        } else {
            out.uuid.clone()
        };
        let since = self.last_seen_us.get(&key).copied();
        let samples = match device.process_utilization_stats(since) {
            Ok(samples) => samples,
            Err(NvmlError::GpuLost) => return Err(Lost),
            // NotFound: no process used the GPU in the window; NotSupported
            // on MIG and old GPUs.
            Err(_) => return Ok(Vec::new()),
        };
        if let Some(newest) = samples.iter().map(|sample| sample.timestamp).max() {
            self.last_seen_us.insert(key, newest);
        }
        Ok(samples
            .into_iter()
            .map(|sample| ProcessUtilization {
                pid: sample.pid,
                sm_percent: sample.sm_util,
                memory_percent: sample.mem_util,
                timestamp_us: sample.timestamp,
            })
            .collect())
    }

    /// Events the thread queued since the last read.
    fn drain_events(&mut self) -> Vec<Event> {
        let mut events = Vec::new();
        let Some(rx) = &self.events else {
            return events;
        };
        loop {
            match rx.try_recv() {
                Ok(event) => events.push(event),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    // The thread ended (GpuLost or repeated failures) and
                    // said why in the log; stop polling it.
                    self.events = None;
                    break;
                }
            }
        }
        events
    }
}

impl Drop for NvmlBackend {
    fn drop(&mut self) {
        // Not joined: the thread notices within EVENT_WAIT_MS and drops its
        // own `Arc<Nvml>`; joining would block the caller that long.
        self.stop.store(true, Ordering::Relaxed);
    }
}

impl GpuBackend for NvmlBackend {
    fn read(&mut self) -> Result<Frame, GpuError> {
        let nvml = Arc::clone(&self.nvml);
        let count = nvml
            .device_count()
            .map_err(|error| GpuError::Nvml(format!("nvmlDeviceGetCount: {error}")))?;
        let mut frame = Frame {
            time_ms: now_ms(),
            driver_version: nvml.sys_driver_version().ok(),
            devices: Vec::with_capacity(count as usize),
            events: Vec::new(),
        };
        let mut gpm = Vec::new();
        for index in 0..count {
            if let Some(device) = self.read_device(&nvml, index, &mut gpm) {
                frame.devices.push(device);
            }
        }
        finish_gpm(&nvml, gpm, &mut frame.devices);
        frame.events = self.drain_events();
        Ok(frame)
    }

    fn describe(&self) -> String {
        "nvml".to_owned()
    }
}

/// Maps an init failure: no library or no driver is a non-GPU node.
fn init_error(error: NvmlError) -> GpuError {
    match error {
        NvmlError::LibloadingError(_) | NvmlError::DriverNotLoaded => {
            GpuError::NoGpu(error.to_string())
        }
        other => GpuError::Nvml(format!("nvmlInit: {other}")),
    }
}

/// The GPU fell off the bus: stop reading it.
#[derive(Debug)]
struct Lost;

/// A getter's value; any error but `GpuLost` blanks the field only.
fn opt<T>(result: Result<T, NvmlError>) -> Result<Option<T>, Lost> {
    match result {
        Ok(value) => Ok(Some(value)),
        Err(NvmlError::GpuLost) => Err(Lost),
        Err(_) => Ok(None),
    }
}

/// The sum of two counters, or the one that is known, or `None`.
fn sum_known(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    match (a, b) {
        (None, None) => None,
        (a, b) => Some(a.unwrap_or(0).saturating_add(b.unwrap_or(0))),
    }
}

/// Remapped rows (correctable, uncorrectable, pending) through field
/// values: nvml-wrapper 0.13 does not wrap `nvmlDeviceGetRemappedRows`.
type RemappedRows = (Option<u64>, Option<u64>, Option<u64>);

fn remapped_rows(device: &Device<'_>) -> Result<RemappedRows, Lost> {
    let ids = [
        FieldId(NVML_FI_DEV_REMAPPED_COR),
        FieldId(NVML_FI_DEV_REMAPPED_UNC),
        FieldId(NVML_FI_DEV_REMAPPED_PENDING),
    ];
    let Some(values) = opt(device.field_values_for(&ids))? else {
        return Ok((None, None, None));
    };
    let value = |id: u32| {
        values.iter().find_map(|sample| match sample {
            Ok(sample) if sample.field.0 == id => sample.value.as_ref().ok().and_then(sample_u64),
            _ => None,
        })
    };
    Ok((
        value(NVML_FI_DEV_REMAPPED_COR),
        value(NVML_FI_DEV_REMAPPED_UNC),
        value(NVML_FI_DEV_REMAPPED_PENDING),
    ))
}

/// A field value as a count (negative or fractional values are not one).
fn sample_u64(value: &SampleValue) -> Option<u64> {
    match *value {
        SampleValue::U32(v) => Some(u64::from(v)),
        SampleValue::U64(v) => Some(v),
        SampleValue::I64(v) => u64::try_from(v).ok(),
        SampleValue::F64(_) => None,
    }
}

fn process(info: ProcessInfo) -> Process {
    Process {
        pid: info.pid,
        used_memory_bytes: match info.used_gpu_memory {
            UsedGpuMemory::Used(bytes) => Some(bytes),
            UsedGpuMemory::Unavailable => None,
        },
        gpu_instance_id: info.gpu_instance_id,
        compute_instance_id: info.compute_instance_id,
    }
}

/// Active throttle (clock event) reasons as snake-case names.
pub fn throttle_reason_names(reasons: ThrottleReasons) -> Vec<String> {
    THROTTLE_NAMES
        .iter()
        .filter(|(flag, _)| reasons.contains(*flag))
        .map(|(_, name)| (*name).to_owned())
        .collect()
}

/// P0..P15 as 0..15; `None` for NVML's "unknown".
pub fn pstate_number(state: PerformanceState) -> Option<u32> {
    use PerformanceState::*;
    Some(match state {
        Zero => 0,
        One => 1,
        Two => 2,
        Three => 3,
        Four => 4,
        Five => 5,
        Six => 6,
        Seven => 7,
        Eight => 8,
        Nine => 9,
        Ten => 10,
        Eleven => 11,
        Twelve => 12,
        Thirteen => 13,
        Fourteen => 14,
        Fifteen => 15,
        Unknown => return None,
    })
}

/// NVML's PCIe throughput "KB/s" in bytes per second. NVML's KB are
/// 1024 bytes (nvitop reports the same value as KiB/s).
pub fn kib_per_second_to_bytes(kib_per_second: u32) -> u64 {
    u64::from(kib_per_second) * 1024
}

/// A GPM percentage (0..100) as a ratio (0..1); `None` when not finite.
pub fn percent_to_ratio(percent: f64) -> Option<f64> {
    percent
        .is_finite()
        .then(|| (percent / 100.0).clamp(0.0, 1.0))
}

/// The MIG profile in a MIG device's name, e.g. `1g.10gb` in
/// `NVIDIA H100 80GB HBM3 MIG 1g.10gb` or `1c.2g.20gb` for a compute
/// instance smaller than its GPU instance.
pub fn mig_profile_from_name(name: &str) -> Option<String> {
    let (_, rest) = name.rsplit_once("MIG ")?;
    let token = rest.split_whitespace().next()?;
    is_mig_profile(token).then(|| token.to_owned())
}

/// `[Nc.]Ng.Mgb`, optionally with a suffix such as `+me` or `-me`.
fn is_mig_profile(token: &str) -> bool {
    let core = token.split(['+', '-']).next().unwrap_or_default();
    let Some(memory) = core.strip_suffix("gb") else {
        return false;
    };
    let parts: Vec<&str> = memory.split('.').collect();
    let number = |s: &str, unit: char| {
        s.strip_suffix(unit)
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    match parts.as_slice() {
        [gpu, memory] => number(gpu, 'g') && digits(memory),
        [compute, gpu, memory] => number(compute, 'c') && number(gpu, 'g') && digits(memory),
        _ => false,
    }
}

/// A profile name from the MIG device's attributes, when its name has
/// none: slices and memory rounded up to GB (NVIDIA's names round up:
/// 4864 MiB is `1g.5gb` on an A100 40GB).
pub fn mig_profile_from_attributes(
    gpu_instance_slices: u32,
    compute_instance_slices: u32,
    memory_mib: u64,
) -> String {
    let gb = memory_mib.div_ceil(1024);
    if compute_instance_slices > 0 && compute_instance_slices < gpu_instance_slices {
        format!("{compute_instance_slices}c.{gpu_instance_slices}g.{gb}gb")
    } else {
        format!("{gpu_instance_slices}g.{gb}gb")
    }
}

/// A first GPM sample of a MIG GPU instance, waiting for its second.
struct GpmPending<'n> {
    parent: u32,
    gpu_instance_id: u32,
    first: GpmSample<'n>,
}

/// The MIG devices of a MIG-enabled GPU, enumerated afresh (handles are
/// invalidated by a reconfiguration). Starts a GPM window per GPU
/// instance on GPUs with GPM (Hopper and newer).
fn read_mig_devices<'n>(
    nvml: &'n Nvml,
    parent: &Device<'n>,
    parent_index: u32,
    gpm: &mut Vec<GpmPending<'n>>,
) -> Result<Vec<MigDevice>, Lost> {
    let Some(max) = opt(parent.mig_device_count())? else {
        return Ok(Vec::new());
    };
    let gpm_supported = matches!(parent.gpm_support(), Ok(true));
    let mut sampled = HashSet::new();
    let mut out = Vec::new();
    for slot in 0..max {
        let mig = match parent.mig_device_by_index(slot) {
            Ok(mig) => mig,
            Err(NvmlError::GpuLost) => return Err(Lost),
            // NotFound: an empty slot (the count is the maximum).
            Err(_) => continue,
        };
        let (gpu_instance, compute_instance) = mig_instance_ids(nvml, &mig);
        let gpu_instance_id = opt(gpu_instance)?;
        let compute_instance_id = opt(compute_instance)?;
        let mut profile = opt(mig.name())?.as_deref().and_then(mig_profile_from_name);
        if profile.is_none() {
            profile = opt(mig.attributes())?.map(|a| {
                mig_profile_from_attributes(
                    a.gpu_instance_slice_count,
                    a.compute_instance_slice_count,
                    a.memory_size_mb,
                )
            });
        }
        let memory = opt(mig.memory_info())?;
        if let Some(gi) = gpu_instance_id
            && gpm_supported
            && sampled.insert(gi)
            && let Ok(first) = parent.gpm_mig_sample(gi)
        {
            gpm.push(GpmPending {
                parent: parent_index,
                gpu_instance_id: gi,
                first,
            });
        }
        out.push(MigDevice {
            uuid: opt(mig.uuid())?.unwrap_or_default(),
            gpu_instance_id: gpu_instance_id.unwrap_or(UNKNOWN_INSTANCE_ID),
            compute_instance_id: compute_instance_id.unwrap_or(UNKNOWN_INSTANCE_ID),
            profile: profile.unwrap_or_default(),
            memory_used_bytes: memory.as_ref().map(|m| m.used),
            memory_total_bytes: memory.as_ref().map(|m| m.total),
            sm_activity: None,
            tensor_activity: None,
            dram_bandwidth: None,
        });
    }
    Ok(out)
}

/// Closes every GPM window opened by this read (one shared wait) and puts
/// the activities on the MIG devices of each GPU instance.
fn finish_gpm(nvml: &Nvml, pending: Vec<GpmPending<'_>>, devices: &mut [readings::Device]) {
    if pending.is_empty() {
        return;
    }
    std::thread::sleep(GPM_WINDOW);
    for window in pending {
        let Ok(parent) = nvml.device_by_index(window.parent) else {
            continue;
        };
        let Ok(second) = parent.gpm_mig_sample(window.gpu_instance_id) else {
            continue;
        };
        let Ok(results) = gpm_metrics_get(nvml, &window.first, &second, &GPM_METRICS) else {
            continue;
        };
        let value = |position: usize| {
            results
                .get(position)
                .and_then(|result| result.as_ref().ok())
                .and_then(|metric| percent_to_ratio(metric.value))
        };
        let migs = devices
            .iter_mut()
            .filter(|device| device.index == window.parent)
            .flat_map(|device| device.mig_devices.iter_mut())
            .filter(|mig| mig.gpu_instance_id == window.gpu_instance_id);
        for mig in migs {
            apply_gpm(mig, value(0), value(1), value(2));
        }
    }
}

fn apply_gpm(mig: &mut MigDevice, sm: Option<f64>, tensor: Option<f64>, dram: Option<f64>) {
    mig.sm_activity = sm;
    mig.tensor_activity = tensor;
    mig.dram_bandwidth = dram;
}

/// The GPU and compute instance ids of a MIG device handle. nvml-wrapper
/// 0.13 wraps neither `nvmlDeviceGetGpuInstanceId` nor
/// `nvmlDeviceGetComputeInstanceId`, and MIG attribution needs both
/// (processes name their instance by these ids), so this calls the
/// library's symbols directly, through nvml-wrapper's loaded table.
#[allow(unsafe_code)]
fn mig_instance_ids(
    nvml: &Nvml,
    mig: &Device<'_>,
) -> (Result<u32, NvmlError>, Result<u32, NvmlError>) {
    let lib = nvml.lib();
    // SAFETY: the raw handle is only passed to the two NVML calls below,
    // while `mig` (and the `Nvml` that owns the library) is alive; nothing
    // here frees it or keeps it.
    let handle = unsafe { mig.handle() };
    let gpu_instance = nvml_sym(lib.nvmlDeviceGetGpuInstanceId.as_ref()).and_then(|get| {
        let mut id: u32 = 0;
        // SAFETY: `get` is nvmlDeviceGetGpuInstanceId, resolved from the
        // loaded library with nvml.h's signature `(nvmlDevice_t, unsigned
        // int *)`; `handle` is a live device handle and `id` a valid,
        // writable `unsigned int` for the duration of the call.
        nvml_try(unsafe { get(handle, &mut id) }).map(|()| id)
    });
    let compute_instance = nvml_sym(lib.nvmlDeviceGetComputeInstanceId.as_ref()).and_then(|get| {
        let mut id: u32 = 0;
        // SAFETY: as above, for nvmlDeviceGetComputeInstanceId (same
        // signature).
        nvml_try(unsafe { get(handle, &mut id) }).map(|()| id)
    });
    (gpu_instance, compute_instance)
}

/// The event kind for an NVML event type (`None` for types not asked for).
pub fn event_kind(event_type: EventTypes) -> Option<&'static str> {
    const KINDS: [(EventTypes, &str); 6] = [
        (EventTypes::CRITICAL_XID_ERROR, "xid"),
        (EventTypes::SINGLE_BIT_ECC_ERROR, "ecc_single_bit"),
        (EventTypes::DOUBLE_BIT_ECC_ERROR, "ecc_double_bit"),
        (EventTypes::PSTATE_CHANGE, "pstate"),
        (EventTypes::CLOCK_CHANGE, "clock"),
        (EventTypes::POWER_SOURCE_CHANGE, "power_source"),
    ];
    KINDS
        .iter()
        .find(|(flag, _)| event_type.contains(*flag))
        .map(|(_, kind)| *kind)
}

/// The XID number NVML gives for an unknown XID.
const XID_UNKNOWN: u64 = 999;

fn to_event(data: &EventData<'_>) -> Option<Event> {
    let kind = event_kind(data.event_type)?;
    let value = match data.event_data {
        Some(XidError::Value(xid)) => xid,
        Some(XidError::Unknown) => XID_UNKNOWN,
        None => 0,
    };
    Some(Event {
        uuid: data.device.uuid().unwrap_or_default(),
        kind: kind.to_owned(),
        data: value,
        time_ms: now_ms(),
    })
}

/// Starts the event thread; `None` (logged) when it cannot start.
fn spawn_event_thread(nvml: Arc<Nvml>, stop: Arc<AtomicBool>) -> Option<Receiver<Event>> {
    let (tx, rx) = mpsc::sync_channel(EVENT_QUEUE);
    let spawned = std::thread::Builder::new()
        .name("tally-gpu-events".to_owned())
        .spawn(move || event_loop(&nvml, &stop, &tx));
    match spawned {
        Ok(_) => Some(rx),
        Err(error) => {
            tracing::warn!(source = "gpu", %error, "cannot start the gpu event thread; no gpu events");
            None
        }
    }
}

/// Waits on the event set until the backend drops, a GPU is lost, or
/// NVML keeps failing.
fn event_loop(nvml: &Nvml, stop: &AtomicBool, tx: &SyncSender<Event>) {
    let Some(set) = register_events(nvml) else {
        tracing::debug!(source = "gpu", "no gpu supports nvml events");
        return;
    };
    let mut failures = 0;
    while !stop.load(Ordering::Relaxed) {
        match set.wait(EVENT_WAIT_MS) {
            Ok(data) => {
                failures = 0;
                let Some(event) = to_event(&data) else {
                    continue;
                };
                if event.kind == "xid" {
                    tracing::warn!(
                        source = "gpu",
                        uuid = event.uuid,
                        xid = event.data,
                        "gpu xid error"
                    );
                }
                match tx.try_send(event) {
                    Ok(()) | Err(TrySendError::Full(_)) => {}
                    Err(TrySendError::Disconnected(_)) => return,
                }
            }
            Err(NvmlError::Timeout) => failures = 0,
            Err(NvmlError::GpuLost) => {
                tracing::error!(
                    source = "gpu",
                    kind = "gpu_lost",
                    "a gpu fell off the bus; gpu events stop"
                );
                return;
            }
            Err(error) => {
                failures += 1;
                if failures >= EVENT_MAX_FAILURES {
                    tracing::warn!(source = "gpu", %error, "nvml event wait keeps failing; gpu events stop");
                    return;
                }
                std::thread::sleep(Duration::from_millis(u64::from(EVENT_WAIT_MS)));
            }
        }
    }
}

/// One event set with every GPU that supports any wanted event. A failed
/// registration frees the whole set (nvml-wrapper), so the set is built
/// again without that GPU.
fn register_events(nvml: &Nvml) -> Option<EventSet<'_>> {
    let count = nvml.device_count().ok()?;
    let mut wanted: Vec<(u32, EventTypes)> = (0..count)
        .filter_map(|index| {
            let device = nvml.device_by_index(index).ok()?;
            let types = device.supported_event_types().ok()? & WANTED_EVENTS;
            (!types.is_empty()).then_some((index, types))
        })
        .collect();
    while !wanted.is_empty() {
        match register_set(nvml, &wanted) {
            Ok(set) => return Some(set),
            Err(Some(position)) => {
                let (index, _) = wanted.remove(position);
                tracing::warn!(
                    source = "gpu",
                    gpu = index,
                    "cannot register nvml events for gpu"
                );
            }
            Err(None) => return None,
        }
    }
    None
}

/// A set with `wanted` registered, or the position that failed (`None`
/// when no set can be created at all).
fn register_set<'n>(
    nvml: &'n Nvml,
    wanted: &[(u32, EventTypes)],
) -> Result<EventSet<'n>, Option<usize>> {
    let mut set = nvml.create_event_set().map_err(|_| None)?;
    for (position, &(index, types)) in wanted.iter().enumerate() {
        let device = nvml.device_by_index(index).map_err(|_| Some(position))?;
        set = device
            .register_events(types, set)
            .map_err(|_| Some(position))?;
    }
    Ok(set)
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| {
            u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The real NVML path on a machine without the NVIDIA driver (this one,
    /// CI): `libnvidia-ml.so.1` cannot be opened, which is a non-GPU node.
    /// On a GPU machine the backend starts instead and reads a frame.
    #[test]
    fn no_driver_is_no_gpu() {
        match NvmlBackend::new() {
            Err(error) => {
                assert_eq!(error.kind(), "no_gpu", "{error}");
                let GpuError::NoGpu(text) = &error else {
                    panic!("not NoGpu: {error:?}");
                };
                assert!(text.contains("libnvidia-ml.so"), "{text}");
                assert!(text.contains("libloading"), "{text}");
            }
            Ok(mut backend) => {
                println!("SKIP no_driver_is_no_gpu: NVML is present here");
                let frame = backend.read().expect("a frame from a real GPU");
                assert_eq!(backend.describe(), "nvml");
                assert!(frame.time_ms > 0);
            }
        }
    }

    #[test]
    fn init_errors_map_to_kinds() {
        assert_eq!(init_error(NvmlError::DriverNotLoaded).kind(), "no_gpu");
        assert_eq!(init_error(NvmlError::NoPermission).kind(), "nvml");
        assert_eq!(init_error(NvmlError::LibRmVersionMismatch).kind(), "nvml");
    }

    #[test]
    fn throttle_reasons_become_names() {
        // 0x1 | 0x4 | 0x40: idle, software power cap, hardware thermal.
        let reasons = ThrottleReasons::from_bits_truncate(0x45);
        assert_eq!(
            throttle_reason_names(reasons),
            ["gpu_idle", "sw_power_cap", "hw_thermal_slowdown"]
        );
        assert!(throttle_reason_names(ThrottleReasons::NONE).is_empty());
        // All nine known bits (0x1ff), each named once: the deprecated
        // USER_DEFINED_CLOCKS alias of 0x2 adds no second name.
        let all = throttle_reason_names(ThrottleReasons::from_bits_truncate(0x1ff));
        // The names the source reports, in its order.
        assert_eq!(all, crate::sources::gpu::THROTTLE_REASONS);
        // 0x100 display clock plus 0x8 hardware slowdown.
        assert_eq!(
            throttle_reason_names(ThrottleReasons::from_bits_truncate(0x108)),
            ["hw_slowdown", "display_clock_setting"]
        );
    }

    #[test]
    fn pstates_are_numbers() {
        assert_eq!(pstate_number(PerformanceState::Zero), Some(0));
        assert_eq!(pstate_number(PerformanceState::Eight), Some(8));
        assert_eq!(pstate_number(PerformanceState::Fifteen), Some(15));
        assert_eq!(pstate_number(PerformanceState::Unknown), None);
    }

    #[test]
    fn pcie_kib_per_second_become_bytes() {
        assert_eq!(kib_per_second_to_bytes(0), 0);
        assert_eq!(kib_per_second_to_bytes(1), 1024);
        // 25 000 KB/s = 25 600 000 B/s.
        assert_eq!(kib_per_second_to_bytes(25_000), 25_600_000);
        // u32::MAX KB/s does not overflow: 4 294 967 295 × 1024.
        assert_eq!(kib_per_second_to_bytes(u32::MAX), 4_398_046_510_080);
    }

    #[test]
    fn gpm_percentages_become_ratios() {
        assert_eq!(percent_to_ratio(0.0), Some(0.0));
        assert_eq!(percent_to_ratio(50.0), Some(0.5));
        assert_eq!(percent_to_ratio(100.0), Some(1.0));
        assert_eq!(percent_to_ratio(100.4), Some(1.0));
        assert_eq!(percent_to_ratio(f64::NAN), None);
    }

    #[test]
    fn mig_profiles_from_names() {
        let cases = [
            ("NVIDIA A100-SXM4-40GB MIG 1g.5gb", Some("1g.5gb")),
            ("NVIDIA H100 80GB HBM3 MIG 3g.40gb", Some("3g.40gb")),
            ("NVIDIA H100 80GB HBM3 MIG 1g.10gb+me", Some("1g.10gb+me")),
            ("NVIDIA A100-SXM4-80GB MIG 1c.2g.20gb", Some("1c.2g.20gb")),
            ("NVIDIA H200 MIG 7g.141gb", Some("7g.141gb")),
            ("NVIDIA H100 80GB HBM3", None),
            ("NVIDIA H100 MIG", None),
            ("NVIDIA H100 MIG 1x.10gb", None),
            ("NVIDIA H100 MIG g.10gb", None),
        ];
        for (name, want) in cases {
            assert_eq!(mig_profile_from_name(name).as_deref(), want, "{name}");
        }
    }

    #[test]
    fn mig_profiles_from_attributes() {
        // A100 40GB 1g.5gb: 4864 MiB = 4.75 GiB, rounded up to 5.
        assert_eq!(mig_profile_from_attributes(1, 1, 4864), "1g.5gb");
        // 3g.40gb on an A100 80GB: 40192 MiB = 39.25 GiB → 40.
        assert_eq!(mig_profile_from_attributes(3, 3, 40192), "3g.40gb");
        // One compute slice of a 2-slice instance with 19968 MiB (19.5 GiB).
        assert_eq!(mig_profile_from_attributes(2, 1, 19968), "1c.2g.20gb");
    }

    #[test]
    fn event_kinds() {
        assert_eq!(event_kind(EventTypes::CRITICAL_XID_ERROR), Some("xid"));
        assert_eq!(
            event_kind(EventTypes::SINGLE_BIT_ECC_ERROR),
            Some("ecc_single_bit")
        );
        assert_eq!(
            event_kind(EventTypes::DOUBLE_BIT_ECC_ERROR),
            Some("ecc_double_bit")
        );
        assert_eq!(event_kind(EventTypes::PSTATE_CHANGE), Some("pstate"));
        assert_eq!(event_kind(EventTypes::CLOCK_CHANGE), Some("clock"));
        assert_eq!(
            event_kind(EventTypes::POWER_SOURCE_CHANGE),
            Some("power_source")
        );
        assert_eq!(event_kind(EventTypes::MIG_CONFIG_CHANGE), None);
    }

    #[test]
    fn counters_sum_what_is_known() {
        assert_eq!(sum_known(None, None), None);
        assert_eq!(sum_known(Some(2), None), Some(2));
        assert_eq!(sum_known(Some(2), Some(3)), Some(5));
        assert_eq!(sample_u64(&SampleValue::I64(-1)), None);
        assert_eq!(sample_u64(&SampleValue::U32(7)), Some(7));
    }

    #[test]
    fn processes_keep_mig_ids() {
        let info = ProcessInfo {
            pid: 4242,
            used_gpu_memory: UsedGpuMemory::Used(268_435_456),
            gpu_instance_id: Some(7),
            compute_instance_id: Some(0),
        };
        assert_eq!(
            process(info),
            Process {
                pid: 4242,
                used_memory_bytes: Some(268_435_456),
                gpu_instance_id: Some(7),
                compute_instance_id: Some(0),
            }
        );
    }
}
