//! DAG validation end to end: every fixture under `tests/fixtures/dags/` loads with exactly the
//! diagnostics listed here (file:line:col: message), and `valid_full.toml` compiles with the
//! expected task order and policies.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tmctl::dag::{self, Backoff, ParamType};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/dags").join(name)
}

/// Loads a fixture that must fail and checks its diagnostics, given as `line:col: message`.
fn assert_diagnostics(name: &str, expected: &[&str]) {
    let path = fixture(name);
    let got: Vec<String> = match dag::load_file(&path) {
        Ok(dag) => panic!("{name} loaded as DAG `{}` but should fail", dag.id),
        Err(diags) => diags.iter().map(ToString::to_string).collect(),
    };
    let want: Vec<String> = expected.iter().map(|e| format!("{}:{e}", path.display())).collect();
    assert_eq!(got, want, "diagnostics of {name}");
}

#[test]
fn unknown_keys() {
    assert_diagnostics(
        "error_unknown_key.toml",
        &[
            "3:1: unknown key `schedul`; did you mean `schedule`?",
            "4:1: unknown key `owner`; known keys: id, description, schedule, timezone, start_date, end_date, catchup, \
             max_active_runs, deadline, defaults, params, allow_undeclared_params, task",
            "7:1: unknown key `defaults.retrys`; did you mean `defaults.retries`?",
            "13:1: task `wait`: unknown key `duraton`; did you mean `duration`?",
        ],
    );
}

#[test]
fn unknown_kinds() {
    assert_diagnostics(
        "error_unknown_kind.toml",
        &[
            "6:8: task `extract`: unknown task kind `slep`; did you mean `sleep`? (known kinds: noop, sleep, fail, command, wait.dag_run, bronze.ingest, silver.transform, gold.model, courses.freshness, lake.maintenance)",
            "10:8: task `load`: unknown task kind `spark.submit` (known kinds: noop, sleep, fail, command, wait.dag_run, bronze.ingest, silver.transform, gold.model, courses.freshness, lake.maintenance)",
        ],
    );
}

#[test]
fn missing_dependencies() {
    assert_diagnostics(
        "error_missing_dependency.toml",
        &[
            "11:15: task `transform` depends on `extrct`, which is not a task in this DAG; did you mean `extract`?",
            "11:36: task `transform` depends on `stage`, which is not a task in this DAG",
        ],
    );
}

#[test]
fn cycles_are_named_as_a_path() {
    assert_diagnostics("error_cycle.toml", &["7:15: dependency cycle: extract -> transform -> load -> extract"]);
}

#[test]
fn bad_cron() {
    assert_diagnostics(
        "error_bad_cron.toml",
        &["3:12: `schedule`: invalid cron expression \"61 2 * * *\": minute field `61` is out of range 0-59"],
    );
}

#[test]
fn bad_timezone() {
    assert_diagnostics(
        "error_bad_timezone.toml",
        &["4:12: `timezone`: unknown time zone \"America/Chicgo\"; did you mean \"America/Chicago\"?"],
    );
}

#[test]
fn bad_durations() {
    assert_diagnostics(
        "error_bad_duration.toml",
        &[
            "5:15: `defaults.retry_delay`: invalid duration \"30 seconds\": expected a whole number and a unit, e.g. \
             \"30s\" or \"1h30m\"",
            "10:1: task `wait`: `duration`: invalid duration \"1.5s\": expected a whole number and a unit, e.g. \"30s\" \
             or \"1h30m\"",
            "11:11: task `wait`: `timeout`: invalid duration \"10x\": unknown unit \"x\" (use ms, s, m, h or d)",
        ],
    );
}

#[test]
fn bad_deadline() {
    assert_diagnostics(
        "error_bad_deadline.toml",
        &["4:12: `deadline`: invalid duration \"90 minutes\": expected a whole number and a unit, e.g. \"30s\" or \
             \"1h30m\""],
    );
}

