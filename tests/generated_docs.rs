//! Generated references must match the code, so docs never drift.

fn checked_in(path: &str) -> String {
    std::fs::read_to_string(format!("{}/{path}", env!("CARGO_MANIFEST_DIR")))
        .unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn metric_catalog_is_current() {
    assert!(
        checked_in("docs/metrics.md") == tally_schema::catalog::markdown(),
        "docs/metrics.md is stale: run `cargo run -- catalog --markdown > docs/metrics.md`"
    );
}

#[test]
fn config_reference_is_current() {
    assert!(
        checked_in("docs/configuration.md") == tally_agent::config::reference_markdown(),
        "docs/configuration.md is stale: run `cargo run -- agent --config-reference > docs/configuration.md`"
    );
}

#[test]
fn collector_config_reference_is_current() {
    assert!(
        checked_in("docs/collector-configuration.md")
            == tally_collector::config::reference_markdown(),
        "docs/collector-configuration.md is stale: run `cargo run -- collector --config-reference > docs/collector-configuration.md`"
    );
}
