#!/usr/bin/env python3
"""Gold refresh: `tmctl run gold` against DuckDB running the same SQL files over the same silver data.

    python3 benches/gold_vs_duckdb.py TMCTL SCRATCH [--courses 5 --days 30 --rounds 3000]
                                      [--history 10] [--repeat 2] [--threads N] [--json FILE] [--keep]

1. A lake, built once and cached under SCRATCH/lake-c<C>-d<D>-r<R>-h<H>/ (reused when its
   `complete.json` marker exists; a half-built one is rebuilt), not timed: `tmctl generate
   --json-share 0` writes CSV exports named <course>.<YYYY-MM-DD>.<n>.csv, `tmctl ingest` lands
   them (ingest date from the file name), `tmctl backfill silver` runs silver for the first
   --history ingest dates (one Iceberg overwrite snapshot per date). The generated input is deleted
   once landed (the landing bucket holds a byte-for-byte copy) unless --keep.
2. Timed, each as a child process (wall clock; peak RSS = ru_maxrss from `os.wait4`), alternating
   per repetition:
   - tmctl: `tmctl run gold --date D` — wait_for_silver, then every model of dags/gold/*.sql,
     each a full refresh of an Iceberg table: DataFusion query → zstd Parquet → data tests on the
     staged result → commit. Each repetition uses another date (the last history date, then the
     one before, …; the date the gold tables were last committed under is skipped), so each run
     has its own run key and really recomputes and commits every model (checked afterwards: every
     gold table has a new current snapshot carrying that date).
   - DuckDB (python `duckdb`, in-memory): `CREATE VIEW silver.fact_telemetry_event AS SELECT *
     FROM read_parquet([...])` over the data files of silver's *current snapshot* (listed with
     PyIceberg, never globbed: replaced snapshots leave old files in the directory), then for each
     model in dependency order (`gold.<x>` in its SQL, comments aside) `CREATE TABLE gold.<model>
     AS <the .sql file, unchanged>`. Session settings: `SET threads`, `SET TimeZone = 'UTC'`
     (tmctl's session time zone; silver's timestamps are timestamptz), memory_limit left at its
     default. No data tests, no Parquet, no commit.
   Both sides get the same threads; with --threads below the core count both are pinned to the
   first N cores with taskset (tmctl sizes its pools by the CPUs it may use).
3. Not timed: row counts of every gold table, tmctl (`tmctl query`) against DuckDB.
"""

import argparse
import datetime
import glob
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time

MB = 1_000_000
HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
DATE_RE = re.compile(r"\d{4}-\d{2}-\d{2}")
GOLD_REF_RE = re.compile(r"\bgold\.(\w+)", re.IGNORECASE)
COMMENT_RE = re.compile(r"--[^\n]*")
SILVER_TABLE = "silver.fact_telemetry_event"
SCRATCH_LOGS = "."


def sql_str(s):
    return "'" + s.replace("'", "''") + "'"


# ---- models --------------------------------------------------------------------------------------


def load_models(gold_dir):
    """{model: sql text} for dags/gold/*.sql, and the models in dependency order.

    A model depends on every other model it names as `gold.<x>` outside `--` comments (the SQL
    text itself is passed to DuckDB unchanged). Kahn's algorithm, alphabetical among ready models."""
    sql = {}
    for path in sorted(glob.glob(os.path.join(gold_dir, "*.sql"))):
        sql[os.path.splitext(os.path.basename(path))[0]] = open(path, encoding="utf-8").read()
    deps = {m: sorted({d.lower() for d in GOLD_REF_RE.findall(COMMENT_RE.sub("", text))} & set(sql) - {m})
            for m, text in sql.items()}
    order, done = [], set()
    while len(order) < len(sql):
        ready = [m for m in sorted(sql) if m not in done and all(d in done for d in deps[m])]
        if not ready:
            sys.exit(f"cycle among gold models: {sorted(set(sql) - done)}")
        order.append(ready[0])
        done.add(ready[0])
    return sql, deps, order


# ---- DuckDB child --------------------------------------------------------------------------------


