//! The production backends end to end through the real binary: object storage on SeaweedFS's S3
//! endpoint (real SigV4), the Iceberg REST catalog SeaweedFS serves (OAuth2 client credentials),
//! and PostgreSQL for the state DB — the demo (generate → ingest → silver → gold → query), then
//! PyIceberg reading the same tables through the REST catalog and S3, the web UI's lakehouse
//! pages, `tmctl doctor`, and one clear error each for wrong credentials, an unreachable endpoint
//! and a missing bucket.

mod common;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use tmctl::config::{Overrides, Settings};
use tmctl::store::Store;

use common::seaweed::{self, TestBuckets};

struct Env {
    home: tempfile::TempDir,
    vars: Vec<(String, String)>,
}

impl Env {
    fn new(buckets: &TestBuckets, database_url: &str) -> Env {
        let mut vars = buckets.env();
        vars.push(("TM_DATABASE_URL".into(), database_url.into()));
        Env { home: tempfile::tempdir().expect("temp dir"), vars }
    }

    fn set(&mut self, key: &str, value: &str) {
        self.vars.retain(|(k, _)| k != key);
        self.vars.push((key.into(), value.into()));
    }

    fn tmctl(&self, args: &[&str]) -> (i32, String, String) {
        let out = Command::new(env!("CARGO_BIN_EXE_tmctl"))
            .args(args)
            .env_remove("TM_CONFIG")
            .env("TM_HOME", self.home.path())
            .env("TM_DAGS_DIR", Path::new(env!("CARGO_MANIFEST_DIR")).join("dags"))
            // object_store's builder also reads AWS_* variables; keep the machine's out.
            .env_remove("AWS_ACCESS_KEY_ID")
            .env_remove("AWS_SECRET_ACCESS_KEY")
            .env_remove("AWS_ENDPOINT")
            .envs(self.vars.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .output()
            .expect("run tmctl");
        common::outcome(out)
    }

    fn count(&self, sql: &str) -> i64 {
        let (code, out, err) = self.tmctl(&["query", "--format", "json", sql]);
        assert_eq!(code, 0, "query failed: {sql}\n{err}");
        let v: serde_json::Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"));
        v[0]["n"].as_i64().unwrap_or_else(|| panic!("no n in {v}"))
    }
}

/// PyIceberg through the REST catalog: rows, current snapshot and location of each table.
fn pyiceberg(warehouse: &str, tables: &[&str]) -> serde_json::Value {
    common::require_python(&["pyiceberg", "pyarrow"], "pip install \"pyiceberg[pyarrow]\"");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/pyiceberg_rest_read.py");
    let out = Command::new("python3")
        .arg(&script)
        .arg(seaweed::rest_uri())
        .arg(format!("{}:{}", seaweed::ACCESS_KEY, seaweed::SECRET_KEY))
        .arg(seaweed::s3_endpoint())
        .arg(seaweed::ACCESS_KEY)
        .arg(seaweed::SECRET_KEY)
        .arg(warehouse)
        .args(tables)
        .output()
        .expect("python3 is needed (pip install \"pyiceberg[pyarrow]\")");
    assert!(out.status.success(), "PyIceberg failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("JSON from pyiceberg_rest_read.py")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_runs_on_s3_the_rest_catalog_and_postgres() {
    let buckets = TestBuckets::create("demo");
    let db = common::postgres_db().await;
    let env = Env::new(&buckets, &db.url);

    let (code, out, err) = env.tmctl(&["doctor"]);
    assert_eq!(code, 0, "doctor on a good config\n{out}\n{err}");
    for row in ["state DB", "Iceberg catalog", "bucket landing", "bucket source", "bucket serve", "SMTP"] {
        assert!(out.contains(row), "doctor lacks {row}:\n{out}");
    }
    assert_eq!(out.matches(" ok ").count(), 7, "DB, catalog and five buckets ok; SMTP skipped:\n{out}");

    let demo = ["demo", "--courses", "2", "--days", "2", "--rounds", "10", "--start-date", "2025-06-01"];
    let (code, out, err) = env.tmctl(&demo);
    assert_eq!(code, 0, "demo failed\n{out}\n{err}");
    assert!(!env.home.path().join("buckets").exists(), "nothing lands on local disk in S3 mode");

    let silver = env.count("SELECT count(*) AS n FROM silver.fact_telemetry_event");
    let rounds = env.count("SELECT count(*) AS n FROM gold.fact_rounds");
    assert!(silver > 0 && rounds > 0, "silver {silver}, gold rounds {rounds}\n{out}");

    // PyIceberg finds the same tables, rows and snapshots through the REST catalog, with the
    // data files in the source and serve buckets.
    let source = format!("s3://{}", buckets.source);
    let serve = format!("s3://{}", buckets.serve);
    let py = pyiceberg(&source, &["silver.fact_telemetry_event"]);
    let t = &py["silver.fact_telemetry_event"];
    assert_eq!(t["rows"].as_i64(), Some(silver), "{py}");
    assert_eq!(t["format_version"], 2, "{py}");
    assert!(t["location"].as_str().unwrap().starts_with(&format!("{source}/silver/")), "{py}");
    let snaps = serde_json::to_string(&t["snapshots"]).unwrap();
    assert!(snaps.contains("\"overwrite\""), "tmctl's replace-partitions commits: {snaps}");
    let py_gold = pyiceberg(&serve, &["gold.fact_rounds"]);
    assert_eq!(py_gold["gold.fact_rounds"]["rows"].as_i64(), Some(rounds), "{py_gold}");
    assert!(py_gold["gold.fact_rounds"]["location"].as_str().unwrap().starts_with(&format!("{serve}/gold/")));

    // The demo again: every run sees its work done, nothing is duplicated, and a forced silver
    // re-run of one date replaces its partitions in one more overwrite snapshot via the REST
    // commit endpoint.
    let (code, out2, err2) = env.tmctl(&demo);
    assert_eq!(code, 0, "second demo failed\n{out2}\n{err2}");
    assert_eq!(env.count("SELECT count(*) AS n FROM silver.fact_telemetry_event"), silver);
    let before = t["snapshots"].as_array().unwrap().len();
    let (code, out3, err3) = env.tmctl(&["run", "silver", "--date", "2025-06-01", "--full-refresh"]);
    assert_eq!(code, 0, "{out3}\n{err3}");
    let py = pyiceberg(&source, &["silver.fact_telemetry_event"]);
    let t = &py["silver.fact_telemetry_event"];
    assert_eq!(t["rows"].as_i64(), Some(silver), "a replace, not an append: {py}");
    assert_eq!(t["snapshots"].as_array().unwrap().len(), before + 1, "{py}");

    // The web UI's lakehouse pages read the same tables through the REST catalog and S3.
    let empty_dags = env.home.path().join("no-dags");
    std::fs::create_dir_all(&empty_dags).unwrap();
    let overrides = Overrides { config_file: None, home: Some(env.home.path().into()), dags_dir: Some(empty_dags) };
    let settings = Settings::load_with(&overrides, &env.vars.iter().cloned().collect()).expect("settings");
    let store = Store::connect(&settings.database_url, 4).await.expect("state DB");
    let running =
        tmctl::daemon::start(Arc::new(settings), store, "127.0.0.1:0".parse().unwrap()).await.expect("daemon");
    let client = common::authed(&running.daemon.token);
    for (page, expect) in [("overview", "fact_rounds"), ("tables", "fact_telemetry_event")] {
        let resp = client.get(format!("http://{}/lakehouse/{page}", running.addr)).send().await.expect("GET");
        assert_eq!(resp.status().as_u16(), 200, "/lakehouse/{page}");
        let html = resp.text().await.unwrap();
        assert!(!html.contains("No data yet"), "/lakehouse/{page} sees the S3 tables");
        if page == "tables" {
            assert!(html.contains(expect), "/lakehouse/tables lists {expect}");
        }
    }
    running.stop().await;
}

/// Each broken setting gives one error that says what is wrong and which setting to look at:
/// in `tmctl doctor`'s table and when a command touches storage. S3: wrong secret, unreachable
/// endpoint, missing bucket; REST catalog: a refused credential.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_s3_settings_give_one_clear_error_each() {
    let buckets = TestBuckets::create("bad");
    let db = common::postgres_db().await;
    let input = tempfile::tempdir().unwrap();
    let generator = Env::new(&buckets, &db.url);
    let (code, _, err) = generator.tmctl(&[
        "generate",
        "--out",
        input.path().to_str().unwrap(),
        "--courses",
        "1",
        "--days",
        "1",
        "--rounds",
        "2",
    ]);
    assert_eq!(code, 0, "{err}");

    let missing = format!("{}-never-made", buckets.landing);
    let cases: [(&str, &str, &str, &str); 3] = [
        ("wrong secret", "TM_S3_SECRET_KEY", "not-the-secret", "credentials"),
        ("unreachable endpoint", "TM_S3_ENDPOINT", "http://127.0.0.1:9", "cannot reach"),
        ("missing bucket", "TM_BUCKET_LANDING", &missing, "does not exist"),
    ];
    for (what, key, value, says) in cases {
        let mut env = Env::new(&buckets, &db.url);
        env.set(key, value);
        let (code, out, err) = env.tmctl(&["doctor"]);
        assert_eq!(code, 1, "{what}: doctor must fail\n{out}\n{err}");
        let failed: Vec<&str> = out.lines().filter(|l| l.contains("FAILED")).collect();
        assert!(!failed.is_empty(), "{what}: {out}");
        assert!(failed.iter().any(|l| l.contains(says)), "{what}: a FAILED row should say {says:?}:\n{out}");
        assert!(!out.contains(seaweed::SECRET_KEY) && !err.contains(seaweed::SECRET_KEY), "{what}: secret printed");

        // Ingest touches the landing bucket: it fails with exit 1 and the same kind of message,
        // on one line, without a panic or a backtrace.
        let (code, out, err) = env.tmctl(&["ingest", input.path().to_str().unwrap()]);
        assert_eq!(code, 1, "{what}: ingest must fail\n{out}\n{err}");
        let text = format!("{out}\n{err}");
        assert!(text.contains(says), "{what}: ingest should say {says:?}:\n{text}");
        assert!(!text.contains("panicked"), "{what}: {text}");
        let error_lines = err.lines().filter(|l| l.starts_with("error:")).count();
        assert_eq!(error_lines, 1, "{what}: one error line\n{err}");
    }

    // The REST catalog refusing the credential: doctor's catalog row says so, and a silver run
    // fails on its first try instead of retrying what cannot work.
    let mut env = Env::new(&buckets, &db.url);
    env.set("TM_ICEBERG_REST_CREDENTIAL", &format!("{}:not-the-secret", seaweed::ACCESS_KEY));
    let (code, out, err) = env.tmctl(&["doctor"]);
    assert_eq!(code, 1, "{out}\n{err}");
    let row = out.lines().find(|l| l.contains("Iceberg catalog")).unwrap_or_default();
    assert!(row.contains("FAILED") && row.contains("refused the credentials"), "{out}");
    assert!(row.contains("TM_ICEBERG_REST_CREDENTIAL"), "{out}");
    let (code, out, err) = env.tmctl(&["run", "silver", "--date", "2025-06-01"]);
    assert_eq!(code, 1, "{out}\n{err}");
    assert!(out.contains("refused the credentials"), "{out}");
    assert!(!out.contains("up_for_retry"), "no retries of a refused credential:\n{out}");
}
