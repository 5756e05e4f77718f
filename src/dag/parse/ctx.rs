//! The toolkit every walker uses: [`Ctx`] collects diagnostics and turns byte offsets into
//! line:col, [`Scope`] reads typed values and names keys in messages, and [`suggest`] guesses the
//! key or name a typo meant.

use std::collections::BTreeSet;
use std::ops::Range;
use std::path::Path;
use std::time::Duration;

use chrono::NaiveDate;
use toml::Spanned;
use toml::de::{DeString, DeTable, DeValue};

use super::parse_duration;
use crate::dag::Diagnostic;

/// Collects diagnostics for one file and turns byte offsets into 1-based line and column.
pub(super) struct Ctx<'s> {
    file: &'s Path,
    text: &'s str,
    line_starts: Vec<usize>,
    pub(super) diags: Vec<Diagnostic>,
    /// With syntax errors the recovered document may lack keys that are really there, so
    /// "missing key" reports are left out.
    pub(super) syntax_errors: bool,
    /// Lines with a syntax error: other reports on them would be about recovered guesses.
    syntax_lines: BTreeSet<usize>,
}

impl<'s> Ctx<'s> {
    pub(super) fn new(file: &'s Path, text: &'s str) -> Self {
        let line_starts = std::iter::once(0).chain(text.match_indices('\n').map(|(i, _)| i + 1)).collect();
        Ctx { file, text, line_starts, diags: Vec::new(), syntax_errors: false, syntax_lines: BTreeSet::new() }
    }

    pub(super) fn position(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let line = self.line_starts.partition_point(|&start| start <= offset).max(1);
        let start = self.line_starts[line - 1];
        let col = self.text.get(start..offset).map_or(offset - start, |s| s.chars().count()) + 1;
        (line, col)
    }

    pub(super) fn syntax_error(&mut self, span: Range<usize>, message: &str) {
        self.syntax_errors = true;
        self.syntax_lines.insert(self.position(span.start).0);
        self.push(span, format!("TOML syntax error: {message}"));
    }

    pub(super) fn report(&mut self, span: Range<usize>, message: impl Into<String>) {
        if !self.syntax_lines.contains(&self.position(span.start).0) {
            self.push(span, message.into());
        }
    }

    fn push(&mut self, span: Range<usize>, message: String) {
        let (line, col) = self.position(span.start);
        self.diags.push(Diagnostic { file: self.file.to_path_buf(), line, col, message });
    }
}

pub(super) type Key<'i> = Spanned<DeString<'i>>;
pub(super) type Value<'i> = Spanned<DeValue<'i>>;

/// A table's entries in file order (the parsed map is ordered by key).
pub(super) fn entries<'t, 'i>(table: &'t DeTable<'i>) -> Vec<(&'t Key<'i>, &'t Value<'i>)> {
    let mut out: Vec<_> = table.iter().collect();
    out.sort_by_key(|(k, _)| k.span().start);
    out
}

/// How a value is described in "found ..." messages: its type and, for scalars, the value.
pub(super) fn found(value: &DeValue<'_>) -> String {
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

pub(super) fn integer(value: &DeValue<'_>) -> Option<i64> {
    match value {
        DeValue::Integer(i) => i64::from_str_radix(i.as_str(), i.radix()).ok(),
        _ => None,
    }
}

/// Converts a kind-specific setting into a plain `toml::Value` for the kind's builder.
pub(super) fn to_toml(value: &DeValue<'_>) -> Result<toml::Value, String> {
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
pub(super) fn suggest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
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
pub(super) struct Scope {
    pub(super) prefix: String,
    pub(super) path: String,
}

impl Scope {
    pub(super) fn name(&self, key: &str) -> String {
        format!("{}{key}", self.path)
    }

    pub(super) fn msg(&self, message: impl std::fmt::Display) -> String {
        format!("{}{message}", self.prefix)
    }

    pub(super) fn unknown_key(&self, cx: &mut Ctx<'_>, key: &Key<'_>, known: &[&str], listing: &str) {
        let message = match suggest(key.get_ref(), known.iter().copied()) {
            Some(s) => format!("unknown key `{}`; did you mean `{}`?", self.name(key.get_ref()), self.name(s)),
            None => format!("unknown key `{}`; {listing}", self.name(key.get_ref())),
        };
        cx.report(key.span(), self.msg(message));
    }

    pub(super) fn string<'v>(&self, cx: &mut Ctx<'_>, key: &str, value: &'v Value<'_>) -> Option<&'v str> {
        let s = value.get_ref().as_str();
        if s.is_none() {
            cx.report(
                value.span(),
                self.msg(format!("`{}` must be a string, found {}", self.name(key), found(value.get_ref()))),
            );
        }
        s
    }

    pub(super) fn boolean(&self, cx: &mut Ctx<'_>, key: &str, value: &Value<'_>) -> Option<bool> {
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
    pub(super) fn count(&self, cx: &mut Ctx<'_>, key: &str, value: &Value<'_>, min: u32) -> Option<u32> {
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

    pub(super) fn duration(&self, cx: &mut Ctx<'_>, key: &str, value: &Value<'_>) -> Option<Duration> {
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

    pub(super) fn date(&self, cx: &mut Ctx<'_>, key: &str, value: &Value<'_>) -> Option<NaiveDate> {
        match date_value(value.get_ref()) {
            Ok(d) => Some(d),
            Err(message) => {
                cx.report(value.span(), self.msg(format!("`{}`{message}", self.name(key))));
                None
            }
        }
    }

    /// A DAG or task id: letters, digits, `_`, `-` and `.`.
    pub(super) fn ident(&self, cx: &mut Ctx<'_>, key: &str, value: &Value<'_>) -> Option<String> {
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
pub(super) fn date_value(value: &DeValue<'_>) -> Result<NaiveDate, String> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dag::parse::DAG_KEYS;
    use crate::dag::parse::policy::POLICY_KEYS;

    #[test]
    fn suggestions_catch_typos_only() {
        assert_eq!(suggest("schedul", DAG_KEYS.iter().copied()), Some("schedule"));
        assert_eq!(suggest("retires", POLICY_KEYS.iter().copied()), Some("retries"));
        assert_eq!(suggest("max-active-runs", DAG_KEYS.iter().copied()), Some("max_active_runs"));
        assert_eq!(suggest("owner", DAG_KEYS.iter().copied()), None);
        assert_eq!(distance("ab", "ba"), 1);
    }
}
