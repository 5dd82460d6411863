//! Pod identity from a node-scoped watch of the Kubernetes API.
//!
//! [`client`] talks to the API server, [`convert`] decodes the objects and
//! turns them into the [`model`], and [`watch`] keeps the shared
//! [`model::PodStore`] current.

pub mod client;
pub mod convert;
pub mod model;
pub mod watch;

pub use client::{KubeClient, KubeConfig, KubeError};
pub use watch::run_pod_watch;
