//! A tiny W3C WebDriver client over `reqwest`, driving headless Chromium through `chromedriver`
//! (Debian: `apt-get install -y chromium chromium-driver`). Enough for the UI tests: navigate,
//! find by CSS, click, type, read text and source, run JS, read the browser console, screenshot.
//!
//! [`Browser::start`] starts `chromedriver` on a free port and opens one session; dropping the
//! `Browser` ends the session (closing Chromium) and kills `chromedriver`.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// The W3C key of an element reference in WebDriver JSON.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

const INSTALL_HINT: &str = "the browser tests need Chromium and chromedriver: apt-get install -y chromium chromium-driver \
     (or set TM_CHROMIUM / TM_CHROMEDRIVER to their paths)";

/// An element found on the current page.
#[derive(Debug, Clone)]
pub struct Element(String);

pub struct Browser {
    driver: Child,
    port: u16,
    http: reqwest::Client,
    base: String,
    session: String,
    _profile: tempfile::TempDir,
}

/// `name` as given by `env`, else the first of `candidates` that exists, else found on PATH.
fn locate(env: &str, candidates: &[&str], name: &str) -> Option<PathBuf> {
    if let Ok(p) = std::env::var(env)
        && !p.is_empty()
    {
        return Some(PathBuf::from(p));
    }
    if let Some(p) = candidates.iter().map(PathBuf::from).find(|p| p.is_file()) {
        return Some(p);
    }
    std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).map(|d| d.join(name)).find(|p| p.is_file()))
        .unwrap_or(None)
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free local port")
}

/// Where screenshots go: `<crate>/target/ui-screenshots/` (kept by CI as artifacts).
pub fn screenshot_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("target").join("ui-screenshots")
}

impl Browser {
    /// Starts `chromedriver` and a headless Chromium session. Panics, saying what to install,
    /// when either is missing.
    pub async fn start() -> Browser {
        let chromium = locate("TM_CHROMIUM", &["/usr/bin/chromium", "/usr/bin/chromium-browser"], "chromium")
            .unwrap_or_else(|| panic!("Chromium not found; {INSTALL_HINT}"));
        let driver_bin = locate("TM_CHROMEDRIVER", &["/usr/bin/chromedriver"], "chromedriver")
            .unwrap_or_else(|| panic!("chromedriver not found; {INSTALL_HINT}"));
        let port = free_port();
        let driver = Command::new(&driver_bin)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}; {INSTALL_HINT}", driver_bin.display()));
        let profile = tempfile::tempdir().expect("temp dir for the Chromium profile");
        let http = reqwest::Client::builder().timeout(Duration::from_secs(60)).build().expect("HTTP client");
        let base = format!("http://127.0.0.1:{port}");
        let mut b = Browser { driver, port, http, base, session: String::new(), _profile: profile };

