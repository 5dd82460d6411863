//! `tally gpu-check`: on a machine with an NVIDIA GPU, reads NVML once a
//! second under a small GPU load, prints which fields NVML answered per
//! GPU and MIG instance, checks that the load's PID is attributed (GPU
//! memory and SM utilization), and writes the frames as a replay fixture
//! for the tests that run without a GPU. Without a GPU it says so and
//! succeeds, so it is safe to run anywhere.

use std::collections::BTreeMap;
use std::io::{BufRead as _, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::sources::gpu::backend::{GpuBackend, GpuError};
use crate::sources::gpu::nvml::NvmlBackend;
use crate::sources::gpu::readings::{Device, FIXTURE_VERSION, Frame, Recording};

/// Seconds of readings unless told otherwise.
pub const DEFAULT_SECONDS: u64 = 60;
/// The most seconds of readings: with the load's start (at most
/// [`LOAD_START_TIMEOUT`]) the check stays under 5 minutes.
pub const MAX_SECONDS: u64 = 180;
/// Frames kept in the fixture; the rest are merged into their neighbours.
pub const MAX_FIXTURE_FRAMES: usize = 30;
/// GPU memory the load holds: enough to stand out in `processes`.
const LOAD_BYTES: usize = 256 << 20;
/// How long a Python load may take to import and allocate.
const LOAD_START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the built-in CUDA load may take to allocate.
const CUDA_START_TIMEOUT: Duration = Duration::from_secs(30);
/// Fields that name a GPU rather than measure it.
const DEVICE_IDENTITY: [&str; 5] = ["index", "uuid", "name", "pci_bus_id", "lost"];
/// Per-GPU lists, reported by how often they had entries.
const DEVICE_LISTS: [&str; 3] = ["processes", "process_utilization", "mig_devices"];
/// Fields that name a MIG instance.
const MIG_IDENTITY: [&str; 4] = ["uuid", "gpu_instance_id", "compute_instance_id", "profile"];

/// The Python load: torch, else cupy; ~256 MiB and matmuls until the
/// deadline (argv[1] seconds). Prints `READY <kind>` once running, or
/// `NOLOAD <why>` and exits 3.
const PYTHON_LOAD: &str = r#"
import sys, time
end = time.time() + float(sys.argv[1])
try:
    import torch
    if not torch.cuda.is_available():
        raise RuntimeError("torch sees no CUDA device")
    a = torch.randn(8192, 8192, device="cuda")
    sync = torch.cuda.synchronize
    kind = "torch"
except Exception as torch_error:
    try:
        import cupy
        a = cupy.random.rand(8192, 8192, dtype=cupy.float32)
        sync = cupy.cuda.Device().synchronize
        kind = "cupy"
    except Exception as cupy_error:
        print("NOLOAD torch: %s; cupy: %s" % (torch_error, cupy_error), flush=True)
        sys.exit(3)
print("READY", kind, flush=True)
while time.time() < end:
    b = a @ a
    sync()
"#;

/// What to run.
#[derive(Debug, Clone)]
pub struct Options {
    /// Seconds of readings, one frame a second (clamped to 1..=[`MAX_SECONDS`]).
    pub seconds: u64,
    /// The fixture to write; [`default_fixture_path`] when `None`.
    pub out: Option<PathBuf>,
}

/// How the check ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Not a GPU machine (no NVML library or driver, or no GPU visible).
    NoGpu(String),
    /// Readings taken and the fixture written.
    Checked {
        /// The fixture.
        fixture: PathBuf,
        /// Whether the load's PID showed up.
        attribution: Attribution,
    },
}

