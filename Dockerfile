# syntax=docker/dockerfile:1.7
# One image for the agent and the collector (`tally agent`, `tally collector`).
# Builder: the pinned toolchain, the dependencies cached in their own
# layer. Runtime: distroless (glibc, CA certificates, no shell), user
# 65532. The agent DaemonSet runs it as uid 0 with every capability
# dropped (docs/install.md says why).

ARG RUST_VERSION=1.95.0

FROM rust:${RUST_VERSION}-bookworm AS builder
WORKDIR /src
# The dependencies in a layer of their own: the manifests with empty
# sources. A change to Tally's code reuses it; a Cargo.lock change
# rebuilds it.
COPY Cargo.toml Cargo.lock rust-toolchain.toml ./
COPY schema/Cargo.toml schema/
COPY config/Cargo.toml config/
COPY agent/Cargo.toml agent/
COPY collector/Cargo.toml collector/
COPY analyzer/Cargo.toml analyzer/
COPY tui/Cargo.toml tui/
COPY scripts/docker-stub-sources.sh scripts/
RUN sh scripts/docker-stub-sources.sh \
    && cargo build --release --locked --bin tally
COPY . .
# COPY keeps the sources' old times: touch them so cargo rebuilds the
# workspace crates over the stubs.
RUN find src schema config agent collector analyzer tui -name '*.rs' -exec touch {} + \
    && cargo build --release --locked --bin tally \
    && install -D -m 0755 target/release/tally /out/tally

FROM gcr.io/distroless/cc-debian12:nonroot
ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="tally" \
      org.opencontainers.image.description="Tally: GPU, container, model-serving and egress cost telemetry and recommendations (agent and collector)" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.source="https://github.com/tally-dev/tally" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=builder /out/tally /usr/local/bin/tally
USER 65532:65532
EXPOSE 9470 4318
# Whichever of the agent (9470) and the collector (4318) runs must answer.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["/usr/local/bin/tally", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/tally"]
CMD ["agent"]
