//! Alert e-mail end to end: the outbox claims on SQLite and PostgreSQL, and real SMTP delivery
//! (aiosmtpd on a local port) of failure and deadline alerts, through outages and timeouts.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use common::smtp::{SmtpServer, free_port, settings_for};
use tmctl::alerts::{self, FlushReport, Mailer, SendReport};
use tmctl::config::{Overrides, Settings};
use tmctl::dag::{self, Dag, schedule};
use tmctl::executor::{Executor, prepare_run};
use tmctl::store::{ALERT_MAX_TRIES, AlertRow, NewAlert, NewRun, RunState, RunType, Store};

const CLAIM: Duration = Duration::from_secs(60);

fn settings() -> Arc<Settings> {
    Arc::new(Settings::load_with(&Overrides::default(), &Default::default()).unwrap())
}

fn dag(src: &str) -> Dag {
    dag::load_str(src, Path::new("test.toml")).unwrap_or_else(|d| panic!("{d:?}"))
}

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2030, 1, 1, 0, 0, 0).unwrap()
}

async fn enqueue(store: &Store, key: &str, run_pk: Option<i64>) {
    let recipients = vec!["ops@example.com".to_string()];
    let alert = NewAlert {
        dedup_key: key,
        kind: "failure",
        dag_id: "d",
        run_pk,
        task_id: Some("t"),
        try_number: Some(1),
        recipients: &recipients,
        subject: &format!("subject {key}"),
        body: &format!("body of {key}\n"),
    };
    assert!(store.enqueue_alert(&alert).await.unwrap());
}

async fn alert(store: &Store, id: i64) -> AlertRow {
    store.list_alerts(None, 1000).await.unwrap().into_iter().find(|a| a.id == id).expect("alert exists")
}

async fn only_alert(store: &Store) -> AlertRow {
    let all = store.list_alerts(None, 10).await.unwrap();
    assert_eq!(all.len(), 1, "{all:#?}");
    all.into_iter().next().unwrap()
}

fn ids(rows: &[AlertRow]) -> Vec<i64> {
    rows.iter().map(|a| a.id).collect()
}

// ---- the outbox in the store ---------------------------------------------------------------------