/// Why the check could not finish.
#[derive(Debug, thiserror::Error)]
pub enum GpuCheckError {
    /// NVML failed at start or on every read.
    #[error("{0}")]
    Gpu(#[from] GpuError),
    /// The fixture cannot be written.
    #[error("cannot write fixture {path}: {source}")]
    Write {
        /// The fixture path.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The report cannot be printed.
    #[error("cannot print the report: {0}")]
    Print(#[from] std::io::Error),
}

/// Runs the check, printing the report to `out`.
///
/// # Errors
/// NVML failing outright (not its absence), or the fixture or report
/// cannot be written.
pub fn run(options: &Options, out: &mut dyn Write) -> Result<Outcome, GpuCheckError> {
    let seconds = options.seconds.clamp(1, MAX_SECONDS);
    let mut backend = match NvmlBackend::new() {
        Ok(backend) => backend,
        Err(GpuError::NoGpu(why)) => {
            writeln!(out, "gpu-check: no NVIDIA GPU here ({why})")?;
            writeln!(out, "status: no GPU")?;
            return Ok(Outcome::NoGpu(why));
        }
        Err(error) => return Err(error.into()),
    };
    let first = backend.read()?;
    if first.devices.is_empty() {
        let why = "NVML loaded but sees no GPU".to_owned();
        writeln!(out, "gpu-check: {why}")?;
        writeln!(out, "status: no GPU")?;
        return Ok(Outcome::NoGpu(why));
    }
    for device in &first.devices {
        writeln!(
            out,
            "gpu-check: GPU {} {} {} (driver {})",
            device.index,
            device.name,
            device.uuid,
            first.driver_version.as_deref().unwrap_or("unknown")
        )?;
    }

    // The load runs a little past the readings so it is there for all.
    let load = Load::start(seconds + 10, out)?;
    writeln!(out, "gpu-check: reading NVML once a second for {seconds} s")?;
    let mut frames = vec![first];
    let mut errors = 0u64;
    let start = Instant::now();
    for tick in 1..=seconds {
        let due = start + Duration::from_secs(tick);
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
        match backend.read() {
            Ok(frame) => frames.push(frame),
            Err(error) => {
                errors += 1;
                tracing::warn!(source = "gpu", %error, "gpu-check read failed");
            }
        }
    }
    let load_kind = load.kind.clone();
    let load_pid = load.pid;
    drop(load);

    let attribution = load_pid.map_or_else(Attribution::default, |pid| attribution(&frames, pid));
    write!(
        out,
        "{}",
        report(&frames, load_kind.as_str(), load_pid, &attribution)
    )?;
    if errors > 0 {
        writeln!(out, "reads failed: {errors} of {seconds}")?;
    }

    let model = frames
        .iter()
        .flat_map(|frame| frame.devices.iter())
        .map(|device| device.name.as_str())
        .find(|name| !name.is_empty())
        .unwrap_or("unknown")
        .to_owned();
    let driver = frames
        .iter()
        .find_map(|frame| frame.driver_version.clone())
        .unwrap_or_else(|| "unknown".to_owned());
    let path = options
        .out
        .clone()
        .unwrap_or_else(|| default_fixture_path(&model, &driver));
    let read = frames.len();
    let frames = downsample(frames, MAX_FIXTURE_FRAMES);
    let host = sysinfo::System::host_name().unwrap_or_else(|_| "unknown".to_owned());
    let recording = Recording {
        version: FIXTURE_VERSION,
        source: "nvml".to_owned(),
        description: format!(
            "{model}, driver {driver}, host {host}; written by `tally gpu-check`: load {} \
             (pid {}); {read} frames read 1 s apart, {} kept (utilization samples and \
             events of dropped frames are merged into the next kept one)",
            load_kind.as_str(),
            load_pid.map_or_else(|| "none".to_owned(), |pid| pid.to_string()),
            frames.len()
        ),
        frames,
    };
    write_fixture(&path, &recording)?;
    writeln!(
        out,
        "fixture: {} ({} frames)",
        path.display(),
        recording.frames.len()
    )?;
    Ok(Outcome::Checked {
        fixture: path,
        attribution,
    })
}

fn write_fixture(path: &Path, recording: &Recording) -> Result<(), GpuCheckError> {
    let failed = |source| GpuCheckError::Write {
        path: path.display().to_string(),
        source,
    };
    if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(failed)?;
    }
    let mut json = serde_json::to_string_pretty(recording).map_err(|e| failed(e.into()))?;
    json.push('\n');
    std::fs::write(path, json).map_err(failed)
}

/// `agent/tests/fixtures/gpu/nvml-<model-slug>-<driver>.json`, relative to
/// the repository root the script runs in.
pub fn default_fixture_path(model: &str, driver: &str) -> PathBuf {
    PathBuf::from(format!(
        "agent/tests/fixtures/gpu/nvml-{}-{}.json",
        slug(model),
        slug(driver)
    ))
}

/// Lowercase ASCII letters, digits and dots; anything else becomes one `-`.
pub fn slug(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_ascii_alphanumeric() || c == '.' {
            out.push(c.to_ascii_lowercase());
        } else if !out.is_empty() && !out.ends_with('-') {
            out.push('-');
        }
    }
    while out.ends_with('-') {
        out.pop();
    }
    if out.is_empty() {
        "unknown".to_owned()
    } else {
        out
    }
}

/// At most `max` frames, evenly spaced, always ending with the last one.
/// Utilization samples and events of a dropped frame move to the next kept
/// one, so nothing "since the last read" is lost.
pub fn downsample(frames: Vec<Frame>, max: usize) -> Vec<Frame> {
    if max == 0 || frames.len() <= max {
        return frames;
    }
    let stride = frames.len().div_ceil(max);
    let last = frames.len() - 1;
    let mut kept = Vec::with_capacity(max);
    let mut carried: Option<Frame> = None;
    for (position, mut frame) in frames.into_iter().enumerate() {
        if let Some(dropped) = carried.take() {
            merge_into(&mut frame, dropped);
        }
        if (position + 1) % stride == 0 || position == last {
            kept.push(frame);
        } else {
            carried = Some(frame);
        }
    }
    kept
}

/// Puts `earlier`'s events and utilization samples before `frame`'s own.
fn merge_into(frame: &mut Frame, earlier: Frame) {
    let mut events = earlier.events;
    events.append(&mut frame.events);
    frame.events = events;
    for old in earlier.devices {
        let Some(device) = frame
            .devices
            .iter_mut()
            .find(|device| device.index == old.index && device.uuid == old.uuid)
        else {
            continue;
        };
        let mut samples = old.process_utilization;
        samples.append(&mut device.process_utilization);
        device.process_utilization = samples;
    }
}

/// Where the load's PID showed up.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Attribution {
    /// GPU index and the most GPU memory seen for the PID in `processes`.
    pub memory: Option<(u32, u64)>,
    /// GPU index and the highest SM % seen for the PID in
    /// `process_utilization`.
    pub sm_percent: Option<(u32, u32)>,
    /// Every compute PID NVML listed (to spot a PID-namespace mismatch).
    pub pids_seen: Vec<u32>,
}

