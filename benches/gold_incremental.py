#!/usr/bin/env python3
"""Daily gold cost against history, and a gold backfill against daily runs.

    python3 benches/gold_incremental.py TMCTL SCRATCH [--courses 5 --days 30 --rounds 600]
                                        [--short 10] [--repeat N] [--json FILE]

One lake (generate → ingest → silver), not timed, then, timed as child processes (wall clock and
peak RSS, through gold_vs_duckdb.py's launcher):

(b) history: silver for the first --short dates and gold backfilled up to the day before, then
    `tmctl run gold --date <day --short>` (the daily run with --short days of history); silver for
    every date, gold backfilled up to the day before the last, then `tmctl run gold --date <last>`
    (the daily run with --days of history). Same data per day (the generator's days are alike), so
    the ratio long/short is what history costs a daily run (target ≤ 1.3). With --repeat N each
    of the two daily runs is timed N times, every time from a copy of the lake as it was before
    it (one run is noisy on a small machine), and the run with the median wall clock counts.
(c) backfill vs daily: `tmctl backfill gold` over 10 dates in one process against the same 10
    dates run one `tmctl run gold --date D` at a time (sum of the runs).
Both also report what one full refresh (`--full-refresh`) of the last date costs on the whole lake.
"""

import argparse
import json
import os
import shutil
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import gold_vs_duckdb as g  # noqa: E402


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("tmctl")
    p.add_argument("scratch")
    p.add_argument("--courses", type=int, default=5)
    p.add_argument("--days", type=int, default=30)
    p.add_argument("--rounds", type=int, default=600)
    p.add_argument("--short", type=int, default=10)
    p.add_argument("--repeat", type=int, default=1,
                   help="time each daily run (b) this many times from a copy of the lake as it was before it; "
                        "the median counts")
    p.add_argument("--json")
    args = p.parse_args()
    if args.days < args.short + 12:
        sys.exit("--days must leave 12 dates after --short (10 for the backfill comparison, 2 for the long run)")
    g.LAUNCHER = g.Launcher()
    scratch = os.path.abspath(args.scratch)
    g.SCRATCH_LOGS = os.path.join(scratch, "logs")
    os.makedirs(g.SCRATCH_LOGS, exist_ok=True)
    lake_dir = os.path.join(scratch, f"inc-c{args.courses}-d{args.days}-r{args.rounds}")
    env = dict(os.environ, TM_LOG="warn")
    tm = g.Tmctl(os.path.abspath(args.tmctl), os.path.join(lake_dir, "home"), os.path.join(g.REPO, "dags"), env)

    # The lake: silver for the first --short dates only (the rest follows in (b)).
    build = argparse.Namespace(courses=args.courses, days=args.days, rounds=args.rounds, history=args.short,
                               keep=False)
    marker = g.build_lake(build, tm, lake_dir)
    dates = marker["dates"]
    short_day, long_day = dates[args.short - 1], dates[-1]
    results = {"courses": args.courses, "days": args.days, "rounds": args.rounds}

    def timed(*cmd):
        wall, rss, _, _, _ = g.measure(tm.argv(*cmd), env=env, cwd=g.REPO)
        # CPU seconds (user + system) as well: less sensitive than the wall clock to whatever
        # else the machine runs.
        return {"seconds": round(wall, 2), "cpu_seconds": round(g.LAUNCHER.last_cpu, 2),
                "peak_rss_mb": round(rss / g.MB)}

    def timed_daily(*cmd):
        """`timed(*cmd)` --repeat times, each from the lake (home: catalog, data files, state DB)
        as it was before the first; the run with the median wall clock, and every run's seconds."""
        if args.repeat <= 1:
            return timed(*cmd)
        before = tm.home + ".before"
        shutil.rmtree(before, ignore_errors=True)
        shutil.copytree(tm.home, before, symlinks=True)
        runs = []
        for i in range(args.repeat):
            if i:
                shutil.rmtree(tm.home)
                shutil.copytree(before, tm.home, symlinks=True)
            runs.append(timed(*cmd))
        shutil.rmtree(before)
        median = sorted(runs, key=lambda r: r["seconds"])[len(runs) // 2]
        return {**median, "all_seconds": [r["seconds"] for r in runs], "all_cpu_seconds": [r["cpu_seconds"] for r in runs]}

    def silver_rows():
        return tm.query("SELECT count(*) AS n FROM silver.fact_telemetry_event")[0]["n"]

    # (b) the daily run with --short dates of history.
    print(f"gold backfill {dates[0]}..{dates[args.short - 2]} (not timed)", flush=True)
    tm.run("backfill", "gold", "--from", dates[0], "--to", dates[args.short - 2], "--in-process", quiet=True)
    results["short"] = {"history_dates": args.short, "silver_rows": silver_rows(),
                        **timed_daily("run", "gold", "--date", short_day)}
    print(f"  daily run {short_day} with {args.short} dates of history: {results['short']}", flush=True)

    # The rest of silver; (c) a 10-date gold backfill, then the same 10 dates one run each.
    print(f"silver backfill {dates[args.short]}..{long_day} (not timed)", flush=True)
    tm.run("backfill", "silver", "--from", dates[args.short], "--to", long_day, "--in-process", quiet=True)
    b_from, b_to = dates[args.short], dates[args.short + 9]
    results["backfill_10"] = timed("backfill", "gold", "--from", b_from, "--to", b_to, "--in-process")
    print(f"  gold backfill {b_from}..{b_to}: {results['backfill_10']}", flush=True)
    daily = [timed("run", "gold", "--date", d) for d in dates[args.short:args.short + 10]]
    results["daily_10"] = {"seconds": round(sum(r["seconds"] for r in daily), 2),
                           "peak_rss_mb": max(r["peak_rss_mb"] for r in daily), "runs": daily}
    print(f"  the same 10 dates as daily runs: {results['daily_10']['seconds']} s", flush=True)

    # (b) the daily run with every date of history.
    if dates[args.short + 10] <= dates[-2]:
        tm.run("backfill", "gold", "--from", dates[args.short + 10], "--to", dates[-2], "--in-process", quiet=True)
    results["long"] = {"history_dates": len(dates), "silver_rows": silver_rows(),
                       **timed_daily("run", "gold", "--date", long_day)}
    print(f"  daily run {long_day} with {len(dates)} dates of history: {results['long']}", flush=True)
    results["full_refresh"] = timed("run", "gold", "--date", long_day, "--full-refresh")
    print(f"  full refresh of {long_day}: {results['full_refresh']}", flush=True)

    ratio = results["long"]["seconds"] / results["short"]["seconds"]
    results["history_ratio"] = round(ratio, 2)
    results["history_ratio_cpu"] = round(results["long"]["cpu_seconds"] / results["short"]["cpu_seconds"], 2)
    results["backfill_vs_daily"] = round(results["backfill_10"]["seconds"] / results["daily_10"]["seconds"], 2)
    print(f"\n(b) daily run, {len(dates)} vs {args.short} dates of history: {ratio:.2f}x wall clock, "
          f"{results['history_ratio_cpu']:.2f}x CPU time (target <= 1.3)")
    print(f"(c) 10-date backfill vs 10 daily runs: {results['backfill_vs_daily']:.2f}x")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    g.LAUNCHER.close()


if __name__ == "__main__":
    t0 = time.perf_counter()
    main()
    print(f"({time.perf_counter() - t0:.0f} s in all)")
