//! The web UI in a real browser: headless Chromium (through chromedriver, see
//! `common/browser.rs`) drives a `tmctl serve` child process on a free port, whose home holds a
//! small lakehouse built by `tmctl demo`. Every page visited is checked for HTTP status, browser
//! console errors (JS exceptions, failed loads) and error text, and is saved as a screenshot under
//! `target/ui-screenshots/` (kept by CI as artifacts).
//!
//! Needs `chromium` and `chromedriver` (`apt-get install -y chromium chromium-driver`); without
//! them the test fails saying so.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::browser::Browser;
use common::serve::ServeProcess;
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_tmctl");
const TOKEN: &str = "ui-test-token-0123456789";

/// A three-task DAG without a schedule, with one param (so the trigger form has a field).
const UI_DAG: &str = r#"
id = "ui_demo"
description = "browser test: start -> say -> finish"
timezone = "UTC"
max_active_runs = 4

[params]
greeting = { type = "string", default = "hello", description = "printed by the say task" }

[[task]]
id = "start"
kind = "noop"

[[task]]
id = "say"
kind = "command"
depends_on = ["start"]
program = "/bin/sh"
args = ["-c", "echo \"$0 from the browser test for {{ ds }}\"", "{{ params.greeting }}"]

[[task]]
id = "finish"
kind = "noop"
depends_on = ["say"]
"#;

/// A home (state DB, buckets) and a DAG directory.
struct Env {
    home: tempfile::TempDir,
    dags: PathBuf,
}

impl Env {
    fn new() -> Env {
        let home = tempfile::tempdir().expect("temp dir");
        let dags = home.path().join("dags");
        std::fs::create_dir_all(&dags).expect("dags dir");
        std::fs::write(dags.join("ui_demo.toml"), UI_DAG).expect("write DAG");
        Env { home, dags }
    }

    fn command(&self, dags: &Path) -> Command {
        let mut c = Command::new(BIN);
        c.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", self.home.path())
            .env("TM_HOME", self.home.path())
            .env("TM_DAGS_DIR", dags)
            .env("TM_API_TOKEN", TOKEN)
            .env("TM_DAEMON_LEASE", "3s")
            .env("TM_SHUTDOWN_GRACE", "2s")
            .env("TM_LOG", "info")
            .env("NO_COLOR", "1");
        c
    }

    /// `tmctl demo` with the repository's lakehouse DAGs: 2 courses × 2 days × 20 rounds through
    /// bronze, silver and gold, so the lakehouse pages have gold tables to show.
    fn demo(&self) {
        let repo_dags = Path::new(env!("CARGO_MANIFEST_DIR")).join("dags");
        let out = self
            .command(&repo_dags)
            .args(["demo", "--days", "2", "--rounds", "20", "--courses", "2"])
            .output()
            .expect("run tmctl demo");
        assert!(
            out.status.success(),
            "tmctl demo failed\nstdout:\n{}\nstderr:\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn serve(&self) -> Daemon {
        ServeProcess::spawn(self.command(&self.dags), self.home.path().join("serve.log"))
    }
}

type Daemon = ServeProcess;

trait At {
    fn at(&self, path: &str) -> String;
}

impl At for Daemon {
    fn at(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }
}

/// Plain HTTP checks next to the browser, with the config admin's token (every page needs a login).
fn http() -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(reqwest::header::AUTHORIZATION, format!("Bearer {TOKEN}").parse().expect("header"));
    reqwest::Client::builder()
        .default_headers(headers)
        .timeout(Duration::from_secs(20))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("http client")
}

async fn get_json(url: &str) -> Value {
    let r = http().get(url).send().await.unwrap_or_else(|e| panic!("GET {url}: {e}"));
    assert!(r.status().is_success(), "GET {url}: {}", r.status());
    r.json().await.unwrap_or_else(|e| panic!("GET {url}: not JSON: {e}"))
}

/// How often `eventually` polls.
const POLL: Duration = Duration::from_millis(200);

