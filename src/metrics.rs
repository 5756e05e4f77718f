//! The daemon's Prometheus metrics: one [`Metrics`] registry per daemon (`Daemon::metrics`), shared
//! with its executor (which counts runs, tries and their durations, and hands it to every task
//! attempt as `TaskContext::metrics` for the silver and gold counts) and its scheduler and workers.
//! `GET /metrics` ([`Metrics::render`]) writes the text exposition; the numbers that live elsewhere
//! — the queue's length and the alert outbox in the state DB, S3 requests in `lake::s3`'s
//! process-wide counters — are read at scrape time.

use std::fmt;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

/// The content type of [`Metrics::render`]'s text (OpenMetrics 1.0, which Prometheus scrapes).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DagState {
    pub dag: String,
    pub state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DagKind {
    pub dag: String,
    pub kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DagLabel {
    pub dag: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DagReason {
    pub dag: String,
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct GoldTest {
    pub dag: String,
    pub model: String,
    pub severity: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabel {
    pub state: String,
}

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

/// Seconds a try may take: 10 ms … about 5.8 h, doubling.
fn duration_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.01, 2.0, 22))
}

/// Seconds from a schedule's fire time to its run's creation: 50 ms … about 7 h, doubling
/// (a catch-up after downtime lands in the top buckets).
fn lag_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.05, 2.0, 20))
}

