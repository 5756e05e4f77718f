//! The lake of one process: opened on first use and then shared by every task attempt and the
//! daemon's web UI, so they share one catalog connection, one S3 client per bucket and one
//! DataFusion memory pool (`lake.memory_limit` bounds them all together). The executor owns one
//! and hands it to tasks through `TaskContext::lake`; the web UI and `tmctl demo` use the
//! executor's. (`tmctl query` and `tmctl doctor` run no executor and open their one lake directly.)

use std::sync::Arc;

use tokio::sync::OnceCell;

use super::iceberg::{Lake, Result};
use crate::config::Settings;
use crate::store::Store;

/// A lazily opened [`Lake`]. Cheap to clone; clones share the lake.
#[derive(Clone)]
pub struct LakeHandle {
    settings: Arc<Settings>,
    store: Store,
    lake: Arc<OnceCell<Lake>>,
}

impl std::fmt::Debug for LakeHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LakeHandle").field("open", &self.lake.initialized()).finish()
    }
}

impl LakeHandle {
    /// A handle that opens the lake of `settings` when first asked (nothing happens now).
    pub fn new(settings: Arc<Settings>, store: Store) -> LakeHandle {
        LakeHandle { settings, store, lake: Arc::new(OnceCell::new()) }
    }

    /// The lake, opened now if this is the first call. A failed open is not remembered: the next
    /// call tries again (the catalog may have been down).
    pub async fn get(&self) -> Result<Lake> {
        self.lake.get_or_try_init(|| Lake::open(self.settings.clone(), self.store.clone())).await.cloned()
    }
}
