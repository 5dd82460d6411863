//! OpenTelemetry GenAI metrics (`gen_ai.server.*`, `gen_ai.client.*`
//! histograms, semantic-conventions `docs/gen-ai/gen-ai-metrics.md`) from
//! instrumented applications, filed under the catalog's model-serving
//! families so they join the same view as the scraped engines.
//!
//! The series gets `engine="genai"` and `model` (the response model, else
//! the request model); the GenAI attributes stay. Request counts come from
//! the duration histograms' counts (a failure when `error.type` is set,
//! with it as the reason), token counts from the token-usage histogram's
//! sums by `gen_ai.token.type`.

use tally_schema::catalog::{self, MetricDef};

/// What a GenAI histogram feeds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// A latency distribution, and its count as finished requests.
    LatencyAndRequests(&'static MetricDef),
    /// A latency distribution only.
    Latency(&'static MetricDef),
    /// Token counts from the histogram's sum.
    Tokens,
}

/// The role of a GenAI metric, if it is one Tally reads.
pub fn role(metric: &str) -> Option<Role> {
    if !metric.starts_with("gen_ai.") {
        return None;
    }
    Some(match metric {
        "gen_ai.server.time_to_first_token" | "gen_ai.client.operation.time_to_first_chunk" => {
            Role::Latency(&catalog::MODEL_TIME_TO_FIRST_TOKEN)
        }
        "gen_ai.server.time_per_output_token" | "gen_ai.client.operation.time_per_output_chunk" => {
            Role::Latency(&catalog::MODEL_TIME_PER_OUTPUT_TOKEN)
        }
        "gen_ai.server.request.duration" | "gen_ai.client.operation.duration" => {
            Role::LatencyAndRequests(&catalog::MODEL_E2E_REQUEST_LATENCY)
        }
        "gen_ai.client.token.usage" => Role::Tokens,
        _ => return None,
    })
}

/// The engine label of GenAI series.
pub const ENGINE: &str = "genai";

/// The point's labels plus `engine` and `model`.
pub fn labels(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    let find = |key: &str| pairs.iter().find(|(k, _)| *k == key).map(|(_, v)| *v);
    let model = find("gen_ai.response.model")
        .or(find("gen_ai.request.model"))
        .unwrap_or("unknown")
        .to_owned();
    let mut out: Vec<(String, String)> = pairs
        .iter()
        .filter(|(k, _)| *k != "engine" && *k != "model")
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    out.push(("engine".to_owned(), ENGINE.to_owned()));
    out.push(("model".to_owned(), model));
    out
}

/// `outcome` and `reason` of the requests a duration point counts.
pub fn request_labels(pairs: &[(String, String)]) -> [(String, String); 2] {
    match pairs.iter().find(|(k, _)| k == "error.type") {
        Some((_, error)) => [
            ("outcome".to_owned(), "failure".to_owned()),
            ("reason".to_owned(), error.clone()),
        ],
        None => [
            ("outcome".to_owned(), "success".to_owned()),
            ("reason".to_owned(), "finished".to_owned()),
        ],
    }
}

/// The token family for a `gen_ai.token.type`.
pub fn token_family(pairs: &[(String, String)]) -> Option<&'static MetricDef> {
    match pairs
        .iter()
        .find(|(k, _)| k == "gen_ai.token.type")
        .map(|(_, v)| v.as_str())
    {
        Some("input") => Some(&catalog::MODEL_PROMPT_TOKENS),
        Some("output") => Some(&catalog::MODEL_GENERATION_TOKENS),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_labels() {
        assert_eq!(
            role("gen_ai.server.time_to_first_token"),
            Some(Role::Latency(&catalog::MODEL_TIME_TO_FIRST_TOKEN))
        );
        assert_eq!(role("gen_ai.client.token.usage"), Some(Role::Tokens));
        assert_eq!(role("gen_ai.unknown"), None);
        assert_eq!(role("http.server.request.duration"), None);
        let pairs = [
            ("gen_ai.request.model", "gpt-x"),
            ("gen_ai.response.model", "gpt-x-2026"),
            ("error.type", "timeout"),
            ("gen_ai.token.type", "output"),
        ];
        let labels = labels(&pairs);
        assert!(labels.contains(&("model".to_owned(), "gpt-x-2026".to_owned())));
        assert!(labels.contains(&("engine".to_owned(), "genai".to_owned())));
        assert_eq!(request_labels(&labels)[0].1, "failure");
        assert_eq!(request_labels(&labels)[1].1, "timeout");
        assert_eq!(
            token_family(&labels).map(|d| d.base),
            Some(catalog::MODEL_GENERATION_TOKENS.base)
        );
    }
}
