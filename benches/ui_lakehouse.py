#!/usr/bin/env python3
"""How fast the lakehouse pages answer on a big lake.

    python3 benches/ui_lakehouse.py TMCTL SCRATCH [--courses 5 --days 30 --rounds 3000] [--history 10]
                                     [--requests 100] [--json FILE]

The lake is gold_vs_duckdb.py's (cached in SCRATCH/lake-c<C>-d<D>-r<R>-h<H>/, built when missing:
generate → ingest → silver for the first --history dates; 8.6 M silver rows with the defaults,
16.4 M with --history 19),
plus one gold run of its last history date when gold has none (not timed). Then `tmctl serve`
on that home, with an empty DAG folder so that no scheduled run competes with the pages, and a
bearer token (`<home>/api-token`: every page needs a login or a token). Each lakehouse page —
without and with `?course=`, and with a course and the first week of local round dates
(`&from=…&to=…`) — is requested --requests times one after another over one
keep-alive connection after 3 warm-up requests; the figures are per page: p50, p99 and max
milliseconds (wall clock of the whole response, body read) and the response size. Target
(issue 11): p99 <= 200 ms for every page.
"""

import argparse
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import gold_vs_duckdb as g  # noqa: E402

PAGES = ["/lakehouse/overview", "/lakehouse/course", "/lakehouse/quality", "/lakehouse/pace",
         "/lakehouse/rounds", "/lakehouse/validation", "/lakehouse/topology", "/lakehouse/devices",
         "/lakehouse/tables"]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(port, proc, deadline_s=60):
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"tmctl serve exited {proc.returncode} before answering")
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            c.request("GET", "/health")
            if c.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.1)
    sys.exit(f"tmctl serve did not answer /health within {deadline_s} s")


def timed_requests(port, path, token, n):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    headers = {"Authorization": f"Bearer {token}", "Host": f"127.0.0.1:{port}"}
    times, size = [], 0
    for i in range(n + 3):
        t0 = time.perf_counter()
        conn.request("GET", path, headers=headers)
        r = conn.getresponse()
        body = r.read()
        dt = (time.perf_counter() - t0) * 1000
        if r.status != 200:
            sys.exit(f"GET {path}: {r.status}\n{body[:2000]!r}")
        if i >= 3:
            times.append(dt)
            size = len(body)
    conn.close()
    times.sort()
    p99 = times[min(len(times) - 1, int(round(0.99 * (len(times) - 1))))]
    return {"p50_ms": round(statistics.median(times), 1), "p99_ms": round(p99, 1), "max_ms": round(times[-1], 1),
            "bytes": size}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("tmctl")
    ap.add_argument("scratch")
    ap.add_argument("--courses", type=int, default=5)
    ap.add_argument("--days", type=int, default=30)
    ap.add_argument("--rounds", type=int, default=3000)
    ap.add_argument("--history", type=int, default=10)
    ap.add_argument("--requests", type=int, default=100)
    ap.add_argument("--json")
    args = ap.parse_args()
    args.keep = False
    g.LAUNCHER = g.Launcher()
    scratch = os.path.abspath(args.scratch)
    g.SCRATCH_LOGS = os.path.join(scratch, "logs")
    os.makedirs(g.SCRATCH_LOGS, exist_ok=True)
    lake_dir = os.path.join(scratch, f"lake-c{args.courses}-d{args.days}-r{args.rounds}-h{args.history}")
    env = dict(os.environ, TM_LOG="warn")
    tm = g.Tmctl(os.path.abspath(args.tmctl), os.path.join(lake_dir, "home"), os.path.join(g.REPO, "dags"), env)
    lake = g.cached_lake(args, tm, lake_dir)
    if not any(r["state"] == "success" for r in tm.runs("gold")):
        day = lake["history_dates"][-1]
        print(f"gold run {day} (not timed)", flush=True)
        tm.run("run", "gold", "--date", day, quiet=True)
    silver_rows = int(tm.query("SELECT count(*) AS n FROM silver.fact_telemetry_event")[0]["n"])
    rounds = int(tm.query("SELECT count(*) AS n FROM gold.fact_rounds")[0]["n"])
    course = tm.query("SELECT course_id FROM gold.dim_course ORDER BY course_id LIMIT 1")[0]["course_id"]
    # A week of local round dates for the date-filtered variants.
    week = tm.query("SELECT CAST(min(round_date_local) AS VARCHAR) AS a, "
                    "CAST(min(round_date_local) + INTERVAL '6' DAY AS VARCHAR) AS b FROM gold.fact_rounds")[0]
    print(f"lake: {silver_rows:,} silver rows, {rounds:,} rounds; course for ?course=: {course}", flush=True)

    port = free_port()
    empty_dags = tempfile.mkdtemp(prefix="tmctl-ui-bench-dags-")
    serve_argv = [tm.binary, "--home", tm.home, "--dags", empty_dags, "serve", "--bind", f"127.0.0.1:{port}"]
    log = open(os.path.join(g.SCRATCH_LOGS, "serve.log"), "wb")
    proc = subprocess.Popen(serve_argv, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=g.REPO)
    try:
        wait_ready(port, proc)
        token = open(os.path.join(tm.home, "api-token")).read().strip()
        results = []
        for page in PAGES:
            for query in ("", f"?course={urllib.parse.quote(course)}",
                          f"?course={urllib.parse.quote(course)}&from={week['a'][:10]}&to={week['b'][:10]}"):
                path = page + query
                r = {"path": path, **timed_requests(port, path, token, args.requests)}
                results.append(r)
                print(f"  {path:<45} p50 {r['p50_ms']:>7.1f} ms  p99 {r['p99_ms']:>7.1f} ms  "
                      f"max {r['max_ms']:>7.1f} ms  {r['bytes']:>8,} B", flush=True)
        table = "gold.fact_rounds"
        path = f"/lakehouse/tables?table={urllib.parse.quote(table)}"
        r = {"path": path, **timed_requests(port, path, token, args.requests)}
        results.append(r)
        print(f"  {path:<45} p50 {r['p50_ms']:>7.1f} ms  p99 {r['p99_ms']:>7.1f} ms  "
              f"max {r['max_ms']:>7.1f} ms  {r['bytes']:>8,} B", flush=True)
        with open(f"/proc/{proc.pid}/status") as f:
            hwm = next(int(line.split()[1]) for line in f if line.startswith("VmHWM"))
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    worst = max(results, key=lambda r: r["p99_ms"])
    print(f"\nworst p99: {worst['p99_ms']} ms ({worst['path']}); target <= 200 ms: "
          f"{'met' if worst['p99_ms'] <= 200 else 'NOT met'}; daemon peak RSS {hwm / 1024:.0f} MB")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"silver_rows": silver_rows, "rounds": rounds, "requests": args.requests,
                       "pages": results, "daemon_peak_rss_mb": round(hwm / 1024)}, f, indent=2)
    g.LAUNCHER.close()


if __name__ == "__main__":
    main()
