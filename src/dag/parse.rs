//! DAG TOML → validated [`Dag`], reporting every problem at once with file:line:col.
//!
//! Two stages: the spanned TOML document is walked key by key into plain specs (each problem
//! becomes a [`Diagnostic`] at the offending key or value), then the specs are checked as a whole
//! (duplicate ids, missing dependencies, cycles) and compiled into a `Dag`.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono::NaiveDate;
use chrono_tz::Tz;
use petgraph::graph::{DiGraph, NodeIndex};
use toml::Spanned;
use toml::de::{DeString, DeTable, DeValue};

use super::{Backoff, Dag, DagHead, Diagnostic, ParamSpec, ParamType, Schedule, TaskDef, TaskPolicy};
use crate::tasks::{self, BuildInput, KindEntry, Task};

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
const POLICY_KEYS: &[&str] = &[
    "retries",
    "retry_delay",
    "retry_backoff",
    "max_retry_delay",
    "timeout",
    "email",
    "email_on_retry",
    "email_on_failure",
    "idempotent",
    "webhook",
];
/// `[defaults]` keys that are about the DAG as a whole, not about each task.
const DAG_DEFAULT_KEYS: &[&str] = &["email_on_recovery"];
const TASK_KEYS: &[&str] = &["id", "kind", "depends_on"];
const PARAM_KEYS: &[&str] = &["type", "default", "description"];
const PARAM_TYPES: &[ParamType] =
    &[ParamType::String, ParamType::Integer, ParamType::Number, ParamType::Boolean, ParamType::Date];

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

/// Collects diagnostics for one file and turns byte offsets into 1-based line and column.
struct Ctx<'s> {
    file: &'s Path,
    text: &'s str,
    line_starts: Vec<usize>,
    diags: Vec<Diagnostic>,
    /// With syntax errors the recovered document may lack keys that are really there, so
    /// "missing key" reports are left out.
    syntax_errors: bool,
    /// Lines with a syntax error: other reports on them would be about recovered guesses.
    syntax_lines: BTreeSet<usize>,
}

impl<'s> Ctx<'s> {
    fn new(file: &'s Path, text: &'s str) -> Self {
        let line_starts = std::iter::once(0).chain(text.match_indices('\n').map(|(i, _)| i + 1)).collect();
        Ctx { file, text, line_starts, diags: Vec::new(), syntax_errors: false, syntax_lines: BTreeSet::new() }
    }

    fn position(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let line = self.line_starts.partition_point(|&start| start <= offset).max(1);
        let start = self.line_starts[line - 1];
        let col = self.text.get(start..offset).map_or(offset - start, |s| s.chars().count()) + 1;
        (line, col)
    }

    fn syntax_error(&mut self, span: Range<usize>, message: &str) {
        self.syntax_errors = true;
        self.syntax_lines.insert(self.position(span.start).0);
        self.push(span, format!("TOML syntax error: {message}"));
    }

    fn report(&mut self, span: Range<usize>, message: impl Into<String>) {
        if !self.syntax_lines.contains(&self.position(span.start).0) {
            self.push(span, message.into());
        }
    }

    fn push(&mut self, span: Range<usize>, message: String) {
        let (line, col) = self.position(span.start);
        self.diags.push(Diagnostic { file: self.file.to_path_buf(), line, col, message });
    }
}

type Key<'i> = Spanned<DeString<'i>>;
type Value<'i> = Spanned<DeValue<'i>>;

/// A table's entries in file order (the parsed map is ordered by key).
fn entries<'t, 'i>(table: &'t DeTable<'i>) -> Vec<(&'t Key<'i>, &'t Value<'i>)> {
    let mut out: Vec<_> = table.iter().collect();
    out.sort_by_key(|(k, _)| k.span().start);
    out
}

/// How a value is described in "found ..." messages: its type and, for scalars, the value.
fn found(value: &DeValue<'_>) -> String {
    match value {
        DeValue::String(s) => format!("string {s:?}"),
        DeValue::Integer(i) => format!("integer {i}"),
        DeValue::Float(f) => format!("float {f}"),
        DeValue::Boolean(b) => format!("boolean {b}"),
        DeValue::Datetime(d) => format!("datetime {d}"),
        DeValue::Array(_) => "array".to_string(),
        DeValue::Table(_) => "table".to_string(),
    }
}

