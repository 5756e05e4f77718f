//! `[params]`: declared (typed, with default and description) or plain values whose type is
//! inferred.

use toml::de::DeValue;

use super::ctx::{Ctx, Key, Scope, Value, date_value, entries, found, integer};
use crate::dag::{ParamSpec, ParamType};

const PARAM_KEYS: &[&str] = &["type", "default", "description"];
const PARAM_TYPES: &[ParamType] =
    &[ParamType::String, ParamType::Integer, ParamType::Number, ParamType::Boolean, ParamType::Date];

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

pub(super) fn param(cx: &mut Ctx<'_>, name: &str, key: &Key<'_>, value: &Value<'_>) -> Option<ParamSpec> {
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
