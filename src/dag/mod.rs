//! DAGs: the TOML files under `dags/` are parsed (`parse`) into validated [`Dag`]s that own a
//! petgraph graph of their tasks. Nothing outside this module sees raw DAG TOML; the executor and
//! the scheduler ask a `Dag` for topological order and upstream/downstream tasks.

mod parse;
pub mod schedule;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono::NaiveDate;
use chrono_tz::Tz;
use petgraph::graph::{DiGraph, NodeIndex};

pub use parse::{load_dir, load_file, load_str, parse_duration};
pub use schedule::{Schedule, Slot};

use crate::tasks::Task;

/// One problem found in a DAG file, with its position (1-based line and column).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub file: PathBuf,
    pub line: usize,
    pub col: usize,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: {}", self.file.display(), self.line, self.col, self.message)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backoff {
    Fixed,
    Exponential,
}

/// Retry, timeout and alerting settings of one task (DAG `[defaults]` with task overrides applied).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskPolicy {
    pub retries: u32,
    pub retry_delay: Duration,
    pub backoff: Backoff,
    pub max_retry_delay: Option<Duration>,
    pub timeout: Option<Duration>,
    pub email: Vec<String>,
    pub email_on_failure: bool,
    pub email_on_retry: bool,
    /// `idempotent = true/false`: overrides the kind's rule for a try abandoned by a dead
    /// process (`tasks::CrashRestart`); `true` makes it a bounded restart, `false` a counted try.
    pub idempotent: Option<bool>,
    /// Webhook URLs (http or https) that get every alert the e-mail recipients get, each as its
    /// own outbox row.
    pub webhook: Vec<String>,
}

impl Default for TaskPolicy {
    fn default() -> Self {
        Self {
            retries: 0,
            retry_delay: Duration::from_secs(300),
            backoff: Backoff::Fixed,
            max_retry_delay: None,
            timeout: None,
            email: Vec::new(),
            email_on_failure: true,
            email_on_retry: false,
            idempotent: None,
            webhook: Vec::new(),
        }
    }
}

impl TaskPolicy {
    /// Total tries allowed: the first one plus `retries`.
    pub fn max_tries(&self) -> u32 {
        self.retries.saturating_add(1)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamType {
    String,
    Integer,
    Number,
    Boolean,
    Date,
}

impl ParamType {
    pub fn name(self) -> &'static str {
        match self {
            ParamType::String => "string",
            ParamType::Integer => "integer",
            ParamType::Number => "number",
            ParamType::Boolean => "boolean",
            ParamType::Date => "date",
        }
    }
}

/// A DAG param: its type, default and description (the trigger form is generated from these).
#[derive(Debug, Clone, PartialEq)]
pub struct ParamSpec {
    pub ty: ParamType,
    pub default: Option<serde_json::Value>,
    pub description: String,
}

#[derive(Debug, Clone)]
pub struct TaskDef {
    pub id: String,
    pub kind: String,
    pub depends_on: Vec<String>,
    pub policy: TaskPolicy,
    pub task: Arc<dyn Task>,
}

impl TaskDef {
    /// What becomes of this task's try when the process running it dies: the kind's rule,
    /// unless the task (or `[defaults]`) says `idempotent`.
    pub fn crash_restart(&self) -> crate::tasks::CrashRestart {
        use crate::tasks::CrashRestart;
        let by_kind = crate::tasks::lookup(&self.kind).map_or(CrashRestart::Counted, |k| k.crash);
        match self.policy.idempotent {
            Some(true) if by_kind == CrashRestart::Counted => CrashRestart::Bounded,
            Some(true) | None => by_kind,
            Some(false) => CrashRestart::Counted,
        }
    }
}

/// A validated DAG: its DAG-level settings ([`DagHead`], read through `Deref` as `dag.id`,
/// `dag.schedule`, …) and its tasks with their dependency graph.
#[derive(Debug, Clone)]
pub struct Dag {
    pub head: DagHead,
    /// Tasks in file order.
    pub tasks: Vec<TaskDef>,
    graph: DiGraph<usize, ()>,
    topo: Vec<usize>,
}

impl std::ops::Deref for Dag {
    type Target = DagHead;