fn integer(value: &DeValue<'_>) -> Option<i64> {
    match value {
        DeValue::Integer(i) => i64::from_str_radix(i.as_str(), i.radix()).ok(),
        _ => None,
    }
}

/// Converts a kind-specific setting into a plain `toml::Value` for the kind's builder.
fn to_toml(value: &DeValue<'_>) -> Result<toml::Value, String> {
    Ok(match value {
        DeValue::String(s) => toml::Value::String(s.to_string()),
        DeValue::Integer(i) => {
            toml::Value::Integer(integer(value).ok_or_else(|| format!("integer {i} is out of range"))?)
        }
        DeValue::Float(f) => toml::Value::Float(f.as_str().parse().map_err(|_| format!("float {f} is out of range"))?),
        DeValue::Boolean(b) => toml::Value::Boolean(*b),
        DeValue::Datetime(d) => toml::Value::Datetime(*d),
        DeValue::Array(items) => {
            toml::Value::Array(items.iter().map(|v| to_toml(v.get_ref())).collect::<Result<_, _>>()?)
        }
        DeValue::Table(t) => {
            let mut table = toml::Table::new();
            for (k, v) in entries(t) {
                table.insert(k.get_ref().to_string(), to_toml(v.get_ref())?);
            }
            toml::Value::Table(table)
        }
    })
}

/// Optimal string alignment distance (edits, with adjacent transpositions), on characters.
fn distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[i - 1][j] + 1).min(d[i][j - 1] + 1).min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = best;
        }
    }
    d[a.len()][b.len()]
}

/// The candidate closest to `word`, if it is close enough to be a likely typo.
fn suggest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let norm = |s: &str| s.to_lowercase().replace('-', "_");
    let word = norm(word);
    let limit = (word.chars().count() / 3).clamp(1, 3);
    candidates
        .into_iter()
        .map(|c| (distance(&word, &norm(c)), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Names keys in messages: `prefix` says which task, `path` which table (`defaults.`, `params.x.`).
#[derive(Clone, Default)]
struct Scope {
    prefix: String,
    path: String,
}

impl Scope {
    fn name(&self, key: &str) -> String {
        format!("{}{key}", self.path)
    }

    fn msg(&self, message: impl std::fmt::Display) -> String {
        format!("{}{message}", self.prefix)
    }

    fn unknown_key(&self, cx: &mut Ctx<'_>, key: &Key<'_>, known: &[&str], listing: &str) {
        let message = match suggest(key.get_ref(), known.iter().copied()) {
            Some(s) => format!("unknown key `{}`; did you mean `{}`?", self.name(key.get_ref()), self.name(s)),
            None => format!("unknown key `{}`; {listing}", self.name(key.get_ref())),
        };
        cx.report(key.span(), self.msg(message));
    }

    fn string<'v>(&self, cx: &mut Ctx<'_>, key: &str, value: &'v Value<'_>) -> Option<&'v str> {
        let s = value.get_ref().as_str();
        if s.is_none() {
            cx.report(
                value.span(),
                self.msg(format!("`{}` must be a string, found {}", self.name(key), found(value.get_ref()))),
            );
        }
        s
    }

    fn boolean(&self, cx: &mut Ctx<'_>, key: &str, value: &Value<'_>) -> Option<bool> {
        let b = value.get_ref().as_bool();
        if b.is_none() {
            cx.report(
                value.span(),
                self.msg(format!("`{}` must be true or false, found {}", self.name(key), found(value.get_ref()))),
            );
        }
        b
    }

    /// An integer in `min..=u32::MAX`.
    fn count(&self, cx: &mut Ctx<'_>, key: &str, value: &Value<'_>, min: u32) -> Option<u32> {
        let n = integer(value.get_ref()).and_then(|n| u32::try_from(n).ok()).filter(|&n| n >= min);
        if n.is_none() {
            let what = if min == 0 { "a non-negative integer" } else { "a positive integer" };
            cx.report(
                value.span(),
                self.msg(format!("`{}` must be {what}, found {}", self.name(key), found(value.get_ref()))),
            );
        }
        n
    }

    fn duration(&self, cx: &mut Ctx<'_>, key: &str, value: &Value<'_>) -> Option<Duration> {
        let Some(s) = value.get_ref().as_str() else {
            let message = format!(
                "`{}` must be a duration string like \"30s\" or \"10m\", found {}",
                self.name(key),
                found(value.get_ref())
            );
            cx.report(value.span(), self.msg(message));
            return None;
        };
        parse_duration(s).map_err(|e| cx.report(value.span(), self.msg(format!("`{}`: {e}", self.name(key))))).ok()
    }

    fn date(&self, cx: &mut Ctx<'_>, key: &str, value: &Value<'_>) -> Option<NaiveDate> {
        match date_value(value.get_ref()) {
            Ok(d) => Some(d),
            Err(message) => {
                cx.report(value.span(), self.msg(format!("`{}`{message}", self.name(key))));
                None
            }
        }
    }

    /// A DAG or task id: letters, digits, `_`, `-` and `.`.
    fn ident(&self, cx: &mut Ctx<'_>, key: &str, value: &Value<'_>) -> Option<String> {
        match value.get_ref().as_str() {
            Some(s) if !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c)) => {
                Some(s.to_string())
            }
            _ => {
                let message = format!(
                    "`{}` must be a non-empty string of letters, digits, `_`, `-` and `.`, found {}",
                    self.name(key),
                    found(value.get_ref())
                );
                cx.report(value.span(), self.msg(message));
                None
            }
        }
    }
}