def create_course_profiles(con, path):
    """seed.course_profiles (what tmctl's gold sessions register from dags/courses.toml), with
    the columns and defaults of src/courses.rs, so the models joining gold.dim_course_profile
    run unchanged."""
    import tomllib

    courses = tomllib.load(open(path, "rb")).get("course", []) if os.path.exists(path) else []
    con.execute("CREATE SCHEMA seed")
    con.execute("""CREATE TABLE seed.course_profiles (course_id VARCHAR, course_name VARCHAR, timezone VARCHAR,
        course_type VARCHAR, volume_profile VARCHAR, peak_season_start_month INT, peak_season_end_month INT,
        season_start_month INT, season_end_month INT, is_loop_course BOOLEAN, latitude DOUBLE, longitude DOUBLE,
        expected_cadence_hours BIGINT, notes VARCHAR)""")
    for c in courses:
        peak, season, loc = c.get("peak_season") or [None, None], c.get("season") or [None, None], c.get("location") or {}
        cadence = c.get("expected_cadence", "2d")
        hours = int(cadence[:-1]) * {"d": 24, "h": 1}[cadence[-1]]
        con.execute("INSERT INTO seed.course_profiles VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [c["id"], c.get("name", c["id"]), c["timezone"], c.get("course_type", "other"),
                     c.get("volume_profile", "unknown"), peak[0], peak[1], season[0], season[1], c.get("loop", False),
                     loc.get("lat"), loc.get("lon"), hours, c.get("notes")])


def duckdb_child(args):
    """Runs inside the measured child process: every model, then one JSON line with what happened."""
    t0 = time.perf_counter()
    import duckdb

    spec = json.load(open(args.spec))
    con = duckdb.connect()  # in-memory
    con.execute(f"SET threads = {int(args.threads)}")
    con.execute("SET TimeZone = 'UTC'")
    con.execute("SET enable_progress_bar = false")
    con.execute("CREATE SCHEMA silver")
    con.execute("CREATE SCHEMA gold")
    files = "[" + ", ".join(sql_str(f) for f in spec["files"]) + "]"
    con.execute(f"CREATE VIEW {SILVER_TABLE} AS SELECT * FROM read_parquet({files})")
    create_course_profiles(con, os.path.join(os.path.dirname(spec["gold_dir"]), "courses.toml"))
    t1 = time.perf_counter()
    models, errors, skipped = [], {}, {}
    for m in spec["order"]:
        bad = [d for d in spec["deps"][m] if d in errors or d in skipped]
        if bad:
            skipped[m] = f"reads gold.{bad[0]}, which failed"
            continue
        text = open(os.path.join(spec["gold_dir"], m + ".sql"), encoding="utf-8").read()
        s = time.perf_counter()
        try:
            con.execute(f"CREATE TABLE gold.{m} AS\n{text}")
        except duckdb.Error as e:
            errors[m] = f"{type(e).__name__}: {e}"
            continue
        models.append({"model": m, "seconds": time.perf_counter() - s})
    t2 = time.perf_counter()
    # Row counts (after the models; in-memory tables, negligible next to the models).
    for r in models:
        r["rows"] = con.execute(f"SELECT count(*) FROM gold.{r['model']}").fetchone()[0]
    silver_rows = con.execute(f"SELECT count(*) FROM {SILVER_TABLE}").fetchone()[0] if args.count_silver else None
    print(json.dumps({"setup_s": t1 - t0, "models_s": t2 - t1, "models": models, "errors": errors,
                      "skipped": skipped, "silver_rows": silver_rows, "duckdb": duckdb.__version__}))


# ---- processes -----------------------------------------------------------------------------------