#[test]
fn syntax_errors() {
    assert_diagnostics(
        "error_syntax.toml",
        &[
            "3:19: TOML syntax error: invalid basic string, expected `\"`",
            "7:7: TOML syntax error: string values must be quoted, expected literal string",
        ],
    );
}

#[test]
fn every_problem_at_once() {
    assert_diagnostics(
        "error_many.toml",
        &[
            "3:12: `schedule`: cron expression \"0 2 * * * *\" has 6 fields, expected 5 (minute hour day-of-month \
             month day-of-week); seconds and year fields are not supported",
            "4:12: `timezone`: unknown time zone \"Mars/Olympus_Mons\" (expected an IANA name such as \
             \"America/New_York\" or \"UTC\")",
            "5:14: `start_date`: invalid date \"2025-02-30\" (expected YYYY-MM-DD)",
            "6:11: `catchup` must be true or false, found string \"no\"",
            "7:19: `max_active_runs` must be a positive integer, found integer 0",
            "8:1: unknown key `owner`; known keys: id, description, schedule, timezone, start_date, end_date, catchup, \
             max_active_runs, deadline, defaults, params, allow_undeclared_params, task",
            "11:11: `defaults.retries` must be a non-negative integer, found string \"3\"",
            "12:17: `defaults.retry_backoff` must be \"exponential\" or \"fixed\", found string \"linear\"",
            "13:9: `defaults.email`: \"data-team\" is not an e-mail address",
            "16:18: `params.limit.type` must be one of \"string\", \"integer\", \"number\", \"boolean\", \"date\", \
             found string \"int\"",
            "21:15: dependency cycle: extract -> load -> extract",
            "24:6: duplicate task id `extract` (first defined on line 19)",
            "27:1: task `transform`: missing required key `kind`",
            "29:26: task `transform` depends on `clean`, which is not a task in this DAG",
            "34:1: task `load`: `times` must be a non-negative integer, found -1",
            "36:11: task `load`: `retries` must be a non-negative integer, found float 1.5",
        ],
    );
}

#[test]
fn valid_full_uses_every_key() {
    let path = fixture("valid_full.toml");
    let dag = match dag::load_file(&path) {
        Ok(dag) => dag,
        Err(diags) => panic!("valid_full.toml failed: {diags:#?}"),
    };
    assert_eq!(dag.id, "full");
    assert_eq!(dag.description, "every key, defaults and per-task overrides");
    assert_eq!(dag.schedule.as_ref().map(|s| s.expr.as_str()), Some("30 2 * * *"));
    assert_eq!(dag.timezone, chrono_tz::America::Chicago);
    assert_eq!(dag.start_date, chrono::NaiveDate::from_ymd_opt(2025, 1, 1));
    assert_eq!(dag.end_date, chrono::NaiveDate::from_ymd_opt(2025, 12, 31));
    assert!(dag.catchup);
    assert_eq!(dag.max_active_runs, 4);
    assert_eq!(dag.deadline, Some(Duration::from_secs(5400)));
    assert_eq!(dag.email, ["data-team@example.com", "oncall@example.com"]);
    assert_eq!(dag.file, path);

    let order: Vec<&str> = dag.topological().map(|t| t.id.as_str()).collect();
    assert_eq!(order, ["extract", "transform", "load", "audit"]);
    assert_eq!(dag.upstream("load"), ["extract", "transform"]);
    assert_eq!(dag.downstream("extract"), ["load", "transform", "audit"]);
    // One plus every task downstream, directly or through another (extract: load through
    // transform too, counted once).
    let weights: Vec<(&str, u64)> = dag.tasks.iter().map(|t| t.id.as_str()).zip(dag.priority_weights()).collect();
    assert_eq!(weights, [("load", 1), ("extract", 4), ("transform", 2), ("audit", 1)]);
    let kinds: Vec<(&str, &str)> = dag.tasks.iter().map(|t| (t.id.as_str(), t.kind.as_str())).collect();
    assert_eq!(kinds, [("load", "command"), ("extract", "sleep"), ("transform", "fail"), ("audit", "noop")]);

    let team = vec!["data-team@example.com".to_string(), "oncall@example.com".to_string()];
    let policy = |id: &str| dag.task(id).map(|t| t.policy.clone()).expect("task exists");
    // `audit` has only the DAG's defaults.
    let defaults = policy("audit");
    assert_eq!(defaults.retries, 3);
    assert_eq!(defaults.max_tries(), 4);
    assert_eq!(defaults.retry_delay, Duration::from_secs(30));
    assert_eq!(defaults.backoff, Backoff::Exponential);
    assert_eq!(defaults.max_retry_delay, Some(Duration::from_secs(600)));
    assert_eq!(defaults.timeout, Some(Duration::from_secs(5400)));
    assert_eq!(defaults.email, team);
    assert!(defaults.email_on_retry);
    assert!(defaults.email_on_failure);
    // Each of the others overrides some keys.
    let load = policy("load");
    assert_eq!(load.email, ["loader@example.com"]);
    assert!(!load.email_on_failure);
    assert_eq!(load.retries, 3);
    let extract = policy("extract");
    assert_eq!(extract.timeout, Some(Duration::from_secs(300)));
    assert_eq!(extract.email, team);
    let transform = policy("transform");
    assert_eq!(
        (transform.retries, transform.retry_delay, transform.backoff),
        (5, Duration::from_secs(1), Backoff::Fixed)
    );
    assert_eq!(transform.max_retry_delay, Some(Duration::from_secs(600)));

    let params = &dag.params;
    assert_eq!(params.len(), 4);
    assert_eq!(
        (params["limit"].ty, params["limit"].default.clone()),
        (ParamType::Integer, Some(serde_json::json!(100)))
    );
    assert_eq!(params["ratio"].ty, ParamType::Number);
    assert_eq!(params["ratio"].default, Some(serde_json::json!(0.5)));
    assert_eq!(params["ratio"].description, "sampling ratio");
    assert_eq!((params["day"].ty, params["day"].default.clone()), (ParamType::Date, None));
    assert_eq!(
        (params["verbose"].ty, params["verbose"].default.clone()),
        (ParamType::Boolean, Some(serde_json::json!(false)))
    );
}

