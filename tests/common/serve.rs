//! A `tmctl serve` child process for tests: started with a prepared `Command`, its address read
//! from the first stdout line, its stderr kept in a log file, killed when the guard goes.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

pub struct ServeProcess {
    pub child: Child,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    log: PathBuf,
}

impl ServeProcess {
    /// Runs `command serve --bind 127.0.0.1:0` and waits until it says where it listens; its
    /// stderr goes to `log`.
    pub fn spawn(mut command: Command, log: PathBuf) -> ServeProcess {
        let mut child = command
            .args(["serve", "--bind", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start tmctl serve");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let first = lines.next().and_then(|l| l.ok()).unwrap_or_default();
        let url = first
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .unwrap_or_else(|| panic!("tmctl serve did not say where it listens: {first:?}"))
            .to_string();
        // Keep draining stdout so the daemon never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        let stderr = child.stderr.take().expect("stderr");
        let log_path = log.clone();
        std::thread::spawn(move || {
            let mut f = std::fs::File::create(&log_path).expect("log file");
            let _ = std::io::copy(&mut BufReader::new(stderr), &mut f);
        });
        ServeProcess { child, url, log }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// What the daemon logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn sigterm(&mut self) -> std::process::ExitStatus {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid()), nix::sys::signal::Signal::SIGTERM)
            .expect("SIGTERM");
        self.child.wait().expect("wait for daemon")
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
