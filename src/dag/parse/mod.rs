//! DAG TOML → validated [`Dag`], reporting every problem at once with file:line:col.
//!
//! Two stages: the spanned TOML document is walked key by key into plain specs (each problem
//! becomes a [`Diagnostic`] at the offending key or value), then the specs are checked as a whole
//! (duplicate ids, missing dependencies, cycles) and compiled into a `Dag`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono_tz::Tz;
use toml::de::DeTable;

use super::{Dag, DagHead, Diagnostic, Schedule, TaskDef, TaskPolicy};

mod ctx;
mod params;
mod policy;
mod task;

use ctx::{Ctx, Scope, Value, entries, found, suggest};
use params::param;
use policy::{POLICY_KEYS, PolicyPatch};
use task::{TaskSpec, check_graph, infer_data_dependencies, task_spec};

const DAG_KEYS: &[&str] = &[
    "id",
    "description",
    "schedule",
    "timezone",
    "start_date",
    "end_date",
    "catchup",
    "max_active_runs",
    "deadline",
    "defaults",
    "params",
    "allow_undeclared_params",
    "task",
];

/// `[defaults]` keys that are about the DAG as a whole, not about each task.
const DAG_DEFAULT_KEYS: &[&str] = &["email_on_recovery"];

/// Reads and compiles one DAG file. An unreadable file is one diagnostic at 1:1.
pub fn load_file(path: &Path) -> Result<Dag, Vec<Diagnostic>> {
    compile_file(path).result
}

/// Compiles DAG TOML `source`; `path` is where it came from (diagnostics name it, and settings
/// that name files resolve against its directory).
pub fn load_str(source: &str, path: &Path) -> Result<Dag, Vec<Diagnostic>> {
    compile(source, path).result
}

/// Loads every `*.toml` in `dir` (sorted by name, not recursive) but the course profiles
/// (`courses.toml`, checked here too: [`crate::courses`]); returns the valid DAGs and all problems
/// found. When two files declare the same DAG id, the first one (by name) wins.
pub fn load_dir(dir: &Path) -> (Vec<Dag>, Vec<Diagnostic>) {
    let mut dags = Vec::new();
    let mut diags = Vec::new();
    let mut files: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|ext| ext == "toml") && p.is_file())
            .filter(|p| p.file_name().is_none_or(|n| n != crate::courses::FILE_NAME))
            .collect(),
        Err(e) => {
            let message = format!("cannot read DAG directory `{}`: {e}", dir.display());
            return (dags, vec![Diagnostic { file: dir.to_path_buf(), line: 1, col: 1, message }]);
        }
    };
    files.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
    if let Err(mut more) = crate::courses::load_dir(dir) {
        diags.append(&mut more);
    }
    let mut seen: BTreeMap<String, PathBuf> = BTreeMap::new();
    for file in files {
        let compiled = compile_file(&file);
        if let Some((id, line, col)) = &compiled.id {
            if let Some(first) = seen.get(id) {
                let message = format!("duplicate DAG id `{id}`: also defined in {}", first.display());
                diags.push(Diagnostic { file: file.clone(), line: *line, col: *col, message });
                if let Err(mut more) = compiled.result {
                    diags.append(&mut more);
                }
                continue;
            }
            seen.insert(id.clone(), file.clone());
        }
        match compiled.result {
            Ok(dag) => dags.push(dag),
            Err(mut more) => diags.append(&mut more),
        }
    }
    (dags, diags)
}