/// A date given as TOML local date or `"YYYY-MM-DD"`; the error completes "`key`...".
fn date_value(value: &DeValue<'_>) -> Result<NaiveDate, String> {
    match value {
        DeValue::Datetime(dt) if dt.time.is_none() && dt.offset.is_none() => dt
            .date
            .and_then(|d| NaiveDate::from_ymd_opt(i32::from(d.year), u32::from(d.month), u32::from(d.day)))
            .ok_or_else(|| format!(": invalid date {dt}")),
        DeValue::String(s) => {
            let parsed = NaiveDate::parse_from_str(s, "%Y-%m-%d").ok().filter(|_| s.len() == 10);
            parsed.ok_or_else(|| format!(": invalid date \"{s}\" (expected YYYY-MM-DD)"))
        }
        other => Err(format!(" must be a date (YYYY-MM-DD), found {}", found(other))),
    }
}

/// Policy keys given in `[defaults]` or in a task; unset ones fall through.
#[derive(Debug, Clone, Default)]
struct PolicyPatch {
    retries: Option<u32>,
    retry_delay: Option<Duration>,
    backoff: Option<Backoff>,
    max_retry_delay: Option<Duration>,
    timeout: Option<Duration>,
    email: Option<Vec<String>>,
    email_on_retry: Option<bool>,
    email_on_failure: Option<bool>,
    idempotent: Option<bool>,
    webhook: Option<Vec<String>>,
}

impl PolicyPatch {
    fn apply(&self, policy: &mut TaskPolicy) {
        if let Some(v) = self.retries {
            policy.retries = v;
        }
        if let Some(v) = self.retry_delay {
            policy.retry_delay = v;
        }
        if let Some(v) = self.backoff {
            policy.backoff = v;
        }
        if let Some(v) = self.max_retry_delay {
            policy.max_retry_delay = Some(v);
        }
        if let Some(v) = self.timeout {
            policy.timeout = Some(v);
        }
        if let Some(v) = &self.email {
            policy.email = v.clone();
        }
        if let Some(v) = self.email_on_retry {
            policy.email_on_retry = v;
        }
        if let Some(v) = self.email_on_failure {
            policy.email_on_failure = v;
        }
        if let Some(v) = self.idempotent {
            policy.idempotent = Some(v);
        }
        if let Some(v) = &self.webhook {
            policy.webhook = v.clone();
        }
    }

    /// Takes one policy key; `false` if `key` is not one.
    fn take(&mut self, cx: &mut Ctx<'_>, scope: &Scope, key: &str, value: &Value<'_>) -> bool {
        match key {
            "retries" => self.retries = scope.count(cx, key, value, 0),
            "retry_delay" => self.retry_delay = scope.duration(cx, key, value),
            "max_retry_delay" => self.max_retry_delay = scope.duration(cx, key, value),
            "timeout" => self.timeout = scope.duration(cx, key, value),
            "email_on_retry" => self.email_on_retry = scope.boolean(cx, key, value),
            "email_on_failure" => self.email_on_failure = scope.boolean(cx, key, value),
            "idempotent" => self.idempotent = scope.boolean(cx, key, value),
            "retry_backoff" => {
                self.backoff = match value.get_ref().as_str() {
                    Some("exponential") => Some(Backoff::Exponential),
                    Some("fixed") => Some(Backoff::Fixed),
                    _ => {
                        let message = format!(
                            "`{}` must be \"exponential\" or \"fixed\", found {}",
                            scope.name(key),
                            found(value.get_ref())
                        );
                        cx.report(value.span(), scope.msg(message));
                        None
                    }
                }
            }
            "email" => self.email = email_list(cx, scope, key, value),
            "webhook" => self.webhook = webhook_list(cx, scope, key, value),
            _ => return false,
        }
        true
    }
}

