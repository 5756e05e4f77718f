//! `tmctl serve`: one process running the scheduler, the run workers, the backfill driver, the
//! alert sender and the HTTP server (health + JSON API). Several daemons may share one
//! PostgreSQL state DB: they claim runs and backfills under leases (`FOR UPDATE SKIP LOCKED`), and
//! one scheduler ticks at a time (advisory lock). Nothing is held only in memory: a daemon killed
//! at any point leaves rows that another daemon, or the same one restarted, takes over.

pub mod api;
pub mod backfills;
#[cfg(feature = "bench")]
pub mod bench;
pub mod http;
pub mod scheduler;
mod worker;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::config::Settings;
use crate::dag::Dag;
use crate::executor::Executor;
use crate::store::Store;

/// How often a daemon says it is alive, looks for dead owners and reloads DAG files.
const HOUSEKEEPING_EVERY: Duration = Duration::from_secs(5);
/// How often deadline alerts are checked.
const DEADLINES_EVERY: Duration = Duration::from_secs(15);
/// How often a daemon asks whether the daily state-DB clean is due.
const RETENTION_CHECK_EVERY: Duration = Duration::from_secs(600);
/// The daily clean: once per this period, by whichever daemon claims it.
const RETENTION_EVERY: Duration = Duration::from_secs(24 * 3600);
/// A claimed clean is held this long (a daemon that dies mid-clean leaves it to another after it).
const RETENTION_LEASE: Duration = Duration::from_secs(3600);

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Setup(String),
    /// A file holding a secret is open to other users (exit code 3: the installation needs fixing).
    #[error(
        "{} is readable by group or others (mode {mode:04o}), so other users can read the API token; \
         run `chmod 600 {}` and start again",
        path.display(),
        path.display()
    )]
    Exposed { path: std::path::PathBuf, mode: u32 },
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

/// What every part of a running daemon shares.
pub struct Daemon {
    pub store: Store,
    pub settings: Arc<Settings>,
    pub exec: Executor,
    /// `host:pid`, also the owner written on the runs and backfills it holds.
    pub id: String,
    /// The config admin's bearer token (`api.token` or `<home>/api-token`).
    pub token: String,
    /// Password hashing on the blocking pool, a few at once.
    pub passwords: crate::ops::passwords::Passwords,
    /// Failed web logins per user and client address.
    pub login_throttle: crate::web::throttle::LoginThrottle,
    /// Stops the loops and the HTTP server (SIGTERM, Ctrl-C).
    pub shutdown: CancellationToken,
    /// Wakes the run workers (a run was queued, or a slot freed up).
    pub wake: Notify,
    /// What `/metrics` shows; the executor, scheduler and workers record into it.
    pub metrics: Arc<crate::metrics::Metrics>,
    dags: RwLock<Arc<BTreeMap<String, Arc<Dag>>>>,
    /// Problems of the last DAG load, logged when they change.
    dag_problems: std::sync::Mutex<Vec<String>>,
}

impl Daemon {
    /// The DAGs loaded from the DAG directory (reloaded every few seconds).
    pub fn dags(&self) -> Arc<BTreeMap<String, Arc<Dag>>> {
        self.dags.read().map(|d| d.clone()).unwrap_or_default()
    }

    pub fn dag(&self, id: &str) -> Option<Arc<Dag>> {
        self.dags().get(id).cloned()
    }

    /// Re-reads the DAG directory. A file with problems keeps its DAGs out (and is logged with
    /// every problem); the others load.
    fn reload_dags(&self) {
        let (dags, problems) = load_dags(&self.settings.dags_dir);
        if let Ok(mut last) = self.dag_problems.lock()
            && *last != problems
        {
            for p in &problems {
                tracing::warn!("{p}");
            }
            *last = problems;
        }
        if let Ok(mut slot) = self.dags.write() {
            *slot = Arc::new(dags);
        }
    }
}

