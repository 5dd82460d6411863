//! Flattening OTLP metrics into samples the store understands, rejecting
//! (and counting, with a reason) points the store must not keep.
//!
//! A series is identified by the metric name plus the resource and
//! data-point attributes. Gauges, sums (delta or cumulative), explicit
//! histograms, exponential histograms and summaries are accepted.

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, ExponentialHistogramDataPoint, HistogramDataPoint, SummaryDataPoint,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message;
use std::borrow::Cow;
use std::sync::Arc;

use tally_schema::exphist::ExpHistogram;
use tally_schema::{catalog, semconv};

use super::genai;

use super::wire::{Fields, WireError};
use crate::store::labels::{self, CachedResource, SharedInterner};
use crate::store::{LabelSet, Labels};

/// What one sample carries.
#[derive(Debug, Clone, PartialEq)]
pub enum SampleValue {
    /// A point-in-time value.
    Gauge(f64),
    /// An increment since the previous point.
    Delta(f64),
    /// A running total since `start_ns` (converted to deltas by the store).
    Cumulative {
        /// The total.
        value: f64,
        /// When the total started counting.
        start_ns: u64,
    },
    /// A distribution (histograms of any kind become this).
    Distribution(Box<ExpHistogram>),
    /// A histogram of cumulative temporality: everything since
    /// `start_ns` (the store keeps the previous one and takes the
    /// difference, as for a cumulative sum).
    CumulativeDistribution {
        /// The running histogram.
        histogram: Box<Running>,
        /// When it started (0: unknown).
        start_ns: u64,
    },
}

/// A running (cumulative) histogram as received.
#[derive(Debug, Clone, PartialEq)]
pub enum Running {
    /// Explicit buckets, kept raw: the difference of two points is taken
    /// bucket by bucket before any estimate.
    Explicit(ExplicitBuckets),
    /// An exponential histogram (its buckets do not move).
    Exponential(ExpHistogram),
}

/// An explicit-bucket histogram point's parts.
#[derive(Debug, Clone, PartialEq)]
pub struct ExplicitBuckets {
    /// Upper bounds (the last bucket is unbounded).
    pub bounds: Vec<f64>,
    /// Counts per bucket.
    pub counts: Vec<u64>,
    /// Smallest value, if the producer kept it.
    pub min: Option<f64>,
    /// Largest value, if the producer kept it.
    pub max: Option<f64>,
    /// Sum of values.
    pub sum: f64,
}

impl Running {
    /// All it holds, as a sketch.
    pub fn sketch(&self) -> ExpHistogram {
        match self {
            Running::Explicit(b) => explicit_sketch(&b.bounds, &b.counts, b.min, b.max),
            Running::Exponential(sketch) => sketch.clone(),
        }
    }

    /// What was recorded since `earlier`; `None` when `earlier` is not an
    /// older state of this histogram (other bounds, a count that fell:
    /// the producer restarted).
    pub fn since(&self, earlier: &Running) -> Option<ExpHistogram> {
        match (self, earlier) {
            (Running::Explicit(now), Running::Explicit(before)) => {
                if now.bounds != before.bounds || now.counts.len() != before.counts.len() {
                    return None;
                }
                let counts = now
                    .counts
                    .iter()
                    .zip(&before.counts)
                    .map(|(n, b)| n.checked_sub(*b))
                    .collect::<Option<Vec<u64>>>()?;
                // The new values lie within the running extremes.
                Some(explicit_sketch(&now.bounds, &counts, now.min, now.max))
            }
            (Running::Exponential(now), Running::Exponential(before)) => now.minus(before),
            _ => None,
        }
    }
}

/// An explicit-bucket histogram as a sketch: each bucket's count recorded
/// at its upper bound (the overflow bucket at the max or the last bound),
/// the estimate `histogram_quantile` makes, never past the observed
/// extremes.
pub fn explicit_sketch(
    bounds: &[f64],
    counts: &[u64],
    min: Option<f64>,
    max: Option<f64>,
) -> ExpHistogram {
    let mut sketch = ExpHistogram::default();
    for (i, count) in counts.iter().enumerate() {
        let mut at = bounds
            .get(i)
            .copied()
            .or(max)
            .or(bounds.last().copied())
            .unwrap_or(0.0);
        if let Some(max) = max.filter(|m| m.is_finite()) {
            at = at.min(max);
        }
        if let Some(min) = min.filter(|m| m.is_finite()) {
            at = at.max(min);
        }
        sketch.record_n(at, *count);
    }
    sketch
}

/// One sample of one series.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Metric name (shared by the metric's points).
    pub metric: Arc<str>,
    /// Resource plus point attributes, sorted by key (shared by the points
    /// of a resource that carry no attributes of their own).
    pub labels: Labels,
    /// Observation time.
    pub time_ns: u64,
    /// The value.
    pub value: SampleValue,
}

