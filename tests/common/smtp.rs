//! A real SMTP server for tests: aiosmtpd (`python3 -m aiosmtpd`) delivering into a maildir on a
//! local port, stopped (killed) when the guard goes. Delivered messages are read back decoded by
//! Python's `mailbox`/`email`, so tests see subjects and bodies as written.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// The subject of the marker messages of [`SmtpServer::messages_until_marker`] (left out of
/// [`SmtpServer::messages`]).
const MARKER: &str = "tmctl-test-marker";
static MARKERS: AtomicU32 = AtomicU32::new(0);

/// A local port nothing listens on right now.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local addr").port()
}

/// One delivered message.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct Mail {
    pub from: String,
    /// The `To` header.
    pub to: String,
    /// The envelope recipients (RCPT TO).
    pub rcpt_to: Vec<String>,
    pub subject: String,
    pub body: String,
    pub message_id: String,
    pub date: String,
    pub content_type: String,
}

/// aiosmtpd on 127.0.0.1:`port`, delivering into a fresh maildir.
pub struct SmtpServer {
    pub port: u16,
    maildir: PathBuf,
    child: Child,
    _dir: tempfile::TempDir,
}

impl SmtpServer {
    pub fn start() -> SmtpServer {
        SmtpServer::start_on(free_port())
    }

    /// Starts the server on `port` and waits until it accepts connections.
    pub fn start_on(port: u16) -> SmtpServer {
        super::require_python(&["aiosmtpd"], "pip install aiosmtpd");
        let dir = tempfile::tempdir().expect("temp dir");
        // aiosmtpd creates the maildir; it must not exist yet.
        let maildir = dir.path().join("maildir");
        let mut child = Command::new("python3")
            .args(["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{port}"), "-c", "aiosmtpd.handlers.Mailbox"])
            .arg(&maildir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 -m aiosmtpd (pip install aiosmtpd)");
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let started = Instant::now();
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("aiosmtpd on port {port} exited at start: {status}");
            }
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                break;
            }
            assert!(started.elapsed() < Duration::from_secs(15), "aiosmtpd did not listen on port {port}");
            std::thread::sleep(Duration::from_millis(50));
        }
        SmtpServer { port, maildir, child, _dir: dir }
    }

    /// Settings that send to this server (no TLS, no login).
    pub fn settings(&self) -> tmctl::config::SmtpSettings {
        settings_for(self.port, Duration::from_secs(5))
    }

    /// The messages delivered so far, in delivery order (markers left out).
    pub fn messages(&self) -> Vec<Mail> {
        self.all_messages().into_iter().filter(|m| !m.subject.starts_with(MARKER)).collect()
    }

    /// The messages delivered once a marker message, mailed by this call through a connection of
    /// its own, has arrived: the observable later event for "nothing more arrived" checks.
    pub fn messages_until_marker(&self) -> Vec<Mail> {
        use lettre::Transport;
        let subject = format!("{MARKER} {}", MARKERS.fetch_add(1, Ordering::SeqCst));
        let marker = lettre::Message::builder()
            .from("marker@example.com".parse().expect("from"))
            .to("marker@example.com".parse().expect("to"))
            .subject(subject.clone())
            .body(String::from("marker\n"))
            .expect("marker message");
        lettre::SmtpTransport::builder_dangerous("127.0.0.1")
            .port(self.port)
            .build()
            .send(&marker)
            .unwrap_or_else(|e| panic!("mailing the marker to 127.0.0.1:{}: {e}", self.port));
        let started = Instant::now();
        loop {
            let all = self.all_messages();
            if all.iter().any(|m| m.subject == subject) {
                return all.into_iter().filter(|m| !m.subject.starts_with(MARKER)).collect();
            }
            assert!(started.elapsed() < Duration::from_secs(10), "the marker was not delivered within 10 s");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn all_messages(&self) -> Vec<Mail> {
        if !self.maildir.exists() {
            return Vec::new();
        }
        let out = Command::new("python3")
            .args(["-c", READ_MAILDIR])
            .arg(&self.maildir)
            .output()
            .expect("python3 reads the maildir");
        assert!(out.status.success(), "reading the maildir failed: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).expect("maildir JSON")
    }

    /// Waits until at least `n` messages were delivered (or `limit` passed) and returns them all.
    pub fn wait_for(&self, n: usize, limit: Duration) -> Vec<Mail> {
        let started = Instant::now();
        loop {
            let got = self.messages();
            if got.len() >= n || started.elapsed() > limit {
                return got;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Settings for a plain SMTP server on 127.0.0.1:`port`.
pub fn settings_for(port: u16, timeout: Duration) -> tmctl::config::SmtpSettings {
    tmctl::config::SmtpSettings {
        host: "127.0.0.1".into(),
        port,
        tls: tmctl::config::SmtpTls::None,
        user: String::new(),
        password: String::new(),
        from: "tmctl <tmctl@example.com>".into(),
        timeout,
    }
}

/// Prints the maildir's messages as JSON, oldest first, headers and body decoded.
const READ_MAILDIR: &str = r#"
import email.header, json, mailbox, re, sys
box = mailbox.Maildir(sys.argv[1], factory=None, create=False)
def text(value):
    # Unfold (RFC 5322 2.2.3), then decode encoded words.
    value = re.sub(r"\r?\n(?=[ \t])", "", value or "")
    return str(email.header.make_header(email.header.decode_header(value)))
mails = []
for key in box.keys():
    msg = box.get_message(key)
    payload = msg.get_payload(decode=True) or b""
    mails.append((msg.get_date(), key, {
        "from": text(msg["From"]),
        "to": text(msg["To"]),
        "rcpt_to": [r.strip() for r in (msg["X-RcptTo"] or "").split(",") if r.strip()],
        "subject": text(msg["Subject"]),
        "body": payload.decode(msg.get_content_charset() or "utf-8", "replace").replace("\r\n", "\n"),
        "message_id": msg["Message-ID"] or "",
        "date": msg["Date"] or "",
        "content_type": msg.get_content_type(),
    }))
mails.sort(key=lambda m: (m[0], m[1]))
print(json.dumps([m[2] for m in mails]))
"#;
