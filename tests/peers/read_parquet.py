"""Reads a `tally recommend --format parquet` file with pyarrow (the real
Parquet reader) and prints its schema and rows as JSON for the Rust test
to compare against the JSON output of the same cards."""
import json
import sys

import pyarrow.parquet as pq

path = sys.argv[1]
parquet_file = pq.ParquetFile(path)
table = pq.read_table(path)
print(json.dumps({
    "types": {field.name: str(field.type) for field in table.schema},
    "created_by": parquet_file.metadata.created_by,
    "rows": table.to_pylist(),
}))
