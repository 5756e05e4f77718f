#!/usr/bin/env python3
"""Reads a tmctl Iceberg table through PyIceberg's SqlCatalog, the independent reader of the
lake tests (tests/lake_iceberg.rs), and prints what it saw as one JSON object.

usage: pyiceberg_read.py <db-uri> <warehouse> <namespace.table> [snapshot-id | all]

With `all`, every snapshot is read: "at_snapshots" lists each one's id and row count.

<db-uri> may be the sqlx URL tmctl uses (sqlite://PATH?mode=rwc, postgres://...) or a SQLAlchemy
URL. Exit code 3: python packages missing (the message says which and how to install them).
"""

import json
import sys


def sqlalchemy_uri(uri: str) -> str:
    """tmctl's sqlx URL as SQLAlchemy wants it: sqlx reads `sqlite://PATH` (PATH absolute or
    relative), SQLAlchemy wants `sqlite:///` + an absolute path; PostgreSQL needs a driver."""
    import os

    if uri.startswith("sqlite:"):
        path = uri[len("sqlite:"):].split("?")[0]
        if path.startswith("//"):
            path = path[2:]
        if path.startswith("//"):  # already SQLAlchemy's sqlite:////abs form
            path = "/" + path.lstrip("/")
        return "sqlite:///" + os.path.abspath(path)
    for prefix in ("postgres://", "postgresql://"):
        if uri.startswith(prefix):
            return "postgresql+psycopg2://" + uri[len(prefix):]
    return uri


def main() -> int:
    if len(sys.argv) not in (4, 5):
        print(__doc__, file=sys.stderr)
        return 2
    try:
        from pyiceberg.catalog.sql import SqlCatalog
        import pyarrow  # noqa: F401
    except ImportError as e:
        print(
            f"pyiceberg_read.py: {e}; install with: pip install \"pyiceberg[sql-sqlite,pyarrow]\"",
            file=sys.stderr,
        )
        return 3
    uri, warehouse, name = sys.argv[1], sys.argv[2], sys.argv[3]
    every = len(sys.argv) == 5 and sys.argv[4] == "all"
    snapshot_id = int(sys.argv[4]) if len(sys.argv) == 5 and not every else None

    catalog = SqlCatalog("tm", uri=sqlalchemy_uri(uri), warehouse=warehouse)
    table = catalog.load_table(name)
    data = table.scan().to_arrow()
    out = {
        "namespaces": sorted(".".join(ns) for ns in catalog.list_namespaces()),
        "tables": sorted(".".join(t) for t in catalog.list_tables(name.split(".")[0])),
        "location": table.metadata.location,
        "format_version": table.metadata.format_version,
        "fields": [f.name for f in table.schema().fields],
        "partition_fields": [f.name for f in table.spec().fields],
        "current_snapshot_id": table.metadata.current_snapshot_id,
        "snapshots": [
            {
                "id": s.snapshot_id,
                "parent": s.parent_snapshot_id,
                "operation": s.summary.operation.value if s.summary else None,
                "summary": dict(s.summary.additional_properties) if s.summary else {},
            }
            for s in sorted(table.snapshots(), key=lambda s: (s.sequence_number or 0, s.timestamp_ms))
        ],
        "row_count": data.num_rows,
        "distinct_rows": distinct_rows(data),
        "partitions": partition_counts(data),
    }
    if snapshot_id is not None:
        old = table.scan(snapshot_id=snapshot_id).to_arrow()
        out["at_snapshot"] = {
            "id": snapshot_id,
            "row_count": old.num_rows,
            "distinct_rows": distinct_rows(old),
            "partitions": partition_counts(old),
        }
    if every:
        out["at_snapshots"] = [
            {"id": s.snapshot_id, "row_count": table.scan(snapshot_id=s.snapshot_id).to_arrow().num_rows}
            for s in table.snapshots()
        ]
    print(json.dumps(out, sort_keys=True))
    return 0


def distinct_rows(data) -> int:
    if data.num_rows == 0:
        return 0
    cols = [c for c in data.column_names]
    return data.group_by(cols).aggregate([]).num_rows


def partition_counts(data) -> dict:
    """Rows per (course_id, ingest_date) when the table has those columns."""
    if "course_id" not in data.column_names or "ingest_date" not in data.column_names:
        return {}
    counts: dict = {}
    for c, d in zip(data.column("course_id").to_pylist(), data.column("ingest_date").to_pylist()):
        key = f"{c}|{d}"
        counts[key] = counts.get(key, 0) + 1
    return counts


if __name__ == "__main__":
    sys.exit(main())
