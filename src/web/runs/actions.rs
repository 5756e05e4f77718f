//! The mutating forms of the run views: trigger, clear (+ downstream), mark success/failed,
//! pause/unpause, cancel a backfill. Each handler calls [`require_login`] before anything else
//! (401 without a session, 403 with a wrong CSRF token), then the `ops` function the JSON API
//! uses too (which checks the role: 403, and writes the audit log), then redirects (303) to the
//! page that shows the result.

use std::sync::Arc;

use askama::Template;
use axum::Form;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use chrono::NaiveDate;
use serde::Deserialize;
use serde_json::Value;

use super::{PageResult, dag_or_404};
use crate::daemon::Daemon;
use crate::dag::{Dag, ParamType};
use crate::ops::{self, OpError, Role};
use crate::web::{Chrome, Viewer, render, require_login};

/// The error page of a refused or failed operation (the status is `OpError::status`).
fn op_error(viewer: &Viewer, e: OpError) -> Response {
    crate::web::op_error_page(viewer, e)
}

fn see_other(to: &str) -> Response {
    Redirect::to(to).into_response()
}

#[derive(Deserialize)]
pub(super) struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

// ---- pause / unpause --------------------------------------------------------------------------------

async fn set_paused(d: &Daemon, viewer: &Viewer, form: &CsrfForm, dag_id: &str, paused: bool) -> PageResult {
    let actor = require_login(viewer, &form.csrf)?;
    ops::runs::set_paused(d, &actor, dag_id, paused).await.map_err(|e| op_error(viewer, e))?;
    Ok(see_other("/"))
}

pub(super) async fn pause(
    State(d): State<Arc<Daemon>>,
    viewer: Viewer,
    Path(dag_id): Path<String>,
    Form(form): Form<CsrfForm>,
) -> PageResult {
    set_paused(&d, &viewer, &form, &dag_id, true).await
}

pub(super) async fn unpause(
    State(d): State<Arc<Daemon>>,
    viewer: Viewer,
    Path(dag_id): Path<String>,
    Form(form): Form<CsrfForm>,
) -> PageResult {
    set_paused(&d, &viewer, &form, &dag_id, false).await
}

// ---- clear / mark -----------------------------------------------------------------------------------

#[derive(Deserialize)]
pub(super) struct ClearForm {
    #[serde(default)]
    csrf: String,
    /// A checkbox: present (any value) means clear the downstream tasks too.
    #[serde(default)]
    downstream: Option<String>,
}

pub(super) async fn clear(
    State(d): State<Arc<Daemon>>,
    viewer: Viewer,
    Path((run_pk, task_id)): Path<(i64, String)>,
    Form(form): Form<ClearForm>,
) -> PageResult {
    let actor = require_login(&viewer, &form.csrf)?;
    let downstream = form.downstream.is_some_and(|v| v != "false");
    ops::runs::clear(&d, &actor, run_pk, &task_id, downstream).await.map_err(|e| op_error(&viewer, e))?;
    Ok(see_other(&format!("/runs/{run_pk}")))
}

#[derive(Deserialize)]
pub(super) struct MarkForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    state: String,
}

pub(super) async fn mark(
    State(d): State<Arc<Daemon>>,
    viewer: Viewer,
    Path((run_pk, task_id)): Path<(i64, String)>,
    Form(form): Form<MarkForm>,
) -> PageResult {
    let actor = require_login(&viewer, &form.csrf)?;
    ops::runs::mark(&d, &actor, run_pk, &task_id, &form.state).await.map_err(|e| op_error(&viewer, e))?;
    Ok(see_other(&format!("/runs/{run_pk}/tasks/{task_id}")))
}

// ---- cancel backfill --------------------------------------------------------------------------------

pub(super) async fn cancel_backfill(
    State(d): State<Arc<Daemon>>,
    viewer: Viewer,
    Path(id): Path<i64>,
    Form(form): Form<CsrfForm>,
) -> PageResult {
    let actor = require_login(&viewer, &form.csrf)?;
    ops::runs::change_backfill(&d, &actor, id, "cancel").await.map_err(|e| op_error(&viewer, e))?;
    Ok(see_other(&format!("/backfills/{id}")))
}

// ---- trigger ----------------------------------------------------------------------------------------

/// One input of the trigger form, generated from a DAG param.
pub(super) struct Field {
    name: String,
    ty: &'static str,
    /// `text`, `number`, `date` or `bool` (a select).
    input: &'static str,
    step: &'static str,
    value: String,
    description: String,
    required: bool,
}