fn load_dags(dir: &Path) -> (BTreeMap<String, Arc<Dag>>, Vec<String>) {
    let (dags, diags) = crate::dag::load_dir(dir);
    (dags.into_iter().map(|d| (d.id.clone(), Arc::new(d))).collect(), diags.iter().map(|d| d.to_string()).collect())
}

/// The API token: the configured one, else `<home>/api-token` (created with a random value,
/// readable by the owner only, on first use).
pub fn api_token(settings: &Settings) -> Result<String, DaemonError> {
    if !settings.api_token.is_empty() {
        return Ok(settings.api_token.clone());
    }
    let path = settings.home.join("api-token");
    if let Some(mode) = crate::secrets::exposed_mode(&path) {
        return Err(DaemonError::Exposed { path, mode });
    }
    if let Ok(text) = std::fs::read_to_string(&path)
        && !text.trim().is_empty()
    {
        return Ok(text.trim().to_string());
    }
    let token: String = {
        use rand::Rng;
        let mut rng = rand::rng();
        (0..40).map(|_| char::from(b"abcdefghijklmnopqrstuvwxyz0123456789"[rng.random_range(0..36)])).collect()
    };
    private_home(settings)?;
    write_private(&path, &token).map_err(|e| DaemonError::Setup(format!("cannot write {}: {e}", path.display())))?;
    Ok(token)
}

fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(path)?;
    f.write_all(text.as_bytes())
}

/// Creates the home directory if needed and makes it 0700 (it holds the state DB, the API token
/// and the local buckets).
pub fn private_home(settings: &Settings) -> Result<(), DaemonError> {
    match crate::secrets::private_dir(&settings.home) {
        Ok(true) => {
            tracing::warn!(home = %settings.home.display(), "home directory was open to other users; it is 0700 now");
            Ok(())
        }
        Ok(false) => Ok(()),
        Err(e) => Err(DaemonError::Setup(format!("cannot make {} private (0700): {e}", settings.home.display()))),
    }
}

/// Creates the bronze inbox folder (`bronze.inbox`, default `<home>/inbox`) when it is missing
/// and lies inside the home, so the daily `bronze` run of a fresh home finds an empty inbox
/// instead of failing. An inbox elsewhere (a mount, a shared folder) is the operator's: if it is
/// missing that is said once here, and the bronze task fails naming it.
fn create_inbox(settings: &Settings) {
    let inbox = &settings.lake.inbox;
    if inbox.is_dir() {
        return;
    }
    if !inbox.starts_with(&settings.home) {
        tracing::warn!(inbox = %inbox.display(), "the bronze inbox folder does not exist; bronze runs fail until it does");
        return;
    }
    match std::fs::create_dir_all(inbox) {
        Ok(()) => tracing::info!(inbox = %inbox.display(), "created the bronze inbox folder"),
        Err(e) => tracing::warn!(inbox = %inbox.display(), error = %e, "cannot create the bronze inbox folder"),
    }
}

/// A started daemon: where it listens, and a handle to stop it and wait for it.
pub struct Running {
    pub addr: SocketAddr,
    pub daemon: Arc<Daemon>,
    done: tokio::task::JoinHandle<()>,
}

impl Running {
    /// Stops the daemon as SIGTERM does and waits until it has (within the shutdown grace).
    pub async fn stop(self) {
        self.daemon.shutdown.cancel();
        let _ = self.done.await;
    }

    /// Waits until the daemon stops by itself (a signal).
    pub async fn wait(self) {
        let _ = self.done.await;
    }
}