/// `email`: one address or an array of them.
fn email_list(cx: &mut Ctx<'_>, scope: &Scope, key: &str, value: &Value<'_>) -> Option<Vec<String>> {
    let items: Vec<&Value<'_>> = match value.get_ref() {
        DeValue::String(_) => vec![value],
        DeValue::Array(items) => items.iter().collect(),
        other => {
            let message =
                format!("`{}` must be an e-mail address or an array of them, found {}", scope.name(key), found(other));
            cx.report(value.span(), scope.msg(message));
            return None;
        }
    };
    let mut out = Vec::new();
    let mut ok = true;
    for item in items {
        match item.get_ref().as_str() {
            Some(s) if is_mailbox(s) => out.push(s.to_string()),
            Some(s) => {
                cx.report(item.span(), scope.msg(format!("`{}`: \"{s}\" is not an e-mail address", scope.name(key))));
                ok = false;
            }
            None => {
                let message = format!(
                    "`{}` entries must be e-mail address strings, found {}",
                    scope.name(key),
                    found(item.get_ref())
                );
                cx.report(item.span(), scope.msg(message));
                ok = false;
            }
        }
    }
    ok.then_some(out)
}

/// `webhook`: one http(s) URL or an array of them.
fn webhook_list(cx: &mut Ctx<'_>, scope: &Scope, key: &str, value: &Value<'_>) -> Option<Vec<String>> {
    let items: Vec<&Value<'_>> = match value.get_ref() {
        DeValue::String(_) => vec![value],
        DeValue::Array(items) => items.iter().collect(),
        other => {
            let message = format!("`{}` must be a URL or an array of URLs, found {}", scope.name(key), found(other));
            cx.report(value.span(), scope.msg(message));
            return None;
        }
    };
    let mut out = Vec::new();
    let mut ok = true;
    for item in items {
        match item.get_ref().as_str() {
            Some(s) => match crate::alerts::check_webhook_url(s) {
                Ok(()) => out.push(s.trim().to_string()),
                Err(why) => {
                    cx.report(item.span(), scope.msg(format!("`{}`: {why}", scope.name(key))));
                    ok = false;
                }
            },
            None => {
                let message =
                    format!("`{}` entries must be URL strings, found {}", scope.name(key), found(item.get_ref()));
                cx.report(item.span(), scope.msg(message));
                ok = false;
            }
        }
    }
    ok.then_some(out)
}

/// Whether the alert sender will accept `s` as a recipient: the same parse (lettre's
/// [`Mailbox`](lettre::message::Mailbox), after trimming) that `alerts` does before mailing, so
/// an address it would skip is refused here, when the DAG is loaded.
fn is_mailbox(s: &str) -> bool {
    s.trim().parse::<lettre::message::Mailbox>().is_ok()
}

/// One `[[task]]` entry, walked.
struct TaskSpec {
    /// 1-based position among the `[[task]]` entries.
    index: usize,
    header: Range<usize>,
    id: Option<(String, Range<usize>)>,
    kind: Option<&'static KindEntry>,
    depends_on: Vec<(String, Range<usize>)>,
    patch: PolicyPatch,
    task: Option<Arc<dyn Task>>,
}

impl TaskSpec {
    fn label(&self) -> String {
        match &self.id {
            Some((id, _)) => format!("task `{id}`: "),
            None => format!("task #{}: ", self.index),
        }
    }
}