/// The result of flattening one request.
#[derive(Debug, Default)]
pub struct Flattened {
    /// Accepted samples.
    pub samples: Vec<Sample>,
    /// Points refused.
    pub rejected: u64,
    /// Distinct reasons for refusals (for the partial-success message).
    pub reasons: Vec<String>,
    /// The processes that pushed (node or SDK resources).
    pub pushers: Vec<Pusher>,
}

impl Flattened {
    fn reject(&mut self, count: u64, reason: String) {
        self.rejected += count;
        if !self.reasons.contains(&reason) && self.reasons.len() < 8 {
            self.reasons.push(reason);
        }
    }
}

/// Limits on acceptable timestamps.
#[derive(Debug, Clone, Copy)]
pub struct TimeWindow {
    /// Oldest acceptable time (now − retention).
    pub oldest_ns: u64,
    /// Newest acceptable time (now + allowed clock skew).
    pub newest_ns: u64,
}

/// Renders an attribute value as a label value.
pub fn attribute_text(value: Option<&AnyValue>) -> String {
    match value.and_then(|v| v.value.as_ref()) {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(any_value::Value::BoolValue(b)) => b.to_string(),
        Some(any_value::Value::IntValue(i)) => i.to_string(),
        Some(any_value::Value::DoubleValue(d)) => d.to_string(),
        Some(any_value::Value::BytesValue(b)) => b.iter().map(|x| format!("{x:02x}")).collect(),
        Some(any_value::Value::ArrayValue(a)) => {
            let items: Vec<String> = a.values.iter().map(|v| attribute_text(Some(v))).collect();
            format!("[{}]", items.join(","))
        }
        Some(any_value::Value::KvlistValue(kv)) => {
            let items: Vec<String> = kv
                .values
                .iter()
                .map(|kv| format!("{}={}", kv.key, attribute_text(kv.value.as_ref())))
                .collect();
            format!("{{{}}}", items.join(","))
        }
        _ => String::new(),
    }
}

/// A resource's attributes (none when the request has no resource).
pub fn resource_attributes(resource: Option<&Resource>) -> &[KeyValue] {
    resource.map(|r| r.attributes.as_slice()).unwrap_or(&[])
}

/// The pairs of decoded attributes, in order.
fn attribute_pairs(attributes: &[KeyValue]) -> Vec<(String, String)> {
    attributes
        .iter()
        .map(|kv| (kv.key.clone(), attribute_text(kv.value.as_ref())))
        .collect()
}

/// The text of an encoded `AnyValue`, as [`attribute_text`] renders the
/// decoded one. The last value field wins, as in a protobuf oneof.
fn any_value_text(bytes: &[u8]) -> Result<String, WireError> {
    let mut text = String::new();
    for field in Fields::new(bytes, "AnyValue") {
        let (number, value) = field?;
        text = match number {
            1 => value.text(1, "AnyValue")?.to_owned(),
            2 => (value.varint(2, "AnyValue")? != 0).to_string(),
            3 => (value.varint(3, "AnyValue")? as i64).to_string(),
            4 => f64::from_bits(value.fixed64(4, "AnyValue")?).to_string(),
            // Lists and maps are rare and nest: prost decodes them (with its
            // recursion limit) and they render as the decoded form does.
            5 | 6 => {
                let decoded = AnyValue::decode(bytes).map_err(|e| WireError::Nested {
                    message: "AnyValue",
                    reason: e.to_string(),
                })?;
                return Ok(attribute_text(Some(&decoded)));
            }
            7 => value
                .bytes(7, "AnyValue")?
                .iter()
                .map(|x| format!("{x:02x}"))
                .collect(),
            _ => continue,
        };
    }
    Ok(text)
}

/// Adds another occurrence of a singular message field: protobuf merges
/// them, and the concatenation of two encodings is their merge.
fn merge<'a>(field: &mut Option<Cow<'a, [u8]>>, more: &'a [u8]) {
    *field = Some(match field.take() {
        None => Cow::Borrowed(more),
        Some(earlier) => Cow::Owned([&*earlier, more].concat()),
    });
}

/// Decodes encoded `KeyValue`s into `(key, text)` pairs.
fn encoded_pairs(attributes: &[&[u8]]) -> Result<Vec<(String, String)>, WireError> {
    let mut pairs = Vec::with_capacity(attributes.len());
    for attribute in attributes {
        let (mut key, mut value) = ("", None);
        for field in Fields::new(attribute, "KeyValue") {
            match field? {
                (1, text) => key = text.text(1, "KeyValue")?,
                (2, more) => merge(&mut value, more.bytes(2, "KeyValue")?),
                _ => {}
            }
        }
        let text = value.as_deref().map(any_value_text).transpose()?;
        pairs.push((key.to_owned(), text.unwrap_or_default()));
    }
    Ok(pairs)
}

/// A pushing process seen in a request: a resource that is not a
/// container or pod (an agent's node resource, or any SDK's resource).
#[derive(Debug, Clone)]
pub struct Pusher {
    /// The resource's labels (`service.name`, `k8s.node.name`, ...).
    pub labels: Labels,
    /// The version of its first instrumentation scope.
    pub scope_version: String,
}

