//! Everything the agent measures, one module per source.

pub mod cgroups;
pub mod egress;
pub mod gpu;
pub mod host;
pub mod logs;
pub mod pods;
pub mod serving;
pub mod volumes;