/// Parses `"500ms"`, `"30s"`, `"10m"`, `"2h"`, `"1d"` or a compound such as `"1h30m"`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    const UNITS: &str = "use ms, s, m, h or d";
    let general = || format!("invalid duration \"{s}\": expected a whole number and a unit, e.g. \"30s\" or \"1h30m\"");
    let mut rest = s;
    let mut total = Duration::ZERO;
    if rest.is_empty() {
        return Err(general());
    }
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
        if digits == 0 {
            return Err(general());
        }
        let (number, tail) = rest.split_at(digits);
        let unit_len = tail.find(|c: char| c.is_ascii_digit()).unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_len);
        if !unit.chars().all(|c| c.is_ascii_alphabetic()) {
            return Err(general());
        }
        let too_large = || format!("invalid duration \"{s}\": too large");
        let n: u64 = number.parse().map_err(|_| too_large())?;
        let millis_per: u64 = match unit {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "" => return Err(format!("invalid duration \"{s}\": missing unit after {number} ({UNITS})")),
            other => return Err(format!("invalid duration \"{s}\": unknown unit \"{other}\" ({UNITS})")),
        };
        let part = n.checked_mul(millis_per).ok_or_else(too_large)?;
        total = total.checked_add(Duration::from_millis(part)).ok_or_else(too_large)?;
        rest = tail;
    }
    if total.is_zero() {
        return Err(format!("invalid duration \"{s}\": must be greater than zero"));
    }
    Ok(total)
}

/// The outcome of compiling one file, with the DAG id's position for cross-file checks.
struct Compiled {
    result: Result<Dag, Vec<Diagnostic>>,
    id: Option<(String, usize, usize)>,
}

fn compile_file(path: &Path) -> Compiled {
    match std::fs::read_to_string(path) {
        Ok(source) => compile(&source, path),
        Err(e) => {
            let message = format!("cannot read `{}`: {e}", path.display());
            Compiled { result: Err(vec![Diagnostic { file: path.to_path_buf(), line: 1, col: 1, message }]), id: None }
        }
    }
}

fn timezone(cx: &mut Ctx<'_>, value: &Value<'_>) -> Option<Tz> {
    let name = Scope::default().string(cx, "timezone", value)?;
    match name.parse::<Tz>() {
        Ok(tz) => Some(tz),
        Err(_) => {
            let message = match suggest(name, chrono_tz::TZ_VARIANTS.iter().map(|tz| tz.name())) {
                Some(s) => format!("`timezone`: unknown time zone \"{name}\"; did you mean \"{s}\"?"),
                None => format!(
                    "`timezone`: unknown time zone \"{name}\" (expected an IANA name such as \"America/New_York\" or \"UTC\")"
                ),
            };
            cx.report(value.span(), message);
            None
        }
    }
}

