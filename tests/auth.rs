//! Security of `tmctl serve` (issue 12, items 1-4) against real daemon processes over real HTTP,
//! on SQLite and PostgreSQL: users, roles and tokens; every route behind a login (and
//! `web.anonymous_read`); the role check and the audit log; the Host check; session rules; login
//! throttling and `next` after login.

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use common::serve::ServeProcess;
use reqwest::StatusCode;
use reqwest::header::{COOKIE, HOST, LOCATION, RETRY_AFTER, SET_COOKIE};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_tmctl");
const TOKEN: &str = "auth-test-token-0123456789";

const DAG: &str = "id = \"hello\"\n[[task]]\nid = \"a\"\nkind = \"noop\"\n";

struct Env {
    home: tempfile::TempDir,
    dags: PathBuf,
    db: common::TestDb,
    extra: Vec<(String, String)>,
}

impl Env {
    fn new(db: common::TestDb) -> Env {
        let home = tempfile::tempdir().expect("temp dir");
        let dags = home.path().join("dags");
        std::fs::create_dir_all(&dags).expect("dags dir");
        std::fs::write(dags.join("hello.toml"), DAG).expect("write DAG");
        Env { home, dags, db, extra: Vec::new() }
    }

    fn env(mut self, key: &str, value: &str) -> Env {
        self.extra.push((key.into(), value.into()));
        self
    }

    fn command(&self) -> Command {
        let mut c = Command::new(BIN);
        c.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", self.home.path())
            .env("USER", "tester")
            .env("TM_HOME", self.home.path())
            .env("TM_DAGS_DIR", &self.dags)
            .env("TM_API_TOKEN", TOKEN)
            .env("TM_SHUTDOWN_GRACE", "1s")
            .env("TM_LOG", "info");
        if self.db.backend == "postgres" {
            c.env("TM_DATABASE_URL", &self.db.url);
        }
        for (k, v) in &self.extra {
            c.env(k, v);
        }
        c
    }

    /// `tmctl ARGS` with `stdin`: exit code, stdout, stderr.
    fn tmctl_in(&self, args: &[&str], stdin: &str) -> (i32, String, String) {
        let mut c = self.command();
        c.args(args);
        common::run_with_stdin(c, stdin)
    }

    #[track_caller]
    fn ok(&self, args: &[&str], stdin: &str) -> String {
        let (code, out, err) = self.tmctl_in(args, stdin);
        assert_eq!(code, 0, "{}: tmctl {args:?} failed\nstdout:\n{out}\nstderr:\n{err}", self.db.backend);
        out
    }

