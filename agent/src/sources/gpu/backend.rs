//! The GPU backends behind one trait: NVML on a GPU node, and the replay
//! of recorded readings in tests and CI (nothing else can stand in for a
//! GPU on machines without one).

use super::readings::Frame;

/// Why a read gave no frame.
#[derive(Debug, thiserror::Error)]
pub enum GpuError {
    /// Not a GPU node: the NVML library is absent (`LibloadingError`) or
    /// the driver is not loaded. Final: the backend is not retried.
    #[error("no NVIDIA GPU here: {0}")]
    NoGpu(String),
    /// NVML is there but the read failed (permissions, a driver error).
    #[error("NVML failed: {0}")]
    Nvml(String),
    /// A replay fixture cannot be used.
    #[error("replay fixture {path}: {reason}")]
    Fixture {
        /// The file.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
}

impl GpuError {
    /// The error kind counted on the source's error metric.
    pub fn kind(&self) -> &'static str {
        match self {
            GpuError::NoGpu(_) => "no_gpu",
            GpuError::Nvml(_) => "nvml",
            GpuError::Fixture { .. } => "fixture",
        }
    }
}

/// Reads every GPU of the node.
pub trait GpuBackend: Send {
    /// One frame: every GPU's readings, per-process memory and
    /// utilization, MIG instances, and the events since the last read.
    fn read(&mut self) -> Result<Frame, GpuError>;

    /// What the backend is, for logs (`nvml`, `replay <path>`).
    fn describe(&self) -> String;
}