    fn deref(&self) -> &DagHead {
        &self.head
    }
}

impl Dag {
    /// Assembles a DAG from already validated parts. Fails with the cycle as a path
    /// (`a -> b -> a`) or with the first dependency that names no task.
    pub fn new(head: DagHead, tasks: Vec<TaskDef>) -> Result<Dag, String> {
        let mut graph = DiGraph::<usize, ()>::with_capacity(tasks.len(), tasks.len());
        let nodes: Vec<NodeIndex> = (0..tasks.len()).map(|i| graph.add_node(i)).collect();
        let index: BTreeMap<&str, usize> = tasks.iter().enumerate().map(|(i, t)| (t.id.as_str(), i)).collect();
        for (i, t) in tasks.iter().enumerate() {
            for dep in &t.depends_on {
                let Some(&j) = index.get(dep.as_str()) else {
                    return Err(format!("task `{}` depends on `{dep}`, which is not a task in this DAG", t.id));
                };
                graph.update_edge(nodes[j], nodes[i], ());
            }
        }
        let topo = match stable_toposort(&graph) {
            Some(order) => order,
            None => {
                let cycle = find_cycle(&graph).unwrap_or_default();
                let names: Vec<&str> = cycle.iter().map(|&i| tasks[i].id.as_str()).collect();
                return Err(format!("dependency cycle: {}", names.join(" -> ")));
            }
        };
        Ok(Dag { head, tasks, graph, topo })
    }

    pub fn task(&self, id: &str) -> Option<&TaskDef> {
        self.tasks.iter().find(|t| t.id == id)
    }

    fn index_of(&self, id: &str) -> Option<usize> {
        self.tasks.iter().position(|t| t.id == id)
    }

    /// Tasks in a topological order (every task after all of its upstreams; ties in file order).
    pub fn topological(&self) -> impl Iterator<Item = &TaskDef> {
        self.topo.iter().map(|&i| &self.tasks[i])
    }

    /// Each task's priority weight, by position: one plus the number of tasks downstream of
    /// it, directly or not (Airflow's default `weight_rule = downstream` with every task
    /// weighing 1). Waiting for a slot, the task with the most work behind it goes first.
    pub fn priority_weights(&self) -> Vec<u64> {
        (0..self.tasks.len())
            .map(|i| {
                let mut dfs = petgraph::visit::Dfs::new(&self.graph, NodeIndex::new(i));
                let mut reached = 0u64;
                while dfs.next(&self.graph).is_some() {
                    reached += 1;
                }
                // The walk counts the task itself.
                reached
            })
            .collect()
    }

    /// What each task asks the executor's slots with, by position: its priority weight, except
    /// that a wait (`wait.*`) asks with 0. A wait holds its slot while it polls, so it goes after
    /// every task with work to do; otherwise waits started for many runs at once could take every
    /// slot from the tasks they wait for (silver's, in a catch-up of silver and gold).
    pub fn slot_priorities(&self) -> Vec<u64> {
        self.priority_weights()
            .into_iter()
            .zip(&self.tasks)
            .map(|(weight, t)| if t.kind.starts_with("wait.") { 0 } else { weight })
            .collect()
    }

    /// Positions (in `tasks`) of the direct upstreams of the task at position `i`.
    pub fn upstream_indices(&self, i: usize) -> Vec<usize> {
        self.graph.neighbors_directed(NodeIndex::new(i), petgraph::Direction::Incoming).map(|n| self.graph[n]).collect()
    }

    /// Positions (in `tasks`) of the direct downstreams of the task at position `i`.
    pub fn downstream_indices(&self, i: usize) -> Vec<usize> {
        self.graph.neighbors_directed(NodeIndex::new(i), petgraph::Direction::Outgoing).map(|n| self.graph[n]).collect()
    }

    /// Positions of the tasks in topological order.
    pub fn topological_indices(&self) -> &[usize] {
        &self.topo
    }

    /// Direct upstream task ids.
    pub fn upstream(&self, id: &str) -> Vec<&str> {
        self.neighbors(id, petgraph::Direction::Incoming)
    }

    /// Direct downstream task ids.
    pub fn downstream(&self, id: &str) -> Vec<&str> {
        self.neighbors(id, petgraph::Direction::Outgoing)
    }

    fn neighbors(&self, id: &str, dir: petgraph::Direction) -> Vec<&str> {
        let Some(i) = self.index_of(id) else { return Vec::new() };
        let mut out: Vec<usize> =
            self.graph.neighbors_directed(NodeIndex::new(i), dir).map(|n| self.graph[n]).collect();
        out.sort_unstable();
        out.into_iter().map(|j| self.tasks[j].id.as_str()).collect()
    }

    /// The task and everything downstream of it, in topological order.
    pub fn with_downstream(&self, id: &str) -> Vec<&str> {
        let Some(i) = self.index_of(id) else { return Vec::new() };
        let mut seen = vec![false; self.tasks.len()];
        let mut dfs = petgraph::visit::Dfs::new(&self.graph, NodeIndex::new(i));
        while let Some(n) = dfs.next(&self.graph) {
            seen[self.graph[n]] = true;
        }
        self.topo.iter().filter(|&&j| seen[j]).map(|&j| self.tasks[j].id.as_str()).collect()
    }

