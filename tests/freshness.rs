//! Per-course freshness end to end (issue 14, item 3), with real parts only: the `tmctl` binary
//! runs the shipped bronze DAG (with recipients added) over an inbox with files of four courses,
//! a real SMTP server (aiosmtpd) receives the alerts, and a `tmctl serve` process answers the
//! quality page over HTTP after a form login. On SQLite and PostgreSQL.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use chrono::{Datelike, NaiveDate, Utc};
use common::serve::ServeProcess;
use common::smtp::SmtpServer;
use reqwest::StatusCode;
use reqwest::header::{COOKIE, SET_COOKIE};

const BIN: &str = env!("CARGO_BIN_EXE_tmctl");
const TOKEN: &str = "freshness-test-token-0123456789";
const RECIPIENT: &str = "ops@example.com";

struct Env {
    home: tempfile::TempDir,
    dags: PathBuf,
    db: common::TestDb,
    smtp_port: u16,
}

impl Env {
    fn command(&self) -> Command {
        let mut c = Command::new(BIN);
        c.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", self.home.path())
            .env("TM_HOME", self.home.path())
            .env("TM_DAGS_DIR", &self.dags)
            .env("TM_API_TOKEN", TOKEN)
            .env("TM_SHUTDOWN_GRACE", "1s")
            .env("TM_SMTP_HOST", "127.0.0.1")
            .env("TM_SMTP_PORT", self.smtp_port.to_string())
            .env("TM_SMTP_TIMEOUT", "5s")
            .env("TM_WEB_BASE_URL", "http://tm.example:8080")
            .env("TM_LOG", "info");
        if self.db.backend == "postgres" {
            c.env("TM_DATABASE_URL", &self.db.url);
        }
        c
    }

    /// `tmctl ARGS` with `stdin`: exit code, stdout, stderr.
    fn tmctl(&self, args: &[&str], stdin: &str) -> (i32, String, String) {
        let mut c = self.command();
        c.args(args);
        common::run_with_stdin(c, stdin)
    }

    #[track_caller]
    fn ok(&self, args: &[&str]) -> String {
        let (code, out, err) = self.tmctl(args, "");
        assert_eq!(code, 0, "{}: tmctl {args:?} failed\nstdout:\n{out}\nstderr:\n{err}", self.db.backend);
        err
    }

    async fn store(&self) -> tmctl::store::Store {
        let url = if self.db.backend == "postgres" {
            self.db.url.clone()
        } else {
            tmctl::config::sqlite_url(&self.home.path().join("tm.db"))
        };
        tmctl::store::Store::connect(&url, 2).await.expect("state DB")
    }
}

/// The month after `month` (1–12): a one-month season that excludes `month`.
fn next_month(month: u32) -> u32 {
    month % 12 + 1
}

/// The shipped bronze DAG with a recipient, and a profile file: alpha (default cadence, 2 days),
/// beta (3 days), gamma (open only next month). delta has no profile.
fn write_dags(dir: &Path, today: NaiveDate) {
    let shipped = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("dags/bronze.toml")).unwrap();
    let with_email = shipped.replace("[defaults]\n", &format!("[defaults]\nemail = [\"{RECIPIENT}\"]\n"));
    assert_ne!(shipped, with_email, "the shipped bronze DAG has a [defaults] table");
    assert!(with_email.contains("kind = \"courses.freshness\""), "the shipped bronze DAG checks freshness");
    std::fs::write(dir.join("bronze.toml"), with_email).unwrap();
    let gamma_month = next_month(today.month());
    std::fs::write(
        dir.join("courses.toml"),
        format!(
            "[[course]]\nid = \"alpha\"\nname = \"Alpha Links\"\ntimezone = \"UTC\"\n\n\
             [[course]]\nid = \"beta\"\nname = \"Beta Golf Club\"\ntimezone = \"America/New_York\"\nexpected_cadence = \"3d\"\n\n\
             [[course]]\nid = \"gamma\"\nname = \"Gamma Summer Nine\"\ntimezone = \"UTC\"\nseason = [{gamma_month}, {gamma_month}]\n"
        ),
    )
    .unwrap();
}

