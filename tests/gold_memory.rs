//! Gold under a memory limit smaller than the lake: `lake.memory_limit = "64MiB"` over a silver
//! table whose data alone is larger than that still rebuilds every gold model, and the result is
//! the same, cell by cell, as the run under the default limit. Every model's result goes through
//! staged Parquet files (write-audit-publish without holding the result in memory).

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use common::{query_rows as query, tmctl_on as tmctl};

/// Every gold table: its rows as sorted JSON texts, and its number of snapshots.
fn gold_state(home: &Path) -> BTreeMap<String, (Vec<String>, usize)> {
    let tables = query(
        home,
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'gold' AND table_name NOT LIKE '%$%'",
    );
    let mut out = BTreeMap::new();
    for t in tables {
        let name = t["table_name"].as_str().unwrap().to_string();
        let mut rows: Vec<String> =
            query(home, &format!("SELECT * FROM gold.{name}")).iter().map(|r| r.to_string()).collect();
        rows.sort();
        let snapshots = query(home, &format!("SELECT * FROM gold.\"{name}$snapshots\"")).len();
        out.insert(name, (rows, snapshots));
    }
    out
}

/// `tmctl run <dag> --date 2025-06-02 --full-refresh` with the DAGs of `dags` under a memory
/// limit of `limit`, which must succeed.
fn full_refresh_under(home: &Path, dags: &Path, dag: &str, limit: &str) {
    let out = Command::new(env!("CARGO_BIN_EXE_tmctl"))
        .args(["run", dag, "--date", "2025-06-02", "--full-refresh"])
        .env_remove("TM_DATABASE_URL")
        .env_remove("TM_CONFIG")
        .env("TM_HOME", home)
        .env("TM_DAGS_DIR", dags)
        .env("TM_LAKE_MEMORY_LIMIT", limit)
        .env("TM_LAKE_SPILL_DIR", home.join("spill-under-limit"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{dag} under {limit} failed\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn gold_under_a_64mib_memory_limit_equals_the_default_run() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let (code, out, err) =
        tmctl(&home, &["demo", "--courses", "4", "--days", "2", "--rounds", "500", "--start-date", "2025-06-01"]);
    assert_eq!(code, 0, "demo failed\n{out}\n{err}");
    let silver = query(&home, "SELECT count(*) AS n FROM silver.fact_telemetry_event");
    let rows = silver[0]["n"].as_i64().unwrap();
    // 48 columns, almost all 8 bytes or wider in Arrow: the lake's data is bigger than the limit.
    assert!(rows * 48 * 8 > 64 << 20, "the lake is too small for this test: {rows} silver rows");

    let before = gold_state(&home);
    assert!(before.len() >= 20, "{:?}", before.keys());
    assert!(before["fact_rounds"].0.len() > 1000, "{} rounds", before["fact_rounds"].0.len());

    full_refresh_under(&home, &Path::new(env!("CARGO_MANIFEST_DIR")).join("dags"), "gold", "64MiB");

    // The per-round models and the by-snapshot coverage over every fix ran in batches of keys.
    let (_, runs, _) = tmctl(&home, &["runs", "list", "--dag", "gold", "--json"]);
    let runs: serde_json::Value = serde_json::from_str(&runs).unwrap();
    let run_id = runs[0]["id"].to_string();
    for model in ["fact_rounds", "section_pace_coverage"] {
        let (code, log, err) = tmctl(&home, &["logs", &run_id, model]);
        assert_eq!(code, 0, "{err}");
        let line =
            log.lines().find(|l| l.contains("full refresh in batches")).unwrap_or_else(|| panic!("{model}:\n{log}"));
        let batches: usize = line.split("batches=").nth(1).and_then(|r| r.split(' ').next()).unwrap().parse().unwrap();
        assert!(batches >= 2, "{model}: {line}");
    }

    let after = gold_state(&home);
    assert_eq!(before.keys().collect::<Vec<_>>(), after.keys().collect::<Vec<_>>());
    for (table, (rows, snapshots)) in &before {
        let (rows_after, snapshots_after) = &after[table];
        assert_eq!(*snapshots_after, snapshots + 1, "{table}: the full refresh committed one new snapshot");
        assert_eq!(rows.len(), rows_after.len(), "{table}: row count changed under the memory limit");
        let differing = rows.iter().zip(rows_after).filter(|(a, b)| a != b).count();
        assert_eq!(differing, 0, "{table}: {differing} rows differ under the memory limit");
    }

    // A batch of a `latest_only` model's full refresh reads its inputs' (date, course)
    // partitions by predicate, older versions of rounds delivered again later included; its
    // result keeps only the batch's own rounds. This model does not join silver_round_latest, so
    // an older version read in an earlier batch would give its round a second row there.
    let redelivered = query(&home, "SELECT count(*) AS n FROM gold.silver_round_latest WHERE ingest_dates_seen > 1");
    assert!(redelivered[0]["n"].as_i64().unwrap() > 0, "the demo lake has no re-delivered round");
    let probe = dir.path().join("probe");
    std::fs::create_dir_all(probe.join("gold")).unwrap();
    std::fs::write(
        probe.join("gold/latest_by_max.sql"),
        "SELECT course_id, round_id, MAX(ingest_date) AS ingest_date FROM silver.fact_telemetry_event GROUP BY course_id, round_id",
    )
    .unwrap();
    std::fs::write(
        probe.join("probe.toml"),
        "id = \"probe\"\n[params]\nfull_refresh = { type = \"boolean\", default = false }\n[[task]]\nid = \"latest_by_max\"\nkind = \"gold.model\"\nsql = \"gold/latest_by_max.sql\"\n\
         materialized = \"incremental\"\nincremental_key = [\"course_id\", \"round_id\"]\n\
         changes = \"gold.silver_round_latest.latest_ingest_date\"\nlatest_only = true\n\
         partition_by = [\"course_id\", \"ingest_date\"]\ntests = [{ unique = [\"course_id\", \"round_id\"] }]\n",
    )
    .unwrap();
    full_refresh_under(&home, &probe, "probe", "32MiB");
    let (_, runs, _) = tmctl(&home, &["runs", "list", "--dag", "probe", "--json"]);
    let runs: serde_json::Value = serde_json::from_str(&runs).unwrap();
    let (_, log, _) = tmctl(&home, &["logs", &runs[0]["id"].to_string(), "latest_by_max"]);
    let line = log.lines().find(|l| l.contains("full refresh in batches")).unwrap_or_else(|| panic!("{log}"));
    let batches: usize = line.split("batches=").nth(1).and_then(|r| r.split(' ').next()).unwrap().parse().unwrap();
    assert!(batches >= 3, "{line}");
    let sorted = |sql: &str| {
        let mut rows: Vec<String> = query(&home, sql).iter().map(|r| r.to_string()).collect();
        rows.sort();
        rows
    };
    assert_eq!(
        sorted("SELECT course_id, round_id, ingest_date FROM gold.latest_by_max"),
        sorted("SELECT course_id, round_id, latest_ingest_date AS ingest_date FROM gold.silver_round_latest"),
    );
}