/// The encoded bytes of one request, flattened into samples.
struct Walk<'i> {
    out: Flattened,
    window: TimeWindow,
    interner: &'i SharedInterner,
    /// Reused per point: its encoded attributes, each after its length
    /// (the key of the point-set cache).
    attributes: Vec<u8>,
    /// The histogram being walked has cumulative temporality.
    cumulative_histogram: bool,
}

/// Flattens an encoded `ExportMetricsServiceRequest`, validating every
/// point. Bytes that are not a valid request are an error and nothing
/// from them is kept. Label sets come from (and go to) `interner`.
pub fn flatten(
    request: &[u8],
    window: TimeWindow,
    interner: &SharedInterner,
) -> Result<Flattened, WireError> {
    let mut walk = Walk {
        out: Flattened::default(),
        window,
        interner,
        attributes: Vec::new(),
        cumulative_histogram: false,
    };
    for field in Fields::new(request, "ExportMetricsServiceRequest") {
        if let (1, value) = field? {
            walk.resource_metrics(value.bytes(1, "ExportMetricsServiceRequest")?)?;
        }
    }
    Ok(walk.out)
}

/// [`flatten`] for a decoded request (tests, benchmarks, in-process
/// simulation): it is encoded first, as the server's log stores it.
pub fn flatten_request(
    request: &ExportMetricsServiceRequest,
    window: TimeWindow,
    interner: &SharedInterner,
) -> Flattened {
    // A message prost just encoded always walks.
    flatten(&request.encode_to_vec(), window, interner).unwrap_or_default()
}

fn number_of_points(data: &[u8]) -> u64 {
    Fields::new(data, "data")
        .filter(|f| matches!(f, Ok((1, _))))
        .count() as u64
}