#[test]
fn unreadable_file_is_one_diagnostic() {
    let path = fixture("does_not_exist.toml");
    let diags = dag::load_file(&path).expect_err("missing file");
    assert_eq!(diags.len(), 1);
    let d = &diags[0];
    assert_eq!((d.file.as_path(), d.line, d.col), (path.as_path(), 1, 1));
    assert!(d.message.starts_with(&format!("cannot read `{}`: ", path.display())), "{}", d.message);
    assert!(d.message.contains("No such file or directory"), "{}", d.message);
}

#[test]
fn load_dir_reports_duplicate_dag_ids_across_files() {
    let dir = tempfile::tempdir().expect("temp dir");
    let dag = |id: &str| format!("id = \"{id}\"\n\n[[task]]\nid = \"a\"\nkind = \"noop\"\n");
    std::fs::write(dir.path().join("a.toml"), dag("etl")).expect("write");
    std::fs::write(dir.path().join("b.toml"), dag("etl")).expect("write");
    std::fs::write(dir.path().join("c.toml"), dag("other")).expect("write");
    std::fs::write(dir.path().join("d.toml"), "id = 1\n").expect("write");
    std::fs::write(dir.path().join("notes.txt"), "not a DAG").expect("write");
    std::fs::create_dir(dir.path().join("nested.toml")).expect("mkdir");

    let (dags, diags) = dag::load_dir(dir.path());
    let ids: Vec<&str> = dags.iter().map(|d| d.id.as_str()).collect();
    assert_eq!(ids, ["etl", "other"]);
    assert_eq!(dags[0].file, dir.path().join("a.toml"));
    let lines: Vec<String> = diags.iter().map(ToString::to_string).collect();
    let (a, b, d) = (dir.path().join("a.toml"), dir.path().join("b.toml"), dir.path().join("d.toml"));
    assert_eq!(
        lines,
        [
            format!("{}:1:6: duplicate DAG id `etl`: also defined in {}", b.display(), a.display()),
            format!("{}:1:1: no tasks: a DAG needs at least one `[[task]]`", d.display()),
            format!(
                "{}:1:6: `id` must be a non-empty string of letters, digits, `_`, `-` and `.`, found integer 1",
                d.display()
            ),
        ]
    );
}

