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

// ---- recovery alerts ---------------------------------------------------------------------------------

/// `flaky` failing for good (`FLAKY_FAILS`) or succeeding (`FLAKY_OK`): the same DAG id, so runs
/// of both are one DAG's history.
const FLAKY_FAILS: &str = r#"
id = "flaky"
[defaults]
email = ["data-team@example.com"]
[[task]]
id = "t"
kind = "fail"
times = 99
message = "flaked"
"#;
const FLAKY_OK: &str = r#"
id = "flaky"
[defaults]
email = ["data-team@example.com"]
[[task]]
id = "t"
kind = "noop"
"#;

/// Runs (or re-runs, clearing it) `dag` for 2025-01-`day` in this process; its final state.
async fn run_day(store: &Store, dag: &Dag, day: u32, run_type: RunType) -> (i64, RunState) {
    run_day_with(store, settings(), dag, day, run_type).await
}

async fn run_day_with(
    store: &Store,
    settings: Arc<Settings>,
    dag: &Dag,
    day: u32,
    run_type: RunType,
) -> (i64, RunState) {
    let exec = Executor::new(store.clone(), settings);
    let ds = NaiveDate::from_ymd_opt(2025, 1, day).unwrap();
    let slot = schedule::slot_for_date(dag.schedule.as_ref(), dag.timezone, ds);
    let prepared = prepare_run(store, dag, &slot, run_type, &serde_json::json!({}), None, None).await.unwrap();
    let run = prepared.run().id;
    (run, exec.execute(dag, run).await.unwrap())
}

fn kinds(rows: &[AlertRow]) -> Vec<(String, Option<i64>)> {
    let mut out: Vec<(String, Option<i64>)> = rows.iter().map(|a| (a.kind.clone(), a.run_pk)).collect();
    out.sort();
    out
}

#[tokio::test]
async fn a_success_after_a_failure_records_one_recovery_alert() {
    let (fails, ok) = (dag(FLAKY_FAILS), dag(FLAKY_OK));
    for db in common::both().await {
        let b = db.backend;
        let s = common::open(&db).await;
        // Day 1 fails, day 2 succeeds: the DAG recovered (once), day 3 is just a success.
        let (d1, state) = run_day(&s, &fails, 1, RunType::Scheduled).await;
        assert_eq!(state, RunState::Failed);
        let (d2, state) = run_day(&s, &ok, 2, RunType::Scheduled).await;
        assert_eq!(state, RunState::Success);
        let (d3, _) = run_day(&s, &ok, 3, RunType::Scheduled).await;
        let all = s.list_alerts(None, 100).await.unwrap();
        assert_eq!(kinds(&all), [("failure".into(), Some(d1)), ("recovery".into(), Some(d2))], "{b}");
        let recovery = all.iter().find(|a| a.kind == "recovery").unwrap();
        assert_eq!(recovery.subject, "[tmctl] RECOVERED: flaky succeeded for 2025-01-02 after a failure", "{b}");
        assert_eq!(recovery.recipients, ["data-team@example.com"]);
        assert_eq!(recovery.channel, "email");
        assert!(recovery.body.contains(&format!("Run: http://127.0.0.1:8080/runs/{d2}\n")), "{}", recovery.body);
        assert!(recovery.body.contains("the previous run had failed"), "{}", recovery.body);

        // Day 1 cleared and re-run successfully: that run recovered too, once.
        let (again, state) = run_day(&s, &ok, 1, RunType::Scheduled).await;
        assert_eq!((again, state), (d1, RunState::Success), "{b}");
        let (_, state) = run_day(&s, &ok, 1, RunType::Scheduled).await;
        assert_eq!(state, RunState::Success);
        // Day 2 re-run: its recovery was told already.
        run_day(&s, &ok, 2, RunType::Scheduled).await;
        let all = s.list_alerts(None, 100).await.unwrap();
        assert_eq!(
            kinds(&all),
            [("failure".into(), Some(d1)), ("recovery".into(), Some(d1)), ("recovery".into(), Some(d2))],
            "{b}: {all:#?}"
        );
        let rerun = all.iter().find(|a| a.kind == "recovery" && a.run_pk == Some(d1)).unwrap();
        assert!(rerun.body.contains("this run had failed before it was run again"), "{}", rerun.body);
        assert!(!all.iter().any(|a| a.run_pk == Some(d3)), "{b}");

        // Backfill runs neither recover nor count as the DAG's previous state.
        let (d10, _) = run_day(&s, &fails, 10, RunType::Backfill).await;
        let (d11, _) = run_day(&s, &ok, 11, RunType::Backfill).await;
        let (d12, _) = run_day(&s, &ok, 12, RunType::Scheduled).await;
        let all = s.list_alerts(None, 100).await.unwrap();
        assert!(!all.iter().any(|a| a.kind == "recovery" && [d10, d11, d12].contains(&a.run_pk.unwrap())), "{b}");
    }
}