#[derive(Template)]
#[template(path = "runs/trigger.html")]
pub(super) struct TriggerPage {
    chrome: Chrome,
    dag_id: String,
    timezone: String,
    schedule: String,
    date: String,
    fields: Vec<Field>,
    error: Option<String>,
}

/// A JSON value as a form field shows it (strings without quotes).
fn field_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn fields(dag: &Dag, given: &[(String, String)]) -> Vec<Field> {
    dag.params
        .iter()
        .map(|(name, p)| {
            let posted =
                given.iter().rev().find(|(k, _)| k.strip_prefix("param.") == Some(name)).map(|(_, v)| v.clone());
            let (input, step) = match p.ty {
                ParamType::String => ("text", ""),
                ParamType::Integer => ("number", "1"),
                ParamType::Number => ("number", "any"),
                ParamType::Boolean => ("bool", ""),
                ParamType::Date => ("date", ""),
            };
            Field {
                name: name.clone(),
                ty: p.ty.name(),
                input,
                step,
                value: posted.unwrap_or_else(|| p.default.as_ref().map(field_text).unwrap_or_default()),
                description: p.description.clone(),
                required: p.default.is_none(),
            }
        })
        .collect()
}

fn trigger_page(
    dag: &Dag,
    viewer: &Viewer,
    status: StatusCode,
    date: String,
    given: &[(String, String)],
    error: Option<String>,
) -> Response {
    let page = TriggerPage {
        chrome: Chrome::new(format!("Trigger {}", dag.id), viewer),
        dag_id: dag.id.clone(),
        timezone: dag.timezone.name().to_string(),
        schedule: super::schedule_text(dag),
        date,
        fields: fields(dag, given),
        error,
    };
    (status, render(&page)).into_response()
}

pub(super) async fn trigger_form(
    State(d): State<Arc<Daemon>>,
    viewer: Viewer,
    Path(dag_id): Path<String>,
) -> PageResult {
    let dag = dag_or_404(&d, &viewer, &dag_id)?;
    let today = chrono::Utc::now().with_timezone(&dag.timezone).date_naive().to_string();
    Ok(trigger_page(&dag, &viewer, StatusCode::OK, today, &[], None))
}

/// The logical date and run conf a posted trigger form asks for; an error names the field.
/// A missing field, or an empty one that is not text, takes the param's default (a param without
/// one needs a value); an empty text field is the empty string.
pub(super) fn conf_from_form(dag: &Dag, form: &[(String, String)]) -> Result<(NaiveDate, Value), String> {
    let get = |key: &str| form.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v.trim());
    let date_text = get("logical_date").unwrap_or_default();
    let date = crate::timefmt::parse_date("logical date", date_text)?;
    let mut conf = serde_json::Map::new();
    for (name, p) in &dag.params {
        let posted = get(&format!("param.{name}"));
        let raw = posted.unwrap_or_default();
        // A field not posted at all, or an empty non-text field, takes the default.
        if posted.is_none() || (raw.is_empty() && p.ty != ParamType::String) {
            match &p.default {
                Some(d) => {
                    conf.insert(name.clone(), d.clone());
                    continue;
                }
                None => return Err(format!("param `{name}` needs a value (a {})", p.ty.name())),
            }
        }
        let value = match p.ty {
            ParamType::String => {
                if raw.is_empty() && p.default.is_none() {
                    return Err(format!("param `{name}` needs a value (a string)"));
                }
                Value::String(raw.to_string())
            }
            ParamType::Integer => Value::from(
                raw.parse::<i64>().map_err(|_| format!("param `{name}` must be an integer, found `{raw}`"))?,
            ),
            ParamType::Number => raw
                .parse::<f64>()
                .ok()
                .and_then(serde_json::Number::from_f64)
                .map(Value::Number)
                .ok_or_else(|| format!("param `{name}` must be a number, found `{raw}`"))?,
            ParamType::Boolean => match raw {
                "true" => Value::Bool(true),
                "false" => Value::Bool(false),
                _ => return Err(format!("param `{name}` must be true or false, found `{raw}`")),
            },
            ParamType::Date => {
                NaiveDate::parse_from_str(raw, "%Y-%m-%d")
                    .map_err(|_| format!("param `{name}` must be a date like 2025-01-31, found `{raw}`"))?;
                Value::String(raw.to_string())
            }
        };
        conf.insert(name.clone(), value);
    }
    Ok((date, Value::Object(conf)))
}