class Launcher:
    """Starts the measured children from a small forked helper.

    Linux carries a process's peak RSS across fork and exec: a child forked (or vforked) from
    this process and exec'ing tmctl or python starts with ru_maxrss = this process's high-water
    mark, which reaches 100+ MB once pyarrow, PyIceberg and DuckDB are imported (`true` measures
    105 MB then). So the helper is forked at start-up, before those imports (about 13 MB), and it
    runs every measured child: their ru_maxrss floor is the helper's, not this process's.
    `floor_rss` is what the helper measures for `true`."""

    def __init__(self):
        req_r, req_w = os.pipe()
        res_r, res_w = os.pipe()
        self.pid = os.fork()
        if self.pid == 0:
            os.close(req_w)
            os.close(res_r)
            try:
                self._serve(os.fdopen(req_r, "r"), os.fdopen(res_w, "w"))
            finally:
                os._exit(0)
        os.close(req_r)
        os.close(res_w)
        self.requests, self.results = os.fdopen(req_w, "w"), os.fdopen(res_r, "r")
        self.floor_rss = self.run(["true"], os.devnull, os.devnull)[1]

    @staticmethod
    def _serve(requests, results):
        for line in requests:
            req = json.loads(line)
            try:
                with open(req["out"], "wb") as out, open(req["err"], "wb") as err:
                    t0 = time.perf_counter()
                    p = subprocess.Popen(req["argv"], stdout=out, stderr=err, env=req["env"], cwd=req["cwd"])
                    _, status, usage = os.wait4(p.pid, 0)
                    wall = time.perf_counter() - t0
                res = {"wall": wall, "rss": usage.ru_maxrss * 1024, "code": os.waitstatus_to_exitcode(status),
                       "cpu": usage.ru_utime + usage.ru_stime}
            except OSError as e:
                res = {"wall": 0.0, "rss": 0, "code": 127, "error": str(e)}
            results.write(json.dumps(res) + "\n")
            results.flush()

    def run(self, argv, out_path, err_path, env=None, cwd=None):
        self.requests.write(json.dumps({"argv": argv, "out": out_path, "err": err_path,
                                        "env": env if env is not None else dict(os.environ), "cwd": cwd}) + "\n")
        self.requests.flush()
        res = json.loads(self.results.readline())
        if "error" in res:
            sys.exit(f"cannot start {argv[0]}: {res['error']}")
        self.last_cpu = res.get("cpu", 0.0)
        return res["wall"], res["rss"], res["code"]

    def close(self):
        self.requests.close()
        os.waitpid(self.pid, 0)


LAUNCHER = None


def measure(argv, env=None, cwd=None, allow_fail=False):
    """Runs a child through the launcher; returns (wall seconds, peak RSS bytes, exit code, stdout, stderr)."""
    out_path = os.path.join(SCRATCH_LOGS, f"child-{time.time_ns()}.out")
    err_path = out_path[:-4] + ".err"
    wall, rss, code = LAUNCHER.run(argv, out_path, err_path, env=env, cwd=cwd)
    text = open(out_path, encoding="utf-8", errors="replace").read()
    errtext = open(err_path, encoding="utf-8", errors="replace").read()
    if code != 0 and not allow_fail:
        sys.exit(f"{' '.join(argv[:6])}… exited {code}\n--- stdout\n{text[-4000:]}\n--- stderr\n{errtext[-4000:]}")
    return wall, rss, code, text, errtext


class Tmctl:
    """Runs tmctl sub-commands (not timed) in one home, with cwd = the repository (dags/ found)."""

    def __init__(self, binary, home, dags, env):
        self.binary, self.home, self.dags, self.env = binary, home, dags, env

    def argv(self, *args):
        return [self.binary, "--home", self.home, "--dags", self.dags, *args]

    def run(self, *args, ok=(0,), quiet=False):
        r = subprocess.run(self.argv(*args), capture_output=True, text=True, cwd=REPO, env=self.env)
        if r.returncode not in ok:
            sys.exit(f"tmctl {' '.join(args)[:200]} exited {r.returncode}\n--- stdout\n{r.stdout[-4000:]}\n"
                     f"--- stderr\n{r.stderr[-4000:]}")
        if not quiet and r.stderr.strip():
            print("    " + r.stderr.strip().replace("\n", "\n    "), file=sys.stderr)
        return r

    def json(self, *args):
        return json.loads(self.run(*args, quiet=True).stdout)

    def query(self, sql):
        return self.json("query", sql, "--format", "json")

    def runs(self, dag):
        return self.json("runs", "list", "--dag", dag, "--limit", "1000", "--json")


LOG_TS_RE = re.compile(r"^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?)Z\s")


def slot_times(tm, run_id, models):
    """{model: (seconds in a model slot, of which until the result was staged)} from each model's
    log of its last try (not timed): from "model slot acquired" to "published" (the data tests and
    the commit come after "staged the new result"). A task's duration in the state DB also holds
    the wait for a slot, which is most of it for a model that waits behind the long ones."""
    def stamp(line):
        m = LOG_TS_RE.match(line)
        return datetime.datetime.fromisoformat(m.group(1)) if m else None

    out = {}
    for model in models:
        lines = tm.run("logs", str(run_id), model, quiet=True).stdout.splitlines()
        last = {}
        for marker in ("model slot acquired", "staged the new result", "published model="):
            hits = [t for t in (stamp(line) for line in lines if marker in line) if t]
            if hits:
                last[marker] = hits[-1]
        start, end = last.get("model slot acquired"), last.get("published model=")
        if start and end:
            staged = last.get("staged the new result", end)
            out[model] = ((end - start).total_seconds(), (staged - start).total_seconds())
    return out


