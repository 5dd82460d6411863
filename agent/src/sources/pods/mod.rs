//! Pod identity from a node-scoped watch of the Kubernetes API.
//!
//! [`client`] talks to the API server, [`convert`] decodes the objects and
//! turns them into the [`model`], and [`watch`] keeps the shared
//! [`model::PodStore`] current. [`controllers`] reads the pods'
//! controllers, PodDisruptionBudgets and HorizontalPodAutoscalers beside
//! it, and [`workloads`] resolves them (replicas, rollout and budget pod
//! counts, autoscaler targets and bounds) as Kubernetes does.

pub mod client;
pub mod controllers;
pub mod convert;
pub mod model;
pub mod watch;
pub mod workloads;

pub use client::{KubeClient, KubeConfig, KubeError};
pub use controllers::run_controller_refresh;
pub use watch::run_pod_watch;
