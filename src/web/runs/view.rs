//! Pure helpers of the run views: how times, durations and counts are written for people, the
//! layered layout of the graph page and the bars of the gantt chart. No I/O here; the SVG itself
//! is drawn by the templates from these numbers (so every label goes through askama's escaping).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use crate::dag::Dag;
use crate::store::{AttemptSpan, TaskState};

/// `2025-01-02 03:04:05 UTC`.
pub fn utc(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// `2025-01-02 04:04:05 CET`: the instant in the DAG's time zone.
pub fn local(t: DateTime<Utc>, tz: Tz) -> String {
    t.with_timezone(&tz).format("%Y-%m-%d %H:%M:%S %Z").to_string()
}

pub fn opt_utc(t: Option<DateTime<Utc>>) -> String {
    t.map(utc).unwrap_or_default()
}

/// `250ms`, `1.5s`, `12m 03s`, `2h 05m`.
pub fn duration_ms(ms: i64) -> String {
    crate::timefmt::human_duration(std::time::Duration::from_millis(ms.max(0) as u64))
}

pub fn opt_duration(ms: Option<i64>) -> String {
    ms.map(duration_ms).unwrap_or_default()
}

/// How long something took, or has been going on (until `now`) if it has not ended.
pub fn elapsed_ms(start: Option<DateTime<Utc>>, end: Option<DateTime<Utc>>, now: DateTime<Utc>) -> Option<i64> {
    start.map(|s| (end.unwrap_or(now) - s).num_milliseconds().max(0))
}

/// `12,345,678`.
pub fn int(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3 + 1);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 { format!("-{out}") } else { out }
}

/// `512 B`, `1.2 KB`, `3.4 MB`, `1.0 GB` (powers of 1000).
pub fn bytes(n: i64) -> String {
    const UNITS: [&str; 5] = ["B", "KB", "MB", "GB", "TB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v.abs() >= 1000.0 && unit < UNITS.len() - 1 {
        v /= 1000.0;
        unit += 1;
    }
    if unit == 0 { format!("{n} B") } else { format!("{v:.1} {}", UNITS[unit]) }
}

/// A CSS class for a task state (`none` for a task not looked at yet).
pub fn task_class(s: Option<TaskState>) -> &'static str {
    s.map(|s| s.as_str()).unwrap_or("none")
}

/// At most `n` characters, with `…` when cut.
pub fn clip(s: &str, n: usize) -> String {
    if s.chars().count() <= n { s.to_string() } else { format!("{}…", s.chars().take(n).collect::<String>()) }
}

// ---- graph ----------------------------------------------------------------------------------------

pub const NODE_W: i64 = 170;
pub const NODE_H: i64 = 30;
const GAP_X: i64 = 60;
const GAP_Y: i64 = 14;
const MARGIN: i64 = 10;

