#!/bin/sh
# Empty sources for every crate and target of the workspace, so the
# image's dependency layer builds from the manifests alone: a change to
# Tally's own code then reuses that layer (Dockerfile, builder stage).
set -eu
mkdir -p src
echo 'fn main() {}' > src/main.rs
for crate in schema config agent collector analyzer tui; do
  mkdir -p "$crate/src"
  : > "$crate/src/lib.rs"
  # cargo refuses a manifest whose declared benches have no file.
  for bench in $(sed -n '/^\[\[bench\]\]/,/^name/ s/^name *= *"\(.*\)"/\1/p' "$crate/Cargo.toml"); do
    mkdir -p "$crate/benches"
    echo 'fn main() {}' > "$crate/benches/$bench.rs"
  done
done