/// Starts a daemon on `bind` (port 0 picks a free port) and returns once it listens.
pub async fn start(settings: Arc<Settings>, store: Store, bind: SocketAddr) -> Result<Running, DaemonError> {
    let listener =
        tokio::net::TcpListener::bind(bind).await.map_err(|source| DaemonError::Bind { addr: bind, source })?;
    let addr = listener.local_addr().map_err(|source| DaemonError::Bind { addr: bind, source })?;
    private_home(&settings)?;
    create_inbox(&settings);
    let token = api_token(&settings)?;
    let metrics = Arc::new(crate::metrics::Metrics::new());
    let exec = Executor::new(store.clone(), settings.clone()).with_metrics(metrics.clone());
    let id = exec.owner().to_string();
    let daemon = Arc::new(Daemon {
        store: store.clone(),
        settings: settings.clone(),
        exec,
        id: id.clone(),
        token,
        passwords: crate::ops::passwords::Passwords::default(),
        login_throttle: crate::web::throttle::LoginThrottle::default(),
        shutdown: CancellationToken::new(),
        wake: Notify::new(),
        metrics,
        dags: RwLock::new(Arc::default()),
        dag_problems: std::sync::Mutex::new(Vec::new()),
    });
    daemon.reload_dags();
    store.register_daemon(&id, &crate::executor::hostname(), std::process::id(), &format!("http://{addr}")).await?;
    reap_dead_owners(&daemon).await;
    tracing::info!(%addr, daemon = %id, dags = daemon.dags().len(), "tmctl serve started");

    let mut tasks = tokio::task::JoinSet::new();
    tasks.spawn(housekeeping(daemon.clone()));
    tasks.spawn(scheduler::run(daemon.clone()));
    tasks.spawn(backfills::run(daemon.clone()));
    tasks.spawn(deadlines(daemon.clone()));
    tasks.spawn({
        let d = daemon.clone();
        async move {
            crate::alerts::run_sender(d.store.clone(), d.settings.smtp.clone(), d.id.clone(), d.shutdown.clone()).await
        }
    });
    tasks.spawn({
        let d = daemon.clone();
        async move {
            crate::alerts::run_webhook_sender(
                d.store.clone(),
                d.settings.alerts.clone(),
                d.id.clone(),
                d.shutdown.clone(),
            )
            .await
        }
    });
    tasks.spawn(retention(daemon.clone()));
    let router = http::harden(api::router(daemon.clone()), &settings.http);
    tasks.spawn(http::serve(listener, router, settings.http.clone(), daemon.shutdown.clone()));
    let workers = tokio::spawn(worker::run(daemon.clone()));

    let d = daemon.clone();
    let done = tokio::spawn(async move {
        d.shutdown.cancelled().await;
        tracing::info!(
            "shutting down: no new runs; running tries get {:?} to finish",
            d.settings.daemon.shutdown_grace
        );
        // The workers finish their runs within the grace, or release them.
        let grace = d.settings.daemon.shutdown_grace;
        let release = d.exec.release_token();
        let mut workers = workers;
        if tokio::time::timeout(grace, &mut workers).await.is_err() {
            tracing::warn!("grace period over: releasing the runs still in flight");
            release.cancel();
            let _ = workers.await;
        }
        while tasks.join_next().await.is_some() {}
        if let Err(e) = d.store.stop_daemon(&d.id).await {
            tracing::warn!(error = %e, "could not record the daemon's stop");
        }
        tracing::info!("tmctl serve stopped");
    });
    Ok(Running { addr, daemon, done })
}

/// `tmctl serve`: starts, prints where it listens, stops on SIGTERM or Ctrl-C.
pub async fn serve(settings: Arc<Settings>, store: Store, bind: SocketAddr) -> Result<(), DaemonError> {
    let running = start(settings.clone(), store, bind).await?;
    println!("tmctl serve: listening on http://{} (daemon {})", running.addr, running.daemon.id);
    println!("  state DB {}", crate::secrets::redact_url(&settings.database_url));
    println!("  {} DAG(s) from {}", running.daemon.dags().len(), settings.dags_dir.display());
    if settings.web_password_hash.is_empty() && settings.api_token.is_empty() {
        let token = settings.home.join("api-token");
        println!("  log in as `{}` with the API token in {} as password", settings.web_user, token.display());
    }
    let stop = running.daemon.shutdown.clone();
    tokio::spawn(async move {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                return;
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        eprintln!("tmctl serve: stopping (running tries get the shutdown grace to finish)");
        stop.cancel();
    });
    running.wait().await;
    Ok(())
}

