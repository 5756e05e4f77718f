//! The `courses.freshness` kind: the per-course freshness check (`crate::freshness`) as of the
//! run's date, over the landed files with ingest dates up to that date and the profiles in the
//! DAG folder's `courses.toml`. Each stale course gets one alert per course and day in the
//! outbox (`freshness:<course>:<date>`), to the task's recipients, so re-runs, retries and other
//! daemons never mail it twice; backfill runs and dates outside `alert_within` mail nothing.
//! Staleness is data, not a task failure: the task succeeds and its summary lists the stale
//! courses (a failure would also mail a failure alert beside the freshness one).

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;

use super::{BuildInput, SettingError, Task, TaskContext, TaskError, TaskOutput, failed};
use crate::courses;
use crate::freshness::{self, Status};
use crate::lake::buckets::Buckets;
use crate::store::NewAlert;

/// Kind-specific keys.
pub const KEYS: &[&str] = &["alert_within"];

#[derive(Debug)]
struct Freshness {
    /// Where `courses.toml` lives (the DAG file's folder).
    dag_dir: PathBuf,
    /// Runs for dates more than this many days before today mail nothing.
    alert_within_days: i64,
}

#[async_trait]
impl Task for Freshness {
    async fn run(&self, ctx: &TaskContext) -> Result<TaskOutput, TaskError> {
        let profiles = courses::load_dir(&self.dag_dir)
            .map_err(|diags| TaskError::Fatal(diags.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")))?;
        let last = ctx
            .store
            .last_landed_per_course("bronze", Some(ctx.ds), None)
            .await
            .map_err(failed("reading the ingestion registry"))?;
        let rows = freshness::evaluate(&profiles, &last, ctx.ds);
        let stale: Vec<&freshness::CourseFreshness> = rows.iter().filter(|r| r.status == Status::Stale).collect();
        for r in &rows {
            tracing::info!(
                course = %r.course_id,
                last_landed = %r.last_landed.map(|d| d.to_string()).unwrap_or_else(|| "never".into()),
                cadence = %freshness::fmt_cadence(r.cadence),
                "{}: {}",
                r.course_id,
                r.status.as_str()
            );
        }

        let hold = freshness::hold_mail(ctx.run_type, ctx.ds, chrono::Utc::now().date_naive(), self.alert_within_days);
        let (mut recorded, mut already) = (0usize, 0usize);
        let mail = if stale.is_empty() {
            "nothing stale".to_string()
        } else if ctx.email.is_empty() {
            "no recipients (set `email` under the DAG's [defaults])".to_string()
        } else if let Some(hold) = hold {
            format!("held: {hold}")
        } else {
            for c in &stale {
                let key = freshness::dedup_key(&c.course_id, ctx.ds);
                let url = freshness::quality_url(&ctx.settings.web_base_url, &c.course_id);
                let (subject, body) = freshness::alert_text(c, ctx.ds, &ctx.dag_id, &url);
                let new = ctx
                    .store
                    .enqueue_alert(&NewAlert {
                        dedup_key: &key,
                        kind: freshness::ALERT_KIND,
                        dag_id: &ctx.dag_id,
                        run_pk: Some(ctx.run_pk),
                        task_id: Some(&ctx.task_id),
                        try_number: Some(ctx.try_number),
                        recipients: &ctx.email,
                        subject: &subject,
                        body: &body,
                    })
                    .await
                    .map_err(failed("recording a freshness alert"))?;
                if new {
                    recorded += 1;
                    tracing::warn!(course = %c.course_id, "{subject}: alert recorded ({key})");
                } else {
                    already += 1;
                    tracing::info!(course = %c.course_id, "alert {key} was recorded before; not again");
                }
            }
            format!("{recorded} alert(s) recorded, {already} recorded before")
        };

        let summary = serde_json::json!({
            "as_of": ctx.ds,
            "courses": rows.len(),
            "stale": stale.iter().map(|c| c.course_id.as_str()).collect::<Vec<_>>(),
            "out_of_season": rows.iter().filter(|r| r.status == Status::OutOfSeason).map(|r| r.course_id.as_str()).collect::<Vec<_>>(),
            "alerts": { "mail": mail, "recorded": recorded, "recorded_before": already },
            "statuses": rows,
        });
        tracing::info!("{} course(s), {} stale; alerts: {mail}", rows.len(), stale.len());
        let buckets = Buckets::open(&ctx.settings).map_err(|e| TaskError::Failed(format!("opening buckets: {e}")))?;
        let key = format!("freshness/as_of={}/run_id={}-{}/summary.json", ctx.ds, ctx.run_pk, ctx.try_number);
        super::summary::record_summary(ctx, &buckets, &key, "courses.freshness", &summary).await?;
        Ok(TaskOutput { summary: Some(summary) })
    }
}

pub fn build(input: &BuildInput<'_>) -> Result<Arc<dyn Task>, Vec<SettingError>> {
    let alert_within_days = match input.settings.get("alert_within") {
        None => freshness::DEFAULT_ALERT_WITHIN_DAYS,
        Some(toml::Value::String(s)) => match crate::dag::parse_duration(s) {
            Ok(d) if d.as_secs() >= 86_400 && d.as_secs() % 86_400 == 0 => (d.as_secs() / 86_400) as i64,
            Ok(_) => {
                return Err(vec![SettingError::new(
                    "alert_within",
                    format!("`alert_within` must be whole days, at least \"1d\", found \"{s}\""),
                )]);
            }
            Err(e) => return Err(vec![SettingError::new("alert_within", format!("`alert_within`: {e}"))]),
        },
        Some(other) => {
            return Err(vec![SettingError::new(
                "alert_within",
                format!("`alert_within` must be a duration in days such as \"7d\", found {other}"),
            )]);
        }
    };
    Ok(Arc::new(Freshness { dag_dir: input.dag_dir.to_path_buf(), alert_within_days }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build_with(settings: &str) -> Result<Arc<dyn Task>, Vec<SettingError>> {
        let settings: toml::Table = toml::from_str(settings).unwrap();
        build(&BuildInput { settings: &settings, dag_dir: std::path::Path::new(".") })
    }

    #[test]
    fn alert_within_is_whole_days() {
        assert!(build_with("").is_ok());
        assert!(build_with("alert_within = \"3d\"").is_ok());
        let e = build_with("alert_within = \"36h\"").unwrap_err();
        assert_eq!(e[0].message, "`alert_within` must be whole days, at least \"1d\", found \"36h\"");
        let e = build_with("alert_within = 7").unwrap_err();
        assert_eq!(e[0].message, "`alert_within` must be a duration in days such as \"7d\", found 7");
    }
}
