#!/usr/bin/env python3
"""Silver throughput: `tmctl run silver` against DuckDB doing the same transform, same files, same run.

    python3 benches/silver_vs_duckdb.py TMCTL DATA_DIR SCRATCH [--threads N] [--repeat N]

DATA_DIR holds wide CSV exports (e.g. `tmctl generate --out DATA_DIR --courses 5 --days 10
--rounds 6000 --json-share 0`, about 1.09 GB). For every repetition the harness lands every file
under one ingest date in a fresh tmctl home under SCRATCH (`tmctl ingest DATA_DIR --date D`, not
timed), then times, each as a child process (wall clock; peak RSS = ru_maxrss from `os.wait4`):

- tmctl: `tmctl run silver --date D`, the silver DAG: read every landing file of D, type the 48
  columns, explode the `locations[N].*` slots to rows (padding slots kept and flagged), quarantine
  broken rows with a reason, deduplicate on (round_id, location_index), write zstd Parquet into the
  Iceberg table partitioned by (course_id, ingest_date) and commit one snapshot;
- DuckDB (python `duckdb`, in-memory database): one `COPY (SELECT ...) TO ... (FORMAT parquet,
  COMPRESSION zstd, COMPRESSION_LEVEL 1, PARTITION_BY (course_id, ingest_date))` over the *same
  landing files*: typed columns read by the CSV reader, the same derived columns, the same explode
  (padding slots kept and flagged), the same row-dropping rules (round id missing, start time
  unparseable, coordinate or battery out of range), the same dedup key and preference. By default
  the dedup is two-pass like tmctl's (a cheap scan finds the repeated round ids; only their rows go
  through a QUALIFY row_number() window); `--duckdb-window` also times the textbook single window
  over every row, and `--duckdb-drop-padding` a variant that drops padding slots.

Not replicated on the DuckDB side: tmctl's loop-course rule for nine_number (DuckDB numbers nines by
hole and section band only), the quarantine file with reasons, the Iceberg commit. Both sides get
the same threads (`SET threads`; with --threads below the core count both are pinned with taskset).
Afterwards (not timed) the two outputs are compared: rows, padding rows, distinct keys, sums.
"""

import argparse
import glob
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time

SLOT_RE = re.compile(r"^locations\[(\d+)\]\.(.+)$")
MB = 1_000_000

# Round-level source columns → (silver column, DuckDB type as read).
ROUND_COLS = [
    ("startHole", "start_hole", "INTEGER"),
    ("startSection", "start_section", "INTEGER"),
    ("endSection", "end_section", "INTEGER"),
    ("isNineHole", "is_nine_hole", "BOOLEAN"),
    ("currentNine", "current_nine", "INTEGER"),
    ("goalTime", "goal_time", "INTEGER"),
    ("complete", "is_complete", "BOOLEAN"),
    ("device", "device", "VARCHAR"),
    ("firstFix", "first_fix", "VARCHAR"),
    ("lastFix", "last_fix", "VARCHAR"),
    ("goalName", "goal_name", "VARCHAR"),
    ("goalTimeFraction", "goal_time_fraction", "DOUBLE"),
    ("isIncomplete", "is_incomplete", "BOOLEAN"),
    ("isSecondary", "is_secondary", "BOOLEAN"),
    ("isAutoAssigned", "is_auto_assigned", "BOOLEAN"),
    ("lastSectionStart", "last_section_start", "DOUBLE"),
    ("currentSection", "current_section", "INTEGER"),
    ("currentHole", "current_hole", "INTEGER"),
    ("currentHoleSection", "current_hole_section", "INTEGER"),
]
# Per-slot source fields → (struct field, DuckDB type as read).
SLOT_COLS = [
    ("startTime", "off", "DOUBLE"),
    ("date", "fix_date", "TIMESTAMPTZ"),
    ("hole", "hole", "INTEGER"),
    ("sectionNumber", "section", "INTEGER"),
    ("holeSection", "hole_section", "INTEGER"),
    ("fixCoordinates[0]", "lon", "DOUBLE"),
    ("fixCoordinates[1]", "lat", "DOUBLE"),
    ("isCache", "is_cache", "BOOLEAN"),
    ("isProjected", "is_projected", "BOOLEAN"),
    ("isProblem", "is_problem", "BOOLEAN"),
    ("paceGap", "pace_gap", "DOUBLE"),
    ("positionalGap", "positional_gap", "DOUBLE"),
    ("pace", "pace", "DOUBLE"),
    ("batteryPercentage", "battery", "DOUBLE"),
]