pub(super) async fn trigger(
    State(d): State<Arc<Daemon>>,
    viewer: Viewer,
    Path(dag_id): Path<String>,
    Form(form): Form<Vec<(String, String)>>,
) -> PageResult {
    let csrf = form.iter().find(|(k, _)| k == "csrf").map(|(_, v)| v.as_str()).unwrap_or_default();
    let actor = require_login(&viewer, csrf)?;
    ops::require_audited(&d.store, &actor, Role::Operator, "trigger a run", "trigger", &format!("dag {dag_id}"))
        .await
        .map_err(|e| op_error(&viewer, e))?;
    let dag = dag_or_404(&d, &viewer, &dag_id)?;
    let date_text = form.iter().rev().find(|(k, _)| k == "logical_date").map(|(_, v)| v.clone()).unwrap_or_default();
    let again = |status: StatusCode, message: String| {
        trigger_page(&dag, &viewer, status, date_text.clone(), &form, Some(message))
    };
    let (date, conf) = match conf_from_form(&dag, &form) {
        Ok(x) => x,
        Err(m) => return Err(again(StatusCode::BAD_REQUEST, m)),
    };
    let run = match ops::runs::trigger(&d, &actor, &dag.id, date, &conf).await {
        Ok(run) => run,
        Err(e @ (OpError::Conflict(_) | OpError::Invalid(_))) => return Err(again(e.status(), e.to_string())),
        Err(e) => return Err(op_error(&viewer, e)),
    };
    Ok(see_other(&format!("/runs/{}", run.id)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dag() -> Dag {
        let src = r#"
id = "p"
timezone = "UTC"
start_date = "2025-01-01"

[params]
s = { type = "string", default = "x" }
need = { type = "string" }
n = { type = "integer", default = 1 }
r = { type = "number", default = 0.5 }
b = { type = "boolean", default = false }
d = { type = "date", default = "2025-01-01" }

[[task]]
id = "t"
kind = "noop"
"#;
        crate::dag::load_str(src, std::path::Path::new("p.toml")).expect("valid DAG")
    }

    fn form(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn a_form_becomes_a_typed_conf() {
        let f = form(&[
            ("logical_date", "2025-03-01"),
            ("param.need", "here"),
            ("param.n", "42"),
            ("param.r", ""),
            ("param.b", "true"),
            ("param.d", "2025-02-02"),
        ]);
        let (date, conf) = conf_from_form(&dag(), &f).unwrap();
        assert_eq!(date.to_string(), "2025-03-01");
        assert_eq!(
            conf,
            serde_json::json!({"s": "x", "need": "here", "n": 42, "r": 0.5, "b": true, "d": "2025-02-02"})
        );
    }

    #[test]
    fn bad_fields_are_named() {
        let d = dag();
        let base = [("logical_date", "2025-03-01"), ("param.need", "x")];
        let err = |extra: (&str, &str)| {
            let mut f = form(&base);
            f.push((extra.0.to_string(), extra.1.to_string()));
            conf_from_form(&d, &f).unwrap_err()
        };
        assert_eq!(err(("param.n", "1.5")), "param `n` must be an integer, found `1.5`");
        assert_eq!(err(("param.r", "lots")), "param `r` must be a number, found `lots`");
        assert_eq!(err(("param.b", "yes")), "param `b` must be true or false, found `yes`");
        assert_eq!(err(("param.d", "2025-13-01")), "param `d` must be a date like 2025-01-31, found `2025-13-01`");
        assert_eq!(
            err(("logical_date", "soon")),
            "logical date `soon` is not a date; expected YYYY-MM-DD, e.g. 2025-01-31"
        );
        assert_eq!(
            conf_from_form(&d, &form(&[("logical_date", "2025-03-01")])).unwrap_err(),
            "param `need` needs a value (a string)"
        );
    }

    #[test]
    fn the_form_shows_defaults_and_keeps_typed_values() {
        let d = dag();
        let f = fields(&d, &form(&[("param.n", "7")]));
        let by = |name: &str| f.iter().find(|x| x.name == name).unwrap();
        assert_eq!((by("n").input, by("n").value.as_str(), by("n").step), ("number", "7", "1"));
        assert_eq!((by("r").input, by("r").value.as_str(), by("r").step), ("number", "0.5", "any"));
        assert_eq!((by("s").input, by("s").value.as_str()), ("text", "x"));
        assert_eq!((by("b").input, by("b").value.as_str()), ("bool", "false"));
        assert_eq!((by("d").input, by("d").value.as_str()), ("date", "2025-01-01"));
        assert!(by("need").required && !by("s").required);
    }
}