    fn serve(&self) -> ServeProcess {
        let log = self.home.path().join(format!("serve-{}.log", rand_suffix()));
        ServeProcess::spawn(self.command(), log)
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

fn rand_suffix() -> u128 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or_default()
}

/// A client that follows no redirects; cookies are kept by hand.
fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

struct Page {
    status: StatusCode,
    location: String,
    retry_after: Option<String>,
    cookies: BTreeMap<String, String>,
    set_cookie: Vec<String>,
    body: String,
}

async fn page(resp: reqwest::Response) -> Page {
    let status = resp.status();
    let header =
        |name| resp.headers().get(name).map(|v: &reqwest::header::HeaderValue| v.to_str().unwrap().to_string());
    let location = header(LOCATION).unwrap_or_default();
    let retry_after = header(RETRY_AFTER);
    let set_cookie: Vec<String> =
        resp.headers().get_all(SET_COOKIE).iter().map(|v| v.to_str().unwrap().to_string()).collect();
    let cookies = set_cookie
        .iter()
        .filter_map(|c| c.split(';').next()?.split_once('=').map(|(k, v)| (k.to_string(), v.to_string())))
        .collect();
    Page { status, location, retry_after, cookies, set_cookie, body: resp.text().await.unwrap_or_default() }
}

fn csrf_of(html: &str) -> String {
    let at = html.find(r#"name="csrf" value=""#).expect("a csrf input");
    let rest = &html[at + r#"name="csrf" value=""#.len()..];
    rest[..rest.find('"').expect("end of value")].to_string()
}

/// Posts the login form as a browser does (its CSRF cookie included); the answer.
async fn login(base: &str, user: &str, password: &str, next: &str) -> Page {
    let form = page(http().get(format!("{base}/login")).send().await.expect("GET /login")).await;
    assert_eq!(form.status, StatusCode::OK, "GET /login: {}", form.body);
    let token = form.cookies.get("tm_login_csrf").expect("login CSRF cookie").clone();
    let resp = http()
        .post(format!("{base}/login"))
        .header(COOKIE, format!("tm_login_csrf={token}"))
        .form(&[("username", user), ("password", password), ("csrf", &token), ("next", next)])
        .send()
        .await
        .expect("POST /login");
    page(resp).await
}

/// Logs in and returns the session cookie header value.
async fn session(base: &str, user: &str, password: &str) -> String {
    let p = login(base, user, password, "/").await;
    assert_eq!(p.status, StatusCode::SEE_OTHER, "login as {user}: {}", p.body);
    format!("tm_session={}", p.cookies.get("tm_session").expect("session cookie"))
}

/// Waits until the session `cookie` is refused (a redirect to the login page). A session ended
/// by another process (`tmctl users`) may be believed from the daemon's cache for up to
/// `SESSION_CACHE_TTL`; ended through the daemon itself it is refused at once.
async fn session_ends(base: &str, cookie: &str, what: &str) {
    let limit = tmctl::store::SESSION_CACHE_TTL + Duration::from_secs(10);
    common::eventually(Duration::from_millis(100), limit, what, || async {
        let p = get_with(base, "/", Some(cookie)).await;
        (p.status == StatusCode::SEE_OTHER).then_some(())
    })
    .await;
}

/// Waits until `token` gets `status` for `method path` (a change made by another process is
/// seen within `SESSION_CACHE_TTL`), and fails after the TTL and a margin.
async fn answers(base: &str, token: &str, method: reqwest::Method, path: &str, status: StatusCode, be: &str) {
    let limit = tmctl::store::SESSION_CACHE_TTL + Duration::from_secs(10);
    let what = format!("{be}: {method} {path} to answer {status}");
    common::eventually(Duration::from_millis(100), limit, &what, || async {
        let p = api(method.clone(), base, path, Some(token), None).await;
        (p.status == status).then_some(())
    })
    .await;
}

async fn get_with(base: &str, path: &str, cookie: Option<&str>) -> Page {
    let mut req = http().get(format!("{base}{path}"));
    if let Some(c) = cookie {
        req = req.header(COOKIE, c);
    }
    page(req.send().await.expect("GET")).await
}

async fn api(method: reqwest::Method, base: &str, path: &str, token: Option<&str>, body: Option<Value>) -> Page {
    let mut req = http().request(method, format!("{base}{path}"));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    page(req.send().await.expect("API call")).await
}

// ---- item 1: users, roles, tokens ------------------------------------------------------------------

async fn users_roles_and_tokens(db: common::TestDb) {
    let env = Env::new(db);
    let be = env.db.backend;
    env.ok(&["users", "add", "vera", "--role", "viewer"], "vera-password\n");
    env.ok(&["users", "add", "otto", "--role", "operator"], "otto-password\n");
    // Bad input is named: role, duplicate, short password, unknown user.
    let (code, _, err) = env.tmctl_in(&["users", "add", "x", "--role", "root"], "long-enough\n");
    assert_eq!(code, 2, "{be}: {err}");
    assert!(err.contains("role `root` is not one of viewer, operator, admin"), "{be}: {err}");
    let (code, _, err) = env.tmctl_in(&["users", "add", "vera", "--role", "viewer"], "another-one\n");
    assert_eq!(code, 2, "{be}: {err}");
    assert!(err.contains("user `vera` exists already"), "{be}: {err}");
    let (code, _, err) = env.tmctl_in(&["users", "add", "shorty"], "short\n");
    assert!(code == 2 && err.contains("at least 8 characters"), "{be}: {err}");
    let (code, _, err) = env.tmctl_in(&["users", "set-role", "nobody", "--role", "admin"], "");
    assert!(code == 2 && err.contains("no user `nobody`"), "{be}: {err}");

    let list: Value = serde_json::from_str(&env.ok(&["users", "list", "--json"], "")).expect("users JSON");
    let roles: Vec<(String, String)> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|u| (u["username"].as_str().unwrap().to_string(), u["role"].as_str().unwrap().to_string()))
        .collect();
    assert_eq!(roles, [("otto".to_string(), "operator".to_string()), ("vera".into(), "viewer".into())], "{be}");
    assert!(!list.to_string().contains("argon2"), "{be}: the list shows no hashes");

    let viewer_token = env.ok(&["tokens", "create", "--user", "vera", "--name", "ci"], "").trim().to_string();
    let operator_token =
        env.ok(&["tokens", "create", "--user", "otto", "--name", "deploy", "--expires", "90d"], "").trim().to_string();
    assert!(viewer_token.len() > 40 && viewer_token != operator_token, "{be}");
    let (code, _, err) = env.tmctl_in(&["tokens", "create", "--user", "vera", "--name", "ci"], "");
    assert!(code == 2 && err.contains("has a token named `ci` already"), "{be}: {err}");
    let (code, _, err) = env.tmctl_in(&["tokens", "create", "--user", "vera", "--name", "x", "--expires", "soon"], "");
    assert!(code == 2 && err.contains("--expires"), "{be}: {err}");
    let tokens: Value = serde_json::from_str(&env.ok(&["tokens", "list", "--json"], "")).expect("tokens JSON");
    assert_eq!(tokens.as_array().unwrap().len(), 2, "{be}: {tokens}");
    assert!(tokens[0]["expires_at"].is_string() && tokens[1]["expires_at"].is_null(), "{be}: {tokens}");
    assert!(!tokens.to_string().contains(&viewer_token), "{be}: tokens are never shown again");

    let d = env.serve();
    let base = d.url.clone();
    let (get, post) = (reqwest::Method::GET, reqwest::Method::POST);
    let trigger = json!({"logical_date": "2025-03-01"});
    // The viewer's token reads, but may not trigger: 403 naming the role.
    let dags = api(reqwest::Method::GET, &base, "/api/v1/dags", Some(&viewer_token), None).await;
    assert_eq!(dags.status, StatusCode::OK, "{be}: {}", dags.body);
    let refused = api(post.clone(), &base, "/api/v1/dags/hello/runs", Some(&viewer_token), Some(trigger.clone())).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{be}: {}", refused.body);
    assert!(refused.body.contains("needs the operator role"), "{be}: {}", refused.body);
    // The operator's token triggers; the config admin's token still works.
    let created =
        api(post.clone(), &base, "/api/v1/dags/hello/runs", Some(&operator_token), Some(trigger.clone())).await;
    assert_eq!(created.status, StatusCode::CREATED, "{be}: {}", created.body);
    let audit = api(reqwest::Method::GET, &base, "/api/v1/audit", Some(TOKEN), None).await;
    assert_eq!(audit.status, StatusCode::OK, "{be}: {}", audit.body);
    // The operator may not read the audit log.
    let audit_denied = api(reqwest::Method::GET, &base, "/api/v1/audit", Some(&operator_token), None).await;
    assert_eq!(audit_denied.status, StatusCode::FORBIDDEN, "{be}");
    // Users log in with their passwords.
    let otto = session(&base, "otto", "otto-password").await;
    assert_eq!(get_with(&base, "/", Some(&otto)).await.status, StatusCode::OK, "{be}");
    // A token revoked with the CLI (another process) is refused within the daemon's credential
    // cache TTL (through the daemon itself, at once: users_page_manages_users_and_tokens).
    env.ok(&["tokens", "revoke", "--user", "vera", "--name", "ci"], "");
    answers(&base, &viewer_token, get.clone(), "/api/v1/dags", StatusCode::UNAUTHORIZED, be).await;
    // A role change takes effect for tokens and ends sessions (within the TTL, from the CLI):
    // pausing a DAG that does not exist is 404 for an operator, 403 for a viewer.
    env.ok(&["users", "set-role", "otto", "--role", "viewer"], "");
    answers(&base, &operator_token, post.clone(), "/api/v1/dags/no-such-dag/pause", StatusCode::FORBIDDEN, be).await;
    let now_viewer = api(post.clone(), &base, "/api/v1/dags/hello/pause", Some(&operator_token), None).await;
    assert_eq!(now_viewer.status, StatusCode::FORBIDDEN, "{be}: {}", now_viewer.body);
    session_ends(&base, &otto, &format!("{be}: the role change ending otto's session")).await;
    // Removing a user removes their tokens.
    env.ok(&["users", "remove", "otto"], "");
    answers(&base, &operator_token, get.clone(), "/api/v1/dags", StatusCode::UNAUTHORIZED, be).await;
    // Admins manage users over the API too; others get 403; bad roles are named.
    let made = json!({"username": "api-made", "password": "password-1", "role": "operator"});
    let refused = api(post.clone(), &base, "/api/v1/users", Some(&operator_token), Some(made.clone())).await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED, "{be}: the removed user's token");
    let created = api(post.clone(), &base, "/api/v1/users", Some(TOKEN), Some(made)).await;
    assert_eq!(created.status, StatusCode::CREATED, "{be}: {}", created.body);
    let bad = api(post.clone(), &base, "/api/v1/users/api-made/role", Some(TOKEN), Some(json!({"role": "root"}))).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST, "{be}");
    assert!(bad.body.contains("role `root` is not one of viewer, operator, admin"), "{be}: {}", bad.body);
    let role = json!({"role": "viewer"});
    let changed = api(post.clone(), &base, "/api/v1/users/api-made/role", Some(TOKEN), Some(role)).await;
    assert_eq!(changed.status, StatusCode::OK, "{be}: {}", changed.body);
    let api_made = session(&base, "api-made", "password-1").await;
    let listed = http().get(format!("{base}/api/v1/users")).header(COOKIE, &api_made).send().await.unwrap();
    assert_eq!(listed.status(), StatusCode::FORBIDDEN, "{be}: viewers may not list users");
    let listed = api(get.clone(), &base, "/api/v1/users", Some(TOKEN), None).await;
    assert!(listed.body.contains("\"api-made\"") && !listed.body.contains("argon2"), "{be}: {}", listed.body);
    let gone = api(reqwest::Method::DELETE, &base, "/api/v1/users/api-made", Some(TOKEN), None).await;
    assert_eq!(gone.status, StatusCode::NO_CONTENT, "{be}");
    assert_eq!(get_with(&base, "/", Some(&api_made)).await.status, StatusCode::SEE_OTHER, "{be}: removed, logged out");
    // The CLI's changes are in the audit log too, named after the OS user.
    let store = env.store().await;
    let rows = store.list_audit(None, 100).await.expect("audit log");
    assert!(rows.iter().any(|r| r.actor == "cli:tester" && r.action == "users.add" && r.result == "ok"), "{be}");
    assert!(rows.iter().any(|r| r.action == "users.remove" && r.target.contains("otto")), "{be}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_roles_and_tokens_sqlite() {
    users_roles_and_tokens(common::sqlite_db()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_roles_and_tokens_postgres() {
    users_roles_and_tokens(common::postgres_db().await).await;
}

// ---- item 2: every route behind a login; roles in the UI; the audit log ----------------------------

async fn every_route_needs_a_login(db: common::TestDb) {
    let env = Env::new(db);
    let be = env.db.backend;
    env.ok(&["users", "add", "vera", "--role", "viewer"], "vera-password\n");
    env.ok(&["users", "add", "otto", "--role", "operator"], "otto-password\n");
    let d = env.serve();
    let base = d.url.clone();

    // Anonymous: pages redirect to the login page (keeping where they were going), the API says 401.
    for path in ["/", "/dags/hello", "/backfills", "/ingestion", "/lakehouse/overview", "/admin/audit"] {
        let p = get_with(&base, path, None).await;
        assert_eq!(p.status, StatusCode::SEE_OTHER, "{be}: GET {path} anonymously: {}", p.body);
        assert!(p.location.starts_with("/login?next="), "{be}: GET {path} goes to {}", p.location);
    }
    assert_eq!(get_with(&base, "/dags/hello?x=1", None).await.location, "/login?next=%2Fdags%2Fhello%3Fx%3D1");
    for path in ["/api/v1/dags", "/api/v1/dags/hello", "/api/v1/runs/1", "/api/v1/backfills"] {
        let p = api(reqwest::Method::GET, &base, path, None, None).await;
        assert_eq!(p.status, StatusCode::UNAUTHORIZED, "{be}: GET {path} anonymously: {}", p.body);
    }
    let p =
        api(reqwest::Method::POST, &base, "/api/v1/dags/hello/runs", None, Some(json!({"logical_date": "2025-01-01"})))
            .await;
    assert_eq!(p.status, StatusCode::UNAUTHORIZED, "{be}");
    let p = api(reqwest::Method::GET, &base, "/api/v1/dags", Some("not-a-token"), None).await;
    assert_eq!(p.status, StatusCode::UNAUTHORIZED, "{be}: a wrong token");
    // Open: health, the login page, static assets.
    for path in ["/health", "/login", "/static/app.css", "/static/app.js"] {
        assert_eq!(get_with(&base, path, None).await.status, StatusCode::OK, "{be}: GET {path}");
    }

    // A viewer reads everything but sees no action, and is refused (403) when posting one anyway.
    let vera = session(&base, "vera", "vera-password").await;
    let home = get_with(&base, "/", Some(&vera)).await;
    assert_eq!(home.status, StatusCode::OK, "{be}");
    assert!(home.body.contains("vera") && home.body.contains("viewer"), "{be}: the header names user and role");
    assert!(
        !home.body.contains(">Pause</button>") && !home.body.contains("/trigger\""),
        "{be}: no actions for viewers"
    );
    assert!(!home.body.contains("/admin/audit"), "{be}: no admin link for viewers");
    let csrf = csrf_of(&home.body);
    let posted = http()
        .post(format!("{base}/dags/hello/trigger"))
        .header(COOKIE, &vera)
        .form(&[("csrf", csrf.as_str()), ("logical_date", "2025-03-01")])
        .send()
        .await
        .expect("POST trigger");
    assert_eq!(posted.status(), StatusCode::FORBIDDEN, "{be}: viewer trigger");
    let posted = http()
        .post(format!("{base}/dags/hello/pause"))
        .header(COOKIE, &vera)
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .expect("POST pause");
    assert_eq!(posted.status(), StatusCode::FORBIDDEN, "{be}: viewer pause");
    assert_eq!(get_with(&base, "/admin/audit", Some(&vera)).await.status, StatusCode::FORBIDDEN, "{be}");
    // A session calling the JSON API needs its CSRF token in a header.
    let no_csrf =
        http().post(format!("{base}/api/v1/dags/hello/pause")).header(COOKIE, &vera).send().await.expect("POST pause");
    assert_eq!(no_csrf.status(), StatusCode::FORBIDDEN, "{be}");

    // An operator sees and uses the actions; each is in the audit log with who, what and result.
    let otto = session(&base, "otto", "otto-password").await;
    let home = get_with(&base, "/", Some(&otto)).await;
    assert!(home.body.contains(">Pause</button>"), "{be}: operators get the pause button");
    assert!(!home.body.contains("/admin/audit"), "{be}: no admin link for operators");
    let csrf = csrf_of(&home.body);
    let triggered = http()
        .post(format!("{base}/dags/hello/trigger"))
        .header(COOKIE, &otto)
        .form(&[("csrf", csrf.as_str()), ("logical_date", "2025-03-01")])
        .send()
        .await
        .expect("POST trigger");
    assert_eq!(triggered.status(), StatusCode::SEE_OTHER, "{be}: operator trigger");
    // The same date again while queued or running is a typed conflict (409), not a 400.
    let again = api(
        reqwest::Method::POST,
        &base,
        "/api/v1/dags/hello/runs",
        Some(TOKEN),
        Some(json!({"logical_date": "2025-03-01"})),
    )
    .await;
    assert!(
        again.status == StatusCode::CONFLICT || again.status == StatusCode::CREATED,
        "{be}: {} {}",
        again.status,
        again.body
    );

    let admin = session(&base, "admin", TOKEN).await;
    let audit = get_with(&base, "/admin/audit", Some(&admin)).await;
    assert_eq!(audit.status, StatusCode::OK, "{be}: {}", audit.body);
    assert!(audit.body.contains("otto") && audit.body.contains("trigger"), "{be}: {}", audit.body);
    let store = env.store().await;
    let rows = store.list_audit(None, 100).await.expect("audit log");
    let find = |actor: &str, action: &str| rows.iter().find(|r| r.actor == actor && r.action == action).cloned();
    let ok = find("otto", "trigger").expect("the operator's trigger is audited");
    assert_eq!((ok.target.as_str(), ok.result.as_str()), ("dag hello 2025-03-01", "ok"), "{be}");
    let denied = find("vera", "trigger").expect("the viewer's refused trigger is audited");
    assert!(denied.result.starts_with("forbidden:"), "{be}: {}", denied.result);
    assert!(find("vera", "pause").is_some_and(|r| r.result.starts_with("forbidden")), "{be}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_needs_a_login_sqlite() {
    every_route_needs_a_login(common::sqlite_db()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_needs_a_login_postgres() {
    every_route_needs_a_login(common::postgres_db().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anonymous_read_opens_reads_only() {
    let env = Env::new(common::sqlite_db()).env("TM_WEB_ANONYMOUS_READ", "true");
    let d = env.serve();
    let base = d.url.clone();
    let home = get_with(&base, "/", None).await;
    assert_eq!(home.status, StatusCode::OK);
    assert!(home.body.contains("href=\"/login\""), "anonymous readers are offered the login");
    assert!(!home.body.contains(">Pause</button>"));
    assert_eq!(api(reqwest::Method::GET, &base, "/api/v1/dags", None, None).await.status, StatusCode::OK);
    let post = api(reqwest::Method::POST, &base, "/api/v1/dags/hello/pause", None, None).await;
    assert_eq!(post.status, StatusCode::UNAUTHORIZED);
    let form = http().post(format!("{base}/dags/hello/pause")).form(&[("csrf", "x")]).send().await.unwrap();
    assert_eq!(form.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(get_with(&base, "/admin/audit", None).await.status, StatusCode::FORBIDDEN);
    // A bad value names key and source.
    let (code, _, err) = Env::new(common::sqlite_db()).env("TM_WEB_ANONYMOUS_READ", "maybe").tmctl_in(&["serve"], "");
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("`web.anonymous_read` = \"maybe\" must be true or false"), "{err}");
}

// ---- item 3: Host check, cookie flags, idle timeout ------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_hosts_get_421_and_sessions_follow_the_rules() {
    let env = Env::new(common::sqlite_db())
        .env("TM_WEB_SESSION_IDLE", "2s")
        .env("TM_WEB_PUBLIC_URL", "https://tmctl.example.com");
    let d = env.serve();
    let base = d.url.clone();
    let port = base.rsplit(':').next().unwrap().to_string();
    for (host, want) in [
        ("evil.example", StatusCode::MISDIRECTED_REQUEST),
        ("evil.example:80", StatusCode::MISDIRECTED_REQUEST),
        ("localhost.evil.example", StatusCode::MISDIRECTED_REQUEST),
        ("localhost", StatusCode::OK),
        (&format!("localhost:{port}"), StatusCode::OK),
        (&format!("127.0.0.1:{port}"), StatusCode::OK),
        ("tmctl.example.com", StatusCode::OK),
    ] {
        for path in ["/health", "/api/v1/dags"] {
            let r = http().get(format!("{base}{path}")).header(HOST, host).bearer_auth(TOKEN).send().await.unwrap();
            assert_eq!(r.status(), want, "Host {host} {path}");
        }
    }
    // The public URL is https: cookies are Secure.
    let p = login(&base, "admin", TOKEN, "/").await;
    assert_eq!(p.status, StatusCode::SEE_OTHER);
    let set = p.set_cookie.iter().find(|c| c.starts_with("tm_session=")).expect("session cookie");
    assert!(set.contains("; Secure") && set.contains("HttpOnly") && set.contains("SameSite=Strict"), "{set}");
    assert!(set.contains("Max-Age=43200"), "{set}");
    // Idle for longer than web.session_idle: logged out.
    let cookie = format!("tm_session={}", p.cookies["tm_session"]);
    assert_eq!(get_with(&base, "/", Some(&cookie)).await.status, StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(get_with(&base, "/", Some(&cookie)).await.status, StatusCode::SEE_OTHER, "idle session still valid");

    // A password change ends the user's sessions.
    env.ok(&["users", "add", "ann", "--role", "operator"], "first-password\n");
    let ann = session(&base, "ann", "first-password").await;
    assert_eq!(get_with(&base, "/", Some(&ann)).await.status, StatusCode::OK);
    env.ok(&["users", "set-password", "ann"], "second-password\n");
    session_ends(&base, &ann, "the password change ending ann's session").await;
    assert_eq!(login(&base, "ann", "first-password", "/").await.status, StatusCode::UNAUTHORIZED);
    session(&base, "ann", "second-password").await;

    // Plain http (no public URL; an https base_url only makes e-mail links): no Secure flag, as a
    // browser would drop the cookie. A bad host list is named.
    let (code, _, err) =
        Env::new(common::sqlite_db()).env("TM_WEB_ALLOWED_HOSTS", "http://x.example/").tmctl_in(&["serve"], "");
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("`web.allowed_hosts` entry \"http://x.example/\" is not a host name"), "{err}");
    let plain = Env::new(common::sqlite_db())
        .env("TM_WEB_ALLOWED_HOSTS", "tm.internal, 127.0.0.1")
        .env("TM_WEB_BASE_URL", "https://alerts-link.example.com");
    let d2 = plain.serve();
    let p = login(&d2.url, "admin", TOKEN, "/").await;
    let set = p.set_cookie.iter().find(|c| c.starts_with("tm_session=")).expect("session cookie");
    assert!(!set.contains("Secure"), "{set}");
    let r = http().get(format!("{}/health", d2.url)).header(HOST, "localhost").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::MISDIRECTED_REQUEST, "localhost is not in the explicit list");
    let r = http().get(format!("{}/health", d2.url)).header(HOST, "TM.internal:8080").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
}

// ---- item 4: login throttling, next ----------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn next_stays_on_site_and_wrong_passwords_are_throttled() {
    let env = Env::new(common::sqlite_db());
    let d = env.serve();
    let base = d.url.clone();
    for (next, want) in [
        ("/\t/evil.example/", "/"),
        ("//evil.example/", "/"),
        ("/\\evil.example", "/"),
        ("https://evil.example/", "/"),
        ("/ /evil.example", "/"),
        ("/dags/hello?x=1", "/dags/hello?x=1"),
    ] {
        let p = login(&base, "admin", TOKEN, next).await;
        assert_eq!(p.status, StatusCode::SEE_OTHER, "next={next:?}: {}", p.body);
        assert_eq!(p.location, want, "next={next:?}");
    }
    let form = get_with(&base, "/login?next=%2F%09%2Fevil.example%2F", None).await;
    assert!(form.body.contains(r#"name="next" value="/""#), "the login form drops a bad next");

    // 20 wrong passwords in a row: 5 plain refusals, then 429 with Retry-After.
    let mut statuses = Vec::new();
    let mut retry_after = None;
    for _ in 0..20 {
        let p = login(&base, "admin", "wrong-password", "/").await;
        if p.status == StatusCode::TOO_MANY_REQUESTS {
            retry_after = retry_after.or(p.retry_after.clone());
        }
        statuses.push(p.status.as_u16());
    }
    assert_eq!(&statuses[..6], &[401, 401, 401, 401, 401, 429], "{statuses:?}");
    // (A slow machine may see the first short wait run out once or twice within the 20.)
    assert!(statuses[5..].iter().filter(|s| **s == 401).count() <= 2, "{statuses:?}");
    let secs: u64 = retry_after.expect("Retry-After").parse().expect("seconds");
    assert!((1..=900).contains(&secs), "Retry-After {secs}");
    // While blocked even the right password waits (it is not checked).
    assert_eq!(login(&base, "admin", TOKEN, "/").await.status, StatusCode::TOO_MANY_REQUESTS);
    // Another user name from the same address is blocked by the address count too.
    assert_eq!(login(&base, "someone", "x", "/").await.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(d.log().contains("web login throttled"), "the throttling is logged");
}

// ---- web.public_url ----------------------------------------------------------------------------------

/// The session and login-form cookies are `Secure` exactly when `web.public_url` is https, its
/// host is served when `web.allowed_hosts` is left empty, and `config show` names the setting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_public_url_makes_cookies_secure_and_its_host_allowed() {
    let env = Env::new(common::sqlite_db()).env("TM_WEB_PUBLIC_URL", "https://tm.example.com:8443/");
    let (code, out, err) = env.tmctl_in(&["config", "show", "--json"], "");
    assert_eq!(code, 0, "{err}");
    let shown: Value = serde_json::from_str(&out).expect("config show --json");
    let row = shown.as_array().expect("rows").iter().find(|r| r["key"] == "web.public_url").expect("web.public_url");
    assert_eq!(
        (row["value"].as_str(), row["source"].as_str()),
        (Some("https://tm.example.com:8443"), Some("env TM_WEB_PUBLIC_URL"))
    );
    let base = shown.as_array().unwrap().iter().find(|r| r["key"] == "web.base_url").expect("web.base_url");
    assert_eq!(base["value"], "https://tm.example.com:8443", "alert links follow the public URL");

    let d = env.serve();
    let form = get_with(&d.url, "/login", None).await;
    let set = form.set_cookie.iter().find(|c| c.starts_with("tm_login_csrf=")).expect("login CSRF cookie");
    assert!(set.contains("; Secure"), "{set}");
    let p = login(&d.url, "admin", TOKEN, "/").await;
    assert_eq!(p.status, StatusCode::SEE_OTHER, "{}", p.body);
    let set = p.set_cookie.iter().find(|c| c.starts_with("tm_session=")).expect("session cookie");
    assert!(set.contains("; Secure") && set.contains("HttpOnly"), "{set}");
    let r = http().get(format!("{}/health", d.url)).header(HOST, "tm.example.com:8443").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK, "the public URL's host is allowed");
    let r = http().get(format!("{}/health", d.url)).header(HOST, "tm.example.com:9999").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::MISDIRECTED_REQUEST, "only with its port");

    // Unset: derived from web.bind (http), so no Secure flag.
    let plain = Env::new(common::sqlite_db());
    let (_, out, _) = plain.tmctl_in(&["config", "show", "--json"], "");
    let shown: Value = serde_json::from_str(&out).expect("config show --json");
    let row = shown.as_array().unwrap().iter().find(|r| r["key"] == "web.public_url").expect("web.public_url");
    assert_eq!((row["value"].as_str(), row["source"].as_str()), (Some("http://127.0.0.1:8080"), Some("default")));
    let d2 = plain.serve();
    let p = login(&d2.url, "admin", TOKEN, "/").await;
    let set = p.set_cookie.iter().find(|c| c.starts_with("tm_session=")).expect("session cookie");
    assert!(!set.contains("Secure"), "{set}");
    // A public URL that is not one is named.
    let (code, _, err) =
        Env::new(common::sqlite_db()).env("TM_WEB_PUBLIC_URL", "tm.example.com").tmctl_in(&["serve"], "");
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("`web.public_url` = \"tm.example.com\" is not a URL"), "{err}");
}

// ---- the users page ----------------------------------------------------------------------------------

/// POSTs a form with the session `cookie`; the answer.
async fn post_form(base: &str, path: &str, cookie: &str, form: &[(&str, &str)]) -> Page {
    let resp = http().post(format!("{base}{path}")).header(COOKIE, cookie).form(form).send().await.expect("POST");
    page(resp).await
}

async fn users_page_manages_users_and_tokens(db: common::TestDb) {
    // A config user name with markup: the page must escape it.
    let env = Env::new(db).env("TM_WEB_USER", "boss<b>");
    let be = env.db.backend;
    let d = env.serve();
    let base = d.url.clone();
    let admin = session(&base, "boss<b>", TOKEN).await;
    let listing = get_with(&base, "/admin/users", Some(&admin)).await;
    assert_eq!(listing.status, StatusCode::OK, "{be}: {}", listing.body);
    assert!(listing.body.contains("boss&#60;b&#62;") && !listing.body.contains("boss<b>"), "{be}: escaped");
    assert!(listing.body.contains(r#"action="/admin/users/add""#), "{be}");
    let csrf = csrf_of(&listing.body);

    // The admin adds a user through the form; she can log in.
    let add = [("csrf", csrf.as_str()), ("user", "wanda"), ("password", "wanda-password"), ("role", "viewer")];
    let made = post_form(&base, "/admin/users/add", &admin, &add).await;
    assert_eq!((made.status, made.location.as_str()), (StatusCode::SEE_OTHER, "/admin/users"), "{be}: {}", made.body);
    let again = post_form(&base, "/admin/users/add", &admin, &add).await;
    assert_eq!(again.status, StatusCode::CONFLICT, "{be}: {}", again.body);
    assert!(again.body.contains("user `wanda` exists already"), "{be}: {}", again.body);
    let forged = [("csrf", "not-the-token"), ("user", "mallory"), ("password", "mallory-password"), ("role", "admin")];
    assert_eq!(post_form(&base, "/admin/users/add", &admin, &forged).await.status, StatusCode::FORBIDDEN, "{be}: CSRF");
    let wanda = session(&base, "wanda", "wanda-password").await;

    // A viewer: no Users link, 403 on the page and on every form (audited), nothing changed.
    let home = get_with(&base, "/", Some(&wanda)).await;
    assert_eq!(home.status, StatusCode::OK, "{be}");
    assert!(!home.body.contains("/admin/users"), "{be}: a viewer sees no Users link");
    assert!(get_with(&base, "/", Some(&admin)).await.body.contains(r#"href="/admin/users""#), "{be}");
    assert_eq!(get_with(&base, "/admin/users", Some(&wanda)).await.status, StatusCode::FORBIDDEN, "{be}");
    let wanda_csrf = csrf_of(&home.body);
    let sneak = [("csrf", wanda_csrf.as_str()), ("user", "wanda"), ("password", ""), ("role", "admin")];
    for path in ["/admin/users/add", "/admin/users/role", "/admin/users/remove", "/admin/users/password"] {
        let p = post_form(&base, path, &wanda, &sneak).await;
        assert_eq!(p.status, StatusCode::FORBIDDEN, "{be}: a viewer POSTs {path}: {}", p.body);
    }
    for path in ["/admin/tokens/revoke", "/admin/tokens/create"] {
        let p = post_form(&base, path, &wanda, &[("csrf", &wanda_csrf), ("user", "wanda"), ("name", "y")]).await;
        assert_eq!(p.status, StatusCode::FORBIDDEN, "{be}: a viewer POSTs {path}: {}", p.body);
    }
    // Her login is on record; the config user has no row to record it in.
    let listing = get_with(&base, "/admin/users", Some(&admin)).await;
    let line = listing.body.split(r#"<tr data-user="wanda">"#).nth(1).unwrap_or_default();
    let line = line.split("</tr>").next().unwrap_or_default();
    assert!(line.contains("<td>wanda</td><td>viewer</td>") && !line.contains("never"), "{be}: last login: {line}");

    // The admin creates a token on the page: shown once (never cached), it works with her role.
    let create = [("csrf", csrf.as_str()), ("user", "wanda"), ("name", "web"), ("expires", "30d")];
    let made = post_form(&base, "/admin/tokens/create", &admin, &create).await;
    assert_eq!(made.status, StatusCode::OK, "{be}: {}", made.body);
    let shown = made.body.split(r#"id="new-token">"#).nth(1).and_then(|t| t.split('<').next()).unwrap_or_default();
    assert!(shown.starts_with("tmu_") && shown.len() > 20, "{be}: {}", made.body);
    let read = api(reqwest::Method::GET, &base, "/api/v1/dags", Some(shown), None).await;
    assert_eq!(read.status, StatusCode::OK, "{be}: the new token reads");
    let trigger = Some(json!({"logical_date": "2025-03-01"}));
    let write = api(reqwest::Method::POST, &base, "/api/v1/dags/hello/runs", Some(shown), trigger).await;
    assert_eq!(write.status, StatusCode::FORBIDDEN, "{be}: a viewer's token cannot trigger: {}", write.body);
    let listing = get_with(&base, "/admin/users", Some(&admin)).await;
    assert!(listing.body.contains(r#"data-token="wanda/web""#) && !listing.body.contains(shown), "{be}");
    let bad = [("csrf", csrf.as_str()), ("user", "wanda"), ("name", "later"), ("expires", "soon")];
    assert_eq!(post_form(&base, "/admin/tokens/create", &admin, &bad).await.status, StatusCode::BAD_REQUEST, "{be}");
    assert_eq!(get_with(&base, "/", Some(&wanda)).await.status, StatusCode::OK, "{be}: still a viewer, still in");

    // Tokens are listed by name, never by value or hash; the admin revokes one.
    let token_line = env.ok(&["tokens", "create", "--user", "wanda", "--name", "ci"], "").trim().to_string();
    assert_eq!(api(reqwest::Method::GET, &base, "/api/v1/dags", Some(&token_line), None).await.status, StatusCode::OK);
    let listing = get_with(&base, "/admin/users", Some(&admin)).await;
    assert!(listing.body.contains(r#"data-token="wanda/ci""#), "{be}: {}", listing.body);
    let hash = tmctl::ops::users::token_hash(&token_line);
    assert!(!listing.body.contains(&token_line) && !listing.body.contains(&hash), "{be}: token or hash on the page");
    let revoke = [("csrf", csrf.as_str()), ("user", "wanda"), ("name", "ci")];
    assert_eq!(post_form(&base, "/admin/tokens/revoke", &admin, &revoke).await.status, StatusCode::SEE_OTHER, "{be}");
    let gone = api(reqwest::Method::GET, &base, "/api/v1/dags", Some(&token_line), None).await;
    assert_eq!(gone.status, StatusCode::UNAUTHORIZED, "{be}: revoked");

    // A role change from the page ends her session in this daemon at once.
    let role = [("csrf", csrf.as_str()), ("user", "wanda"), ("role", "operator")];
    assert_eq!(post_form(&base, "/admin/users/role", &admin, &role).await.status, StatusCode::SEE_OTHER, "{be}");
    assert_eq!(get_with(&base, "/", Some(&wanda)).await.status, StatusCode::SEE_OTHER, "{be}: session ended at once");
    let bad = [("csrf", csrf.as_str()), ("user", "wanda"), ("role", "root")];
    let p = post_form(&base, "/admin/users/role", &admin, &bad).await;
    assert_eq!(p.status, StatusCode::BAD_REQUEST, "{be}: {}", p.body);
    // A password reset: the old one stops working, the new one works.
    let reset = [("csrf", csrf.as_str()), ("user", "wanda"), ("password", "new-wanda-password")];
    assert_eq!(post_form(&base, "/admin/users/password", &admin, &reset).await.status, StatusCode::SEE_OTHER, "{be}");
    assert_eq!(login(&base, "wanda", "wanda-password", "/").await.status, StatusCode::UNAUTHORIZED, "{be}");
    let wanda = session(&base, "wanda", "new-wanda-password").await;
    let listing = get_with(&base, "/admin/users", Some(&admin)).await;
    assert!(listing.body.contains("<td>wanda</td><td>operator</td>"), "{be}: {}", listing.body);
    // Removed: logged out at once, cannot log in.
    let remove = [("csrf", csrf.as_str()), ("user", "wanda")];
    assert_eq!(post_form(&base, "/admin/users/remove", &admin, &remove).await.status, StatusCode::SEE_OTHER, "{be}");
    assert_eq!(get_with(&base, "/", Some(&wanda)).await.status, StatusCode::SEE_OTHER, "{be}: removed, logged out");
    assert_eq!(login(&base, "wanda", "new-wanda-password", "/").await.status, StatusCode::UNAUTHORIZED, "{be}");
    let p = post_form(&base, "/admin/users/remove", &admin, &remove).await;
    assert_eq!(p.status, StatusCode::NOT_FOUND, "{be}: {}", p.body);

    // Every form left its audit row, the refusals too.
    let store = env.store().await;
    let rows = store.list_audit(None, 200).await.expect("audit log");
    let has = |actor: &str, action: &str, result: &str| {
        rows.iter().any(|r| r.actor == actor && r.action == action && r.result.starts_with(result))
    };
    for (action, result) in [
        ("users.add", "ok"),
        ("users.add", "conflict: user `wanda` exists already"),
        ("tokens.revoke", "ok"),
        ("tokens.create", "ok"),
        ("users.set-role", "ok"),
        ("users.set-role", "invalid: role `root`"),
        ("users.set-password", "ok"),
        ("users.remove", "ok"),
        ("users.remove", "not found"),
    ] {
        assert!(has("boss<b>", action, result), "{be}: no audit row {action} {result}: {rows:?}");
    }
    for action in
        ["users.add", "users.set-role", "users.remove", "users.set-password", "tokens.revoke", "tokens.create"]
    {
        assert!(has("wanda", action, "forbidden"), "{be}: the viewer's {action} refusal is not audited: {rows:?}");
    }
    assert!(!rows.iter().any(|r| r.target.contains("mallory")), "{be}: the forged form did nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_page_manages_users_and_tokens_sqlite() {
    users_page_manages_users_and_tokens(common::sqlite_db()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_page_manages_users_and_tokens_postgres() {
    users_page_manages_users_and_tokens(common::postgres_db().await).await;
}