#[tokio::test]
async fn claims_are_exclusive_until_they_expire_and_marks_need_the_claim() {
    for db in common::both().await {
        let s = common::open(&db).await;
        let b = db.backend;
        for (key, run) in [("a", Some(1)), ("b", Some(2)), ("c", None)] {
            enqueue(&s, key, run).await;
        }
        // Alerts recorded "now" are not due at an earlier time.
        assert!(
            s.claim_due_alerts("w1", t0() - chrono::Duration::days(3650), CLAIM, 10, None).await.unwrap().is_empty()
        );

        let first = s.claim_due_alerts("w1", t0(), CLAIM, 2, None).await.unwrap();
        assert_eq!(first.iter().map(|a| a.dedup_key.as_str()).collect::<Vec<_>>(), ["a", "b"], "{b}");
        assert!(first.iter().all(|a| a.claimed_by.as_deref() == Some("w1")), "{b}");
        assert_eq!(first[0].claimed_until, Some(t0() + chrono::Duration::seconds(60)), "{b}");
        let second = s.claim_due_alerts("w2", t0(), CLAIM, 10, None).await.unwrap();
        assert_eq!(second.iter().map(|a| a.dedup_key.as_str()).collect::<Vec<_>>(), ["c"], "{b}");
        assert!(s.claim_due_alerts("w3", t0(), CLAIM, 10, None).await.unwrap().is_empty(), "{b}");

        // Only the holder records the outcome.
        let (a, bb, c) = (first[0].id, first[1].id, second[0].id);
        assert!(!s.mark_alert_sent(a, "w2").await.unwrap(), "{b}");
        assert!(s.mark_alert_sent(a, "w1").await.unwrap(), "{b}");
        assert!(!s.mark_alert_sent(a, "w1").await.unwrap(), "{b}: sent once");
        let sent = alert(&s, a).await;
        assert_eq!((sent.state.as_str(), sent.claimed_by.as_deref()), ("sent", None), "{b}");
        assert!(sent.sent_at.is_some(), "{b}");

        // An expired claim is taken over; the old holder can no longer mark it.
        let later = t0() + chrono::Duration::seconds(61);
        let taken = s.claim_due_alerts("w4", later, CLAIM, 10, None).await.unwrap();
        assert_eq!(ids(&taken), [bb, c], "{b}");
        assert!(!s.mark_alert_sent(bb, "w1").await.unwrap(), "{b}");
        assert!(!s.mark_alert_failed(c, "w2", "late", later).await.unwrap(), "{b}");

        // A failure releases the claim, counts a try and waits for next_attempt_at.
        let retry_at = later + chrono::Duration::seconds(10);
        assert!(s.mark_alert_failed(bb, "w4", "connection refused", retry_at).await.unwrap(), "{b}");
        let failed = alert(&s, bb).await;
        assert_eq!(
            (failed.state.as_str(), failed.tries, failed.last_error.as_deref(), failed.claimed_by.as_deref()),
            ("pending", 1, Some("connection refused"), None),
            "{b}"
        );
        assert_eq!(failed.next_attempt_at, retry_at, "{b}");
        assert!(
            s.claim_due_alerts("w5", retry_at - chrono::Duration::seconds(1), CLAIM, 10, None)
                .await
                .unwrap()
                .is_empty()
        );
        assert_eq!(ids(&s.claim_due_alerts("w5", retry_at, CLAIM, 10, None).await.unwrap()), [bb], "{b}");

        // Releasing hands claims back at once; giving up keeps the alert, failed.
        assert_eq!(s.release_alert_claims("w5").await.unwrap(), 1, "{b}");
        assert_eq!(s.count_pending_alerts(None).await.unwrap(), 2, "{b}");
        assert_eq!(s.count_pending_alerts(Some(&[2])).await.unwrap(), 1, "{b}");
        assert_eq!(s.count_pending_alerts(Some(&[])).await.unwrap(), 0, "{b}");
        assert!(s.give_up_alert(c, "w4", "no valid recipient").await.unwrap(), "{b}");
        assert_eq!(alert(&s, c).await.state, "failed", "{b}");
        assert_eq!(s.count_pending_alerts(None).await.unwrap(), 1, "{b}");
    }
}

#[tokio::test]
async fn claims_can_be_limited_to_runs() {
    for db in common::both().await {
        let s = common::open(&db).await;
        for (key, run) in [("r1", Some(1)), ("r2", Some(2)), ("r3", Some(3)), ("none", None)] {
            enqueue(&s, key, run).await;
        }
        let got = s.claim_due_alerts("cli", t0(), CLAIM, 10, Some(&[3, 1])).await.unwrap();
        let keys: Vec<&str> = got.iter().map(|a| a.dedup_key.as_str()).collect();
        assert_eq!(keys, ["r1", "r3"], "{}", db.backend);
        assert!(s.claim_due_alerts("cli", t0(), CLAIM, 10, Some(&[])).await.unwrap().is_empty());
        assert!(s.claim_due_alerts("cli", t0(), CLAIM, 0, None).await.unwrap().is_empty());
        assert_eq!(s.claim_due_alerts("d", t0(), CLAIM, 10, None).await.unwrap().len(), 2, "{}", db.backend);
    }
}

