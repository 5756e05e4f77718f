#!/usr/bin/env python3
"""Reads tmctl's Iceberg tables through an Iceberg REST catalog with PyIceberg (data files over
S3 with pyarrow), the independent reader of tests/s3_rest.rs, and prints one JSON object:
{"<namespace.table>": {"rows": N, "snapshot_id": ..., "location": ..., "snapshots": [...]}, ...}.

usage: pyiceberg_rest_read.py <rest-uri> <client_id:client_secret> <s3-endpoint> <access-key>
                              <secret-key> <warehouse> <namespace.table>...

With TM_READ_SNAPSHOTS=<id>,<id>… each table also gets "at_snapshots": {"<id>": rows}, the rows
of every listed snapshot.

Exit code 3: python packages missing (the message says which and how to install them).
"""

import json
import os
import sys


def main() -> int:
    if len(sys.argv) < 8:
        print(__doc__, file=sys.stderr)
        return 2
    try:
        from pyiceberg.catalog import load_catalog
        import pyarrow  # noqa: F401
    except ImportError as e:
        print(f"pyiceberg_rest_read.py: {e}; install with: pip install \"pyiceberg[pyarrow]\"", file=sys.stderr)
        return 3
    uri, credential, endpoint, key, secret, warehouse = sys.argv[1:7]
    catalog = load_catalog(
        "tm",
        **{
            "type": "rest",
            "uri": uri,
            "credential": credential,
            "warehouse": warehouse,
            "s3.endpoint": endpoint,
            "s3.access-key-id": key,
            "s3.secret-access-key": secret,
            "s3.region": "us-east-1",
            "s3.path-style-access": "true",
        },
    )
    out = {}
    for name in sys.argv[7:]:
        table = catalog.load_table(name)
        data = table.scan().to_arrow()
        out[name] = {
            "rows": data.num_rows,
            "snapshot_id": table.metadata.current_snapshot_id,
            "location": table.metadata.location,
            "format_version": table.metadata.format_version,
            "snapshots": [
                {"id": s.snapshot_id, "operation": s.summary.operation.value if s.summary else None}
                for s in table.metadata.snapshots
            ],
        }
        wanted = [int(i) for i in os.environ.get("TM_READ_SNAPSHOTS", "").split(",") if i]
        if wanted:
            out[name]["at_snapshots"] = {str(i): table.scan(snapshot_id=i).to_arrow().num_rows for i in wanted}
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