/// Renews the daemon's row, reloads DAG files and takes over runs of dead local processes.
async fn housekeeping(d: Arc<Daemon>) {
    loop {
        tokio::select! {
            _ = d.shutdown.cancelled() => return,
            _ = tokio::time::sleep(HOUSEKEEPING_EVERY) => {}
        }
        if let Err(e) = d.store.heartbeat_daemon(&d.id).await {
            tracing::warn!(error = %e, "daemon heartbeat failed");
        }
        d.reload_dags();
        reap_dead_owners(&d).await;
    }
}

/// Runs owned by processes of this machine that no longer exist lose their lease at once, so
/// a restarted daemon resumes them without waiting for the lease to run out.
async fn reap_dead_owners(d: &Daemon) {
    let owners = match d.store.run_owners().await {
        Ok(o) => o,
        Err(e) => {
            tracing::warn!(error = %e, "cannot list run owners");
            return;
        }
    };
    let dead: Vec<String> =
        owners.into_iter().filter(|o| crate::executor::owner_is_dead_here(Some(o.as_str()))).collect();
    if dead.is_empty() {
        return;
    }
    match d.store.expire_leases_of(&dead).await {
        Ok(n) if n > 0 => {
            tracing::warn!(runs = n, owners = ?dead, "taking over runs of processes that died");
            d.wake.notify_waiters();
        }
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "cannot expire leases of dead processes"),
    }
}

async fn deadlines(d: Arc<Daemon>) {
    loop {
        let dags: Vec<Dag> = d.dags().values().map(|dag| (**dag).clone()).collect();
        match crate::alerts::check_deadlines(&d.store, &dags, &d.settings.web_base_url, chrono::Utc::now()).await {
            Ok(n) if n > 0 => tracing::warn!(alerts = n, "deadline alerts recorded"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "deadline check failed"),
        }
        tokio::select! {
            _ = d.shutdown.cancelled() => return,
            _ = tokio::time::sleep(DEADLINES_EVERY) => {}
        }
    }
}

/// The daily state-DB clean (`[retention] keep_days`; off when 0): every few minutes a daemon asks
/// whether it is due and claims it (`daemon_jobs`), so with several daemons one cleans per day.
async fn retention(d: Arc<Daemon>) {
    let keep_days = d.settings.retention.keep_days;
    if keep_days == 0 {
        return;
    }
    loop {
        if let Err(e) = retention_pass(&d, keep_days).await {
            tracing::warn!(error = %e, "state DB clean failed; it is tried again later");
        }
        tokio::select! {
            _ = d.shutdown.cancelled() => return,
            _ = tokio::time::sleep(RETENTION_CHECK_EVERY) => {}
        }
    }
}

/// Cleans if the daily clean is due and this daemon got it; returns what it deleted.
pub async fn retention_pass(d: &Daemon, keep_days: u32) -> Result<Option<crate::store::CleanCounts>, DaemonError> {
    const JOB: &str = "retention";
    let now = chrono::Utc::now();
    if !d.store.claim_daemon_job(JOB, &d.id, now, RETENTION_EVERY, RETENTION_LEASE).await? {
        return Ok(None);
    }
    let scope = crate::store::CleanScope {
        before: now - chrono::Duration::days(i64::from(keep_days)),
        dag_id: None,
        now,
        sessions_idle_before: now
            - chrono::Duration::from_std(d.settings.web_session_idle).unwrap_or(chrono::Duration::hours(8)),
    };
    let outcome = d.store.clean(&scope).await;
    d.store.finish_daemon_job(JOB, &d.id, chrono::Utc::now(), outcome.is_ok()).await?;
    let counts = outcome?;
    tracing::info!(
        keep_days,
        before = %scope.before,
        runs = counts.runs,
        task_attempts = counts.task_attempts,
        alerts = counts.alerts,
        backfills = counts.backfills,
        sessions = counts.sessions,
        "state DB cleaned"
    );
    Ok(Some(counts))
}