/// The browser's console errors, except the favicon request Chromium makes by itself (the UI
/// ships no favicon).
async fn console_errors(b: &Browser) -> Vec<String> {
    b.console_errors().await.into_iter().filter(|e| !e.contains("/favicon.ico")).collect()
}

/// Texts that mean a page failed even if it answered 200.
const ERROR_MARKERS: &[&str] = &["template error", "internal server error", "panicked", "stack backtrace"];

/// The checks every page gets once the browser shows it: no console errors (JS exceptions,
/// `console.error`, failed loads of scripts, styles or images), no error paragraph of
/// `error.html`, no error text; then a full-page screenshot named `shot`.
async fn check_page(b: &Browser, d: &Daemon, shot: &str) {
    let url = b.current_url().await;
    let errors = console_errors(b).await;
    assert!(errors.is_empty(), "{url}: browser console errors:\n{}\n--- daemon log:\n{}", errors.join("\n"), d.log());
    let text = b.body_text().await;
    let lower = text.to_lowercase();
    for m in ERROR_MARKERS {
        assert!(!lower.contains(m), "{url}: page shows `{m}`:\n{text}");
    }
    if let Some(e) = b.try_find("main p.error").await {
        panic!("{url}: page shows an error: {}", b.text(&e).await);
    }
    let title = b.title().await;
    assert!(title.ends_with("· tmctl"), "{url}: unexpected title {title:?}");
    let path = b.full_page_screenshot(shot).await;
    let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    assert!(size > 1000, "{}: screenshot is empty", path.display());
    eprintln!("screenshot {}", path.display());
}

/// Loads `path` in the browser after checking over plain HTTP that it answers 200 (the browser
/// does not report status codes); then [`check_page`].
async fn visit(b: &Browser, d: &Daemon, path: &str, shot: &str) {
    let status = http().get(d.at(path)).send().await.unwrap_or_else(|e| panic!("GET {path}: {e}")).status();
    assert_eq!(status, reqwest::StatusCode::OK, "GET {path}\n--- daemon log:\n{}", d.log());
    b.goto(&d.at(path)).await;
    check_page(b, d, shot).await;
}

