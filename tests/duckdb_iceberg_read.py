#!/usr/bin/env python3
"""Reads an Iceberg table with DuckDB's iceberg extension, a second independent reader for the
maintenance tests (tests/lake_maintenance.rs), and prints one JSON object
{"<snapshot id>": <rows>, ...} with the rows of every snapshot given.

usage: duckdb_iceberg_read.py <metadata.json path> <snapshot-id>...

The extension comes from the PyPI packages duckdb-extension-iceberg and duckdb-extension-avro,
which must match the duckdb version (the extension cannot be downloaded here): install with
pip install "duckdb==1.5.5" "duckdb-extension-iceberg==1.5.5" "duckdb-extension-avro==1.5.5"
Exit code 3: packages missing.
"""

import json
import os
import sys

INSTALL = 'pip install "duckdb==1.5.5" "duckdb-extension-iceberg==1.5.5" "duckdb-extension-avro==1.5.5"'


def extension_file(module, name: str, version: str) -> str:
    path = os.path.join(os.path.dirname(module.__file__), "extensions", f"v{version}", f"{name}.duckdb_extension")
    if not os.path.exists(path):
        raise ImportError(f"{path} is missing (duckdb {version} needs the extension packages of the same version)")
    return path


def main() -> int:
    if len(sys.argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    try:
        import duckdb
        import duckdb_extension_avro
        import duckdb_extension_iceberg

        version = duckdb.__version__
        avro = extension_file(duckdb_extension_avro, "avro", version)
        iceberg = extension_file(duckdb_extension_iceberg, "iceberg", version)
    except ImportError as e:
        print(f"duckdb_iceberg_read.py: {e}; install with: {INSTALL}", file=sys.stderr)
        return 3
    con = duckdb.connect(config={"allow_unsigned_extensions": "true"})
    con.sql(f"LOAD '{avro}'")
    con.sql(f"LOAD '{iceberg}'")
    metadata = sys.argv[1]
    out = {}
    for snapshot in sys.argv[2:]:
        n = con.execute(
            f"SELECT count(*) FROM iceberg_scan(?, snapshot_from_id = {int(snapshot)})", [metadata]
        ).fetchone()[0]
        out[snapshot] = n
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