def q(name):
    return '"' + name.replace('"', '""') + '"'


def sql_str(s):
    return "'" + s.replace("'", "''") + "'"


def read_header(path):
    with open(path, "rb") as f:
        line = f.readline().decode("utf-8", "replace").lstrip("\ufeff").rstrip("\r\n")
    return [c.strip() for c in line.split(",")]


def duckdb_sql(files, out_dir, drop_padding, dedup="two-pass"):
    """The transform as one COPY statement (files: landing paths with course_id=/ingest_date= in them).

    Files are grouped by header: each group is read with its own slot list (a round has exactly the
    slots of its file's header, as in tmctl), and the groups are combined with UNION ALL.

    dedup="window" is the textbook form: QUALIFY row_number() over every row. dedup="two-pass" is
    what tmctl does: a cheap scan finds the round ids seen more than once, and only their rows go
    through the window (about twice as fast in DuckDB on the benchmark data, see README)."""
    groups = {}
    for f in files:
        groups.setdefault(tuple(read_header(f)), []).append(f)
    band = "least((greatest(section, 1) - 1) // 27 + 1, 9)"
    padding_filter = "AND NOT is_location_padding" if drop_padding else ""
    union = "\n    UNION ALL\n".join(group_select(list(h), fs) for h, fs in groups.items())
    qualify = """QUALIFY row_number() OVER (
      PARTITION BY course_id, ingest_date, round_id, location_index
      ORDER BY is_cache DESC NULLS LAST, is_projected ASC NULLS LAST, battery_percentage DESC NULLS LAST) = 1"""
    if dedup == "window":
        final = f"SELECT * FROM shaped\n  {qualify}"
    elif dedup == "two-pass":
        final = f"""SELECT * FROM shaped WHERE (course_id, round_id) NOT IN (SELECT (course_id, round_id) FROM repeated)
  UNION ALL
  SELECT * FROM shaped WHERE (course_id, round_id) IN (SELECT (course_id, round_id) FROM repeated)
  {qualify}"""
    else:
        raise ValueError(dedup)
    return f"""
COPY (
  WITH rounds AS NOT MATERIALIZED (
{union}
  ),
  repeated AS (
    SELECT course_id, round_id FROM rounds WHERE round_id IS NOT NULL GROUP BY ALL HAVING count(*) > 1
  ),
  exploded AS NOT MATERIALIZED (
    SELECT * EXCLUDE (slots), unnest(slots, recursive := true) FROM rounds
  ),
  typed AS NOT MATERIALIZED (
    SELECT *,
      coalesce(fix_date, round_start_time + to_microseconds(round(off * 1e6)::BIGINT)) AS fix_timestamp,
      hole IS NULL AND section IS NULL AS is_location_padding,
      CASE
        WHEN round_id IS NULL THEN 'missing_round_id'
        WHEN start_raw IS NOT NULL AND round_start_time IS NULL THEN 'unparseable_timestamp'
        WHEN lon < -180 OR lon > 180 THEN 'invalid_longitude'
        WHEN lat < -90 OR lat > 90 THEN 'invalid_latitude'
        WHEN battery < 0 OR battery > 100 THEN 'battery_out_of_range'
      END AS reason
    FROM exploded
  ),
  shaped AS NOT MATERIALIZED (
    SELECT
      round_id, course_id, ingest_date, fix_timestamp, is_location_padding, round_start_time, round_end_time,
      start_hole, start_section, end_section, is_nine_hole, current_nine, goal_time, is_complete, device,
      first_fix, last_fix, goal_name, goal_time_fraction, is_incomplete, is_secondary, is_auto_assigned,
      last_section_start, current_section, current_hole, current_hole_section,
      location_index::INTEGER AS location_index, hole AS hole_number, section AS section_number, hole_section,
      lon AS longitude, lat AS latitude, is_cache, is_projected, is_problem,
      round(pace_gap, 3) AS pace_gap, round(positional_gap, 3) AS positional_gap, round(pace, 3) AS pace,
      battery AS battery_percentage,
      fix_timestamp::DATE AS event_date,
      round(epoch_us(round_end_time - round_start_time) / 60e6, 2) AS round_duration_minutes,
      year(fix_timestamp)::INTEGER AS event_year, month(fix_timestamp)::INTEGER AS event_month,
      day(fix_timestamp)::INTEGER AS event_day, isodow(fix_timestamp)::INTEGER AS event_weekday,
      CASE
        WHEN is_location_padding THEN NULL
        WHEN max_hole >= 10 THEN coalesce(least((greatest(hole, 1) - 1) // 9 + 1, 9), {band})
        WHEN max_section > 27 THEN coalesce({band}, 1)
        ELSE 1
      END::INTEGER AS nine_number,
      CASE WHEN lon IS NOT NULL AND lat IS NOT NULL THEN 'POINT(' || lon || ' ' || lat || ')' END AS geometry_wkt,
      fix_timestamp IS NULL AS is_timestamp_missing
    FROM typed
    WHERE reason IS NULL {padding_filter}
  )
  {final}
) TO {sql_str(out_dir)} (FORMAT parquet, COMPRESSION zstd, COMPRESSION_LEVEL 1,
                      PARTITION_BY (course_id, ingest_date), WRITE_PARTITION_COLUMNS true, OVERWRITE_OR_IGNORE true)
"""


