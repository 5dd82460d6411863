//! Pod identity from a node-scoped watch of the Kubernetes API.

pub mod model;