#[test]
fn load_dir_on_a_missing_directory() {
    let dir = fixture("no_such_dir");
    let (dags, diags) = dag::load_dir(&dir);
    assert!(dags.is_empty());
    assert_eq!(diags.len(), 1);
    assert!(diags[0].message.starts_with("cannot read DAG directory"), "{}", diags[0].message);
}

#[test]
fn durations() {
    assert_eq!(dag::parse_duration("500ms"), Ok(Duration::from_millis(500)));
    assert_eq!(dag::parse_duration("30s"), Ok(Duration::from_secs(30)));
    assert_eq!(dag::parse_duration("10m"), Ok(Duration::from_secs(600)));
    assert_eq!(dag::parse_duration("2h"), Ok(Duration::from_secs(7200)));
    assert_eq!(dag::parse_duration("1d"), Ok(Duration::from_secs(86_400)));
    assert_eq!(dag::parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
    assert_eq!(
        dag::parse_duration("5 min"),
        Err("invalid duration \"5 min\": expected a whole number and a unit, e.g. \"30s\" or \"1h30m\"".to_string())
    );
    assert_eq!(
        dag::parse_duration("5min"),
        Err("invalid duration \"5min\": unknown unit \"min\" (use ms, s, m, h or d)".to_string())
    );
}

#[test]
fn course_profiles_are_checked_with_the_dags_and_never_loaded_as_a_dag() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ok.toml"), "id = \"ok\"\n[[task]]\nid = \"a\"\nkind = \"noop\"\n").unwrap();
    std::fs::write(
        dir.path().join("courses.toml"),
        "[[course]]\nid = \"a\"\ntimezone = \"America/Boise\"\n\n[[course]]\nid = \"a\"\ntimezone = \"Idaho/Boise\"\nsize = 18\n",
    )
    .unwrap();
    let (dags, diags) = dag::load_dir(dir.path());
    assert_eq!(dags.iter().map(|d| d.id.as_str()).collect::<Vec<_>>(), ["ok"]);
    let shown: Vec<String> = diags.iter().map(ToString::to_string).collect();
    let file = dir.path().join("courses.toml").display().to_string();
    assert_eq!(shown.len(), 1, "{shown:?}");
    assert!(shown[0].starts_with(&format!("{file}:8:1: unknown field `size`")), "{shown:?}");
    // Without the unknown key, every value problem is reported.
    std::fs::write(
        dir.path().join("courses.toml"),
        "[[course]]\nid = \"a\"\ntimezone = \"America/Boise\"\n\n[[course]]\nid = \"a\"\ntimezone = \"Idaho/Boise\"\n",
    )
    .unwrap();
    let (_, diags) = dag::load_dir(dir.path());
    let shown: Vec<String> = diags.iter().map(ToString::to_string).collect();
    assert_eq!(
        shown,
        [
            format!("{file}:6:6: duplicate course id `a`: also defined at line 2"),
            format!(
                "{file}:7:12: unknown time zone `Idaho/Boise`: use an IANA name such as America/Boise or Europe/London"
            ),
        ]
    );
    // The shipped profiles are valid.
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("dags");
    assert_eq!(tmctl::courses::load_dir(&shipped).unwrap().len(), 5);
}

/// Regression: addresses the alert sender's parser (lettre's `Mailbox`) refuses were accepted when
/// the DAG loaded, and the alert then skipped them (or had no recipient left). A display-name
/// form lettre accepts is accepted.
#[test]
fn e_mail_addresses_lettre_refuses() {
    assert_diagnostics(
        "error_bad_email.toml",
        &[
            "7:35: `defaults.email`: \"oncall@example..com\" is not an e-mail address",
            "12:40: task `load`: `email`: \"ops;dev@example.com\" is not an e-mail address",
        ],
    );
}
