//! `[[task]]` entries: each walked into a [`TaskSpec`] (id, kind, kind settings, `depends_on`),
//! the dependencies the data implies, and the graph checks (duplicate ids, missing tasks, cycles).

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::path::Path;
use std::sync::Arc;

use petgraph::graph::{DiGraph, NodeIndex};
use toml::de::DeTable;

use super::ctx::{Ctx, Scope, Value, entries, found, suggest, to_toml};
use super::policy::{POLICY_KEYS, PolicyPatch};
use crate::dag::TaskDef;
use crate::tasks::{self, BuildInput, KindEntry, Task};

const TASK_KEYS: &[&str] = &["id", "kind", "depends_on"];

/// One `[[task]]` entry, walked.
pub(super) struct TaskSpec {
    /// 1-based position among the `[[task]]` entries.
    index: usize,
    header: Range<usize>,
    pub(super) id: Option<(String, Range<usize>)>,
    pub(super) kind: Option<&'static KindEntry>,
    pub(super) depends_on: Vec<(String, Range<usize>)>,
    pub(super) patch: PolicyPatch,
    pub(super) task: Option<Arc<dyn Task>>,
}

impl TaskSpec {
    fn label(&self) -> String {
        match &self.id {
            Some((id, _)) => format!("task `{id}`: "),
            None => format!("task #{}: ", self.index),
        }
    }
}

pub(super) fn task_spec(cx: &mut Ctx<'_>, index: usize, value: &Value<'_>, dag_dir: &Path) -> Option<TaskSpec> {
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

pub(super) fn depends_on(cx: &mut Ctx<'_>, scope: &Scope, value: &Value<'_>) -> Vec<(String, Range<usize>)> {
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

/// Adds the edges the data implies: a task that reads a table depends on the task of the same DAG
/// that writes it (gold models name no dependencies; their SQL does).
pub(super) fn infer_data_dependencies(task_defs: &mut [TaskDef]) {
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
pub(super) fn check_graph(cx: &mut Ctx<'_>, specs: &[TaskSpec]) {
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
        let Some(cycle) = crate::dag::find_cycle(&graph) else { break };
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