def group_select(headers, files):
    """Round-level columns, typed, plus the list of slot structs, for files sharing one header."""
    slots = sorted({int(m.group(1)) for h in headers if (m := SLOT_RE.match(h)) and m.group(2) == "startTime"})
    types = {"_id": "VARCHAR", "startTime": "VARCHAR", "endTime": "TIMESTAMPTZ"}
    for src, _, ty in ROUND_COLS:
        types[src] = ty
    for n in slots:
        for field, _, ty in SLOT_COLS:
            types[f"locations[{n}].{field}"] = ty
    columns = {h: types.get(h, "VARCHAR") for h in headers}

    def col(name, ty="VARCHAR"):
        return q(name) if name in headers else f"NULL::{ty}"

    struct_items = []
    for n in slots:
        fields = [f"'location_index': {n}"]
        fields += [f"{sql_str(alias)}: {col(f'locations[{n}].{field}', ty)}" for field, alias, ty in SLOT_COLS]
        struct_items.append("{" + ", ".join(fields) + "}")
    holes = ", ".join(col(f"locations[{n}].hole", "INTEGER") for n in slots)
    sections = ", ".join(col(f"locations[{n}].sectionNumber", "INTEGER") for n in slots)
    round_select = ",\n      ".join(f"{col(src, ty)}::{ty} AS {dst}" for src, dst, ty in ROUND_COLS)
    file_list = "[" + ", ".join(sql_str(f) for f in files) + "]"
    column_map = "{" + ", ".join(f"{sql_str(k)}: {sql_str(v)}" for k, v in columns.items()) + "}"
    return f"""    SELECT
      {col('_id')} AS round_id, course_id::VARCHAR AS course_id, ingest_date::DATE AS ingest_date,
      {col('startTime')} AS start_raw,
      TRY_CAST({col('startTime')} AS TIMESTAMPTZ) AS round_start_time,
      {col('endTime', 'TIMESTAMPTZ')}::TIMESTAMPTZ AS round_end_time,
      {round_select},
      coalesce(greatest({holes}), 0) AS max_hole,
      coalesce(greatest({sections}), 0) AS max_section,
      [{", ".join(struct_items)}] AS slots
    FROM read_csv({file_list}, header = true, hive_partitioning = true, auto_detect = false,
                  delim = ',', quote = '"', escape = '"', columns = {column_map})"""