impl Walk<'_> {
    fn resource_metrics(&mut self, bytes: &[u8]) -> Result<(), WireError> {
        // A repeated singular message merges, and the concatenation of two
        // encodings is the encoding of their merge.
        let mut resource = None;
        let mut first_scope = None;
        for field in Fields::new(bytes, "ResourceMetrics") {
            match field? {
                (1, value) => merge(&mut resource, value.bytes(1, "ResourceMetrics")?),
                (2, value) if first_scope.is_none() => {
                    first_scope = Some(value.bytes(2, "ResourceMetrics")?);
                }
                _ => {}
            }
        }
        let resource = self.resource(resource.as_deref().unwrap_or(&[]))?;
        let labels = &resource.labels;
        if labels.get("container.id").is_none() && labels.get("k8s.pod.uid").is_none() {
            self.out.pushers.push(Pusher {
                labels: Arc::clone(labels),
                scope_version: first_scope
                    .map(scope_version)
                    .transpose()?
                    .unwrap_or_default(),
            });
        }
        for field in Fields::new(bytes, "ResourceMetrics") {
            if let (2, value) = field? {
                for field in Fields::new(value.bytes(2, "ResourceMetrics")?, "ScopeMetrics") {
                    if let (2, value) = field? {
                        self.metric(value.bytes(2, "ScopeMetrics")?, &resource)?;
                    }
                }
            }
        }
        Ok(())
    }

    /// The labels of the resource encoded as `bytes`: from the cache, or
    /// decoded, built, interned and cached.
    fn resource(&mut self, bytes: &[u8]) -> Result<CachedResource, WireError> {
        if let Some(found) = labels::lock(self.interner).resource(bytes) {
            return Ok(found);
        }
        let mut attributes = Vec::new();
        for field in Fields::new(bytes, "Resource") {
            if let (1, value) = field? {
                attributes.push(value.bytes(1, "Resource")?);
            }
        }
        let labels = Arc::new(LabelSet::new(encoded_pairs(&attributes)?));
        Ok(labels::lock(self.interner).adopt_resource(bytes, &labels))
    }

    /// Adds one of the current point's encoded attributes.
    fn add_attribute(&mut self, attribute: &[u8]) {
        self.attributes
            .extend_from_slice(&(attribute.len() as u32).to_le_bytes());
        self.attributes.extend_from_slice(attribute);
    }

    /// The labels of a point whose encoded attributes are in
    /// `self.attributes`: its resource's set when it has none (the common
    /// case), else the cached or newly built set in which point attributes
    /// win over resource attributes of the same key.
    fn point_labels(&mut self, resource: &CachedResource) -> Result<Labels, WireError> {
        if self.attributes.is_empty() {
            return Ok(Arc::clone(&resource.labels));
        }
        let id = resource.id;
        if let Some(found) = labels::lock(self.interner).point_set(id, &self.attributes) {
            return Ok(found);
        }
        let mut attributes = Vec::new();
        let mut rest = self.attributes.as_slice();
        while let Some((len, more)) = rest.split_first_chunk::<4>() {
            let len = u32::from_le_bytes(*len) as usize;
            // Written just above by `add_attribute`, so always in bounds.
            let (Some(attribute), Some(after)) = (more.get(..len), more.get(len..)) else {
                break;
            };
            attributes.push(attribute);
            rest = after;
        }
        let own = encoded_pairs(&attributes)?;
        let labels = Arc::new(LabelSet::over(own, &resource.labels));
        Ok(labels::lock(self.interner).adopt_point_set(id, &self.attributes, &labels))
    }

    fn reject(&mut self, count: u64, reason: String) {
        self.out.reject(count, reason);
    }

    fn check_time(&mut self, metric: &str, time_ns: u64) -> bool {
        if time_ns == 0 {
            self.reject(1, format!("{metric}: point without a timestamp"));
            false
        } else if time_ns < self.window.oldest_ns {
            self.reject(
                1,
                format!("{metric}: timestamp older than the retention window"),
            );
            false
        } else if time_ns > self.window.newest_ns {
            self.reject(1, format!("{metric}: timestamp in the future"));
            false
        } else {
            true
        }
    }

    fn push(&mut self, metric: &Arc<str>, labels: Labels, time_ns: u64, value: SampleValue) {
        self.out.samples.push(Sample {
            metric: Arc::clone(metric),
            labels,
            time_ns,
            value,
        });
    }

    /// A point of a GPU family under its OpenTelemetry semantic-convention
    /// name, as Tally's family and labels (`tally_schema::semconv`); `None`
    /// when the name is the convention's but the point is not a GPU
    /// family's (another component's `hw.power`), which keeps its own name.
    fn semconv_as_tally(&mut self, metric: &str, labels: &Labels) -> Option<(Arc<str>, Labels)> {
        let pairs: Vec<(&str, &str)> = labels.iter().collect();
        let (name, renamed) = semconv::from_semconv(metric, &pairs)?;
        let mut interner = labels::lock(self.interner);
        let tally = interner.name_of(&name.def.full_name());
        let labels = interner.labels(&Arc::new(LabelSet::new(renamed)));
        Some((tally, labels))
    }

    fn metric(&mut self, bytes: &[u8], resource: &CachedResource) -> Result<(), WireError> {
        // The data is a oneof: a later field of another kind replaces it,
        // one of the same kind merges into it.
        let (mut name, mut kind, mut data) = ("", 0, None);
        for field in Fields::new(bytes, "Metric") {
            match field? {
                (1, value) => name = value.text(1, "Metric")?,
                (number @ (5 | 7 | 9 | 10 | 11), value) => {
                    if number != kind {
                        (kind, data) = (number, None);
                    }
                    merge(&mut data, value.bytes(number, "Metric")?);
                }
                _ => {}
            }
        }
        let data = data.map(|d| (kind, d));
        if name.is_empty() {
            let points = data.as_ref().map(|(_, d)| number_of_points(d)).unwrap_or(0);
            self.reject(points.max(1), "metric without a name".to_owned());
            return Ok(());
        }
        let Some((kind, data)) = data else {
            self.reject(1, format!("{name}: metric without data"));
            return Ok(());
        };
        let data: &[u8] = &data;
        let metric = labels::lock(self.interner).name_of(name);
        match kind {
            5 => self.number_points(&metric, data, resource, "Gauge", |v, _| {
                SampleValue::Gauge(v)
            }),
            7 => {
                let (mut temporality, mut monotonic) = (0, false);
                for field in Fields::new(data, "Sum") {
                    match field? {
                        (2, value) => temporality = value.varint(2, "Sum")?,
                        (3, value) => monotonic = value.varint(3, "Sum")? != 0,
                        _ => {}
                    }
                }
                // An enum field is an int32 on the wire's varint.
                let cumulative = temporality as i32 == AggregationTemporality::Cumulative as i32;
                self.number_points(&metric, data, resource, "Sum", |v, start_ns| {
                    if !monotonic {
                        // A non-monotonic sum (an up-down counter) is a level.
                        SampleValue::Gauge(v)
                    } else if cumulative {
                        SampleValue::Cumulative { value: v, start_ns }
                    } else {
                        SampleValue::Delta(v)
                    }
                })
            }
            9 => {
                self.cumulative_histogram = cumulative_temporality(data, "Histogram")?;
                self.decoded_points(&metric, data, resource, "Histogram", 9, Self::histogram)
            }
            10 => {
                self.cumulative_histogram = cumulative_temporality(data, "ExponentialHistogram")?;
                self.decoded_points(
                    &metric,
                    data,
                    resource,
                    "ExponentialHistogram",
                    1,
                    Self::exponential_histogram,
                )
            }
            _ => self.decoded_points(&metric, data, resource, "Summary", 7, Self::summary),
        }
    }

    /// The number points of a gauge or sum, parsed in place.
    fn number_points(
        &mut self,
        metric: &Arc<str>,
        data: &[u8],
        resource: &CachedResource,
        message: &'static str,
        value_of: impl Fn(f64, u64) -> SampleValue,
    ) -> Result<(), WireError> {
        const POINT: &str = "NumberDataPoint";
        let semconv = semconv::is_candidate(metric);
        for field in Fields::new(data, message) {
            let (1, point) = field? else { continue };
            let (mut start_ns, mut time_ns, mut value) = (0, 0, None);
            self.attributes.clear();
            for field in Fields::new(point.bytes(1, message)?, POINT) {
                match field? {
                    (2, v) => start_ns = v.fixed64(2, POINT)?,
                    (3, v) => time_ns = v.fixed64(3, POINT)?,
                    (4, v) => value = Some(f64::from_bits(v.fixed64(4, POINT)?)),
                    (6, v) => value = Some(v.fixed64(6, POINT)? as i64 as f64),
                    (7, v) => self.add_attribute(v.bytes(7, POINT)?),
                    (8, v) => {
                        v.varint(8, POINT)?;
                    }
                    _ => {}
                }
            }
            if !self.check_time(metric, time_ns) {
                continue;
            }
            match value {
                Some(v) if v.is_finite() => {
                    let labels = self.point_labels(resource)?;
                    let value = value_of(v, start_ns);
                    match semconv
                        .then(|| self.semconv_as_tally(metric, &labels))
                        .flatten()
                    {
                        Some((tally, labels)) => self.push(&tally, labels, time_ns, value),
                        None => self.push(metric, labels, time_ns, value),
                    }
                }
                _ => self.reject(1, format!("{metric}: NaN, infinite or missing value")),
            }
        }
        Ok(())
    }

    /// Histogram and summary points: prost decodes each point (they are
    /// few, and carry lists), the attributes still come from the cache.
    fn decoded_points<P: Message + Default>(
        &mut self,
        metric: &Arc<str>,
        data: &[u8],
        resource: &CachedResource,
        message: &'static str,
        attributes_field: u32,
        flatten_point: fn(&mut Self, &Arc<str>, &CachedResource, P) -> Result<(), WireError>,
    ) -> Result<(), WireError> {
        for field in Fields::new(data, message) {
            let (1, point) = field? else { continue };
            let point = point.bytes(1, message)?;
            self.attributes.clear();
            for field in Fields::new(point, message) {
                if let (number, value) = field?
                    && number == attributes_field
                {
                    self.add_attribute(value.bytes(number, message)?);
                }
            }
            let decoded = P::decode(point).map_err(|e| WireError::Nested {
                message,
                reason: e.to_string(),
            })?;
            flatten_point(self, metric, resource, decoded)?;
        }
        Ok(())
    }

    fn exponential_histogram(
        &mut self,
        name: &Arc<str>,
        resource: &CachedResource,
        p: ExponentialHistogramDataPoint,
    ) -> Result<(), WireError> {
        if !self.check_time(name, p.time_unix_nano) {
            return Ok(());
        }
        if !p.sum.unwrap_or(0.0).is_finite() {
            self.reject(1, format!("{name}: NaN or infinite sum"));
            return Ok(());
        }
        // Coarser scales cannot be mapped onto the sketch's buckets (-10
        // already puts every double in three buckets).
        if p.scale < -10 {
            self.reject(1, format!("{name}: exponential histogram scale below -10"));
            return Ok(());
        }
        let positive = p.positive.as_ref();
        // Counts are untrusted: saturate rather than overflow.
        let negative = p
            .negative
            .as_ref()
            .map(|n| {
                n.bucket_counts
                    .iter()
                    .fold(0u64, |a, c| a.saturating_add(*c))
            })
            .unwrap_or(0);
        let mut sketch = ExpHistogram::default();
        sketch.merge_parts(&tally_schema::exphist::Parts {
            scale: p.scale,
            offset: positive.map(|b| b.offset).unwrap_or(0),
            counts: positive.map(|b| b.bucket_counts.as_slice()).unwrap_or(&[]),
            // Tally's quantities are not negative; values below zero are
            // folded into the zero bucket rather than dropped.
            zero_count: p.zero_count.saturating_add(negative),
            count: p.count,
            sum: p.sum.unwrap_or(0.0),
            min: p.min.filter(|m| m.is_finite()),
            max: p.max.filter(|m| m.is_finite()),
        });
        let labels = self.point_labels(resource)?;
        let totals = (sketch.count() as f64, sketch.sum());
        let value = if self.cumulative_histogram {
            SampleValue::CumulativeDistribution {
                histogram: Box::new(Running::Exponential(sketch)),
                start_ns: p.start_time_unix_nano,
            }
        } else {
            SampleValue::Distribution(Box::new(sketch))
        };
        self.push_histogram(
            name,
            labels,
            p.time_unix_nano,
            value,
            totals,
            p.start_time_unix_nano,
        );
        Ok(())
    }

    fn histogram(
        &mut self,
        name: &Arc<str>,
        resource: &CachedResource,
        p: HistogramDataPoint,
    ) -> Result<(), WireError> {
        if !self.check_time(name, p.time_unix_nano) {
            return Ok(());
        }
        if !p.sum.unwrap_or(0.0).is_finite() || p.explicit_bounds.iter().any(|b| !b.is_finite()) {
            self.reject(1, format!("{name}: NaN or infinite sum or bound"));
            return Ok(());
        }
        let labels = self.point_labels(resource)?;
        let totals = (
            p.bucket_counts
                .iter()
                .fold(0u64, |a, c| a.saturating_add(*c)) as f64,
            p.sum.unwrap_or(0.0),
        );
        let start_ns = p.start_time_unix_nano;
        let value = if self.cumulative_histogram {
            SampleValue::CumulativeDistribution {
                histogram: Box::new(Running::Explicit(ExplicitBuckets {
                    bounds: p.explicit_bounds,
                    counts: p.bucket_counts,
                    min: p.min,
                    max: p.max,
                    sum: p.sum.unwrap_or(0.0),
                })),
                start_ns: p.start_time_unix_nano,
            }
        } else {
            SampleValue::Distribution(Box::new(explicit_sketch(
                &p.explicit_bounds,
                &p.bucket_counts,
                p.min,
                p.max,
            )))
        };
        self.push_histogram(name, labels, p.time_unix_nano, value, totals, start_ns);
        Ok(())
    }

    /// Pushes a histogram point; an OpenTelemetry GenAI histogram goes
    /// under the catalog's model-serving family instead, with its count
    /// as finished requests or its sum as tokens where it says so.
    fn push_histogram(
        &mut self,
        name: &Arc<str>,
        labels: Labels,
        time_ns: u64,
        value: SampleValue,
        (count, sum): (f64, f64),
        start_ns: u64,
    ) {
        let Some(role) = genai::role(name) else {
            self.push(name, labels, time_ns, value);
            return;
        };
        let pairs = genai::labels(&labels.iter().collect::<Vec<_>>());
        let total = |v: f64| {
            if self.cumulative_histogram {
                SampleValue::Cumulative { value: v, start_ns }
            } else {
                SampleValue::Delta(v)
            }
        };
        let mut out: Vec<MappedPoint> = Vec::new();
        match role {
            genai::Role::Latency(def) => out.push((def, pairs, value)),
            genai::Role::LatencyAndRequests(def) => {
                let mut request = pairs.clone();
                request.extend(genai::request_labels(&pairs));
                out.push((&catalog::MODEL_REQUESTS, request, total(count)));
                out.push((
                    &catalog::MODEL_INFO,
                    info_labels(&pairs),
                    SampleValue::Gauge(1.0),
                ));
                out.push((def, pairs, value));
            }
            genai::Role::Tokens => {
                if let Some(def) = genai::token_family(&pairs) {
                    let mut tokens = pairs;
                    tokens.retain(|(k, _)| k != "gen_ai.token.type");
                    out.push((def, tokens, total(sum)));
                }
            }
        }
        for (def, pairs, value) in out {
            let (metric, labels) = {
                let mut interner = labels::lock(self.interner);
                let metric = interner.name_of(&def.full_name());
                let labels = interner.labels(&Arc::new(LabelSet::new(pairs)));
                (metric, labels)
            };
            self.push(&metric, labels, time_ns, value);
        }
    }

    fn summary(
        &mut self,
        name: &Arc<str>,
        resource: &CachedResource,
        p: SummaryDataPoint,
    ) -> Result<(), WireError> {
        if !self.check_time(name, p.time_unix_nano) {
            return Ok(());
        }
        let labels = self.point_labels(resource)?;
        for q in &p.quantile_values {
            if q.value.is_finite() {
                // Rare: built uncached, each quantile its own series.
                let mut own = vec![("quantile".to_owned(), q.quantile.to_string())];
                own.extend(attribute_pairs(&p.attributes));
                let labels = Arc::new(LabelSet::over(own, &resource.labels));
                self.push(name, labels, p.time_unix_nano, SampleValue::Gauge(q.value));
            }
        }
        let (sum_name, count_name) = {
            let mut interner = labels::lock(self.interner);
            (
                interner.name_of(&format!("{name}_sum")),
                interner.name_of(&format!("{name}_count")),
            )
        };
        if p.sum.is_finite() {
            let value = SampleValue::Cumulative {
                value: p.sum,
                start_ns: p.start_time_unix_nano,
            };
            self.push(&sum_name, Arc::clone(&labels), p.time_unix_nano, value);
        }
        let value = SampleValue::Cumulative {
            value: p.count as f64,
            start_ns: p.start_time_unix_nano,
        };
        self.push(&count_name, labels, p.time_unix_nano, value);
        Ok(())
    }
}

