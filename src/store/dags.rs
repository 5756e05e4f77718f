//! DAG-level state that outlives DAG files: the pause flag.

use std::collections::BTreeMap;

use super::*;

impl Store {
    pub async fn set_paused(&self, dag_id: &str, paused: bool) -> Result<()> {
        let now = timefmt::to_db(timefmt::now());
        sqlx::query(
            "INSERT INTO dags (dag_id, is_paused, updated_at) VALUES ($1, $2, $3) \
             ON CONFLICT (dag_id) DO UPDATE SET is_paused = $2, updated_at = $3",
        )
        .bind(dag_id)
        .bind(i64::from(paused))
        .bind(now)
        .execute(self.pool())
        .await
        .ctx("set paused")?;
        Ok(())
    }

    /// Pause flags of every DAG that has one (a DAG never paused is unpaused).
    pub async fn paused_flags(&self) -> Result<BTreeMap<String, bool>> {
        let rows = sqlx::query("SELECT dag_id, is_paused FROM dags").fetch_all(self.pool()).await.ctx("read dags")?;
        rows.iter().map(|r| Ok((get_str(r, "dag_id")?, get_i64(r, "is_paused")? != 0))).collect()
    }

    pub async fn is_paused(&self, dag_id: &str) -> Result<bool> {
        let row = sqlx::query("SELECT is_paused FROM dags WHERE dag_id = $1")
            .bind(dag_id)
            .fetch_optional(self.pool())
            .await
            .ctx("read dag")?;
        Ok(match row {
            Some(r) => get_i64(&r, "is_paused")? != 0,
            None => false,
        })
    }
}