#[tokio::test]
async fn email_on_recovery_false_records_none() {
    let fails = dag(FLAKY_FAILS);
    let quiet = dag(&FLAKY_OK.replace("[defaults]\n", "[defaults]\nemail_on_recovery = false\n"));
    assert!(!quiet.email_on_recovery);
    let db = common::sqlite_db();
    let s = common::open(&db).await;
    run_day(&s, &fails, 1, RunType::Scheduled).await;
    run_day(&s, &quiet, 2, RunType::Scheduled).await;
    let all = s.list_alerts(None, 100).await.unwrap();
    assert_eq!(all.iter().map(|a| a.kind.as_str()).collect::<Vec<_>>(), ["failure"]);
}

// ---- webhooks ------------------------------------------------------------------------------------------

/// One POST the receiver got.
#[derive(Debug, Clone)]
struct Delivery {
    path: String,
    headers: axum::http::HeaderMap,
    body: String,
}

/// A real HTTP receiver on 127.0.0.1:`port` that answers 200 to every request and keeps them.
struct Receiver {
    got: Arc<std::sync::Mutex<Vec<Delivery>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Receiver {
    async fn start(port: u16) -> Receiver {
        let got: Arc<std::sync::Mutex<Vec<Delivery>>> = Arc::default();
        let keep = got.clone();
        let app =
            axum::Router::new().fallback(move |uri: axum::http::Uri, headers: axum::http::HeaderMap, body: String| {
                let keep = keep.clone();
                async move {
                    keep.lock().unwrap().push(Delivery { path: uri.path().to_string(), headers, body });
                    "ok"
                }
            });
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.unwrap();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Receiver { got, task }
    }

    fn deliveries(&self) -> Vec<Delivery> {
        self.got.lock().unwrap().clone()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

const HOOK_SECRET: &str = "hook-signing-secret";
/// A configured secret the failing task prints: it must reach no payload.
const API_TOKEN: &str = "tok-do-not-leak-42";

fn hooked_dag(port: u16) -> (Dag, Dag) {
    let head = format!(
        "id = \"hooked\"\n[defaults]\nemail = [\"data-team@example.com\"]\n\
         webhook = [\"http://127.0.0.1:{port}/hooks/T000/SECRETPATH\"]\n"
    );
    let fails = dag(&format!(
        "{head}[[task]]\nid = \"boom\"\nkind = \"fail\"\ntimes = 99\nmessage = \"disk on fire, token {API_TOKEN}\"\n"
    ));
    let ok = dag(&format!("{head}[[task]]\nid = \"boom\"\nkind = \"noop\"\n"));
    (fails, ok)
}

fn hook_settings() -> tmctl::config::AlertSettings {
    tmctl::config::AlertSettings { webhook_secret: HOOK_SECRET.into(), webhook_timeout: Duration::from_secs(2) }
}

/// HMAC-SHA256 of `body`, computed here independently of tmctl.
fn expected_signature(body: &str) -> String {
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(HOOK_SECRET.as_bytes()).unwrap();
    mac.update(body.as_bytes());
    let bytes = mac.finalize().into_bytes();
    format!("sha256={}", bytes.iter().map(|b| format!("{b:02x}")).collect::<String>())
}

/// Posts due webhook alerts until `n` were sent (a deadline, no fixed sleeps).
async fn post_until_sent(s: &Store, hooks: &alerts::Webhooks, n: usize) {
    let started = Instant::now();
    let mut sent = 0;
    while sent < n {
        sent += alerts::send_due_webhooks(s, hooks, "daemon-1").await.unwrap().sent;
        assert!(started.elapsed() < Duration::from_secs(30), "only {sent} of {n} webhook alerts posted within 30 s");
        if sent < n {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failure_and_recovery_go_to_mail_and_webhook_once_each_with_the_receiver_down_at_first() {
    for db in common::both().await {
        let b = db.backend;
        let s = common::open(&db).await;
        let port = free_port();
        let (fails, ok) = hooked_dag(port);
        let vars: std::collections::BTreeMap<String, String> =
            [("TM_API_TOKEN".to_string(), API_TOKEN.to_string())].into();
        let secretive = Arc::new(Settings::load_with(&Overrides::default(), &vars).unwrap());
        let (run, state) = run_day_with(&s, secretive.clone(), &fails, 2, RunType::Scheduled).await;
        assert_eq!(state, RunState::Failed);

        // Nothing listens yet: the post fails, is kept with its error and waits for its backoff.
        let hooks = alerts::Webhooks::new(&hook_settings()).unwrap().with_first_backoff(Duration::from_millis(500));
        let report = alerts::send_due_webhooks(&s, &hooks, "daemon-1").await.unwrap();
        assert_eq!(report, SendReport { sent: 0, failed: 1 }, "{b}");
        let hook_rows: Vec<AlertRow> =
            s.list_alerts(None, 100).await.unwrap().into_iter().filter(|a| a.channel == "webhook").collect();
        assert_eq!(hook_rows.len(), 1, "{b}");
        let waiting = &hook_rows[0];
        assert_eq!((waiting.state.as_str(), waiting.tries), ("pending", 1), "{b}");
        let error = waiting.last_error.clone().unwrap_or_default();
        assert!(error.starts_with(&format!("webhook http://127.0.0.1:{port}/…: ")), "{b}: {error}");
        assert!(!error.contains("SECRETPATH"), "{b}: the URL's path is the webhook's secret: {error}");
        assert_eq!(waiting.dedup_key, alerts::webhook_key(&format!("failure:{run}:boom:1"), &waiting.recipients[0]));

        // The receiver comes up; the alert goes out once.
        let receiver = Receiver::start(port).await;
        post_until_sent(&s, &hooks, 1).await;
        // Day 3 succeeds: the recovery goes to the webhook too.
        let (next, state) = run_day_with(&s, secretive.clone(), &ok, 3, RunType::Scheduled).await;
        assert_eq!(state, RunState::Success);
        post_until_sent(&s, &hooks, 1).await;
        assert_eq!(alerts::send_due_webhooks(&s, &hooks, "daemon-1").await.unwrap(), SendReport::default());

        let got = receiver.deliveries();
        assert_eq!(got.len(), 2, "{b}: one delivery per alert: {got:#?}");
        for d in &got {
            assert_eq!(d.path, "/hooks/T000/SECRETPATH");
            let signature = d.headers.get("x-tmctl-signature").and_then(|v| v.to_str().ok()).unwrap_or_default();
            assert_eq!(signature, expected_signature(&d.body), "{b}: the HMAC verifies");
            assert_eq!(d.headers.get("content-type").unwrap(), "application/json");
            assert!(!d.body.contains(API_TOKEN), "{b}: a secret in a payload: {}", d.body);
        }
        let failure: serde_json::Value = serde_json::from_str(&got[0].body).unwrap();
        assert_eq!(
            failure["text"].as_str().unwrap(),
            format!(
                "[tmctl] FAILED: hooked.boom failed for 2025-01-02 (try 1 of 1)\n\
                 disk on fire, token *** (try 1 of the first 99 that fail)\n\
                 http://127.0.0.1:8080/runs/{run}/tasks/boom?try=1"
            ),
            "{b}"
        );
        assert_eq!(failure["kind"], "failure");
        assert_eq!(failure["dag"], "hooked");
        assert_eq!(failure["run"], format!("scheduled__2025-01-02T00:00:00+00:00"));
        assert_eq!(failure["run_pk"], run);
        assert_eq!(failure["task"], "boom");
        assert_eq!(failure["try"], 1);
        assert_eq!(failure["state"], "failed");
        assert_eq!(failure["url"], format!("http://127.0.0.1:8080/runs/{run}/tasks/boom?try=1"));
        assert_eq!(failure["error"], "disk on fire, token *** (try 1 of the first 99 that fail)");
        assert!(failure["log_tail"].as_str().unwrap().contains("***"), "{failure}");
        assert_eq!(got[0].headers.get("x-tmctl-alert").unwrap(), &format!("failure:{run}:boom:1"));
        let recovery: serde_json::Value = serde_json::from_str(&got[1].body).unwrap();
        assert_eq!((recovery["kind"].as_str(), recovery["state"].as_str()), (Some("recovery"), Some("success")));
        assert_eq!(recovery["dag"], "hooked");
        assert_eq!(recovery["run_pk"], next);
        assert_eq!(recovery["url"], format!("http://127.0.0.1:8080/runs/{next}"));
        assert_eq!(
            recovery["text"],
            format!(
                "[tmctl] RECOVERED: hooked succeeded for 2025-01-03 after a failure\nhttp://127.0.0.1:8080/runs/{next}"
            )
        );

        // The e-mail rows of the same alerts go out once each through real SMTP.
        let server = SmtpServer::start();
        let mailer = Mailer::new(&server.settings()).unwrap().unwrap();
        assert_eq!(alerts::send_due(&s, &mailer, "daemon-1").await.unwrap(), SendReport { sent: 2, failed: 0 });
        server.wait_for(2, Duration::from_secs(10));
        let mails = server.messages_until_marker();
        let subjects: Vec<&str> = mails.iter().map(|m| m.subject.as_str()).collect();
        assert_eq!(
            subjects,
            [
                "[tmctl] FAILED: hooked.boom failed for 2025-01-02 (try 1 of 1)",
                "[tmctl] RECOVERED: hooked succeeded for 2025-01-03 after a failure"
            ],
            "{b}"
        );
        assert!(mails.iter().all(|m| !m.body.contains(API_TOKEN)), "{b}");
        assert_eq!(s.count_pending_alerts(None).await.unwrap(), 0, "{b}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_webhook_senders_on_postgres_post_each_alert_once() {
    let db = common::postgres_db().await;
    let s = common::open(&db).await;
    let port = free_port();
    let receiver = Receiver::start(port).await;
    let url = format!("http://127.0.0.1:{port}/hook");
    for i in 0..20 {
        let key = format!("w{i:02}");
        let alert = NewAlert {
            dedup_key: &key,
            kind: "failure",
            dag_id: "d",
            run_pk: Some(i),
            task_id: None,
            try_number: None,
            recipients: std::slice::from_ref(&url),
            subject: &key,
            body: &format!("{{\"text\": \"{key}\"}}"),
        };
        assert!(s.enqueue_webhook_alert(&alert).await.unwrap());
    }
    let (a, bb) = (common::open(&db).await, common::open(&db).await);
    let (ha, hb) = (alerts::Webhooks::new(&hook_settings()).unwrap(), alerts::Webhooks::new(&hook_settings()).unwrap());
    let (ra, rb) = tokio::join!(
        tokio::spawn(async move { alerts::send_due_webhooks(&a, &ha, "daemon-a").await.unwrap() }),
        tokio::spawn(async move { alerts::send_due_webhooks(&bb, &hb, "daemon-b").await.unwrap() }),
    );
    let (ra, rb) = (ra.unwrap(), rb.unwrap());
    assert_eq!(ra.sent + rb.sent, 20, "{ra:?} {rb:?}");
    let got = receiver.deliveries();
    let texts: BTreeSet<String> = got.iter().map(|d| d.body.clone()).collect();
    assert_eq!((got.len(), texts.len()), (20, 20), "each alert exactly once");
    // The e-mail sender never claims webhook rows.
    assert!(s.claim_due_alerts("mail", Utc::now(), CLAIM, 10, None).await.unwrap().is_empty());
}

#[test]
fn webhooks_must_be_http_urls_and_validate_names_file_and_key() {
    let src = "id = \"w\"\n[defaults]\nwebhook = [\"https://hooks.example.com/x\", \"ftp://files.example.com/x\"]\n\
               [[task]]\nid = \"a\"\nkind = \"noop\"\nwebhook = \"not a url\"\n";
    let diags = dag::load_str(src, Path::new("w.toml")).unwrap_err();
    let text: Vec<String> = diags.iter().map(|d| d.to_string()).collect();
    assert_eq!(
        text,
        [
            "w.toml:3:43: `defaults.webhook`: \"ftp://files.example.com/…\" is not an http(s) URL (scheme `ftp`)",
            "w.toml:7:11: task `a`: `webhook`: \"not a url\" is not an http(s) URL (relative URL without a base)",
        ]
    );
    let ok = dag(
        "id = \"w\"\n[defaults]\nwebhook = \"https://hooks.example.com/x\"\n[[task]]\nid = \"a\"\nkind = \"noop\"\n",
    );
    assert_eq!(ok.webhook, ["https://hooks.example.com/x"]);
    assert_eq!(ok.tasks[0].policy.webhook, ["https://hooks.example.com/x"]);
    assert!(ok.email_on_recovery);
    assert_eq!(alerts::redact_webhook("https://hooks.slack.com/services/T0/B0/XYZ"), "https://hooks.slack.com/…");
    assert_eq!(
        alerts::signature("key", b"The quick brown fox jumps over the lazy dog"),
        "sha256=f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_background_webhook_sender_posts_what_comes_in_and_stops_on_shutdown() {
    let db = common::sqlite_db();
    let s = common::open(&db).await;
    let port = free_port();
    let receiver = Receiver::start(port).await;
    let shutdown = tokio_util::sync::CancellationToken::new();
    let sender =
        tokio::spawn(alerts::run_webhook_sender(s.clone(), hook_settings(), "daemon-1".into(), shutdown.clone()));
    let url = format!("http://127.0.0.1:{port}/bg");
    for key in ["bg1", "bg2"] {
        let body = alerts::payload(key, serde_json::json!({"dag": "d"})).to_string();
        let alert = NewAlert {
            dedup_key: key,
            kind: "failure",
            dag_id: "d",
            run_pk: None,
            task_id: None,
            try_number: None,
            recipients: std::slice::from_ref(&url),
            subject: key,
            body: &body,
        };
        assert!(s.enqueue_webhook_alert(&alert).await.unwrap());
    }
    let got = common::eventually(Duration::from_millis(100), Duration::from_secs(15), "two webhook posts", || {
        let got = receiver.deliveries();
        async move { (got.len() >= 2).then_some(got) }
    })
    .await;
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(5), sender).await.expect("sender stops").unwrap();
    let bodies: Vec<serde_json::Value> = got.iter().map(|d| serde_json::from_str(&d.body).unwrap()).collect();
    assert_eq!(
        bodies,
        [serde_json::json!({"text": "bg1", "dag": "d"}), serde_json::json!({"text": "bg2", "dag": "d"})]
    );
    assert!(got.iter().all(|d| d.headers.get("x-tmctl-signature").unwrap() == &expected_signature(&d.body)));
    assert_eq!(s.count_pending_alerts(None).await.unwrap(), 0);
    assert_eq!(receiver.deliveries().len(), 2, "each once");
}