fn compile(source: &str, path: &Path) -> Compiled {
    let mut cx = Ctx::new(path, source);
    let (doc, errors) = DeTable::parse_recoverable(source);
    for e in &errors {
        let span = e.span().unwrap_or(0..0);
        match source.get(span.clone()).filter(|key| e.message() == "duplicate key" && !key.is_empty()) {
            Some(key) => cx.syntax_error(span, &format!("duplicate key `{key}`")),
            None => cx.syntax_error(span, e.message()),
        }
    }
    let root = doc.get_ref();
    let top = Scope::default();
    let dag_dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };

    let mut id = None;
    let mut id_position = None;
    let mut description = String::new();
    let mut schedule = None;
    let mut tz = Tz::UTC;
    let mut start_date = None;
    let mut end_date = None;
    let mut catchup = false;
    let mut max_active_runs = 16;
    let mut deadline = None;
    let mut defaults = PolicyPatch::default();
    let mut email_on_recovery = true;
    let mut params = BTreeMap::new();
    let mut allow_undeclared_params = false;
    let mut specs: Vec<TaskSpec> = Vec::new();
    let mut saw_tasks = false;

    for (key, value) in entries(root) {
        match key.get_ref().as_ref() {
            "id" => {
                id = top.ident(&mut cx, "id", value);
                id_position = Some(cx.position(value.span().start));
            }
            "description" => description = top.string(&mut cx, "description", value).unwrap_or_default().to_string(),
            "schedule" => {
                if let Some(expr) = top.string(&mut cx, "schedule", value) {
                    match Schedule::parse(expr) {
                        Ok(s) => schedule = Some(s),
                        Err(e) => cx.report(value.span(), format!("`schedule`: {e}")),
                    }
                }
            }
            "timezone" => tz = timezone(&mut cx, value).unwrap_or(Tz::UTC),
            "start_date" => start_date = top.date(&mut cx, "start_date", value),
            "end_date" => end_date = top.date(&mut cx, "end_date", value),
            "catchup" => catchup = top.boolean(&mut cx, "catchup", value).unwrap_or(false),
            "max_active_runs" => max_active_runs = top.count(&mut cx, "max_active_runs", value, 1).unwrap_or(16),
            "deadline" => deadline = top.duration(&mut cx, "deadline", value).map(|d| (d, value.span())),
            "defaults" => {
                let Some(table) = value.get_ref().as_table() else {
                    cx.report(value.span(), format!("`defaults` must be a table, found {}", found(value.get_ref())));
                    continue;
                };
                let scope = Scope { prefix: String::new(), path: "defaults.".to_string() };
                for (k, v) in entries(table) {
                    if k.get_ref().as_ref() == "email_on_recovery" {
                        email_on_recovery = scope.boolean(&mut cx, "email_on_recovery", v).unwrap_or(true);
                    } else if !defaults.take(&mut cx, &scope, k.get_ref(), v) {
                        let known: Vec<&str> = POLICY_KEYS.iter().chain(DAG_DEFAULT_KEYS).copied().collect();
                        scope.unknown_key(&mut cx, k, &known, &format!("known keys: {}", known.join(", ")));
                    }
                }
            }
            "params" => {
                let Some(table) = value.get_ref().as_table() else {
                    cx.report(value.span(), format!("`params` must be a table, found {}", found(value.get_ref())));
                    continue;
                };
                for (k, v) in entries(table) {
                    if let Some(p) = param(&mut cx, k.get_ref(), k, v) {
                        params.insert(k.get_ref().to_string(), p);
                    }
                }
            }
            "allow_undeclared_params" => {
                allow_undeclared_params = top.boolean(&mut cx, "allow_undeclared_params", value).unwrap_or(false)
            }
            "task" => {
                saw_tasks = true;
                let Some(items) = value.get_ref().as_array() else {
                    let message = format!(
                        "`task` must be an array of tables (write `[[task]]`), found {}",
                        found(value.get_ref())
                    );
                    cx.report(value.span(), message);
                    continue;
                };
                for (i, item) in items.iter().enumerate() {
                    if let Some(spec) = task_spec(&mut cx, i + 1, item, dag_dir) {
                        specs.push(spec);
                    }
                }
            }
            name if POLICY_KEYS.contains(&name) => {
                let message = format!("unknown key `{name}`; task settings belong in `[defaults]` or a `[[task]]`");
                cx.report(key.span(), message);
            }
            _ => top.unknown_key(&mut cx, key, DAG_KEYS, &format!("known keys: {}", DAG_KEYS.join(", "))),
        }
    }
    if !cx.syntax_errors {
        if root.get("id").is_none() {
            cx.report(0..0, "missing required key `id`");
        }
        if !saw_tasks {
            cx.report(0..0, "no tasks: a DAG needs at least one `[[task]]`");
        }
    }
    if let (Some(start), Some(end), Some(v)) = (start_date, end_date, root.get("end_date"))
        && end < start
    {
        cx.report(v.span(), format!("`end_date` {end} is before `start_date` {start}"));
    }

    // A deadline alert goes to the DAG's recipients; without any it would tell no one.
    if let Some((_, span)) = &deadline {
        let email_given =
            root.get("defaults").and_then(|d| d.get_ref().as_table()).is_some_and(|t| t.contains_key("email"));
        let empty = defaults.email.as_ref().is_some_and(|e| e.is_empty());
        if !email_given || empty {
            cx.report(span.clone(), "`deadline` needs recipients: set `email` in `[defaults]`");
        }
    }

    check_graph(&mut cx, &specs);

    let id_out = match (&id, id_position) {
        (Some(id), Some((line, col))) => Some((id.clone(), line, col)),
        _ => None,
    };
    let mut diags = std::mem::take(&mut cx.diags);
    let Some(id) = id.filter(|_| diags.is_empty()) else {
        if diags.is_empty() {
            diags.push(Diagnostic {
                file: path.to_path_buf(),
                line: 1,
                col: 1,
                message: "missing required key `id`".into(),
            });
        }
        diags.sort_by_key(|d| (d.line, d.col));
        return Compiled { result: Err(diags), id: id_out };
    };

    let mut base = TaskPolicy::default();
    defaults.apply(&mut base);
    let mut task_defs = Vec::with_capacity(specs.len());
    for spec in specs {
        let (Some((task_id, _)), Some(kind), Some(task)) = (spec.id, spec.kind, spec.task) else {
            // Every missing piece was reported above; nothing to compile without it.
            continue;
        };
        let mut policy = base.clone();
        spec.patch.apply(&mut policy);
        task_defs.push(TaskDef {
            id: task_id,
            kind: kind.name.to_string(),
            depends_on: spec.depends_on.into_iter().map(|(d, _)| d).collect(),
            policy,
            task,
        });
    }
    infer_data_dependencies(&mut task_defs);
    let head = DagHead {
        id,
        description,
        file: path.to_path_buf(),
        schedule,
        timezone: tz,
        start_date,
        end_date,
        catchup,
        max_active_runs,
        params,
        deadline: deadline.map(|(d, _)| d),
        email: base.email,
        webhook: base.webhook,
        email_on_recovery,
        allow_undeclared_params,
    };
    let result = Dag::new(head, task_defs)
        .map_err(|message| vec![Diagnostic { file: path.to_path_buf(), line: 1, col: 1, message }]);
    Compiled { result, id: id_out }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dag::ParamType;

    /// Diagnostics of a DAG given as lines, rendered as `d.toml:line:col: message`.
    fn diags(lines: &[&str]) -> Vec<String> {
        match load_str(&lines.join("\n"), Path::new("d.toml")) {
            Ok(_) => Vec::new(),
            Err(d) => d.iter().map(ToString::to_string).collect(),
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_duration("1d"), Ok(Duration::from_secs(86_400)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("1m500ms"), Ok(Duration::from_millis(60_500)));
        let general = |s: &str| {
            format!("invalid duration \"{s}\": expected a whole number and a unit, e.g. \"30s\" or \"1h30m\"")
        };
        for bad in ["", "s", "1.5h", "-5s", " 5s", "5 s", "abc"] {
            assert_eq!(parse_duration(bad), Err(general(bad)), "{bad:?}");
        }
        assert_eq!(
            parse_duration("10"),
            Err("invalid duration \"10\": missing unit after 10 (use ms, s, m, h or d)".into())
        );
        assert_eq!(
            parse_duration("10min"),
            Err("invalid duration \"10min\": unknown unit \"min\" (use ms, s, m, h or d)".into())
        );
        assert_eq!(parse_duration("0s"), Err("invalid duration \"0s\": must be greater than zero".into()));
        assert_eq!(
            parse_duration("99999999999999999999s"),
            Err("invalid duration \"99999999999999999999s\": too large".into())
        );
    }

    #[test]
    fn columns_count_characters_not_bytes() {
        let d = diags(&[
            r#"id = "é""#,
            r#"  "ünknown" = 1"#,
            r#"params = { "é" = "a", x = [1] }"#,
            "[[task]]",
            r#"id = "a""#,
            r#"kind = "noop""#,
        ]);
        assert_eq!(
            d,
            [
                "d.toml:1:6: `id` must be a non-empty string of letters, digits, `_`, `-` and `.`, found string \"é\"",
                "d.toml:2:3: unknown key `ünknown`; known keys: id, description, schedule, timezone, start_date, end_date, \
                 catchup, max_active_runs, deadline, defaults, params, allow_undeclared_params, task",
                "d.toml:3:27: `params.x` must be a string, integer, number, boolean or date, or a table with `type`, \
                 `default` and `description`, found array",
            ]
        );
    }

    #[test]
    fn minimal_dag_gets_defaults() {
        let source = "id = \"m\"\n[[task]]\nid = \"a\"\nkind = \"noop\"\n";
        let dag = load_str(source, Path::new("dags/m.toml")).expect("valid");
        assert_eq!(dag.id, "m");
        assert!(dag.schedule.is_none());
        assert_eq!(dag.timezone, Tz::UTC);
        assert_eq!((dag.catchup, dag.max_active_runs), (false, 16));
        assert_eq!(dag.tasks[0].policy, TaskPolicy::default());
        assert_eq!(dag.dir(), Path::new("dags"));
    }

    #[test]
    fn empty_file_reports_missing_id_and_tasks() {
        assert_eq!(
            diags(&[""]),
            ["d.toml:1:1: missing required key `id`", "d.toml:1:1: no tasks: a DAG needs at least one `[[task]]`"]
        );
    }

    #[test]
    fn value_types_are_checked() {
        let d = diags(&[
            r#"id = "v""#,
            r#"catchup = "yes""#,
            "max_active_runs = 0",
            "start_date = 2025-01-01T00:00:00",
            r#"end_date = "2025-1-1""#,
            "[params]",
            "n = [1]",
            r#"m = { type = "integer", default = "3" }"#,
            r#"k = { description = "no type" }"#,
            "[[task]]",
            r#"id = "a""#,
            r#"kind = "noop""#,
            "timeout = 30",
            r#"email = ["ops"]"#,
            r#"retry_backoff = "linear""#,
            r#"depends_on = "b""#,
        ]);
        assert_eq!(
            d,
            [
                "d.toml:2:11: `catchup` must be true or false, found string \"yes\"",
                "d.toml:3:19: `max_active_runs` must be a positive integer, found integer 0",
                "d.toml:4:14: `start_date` must be a date (YYYY-MM-DD), found datetime 2025-01-01T00:00:00",
                "d.toml:5:12: `end_date`: invalid date \"2025-1-1\" (expected YYYY-MM-DD)",
                "d.toml:7:5: `params.n` must be a string, integer, number, boolean or date, or a table with `type`, \
                 `default` and `description`, found array",
                "d.toml:8:35: `params.m.default` must be an integer, found string \"3\"",
                "d.toml:9:1: `params.k` needs a `type` or a `default`",
                "d.toml:13:11: task `a`: `timeout` must be a duration string like \"30s\" or \"10m\", found integer 30",
                "d.toml:14:10: task `a`: `email`: \"ops\" is not an e-mail address",
                "d.toml:15:17: task `a`: `retry_backoff` must be \"exponential\" or \"fixed\", found string \"linear\"",
                "d.toml:16:14: task `a`: `depends_on` must be an array of task ids, found string \"b\"",
            ]
        );
    }

    #[test]
    fn deadline_and_dag_recipients() {
        let lines = [
            r#"id = "late""#,
            r#"deadline = "1h30m""#,
            "[defaults]",
            r#"email = ["ops@example.com"]"#,
            "[[task]]",
            r#"id = "a""#,
            r#"kind = "noop""#,
            r#"email = "a@example.com""#,
        ];
        let dag = load_str(&lines.join("\n"), Path::new("late.toml")).expect("valid");
        assert_eq!(dag.deadline, Some(Duration::from_secs(5400)));
        assert_eq!(dag.email, ["ops@example.com"]);
        assert_eq!(dag.tasks[0].policy.email, ["a@example.com"]);
        let plain =
            load_str("id = \"p\"\n[[task]]\nid = \"a\"\nkind = \"noop\"\n", Path::new("p.toml")).expect("valid");
        assert_eq!((plain.deadline, plain.email.len()), (None, 0));

        let d = diags(&[r#"id = "d""#, "deadline = 90", "[[task]]", r#"id = "a""#, r#"kind = "noop""#]);
        assert_eq!(d, ["d.toml:2:12: `deadline` must be a duration string like \"30s\" or \"10m\", found integer 90"]);
        let d = diags(&[r#"id = "d""#, r#"deadline = "90m""#, "[[task]]", r#"id = "a""#, r#"kind = "noop""#]);
        assert_eq!(d, ["d.toml:2:12: `deadline` needs recipients: set `email` in `[defaults]`"]);
        let d = diags(&[
            r#"id = "d""#,
            r#"deadline = "90m""#,
            "[defaults]",
            "email = []",
            "[[task]]",
            r#"id = "a""#,
            r#"kind = "noop""#,
        ]);
        assert_eq!(d, ["d.toml:2:12: `deadline` needs recipients: set `email` in `[defaults]`"]);
        assert_eq!(suggest("dedline", DAG_KEYS.iter().copied()), Some("deadline"));
    }

    #[test]
    fn dates_and_their_order() {
        let d = diags(&[
            r#"id = "d""#,
            "start_date = 2025-06-01",
            r#"end_date = "2025-05-31""#,
            "[[task]]",
            r#"id = "a""#,
            r#"kind = "noop""#,
        ]);
        assert_eq!(d, ["d.toml:3:12: `end_date` 2025-05-31 is before `start_date` 2025-06-01"]);
    }

    #[test]
    fn params_typed_and_inferred() {
        let lines = [
            r#"id = "p""#,
            "[params]",
            "limit = 10",
            r#"ratio = { type = "number", default = 1 }"#,
            "day = 2025-01-02",
            r#"name = { type = "string", description = "who" }"#,
            "flag = false",
            "[[task]]",
            r#"id = "a""#,
            r#"kind = "noop""#,
        ];
        let dag = load_str(&lines.join("\n"), Path::new("p.toml")).expect("valid");
        let p = &dag.params;
        assert_eq!((p["limit"].ty, p["limit"].default.clone()), (ParamType::Integer, Some(serde_json::json!(10))));
        assert_eq!((p["ratio"].ty, p["ratio"].default.clone()), (ParamType::Number, Some(serde_json::json!(1))));
        assert_eq!((p["day"].ty, p["day"].default.clone()), (ParamType::Date, Some(serde_json::json!("2025-01-02"))));
        assert_eq!(
            (p["name"].ty, p["name"].default.clone(), p["name"].description.as_str()),
            (ParamType::String, None, "who")
        );
        assert_eq!(p["flag"].default, Some(serde_json::json!(false)));
    }

    #[test]
    fn several_cycles_and_self_dependency() {
        let d = diags(&[
            r#"id = "c""#,
            "[[task]]",
            r#"id = "a""#,
            r#"kind = "noop""#,
            r#"depends_on = ["a"]"#,
            "[[task]]",
            r#"id = "b""#,
            r#"kind = "noop""#,
            r#"depends_on = ["c"]"#,
            "[[task]]",
            r#"id = "c""#,
            r#"kind = "noop""#,
            r#"depends_on = ["b"]"#,
        ]);
        assert_eq!(d, ["d.toml:5:15: dependency cycle: a -> a", "d.toml:9:15: dependency cycle: b -> c -> b"]);
    }

    #[test]
    fn kind_settings_are_checked_by_the_kind() {
        let d = diags(&[
            r#"id = "k""#,
            "[[task]]",
            r#"id = "s""#,
            r#"kind = "sleep""#,
            "[[task]]",
            r#"id = "f""#,
            r#"kind = "fail""#,
            r#"times = "2""#,
            "[[task]]",
            r#"id = "n""#,
            r#"kind = "noop""#,
            r#"duration = "1s""#,
            "[[task]]",
            r#"id = "x""#,
            r#"kind = "sleep""#,
            r#"duraton = "1s""#,
            "[[task]]",
            r#"id = "c""#,
            r#"kind = "command""#,
            r#"program = "/bin/true""#,
            "env = { HOME = 1 }",
        ]);
        assert_eq!(
            d,
            [
                "d.toml:2:1: task `s`: `sleep` needs `duration`, e.g. duration = \"2s\"",
                "d.toml:8:1: task `f`: `times` must be a non-negative integer, found \"2\"",
                "d.toml:12:1: task `n`: unknown key `duration`; kind `noop` takes no settings",
                "d.toml:16:1: task `x`: unknown key `duraton`; did you mean `duration`?",
                "d.toml:21:9: task `c`: `env.HOME` must be a string, found integer",
            ]
        );
    }

    #[test]
    fn syntax_errors_silence_guesses_on_their_line() {
        let d = diags(&[
            r#"id = "s""#,
            "retries = 1",
            "[defaults]",
            "retries = 1",
            "retries = 2",
            "[[task]]",
            r#"id = "a""#,
            "kind = ",
        ]);
        assert_eq!(
            d,
            [
                "d.toml:2:1: unknown key `retries`; task settings belong in `[defaults]` or a `[[task]]`",
                "d.toml:5:1: TOML syntax error: duplicate key `retries`",
                "d.toml:8:8: TOML syntax error: string values must be quoted, expected literal string",
            ]
        );
    }
}