/// Looks for `pid` in every frame's processes and utilization samples.
pub fn attribution(frames: &[Frame], pid: u32) -> Attribution {
    let mut found = Attribution::default();
    for device in frames.iter().flat_map(|frame| frame.devices.iter()) {
        for process in &device.processes {
            if !found.pids_seen.contains(&process.pid) {
                found.pids_seen.push(process.pid);
            }
            if process.pid == pid {
                let bytes = process.used_memory_bytes.unwrap_or(0);
                if found.memory.is_none_or(|(_, most)| bytes > most) {
                    found.memory = Some((device.index, bytes));
                }
            }
        }
        for sample in device.process_utilization.iter().filter(|s| s.pid == pid) {
            if found
                .sm_percent
                .is_none_or(|(_, most)| sample.sm_percent > most)
            {
                found.sm_percent = Some((device.index, sample.sm_percent));
            }
        }
    }
    found.pids_seen.sort_unstable();
    found
}

/// The printed report: per GPU and MIG instance, which fields NVML
/// answered; event counts; the attribution check and a status line.
pub fn report(
    frames: &[Frame],
    load: &str,
    load_pid: Option<u32>,
    attribution: &Attribution,
) -> String {
    let mut text = String::new();
    let mut gpus: BTreeMap<(u32, String), Vec<&Device>> = BTreeMap::new();
    for device in frames.iter().flat_map(|frame| frame.devices.iter()) {
        gpus.entry((device.index, device.uuid.clone()))
            .or_default()
            .push(device);
    }
    for ((index, uuid), readings) in &gpus {
        let name = readings.first().map_or("", |device| device.name.as_str());
        let pci = readings
            .first()
            .map_or("", |device| device.pci_bus_id.as_str());
        text.push_str(&format!(
            "\nGPU {index}  {name}  {uuid}  {pci}  ({} frames)\n",
            readings.len()
        ));
        let lost = readings.iter().filter(|device| device.lost).count();
        if lost > 0 {
            text.push_str(&format!("  LOST (GpuLost) in {lost} frames\n"));
        }
        let values: Vec<Value> = readings
            .iter()
            .filter_map(|device| serde_json::to_value(device).ok())
            .collect();
        text.push_str(&support_lines(
            &values,
            &DEVICE_IDENTITY,
            &DEVICE_LISTS,
            "  ",
        ));
        for list in DEVICE_LISTS {
            let with = values
                .iter()
                .filter(|value| value[list].as_array().is_some_and(|a| !a.is_empty()))
                .count();
            text.push_str(&format!(
                "  {list:<36} entries in {with} of {} frames\n",
                values.len()
            ));
        }
        let mut migs: BTreeMap<String, Vec<Value>> = BTreeMap::new();
        for mig in readings.iter().flat_map(|device| device.mig_devices.iter()) {
            if let Ok(value) = serde_json::to_value(mig) {
                migs.entry(mig.uuid.clone()).or_default().push(value);
            }
        }
        for (mig_uuid, values) in &migs {
            let first = &values[0];
            text.push_str(&format!(
                "  MIG {}  {mig_uuid}  GI {} CI {}  ({} frames)\n",
                first["profile"].as_str().unwrap_or(""),
                first["gpu_instance_id"],
                first["compute_instance_id"],
                values.len()
            ));
            text.push_str(&support_lines(values, &MIG_IDENTITY, &[], "    "));
        }
    }

    let mut events: BTreeMap<&str, usize> = BTreeMap::new();
    for event in frames.iter().flat_map(|frame| frame.events.iter()) {
        *events.entry(event.kind.as_str()).or_default() += 1;
    }
    if events.is_empty() {
        text.push_str("\nevents: none\n");
    } else {
        let counts: Vec<String> = events
            .iter()
            .map(|(kind, count)| format!("{kind} {count}"))
            .collect();
        text.push_str(&format!("\nevents: {}\n", counts.join(", ")));
    }

    let status = match load_pid {
        None => {
            text.push_str(&format!(
                "\nattribution: not checked (no GPU load: {load})\n"
            ));
            "ok, without a load"
        }
        Some(pid) => {
            text.push_str(&format!("\nattribution of the load ({load}, pid {pid}):\n"));
            text.push_str(&match attribution.memory {
                Some((gpu, bytes)) => {
                    format!("  ok       GPU memory (processes): GPU {gpu}, {bytes} bytes\n")
                }
                None => format!(
                    "  MISSING  GPU memory (processes): pid not listed; PIDs seen: {:?} \
                     (NVML gives host PIDs: in a container without the host PID \
                     namespace they differ)\n",
                    attribution.pids_seen
                ),
            });
            text.push_str(&match attribution.sm_percent {
                Some((gpu, percent)) => format!(
                    "  ok       SM utilization (process_utilization): GPU {gpu}, up to {percent} %\n"
                ),
                None => "  MISSING  SM utilization (process_utilization): no sample for the pid\n"
                    .to_owned(),
            });
            match (attribution.memory, attribution.sm_percent) {
                (Some(_), Some(_)) => "ok",
                (Some(_), None) => "ok, memory attributed, no SM samples",
                _ => "attribution failed",
            }
        }
    };
    text.push_str(&format!("status: {status}\n"));
    text
}