/// A point under a catalog family: family, labels, value.
type MappedPoint = (
    &'static catalog::MetricDef,
    Vec<(String, String)>,
    SampleValue,
);

/// `tally_model_info`'s labels for a GenAI series: its identity, engine
/// and model, and no GenAI detail.
fn info_labels(pairs: &[(String, String)]) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = pairs
        .iter()
        .filter(|(k, _)| {
            !k.starts_with("gen_ai.") && !k.starts_with("error.") && !k.starts_with("server.")
        })
        .cloned()
        .collect();
    out.push(("engine_version".to_owned(), "unknown".to_owned()));
    out
}

/// Whether a histogram message says cumulative temporality (its field 2).
fn cumulative_temporality(data: &[u8], message: &'static str) -> Result<bool, WireError> {
    let mut temporality = 0;
    for field in Fields::new(data, message) {
        if let (2, value) = field? {
            temporality = value.varint(2, message)?;
        }
    }
    Ok(temporality as i32 == AggregationTemporality::Cumulative as i32)
}

fn scope_version(scope_metrics: &[u8]) -> Result<String, WireError> {
    let mut version = String::new();
    for field in Fields::new(scope_metrics, "ScopeMetrics") {
        if let (1, scope) = field? {
            for field in Fields::new(scope.bytes(1, "ScopeMetrics")?, "InstrumentationScope") {
                if let (2, value) = field? {
                    version = value.text(2, "InstrumentationScope")?.to_owned();
                }
            }
        }
    }
    Ok(version)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::decode;
    use crate::store::{Store, StoreLimits};

    const HOUR_NS: u64 = 3_600_000_000_000;
    const NOW_NS: u64 = 1_767_225_600_000_000_000;
    const WINDOW: TimeWindow = TimeWindow {
        oldest_ns: NOW_NS - 24 * HOUR_NS,
        newest_ns: NOW_NS + HOUR_NS,
    };

    /// Decodes an OTLP/JSON body with one metric (`data` is its data field)
    /// and flattens it, as the server does.
    fn flatten_json(data: &str) -> Flattened {
        let body = format!(
            r#"{{"resourceMetrics":[{{"scopeMetrics":[{{"metrics":[{{"name":"h",{data}}}]}}]}}]}}"#
        );
        let decoded = decode::body::<ExportMetricsServiceRequest>(
            Some("application/json"),
            None,
            body.as_bytes(),
            1 << 20,
        )
        .expect("valid OTLP/JSON");
        flatten_request(&decoded.request, WINDOW, &SharedInterner::default())
    }

    fn exp_histogram(point: &str) -> String {
        format!(
            r#""exponentialHistogram":{{"aggregationTemporality":1,"dataPoints":[{{"timeUnixNano":"{NOW_NS}","count":"3","sum":1.0,{point}}}]}}"#
        )
    }

    /// Hostile points found while writing the fuzz target
    /// (`fuzz/fuzz_targets/otlp_decode.rs`): each overflowed in flattening
    /// or in the sketch (a panic under overflow checks), and the offset near
    /// `i32::MAX` was a "capacity overflow" panic even without them, which
    /// aborts the release collector (`panic = "abort"`).
    #[test]
    fn hostile_exponential_histograms_are_flattened_without_overflow() {
        let points = [
            r#""scale":100,"positive":{"offset":0,"bucketCounts":["1","2"]}"#,
            r#""scale":0,"positive":{"offset":2147483647,"bucketCounts":["1","2"]}"#,
            r#""scale":20,"positive":{"offset":-2147483648,"bucketCounts":["1"]}"#,
            r#""scale":0,"zeroCount":"18446744073709551615","negative":{"bucketCounts":["18446744073709551615","1"]}"#,
        ];
        let mut store = Store::new(StoreLimits {
            retention_ns: 24 * HOUR_NS,
            raw_window_ns: HOUR_NS,
            raw_points: 10,
            log_records: 10,
            max_series: 100,
        });
        for point in points {
            let flattened = flatten_json(&exp_histogram(point));
            assert_eq!((flattened.samples.len(), flattened.rejected), (1, 0));
            // Twice: the second merges into the first's hourly sketch.
            for sample in flattened.samples {
                store.apply(sample.clone());
                store.apply(sample);
            }
        }
        let coarse = flatten_json(&exp_histogram(
            r#""scale":-11,"positive":{"offset":0,"bucketCounts":["3"]}"#,
        ));
        assert!(coarse.samples.is_empty());
        assert_eq!(coarse.reasons, ["h: exponential histogram scale below -10"]);
    }

    fn gauge_request(pod: &str, points: Vec<(&str, &str, f64)>) -> ExportMetricsServiceRequest {
        use tally_schema::{catalog, otlp};
        let points = points
            .into_iter()
            .map(|(key, value, v)| {
                let attributes = if key.is_empty() {
                    vec![]
                } else {
                    vec![otlp::string_attribute(key, value)]
                };
                otlp::number_point(attributes, 0, NOW_NS, v)
            })
            .collect();
        ExportMetricsServiceRequest {
            resource_metrics: vec![otlp::resource_metrics(
                otlp::resource([
                    ("k8s.pod.name", pod.to_owned()),
                    ("zone", "a".to_owned()),
                    ("k8s.pod.uid", "u".to_owned()),
                ]),
                vec![otlp::gauge(&catalog::CONTAINER_MEMORY_WORKING_SET, points)],
                "test",
            )],
        }
    }

    /// A second request with the same resource and point attributes finds
    /// the first one's interned sets in the cache (the same allocation);
    /// point attributes win over resource attributes of the same key.
    #[test]
    fn repeated_resources_and_attributes_reuse_interned_sets() {
        let interner = SharedInterner::default();
        let request = gauge_request(
            "p",
            vec![("", "", 1.0), ("zone", "b", 2.0), ("gpu", "0", 3.0)],
        );
        let first = flatten_request(&request, WINDOW, &interner);
        let second = flatten_request(&request, WINDOW, &interner);
        assert_eq!((first.samples.len(), first.rejected), (3, 0));
        for (a, b) in first.samples.iter().zip(&second.samples) {
            assert!(Arc::ptr_eq(&a.labels, &b.labels), "{:?}", a.labels);
            assert!(Arc::ptr_eq(&a.metric, &b.metric));
        }
        let pairs = |sample: &Sample| {
            sample
                .labels
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(",")
        };
        assert_eq!(
            pairs(&first.samples[0]),
            "k8s.pod.name=p,k8s.pod.uid=u,zone=a"
        );
        assert_eq!(
            pairs(&first.samples[1]),
            "k8s.pod.name=p,k8s.pod.uid=u,zone=b"
        );
        assert_eq!(
            pairs(&first.samples[2]),
            "gpu=0,k8s.pod.name=p,k8s.pod.uid=u,zone=a"
        );
        // Another pod: other sets, not a stale cache hit.
        let other = flatten_request(
            &gauge_request("q", vec![("gpu", "0", 3.0)]),
            WINDOW,
            &interner,
        );
        assert_eq!(other.samples[0].labels.get("k8s.pod.name"), Some("q"));
        // A sweep empties the caches; the sets come back equal.
        crate::store::labels::lock(&interner).sweep();
        let again = flatten_request(&request, WINDOW, &interner);
        assert_eq!(again.samples, first.samples);
        // Container and pod resources are not pushers.
        assert!(first.pushers.is_empty());
    }

    /// Protobuf merges repeated singular messages; the walk reads merged
    /// resources and data as prost does.
    #[test]
    fn repeated_singular_fields_merge_as_prost_merges() {
        let request = gauge_request("p", vec![("", "", 1.0)]);
        let encoded = request.encode_to_vec();
        let resource_metrics = &request.resource_metrics[0];
        // The resource metrics again with a second resource field and a
        // second gauge field in its metric, as a concatenation would give.
        let extra_resource = opentelemetry_proto::tonic::resource::v1::Resource {
            attributes: vec![tally_schema::otlp::string_attribute("node", "n1")],
            ..Default::default()
        };
        let mut doubled = resource_metrics.clone();
        doubled.resource = Some(extra_resource);
        let mut bytes = Vec::new();
        // Field 1 of the request, holding both encodings back to back.
        let inner = [resource_metrics.encode_to_vec(), doubled.encode_to_vec()].concat();
        prost::encoding::encode_key(1, prost::encoding::WireType::LengthDelimited, &mut bytes);
        prost::encoding::encode_varint(inner.len() as u64, &mut bytes);
        bytes.extend_from_slice(&inner);
        let prost_view = ExportMetricsServiceRequest::decode(bytes.as_slice()).expect("decodes");
        let walked = flatten(&bytes, WINDOW, &SharedInterner::default()).expect("walks");
        let via_prost = flatten_request(&prost_view, WINDOW, &SharedInterner::default());
        assert_eq!(walked.samples, via_prost.samples);
        assert_eq!(walked.samples.len(), 2);
        assert_eq!(walked.samples[0].labels.get("node"), Some("n1"));
        assert!(flatten(&encoded, WINDOW, &SharedInterner::default()).is_ok());
    }

    #[test]
    fn malformed_requests_are_errors() {
        let request = gauge_request("p", vec![("gpu", "0", 3.0)]);
        let mut bytes = request.encode_to_vec();
        let interner = SharedInterner::default();
        // Invalid UTF-8 in the point attribute's value ("0" is its last byte
        // before the point's value field).
        let at = bytes.iter().rposition(|b| *b == b'0').expect("the value");
        bytes[at] = 0xff;
        assert_eq!(
            flatten(&bytes, WINDOW, &interner).map(|f| f.samples.len()),
            Err(WireError::Utf8("AnyValue"))
        );
        let whole = request.encode_to_vec();
        for cut in 1..whole.len() {
            // Every truncation is an error or fewer points, never a panic.
            if let Ok(flattened) = flatten(&whole[..cut], WINDOW, &interner) {
                assert!(flattened.samples.len() <= 1);
            }
        }
    }

    /// Bounds at both ends of the doubles are further apart, in buckets at
    /// scale 20, than an `i32` holds.
    #[test]
    fn explicit_histogram_spanning_every_double() {
        let flattened = flatten_json(&format!(
            r#""histogram":{{"aggregationTemporality":1,"dataPoints":[{{"timeUnixNano":"{NOW_NS}","count":"2","sum":1.0,"bucketCounts":["1","1"],"explicitBounds":[5e-324,1e308]}}]}}"#
        ));
        let [sample] = flattened.samples.as_slice() else {
            panic!("one sample: {flattened:?}");
        };
        let SampleValue::Distribution(sketch) = &sample.value else {
            panic!("a distribution: {sample:?}");
        };
        assert_eq!(sketch.count(), 2);
    }
}