#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub id: String,
    pub label: String,
    pub kind: String,
    pub state: &'static str,
    pub x: i64,
    pub y: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Edge {
    /// An SVG path (`M … C …`), numbers only.
    pub path: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Graph {
    pub width: i64,
    pub height: i64,
    pub nodes: Vec<Node>,
    pub edges: Vec<Edge>,
}

/// Lays the DAG out in layers by topological depth (a task's layer is one more than its deepest
/// upstream), left to right; within a layer tasks keep their topological order. Boxes are coloured
/// by `states` (task id → state).
pub fn graph(dag: &Dag, states: &HashMap<String, Option<TaskState>>) -> Graph {
    let n = dag.tasks.len();
    let mut depth = vec![0usize; n];
    for &i in dag.topological_indices() {
        depth[i] = dag.upstream_indices(i).iter().map(|&u| depth[u] + 1).max().unwrap_or(0);
    }
    let mut row_in_layer = vec![0usize; n];
    let mut layer_sizes: Vec<usize> = Vec::new();
    for &i in dag.topological_indices() {
        if layer_sizes.len() <= depth[i] {
            layer_sizes.resize(depth[i] + 1, 0);
        }
        row_in_layer[i] = layer_sizes[depth[i]];
        layer_sizes[depth[i]] += 1;
    }
    let pos = |i: usize| -> (i64, i64) {
        (MARGIN + depth[i] as i64 * (NODE_W + GAP_X), MARGIN + row_in_layer[i] as i64 * (NODE_H + GAP_Y))
    };
    let nodes = dag
        .topological_indices()
        .iter()
        .map(|&i| {
            let t = &dag.tasks[i];
            let (x, y) = pos(i);
            Node {
                id: t.id.clone(),
                label: clip(&t.id, 22),
                kind: t.kind.clone(),
                state: task_class(states.get(&t.id).copied().flatten()),
                x,
                y,
            }
        })
        .collect();
    let mut edges = Vec::new();
    for &i in dag.topological_indices() {
        for u in dag.upstream_indices(i) {
            let (ux, uy) = pos(u);
            let (x, y) = pos(i);
            let (x1, y1, x2, y2) = (ux + NODE_W, uy + NODE_H / 2, x, y + NODE_H / 2);
            let mid = (x1 + x2) / 2;
            edges.push(Edge { path: format!("M{x1} {y1} C{mid} {y1} {mid} {y2} {x2} {y2}") });
        }
    }
    let layers = layer_sizes.len().max(1) as i64;
    let tallest = layer_sizes.iter().copied().max().unwrap_or(1).max(1) as i64;
    Graph {
        width: 2 * MARGIN + layers * NODE_W + (layers - 1) * GAP_X,
        height: 2 * MARGIN + tallest * NODE_H + (tallest - 1) * GAP_Y,
        nodes,
        edges,
    }
}

// ---- gantt ----------------------------------------------------------------------------------------

pub const GANTT_LABEL_W: i64 = 190;
pub const GANTT_PLOT_W: i64 = 760;
pub const GANTT_ROW_H: i64 = 22;

#[derive(Debug, Clone, PartialEq)]
pub struct Bar {
    pub x: i64,
    pub y: i64,
    pub w: i64,
    pub state: &'static str,
    pub title: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Lane {
    pub task_id: String,
    pub y: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Tick {
    pub x: i64,
    pub label: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Gantt {
    pub width: i64,
    pub height: i64,
    pub lanes: Vec<Lane>,
    pub bars: Vec<Bar>,
    pub ticks: Vec<Tick>,
}

/// One lane per task (in `order`), one bar per try from its start to its end (or `now` while it
/// runs), on a time axis from the first start to the last end.
pub fn gantt(order: &[&str], tries: &[AttemptSpan], now: DateTime<Utc>) -> Gantt {
    let lane_of: HashMap<&str, usize> = order.iter().enumerate().map(|(i, t)| (*t, i)).collect();
    let t0 = tries.iter().map(|a| a.started_at).min();
    let t1 = tries.iter().map(|a| a.ended_at.unwrap_or(now)).max();
    let span_ms = match (t0, t1) {
        (Some(a), Some(b)) => (b - a).num_milliseconds().max(1),
        _ => 1,
    };
    let scale = |ms: i64| -> i64 { ms * GANTT_PLOT_W / span_ms };
    let bars = tries
        .iter()
        .filter_map(|a| {
            let lane = *lane_of.get(a.task_id.as_str())?;
            let start = (a.started_at - t0?).num_milliseconds();
            let len = (a.ended_at.unwrap_or(now) - a.started_at).num_milliseconds().max(0);
            Some(Bar {
                x: GANTT_LABEL_W + scale(start),
                y: lane as i64 * GANTT_ROW_H + 3,
                w: scale(len).max(2),
                state: a.state.as_str(),
                title: format!(
                    "{} try {}: {} · {} → {}",
                    a.task_id,
                    a.try_number,
                    a.state,
                    duration_ms(len),
                    a.ended_at.map(utc).unwrap_or_else(|| "running".into())
                ),
            })
        })
        .collect();
    let ticks = (0..=4)
        .map(|k| Tick { x: GANTT_LABEL_W + GANTT_PLOT_W * k / 4, label: format!("+{}", duration_ms(span_ms * k / 4)) })
        .collect();
    let lanes =
        order.iter().enumerate().map(|(i, t)| Lane { task_id: t.to_string(), y: i as i64 * GANTT_ROW_H }).collect();
    Gantt {
        width: GANTT_LABEL_W + GANTT_PLOT_W + 40,
        height: order.len() as i64 * GANTT_ROW_H + 24,
        lanes,
        bars,
        ticks,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn numbers_read_well() {
        assert_eq!(int(0), "0");
        assert_eq!(int(999), "999");
        assert_eq!(int(1000), "1,000");
        assert_eq!(int(-1234567), "-1,234,567");
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(1_234_567), "1.2 MB");
        assert_eq!(clip("abcdef", 3), "abc…");
        assert_eq!(clip("abc", 3), "abc");
    }

    #[test]
    fn times_show_utc_and_the_dags_zone() {
        let t = Utc.with_ymd_and_hms(2025, 1, 2, 3, 4, 5).unwrap();
        assert_eq!(utc(t), "2025-01-02 03:04:05 UTC");
        assert_eq!(local(t, chrono_tz::Europe::Berlin), "2025-01-02 04:04:05 CET");
        assert_eq!(duration_ms(723_000), "12m 03s");
    }

    fn span(task: &str, try_number: u32, start_s: i64, end_s: Option<i64>) -> AttemptSpan {
        let t0 = Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).unwrap();
        AttemptSpan {
            task_id: task.into(),
            try_number,
            state: crate::store::AttemptState::Success,
            hostname: "h".into(),
            pid: 1,
            started_at: t0 + chrono::Duration::seconds(start_s),
            ended_at: end_s.map(|s| t0 + chrono::Duration::seconds(s)),
            duration_ms: None,
            error: None,
        }
    }

    #[test]
    fn gantt_bars_follow_the_clock() {
        let tries = [span("a", 1, 0, Some(10)), span("b", 1, 10, Some(20)), span("b", 2, 30, Some(40))];
        let now = Utc.with_ymd_and_hms(2025, 1, 1, 1, 0, 0).unwrap();
        let g = gantt(&["a", "b"], &tries, now);
        assert_eq!(g.bars.len(), 3);
        assert_eq!(g.bars[0].x, GANTT_LABEL_W);
        assert_eq!(g.bars[0].w, GANTT_PLOT_W / 4);
        assert_eq!(g.bars[2].x, GANTT_LABEL_W + GANTT_PLOT_W * 3 / 4);
        assert_eq!(g.bars[1].y, GANTT_ROW_H + 3);
        assert_eq!(g.ticks.last().map(|t| t.label.as_str()), Some("+40.0s"));
    }

    #[test]
    fn gantt_of_a_run_without_tries_is_empty() {
        let g = gantt(&["a"], &[], Utc::now());
        assert!(g.bars.is_empty());
        assert_eq!(g.lanes.len(), 1);
    }

    #[test]
    fn the_graph_is_layered_by_depth() {
        let src = r#"
id = "g"
timezone = "UTC"
start_date = "2025-01-01"
[[task]]
id = "a"
kind = "noop"
[[task]]
id = "b"
kind = "noop"
depends_on = ["a"]
[[task]]
id = "c"
kind = "noop"
depends_on = ["a"]
[[task]]
id = "d"
kind = "noop"
depends_on = ["b", "c"]
"#;
        let dag = crate::dag::load_str(src, std::path::Path::new("g.toml")).unwrap();
        let states = HashMap::from([("b".to_string(), Some(TaskState::Failed))]);
        let g = graph(&dag, &states);
        let at = |id: &str| g.nodes.iter().find(|n| n.id == id).map(|n| (n.x, n.y, n.state)).unwrap();
        let col = NODE_W + GAP_X;
        let row = NODE_H + GAP_Y;
        assert_eq!(at("a"), (MARGIN, MARGIN, "none"));
        assert_eq!(at("b"), (MARGIN + col, MARGIN, "failed"));
        assert_eq!(at("c"), (MARGIN + col, MARGIN + row, "none"));
        assert_eq!(at("d"), (MARGIN + 2 * col, MARGIN, "none"));
        assert_eq!(g.edges.len(), 4);
        assert_eq!(g.width, 2 * MARGIN + 3 * NODE_W + 2 * GAP_X);
        assert_eq!(g.height, 2 * MARGIN + 2 * NODE_H + GAP_Y);
    }
}
