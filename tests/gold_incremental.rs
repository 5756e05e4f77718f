//! Incremental gold equals a full refresh. The demo backfills gold day by day (the first day a
//! full build, the later days incremental over rounds re-delivered a day late); then one day's
//! exports change and are re-ingested with `--replace` (rounds dropped, so rounds carried over
//! from the day before must move back to it, and values changed), silver and gold re-run for
//! that day, and an unchanged day is re-run. After each step every gold table equals, cell by
//! cell, what `tmctl run gold --full-refresh` builds from the same silver; each incremental run
//! commits one snapshot per changed table naming its run key and the partitions it replaced, and
//! PyIceberg reads every snapshot.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use common::{pyiceberg_on, query_rows as query, tmctl_on as tmctl};

/// The incremental models of the shipped gold DAG (`materialized = "incremental"`), read from
/// dags/gold.toml so that a new one is checked too.
fn incremental_models() -> Vec<String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("dags/gold.toml");
    let doc: toml::Table = std::fs::read_to_string(&path).unwrap().parse().unwrap();
    let models: Vec<String> = doc["task"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t.get("materialized").and_then(|m| m.as_str()) == Some("incremental"))
        .map(|t| t["id"].as_str().unwrap().to_string())
        .collect();
    assert!(models.len() >= 14, "{models:?}");
    models
}

fn run(home: &Path, args: &[&str]) -> String {
    let (code, out, err) = tmctl(home, args);
    assert_eq!(code, 0, "tmctl {args:?} failed\n{out}\n{err}");
    out
}

/// Every gold table's rows as sorted JSON texts.
fn gold_rows(home: &Path) -> BTreeMap<String, Vec<String>> {
    common::table_rows(home, "gold")
}

/// The snapshots of `gold.<table>` as PyIceberg lists them (`id`, `operation`, `summary`),
/// oldest first.
fn snapshots(home: &Path, table: &str) -> Vec<serde_json::Value> {
    pyiceberg_on(home, &format!("gold.{table}"), None)["snapshots"].as_array().cloned().unwrap_or_default()
}

/// Asserts `incremental` (what incremental runs left) equals `full` (a full refresh), table by
/// table and row by row.
fn assert_same(step: &str, incremental: &BTreeMap<String, Vec<String>>, full: &BTreeMap<String, Vec<String>>) {
    assert_eq!(incremental.keys().collect::<Vec<_>>(), full.keys().collect::<Vec<_>>(), "{step}: tables differ");
    for (table, rows) in incremental {
        let expected = &full[table];
        let missing: Vec<&String> = expected.iter().filter(|r| !rows.contains(r)).take(3).collect();
        let extra: Vec<&String> = rows.iter().filter(|r| !expected.contains(r)).take(3).collect();
        assert!(
            rows == expected,
            "{step}: gold.{table} differs from a full refresh ({} rows vs {}); missing e.g. {missing:?}; extra e.g. {extra:?}",
            rows.len(),
            expected.len()
        );
    }
}

/// Runs a full refresh for `date` and returns the gold rows it built.
fn full_refresh(home: &Path, date: &str) -> BTreeMap<String, Vec<String>> {
    run(home, &["run", "gold", "--date", date, "--full-refresh"]);
    gold_rows(home)
}

/// The day-`date` CSV exports in the demo's input folder (wherever bronze moved them).
fn exports(root: &Path, date: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.file_name().unwrap().to_string_lossy().contains(&format!(".{date}."))
                && p.extension().is_some_and(|x| x == "csv")
            {
                found.push(p);
            }
        }
    }
    found.sort();
    found
}