# ---- the lake ------------------------------------------------------------------------------------


def build_lake(args, tm, lake_dir):
    """generate → ingest → backfill silver over the first --history dates (not timed)."""
    shutil.rmtree(lake_dir, ignore_errors=True)
    os.makedirs(tm.home)
    input_dir = os.path.join(lake_dir, "input")
    t0 = time.perf_counter()
    tm.run("generate", "--out", input_dir, "--courses", str(args.courses), "--days", str(args.days),
           "--rounds", str(args.rounds), "--json-share", "0", quiet=True)
    names = sorted(os.listdir(input_dir))
    in_bytes = sum(os.path.getsize(os.path.join(input_dir, n)) for n in names)
    dates = sorted({m.group(0) for n in names if (m := DATE_RE.search(n))})
    print(f"  generated {len(names)} files, {in_bytes / MB:,.1f} MB, {len(dates)} dates "
          f"({time.perf_counter() - t0:.1f} s)", flush=True)
    if len(dates) < args.history:
        sys.exit(f"--history {args.history} but the generated files carry only {len(dates)} dates")
    t0 = time.perf_counter()
    # Exit code 1 = some files were rejected (the generator writes a few bad files on purpose).
    r = tm.run("ingest", input_dir, ok=(0, 1), quiet=True)
    ingest_exit = r.returncode
    landed = glob.glob(os.path.join(tm.home, "buckets", "tm-lakehouse-landing", "course_id=*", "ingest_date=*", "*"))
    if not landed:
        sys.exit(f"tmctl ingest landed no file (exit {r.returncode})\n{r.stderr[-4000:]}")
    print(f"  ingested: {len(landed)} files landed (exit {r.returncode}; 1 = some deliberately bad files rejected) "
          f"({time.perf_counter() - t0:.1f} s)", flush=True)
    history = dates[: args.history]
    t0 = time.perf_counter()
    r = tm.run("backfill", "silver", "--from", history[0], "--to", history[-1], "--in-process", "--json",
               ok=(0, 1), quiet=True)
    silver_runs = {x["ds"]: x for x in tm.runs("silver")}
    failed = [d for d in history if silver_runs.get(d, {}).get("state") != "success"]
    if r.returncode != 0 or failed:
        sys.exit(f"tmctl backfill silver exited {r.returncode}; dates without a successful silver run: {failed}\n"
                 f"{r.stdout[-3000:]}\n{r.stderr[-3000:]}")
    print(f"  silver backfilled for {history[0]}..{history[-1]} ({len(history)} runs, "
          f"{time.perf_counter() - t0:.1f} s)", flush=True)
    if not args.keep:
        shutil.rmtree(input_dir, ignore_errors=True)
    marker = {"courses": args.courses, "days": args.days, "rounds": args.rounds, "history": args.history,
              "dates": dates, "history_dates": history, "generated_files": len(names), "generated_bytes": in_bytes,
              "landed_files": len(landed), "ingest_exit": ingest_exit}
    with open(os.path.join(lake_dir, "complete.json"), "w") as f:
        json.dump(marker, f, indent=2)
    return marker


def cached_lake(args, tm, lake_dir):
    """The lake of `lake_dir` if a complete one is there (its `complete.json`), else built anew."""
    marker_path = os.path.join(lake_dir, "complete.json")
    if os.path.exists(marker_path):
        print(f"reusing the lake in {lake_dir}", flush=True)
        return json.load(open(marker_path))
    print(f"building the lake in {lake_dir} (not timed)", flush=True)
    return build_lake(args, tm, lake_dir)


def catalog(home):
    from pyiceberg.catalog.sql import SqlCatalog

    return SqlCatalog("tm", uri=f"sqlite:///{os.path.join(home, 'tm.db')}",
                      warehouse=f"file://{os.path.join(home, 'buckets', 'tm-lakehouse-source', 'warehouse')}")


def local_path(uri):
    return uri[len("file://"):] if uri.startswith("file://") else uri