/// One valid round file for `course`, its ingest date in its name.
fn drop_file(inbox: &Path, course: &str, date: NaiveDate) {
    let body =
        format!("{{\"_id\": \"{course}-{date}\", \"course\": \"{course}\", \"locations\": [{{\"hole\": 1}}]}}\n");
    std::fs::write(inbox.join(format!("{course}.{date}.1.json")), body).unwrap();
}

/// The freshness e-mails delivered so far (a marker proves nothing more is under way).
fn freshness_mails(smtp: &SmtpServer) -> Vec<common::smtp::Mail> {
    smtp.messages_until_marker().into_iter().filter(|m| m.subject.starts_with("[tmctl] STALE: ")).collect()
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

fn cookies(resp: &reqwest::Response) -> BTreeMap<String, String> {
    resp.headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok()?.split(';').next()?.split_once('=').map(|(k, v)| (k.into(), v.into())))
        .collect()
}

/// Logs in through the form (CSRF cookie and field, as a browser does); the session cookie.
async fn login(base: &str, user: &str, password: &str) -> String {
    let form = http().get(format!("{base}/login")).send().await.expect("GET /login");
    assert_eq!(form.status(), StatusCode::OK);
    let csrf = cookies(&form).get("tm_login_csrf").expect("login CSRF cookie").clone();
    let resp = http()
        .post(format!("{base}/login"))
        .header(COOKIE, format!("tm_login_csrf={csrf}"))
        .form(&[("username", user), ("password", password), ("csrf", &csrf), ("next", "/")])
        .send()
        .await
        .expect("POST /login");
    assert_eq!(resp.status(), StatusCode::SEE_OTHER, "login as {user}");
    format!("tm_session={}", cookies(&resp).get("tm_session").expect("session cookie"))
}

async fn get(base: &str, path: &str, cookie: &str) -> String {
    let resp = http().get(format!("{base}{path}")).header(COOKIE, cookie).send().await.expect("GET");
    assert_eq!(resp.status(), StatusCode::OK, "GET {path}");
    resp.text().await.unwrap()
}

/// The rows of the page's Freshness table, by course id: the cells' (class, text).
fn freshness_rows(html: &str) -> BTreeMap<String, Vec<(String, String)>> {
    let start = html.find("<section class=\"lh-section\" id=\"freshness\">").expect("a Freshness section");
    let section = &html[start..start + html[start..].find("</section>").expect("end of section")];
    let mut rows = BTreeMap::new();
    for tr in section.split("<tr>").skip(2) {
        let cells: Vec<(String, String)> = tr
            .split("<td class=\"")
            .skip(1)
            .map(|td| {
                let (class, rest) = td.split_once("\">").unwrap();
                let inner = &rest[..rest.find("</td>").unwrap()];
                let text = match inner.split_once("\">") {
                    Some((_, link)) if inner.starts_with("<a ") => link.trim_end_matches("</a>").to_string(),
                    _ => inner.to_string(),
                };
                (class.trim().to_string(), text)
            })
            .collect();
        rows.insert(cells[0].1.clone(), cells);
    }
    rows
}

