//! Per-attempt logs: an attempt's future runs under its own `tracing` dispatcher whose output
//! goes to an in-memory buffer, so everything the task logs (and nothing from other tasks running
//! at the same time) becomes that attempt's log in the state DB. A buffer may carry a
//! [`Masker`]: every secret it knows is replaced by `***` as the text is written, so no secret
//! reaches the stored log, the live tail or an alert e-mail.

use std::io::Write;
use std::sync::{Arc, Mutex};

use tracing::instrument::WithSubscriber;
use tracing_subscriber::fmt::MakeWriter;

use crate::secrets::Masker;

/// A shared, growable log buffer.
#[derive(Clone, Default, Debug)]
pub struct LogBuffer(Arc<Mutex<Vec<u8>>>, Masker);

impl LogBuffer {
    pub fn new() -> Self {
        Self::default()
    }

    /// A buffer that masks `masker`'s secrets in everything written to it.
    pub fn masked(masker: Masker) -> Self {
        LogBuffer(Arc::default(), masker)
    }

    /// Appends a line written by the executor itself (not through `tracing`).
    pub fn line(&self, text: &str) {
        let stamp = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
        let text = self.1.mask(text);
        let mut buf = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let _ = writeln!(buf, "{stamp} {text}");
    }

    pub fn contents(&self) -> String {
        let buf = self.0.lock().unwrap_or_else(|p| p.into_inner());
        String::from_utf8_lossy(&buf).into_owned()
    }

    /// The last `n` lines (for alert e-mails).
    pub fn tail(&self, n: usize) -> String {
        let all = self.contents();
        let lines: Vec<&str> = all.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }
}

pub struct BufferWriter(Arc<Mutex<Vec<u8>>>, Masker);

impl Write for BufferWriter {
    /// `tracing`'s formatter writes one whole event per call, so a secret is never split
    /// between two writes.
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        let masked = if self.1.is_empty() { None } else { Some(self.1.mask(&String::from_utf8_lossy(data))) };
        let mut buf = self.0.lock().unwrap_or_else(|p| p.into_inner());
        match &masked {
            Some(text) => buf.extend_from_slice(text.as_bytes()),
            None => buf.extend_from_slice(data),
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for LogBuffer {
    type Writer = BufferWriter;
    fn make_writer(&'a self) -> Self::Writer {
        BufferWriter(self.0.clone(), self.1.clone())
    }
}

/// The console log (stderr) with the configured secrets masked, for the process's own log.
#[derive(Clone, Debug)]
pub struct MaskedStderr(pub Masker);

/// One console log event on its way to stderr.
pub struct MaskedStderrWriter(Masker);

impl Write for MaskedStderrWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        if self.0.is_empty() {
            return std::io::stderr().write(data);
        }
        std::io::stderr().write_all(self.0.mask(&String::from_utf8_lossy(data)).as_bytes())?;
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

impl<'a> MakeWriter<'a> for MaskedStderr {
    type Writer = MaskedStderrWriter;
    fn make_writer(&'a self) -> Self::Writer {
        MaskedStderrWriter(self.0.clone())
    }
}

/// Runs `fut` with every `tracing` event it emits written to `buffer`.
pub async fn capture<F: std::future::Future>(buffer: &LogBuffer, fut: F) -> F::Output {
    let subscriber = tracing_subscriber::fmt()
        .with_writer(buffer.clone())
        .with_ansi(false)
        .with_target(true)
        .with_max_level(tracing::Level::DEBUG)
        .finish();
    fut.with_subscriber(tracing::Dispatch::new(subscriber)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn concurrent_captures_do_not_mix() {
        let a = LogBuffer::new();
        let b = LogBuffer::new();
        let fa = capture(&a, async {
            for i in 0..3 {
                tracing::info!(i, "from a");
                tokio::task::yield_now().await;
            }
        });
        let fb = capture(&b, async {
            for i in 0..3 {
                tracing::warn!(i, "from b");
                tokio::task::yield_now().await;
            }
        });
        tokio::join!(fa, fb);
        let (a, b) = (a.contents(), b.contents());
        assert_eq!(a.matches("from a").count(), 3, "{a}");
        assert_eq!(b.matches("from b").count(), 3, "{b}");
        assert!(!a.contains("from b") && !b.contains("from a"));
        assert!(b.contains("WARN"));
    }

    #[tokio::test]
    async fn secrets_are_masked_in_lines_and_events() {
        let buf = LogBuffer::masked(Masker::none().with_values(["hunter2-xyz".to_string()]));
        buf.line("tmctl: password hunter2-xyz");
        capture(&buf, async { tracing::info!(pw = "hunter2-xyz", "printed hunter2-xyz") }).await;
        let text = buf.contents();
        assert!(!text.contains("hunter2"), "{text}");
        assert_eq!(text.matches("***").count(), 3, "{text}");
    }

    #[test]
    fn tail_keeps_the_last_lines() {
        let buf = LogBuffer::new();
        for i in 0..5 {
            buf.line(&format!("line {i}"));
        }
        let tail = buf.tail(2);
        assert!(tail.ends_with("line 4") && tail.contains("line 3") && !tail.contains("line 2"));
    }
}