def duckdb_child(args):
    """Runs inside the measured child process: the COPY, then a JSON line with what it did."""
    import duckdb

    t0 = time.perf_counter()
    files = json.load(open(args.files_json))
    con = duckdb.connect(":memory:")
    con.execute(f"SET threads = {int(args.threads)}")
    con.execute("SET TimeZone = 'UTC'")
    con.execute("SET preserve_insertion_order = false")
    con.execute("SET enable_progress_bar = false")
    con.execute(f"SET temp_directory = {sql_str(os.path.join(args.out, '.tmp'))}")
    os.makedirs(os.path.join(args.out, "data"), exist_ok=True)
    sql = duckdb_sql(files, os.path.join(args.out, "data"), args.drop_padding, args.dedup)
    t1 = time.perf_counter()
    rows = con.execute(sql).fetchone()[0]
    t2 = time.perf_counter()
    print(json.dumps({"rows_out": rows, "setup_s": t1 - t0, "query_s": t2 - t1}))


def measure(argv, env=None, cwd=None):
    """Runs a child; returns (wall seconds, peak RSS bytes, stdout text)."""
    out_path = os.path.join(SCRATCH_LOGS, f"child-{time.time_ns()}.out")
    err_path = out_path[:-4] + ".err"
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        t0 = time.perf_counter()
        p = subprocess.Popen(argv, stdout=out, stderr=err, env=env, cwd=cwd)
        _, status, usage = os.wait4(p.pid, 0)
        wall = time.perf_counter() - t0
    p.returncode = os.waitstatus_to_exitcode(status)
    text = open(out_path, encoding="utf-8", errors="replace").read()
    if p.returncode != 0:
        sys.exit(
            f"{' '.join(argv[:4])}… exited {p.returncode}\n{text[-2000:]}\n"
            f"{open(err_path, encoding='utf-8', errors='replace').read()[-4000:]}"
        )
    return wall, usage.ru_maxrss * 1024, text


def landing_files(home, date):
    root = os.path.join(home, "buckets", "tm-lakehouse-landing")
    return sorted(glob.glob(os.path.join(root, "course_id=*", f"ingest_date={date}", "*")))


def prepare_home(args, home):
    """A fresh tmctl home with every file of DATA_DIR landed under one ingest date (not timed)."""
    shutil.rmtree(home, ignore_errors=True)
    os.makedirs(home)
    t0 = time.perf_counter()
    # Exit code 1 = some files were rejected (the generator writes a few bad files on purpose).
    r = subprocess.run([args.tmctl, "--home", home, "--dags", args.dags, "ingest", args.data_dir, "--date", args.date],
                       capture_output=True, text=True)
    files = landing_files(home, args.date)
    if r.returncode not in (0, 1) or not files:
        sys.exit(f"tmctl ingest exited {r.returncode}, {len(files)} files landed\n{r.stderr[-4000:]}")
    other = [f for f in files if not f.endswith(".csv")]
    if other:
        sys.exit(f"{len(other)} landed files are not CSV (generate with --json-share 0): {other[:3]}")
    return files, time.perf_counter() - t0


def tmctl_summary(home, date):
    pattern = os.path.join(home, "buckets", "tm-lakehouse-observability", "silver", f"ingest_date={date}", "*", "summary.json")
    paths = sorted(glob.glob(pattern), key=os.path.getmtime)
    if not paths:
        sys.exit(f"no silver summary under {pattern}")
    return json.load(open(paths[-1]))


def check_outputs(tmctl_home, duck_dir):
    """Compares the two Parquet outputs (not timed)."""
    import duckdb

    con = duckdb.connect(":memory:")
    con.execute("SET TimeZone = 'UTC'")
    con.execute("SET enable_progress_bar = false")
    tm_glob = os.path.join(tmctl_home, "buckets", "tm-lakehouse-source", "**", "*.parquet")
    dk_glob = os.path.join(duck_dir, "data", "**", "*.parquet")
    stats = """
      count(*) AS rows,
      count(*) FILTER (WHERE is_location_padding) AS padding_rows,
      count(DISTINCT (course_id, round_id, location_index)) AS distinct_keys,
      count(DISTINCT round_id) AS rounds,
      count(fix_timestamp) AS with_timestamp,
      sum(pace) AS sum_pace,
      sum(battery_percentage) AS sum_battery,
      count(*) FILTER (WHERE is_cache) AS cache_rows,
      count(*) FILTER (WHERE is_projected) AS projected_rows,
      sum(epoch_us(fix_timestamp)) AS sum_fix_timestamp_us,
      sum(round_duration_minutes) AS sum_duration_min,
      sum(event_weekday) AS sum_weekday,
      sum(nine_number) AS sum_nine
    """
    out = {}
    for name, g in (("tmctl", tm_glob), ("duckdb", dk_glob)):
        cur = con.execute(f"SELECT {stats} FROM read_parquet({sql_str(g)}, union_by_name = true)")
        cols = [d[0] for d in cur.description]
        out[name] = dict(zip(cols, cur.fetchone()))
    return out