/// `supported` / `not supported` per field over every reading of one GPU
/// or MIG instance, with the last value seen.
fn support_lines(values: &[Value], identity: &[&str], lists: &[&str], indent: &str) -> String {
    let mut fields: BTreeMap<&str, Option<&Value>> = BTreeMap::new();
    for value in values {
        let Some(object) = value.as_object() else {
            continue;
        };
        for (key, field) in object {
            if identity.contains(&key.as_str()) || lists.contains(&key.as_str()) {
                continue;
            }
            let entry = fields.entry(key.as_str()).or_default();
            if !field.is_null() {
                *entry = Some(field);
            }
        }
    }
    let mut text = String::new();
    for (key, last) in fields {
        match last {
            Some(value) => {
                let mut shown = value.to_string();
                if shown.len() > 60 {
                    shown.truncate(57);
                    shown.push_str("...");
                }
                text.push_str(&format!("{indent}supported      {key:<28} {shown}\n"));
            }
            None => text.push_str(&format!("{indent}not supported  {key}\n")),
        }
    }
    text
}

/// The running GPU load; stopped on drop.
struct Load {
    kind: String,
    pid: Option<u32>,
    child: Option<Child>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Load {
    /// A Python load (torch, else cupy), else the built-in CUDA load,
    /// else none; says which.
    fn start(seconds: u64, out: &mut dyn Write) -> std::io::Result<Load> {
        match python_load(seconds) {
            Ok((child, kind)) => {
                let pid = child.id();
                writeln!(out, "gpu-check: load: {kind} matmuls in pid {pid}")?;
                return Ok(Load {
                    kind,
                    pid: Some(pid),
                    child: Some(child),
                    stop: Arc::new(AtomicBool::new(false)),
                    thread: None,
                });
            }
            Err(why) => writeln!(out, "gpu-check: no Python GPU load ({why})")?,
        }
        let stop = Arc::new(AtomicBool::new(false));
        match start_cuda_load(Arc::clone(&stop)) {
            Ok(thread) => {
                let pid = std::process::id();
                writeln!(
                    out,
                    "gpu-check: load: built-in CUDA driver load (256 MiB, memsets) in pid {pid}"
                )?;
                Ok(Load {
                    kind: "cuda-driver".to_owned(),
                    pid: Some(pid),
                    child: None,
                    stop,
                    thread: Some(thread),
                })
            }
            Err(why) => {
                writeln!(
                    out,
                    "gpu-check: no built-in CUDA load either ({why}); continuing without a load"
                )?;
                Ok(Load {
                    kind: format!("none ({why})"),
                    pid: None,
                    child: None,
                    stop,
                    thread: None,
                })
            }
        }
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Starts `python3` with [`PYTHON_LOAD`] and waits for its `READY`.
fn python_load(seconds: u64) -> Result<(Child, String), String> {
    let mut child = Command::new("python3")
        .arg("-c")
        .arg(PYTHON_LOAD)
        .arg(seconds.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|error| format!("cannot run python3: {error}"))?;
    let Some(stdout) = child.stdout.take() else {
        let _ = child.kill();
        let _ = child.wait();
        return Err("no stdout from python3".to_owned());
    };
    let (tx, rx) = mpsc::channel();
    // Reads until the child exits; it ends with the child.
    let reader = std::thread::Builder::new()
        .name("tally-gpu-load-out".to_owned())
        .spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
    if let Err(error) = reader {
        let _ = child.kill();
        let _ = child.wait();
        return Err(format!("cannot read python3's output: {error}"));
    }
    let deadline = Instant::now() + LOAD_START_TIMEOUT;
    let why = loop {
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(line) => {
                if let Some(kind) = line.strip_prefix("READY ") {
                    return Ok((child, kind.trim().to_owned()));
                }
                if let Some(why) = line.strip_prefix("NOLOAD ") {
                    break why.to_owned();
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                break format!("not ready within {} s", LOAD_START_TIMEOUT.as_secs());
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                break "python3 exited before the load ran".to_owned();
            }
        }
    };
    let _ = child.kill();
    let _ = child.wait();
    Err(why)
}

/// Runs [`cuda_load`] on its own thread (a CUDA context is per thread) and
/// waits until the memory is allocated.
fn start_cuda_load(stop: Arc<AtomicBool>) -> Result<JoinHandle<()>, String> {
    let (tx, rx) = mpsc::channel();
    let thread = std::thread::Builder::new()
        .name("tally-gpu-load".to_owned())
        .spawn(move || {
            let ready = tx.clone();
            let result = cuda_load(LOAD_BYTES, &stop, &mut || {
                let _ = ready.send(Ok(()));
            });
            if let Err(why) = result {
                let _ = tx.send(Err(why));
            }
        })
        .map_err(|error| format!("cannot start a thread: {error}"))?;
    match rx.recv_timeout(CUDA_START_TIMEOUT) {
        Ok(Ok(())) => Ok(thread),
        Ok(Err(why)) => {
            let _ = thread.join();
            Err(why)
        }
        Err(_) => Err(format!(
            "not allocated within {} s",
            CUDA_START_TIMEOUT.as_secs()
        )),
    }
}

/// The built-in load, through the CUDA driver API in `libcuda.so.1`
/// (shipped with the driver, so there whenever NVML is): a context on GPU
/// 0, `bytes` of device memory (so the process shows in NVML's compute
/// processes), and memsets of it until `stop` (kernels, so it can show in
/// process utilization). FFI, hence the audited `unsafe`.
#[allow(unsafe_code)]
fn cuda_load(bytes: usize, stop: &AtomicBool, ready: &mut dyn FnMut()) -> Result<(), String> {
    use std::ffi::{c_int, c_uint, c_void};
    // cuda.h: CUresult is a C enum (int), CUdevice an int, CUcontext a
    // pointer, CUdeviceptr an unsigned long long in the `_v2` API.
    type Init = unsafe extern "C" fn(c_uint) -> c_int;
    type DeviceGet = unsafe extern "C" fn(*mut c_int, c_int) -> c_int;
    type CtxCreate = unsafe extern "C" fn(*mut *mut c_void, c_uint, c_int) -> c_int;
    type MemAlloc = unsafe extern "C" fn(*mut u64, usize) -> c_int;
    type MemsetD8 = unsafe extern "C" fn(u64, u8, usize) -> c_int;
    type CtxSynchronize = unsafe extern "C" fn() -> c_int;
    type MemFree = unsafe extern "C" fn(u64) -> c_int;
    type CtxDestroy = unsafe extern "C" fn(*mut c_void) -> c_int;

    let check = |call: &str, code: c_int| {
        if code == 0 {
            Ok(())
        } else {
            Err(format!("{call} returned CUresult {code}"))
        }
    };
    let symbol_error = |error: libloading::Error| format!("libcuda.so.1: {error}");
    // SAFETY: loading the driver's CUDA library runs its initialisers,
    // which have no preconditions; it stays loaded until this returns.
    let lib = unsafe { libloading::Library::new("libcuda.so.1") }
        .map_err(|error| format!("cannot load libcuda.so.1: {error}"))?;
    // SAFETY: each symbol is typed with its cuda.h signature (above), and
    // the symbols do not outlive `lib`.
    let (init, device_get, ctx_create, mem_alloc, memset, synchronize, mem_free, ctx_destroy) = unsafe {
        (
            lib.get::<Init>(b"cuInit\0").map_err(symbol_error)?,
            lib.get::<DeviceGet>(b"cuDeviceGet\0")
                .map_err(symbol_error)?,
            lib.get::<CtxCreate>(b"cuCtxCreate_v2\0")
                .map_err(symbol_error)?,
            lib.get::<MemAlloc>(b"cuMemAlloc_v2\0")
                .map_err(symbol_error)?,
            lib.get::<MemsetD8>(b"cuMemsetD8_v2\0")
                .map_err(symbol_error)?,
            lib.get::<CtxSynchronize>(b"cuCtxSynchronize\0")
                .map_err(symbol_error)?,
            lib.get::<MemFree>(b"cuMemFree_v2\0")
                .map_err(symbol_error)?,
            lib.get::<CtxDestroy>(b"cuCtxDestroy_v2\0")
                .map_err(symbol_error)?,
        )
    };
    let mut device: c_int = 0;
    let mut context: *mut c_void = std::ptr::null_mut();
    let mut memory: u64 = 0;
    // SAFETY: the driver API in its documented order; every out-pointer is
    // a live local of the type cuda.h names.
    unsafe {
        check("cuInit", init(0))?;
        check("cuDeviceGet", device_get(&mut device, 0))?;
        check("cuCtxCreate_v2", ctx_create(&mut context, 0, device))?;
        if let Err(why) = check("cuMemAlloc_v2", mem_alloc(&mut memory, bytes)) {
            ctx_destroy(context);
            return Err(why);
        }
    }
    ready();
    let mut result = Ok(());
    while !stop.load(Ordering::Relaxed) {
        // SAFETY: `memory` is this thread's allocation of `bytes` bytes in
        // the context current on this thread.
        let step = unsafe {
            check("cuMemsetD8_v2", memset(memory, 0x5a, bytes))
                .and_then(|()| check("cuCtxSynchronize", synchronize()))
        };
        if let Err(why) = step {
            result = Err(why);
            break;
        }
    }
    // SAFETY: frees what this function allocated, in its own context, once.
    unsafe {
        mem_free(memory);
        ctx_destroy(context);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::gpu::readings::{Event, MigDevice, Process, ProcessUtilization};

    fn device(index: u32, processes: Vec<Process>, util: Vec<ProcessUtilization>) -> Device {
        Device {
            index,
            uuid: format!("GPU-{index}"),
            name: "NVIDIA H200".to_owned(),
            power_milliwatts: Some(120_000),
            processes,
            process_utilization: util,
            ..Device::default()
        }
    }

    fn sample(pid: u32, sm: u32, ts: u64) -> ProcessUtilization {
        ProcessUtilization {
            pid,
            sm_percent: sm,
            memory_percent: 1,
            timestamp_us: ts,
        }
    }

    fn event(n: u64) -> Event {
        Event {
            uuid: "GPU-0".to_owned(),
            kind: "pstate".to_owned(),
            data: 0,
            time_ms: n,
        }
    }

    /// The real NVML path on this machine (no driver): the check says
    /// "no GPU", succeeds and writes nothing.
    #[test]
    fn no_gpu_machine_passes_without_a_fixture() {
        let dir = tempfile::tempdir().expect("tempdir");
        let fixture = dir.path().join("never.json");
        let mut printed = Vec::new();
        let options = Options {
            seconds: 1,
            out: Some(fixture.clone()),
        };
        match run(&options, &mut printed).expect("the check runs") {
            Outcome::NoGpu(why) => {
                let text = String::from_utf8(printed).expect("utf-8");
                assert!(text.contains("status: no GPU"), "{text}");
                assert!(why.contains("libnvidia-ml.so"), "{why}");
                assert!(!fixture.exists());
            }
            Outcome::Checked { fixture, .. } => {
                println!("SKIP: a GPU is here; wrote {}", fixture.display());
            }
        }
    }

    #[test]
    fn fixture_names_are_slugs() {
        assert_eq!(slug("NVIDIA H100 80GB HBM3"), "nvidia-h100-80gb-hbm3");
        assert_eq!(slug("NVIDIA A100-SXM4-40GB"), "nvidia-a100-sxm4-40gb");
        assert_eq!(slug("  Tesla T4 "), "tesla-t4");
        assert_eq!(slug("570.124.06"), "570.124.06");
        assert_eq!(slug("***"), "unknown");
        assert_eq!(
            default_fixture_path("NVIDIA H200", "570.124.06"),
            PathBuf::from("agent/tests/fixtures/gpu/nvml-nvidia-h200-570.124.06.json")
        );
    }

    #[test]
    fn downsampling_keeps_samples_and_events() {
        // 61 frames → stride 3: frames 2, 5, …, 59 and the last (60): 21.
        let frames: Vec<Frame> = (0..61)
            .map(|n| Frame {
                time_ms: n,
                devices: vec![device(0, vec![], vec![sample(7, 10, n)])],
                events: vec![event(n)],
                ..Frame::default()
            })
            .collect();
        let kept = downsample(frames, 30);
        assert_eq!(kept.len(), 21);
        assert_eq!(kept[0].time_ms, 2);
        assert_eq!(kept[1].time_ms, 5);
        assert_eq!(kept[20].time_ms, 60);
        // Frame 2 carries frames 0 and 1; frame 60 only itself (59 was kept).
        let times = |frame: &Frame| -> Vec<u64> {
            frame.devices[0]
                .process_utilization
                .iter()
                .map(|s| s.timestamp_us)
                .collect()
        };
        assert_eq!(times(&kept[0]), [0, 1, 2]);
        assert_eq!(times(&kept[20]), [60]);
        let events: Vec<u64> = kept[0].events.iter().map(|e| e.time_ms).collect();
        assert_eq!(events, [0, 1, 2]);
        let total: usize = kept.iter().map(|f| f.events.len()).sum();
        assert_eq!(total, 61);
        // Few frames stay as they are.
        let few = vec![Frame::default(); 5];
        assert_eq!(downsample(few, 30).len(), 5);
    }

    #[test]
    fn attribution_finds_the_load() {
        let load = Process {
            pid: 4242,
            used_memory_bytes: Some(268_435_456 + 2_097_152),
            ..Process::default()
        };
        let other = Process {
            pid: 17,
            used_memory_bytes: Some(1),
            ..Process::default()
        };
        let frames = vec![
            Frame {
                devices: vec![device(0, vec![other.clone()], vec![])],
                ..Frame::default()
            },
            Frame {
                devices: vec![
                    device(0, vec![other, load], vec![sample(4242, 35, 1)]),
                    device(1, vec![], vec![sample(4242, 97, 2)]),
                ],
                ..Frame::default()
            },
        ];
        let found = attribution(&frames, 4242);
        assert_eq!(found.memory, Some((0, 270_532_608)));
        assert_eq!(found.sm_percent, Some((1, 97)));
        assert_eq!(found.pids_seen, [17, 4242]);
        let text = report(&frames, "torch", Some(4242), &found);
        assert!(text.contains("status: ok\n"), "{text}");
        assert!(text.contains("GPU 0, 270532608 bytes"), "{text}");

        let missing = attribution(&frames, 9);
        assert_eq!(missing.memory, None);
        let text = report(&frames, "torch", Some(9), &missing);
        assert!(text.contains("status: attribution failed"), "{text}");
        assert!(text.contains("PIDs seen: [17, 4242]"), "{text}");
    }

    #[test]
    fn report_says_what_nvml_answered() {
        let mut gpu = device(0, vec![], vec![]);
        gpu.mig_enabled = Some(true);
        gpu.mig_devices = vec![MigDevice {
            uuid: "MIG-1".to_owned(),
            gpu_instance_id: 7,
            compute_instance_id: 0,
            profile: "1g.18gb".to_owned(),
            memory_used_bytes: Some(10),
            ..MigDevice::default()
        }];
        let frames = vec![Frame {
            devices: vec![gpu],
            events: vec![event(1), event(2)],
            ..Frame::default()
        }];
        let text = report(&frames, "none", None, &Attribution::default());
        assert!(
            text.contains("supported      power_milliwatts             120000"),
            "{text}"
        );
        assert!(
            text.contains("not supported  utilization_gpu_percent"),
            "{text}"
        );
        assert!(text.contains("MIG 1g.18gb  MIG-1  GI 7 CI 0"), "{text}");
        assert!(text.contains("    not supported  sm_activity"), "{text}");
        assert!(
            text.contains("    supported      memory_used_bytes"),
            "{text}"
        );
        assert!(text.contains("events: pstate 2"), "{text}");
        assert!(text.contains("status: ok, without a load"), "{text}");
        assert!(!text.contains(" uuid"), "identity is not a field: {text}");
    }
}
