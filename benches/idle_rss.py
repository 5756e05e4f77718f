#!/usr/bin/env python3
"""Memory of an idle `tmctl serve` (issue 13: idle daemon <= 60 MB RSS in a release build).

    python3 benches/idle_rss.py TMCTL [--idle 30] [--dags DIR] [--json FILE]

Starts `tmctl serve` on a fresh home (a temporary directory: new state DB, no lake yet), waits
until /health answers, lets it sit `--idle` seconds with its scheduler, housekeeping and senders
running, then reads /proc/PID/status and smaps_rollup: RSS, and how much of it is anonymous
memory (heap, stacks) and how much is file-backed (the executable's code and read-only data
paged in), plus threads. Then it asks /health and the login page and reads RSS again. Three
variants, each a fresh home:

- `no DAGs`: an empty DAG folder — the daemon's own machinery.
- `DAGs paused`: the shipped DAGs (or `--dags`) loaded and compiled (every gold model's SQL
  parsed), each paused with `tmctl dags pause` before the start, so nothing runs: the idle
  daemon as it sits between runs.
- `after runs`: the same DAGs unpaused. On a fresh home the scheduler starts each DAG's latest
  interval at once (catchup = false), so silver and gold tasks run in-process (DataFusion,
  Iceberg) on the empty lake before the measurement: what stays resident after work. Not idle;
  shown for what it says about the file-backed part.
Linux only.

The figure depends on the page cache: a file-backed page counts in RSS only once the process
has touched it, and the kernel maps up to 16 neighbouring pages that are already cached with
each fault ("fault-around"). Run it twice; the second run (binary in the page cache) is the
one reported.
"""

import argparse
import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(port, path):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    c.request("GET", path)
    r = c.getresponse()
    r.read()
    return r.status


def wait_ready(port, proc, deadline_s=60):
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"tmctl serve exited {proc.returncode} before answering")
        try:
            if get(port, "/health") == 200:
                return
        except OSError:
            pass
        time.sleep(0.1)
    sys.exit(f"tmctl serve did not answer /health within {deadline_s} s")


def memory(pid):
    status = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "RssAnon", "RssFile", "RssShmem", "VmHWM", "Threads"):
                status[key] = int(value.split()[0])
    pss = None
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            if line.startswith("Pss:"):
                pss = int(line.split()[1])
    mb = lambda kb: round(kb / 1024, 1)
    return {
        "rss_mb": mb(status["VmRSS"]),
        "anon_mb": mb(status["RssAnon"]),
        "file_mb": mb(status["RssFile"]),
        "pss_mb": mb(pss) if pss is not None else None,
        "peak_rss_mb": mb(status["VmHWM"]),
        "threads": status["Threads"],
    }


def measure(tmctl, dags, idle, pause):
    """One fresh home: (idle figures, figures after two requests)."""
    home = tempfile.mkdtemp(prefix="tmctl-idle-rss-")
    env = dict(os.environ, TM_LOG="warn")
    binary = os.path.abspath(tmctl)
    if pause:
        for name in sorted(f[:-5] for f in os.listdir(dags) if f.endswith(".toml") and f != "courses.toml"):
            subprocess.run([binary, "--home", home, "--dags", dags, "dags", "pause", name], env=env, cwd=REPO,
                           check=True, stdout=subprocess.DEVNULL)
    port = free_port()
    argv = [binary, "--home", home, "--dags", dags, "serve", "--bind", f"127.0.0.1:{port}"]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, cwd=REPO)
    try:
        wait_ready(port, proc)
        time.sleep(idle)
        before = memory(proc.pid)
        get(port, "/health")
        get(port, "/login")
        time.sleep(1)
        after = memory(proc.pid)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(home, ignore_errors=True)
    return before, after


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("tmctl", help="the tmctl binary (a release build)")
    ap.add_argument("--idle", type=float, default=30.0, help="seconds to leave it idle (default 30)")
    ap.add_argument("--dags", default=os.path.join(REPO, "dags"), help="DAG folder (default: the shipped one)")
    ap.add_argument("--json", help="also write the figures to this file")
    args = ap.parse_args()

    empty = tempfile.mkdtemp(prefix="tmctl-idle-rss-dags-")
    variants = [("no DAGs", empty, False), ("DAGs paused", args.dags, True), ("after runs", args.dags, False)]
    results = {}
    print(f"binary {os.path.getsize(args.tmctl) / 2**20:.1f} MB (with line tables; the code segment is what maps)")
    for name, dags, pause in variants:
        idle, after = measure(args.tmctl, dags, args.idle, pause)
        results[name] = {"idle": idle, "after_pages": after}
        for label, m in (("idle", idle), ("+ /health, /login", after)):
            print(f"{name:<12} {label:<18} RSS {m['rss_mb']:>6.1f} MB  (anonymous {m['anon_mb']:.1f}, "
                  f"file-backed {m['file_mb']:.1f}; PSS {m['pss_mb']}) threads {m['threads']}", flush=True)
    os.rmdir(empty)
    paused = results["DAGs paused"]["idle"]["rss_mb"]
    print(f"target: idle daemon (DAGs loaded, nothing running) <= 60 MB: {paused} MB, "
          f"{'met' if paused <= 60 else 'NOT met'}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