        // Wait until chromedriver answers.
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(r) = b.http.get(format!("{}/status", b.base)).send().await
                && r.status().is_success()
            {
                break;
            }
            if let Ok(Some(status)) = b.driver.try_wait() {
                panic!("chromedriver exited at start ({status}); {INSTALL_HINT}");
            }
            assert!(Instant::now() < deadline, "chromedriver did not answer on port {port} within 20 s");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }

        let args = vec![
            "--headless".to_string(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--no-first-run".into(),
            "--disable-background-networking".into(),
            format!("--user-data-dir={}", b._profile.path().display()),
            "--window-size=1400,1000".into(),
        ];
        let caps = json!({
            "capabilities": {
                "alwaysMatch": {
                    "browserName": "chrome",
                    "goog:loggingPrefs": { "browser": "ALL" },
                    "goog:chromeOptions": { "binary": chromium.display().to_string(), "args": args },
                }
            }
        });
        let v = b
            .raw("POST", "/session", Some(caps))
            .await
            .unwrap_or_else(|e| panic!("cannot open a Chromium session ({}): {e}", chromium.display()));
        b.session = v["sessionId"].as_str().expect("sessionId in the new-session answer").to_string();
        b
    }

    /// One WebDriver command; `Ok(value)` or `Err(error message)`.
    async fn raw(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, String> {
        let url = format!("{}{path}", self.base);
        let req = match method {
            "GET" => self.http.get(&url),
            "DELETE" => self.http.delete(&url),
            _ => self.http.post(&url).json(&body.unwrap_or_else(|| json!({}))),
        };
        let resp = req.send().await.map_err(|e| format!("{method} {path}: {e}"))?;
        let status = resp.status();
        let v: Value = resp.json().await.map_err(|e| format!("{method} {path}: bad JSON: {e}"))?;
        let value = v.get("value").cloned().unwrap_or(Value::Null);
        if status.is_success() {
            Ok(value)
        } else {
            Err(format!(
                "{method} {path}: {status} {}: {}",
                value["error"].as_str().unwrap_or("?"),
                value["message"].as_str().unwrap_or("").lines().next().unwrap_or("")
            ))
        }
    }

    /// A session command that must succeed.
    #[track_caller]
    fn cmd<'a>(
        &'a self,
        method: &'a str,
        path: &'a str,
        body: Option<Value>,
    ) -> impl std::future::Future<Output = Value> + 'a {
        let caller = std::panic::Location::caller();
        async move {
            let path = format!("/session/{}{path}", self.session);
            self.raw(method, &path, body).await.unwrap_or_else(|e| panic!("webdriver (called at {caller}): {e}"))
        }
    }

    /// Loads `url` and waits for the page to load.
    pub async fn goto(&self, url: &str) {
        self.cmd("POST", "/url", Some(json!({ "url": url }))).await;
    }

    pub async fn current_url(&self) -> String {
        self.cmd("GET", "/url", None).await.as_str().unwrap_or_default().to_string()
    }

    pub async fn title(&self) -> String {
        self.cmd("GET", "/title", None).await.as_str().unwrap_or_default().to_string()
    }

    pub async fn source(&self) -> String {
        self.cmd("GET", "/source", None).await.as_str().unwrap_or_default().to_string()
    }

    /// The visible text of the whole page.
    pub async fn body_text(&self) -> String {
        let body = self.find("body").await;
        self.text(&body).await
    }

    /// Elements matching `css` (possibly none).
    pub async fn find_all(&self, css: &str) -> Vec<Element> {
        let v = self.cmd("POST", "/elements", Some(json!({ "using": "css selector", "value": css }))).await;
        v.as_array()
            .map(|a| a.iter().filter_map(|e| e[ELEMENT_KEY].as_str().map(|s| Element(s.to_string()))).collect())
            .unwrap_or_default()
    }

    /// The first element matching `css`, if any.
    pub async fn try_find(&self, css: &str) -> Option<Element> {
        self.find_all(css).await.into_iter().next()
    }

    /// The first element matching `css`; panics (with the page's URL) if there is none.
    pub async fn find(&self, css: &str) -> Element {
        match self.try_find(css).await {
            Some(e) => e,
            None => panic!("no element matches `{css}` on {}", self.current_url().await),
        }
    }

    /// Waits up to `timeout` for an element matching `css`.
    pub async fn wait_for(&self, css: &str, timeout: Duration) -> Element {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(e) = self.try_find(css).await {
                return e;
            }
            if Instant::now() >= deadline {
                panic!("no element matched `{css}` within {timeout:?} on {}", self.current_url().await);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The first element inside `parent` matching `css`, if any.
    pub async fn try_find_in(&self, parent: &Element, css: &str) -> Option<Element> {
        let v = self
            .cmd(
                "POST",
                &format!("/element/{}/elements", parent.0),
                Some(json!({ "using": "css selector", "value": css })),
            )
            .await;
        v.as_array().and_then(|a| a.first()).and_then(|e| e[ELEMENT_KEY].as_str()).map(|s| Element(s.to_string()))
    }

    pub async fn click(&self, e: &Element) {
        self.cmd("POST", &format!("/element/{}/click", e.0), None).await;
    }

    pub async fn clear(&self, e: &Element) {
        self.cmd("POST", &format!("/element/{}/clear", e.0), None).await;
    }

    pub async fn send_keys(&self, e: &Element, text: &str) {
        self.cmd("POST", &format!("/element/{}/value", e.0), Some(json!({ "text": text }))).await;
    }

    pub async fn text(&self, e: &Element) -> String {
        self.cmd("GET", &format!("/element/{}/text", e.0), None).await.as_str().unwrap_or_default().to_string()
    }

    pub async fn attr(&self, e: &Element, name: &str) -> Option<String> {
        self.cmd("GET", &format!("/element/{}/attribute/{name}", e.0), None).await.as_str().map(str::to_string)
    }

    /// Runs `script` (a function body; `arguments[i]` are `args`) and returns its result.
    pub async fn execute(&self, script: &str, args: Vec<Value>) -> Value {
        self.cmd("POST", "/execute/sync", Some(json!({ "script": script, "args": args }))).await
    }

    /// Browser console entries of level SEVERE since the last call (JS exceptions, `console.error`,
    /// failed resource loads), as `source: message` lines.
    pub async fn console_errors(&self) -> Vec<String> {
        let v = self.cmd("POST", "/se/log", Some(json!({ "type": "browser" }))).await;
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter(|e| e["level"].as_str() == Some("SEVERE"))
                    .map(|e| {
                        format!("{}: {}", e["source"].as_str().unwrap_or("?"), e["message"].as_str().unwrap_or(""))
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Saves a PNG of the viewport as `target/ui-screenshots/<name>.png` and returns its path.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let v = self.cmd("GET", "/screenshot", None).await;
        let png = base64_decode(v.as_str().expect("screenshot as base64")).expect("screenshot base64 decodes");
        let dir = screenshot_dir();
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
        path
    }

    /// Saves a PNG of the whole page (resizing the window to the document's height for the shot).
    pub async fn full_page_screenshot(&self, name: &str) -> PathBuf {
        let h = self
            .execute("return Math.max(document.body.scrollHeight, document.documentElement.scrollHeight);", vec![])
            .await
            .as_i64()
            .unwrap_or(1000)
            .clamp(1000, 8000);
        self.cmd("POST", "/window/rect", Some(json!({ "width": 1400, "height": h + 140 }))).await;
        let path = self.screenshot(name).await;
        self.cmd("POST", "/window/rect", Some(json!({ "width": 1400, "height": 1000 }))).await;
        path
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Drop may run outside a runtime: a plain HTTP/1.1 DELETE ends the session (closing
        // Chromium) before chromedriver is killed.
        if !self.session.is_empty()
            && let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.port))
        {
            let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
            let req = format!(
                "DELETE /session/{} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                self.session, self.port
            );
            if s.write_all(req.as_bytes()).is_ok() {
                let mut sink = Vec::new();
                let _ = s.read_to_end(&mut sink);
            }
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// Standard base64 (with or without padding) to bytes.
pub fn base64_decode(s: &str) -> Option<Vec<u8>> {
    fn val(c: u8) -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    }
    let bytes: Vec<u8> = s.bytes().filter(|c| !c.is_ascii_whitespace() && *c != b'=').collect();
    let mut out = Vec::with_capacity(bytes.len() * 3 / 4);
    for chunk in bytes.chunks(4) {
        if chunk.len() == 1 {
            return None;
        }
        let mut n = 0u32;
        for (i, c) in chunk.iter().enumerate() {
            n |= val(*c)? << (18 - 6 * i);
        }
        out.push((n >> 16) as u8);
        if chunk.len() > 2 {
            out.push((n >> 8) as u8);
        }
        if chunk.len() > 3 {
            out.push(n as u8);
        }
    }
    Some(out)
}
