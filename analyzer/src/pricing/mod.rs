//! The pricing catalog: what instances, GPUs, network transfer, storage
//! and commitments cost, and how a node's price splits over its CPUs,
//! memory and GPUs.
//!
//! The catalog ships in the binary (`analyzer/data/pricing.json`, written
//! by `scripts/gen-pricing.py`); [`PricingOverrides`] from the config add
//! negotiated discounts, a currency and prices for custom and on-prem
//! clusters. Figures are public list prices from secondary sources, each
//! entry naming its source; [`PriceBook::sanity_check`] flags the
//! implausible.

mod book;
mod catalog;
mod egress;
mod error;
mod gpu;
mod node;
mod overrides;
mod sanity;

pub use book::PriceBook;
pub use catalog::{
    CATALOG_VERSION, COMMITMENT_KINDS, Catalog, Commitment, Defaults, EgressPrices, EgressTier,
    GpuModelPrice, INTERRUPTION_BUCKETS, InstancePrice, MigProfile, ProviderInfo, StoragePrices,
};
pub use egress::EgressClass;
pub use error::PricingError;
pub use gpu::{CANONICAL_GPU_MODELS, canonical_gpu_model};
pub use node::{CapacityType, NodeFacts, NodePrice, PriceSource, ResourceRates};
pub use overrides::{
    InstanceOverride, PricingOverrides, default_currency, default_discount,
    default_egress_discount, default_exchange_rate,
};
pub use sanity::PriceWarning;