    /// The DAG's directory (gold SQL files are resolved against it).
    pub fn dir(&self) -> &Path {
        self.file.parent().unwrap_or_else(|| Path::new("."))
    }
}

/// The DAG-level settings, validated.
#[derive(Debug, Clone)]
pub struct DagHead {
    pub id: String,
    pub description: String,
    pub file: PathBuf,
    pub schedule: Option<Schedule>,
    pub timezone: Tz,
    pub start_date: Option<NaiveDate>,
    pub end_date: Option<NaiveDate>,
    pub catchup: bool,
    pub max_active_runs: u32,
    pub params: BTreeMap<String, ParamSpec>,
    /// Deadline alert (`deadline = "90m"`): a run not successful this long after its data interval
    /// ended gets one alert to [`DagHead::email`].
    pub deadline: Option<Duration>,
    /// The DAG-level recipients: `[defaults] email` (tasks may override theirs in their policy).
    pub email: Vec<String>,
    /// The DAG-level webhooks: `[defaults] webhook` (tasks may override theirs in their policy).
    pub webhook: Vec<String>,
    /// `[defaults] email_on_recovery` (default true): when a run succeeds after the DAG failed,
    /// one recovery alert goes to [`DagHead::email`] and [`DagHead::webhook`].
    pub email_on_recovery: bool,
    /// `allow_undeclared_params = true`: conf keys that are not params are accepted (and passed
    /// to templates) as Airflow's `dag_run.conf` is; default false, such keys are refused.
    pub allow_undeclared_params: bool,
}

/// Kahn's algorithm with a min-heap: every task after its upstreams, ties broken by file order,
/// so `dags show` and the executor's start order are stable. `None` if the graph has a cycle.
fn stable_toposort(graph: &DiGraph<usize, ()>) -> Option<Vec<usize>> {
    use std::cmp::Reverse;
    use std::collections::BinaryHeap;
    let n = graph.node_count();
    let mut indegree: Vec<usize> =
        (0..n).map(|i| graph.neighbors_directed(NodeIndex::new(i), petgraph::Direction::Incoming).count()).collect();
    let mut ready: BinaryHeap<Reverse<usize>> = (0..n).filter(|&i| indegree[i] == 0).map(Reverse).collect();
    let mut order = Vec::with_capacity(n);
    while let Some(Reverse(i)) = ready.pop() {
        order.push(graph[NodeIndex::new(i)]);
        for m in graph.neighbors(NodeIndex::new(i)) {
            indegree[m.index()] -= 1;
            if indegree[m.index()] == 0 {
                ready.push(Reverse(m.index()));
            }
        }
    }
    (order.len() == n).then_some(order)
}

/// Finds one cycle and returns it as a closed path of task indexes (`[a, b, a]`).
fn find_cycle(graph: &DiGraph<usize, ()>) -> Option<Vec<usize>> {
    // Iterative DFS with colours; the first back edge closes a cycle. Start from the lowest
    // index so the reported cycle is stable.
    #[derive(Clone, Copy, PartialEq)]
    enum Colour {
        White,
        Grey,
        Black,
    }
    let n = graph.node_count();
    let mut colour = vec![Colour::White; n];
    let mut parent: Vec<Option<usize>> = vec![None; n];
    for start in 0..n {
        if colour[start] != Colour::White {
            continue;
        }
        let mut stack: Vec<(usize, Vec<usize>)> = Vec::new();
        let succ = |v: usize| {
            let mut s: Vec<usize> = graph.neighbors(NodeIndex::new(v)).map(|x| x.index()).collect();
            s.sort_unstable_by(|a, b| b.cmp(a));
            s
        };
        colour[start] = Colour::Grey;
        stack.push((start, succ(start)));
        while let Some((v, pending)) = stack.last_mut() {
            let v = *v;
            if let Some(w) = pending.pop() {
                match colour[w] {
                    Colour::White => {
                        colour[w] = Colour::Grey;
                        parent[w] = Some(v);
                        stack.push((w, succ(w)));
                    }
                    Colour::Grey => {
                        let mut path = vec![w];
                        let mut cur = v;
                        while cur != w {
                            path.push(cur);
                            cur = parent[cur]?;
                        }
                        path.push(w);
                        path.reverse();
                        return Some(path.into_iter().map(|i| graph[NodeIndex::new(i)]).collect());
                    }
                    Colour::Black => {}
                }
            } else {
                colour[v] = Colour::Black;
                stack.pop();
            }
        }
    }
    None
}