def silver_files(home):
    """Data files of silver's current snapshot (PyIceberg), with rows and bytes."""
    table = catalog(home).load_table(SILVER_TABLE)
    files = table.inspect.files().select(["file_path", "record_count", "file_size_in_bytes", "content"]).to_pylist()
    deletes = [f for f in files if f["content"] != 0]
    if deletes:
        sys.exit(f"silver's current snapshot has {len(deletes)} delete files; read_parquet would ignore them")
    paths = sorted(local_path(f["file_path"]) for f in files)
    missing = [p for p in paths if not os.path.exists(p)]
    if missing:
        sys.exit(f"{len(missing)} data files of silver's current snapshot are not local files: {missing[:3]}")
    return (paths, sum(f["record_count"] for f in files), sum(f["file_size_in_bytes"] for f in files),
            table.metadata.current_snapshot_id)


def gold_snapshots(home, models):
    """{model: (current snapshot id, its tm.logical-date)} of the gold tables that exist."""
    cat = catalog(home)
    out = {}
    for m in models:
        try:
            t = cat.load_table(f"gold.{m}")
        except Exception:  # noqa: BLE001 - NoSuchTableError and friends: not created yet
            continue
        s = t.current_snapshot()
        props = dict(s.summary.additional_properties) if s is not None and s.summary else {}
        out[m] = (s.snapshot_id if s is not None else None, props.get("tm.logical-date"))
    return out


def warm_page_cache(paths):
    """Reads the silver files once so neither engine pays for a cold page cache (not timed)."""
    for p in paths:
        with open(p, "rb") as f:
            while f.read(1 << 22):
                pass


# ---- comparison ----------------------------------------------------------------------------------


def tmctl_gold_counts(tm, models):
    """Rows of every gold table through `tmctl query` (one UNION ALL; per table if that fails)."""
    union = " UNION ALL ".join(f"SELECT '{m}' AS model, count(*) AS n FROM gold.{m}" for m in models)
    r = subprocess.run(tm.argv("query", union, "--format", "json"), capture_output=True, text=True, cwd=REPO,
                       env=tm.env)
    if r.returncode == 0:
        return {row["model"]: int(row["n"]) for row in json.loads(r.stdout)}, {}
    counts, errors = {}, {}
    for m in models:
        r = subprocess.run(tm.argv("query", f"SELECT count(*) AS n FROM gold.{m}", "--format", "json"),
                           capture_output=True, text=True, cwd=REPO, env=tm.env)
        if r.returncode == 0:
            counts[m] = int(json.loads(r.stdout)[0]["n"])
        else:
            errors[m] = (r.stderr.strip() or r.stdout.strip())[-500:]
    return counts, errors


def summarize(runs, key):
    vals = [r[key] for r in runs]
    return {"median": statistics.median(vals), "min": min(vals), "max": max(vals)}