fn task_spec(cx: &mut Ctx<'_>, index: usize, value: &Value<'_>, dag_dir: &Path) -> Option<TaskSpec> {
    let Some(table) = value.get_ref().as_table() else {
        cx.report(value.span(), format!("each `task` entry must be a table, found {}", found(value.get_ref())));
        return None;
    };
    let header = value.span();
    let anonymous = Scope { prefix: format!("task #{index}: "), path: String::new() };
    let id = match table.get("id") {
        Some(v) => anonymous.ident(cx, "id", v).map(|id| (id, v.span())),
        None => {
            if !cx.syntax_errors {
                cx.report(header.clone(), anonymous.msg("missing required key `id`"));
            }
            None
        }
    };
    let mut spec = TaskSpec {
        index,
        header: header.clone(),
        id,
        kind: None,
        depends_on: Vec::new(),
        patch: PolicyPatch::default(),
        task: None,
    };
    let scope = Scope { prefix: spec.label(), path: String::new() };

    let mut kind_given = false;
    if let Some(v) = table.get("kind") {
        kind_given = true;
        if let Some(name) = scope.string(cx, "kind", v) {
            spec.kind = tasks::lookup(name);
            if spec.kind.is_none() {
                let known = tasks::kind_names().join(", ");
                let message = match suggest(name, tasks::kind_names()) {
                    Some(s) => format!("unknown task kind `{name}`; did you mean `{s}`? (known kinds: {known})"),
                    None => format!("unknown task kind `{name}` (known kinds: {known})"),
                };
                cx.report(v.span(), scope.msg(message));
            }
        }
    } else if !cx.syntax_errors {
        cx.report(header.clone(), scope.msg("missing required key `kind`"));
    }

    let mut settings = toml::Table::new();
    let mut settings_ok = true;
    for (key, value) in entries(table) {
        let name = key.get_ref().as_ref();
        match name {
            "id" | "kind" => {}
            "depends_on" => spec.depends_on = depends_on(cx, &scope, value),
            _ if spec.patch.take(cx, &scope, name, value) => {}
            _ => match spec.kind {
                Some(kind) if kind.keys.contains(&name) => match to_toml(value.get_ref()) {
                    Ok(v) => {
                        settings.insert(name.to_string(), v);
                    }
                    Err(e) => {
                        cx.report(value.span(), scope.msg(format!("`{name}`: {e}")));
                        settings_ok = false;
                    }
                },
                Some(kind) => {
                    let known: Vec<&str> = TASK_KEYS.iter().chain(POLICY_KEYS).chain(kind.keys).copied().collect();
                    let listing = match kind.keys {
                        [] => format!("kind `{}` takes no settings", kind.name),
                        keys => format!(
                            "kind `{}` takes {}",
                            kind.name,
                            keys.iter().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(", ")
                        ),
                    };
                    scope.unknown_key(cx, key, &known, &listing);
                    settings_ok = false;
                }
                // Without a known kind, only flag likely misspellings of the common keys.
                None => {
                    let common: Vec<&str> = TASK_KEYS.iter().chain(POLICY_KEYS).copied().collect();
                    if kind_given && suggest(name, common.iter().copied()).is_some() {
                        scope.unknown_key(cx, key, &common, "");
                    }
                }
            },
        }
    }

    if let Some(kind) = spec.kind.filter(|_| settings_ok) {
        match (kind.build)(&BuildInput { settings: &settings, dag_dir }) {
            Ok(task) => spec.task = Some(task),
            Err(errors) => {
                for e in errors {
                    let root = e.key.split('.').next().unwrap_or_default();
                    let span = nested_key_span(table, &e.key)
                        .filter(|_| settings.contains_key(root))
                        .unwrap_or_else(|| header.clone());
                    let message = if e.message.contains(&format!("`{}`", e.key)) {
                        e.message
                    } else {
                        format!("`{}`: {}", e.key, e.message)
                    };
                    cx.report(span, scope.msg(message));
                }
            }
        }
    }
    Some(spec)
}

/// The span of the deepest key of dotted `path` (`env.HOME`) that exists in `table`.
fn nested_key_span(table: &DeTable<'_>, path: &str) -> Option<Range<usize>> {
    let mut table = Some(table);
    let mut span = None;
    for segment in path.split('.') {
        let Some((key, value)) = table.and_then(|t| t.get_key_value(segment)) else { break };
        span = Some(key.span());
        table = value.get_ref().as_table();
    }
    span
}

fn depends_on(cx: &mut Ctx<'_>, scope: &Scope, value: &Value<'_>) -> Vec<(String, Range<usize>)> {
    let Some(items) = value.get_ref().as_array() else {
        cx.report(
            value.span(),
            scope.msg(format!("`depends_on` must be an array of task ids, found {}", found(value.get_ref()))),
        );
        return Vec::new();
    };
    let mut out = Vec::new();
    for item in items.iter() {
        match item.get_ref().as_str() {
            Some(s) => out.push((s.to_string(), item.span())),
            None => {
                let message = format!("`depends_on` entries must be task id strings, found {}", found(item.get_ref()));
                cx.report(item.span(), scope.msg(message));
            }
        }
    }
    out
}