def same(a, b):
    if isinstance(a, float) or isinstance(b, float):
        return a is not None and b is not None and abs(a - b) <= 1e-9 * max(abs(a), abs(b), 1.0)
    return a == b


def human(n):
    return f"{n:,.0f}"


# (key, label, dedup form, drop padding)
VARIANTS = {
    "duckdb": ("DuckDB", "two-pass", False),
    "duckdb_window": ("DuckDB, window dedup", "window", False),
    "duckdb_drop_padding": ("DuckDB, no padding rows", "two-pass", True),
}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("tmctl", nargs="?", help="path to the tmctl binary (a release build)")
    ap.add_argument("data_dir", nargs="?", help="directory of wide CSV exports")
    ap.add_argument("scratch", nargs="?", help="scratch directory (a tmctl home and DuckDB output go here; needs ~2× the data)")
    ap.add_argument("--threads", type=int, default=os.cpu_count(), help="threads for both sides (default: cores)")
    ap.add_argument("--repeat", type=int, default=1, help="alternating runs per side; medians are reported")
    ap.add_argument("--date", default="2025-06-01", help="ingest date to land every file under")
    ap.add_argument("--dags", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "dags"))
    ap.add_argument("--duckdb-window", action="store_true",
                    help="also time DuckDB deduplicating with one window over every row (the textbook form)")
    ap.add_argument("--duckdb-drop-padding", action="store_true",
                    help="also time DuckDB dropping padding slots (fewer rows to write than tmctl)")
    ap.add_argument("--no-check", action="store_true", help="skip the (untimed) comparison of the outputs")
    ap.add_argument("--json", help="also write the results as JSON to this file")
    ap.add_argument("--duckdb-child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--files-json", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    ap.add_argument("--dedup", default="two-pass", help=argparse.SUPPRESS)
    ap.add_argument("--drop-padding", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.duckdb_child:
        return duckdb_child(args)
    if not (args.tmctl and args.data_dir and args.scratch):
        ap.error("TMCTL, DATA_DIR and SCRATCH are required")

    global SCRATCH_LOGS
    args.tmctl = os.path.abspath(args.tmctl)
    args.dags = os.path.abspath(args.dags)
    scratch = os.path.abspath(args.scratch)
    SCRATCH_LOGS = os.path.join(scratch, "logs")
    os.makedirs(SCRATCH_LOGS, exist_ok=True)
    import duckdb

    # Threads: tmctl sizes its pools by the CPUs it may run on, so with --threads below the number
    # of cores both sides are pinned to the first N cores (taskset); DuckDB also gets SET threads.
    pin = []
    if args.threads < (os.cpu_count() or 1):
        if not shutil.which("taskset"):
            sys.exit("--threads below the core count needs taskset (util-linux)")
        pin = ["taskset", "-c", f"0-{args.threads - 1}"]
    env = dict(os.environ, TM_LOG="warn")
    variants = ["duckdb"] + [k for k, on in (("duckdb_window", args.duckdb_window),
                                              ("duckdb_drop_padding", args.duckdb_drop_padding)) if on]

    results = {k: [] for k in ["tmctl"] + variants}
    home = os.path.join(scratch, "tmctl-home")
    files = []
    for i in range(args.repeat):
        files, ingest_s = prepare_home(args, home)
        if i == 0:
            in_bytes = sum(os.path.getsize(f) for f in files)
            print(f"landed {len(files)} CSV files, {in_bytes / MB:,.1f} MB, under ingest_date={args.date} "
                  f"(tmctl ingest {ingest_s:.1f} s, not timed); threads={args.threads}", flush=True)
        files_json = os.path.join(scratch, "files.json")
        with open(files_json, "w") as f:
            json.dump(files, f)

        argv = pin + [args.tmctl, "--home", home, "--dags", args.dags, "run", "silver", "--date", args.date]
        wall, rss, _ = measure(argv, env=env)
        s = tmctl_summary(home, args.date)
        stat = lambda k: sum(c["stats"].get(k, 0) for c in s["courses"])  # noqa: E731
        results["tmctl"].append({"wall_s": wall, "peak_rss": rss, "records_in": s["records_in"], "rows_out": s["rows_out"],
                                 "quarantined": sum(s["quarantined"].values()),
                                 "duplicates_removed": stat("duplicate_rows_removed"), "padding_rows": stat("padding_rows")})
        print(f"  run {i + 1}: {'tmctl':<24}{wall:7.2f} s {rss / 2**20:7.0f} MiB {s['rows_out']:>12,} rows", flush=True)

        for key in variants:
            label, dedup, drop = VARIANTS[key]
            out = os.path.join(scratch, key)
            shutil.rmtree(out, ignore_errors=True)
            os.makedirs(out)
            argv = pin + [sys.executable, os.path.abspath(__file__), "--duckdb-child", "--files-json", files_json,
                          "--out", out, "--threads", str(args.threads), "--dedup", dedup]
            argv += ["--drop-padding"] if drop else []
            wall, rss, text = measure(argv)
            child = json.loads(text.strip().splitlines()[-1])
            results[key].append({"wall_s": wall, "peak_rss": rss, "rows_out": child["rows_out"],
                                 "query_s": child["query_s"], "setup_s": child["setup_s"]})
            print(f"  run {i + 1}: {label:<24}{wall:7.2f} s {rss / 2**20:7.0f} MiB {child['rows_out']:>12,} rows", flush=True)

    in_bytes = sum(os.path.getsize(f) for f in files)
    med = {k: {m: statistics.median(r[m] for r in v) for m in ("wall_s", "peak_rss", "rows_out")}
           for k, v in results.items()}
    print()
    print(f"Silver transform of {len(files)} CSV files, {in_bytes / MB:,.1f} MB, threads={args.threads}, "
          f"median of {args.repeat} (DuckDB {duckdb.__version__})")
    header = f"{'engine':<26}{'wall s':>8}{'rows out':>13}{'rows/s':>12}{'MB/s':>8}{'peak RSS MiB':>14}"
    print(header)
    print("-" * len(header))
    for k, m in med.items():
        label = "tmctl silver" if k == "tmctl" else VARIANTS[k][0]
        print(f"{label:<26}{m['wall_s']:>8.2f}{human(m['rows_out']):>13}{human(m['rows_out'] / m['wall_s']):>12}"
              f"{in_bytes / MB / m['wall_s']:>8.1f}{m['peak_rss'] / 2**20:>14.0f}")
    t = med["tmctl"]
    print()
    for k in variants:
        d = med[k]
        print(f"tmctl vs {VARIANTS[k][0]}: {d['wall_s'] / t['wall_s']:.2f}x the throughput "
              f"(DuckDB wall / tmctl wall), {d['peak_rss'] / t['peak_rss']:.1f}x less peak memory")
    tm = results["tmctl"][-1]
    print(f"\ntmctl counts: {tm['records_in']:,} records in, {tm['rows_out']:,} rows out "
          f"({tm['padding_rows']:,} padding), {tm['quarantined']:,} rows quarantined, "
          f"{tm['duplicates_removed']:,} duplicates removed")
    check = None
    if not args.no_check:
        check = check_outputs(home, os.path.join(scratch, "duckdb"))
        print("\nOutputs compared (not timed). Expected differences: nine_number (DuckDB skips tmctl's loop-course")
        print("rule) and round_duration_minutes (ties between copies of a repeated round: tmctl keeps the first")
        print("seen, DuckDB any; the copies differ in endTime)")
        print(f"{'':<22}{'tmctl':>24}{'DuckDB':>24}{'same':>6}")
        for k in check["tmctl"]:
            a, b = check["tmctl"][k], check["duckdb"][k]
            print(f"{k:<22}{str(a):>24}{str(b):>24}{'yes' if same(a, b) else 'NO':>6}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"files": len(files), "bytes": in_bytes, "threads": args.threads, "duckdb": duckdb.__version__,
                       "runs": results, "median": med, "check": check}, f, indent=2, default=str)


SCRATCH_LOGS = "."

if __name__ == "__main__":
    main()