# ---- main ----------------------------------------------------------------------------------------


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("tmctl", nargs="?", help="path to the tmctl binary (a release build for real figures)")
    ap.add_argument("scratch", nargs="?", help="scratch directory (the cached lake and logs go here)")
    ap.add_argument("--courses", type=int, default=5)
    ap.add_argument("--days", type=int, default=30, help="days generated and ingested (one ingest date each)")
    ap.add_argument("--rounds", type=int, default=3000, help="rounds per course per day")
    ap.add_argument("--history", type=int, default=10, help="ingest dates silver is backfilled for (from the first)")
    ap.add_argument("--repeat", type=int, default=2, help="alternating runs per engine; each tmctl run another date")
    ap.add_argument("--threads", type=int, default=os.cpu_count(), help="threads for both sides (default: cores)")
    ap.add_argument("--dags", default=os.path.join(REPO, "dags"))
    ap.add_argument("--json", help="also write every figure as JSON to this file")
    ap.add_argument("--keep", action="store_true",
                    help="keep the generated input (else deleted once landed) and the children's logs")
    ap.add_argument("--duckdb-child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--spec", help=argparse.SUPPRESS)
    ap.add_argument("--count-silver", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.duckdb_child:
        return duckdb_child(args)
    if not (args.tmctl and args.scratch):
        ap.error("TMCTL and SCRATCH are required")
    if args.history < 1 or args.repeat < 1 or args.days < args.history:
        ap.error("need 1 <= --history <= --days and --repeat >= 1")

    global SCRATCH_LOGS, LAUNCHER
    LAUNCHER = Launcher()  # before importing duckdb / pyiceberg (see Launcher)
    args.tmctl = os.path.abspath(args.tmctl)
    args.dags = os.path.abspath(args.dags)
    scratch = os.path.abspath(args.scratch)
    SCRATCH_LOGS = os.path.join(scratch, "logs", time.strftime("%Y%m%d-%H%M%S"))
    os.makedirs(SCRATCH_LOGS, exist_ok=True)
    try:
        import duckdb
        import pyiceberg
    except ImportError as e:
        sys.exit(f"{e}; install with: python3 -m pip install duckdb \"pyiceberg[sql-sqlite,pyarrow]\"")

    gold_dir = os.path.join(args.dags, "gold")
    sql, deps, order = load_models(gold_dir)
    env = dict(os.environ, TM_LOG="warn")
    lake_dir = os.path.join(scratch, f"lake-c{args.courses}-d{args.days}-r{args.rounds}-h{args.history}")
    tm = Tmctl(args.tmctl, os.path.join(lake_dir, "home"), args.dags, env)

    # 1. The lake (not timed).
    lake = cached_lake(args, tm, lake_dir)
    history = lake["history_dates"]
    files, silver_rows, silver_bytes, silver_snapshot = silver_files(tm.home)
    tm_silver_rows = int(tm.query(f"SELECT count(*) AS n FROM {SILVER_TABLE}")[0]["n"])
    if tm_silver_rows != silver_rows:
        sys.exit(f"silver rows: tmctl query says {tm_silver_rows:,}, the current snapshot's manifests {silver_rows:,}")
    print(f"silver: {silver_rows:,} rows in {len(files)} Parquet files, {silver_bytes / MB:,.1f} MB "
          f"(snapshot {silver_snapshot}); ingest dates {history[0]}..{history[-1]}", flush=True)

    # Dates for the timed gold runs: newest first, skipping the date the gold tables were last
    # committed under (re-running it would find its own commits current and skip the work).
    before = gold_snapshots(tm.home, order)
    last = {d for _, d in before.values()}
    candidates = [d for d in reversed(history) if d not in last]
    if len(candidates) < args.repeat:
        sys.exit(f"--repeat {args.repeat} needs {args.repeat} silver dates other than {sorted(last)}; "
                 f"the lake has {history}: raise --history")
    dates = candidates[: args.repeat]

    pin = []
    if args.threads < (os.cpu_count() or 1):
        if not shutil.which("taskset"):
            sys.exit("--threads below the core count needs taskset (util-linux)")
        pin = ["taskset", "-c", f"0-{args.threads - 1}"]
    spec_path = os.path.join(SCRATCH_LOGS, "duckdb-spec.json")
    with open(spec_path, "w") as f:
        json.dump({"files": files, "order": order, "deps": deps, "gold_dir": gold_dir}, f)
    warm_page_cache(files)
    print(f"threads={args.threads}{' (pinned: ' + ' '.join(pin) + ')' if pin else ''}; "
          f"peak RSS floor (`true` via the launcher) {LAUNCHER.floor_rss / MB:.0f} MB; "
          f"gold dates {', '.join(dates)}; {len(order)} models: {', '.join(order)}", flush=True)

    # 2. Timed runs, alternating.
    results = {"tmctl": [], "duckdb": []}
    duck_errors, duck_skipped = {}, {}
    for i, date in enumerate(dates):
        snaps_before = gold_snapshots(tm.home, order)
        wall, rss, code, out, err = measure(pin + tm.argv("run", "gold", "--date", date, "--full-refresh"), env=env, cwd=REPO,
                                            allow_fail=True)
        runs = [r for r in tm.runs("gold") if r["ds"] == date]
        state = runs[0]["state"] if runs else None
        if code != 0 or state != "success":
            detail = ""
            if runs:
                shown = tm.json("runs", "show", str(runs[0]["id"]), "--json")
                detail = "\n".join(f"  {t['task_id']}: {t['state']} {t.get('error') or ''}".rstrip()
                                   for t in shown.get("tasks", []) if t.get("state") != "success")
            sys.exit(f"tmctl run gold --date {date} exited {code}, run state {state}\n--- stdout\n{out[-6000:]}\n"
                     f"--- stderr\n{err[-6000:]}\n--- failed tasks\n{detail}")
        shown = tm.json("runs", "show", str(runs[0]["id"]), "--json")
        per_model = {t["task_id"]: (t.get("duration_ms") or 0) / 1000 for t in shown.get("tasks", [])}
        snaps_after = gold_snapshots(tm.home, order)
        stale = [m for m in order if m not in snaps_after or snaps_after[m] == snaps_before.get(m)
                 or snaps_after[m][1] != date]
        if stale:
            sys.exit(f"tmctl run gold --date {date} succeeded but did not commit a new snapshot of: {stale}")
        slots = slot_times(tm, runs[0]["id"], order)
        results["tmctl"].append({"date": date, "run_id": runs[0]["id"], "wall_s": wall, "cpu_s": LAUNCHER.last_cpu, "peak_rss": rss,
                                 "models_s": per_model, "slot_s": {m: v[0] for m, v in slots.items()},
                                 "staged_s": {m: v[1] for m, v in slots.items()}, "committed": len(order)})
        print(f"  run {i + 1}: tmctl  gold --date {date}  {wall:8.2f} s {LAUNCHER.last_cpu:6.1f} CPU s {rss / MB:6.0f} MB  "
              f"(run {runs[0]['id']}, {len(order)} tables committed)", flush=True)

        argv = pin + [sys.executable, os.path.abspath(__file__), "--duckdb-child", "--spec", spec_path,
                      "--threads", str(args.threads)] + (["--count-silver"] if i == 0 else [])
        wall, rss, _, out, _ = measure(argv)
        child = json.loads(out.strip().splitlines()[-1])
        duck_errors, duck_skipped = child["errors"], child["skipped"]
        if i == 0 and child["silver_rows"] != silver_rows:
            print(f"  WARNING: DuckDB reads {child['silver_rows']:,} silver rows, tmctl {silver_rows:,}", flush=True)
        results["duckdb"].append({"wall_s": wall, "cpu_s": LAUNCHER.last_cpu, "peak_rss": rss, "setup_s": child["setup_s"],
                                  "models_total_s": child["models_s"],
                                  "models_s": {r["model"]: r["seconds"] for r in child["models"]},
                                  "rows": {r["model"]: r["rows"] for r in child["models"]},
                                  "errors": child["errors"], "skipped": child["skipped"]})
        print(f"  run {i + 1}: DuckDB {duckdb.__version__:<17} {wall:8.2f} s {LAUNCHER.last_cpu:6.1f} CPU s {rss / MB:6.0f} MB  "
              f"({len(child['models'])}/{len(order)} models ran)", flush=True)

    # 3. Row counts (not timed).
    tm_counts, tm_count_errors = tmctl_gold_counts(tm, order)
    dk_counts = results["duckdb"][-1]["rows"]

    # 4. Report.
    med = {k: {"wall_s": summarize(v, "wall_s"), "peak_rss": summarize(v, "peak_rss")} for k, v in results.items()}
    t, d = med["tmctl"], med["duckdb"]
    ratio_time = t["wall_s"]["median"] / d["wall_s"]["median"]
    ratio_rss = t["peak_rss"]["median"] / d["peak_rss"]["median"]
    print()
    print(f"Gold refresh, {len(order)} models over {silver_rows:,} silver rows ({len(files)} files, "
          f"{silver_bytes / MB:,.1f} MB), threads={args.threads}, {args.repeat} run(s) per engine "
          f"(DuckDB {duckdb.__version__}, PyIceberg {pyiceberg.__version__})")
    header = (f"{'engine':<14}{'silver rows':>13}{'median s':>10}{'min s':>9}{'peak RSS MB':>13}"
              f"{'time tm/dk':>12}{'RSS tm/dk':>11}")
    print(header)
    print("-" * len(header))
    for k, label in (("tmctl", "tmctl gold"), ("duckdb", "DuckDB")):
        m = med[k]
        rt, rr = ("", "") if k == "duckdb" else (f"{ratio_time:.2f}x", f"{ratio_rss:.2f}x")
        print(f"{label:<14}{silver_rows:>13,}{m['wall_s']['median']:>10.2f}{m['wall_s']['min']:>9.2f}"
              f"{m['peak_rss']['median'] / MB:>13.0f}{rt:>12}{rr:>11}")
    print(f"(wall clock of the whole child process; tmctl also runs {len(order)} models' data tests, writes Parquet "
          f"and commits {len(order)} Iceberg snapshots; DuckDB keeps its tables in memory)")

    print()
    print("Per model, seconds (median over runs). tmctl: `task`, the task's duration in the state DB, which")
    print("includes waiting for a model slot (lake.max_parallel_models models run at once, default 2); `slot`,")
    print("the time it held a slot (its log: slot acquired .. published); `staged`, of that, until its result")
    print("was written (the rest: data tests and commit). DuckDB: one CREATE TABLE after another.")
    print(f"{'model':<34}{'task':>9}{'slot':>9}{'staged':>9}{'DuckDB':>9}")

    def median_of(runs, key, m):
        values = [r[key][m] for r in runs if m in r.get(key, {})]
        return f"{statistics.median(values):.3f}" if values else "-"

    for m in ["wait_for_silver"] + order:
        b = [r["models_s"][m] for r in results["duckdb"] if m in r["models_s"]]
        fb = f"{statistics.median(b):.3f}" if b else ("-" if m == "wait_for_silver" else "FAILED")
        print(f"{m:<34}{median_of(results['tmctl'], 'models_s', m):>9}{median_of(results['tmctl'], 'slot_s', m):>9}"
              f"{median_of(results['tmctl'], 'staged_s', m):>9}{fb:>9}")
    held = [sum(r["slot_s"].values()) for r in results["tmctl"]]
    staged = [sum(r["staged_s"].values()) for r in results["tmctl"]]
    print(f"{'(tmctl: all slots, median)':<34}{'':>9}{statistics.median(held):>9.3f}{statistics.median(staged):>9.3f}")
    dk_setup = statistics.median(r["setup_s"] for r in results["duckdb"])
    dk_models = statistics.median(r["models_total_s"] for r in results["duckdb"])
    print(f"{'(DuckDB import + connect + view)':<34}{'':>9}{dk_setup:>9.3f}")
    print(f"{'(DuckDB all models)':<34}{'':>9}{dk_models:>9.3f}")

    print()
    print("Rows per gold table (not timed)")
    print(f"{'model':<34}{'rows tmctl':>12}{'rows duckdb':>13}  match")
    mismatches = 0
    for m in order:
        a, b = tm_counts.get(m), dk_counts.get(m)
        ok = a is not None and a == b
        mismatches += not ok
        print(f"{m:<34}{'-' if a is None else f'{a:,}':>12}{'-' if b is None else f'{b:,}':>13}  {'yes' if ok else 'NO'}")
    print(f"{len(order) - mismatches}/{len(order)} tables have the same row count")
    print("Known difference in meaning: fact_rounds and fact_fix_pace take the ISO weekday as")
    print("date_part('isodow', ts) + 1, right in DataFusion (Monday = 0) but 2..8 in DuckDB (Monday = 1): DuckDB's")
    print("weekday numbers are shifted and the weekend of time_pattern_coverage and global_time_patterns is")
    print("Friday-Saturday, hence other rows.")
    for m, e in tm_count_errors.items():
        print(f"  tmctl query of gold.{m} failed: {e}")
    if duck_errors or duck_skipped:
        print()
        print("SQL that DuckDB did not run unchanged:")
        for m, e in duck_errors.items():
            print(f"  {m}: {e}")
        for m, why in duck_skipped.items():
            print(f"  {m}: skipped, {why}")
        print("  (the DuckDB timings above leave these out: not comparable)")

    if args.json:
        with open(args.json, "w") as f:
            json.dump({"params": {"courses": args.courses, "days": args.days, "rounds": args.rounds,
                                  "history": args.history, "repeat": args.repeat, "threads": args.threads,
                                  "pinned": bool(pin)},
                       "rss_floor": LAUNCHER.floor_rss,
                       "lake": lake, "lake_dir": lake_dir,
                       "silver": {"rows": silver_rows, "files": len(files), "bytes": silver_bytes,
                                  "snapshot_id": silver_snapshot},
                       "versions": {"duckdb": duckdb.__version__, "pyiceberg": pyiceberg.__version__},
                       "models": order, "deps": deps, "dates": dates,
                       "runs": results, "summary": med,
                       "ratio_tmctl_over_duckdb": {"wall_s_median": ratio_time, "peak_rss_median": ratio_rss},
                       "rows": {m: {"tmctl": tm_counts.get(m), "duckdb": dk_counts.get(m),
                                    "match": tm_counts.get(m) is not None and tm_counts.get(m) == dk_counts.get(m)}
                                for m in order},
                       "tmctl_count_errors": tm_count_errors,
                       "duckdb_errors": duck_errors, "duckdb_skipped": duck_skipped}, f, indent=2)
    LAUNCHER.close()
    if not args.keep:
        shutil.rmtree(SCRATCH_LOGS, ignore_errors=True)


if __name__ == "__main__":
    main()