fn param_type_name(ty: ParamType) -> &'static str {
    match ty {
        ParamType::String => "a string",
        ParamType::Integer => "an integer",
        ParamType::Number => "a number",
        ParamType::Boolean => "a boolean",
        ParamType::Date => "a date (YYYY-MM-DD)",
    }
}

/// A param default as JSON, if `value` fits `ty`.
fn param_value(ty: ParamType, value: &DeValue<'_>) -> Option<serde_json::Value> {
    match (ty, value) {
        (ParamType::String, DeValue::String(s)) => Some(serde_json::Value::String(s.to_string())),
        (ParamType::Integer, DeValue::Integer(_)) => integer(value).map(serde_json::Value::from),
        (ParamType::Number, DeValue::Integer(_)) => integer(value).map(serde_json::Value::from),
        (ParamType::Number, DeValue::Float(f)) => {
            f.as_str().parse::<f64>().ok().and_then(serde_json::Number::from_f64).map(serde_json::Value::Number)
        }
        (ParamType::Boolean, DeValue::Boolean(b)) => Some(serde_json::Value::Bool(*b)),
        (ParamType::Date, DeValue::Datetime(_) | DeValue::String(_)) => {
            date_value(value).ok().map(|d| serde_json::Value::String(d.format("%Y-%m-%d").to_string()))
        }
        _ => None,
    }
}

/// The type a plain param default implies.
fn inferred_type(value: &DeValue<'_>) -> Option<ParamType> {
    match value {
        DeValue::String(_) => Some(ParamType::String),
        DeValue::Integer(_) => Some(ParamType::Integer),
        DeValue::Float(_) => Some(ParamType::Number),
        DeValue::Boolean(_) => Some(ParamType::Boolean),
        DeValue::Datetime(d) if d.time.is_none() && d.offset.is_none() => Some(ParamType::Date),
        _ => None,
    }
}