async fn stale_course_is_mailed_once_and_shown(db: common::TestDb) {
    let be = db.backend;
    let smtp = SmtpServer::start();
    let home = tempfile::tempdir().unwrap();
    let dags = home.path().join("dags");
    std::fs::create_dir_all(&dags).unwrap();
    let today = Utc::now().date_naive();
    write_dags(&dags, today);
    let env = Env { home, dags, db, smtp_port: smtp.port };
    let inbox = env.home.path().join("inbox");
    std::fs::create_dir_all(&inbox).unwrap();
    let days = |n: i64| today - chrono::Duration::days(n);
    // As of today: alpha 1 day old (fresh), beta 5 days (cadence 3: stale), gamma 30 days but out
    // of season, delta (no profile: 2 days, all year) 2 days (fresh).
    for (course, age) in [("alpha", 1), ("beta", 5), ("gamma", 30), ("delta", 2)] {
        drop_file(&inbox, course, days(age));
    }
    env.ok(&["dags", "pause", "bronze"]);

    // The run lands the files, finds beta stale, and mails it before the CLI exits.
    let ds = today.to_string();
    let err = env.ok(&["run", "bronze", "--date", &ds]);
    assert!(err.contains("alerts: 1 e-mailed, 0 left"), "{be}: {err}");
    smtp.wait_for(1, Duration::from_secs(10));
    let mails = freshness_mails(&smtp);
    assert_eq!(mails.len(), 1, "{be}: {mails:#?}");
    let m = &mails[0];
    assert_eq!(m.subject, format!("[tmctl] STALE: course beta has no new data since {} (as of {ds})", days(5)), "{be}");
    assert_eq!(m.rcpt_to, [RECIPIENT], "{be}");
    assert!(m.body.contains("Expected cadence: 3 days\n"), "{be}: {}", m.body);
    assert!(m.body.contains("http://tm.example:8080/lakehouse/quality?course=beta"), "{be}: {}", m.body);

    let store = env.store().await;
    let run = store
        .list_runs(&tmctl::store::RunFilter { dag_id: Some("bronze"), state: None, limit: 10 })
        .await
        .unwrap()
        .into_iter()
        .find(|r| r.ds == today)
        .expect("the bronze run");
    let attempts = store.list_attempts(run.id, "freshness").await.unwrap();
    let summary = attempts.last().and_then(|a| a.output.clone()).expect("a freshness summary");
    assert_eq!(attempts.last().unwrap().state.as_str(), "success", "{be}: staleness is data, not a failure");
    assert_eq!(summary["stale"], serde_json::json!(["beta"]), "{be}: {summary}");
    assert_eq!(summary["out_of_season"], serde_json::json!(["gamma"]), "{be}: {summary}");
    assert_eq!(summary["alerts"]["recorded"], 1, "{be}: {summary}");

    // The same date again (a re-run, as a retry or another daemon would record it): no e-mail.
    let err = env.ok(&["run", "bronze", "--date", &ds]);
    assert!(!err.contains("e-mailed"), "{be}: {err}");
    assert_eq!(freshness_mails(&smtp).len(), 1, "{be}: a second e-mail for beta");
    let alerts = store.list_alerts(None, 50).await.unwrap();
    let fresh: Vec<&str> = alerts.iter().filter(|a| a.kind == "freshness").map(|a| a.dedup_key.as_str()).collect();
    assert_eq!(fresh, [format!("freshness:beta:{ds}")], "{be}");
    let again = store.list_attempts(run.id, "freshness").await.unwrap().last().unwrap().output.clone().unwrap();
    assert_eq!(
        (&again["stale"], &again["alerts"]["recorded_before"]),
        (&serde_json::json!(["beta"]), &serde_json::json!(1))
    );

    // A date three weeks back: alpha and beta had not delivered yet (delta, without a profile, was
    // not known yet), so they were stale then; but catching up mails nothing.
    let old = days(21).to_string();
    env.ok(&["run", "bronze", "--date", &old]);
    assert_eq!(freshness_mails(&smtp).len(), 1, "{be}: an old date was mailed");
    let old_run = store
        .list_runs(&tmctl::store::RunFilter { dag_id: Some("bronze"), state: None, limit: 10 })
        .await
        .unwrap()
        .into_iter()
        .find(|r| r.ds == days(21))
        .unwrap();
    let old_summary =
        store.list_attempts(old_run.id, "freshness").await.unwrap().last().unwrap().output.clone().unwrap();
    assert!(old_summary["alerts"]["mail"].as_str().unwrap().starts_with("held: "), "{be}: {old_summary}");
    assert_eq!(old_summary["stale"], serde_json::json!(["alpha", "beta"]), "{be}: {old_summary}");

    // The quality page (a viewer's session) shows the same check as of today.
    assert_eq!(store.count_pending_alerts(None).await.unwrap(), 0, "{be}: nothing left for a daemon to mail");
    let (code, _, err) = env.tmctl(&["users", "add", "vera", "--role", "viewer"], "vera-password\n");
    assert_eq!(code, 0, "{be}: {err}");
    let daemon = ServeProcess::spawn(env.command(), env.home.path().join("serve.log"));
    let session = login(&daemon.url, "vera", "vera-password").await;
    let html = get(&daemon.url, "/lakehouse/quality", &session).await;
    let rows = freshness_rows(&html);
    assert_eq!(rows.keys().collect::<Vec<_>>(), ["alpha", "beta", "delta", "gamma"], "{be}\n{html}");
    let status = |c: &str| rows[c].last().cloned().unwrap();
    assert_eq!(status("beta"), ("bad".to_string(), "stale".to_string()), "{be}");
    assert_eq!(status("alpha"), ("good".to_string(), "fresh".to_string()), "{be}");
    assert_eq!(status("gamma"), (String::new(), "out of season".to_string()), "{be}");
    assert_eq!(rows["beta"][2].1, days(5).to_string(), "{be}: last landed");
    assert_eq!(rows["beta"][3].1, "3 days", "{be}: cadence");
    assert_eq!(rows["beta"][5], ("num".to_string(), "5".to_string()), "{be}: age");
    assert_eq!(rows["delta"][1].1, "delta (no profile)", "{be}");
    assert!(html.contains("data-figure=\"stale_courses\">1<"), "{be}");
    // The course filter narrows the table to that course.
    let html = get(&daemon.url, "/lakehouse/quality?course=alpha", &session).await;
    assert_eq!(freshness_rows(&html).keys().collect::<Vec<_>>(), ["alpha"], "{be}");

    // The same check from the API (a viewer may read it) and the CLI, as of today and of a day
    // three weeks back (later deliveries do not count then).
    let api = |query: String| {
        let (url, session) = (daemon.url.clone(), session.clone());
        async move {
            let resp = http()
                .get(format!("{url}/api/v1/courses/freshness{query}"))
                .header(reqwest::header::COOKIE, session)
                .send()
                .await
                .expect("GET freshness");
            (resp.status().as_u16(), resp.json::<serde_json::Value>().await.unwrap_or_default())
        }
    };
    let statuses = |v: &serde_json::Value| -> BTreeMap<String, String> {
        v["courses"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| (c["course_id"].as_str().unwrap().to_string(), c["status"].as_str().unwrap().to_string()))
            .collect()
    };
    let (code, now) = api(String::new()).await;
    assert_eq!(code, 200, "{be}: {now}");
    let expected: BTreeMap<String, String> =
        [("alpha", "fresh"), ("beta", "stale"), ("delta", "fresh"), ("gamma", "out_of_season")]
            .map(|(c, s)| (c.to_string(), s.to_string()))
            .into();
    assert_eq!(statuses(&now), expected, "{be}: {now}");
    let (_, then) = api(format!("?as_of={old}")).await;
    assert_eq!(statuses(&then).get("alpha").map(String::as_str), Some("stale"), "{be}: {then}");
    assert_eq!(api("?as_of=yesterday".into()).await.0, 400, "{be}");
    let (code, one) = api("?course=beta".into()).await;
    assert_eq!((code, one["courses"][0]["age_days"].as_i64()), (200, Some(5)), "{be}: {one}");
    let (code, out, err) = env.tmctl(&["courses", "freshness", "--as-of", &ds, "--json"], "");
    assert_eq!(code, 0, "{be}: {err}");
    let cli: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(statuses(&cli), expected, "{be}: {cli}");
    let (code, text, err) = env.tmctl(&["courses", "freshness", "--as-of", &ds], "");
    assert_eq!(code, 0, "{be}: {err}");
    assert!(text.contains(&format!("as of {ds}: 1 of 4 course(s) stale")), "{be}: {text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_course_is_mailed_once_a_day_and_shown_on_sqlite() {
    stale_course_is_mailed_once_and_shown(common::sqlite_db()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_course_is_mailed_once_a_day_and_shown_on_postgres() {
    stale_course_is_mailed_once_and_shown(common::postgres_db().await).await;
}