#[tokio::test]
async fn an_alert_failing_too_often_is_kept_as_failed() {
    for db in common::both().await {
        let s = common::open(&db).await;
        enqueue(&s, "x", None).await;
        let mut now = t0();
        for n in 1..=ALERT_MAX_TRIES {
            let claimed = s.claim_due_alerts("w", now, CLAIM, 10, None).await.unwrap();
            assert_eq!(claimed.len(), 1, "{}: try {n}", db.backend);
            assert!(s.mark_alert_failed(claimed[0].id, "w", &format!("refused {n}"), now).await.unwrap());
            now += chrono::Duration::seconds(1);
        }
        let given_up = only_alert(&s).await;
        assert_eq!(
            (given_up.state.as_str(), given_up.tries, given_up.last_error.as_deref()),
            ("failed", ALERT_MAX_TRIES, Some(format!("refused {ALERT_MAX_TRIES}").as_str())),
            "{}",
            db.backend
        );
        assert!(s.claim_due_alerts("w", now, CLAIM, 10, None).await.unwrap().is_empty());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_claimers_never_get_the_same_alert() {
    for db in common::both().await {
        let setup = common::open(&db).await;
        for i in 0..60 {
            enqueue(&setup, &format!("k{i:02}"), Some(i)).await;
        }
        // Separate pools, as two processes would have.
        let (a, b) = (common::open(&db).await, common::open(&db).await);
        let drain = |store: Store, owner: &'static str| async move {
            let mut got = Vec::new();
            loop {
                let batch = store.claim_due_alerts(owner, t0(), CLAIM, 3, None).await.unwrap();
                if batch.is_empty() {
                    return got;
                }
                got.extend(ids(&batch));
                tokio::task::yield_now().await;
            }
        };
        let (ga, gb) = tokio::join!(tokio::spawn(drain(a, "a")), tokio::spawn(drain(b, "b")));
        let (ga, gb) = (ga.unwrap(), gb.unwrap());
        let sa: BTreeSet<i64> = ga.iter().copied().collect();
        let sb: BTreeSet<i64> = gb.iter().copied().collect();
        assert_eq!(sa.len() + sb.len(), ga.len() + gb.len(), "{}: a claimer got an alert twice", db.backend);
        assert!(sa.is_disjoint(&sb), "{}: both got {:?}", db.backend, sa.intersection(&sb).collect::<Vec<_>>());
        assert_eq!(sa.len() + sb.len(), 60, "{}", db.backend);
    }
}

// ---- deadlines -------------------------------------------------------------------------------------

const LATE_DAG: &str = r#"
id = "late"
deadline = "90m"
[defaults]
email = ["data-team@example.com", "oncall@example.com"]
[[task]]
id = "a"
kind = "noop"
"#;

/// A run of `late` for `ds` (UTC day) in `state`.
async fn late_run(s: &Store, ds: NaiveDate, run_type: RunType, state: RunState) -> i64 {
    let start = Utc.from_utc_datetime(&ds.and_hms_opt(0, 0, 0).unwrap());
    let conf = serde_json::json!({});
    let run = s
        .create_run(&NewRun {
            dag_id: "late",
            run_type,
            logical_date: start,
            ds,
            data_interval_start: start,
            data_interval_end: start + chrono::Duration::days(1),
            conf: &conf,
            backfill_id: None,
            hold: None,
        })
        .await
        .unwrap();
    if state != RunState::Queued {
        s.set_run_state(run.id, state).await.unwrap();
    }
    run.id
}

#[tokio::test]
async fn deadlines_alert_once_per_unfinished_run() {
    let late = dag(LATE_DAG);
    let plain = dag("id = \"plain\"\n[[task]]\nid = \"a\"\nkind = \"noop\"\n");
    for db in common::both().await {
        let s = common::open(&db).await;
        let today = Utc::now().date_naive();
        // Created before their deadlines (the data interval ends tonight).
        let queued = late_run(&s, today, RunType::Manual, RunState::Queued).await;
        let tomorrow = today.succ_opt().unwrap();
        let failed = late_run(&s, tomorrow, RunType::Scheduled, RunState::Failed).await;
        let done = late_run(&s, tomorrow.succ_opt().unwrap(), RunType::Scheduled, RunState::Success).await;
        // Created long after their deadlines: never alerted.
        let backfill = late_run(&s, today - chrono::Duration::days(30), RunType::Backfill, RunState::Failed).await;
        let old_manual = late_run(&s, today - chrono::Duration::days(20), RunType::Manual, RunState::Failed).await;

        let interval_end = |ds: NaiveDate| Utc.from_utc_datetime(&ds.succ_opt().unwrap().and_hms_opt(0, 0, 0).unwrap());
        let base = "http://tm.example.com:8080/";
        let dags = [late.clone(), plain.clone()];

        // 89 minutes after today's interval ended: nothing is late yet.
        let at = interval_end(today) + chrono::Duration::minutes(89);
        assert_eq!(alerts::check_deadlines(&s, &dags, base, at).await.unwrap(), 0, "{}", db.backend);
        // 91 minutes: today's run is late.
        let at = interval_end(today) + chrono::Duration::minutes(91);
        assert_eq!(alerts::check_deadlines(&s, &dags, base, at).await.unwrap(), 1, "{}", db.backend);
        assert_eq!(alerts::check_deadlines(&s, &dags, base, at).await.unwrap(), 0, "{}: again", db.backend);
        // Much later: tomorrow's failed run too, not the successful one, and no run twice.
        let at = interval_end(tomorrow) + chrono::Duration::days(3);
        assert_eq!(alerts::check_deadlines(&s, &dags, base, at).await.unwrap(), 1, "{}", db.backend);
        assert_eq!(alerts::check_deadlines(&s, &dags, base, at).await.unwrap(), 0, "{}", db.backend);

        let mut all = s.list_alerts(None, 10).await.unwrap();
        all.reverse();
        let runs: Vec<Option<i64>> = all.iter().map(|a| a.run_pk).collect();
        assert_eq!(runs, [Some(queued), Some(failed)], "{}", db.backend);
        for id in [done, backfill, old_manual] {
            assert!(!runs.contains(&Some(id)), "{}: run {id} alerted", db.backend);
        }
        let first = &all[0];
        assert_eq!((first.kind.as_str(), first.dedup_key.clone()), ("deadline", format!("deadline:{queued}")));
        assert_eq!(first.recipients, ["data-team@example.com", "oncall@example.com"]);
        assert_eq!(
            first.subject,
            format!("[tmctl] DEADLINE MISSED: late for {today} not done 90 min after its data interval ended")
        );
        assert!(first.body.contains(&format!("Run: http://tm.example.com:8080/runs/{queued}\n")), "{}", first.body);
        assert!(first.body.contains("State at "), "{}", first.body);
        assert!(first.body.contains(": queued\n"), "{}", first.body);
        assert!(all[1].body.contains(": failed\n"), "{}", all[1].body);
    }
}

#[tokio::test]
async fn a_deadline_alert_is_mailed_once_even_if_checked_twice() {
    let late = dag(LATE_DAG);
    let server = SmtpServer::start();
    let mailer = Mailer::new(&server.settings()).unwrap().unwrap();
    for (delivered, db) in common::both().await.into_iter().enumerate() {
        let s = common::open(&db).await;
        let today = Utc::now().date_naive();
        let run = late_run(&s, today, RunType::Scheduled, RunState::Running).await;
        let at = Utc.from_utc_datetime(&today.succ_opt().unwrap().and_hms_opt(2, 0, 0).unwrap());
        let base = "http://127.0.0.1:8080";
        assert_eq!(alerts::check_deadlines(&s, std::slice::from_ref(&late), base, at).await.unwrap(), 1);
        let report = alerts::send_due(&s, &mailer, "daemon-1").await.unwrap();
        assert_eq!(report, SendReport { sent: 1, failed: 0 }, "{}", db.backend);
        assert_eq!(alerts::check_deadlines(&s, std::slice::from_ref(&late), base, at).await.unwrap(), 0);
        assert_eq!(alerts::send_due(&s, &mailer, "daemon-1").await.unwrap(), SendReport::default());

        assert_eq!(only_alert(&s).await.state, "sent");

        // One server for both backends: this backend's mail is the newest, and the only one.
        server.wait_for(delivered + 1, Duration::from_secs(5));
        let mails = server.messages_until_marker();
        assert_eq!(mails.len(), delivered + 1, "{}: {mails:#?}", db.backend);
        let m = mails.last().unwrap();
        assert_eq!(
            m.subject,
            format!("[tmctl] DEADLINE MISSED: late for {today} not done 90 min after its data interval ended")
        );
        assert_eq!(m.rcpt_to, ["data-team@example.com", "oncall@example.com"]);
        assert_eq!(m.to, "data-team@example.com, oncall@example.com");
        assert!(m.body.contains(&format!("Run: http://127.0.0.1:8080/runs/{run}\n")), "{}", m.body);
    }
}

// ---- SMTP delivery -----------------------------------------------------------------------------------

const FAILING_DAG: &str = r#"
id = "mailing"
start_date = "2025-01-01"
[defaults]
email = ["data-team@example.com", "oncall@example.com"]
[[task]]
id = "boom"
kind = "fail"
times = 99
message = "disk on fire"
"#;

/// Executes `mailing` for 2025-01-02: its only task fails once, for good.
async fn fail_a_run(store: &Store) -> i64 {
    let dag = dag(FAILING_DAG);
    let exec = Executor::new(store.clone(), settings());
    let day = NaiveDate::from_ymd_opt(2025, 1, 2).unwrap();
    let slot = schedule::slot_for_date(dag.schedule.as_ref(), dag.timezone, day);
    let prepared = prepare_run(store, &dag, &slot, RunType::Manual, &serde_json::json!({}), None, None).await.unwrap();
    let run = prepared.run().clone();
    assert_eq!(exec.execute(&dag, run.id).await.unwrap(), RunState::Failed);
    run.id
}

#[tokio::test]
async fn a_failed_task_is_mailed_once_with_subject_recipients_and_link() {
    for db in common::both().await {
        let s = common::open(&db).await;
        let server = SmtpServer::start();
        let run = fail_a_run(&s).await;
        let pending = only_alert(&s).await;
        assert_eq!(pending.state, "pending");

        let mailer = Mailer::new(&server.settings()).unwrap().unwrap();
        assert_eq!(alerts::send_due(&s, &mailer, "daemon-1").await.unwrap(), SendReport { sent: 1, failed: 0 });
        assert_eq!(alerts::send_due(&s, &mailer, "daemon-1").await.unwrap(), SendReport::default());

        server.wait_for(1, Duration::from_secs(5));
        let mails = server.messages_until_marker();
        assert_eq!(mails.len(), 1, "{}: {mails:#?}", db.backend);
        let m = &mails[0];
        assert_eq!(m.subject, "[tmctl] FAILED: mailing.boom failed for 2025-01-02 (try 1 of 1)", "{}", db.backend);
        assert_eq!(m.from, "tmctl <tmctl@example.com>");
        assert_eq!(m.rcpt_to, ["data-team@example.com", "oncall@example.com"]);
        assert_eq!(m.to, "data-team@example.com, oncall@example.com");
        assert_eq!(m.content_type, "text/plain");
        assert!(m.body.contains("disk on fire"), "{}", m.body);
        assert!(m.body.contains(&format!("Log: http://127.0.0.1:8080/runs/{run}/tasks/boom?try=1\n")), "{}", m.body);
        // (The maildir adds a final newline.)
        assert_eq!(m.body.trim_end(), pending.body.trim_end(), "the body goes out as recorded");
        assert!(m.message_id.starts_with(&format!("<tmctl.alert.{}.", pending.id)), "{}", m.message_id);
        assert!(m.message_id.ends_with("@example.com>"), "{}", m.message_id);
        assert!(!m.date.is_empty());

        let sent = only_alert(&s).await;
        assert_eq!((sent.state.as_str(), sent.tries, sent.claimed_by), ("sent", 0, None), "{}", db.backend);
    }
}

#[tokio::test]
async fn an_smtp_outage_delays_the_alert_and_it_goes_out_once_later() {
    for db in common::both().await {
        let s = common::open(&db).await;
        let port = free_port();
        let smtp = settings_for(port, Duration::from_secs(5));
        // The task fails while nothing listens on the SMTP port.
        fail_a_run(&s).await;
        let mailer = Mailer::new(&smtp).unwrap().unwrap();
        let report = alerts::send_due(&s, &mailer, "daemon-1").await.unwrap();
        assert_eq!(report, SendReport { sent: 0, failed: 1 }, "{}", db.backend);
        let waiting = only_alert(&s).await;
        assert_eq!((waiting.state.as_str(), waiting.tries, waiting.claimed_by.clone()), ("pending", 1, None));
        let error = waiting.last_error.clone().unwrap_or_default();
        assert!(error.starts_with(&format!("SMTP 127.0.0.1:{port}: ")), "{}: {error}", db.backend);
        let backoff = waiting.next_attempt_at - Utc::now();
        assert!(backoff > chrono::Duration::seconds(8) && backoff <= chrono::Duration::seconds(10), "{backoff}");

        // The server comes up; the alert goes out once its backoff has passed.
        let server = SmtpServer::start_on(port);
        assert_eq!(alerts::send_due(&s, &mailer, "daemon-1").await.unwrap(), SendReport::default(), "not due yet");
        let started = Instant::now();
        let report = loop {
            let report = alerts::send_due(&s, &mailer, "daemon-1").await.unwrap();
            if report != SendReport::default() || started.elapsed() > Duration::from_secs(20) {
                break report;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        };
        assert_eq!(report, SendReport { sent: 1, failed: 0 }, "{}", db.backend);
        assert_eq!(alerts::send_due(&s, &mailer, "daemon-1").await.unwrap(), SendReport::default());
        server.wait_for(1, Duration::from_secs(5));
        let mails = server.messages_until_marker();
        assert_eq!(mails.len(), 1, "{}: {mails:#?}", db.backend);
        let sent = only_alert(&s).await;
        assert_eq!((sent.state.as_str(), sent.tries), ("sent", 1));
        assert_eq!(sent.last_error, Some(error), "the outage stays on record");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_senders_on_postgres_mail_each_alert_once() {
    let db = common::postgres_db().await;
    let s = common::open(&db).await;
    for i in 0..24 {
        enqueue(&s, &format!("c{i:02}"), Some(i)).await;
    }
    let server = SmtpServer::start();
    let (a, b) = (common::open(&db).await, common::open(&db).await);
    let (ma, mb) =
        (Mailer::new(&server.settings()).unwrap().unwrap(), Mailer::new(&server.settings()).unwrap().unwrap());
    let (ra, rb) = tokio::join!(
        tokio::spawn(async move { alerts::send_due(&a, &ma, "daemon-a").await.unwrap() }),
        tokio::spawn(async move { alerts::send_due(&b, &mb, "daemon-b").await.unwrap() }),
    );
    let (ra, rb) = (ra.unwrap(), rb.unwrap());
    assert_eq!((ra.failed, rb.failed), (0, 0));
    assert_eq!(ra.sent + rb.sent, 24, "{ra:?} {rb:?}");
    server.wait_for(24, Duration::from_secs(10));
    let mails = server.messages_until_marker();
    let subjects: BTreeSet<&str> = mails.iter().map(|m| m.subject.as_str()).collect();
    assert_eq!((mails.len(), subjects.len()), (24, 24), "each alert exactly once");
    assert_eq!(s.count_pending_alerts(None).await.unwrap(), 0);
}

#[tokio::test]
async fn a_server_that_never_answers_times_out_and_the_alert_waits() {
    // Accepts connections and says nothing.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let silent = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    for db in common::both().await {
        let s = common::open(&db).await;
        enqueue(&s, "quiet", Some(7)).await;
        let smtp = settings_for(port, Duration::from_secs(1));
        let mailer = Mailer::new(&smtp).unwrap().unwrap();
        let started = Instant::now();
        let report = alerts::send_due(&s, &mailer, "daemon-1").await.unwrap();
        let took = started.elapsed();
        assert_eq!(report, SendReport { sent: 0, failed: 1 }, "{}", db.backend);
        assert!(took >= Duration::from_millis(900) && took < Duration::from_secs(3), "{}: took {took:?}", db.backend);
        let waiting = only_alert(&s).await;
        assert_eq!((waiting.state.as_str(), waiting.tries, waiting.claimed_by.clone()), ("pending", 1, None));
        assert_eq!(
            waiting.last_error.as_deref(),
            Some(format!("SMTP 127.0.0.1:{port}: no answer within 1.0s (smtp.timeout)").as_str())
        );

        // The CLI's flush is bounded by the timeout too, and leaves the alert to the daemon.
        enqueue(&s, "quiet-cli", Some(8)).await;
        let started = Instant::now();
        let flushed = alerts::flush_run_alerts(&s, &smtp, "cli-1", &[8]).await.unwrap();
        assert!(started.elapsed() < Duration::from_secs(3), "{}: took {:?}", db.backend, started.elapsed());
        assert_eq!(flushed, FlushReport { sent: 0, left: 1 }, "{}", db.backend);
        let left = s.list_alerts(Some("pending"), 10).await.unwrap();
        assert!(left.iter().all(|a| a.claimed_by.is_none()), "{}: claims released: {left:#?}", db.backend);
    }
    silent.abort();
}

#[tokio::test]
async fn the_cli_flushes_its_runs_alerts_and_leaves_the_rest() {
    for db in common::both().await {
        let s = common::open(&db).await;
        let run = fail_a_run(&s).await;
        enqueue(&s, "other-run", Some(run + 1000)).await;

        // No SMTP host: nothing is sent, everything waits.
        let mut off = settings_for(free_port(), Duration::from_secs(5));
        off.host = String::new();
        let flushed = alerts::flush_run_alerts(&s, &off, "cli-1", &[run]).await.unwrap();
        assert_eq!(flushed, FlushReport { sent: 0, left: 1 }, "{}", db.backend);

        // Bad settings name the key.
        let mut bad = off.clone();
        bad.host = "127.0.0.1".into();
        bad.from = "tmctl at example".into();
        let err = alerts::flush_run_alerts(&s, &bad, "cli-1", &[run]).await.unwrap_err();
        assert!(err.to_string().starts_with("config error: `smtp.from` = \"tmctl at example\""), "{err}");

        let server = SmtpServer::start();
        let flushed = alerts::flush_run_alerts(&s, &server.settings(), "cli-1", &[run]).await.unwrap();
        assert_eq!(flushed, FlushReport { sent: 1, left: 0 }, "{}", db.backend);
        let again = alerts::flush_run_alerts(&s, &server.settings(), "cli-1", &[run]).await.unwrap();
        assert_eq!(again, FlushReport { sent: 0, left: 0 });
        let mails = server.wait_for(1, Duration::from_secs(5));
        assert_eq!(mails.len(), 1);
        assert!(mails[0].subject.starts_with("[tmctl] FAILED: mailing.boom"), "{}", mails[0].subject);
        // The other run's alert is the daemon's business.
        assert_eq!(s.count_pending_alerts(None).await.unwrap(), 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_background_sender_mails_what_comes_in_and_stops_on_shutdown() {
    let db = common::sqlite_db();
    let s = common::open(&db).await;
    let server = SmtpServer::start();
    let shutdown = tokio_util::sync::CancellationToken::new();
    let sender = tokio::spawn(alerts::run_sender(s.clone(), server.settings(), "daemon-1".into(), shutdown.clone()));
    enqueue(&s, "bg1", Some(1)).await;
    enqueue(&s, "bg2", Some(2)).await;
    let mails = server.wait_for(2, Duration::from_secs(10));
    assert_eq!(mails.len(), 2, "{mails:#?}");
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(5), sender).await.expect("sender stops").unwrap();
    assert_eq!(s.count_pending_alerts(None).await.unwrap(), 0);

    // Without a host it only waits for shutdown: it claims, tries and mails nothing (checked
    // once it has stopped, so whatever it did is on record).
    let stop = tokio_util::sync::CancellationToken::new();
    let mut off = server.settings();
    off.host = String::new();
    enqueue(&s, "bg3", Some(3)).await;
    let idle = tokio::spawn(alerts::run_sender(s.clone(), off, "daemon-2".into(), stop.clone()));
    stop.cancel();
    tokio::time::timeout(Duration::from_secs(5), idle).await.expect("idle sender stops").unwrap();
    let left = s.list_alerts(Some("pending"), 10).await.unwrap();
    let left: Vec<_> = left.iter().map(|a| (a.dedup_key.as_str(), a.tries, a.claimed_by.clone())).collect();
    assert_eq!(left, [("bg3", 0, None)]);
    assert_eq!(server.messages_until_marker().len(), 2);
}