/// The registry and every metric of one daemon. Cheap to share (`Arc<Metrics>`); the metric
/// handles are atomics, so recording never blocks.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    runs: Family<DagState, Counter>,
    tries: Family<DagState, Counter>,
    try_seconds: Histograms<DagKind>,
    scheduler_lag: Histograms<DagLabel>,
    lease_takeovers: Counter,
    runs_queued: Gauge,
    alert_outbox: Family<StateLabel, Gauge>,
    silver_rows_in: Family<DagLabel, Counter>,
    silver_rows_out: Family<DagLabel, Counter>,
    silver_rows_quarantined: Family<DagReason, Counter>,
    gold_test_failures: Family<GoldTest, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("tmctl");
        let runs = Family::<DagState, Counter>::default();
        registry.register("runs", "DAG runs that finished, by DAG and final state (success, failed)", runs.clone());
        let tries = Family::<DagState, Counter>::default();
        registry.register(
            "task_tries",
            "Task tries that ended, by DAG and how the try left the task (success, skipped, up_for_retry, failed, released)",
            tries.clone(),
        );
        let try_seconds: Histograms<DagKind> = Family::new_with_constructor(duration_histogram);
        registry.register_with_unit(
            "task_try_duration",
            "How long task tries ran, by DAG and task kind",
            Unit::Seconds,
            try_seconds.clone(),
        );
        let scheduler_lag: Histograms<DagLabel> = Family::new_with_constructor(lag_histogram);
        registry.register_with_unit(
            "scheduler_lag",
            "Time from a schedule's fire time (its data interval's end) to the creation of its run, by DAG",
            Unit::Seconds,
            scheduler_lag.clone(),
        );
        let lease_takeovers = Counter::default();
        registry.register(
            "lease_takeovers",
            "Runs this daemon claimed while they were running under another owner whose lease had expired",
            lease_takeovers.clone(),
        );
        let runs_queued = Gauge::default();
        registry.register(
            "runs_queued",
            "Runs waiting in the state DB's queue (all DAGs, all daemons)",
            runs_queued.clone(),
        );
        let alert_outbox = Family::<StateLabel, Gauge>::default();
        registry.register("alert_outbox", "Alerts in the outbox by state (pending, failed)", alert_outbox.clone());
        let silver_rows_in = Family::<DagLabel, Counter>::default();
        registry.register("silver_rows_in", "Records read by committed silver.transform tries", silver_rows_in.clone());
        let silver_rows_out = Family::<DagLabel, Counter>::default();
        registry.register(
            "silver_rows_out",
            "Rows written by committed silver.transform tries",
            silver_rows_out.clone(),
        );
        let silver_rows_quarantined = Family::<DagReason, Counter>::default();
        registry.register(
            "silver_rows_quarantined",
            "Rows quarantined by committed silver.transform tries, by reason",
            silver_rows_quarantined.clone(),
        );
        let gold_test_failures = Family::<GoldTest, Counter>::default();
        registry.register(
            "gold_test_failures",
            "Gold data tests that failed (or could not run), by DAG, model table and severity",
            gold_test_failures.clone(),
        );
        registry.register_collector(Box::new(S3Requests));
        Self {
            registry,
            runs,
            tries,
            try_seconds,
            scheduler_lag,
            lease_takeovers,
            runs_queued,
            alert_outbox,
            silver_rows_in,
            silver_rows_out,
            silver_rows_quarantined,
            gold_test_failures,
        }
    }

    /// A run of `dag` finished in `state`.
    pub fn run_finished(&self, dag: &str, state: &str) {
        self.runs.get_or_create(&DagState { dag: dag.into(), state: state.into() }).inc();
    }

    /// A try of a `kind` task of `dag` ended after `seconds`, leaving the task in `state`.
    pub fn try_ended(&self, dag: &str, kind: &str, state: &str, seconds: f64) {
        self.tries.get_or_create(&DagState { dag: dag.into(), state: state.into() }).inc();
        self.try_seconds.get_or_create(&DagKind { dag: dag.into(), kind: kind.into() }).observe(seconds);
    }

    /// The scheduler created a run of `dag` `seconds` after its fire time.
    pub fn scheduled(&self, dag: &str, seconds: f64) {
        self.scheduler_lag.get_or_create(&DagLabel { dag: dag.into() }).observe(seconds.max(0.0));
    }

    /// A worker took over a run another process had left running.
    pub fn lease_taken_over(&self) {
        self.lease_takeovers.inc();
    }

    /// What a committed silver try read, wrote and quarantined (by reason).
    pub fn silver_rows<'a>(
        &self,
        dag: &str,
        rows_in: u64,
        rows_out: u64,
        quarantined: impl IntoIterator<Item = (&'a String, &'a u64)>,
    ) {
        let label = DagLabel { dag: dag.into() };
        self.silver_rows_in.get_or_create(&label).inc_by(rows_in);
        self.silver_rows_out.get_or_create(&label).inc_by(rows_out);
        for (reason, n) in quarantined {
            self.silver_rows_quarantined
                .get_or_create(&DagReason { dag: dag.into(), reason: reason.clone() })
                .inc_by(*n);
        }
    }

    /// A gold data test of `model` (a table) with `severity` failed or could not run.
    pub fn gold_test_failed(&self, dag: &str, model: &str, severity: &str) {
        self.gold_test_failures
            .get_or_create(&GoldTest { dag: dag.into(), model: model.into(), severity: severity.into() })
            .inc();
    }

    /// The text exposition, with the state DB's numbers as read just before (`snapshot`).
    pub fn render(&self, snapshot: &StateSnapshot) -> String {
        self.runs_queued.set(snapshot.runs_queued.min(i64::MAX as u64) as i64);
        for (state, n) in [("pending", snapshot.alerts_pending), ("failed", snapshot.alerts_failed)] {
            self.alert_outbox.get_or_create(&StateLabel { state: state.into() }).set(n.min(i64::MAX as u64) as i64);
        }
        let mut out = String::new();
        // Writing to a String cannot fail; an encoder error would be a bug in a metric's name.
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::error!(error = %e, "cannot encode the metrics");
        }
        out
    }
}

/// The gauges read from the state DB at scrape time.
#[derive(Debug, Clone, Copy, Default)]
pub struct StateSnapshot {
    pub runs_queued: u64,
    pub alerts_pending: u64,
    pub alerts_failed: u64,
}