/// Submits the form matching `form_css` by clicking its submit button (as a user would).
async fn submit(b: &Browser, form_css: &str) {
    let button = b.find(&format!("{form_css} button[type=submit], {form_css} input[type=submit]")).await;
    b.click(&button).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ui_in_chromium_login_trigger_grid_log_clear_lakehouse() {
    // Fail first (and clearly) if the browser is missing, before building the lakehouse.
    let b = Browser::start().await;
    let env = Env::new();
    env.demo();
    let d = env.serve();
    let health = get_json(&d.at("/health")).await;
    assert_eq!(health["status"], "ok", "{health}");

    // ---- log in ---------------------------------------------------------------------------------
    // Anonymous: a page sends the browser to the login form, whose header offers a login link.
    b.goto(&d.at("/dags/ui_demo")).await;
    common::eventually(POLL, Duration::from_secs(10), "the redirect to the login page", || async {
        b.current_url().await.contains("/login?next=%2Fdags%2Fui_demo").then_some(())
    })
    .await;
    visit(&b, &d, "/login", "01-login").await;
    assert!(b.try_find("header a[href='/login']").await.is_some(), "anonymous header has no login link");

    // A wrong password is refused with the form shown again (and no session).
    let user = b.find("form[action='/login'] input[name=username]").await;
    b.send_keys(&user, "admin").await;
    let pass = b.find("form[action='/login'] input[name=password]").await;
    b.send_keys(&pass, "not-the-token").await;
    submit(&b, "form[action='/login']").await;
    let err = b.wait_for("main p.error", Duration::from_secs(5)).await;
    assert!(b.text(&err).await.contains("Wrong user name or password"), "{}", b.body_text().await);
    assert!(console_errors(&b).await.iter().all(|e| e.contains("401")), "only the 401 itself may be logged");
    b.screenshot("02-login-refused").await;

    // The right one (the API token, as no password hash is configured) logs in and goes back to
    // where `next` says.
    b.goto(&d.at("/login?next=/health")).await;
    let user = b.find("form[action='/login'] input[name=username]").await;
    b.send_keys(&user, "admin").await;
    let pass = b.find("form[action='/login'] input[name=password]").await;
    b.send_keys(&pass, TOKEN).await;
    submit(&b, "form[action='/login']").await;
    // The URL changes before the new document is there: wait for both.
    common::eventually(POLL, Duration::from_secs(10), "the redirect after login to /health", || async {
        (b.current_url().await.ends_with("/health") && b.source().await.contains("\"status\":\"ok\"")).then_some(())
    })
    .await;

    // Logged in: the header names the user and offers a logout form with the CSRF token.
    b.goto(&d.at("/login")).await;
    let who = b.find("header .who").await;
    assert!(b.text(&who).await.contains("admin"), "header does not name the user: {}", b.text(&who).await);
    let csrf = b.find("header form[action='/logout'] input[name=csrf]").await;
    assert_eq!(b.attr(&csrf, "value").await.map(|v| v.len()), Some(64), "logout form has no CSRF token");
    b.console_errors().await;
    check_page(&b, &d, "03-logged-in").await;
    assert!(b.try_find("header a[href='/admin/audit']").await.is_some(), "the admin has the audit link");
    // The users page (no users yet): the admin's form to add one.
    assert!(b.try_find("header a[href='/admin/users']").await.is_some(), "the admin has the users link");
    visit(&b, &d, "/admin/users", "03b-admin-users").await;
    let add = "main form[action='/admin/users/add'] button[type=submit]";
    assert!(b.try_find(add).await.is_some(), "the admin has no add-user button");

    // Static assets are served from the binary.
    for asset in ["/static/app.css", "/static/app.js"] {
        let r = http().get(d.at(asset)).send().await.expect("asset");
        assert_eq!(r.status(), reqwest::StatusCode::OK, "{asset}");
    }

    // ---- DAG list → grid → trigger form ---------------------------------------------------------
    visit(&b, &d, "/", "04-dag-list").await;
    let link = b.find("main a[href='/dags/ui_demo']").await;
    b.click(&link).await;
    common::eventually(POLL, Duration::from_secs(10), "the grid page", || async {
        b.current_url().await.ends_with("/dags/ui_demo").then_some(())
    })
    .await;
    check_page(&b, &d, "05-grid-empty").await;
    let trigger = b.find("main a[href='/dags/ui_demo/trigger']").await;
    b.click(&trigger).await;
    let form = "form[action='/dags/ui_demo/trigger']";
    b.wait_for(form, Duration::from_secs(10)).await;
    check_page(&b, &d, "06-trigger-form").await;
    // The form is generated from the DAG's params: the greeting field holds its default.
    let greeting = b.find(&format!("{form} input[name='param.greeting']")).await;
    assert_eq!(b.attr(&greeting, "value").await.as_deref(), Some("hello"));
    b.clear(&greeting).await;
    b.send_keys(&greeting, "hi from chromium").await;
    submit(&b, form).await;

    // ---- the run succeeds -----------------------------------------------------------------------
    // The form redirects to the new run's page.
    let run_pk: i64 = common::eventually(POLL, Duration::from_secs(10), "the redirect to the run", || async {
        let url = b.current_url().await;
        url.rsplit_once("/runs/").and_then(|(_, pk)| pk.parse().ok())
    })
    .await;
    common::eventually(POLL, Duration::from_secs(60), "the triggered run to succeed", || async {
        b.goto(&d.at(&format!("/runs/{run_pk}"))).await;
        let state = b.find("main h1 .state").await;
        let s = b.text(&state).await;
        assert_ne!(s, "failed", "the triggered run failed:\n{}\n--- daemon log:\n{}", b.body_text().await, d.log());
        (s == "success").then_some(())
    })
    .await;
    check_page(&b, &d, "07-run-detail").await;
    assert!(b.try_find("main svg.gantt").await.is_some(), "run page has no gantt chart");

    // The grid shows the run's three tasks as success squares linking to their tries.
    visit(&b, &d, "/dags/ui_demo", "08-grid-success").await;
    let squares = b.find_all(&format!("main table.grid a.sq.success[href^='/runs/{run_pk}/tasks/']")).await;
    assert_eq!(squares.len(), 3, "grid: expected 3 success squares for run {run_pk}:\n{}", b.source().await);
    assert!(b.try_find(&format!("main table.grid a[href='/runs/{run_pk}'] .bar.success")).await.is_some());

    // ---- a task's log -----------------------------------------------------------------------------
    let say = b.find(&format!("main table.grid a.sq[href='/runs/{run_pk}/tasks/say']")).await;
    b.click(&say).await;
    let log = b.wait_for("main pre.log", Duration::from_secs(10)).await;
    let text = b.text(&log).await;
    assert!(text.contains("hi from chromium from the browser test"), "log of `say` lacks the param's value:\n{text}");
    check_page(&b, &d, "09-task-log").await;

    // ---- clear the task and its downstream; the daemon runs them again --------------------------
    let clear_form = format!("form[action='/runs/{run_pk}/tasks/say/clear']");
    let downstream = b.find(&format!("{clear_form} input[name=downstream]")).await;
    b.click(&downstream).await;
    submit(&b, &clear_form).await;
    common::eventually(POLL, Duration::from_secs(10), "the redirect after clear", || async {
        b.current_url().await.ends_with(&format!("/runs/{run_pk}")).then_some(())
    })
    .await;
    let tries = |task: &'static str| {
        let url = d.at(&format!("/api/v1/runs/{run_pk}/tasks/{task}"));
        async move { get_json(&url).await["tries"].as_array().map(|a| a.len()).unwrap_or(0) }
    };
    common::eventually(POLL, Duration::from_secs(60), "the cleared tasks to run again and succeed", || async {
        let run = get_json(&d.at(&format!("/api/v1/runs/{run_pk}"))).await;
        let state = run["state"].as_str().unwrap_or_default().to_string();
        (state == "success" && tries("say").await == 2 && tries("finish").await == 2).then_some(())
    })
    .await;
    assert_eq!(tries("start").await, 1, "clear touched the upstream task");
    visit(&b, &d, &format!("/runs/{run_pk}/tasks/say"), "10-task-after-clear").await;
    let rows = b.find_all("main table.tries tbody tr").await;
    assert_eq!(rows.len(), 2, "task page after clear should list two tries");
    assert!(b.text(&b.find("main pre.log").await).await.contains("hi from chromium"), "log of try 2");

    // ---- the other run views ----------------------------------------------------------------------
    visit(&b, &d, &format!("/dags/ui_demo/graph?run={run_pk}"), "11-graph").await;
    assert_eq!(b.find_all("main svg.graph g.node.success").await.len(), 3, "graph: three success nodes");
    visit(&b, &d, "/backfills", "12-backfills").await;
    visit(&b, &d, "/admin/audit", "12b-audit").await;
    let audit = b.body_text().await;
    assert!(audit.contains("trigger") && audit.contains("clear+downstream"), "audit page:\n{audit}");
    visit(&b, &d, "/ingestion", "13-ingestion").await;
    assert!(b.body_text().await.contains("accepted"), "ingestion page lists the demo's accepted files");

    // ---- pause and unpause from the DAG list ----------------------------------------------------
    b.goto(&d.at("/")).await;
    submit(&b, "main form[action='/dags/ui_demo/pause']").await;
    b.wait_for("main form[action='/dags/ui_demo/unpause']", Duration::from_secs(10)).await;
    assert_eq!(get_json(&d.at("/api/v1/dags/ui_demo")).await["paused"], true);
    check_page(&b, &d, "13b-dag-list-paused").await;
    submit(&b, "main form[action='/dags/ui_demo/unpause']").await;
    b.wait_for("main form[action='/dags/ui_demo/pause']", Duration::from_secs(10)).await;
    assert_eq!(get_json(&d.at("/api/v1/dags/ui_demo")).await["paused"], false);

    // ---- lakehouse pages (from the demo's gold tables) -------------------------------------------
    let pages = ["overview", "course", "quality", "pace", "rounds", "validation", "topology", "devices", "tables"];
    for (i, page) in pages.iter().enumerate() {
        let path = format!("/lakehouse/{page}");
        visit(&b, &d, &path, &format!("{:02}-lakehouse-{page}", 14 + i)).await;
        assert!(b.try_find("main .nodata").await.is_none(), "{path} says there is no data:\n{}", b.body_text().await);
        let charts_or_tables = b.find_all("main svg, main table").await.len();
        assert!(charts_or_tables > 0, "{path} shows neither a chart nor a table");
    }
    // The course filter: pick the second option (a course) and submit.
    b.goto(&d.at("/lakehouse/pace")).await;
    let course = b
        .execute(
            "var s = document.querySelector('main form.filter select[name=course]'); \
             s.selectedIndex = 1; return s.value;",
            vec![],
        )
        .await
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(!course.is_empty() && course != "all", "course filter has no course to pick");
    submit(&b, "main form.filter").await;
    let shown = b.wait_for("main .course-filter", Duration::from_secs(10)).await;
    assert_eq!(b.text(&shown).await, course);
    check_page(&b, &d, "23-lakehouse-pace-one-course").await;

    // The course's own pages, with the numbers `tmctl query` gives for the same gold tables: the
    // map has one point per located section, the weekday × hour heatmap one cell per slot.
    let q = |sql: String| common::query_rows(env.home.path(), &sql);
    let located = q(format!(
        "SELECT count(*) AS n FROM gold.course_section_summary WHERE course_id = '{course}' AND avg_latitude IS NOT NULL"
    ))[0]["n"]
        .as_i64()
        .unwrap();
    visit(&b, &d, &format!("/lakehouse/topology?course={course}"), "24-lakehouse-topology-one-course").await;
    let points = b.find_all("main svg circle.map-point").await.len() as i64;
    assert_eq!(points, located, "map points");
    visit(&b, &d, &format!("/lakehouse/course?course={course}"), "25-lakehouse-course").await;
    let rounds =
        q(format!("SELECT count(*) AS n FROM gold.fact_rounds WHERE course_id = '{course}'"))[0]["n"].as_i64().unwrap();
    assert_eq!(b.text(&b.find("main [data-figure=rounds]").await).await, rounds.to_string());
    let cells = b.find_all("main section#patterns svg rect.lh-cell").await.len();
    assert_eq!(cells % 7, 0, "seven weekday rows");
    assert!(cells >= 7, "the play-patterns heatmap has cells");
    visit(&b, &d, &format!("/lakehouse/validation?course={course}"), "26-lakehouse-validation-one-course").await;
    assert_eq!(b.text(&b.find("main [data-figure=rounds]").await).await, rounds.to_string());
    // A date range typed into the form stays on the next page a tab leads to.
    let first = q("SELECT CAST(min(round_date_local) AS VARCHAR) AS d FROM gold.fact_rounds".into())[0]["d"]
        .as_str()
        .unwrap()
        .to_string();
    b.execute(
        "document.querySelector('main form.filter input[name=from]').value = arguments[0]; \
         document.querySelector('main form.filter input[name=to]').value = arguments[0];",
        vec![serde_json::json!(first)],
    )
    .await;
    submit(&b, "main form.filter").await;
    let shown = b.wait_for("main .date-filter", Duration::from_secs(10)).await;
    assert!(b.text(&shown).await.contains(&first));
    b.click(&b.find("nav.subnav a[href^='/lakehouse/rounds']").await).await;
    let shown = b.wait_for("main .date-filter", Duration::from_secs(10)).await;
    assert!(b.text(&shown).await.contains(&first), "the rounds tab keeps the date range");
    assert!(b.current_url().await.contains(&format!("from={first}")));
    check_page(&b, &d, "27-lakehouse-rounds-dated").await;

    // ---- log out --------------------------------------------------------------------------------
    let logout = b.find("header form[action='/logout'] button[type=submit]").await;
    b.click(&logout).await;
    // The logout lands on the login page (only a logged-out header links to it).
    b.wait_for("header a[href='/login']", Duration::from_secs(10)).await;
    b.goto(&d.at("/login")).await;
    b.wait_for("header a[href='/login']", Duration::from_secs(5)).await;
    assert!(b.try_find("header form[action='/logout']").await.is_none(), "still logged in after logout");

    // ---- roles: a viewer sees no action buttons, an operator sees them (but no admin page) -------
    for (user, role) in [("vera", "viewer"), ("otto", "operator")] {
        let mut add = env.command(&env.dags);
        add.args(["users", "add", user, "--role", role]).stdin(std::process::Stdio::piped());
        let mut child = add.stdout(std::process::Stdio::null()).spawn().expect("tmctl users add");
        std::io::Write::write_all(&mut child.stdin.take().expect("stdin"), b"a-long-password\n").expect("password");
        assert!(child.wait().expect("users add").success(), "tmctl users add {user}");
    }
    let log_in_as = |user: &'static str| {
        let b = &b;
        let d = &d;
        async move {
            b.goto(&d.at("/login?next=/")).await;
            let name = b.find("form[action='/login'] input[name=username]").await;
            b.send_keys(&name, user).await;
            let pass = b.find("form[action='/login'] input[name=password]").await;
            b.send_keys(&pass, "a-long-password").await;
            submit(b, "form[action='/login']").await;
            b.wait_for("header form[action='/logout']", Duration::from_secs(10)).await;
        }
    };
    log_in_as("vera").await;
    b.goto(&d.at("/")).await;
    let who = b.text(&b.find("header .who").await).await;
    assert!(who.contains("vera") && who.contains("viewer"), "header: {who}");
    assert!(b.find_all("main form[action$='/pause'], main form[action$='/unpause']").await.is_empty(), "viewer: pause");
    assert!(b.try_find("main a[href='/dags/ui_demo/trigger']").await.is_none(), "viewer: trigger link");
    assert!(b.try_find("header a[href='/admin/users']").await.is_none(), "viewer: users link");
    b.goto(&d.at("/admin/users")).await;
    assert!(b.find_all("main form[action^='/admin/']").await.is_empty(), "viewer: user management forms");
    b.console_errors().await; // (the 403 of that page)
    b.goto(&d.at(&format!("/runs/{run_pk}/tasks/say"))).await;
    assert!(b.try_find("form[action$='/clear']").await.is_none(), "viewer: clear button");
    assert!(b.try_find("form[action$='/mark']").await.is_none(), "viewer: mark buttons");
    check_page(&b, &d, "21-viewer-task").await;
    b.click(&b.find("header form[action='/logout'] button[type=submit]").await).await;
    b.wait_for("header a[href='/login']", Duration::from_secs(5)).await;

    log_in_as("otto").await;
    b.goto(&d.at("/")).await;
    assert!(b.try_find("main form[action='/dags/ui_demo/pause']").await.is_some(), "operator: pause button");
    assert!(b.try_find("main a[href='/dags/ui_demo/trigger']").await.is_some(), "operator: trigger link");
    assert!(b.try_find("header a[href='/admin/audit']").await.is_none(), "operator: no audit link");
    assert!(b.try_find("header a[href='/admin/users']").await.is_none(), "operator: no users link");
    b.goto(&d.at("/admin/users")).await;
    assert!(b.find_all("main form[action^='/admin/']").await.is_empty(), "operator: user management forms");
    b.console_errors().await; // (the 403 of that page)
    b.goto(&d.at(&format!("/runs/{run_pk}/tasks/say"))).await;
    assert!(b.try_find("form[action$='/clear'] button").await.is_some(), "operator: clear button");
    assert_eq!(b.find_all("form[action$='/mark'] button").await.len(), 2, "operator: mark buttons");
    check_page(&b, &d, "22-operator-task").await;
}