#[test]
fn incremental_gold_equals_a_full_refresh_through_redeliveries_replaced_files_and_reruns() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let input = dir.path().join("input");
    let input_arg = input.to_string_lossy().into_owned();
    run(
        &home,
        &["demo", "--courses", "3", "--days", "4", "--rounds", "40", "--start-date", "2025-06-01", "--out", &input_arg],
    );
    // The demo's gold backfill: 06-01 built every table, 06-02..06-04 ran incrementally.
    let redelivered = query(&home, "SELECT count(*) AS n FROM gold.silver_round_latest WHERE ingest_dates_seen > 1");
    assert!(redelivered[0]["n"].as_i64().unwrap() > 0, "the generated data has no late re-delivery to test");
    for table in &incremental_models() {
        let snaps = snapshots(&home, table);
        let last = snaps.last().unwrap_or_else(|| panic!("gold.{table} has no snapshot"));
        assert_eq!(last["operation"], "overwrite", "gold.{table}: {last}");
        let last = &last["summary"];
        assert_eq!(last["tm.run-key"], format!("gold/{table}/2025-06-04"), "gold.{table}: {last}");
        let partitions: Vec<&String> =
            last.as_object().unwrap().keys().filter(|k| k.starts_with("partitions.course_id=")).collect();
        assert!(!partitions.is_empty(), "gold.{table}: the snapshot names the partitions it replaced: {last}");
        // Incremental, not a rebuild: rounds are re-delivered at most a day late, so the 06-04 run
        // never touches 06-01's partitions (a full refresh replaces them all).
        assert!(partitions.iter().all(|k| !k.contains("2025-06-01")), "gold.{table}: {partitions:?}");
    }
    let after_backfill = gold_rows(&home);
    assert!(after_backfill["fact_rounds"].len() > 60, "{} rounds", after_backfill["fact_rounds"].len());

    // `tmctl courses list`: the five pilot profiles of dags/courses.toml, the three generated
    // courses with their rounds and ingest dates from gold.
    let courses: Vec<serde_json::Value> = serde_json::from_str(&run(&home, &["courses", "list", "--json"])).unwrap();
    assert_eq!(courses.len(), 5, "{courses:?}");
    let per_course = query(
        &home,
        "SELECT course_id, count(*) AS n, CAST(min(first_ingest_date) AS VARCHAR) AS first_date, \
         CAST(max(latest_ingest_date) AS VARCHAR) AS last_date FROM gold.silver_round_latest GROUP BY course_id",
    );
    assert_eq!(per_course.len(), 3);
    for seen in &per_course {
        let c = courses.iter().find(|c| c["course_id"] == seen["course_id"]).expect("a course of the data is listed");
        assert_eq!(
            (&c["rounds"], &c["first_ingest_date"], &c["last_ingest_date"]),
            (&seen["n"], &seen["first_date"], &seen["last_date"])
        );
        assert_eq!(c["profile_missing"], false);
    }
    let falls = courses.iter().find(|c| c["course_id"] == "americanfalls").unwrap();
    assert_eq!((&falls["timezone"], &falls["loop"]), (&serde_json::json!("America/Boise"), &serde_json::json!(true)));

    // A changed export re-ingested with --replace: its last rounds dropped (among them the
    // round carried over from 06-01, which must move back to 06-01) and a value changed.
    // The largest CSV export of 06-02 (the small ones are planted bad files or JSON).
    let files = exports(&input, "2025-06-02");
    let file = files
        .iter()
        .max_by_key(|f| std::fs::metadata(f).unwrap().len())
        .unwrap_or_else(|| panic!("no 06-02 CSV export under {}", input.display()));
    let text = std::fs::read_to_string(file).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines.len() > 8, "{} has {} lines", file.display(), lines.len());
    let mut kept: Vec<String> = lines[..lines.len() - 4].iter().map(|l| l.to_string()).collect();
    // Drop one early round too (carried-over rounds sit at the top of a day's file).
    kept.remove(1);
    std::fs::write(file, kept.join("\n") + "\n").unwrap();
    let file_arg = file.to_string_lossy().into_owned();
    run(&home, &["ingest", &file_arg, "--replace", "--date", "2025-06-02"]);
    run(&home, &["run", "silver", "--date", "2025-06-02"]);
    let before = gold_rows(&home);
    run(&home, &["run", "gold", "--date", "2025-06-02"]);
    let after_replace = gold_rows(&home);
    assert_ne!(
        before["silver_round_latest"], after_replace["silver_round_latest"],
        "the replaced file changed nothing"
    );
    for table in &incremental_models() {
        let last = snapshots(&home, table).last().cloned().unwrap();
        assert_eq!(last["summary"]["tm.run-key"], format!("gold/{table}/2025-06-02"), "gold.{table}");
    }
    // course_hole_pace_daily (`changes` by snapshot) recorded the fact_round_hole_performance
    // snapshot it read, and replaced only courses whose rounds that snapshot changed.
    let facts = snapshots(&home, "fact_round_hole_performance").last().cloned().unwrap();
    let daily = snapshots(&home, "course_hole_pace_daily").last().cloned().unwrap();
    assert_eq!(
        daily["summary"]["tm.changes-snapshot-id"].as_str(),
        Some(facts["id"].as_i64().unwrap().to_string().as_str()),
        "{daily}"
    );
    let courses = |snap: &serde_json::Value| -> std::collections::BTreeSet<String> {
        snap["summary"]
            .as_object()
            .unwrap()
            .keys()
            .filter_map(|k| k.strip_prefix("partitions.course_id="))
            .map(|p| p.split('/').next().unwrap().to_string())
            .collect()
    };
    let (changed, replaced) = (courses(&facts), courses(&daily));
    assert!(!replaced.is_empty() && replaced.is_subset(&changed), "{replaced:?} not within {changed:?}");
    let full = full_refresh(&home, "2025-06-04");
    assert_same("after a --replace re-ingest", &after_replace, &full);

    // A re-run of an unchanged day (incremental again: the full refresh above left tables that
    // fit) changes nothing.
    run(&home, &["run", "gold", "--date", "2025-06-03"]);
    assert_same("after re-running 06-03", &gold_rows(&home), &full);

    // PyIceberg reads every snapshot of every incremental table, with the rows it recorded.
    for table in &incremental_models() {
        let read = pyiceberg_on(&home, &format!("gold.{table}"), Some("all"));
        let recorded: BTreeMap<i64, u64> = read["snapshots"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| (s["id"].as_i64().unwrap(), s["summary"]["total-records"].as_str().unwrap().parse().unwrap()))
            .collect();
        let seen = read["at_snapshots"].as_array().unwrap();
        assert_eq!(seen.len(), recorded.len(), "gold.{table}: {read}");
        for s in seen {
            let id = s["id"].as_i64().unwrap();
            assert_eq!(s["row_count"].as_u64().unwrap(), recorded[&id], "gold.{table}@{id}");
        }
    }
}