impl StateSnapshot {
    pub async fn read(store: &crate::store::Store) -> Result<Self, crate::store::StoreError> {
        Ok(Self {
            runs_queued: store.count_runs_in_state(crate::store::RunState::Queued).await?,
            alerts_pending: store.count_alerts_in_state("pending").await?,
            alerts_failed: store.count_alerts_in_state("failed").await?,
        })
    }
}

/// `tmctl_s3_requests_total{kind}` and `tmctl_s3_bytes_total{direction}`, read from
/// `lake::s3::requests()` (the process's S3 clients count every request they forward).
#[derive(Debug)]
struct S3Requests;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DirectionLabel {
    direction: &'static str,
}

impl Collector for S3Requests {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        let r = crate::lake::s3::requests();
        let kinds = [
            ("get", r.get),
            ("get_range", r.get_range),
            ("head", r.head),
            ("put", r.put),
            ("multipart_create", r.multipart_create),
            ("multipart_part", r.multipart_part),
            ("multipart_complete", r.multipart_complete),
            ("delete", r.delete),
            ("list", r.list),
            ("copy", r.copy),
        ];
        let mut family = encoder.encode_descriptor(
            "s3_requests",
            "Requests made through this process's S3 clients, by kind",
            None,
            ConstCounter::new(0u64).metric_type(),
        )?;
        for (kind, n) in kinds {
            ConstCounter::new(n).encode(family.encode_family(&KindLabel { kind })?)?;
        }
        let mut bytes = encoder.encode_descriptor(
            "s3_transfer",
            "Bytes sent (up) and received (down) by this process's S3 clients",
            Some(&Unit::Bytes),
            ConstCounter::new(0u64).metric_type(),
        )?;
        for (direction, n) in [("up", r.bytes_up), ("down", r.bytes_down)] {
            ConstCounter::new(n).encode(bytes.encode_family(&DirectionLabel { direction })?)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_histograms_gauges_and_s3() {
        let m = Metrics::new();
        m.run_finished("d", "success");
        m.try_ended("d", "noop", "success", 0.02);
        m.try_ended("d", "fail", "up_for_retry", 0.5);
        m.scheduled("d", 1.5);
        m.lease_taken_over();
        let q: std::collections::BTreeMap<String, u64> = [("bad_lat".to_string(), 3)].into();
        m.silver_rows("silver", 10, 7, &q);
        m.gold_test_failed("gold", "gold.dim_round", "error");
        let text = m.render(&StateSnapshot { runs_queued: 2, alerts_pending: 1, alerts_failed: 0 });
        for line in [
            "tmctl_runs_total{dag=\"d\",state=\"success\"} 1",
            "tmctl_task_tries_total{dag=\"d\",state=\"up_for_retry\"} 1",
            "tmctl_task_try_duration_seconds_count{dag=\"d\",kind=\"noop\"} 1",
            "tmctl_scheduler_lag_seconds_count{dag=\"d\"} 1",
            "tmctl_lease_takeovers_total 1",
            "tmctl_runs_queued 2",
            "tmctl_alert_outbox{state=\"pending\"} 1",
            "tmctl_alert_outbox{state=\"failed\"} 0",
            "tmctl_silver_rows_in_total{dag=\"silver\"} 10",
            "tmctl_silver_rows_out_total{dag=\"silver\"} 7",
            "tmctl_silver_rows_quarantined_total{dag=\"silver\",reason=\"bad_lat\"} 3",
            "tmctl_gold_test_failures_total{dag=\"gold\",model=\"gold.dim_round\",severity=\"error\"} 1",
            "tmctl_s3_requests_total{kind=\"get\"} ",
            "tmctl_s3_transfer_bytes_total{direction=\"up\"} ",
        ] {
            assert!(text.contains(line), "missing `{line}` in\n{text}");
        }
        assert!(text.ends_with("# EOF\n"), "{text}");
    }
}