fn param(cx: &mut Ctx<'_>, name: &str, key: &Key<'_>, value: &Value<'_>) -> Option<ParamSpec> {
    let Some(table) = value.get_ref().as_table() else {
        let Some(ty) = inferred_type(value.get_ref()) else {
            let message = format!(
                "`params.{name}` must be a string, integer, number, boolean or date, or a table with `type`, \
                 `default` and `description`, found {}",
                found(value.get_ref())
            );
            cx.report(value.span(), message);
            return None;
        };
        let Some(default) = param_value(ty, value.get_ref()) else {
            cx.report(
                value.span(),
                format!("`params.{name}`: {} is not {}", found(value.get_ref()), param_type_name(ty)),
            );
            return None;
        };
        return Some(ParamSpec { ty, default: Some(default), description: String::new() });
    };
    let scope = Scope { prefix: String::new(), path: format!("params.{name}.") };
    let mut ok = true;
    let mut ty = None;
    let mut default = None;
    let mut description = String::new();
    for (k, v) in entries(table) {
        match k.get_ref().as_ref() {
            "type" => {
                ty = v.get_ref().as_str().and_then(|s| PARAM_TYPES.iter().copied().find(|t| t.name() == s));
                if ty.is_none() {
                    let message = format!(
                        "`{}` must be one of \"string\", \"integer\", \"number\", \"boolean\", \"date\", found {}",
                        scope.name("type"),
                        found(v.get_ref())
                    );
                    cx.report(v.span(), message);
                    ok = false;
                }
            }
            "default" => default = Some(v),
            "description" => match scope.string(cx, "description", v) {
                Some(s) => description = s.to_string(),
                None => ok = false,
            },
            _ => {
                scope.unknown_key(cx, k, PARAM_KEYS, "known keys: type, default, description");
                ok = false;
            }
        }
    }
    if table.get("type").is_some() && ty.is_none() {
        return None;
    }
    let ty = match (ty, default) {
        (Some(ty), _) => ty,
        (None, Some(d)) => match inferred_type(d.get_ref()) {
            Some(ty) => ty,
            None => {
                let message = format!(
                    "`{}` must be a string, integer, number, boolean or date, found {}",
                    scope.name("default"),
                    found(d.get_ref())
                );
                cx.report(d.span(), message);
                return None;
            }
        },
        (None, None) => {
            cx.report(key.span(), format!("`params.{name}` needs a `type` or a `default`"));
            return None;
        }
    };
    let default = match default {
        None => None,
        Some(d) => match param_value(ty, d.get_ref()) {
            Some(v) => Some(v),
            None => {
                let message = format!(
                    "`{}` must be {}, found {}",
                    scope.name("default"),
                    param_type_name(ty),
                    found(d.get_ref())
                );
                cx.report(d.span(), message);
                return None;
            }
        },
    };
    ok.then_some(ParamSpec { ty, default, description })
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

/// Adds the edges the data implies: a task that reads a table depends on the task of the same DAG
/// that writes it (gold models name no dependencies; their SQL does).
fn infer_data_dependencies(task_defs: &mut [TaskDef]) {
    let writers: Vec<(String, Vec<String>)> = task_defs.iter().map(|t| (t.id.clone(), t.task.writes())).collect();
    for def in task_defs.iter_mut() {
        for table in def.task.reads() {
            for (writer, writes) in &writers {
                if writer != &def.id && writes.contains(&table) && !def.depends_on.contains(writer) {
                    def.depends_on.push(writer.clone());
                }
            }
        }
    }
}

/// Duplicate task ids, dependencies on tasks that do not exist, and cycles.
fn check_graph(cx: &mut Ctx<'_>, specs: &[TaskSpec]) {
    // The first task with an id owns it; later ones are duplicates.
    let mut index: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, spec) in specs.iter().enumerate() {
        let Some((id, span)) = &spec.id else { continue };
        match index.get(id.as_str()) {
            Some(&first) => {
                let line = specs[first].id.as_ref().map_or(0, |(_, s)| cx.position(s.start).0);
                cx.report(span.clone(), format!("duplicate task id `{id}` (first defined on line {line})"));
            }
            None => {
                index.insert(id, i);
            }
        }
    }
    let ids: Vec<&str> = index.keys().copied().collect();
    let mut graph = DiGraph::<usize, ()>::with_capacity(specs.len(), specs.len());
    let nodes: Vec<NodeIndex> = (0..specs.len()).map(|i| graph.add_node(i)).collect();
    for (i, spec) in specs.iter().enumerate() {
        let owner = spec.id.as_ref().is_some_and(|(id, _)| index.get(id.as_str()) == Some(&i));
        let mut seen = BTreeSet::new();
        for (dep, span) in &spec.depends_on {
            match index.get(dep.as_str()) {
                Some(&j) => {
                    if owner && seen.insert(j) {
                        graph.add_edge(nodes[j], nodes[i], ());
                    }
                }
                None => {
                    let who = spec
                        .id
                        .as_ref()
                        .map_or_else(|| format!("task #{}", spec.index), |(id, _)| format!("task `{id}`"));
                    let hint =
                        suggest(dep, ids.iter().copied()).map(|s| format!("; did you mean `{s}`?")).unwrap_or_default();
                    cx.report(span.clone(), format!("{who} depends on `{dep}`, which is not a task in this DAG{hint}"));
                }
            }
        }
    }
    // Report each cycle, then break it by dropping its closing edge, to find any others.
    for _ in 0..specs.len() {
        let Some(cycle) = super::find_cycle(&graph) else { break };
        let names: Vec<&str> = cycle.iter().map(|&i| specs[i].id.as_ref().map_or("?", |(id, _)| id.as_str())).collect();
        let (first, before) = (cycle[0], cycle[cycle.len().saturating_sub(2)]);
        let before_id = names[cycle.len().saturating_sub(2)];
        let span = specs[first]
            .depends_on
            .iter()
            .find(|(d, _)| d == before_id)
            .map_or_else(|| specs[first].header.clone(), |(_, s)| s.clone());
        cx.report(span, format!("dependency cycle: {}", names.join(" -> ")));
        if let Some(edge) = graph.find_edge(nodes[before], nodes[first]) {
            graph.remove_edge(edge);
        } else {
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn suggestions_catch_typos_only() {
        assert_eq!(suggest("schedul", DAG_KEYS.iter().copied()), Some("schedule"));
        assert_eq!(suggest("retires", POLICY_KEYS.iter().copied()), Some("retries"));
        assert_eq!(suggest("max-active-runs", DAG_KEYS.iter().copied()), Some("max_active_runs"));
        assert_eq!(suggest("owner", DAG_KEYS.iter().copied()), None);
        assert_eq!(distance("ab", "ba"), 1);
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
