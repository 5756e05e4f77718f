//! The `command` kind (Airflow's BashOperator without the shell): runs `program` with `args`,
//! streams stdout and stderr into the attempt's log line by line, and succeeds on exit code 0.
//! `{{ ds }}`-style placeholders in args, env and cwd are filled from the run (see
//! [`super::render_template`]). A timeout or cancel kills the whole process group.
//!
//! The child starts from an empty environment plus [`INHERITED_ENV`] from the daemon, the run
//! variables (`TM_DAG_ID`, `TM_TASK_ID`, `TM_RUN_ID`, `TM_DS`, `TM_LOGICAL_DATE`,
//! `TM_TRY_NUMBER`) and the task's own `env`: never the daemon's `TM_*` settings or credentials.

use std::collections::BTreeMap;
use std::process::Stdio;
use std::sync::Arc;

use async_trait::async_trait;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};

use super::{BuildInput, SettingError, Task, TaskContext, TaskError, TaskOutput, render_template};

/// Longest line kept in the log; longer lines are cut (and say so).
const MAX_LINE: usize = 64 * 1024;

/// The only variables a command inherits from the process that runs it.
pub const INHERITED_ENV: &[&str] = &["PATH", "HOME", "LANG", "TZ"];

/// `PATH` when the daemon itself has none.
const DEFAULT_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// Shells whose `-c` argument is a script.
const SHELLS: &[&str] = &["sh", "bash", "dash", "zsh", "ksh", "ash", "mksh", "busybox"];

#[derive(Debug)]
struct Command {
    program: String,
    args: Vec<String>,
    env: BTreeMap<String, String>,
    cwd: Option<String>,
}

/// Kills the child's process group when the attempt ends or is dropped (timeout, cancel), so
/// grandchildren of a shell script do not outlive their task.
struct GroupGuard(Option<i32>);

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if let Some(pgid) = self.0 {
            let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pgid), nix::sys::signal::Signal::SIGKILL);
        }
    }
}

async fn pump<R: AsyncRead + Unpin>(stream: R, name: &'static str) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream);
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = (&mut reader).take(MAX_LINE as u64 + 1).read_until(b'\n', &mut line).await?;
        if n == 0 {
            return Ok(());
        }
        let cut = line.len() > MAX_LINE;
        if cut {
            line.truncate(MAX_LINE);
            // Skip the rest of the over-long line.
            let mut rest = Vec::new();
            reader.read_until(b'\n', &mut rest).await?;
        }
        let text = String::from_utf8_lossy(&line);
        let text = text.trim_end_matches(['\n', '\r']);
        if cut {
            tracing::info!(target: "command", stream = name, "{text} [line cut at {MAX_LINE} bytes]");
        } else {
            tracing::info!(target: "command", stream = name, "{text}");
        }
    }
}

use tokio::io::AsyncReadExt;

impl Command {
    /// The script of `sh -c SCRIPT` (also `bash -ec`, `/usr/bin/env bash -c`), if this is one.
    fn shell_script(&self) -> Option<&str> {
        let base = |p: &str| p.rsplit('/').next().unwrap_or(p).to_string();
        let (shell, rest): (String, &[String]) = if base(&self.program) == "env" {
            let first = self.args.iter().position(|a| !a.starts_with('-') && !a.contains('='))?;
            (base(&self.args[first]), &self.args[first + 1..])
        } else {
            (base(&self.program), &self.args[..])
        };
        if !SHELLS.contains(&shell.as_str()) {
            return None;
        }
        let c = rest.iter().position(|a| a.starts_with('-') && !a.starts_with("--") && a.contains('c'))?;
        rest.get(c + 1).map(String::as_str)
    }
}

#[async_trait]
impl Task for Command {
    fn warnings(&self) -> Vec<String> {
        let Some(script) = self.shell_script() else { return Vec::new() };
        super::unquoted_params(script)
            .into_iter()
            .map(|p| {
                format!(
                    "`{{{{ {p} }}}}` is rendered unquoted into a shell `-c` script, so a value like `x; id` runs as \
                     code; write `{{{{ {p} | shell_quote }}}}`, or pass it as an argument after the script and use \
                     \"$1\""
                )
            })
            .collect()
    }

    async fn run(&self, ctx: &TaskContext) -> Result<TaskOutput, TaskError> {
        let render = |s: &str| render_template(s, ctx).map_err(TaskError::Fatal);
        let args: Vec<String> = self.args.iter().map(|a| render(a)).collect::<Result<_, _>>()?;
        let mut cmd = tokio::process::Command::new(&self.program);
        cmd.env_clear();
        for name in INHERITED_ENV {
            match std::env::var_os(name) {
                Some(v) => {
                    cmd.env(name, v);
                }
                None if *name == "PATH" => {
                    cmd.env(name, DEFAULT_PATH);
                }
                None => {}
            }
        }
        cmd.args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .process_group(0)
            .env("TM_DAG_ID", &ctx.dag_id)
            .env("TM_TASK_ID", &ctx.task_id)
            .env("TM_RUN_ID", &ctx.run_id)
            .env("TM_DS", ctx.ds.to_string())
            .env("TM_LOGICAL_DATE", ctx.logical_date.to_rfc3339())
            .env("TM_TRY_NUMBER", ctx.try_number.to_string());
        for (k, v) in &self.env {
            cmd.env(k, render(v)?);
        }
        if let Some(cwd) = &self.cwd {
            cmd.current_dir(render(cwd)?);
        }
        tracing::info!(program = %self.program, args = ?args, "starting command");
        let mut child = cmd.spawn().map_err(|e| TaskError::Fatal(format!("cannot start `{}`: {e}", self.program)))?;
        let _guard = GroupGuard(child.id().map(|id| id as i32));
        let stdout = child.stdout.take().map(|s| pump(s, "stdout"));
        let stderr = child.stderr.take().map(|s| pump(s, "stderr"));
        let (out, err, status) = tokio::join!(
            async {
                match stdout {
                    Some(f) => f.await,
                    None => Ok(()),
                }
            },
            async {
                match stderr {
                    Some(f) => f.await,
                    None => Ok(()),
                }
            },
            child.wait()
        );
        out.and(err).map_err(|e| TaskError::Failed(format!("reading output of `{}` failed: {e}", self.program)))?;
        let status = status.map_err(|e| TaskError::Failed(format!("waiting for `{}` failed: {e}", self.program)))?;
        match status.code() {
            Some(0) => {
                tracing::info!("command exited with code 0");
                Ok(TaskOutput { summary: Some(serde_json::json!({ "exit_code": 0 })) })
            }
            Some(code) => Err(TaskError::Failed(format!("`{}` exited with code {code}", self.program))),
            None => Err(TaskError::Failed(format!("`{}` was killed by a signal ({status})", self.program))),
        }
    }
}

fn string_list(key: &str, value: &toml::Value) -> Result<Vec<String>, SettingError> {
    match value {
        toml::Value::Array(items) => items
            .iter()
            .map(|v| match v {
                toml::Value::String(s) => Ok(s.clone()),
                toml::Value::Integer(i) => Ok(i.to_string()),
                toml::Value::Float(f) => Ok(f.to_string()),
                toml::Value::Boolean(b) => Ok(b.to_string()),
                other => {
                    Err(SettingError::new(key, format!("`{key}` items must be strings, found {}", other.type_str())))
                }
            })
            .collect(),
        other => {
            Err(SettingError::new(key, format!("`{key}` must be an array of strings, found {}", other.type_str())))
        }
    }
}

pub fn build(input: &BuildInput<'_>) -> Result<Arc<dyn Task>, Vec<SettingError>> {
    let s = input.settings;
    let mut errors = Vec::new();
    let program = match s.get("program") {
        Some(toml::Value::String(p)) if !p.trim().is_empty() => p.clone(),
        Some(toml::Value::String(_)) => {
            errors.push(SettingError::new("program", "`program` must not be empty"));
            String::new()
        }
        Some(other) => {
            errors
                .push(SettingError::new("program", format!("`program` must be a string, found {}", other.type_str())));
            String::new()
        }
        None => {
            errors.push(SettingError::new("program", "`command` needs `program`, e.g. program = \"/bin/sh\""));
            String::new()
        }
    };
    let args = match s.get("args") {
        None => Vec::new(),
        Some(v) => string_list("args", v).unwrap_or_else(|e| {
            errors.push(e);
            Vec::new()
        }),
    };
    let mut env = BTreeMap::new();
    match s.get("env") {
        None => {}
        Some(toml::Value::Table(t)) => {
            for (k, v) in t {
                match v {
                    toml::Value::String(v) => {
                        env.insert(k.clone(), v.clone());
                    }
                    other => errors.push(SettingError::new(
                        format!("env.{k}"),
                        format!("`env.{k}` must be a string, found {}", other.type_str()),
                    )),
                }
            }
        }
        Some(other) => {
            errors.push(SettingError::new("env", format!("`env` must be a table, found {}", other.type_str())))
        }
    }
    let cwd = match s.get("cwd") {
        None => None,
        Some(toml::Value::String(c)) => Some(c.clone()),
        Some(other) => {
            errors.push(SettingError::new("cwd", format!("`cwd` must be a string, found {}", other.type_str())));
            None
        }
    };
    // Placeholders are checked now, so a typo fails `dags validate` and not a run.
    for text in args.iter().chain(env.values()).chain(cwd.iter()) {
        if let Err(message) = super::check_template(text) {
            errors.push(SettingError::new("args", message));
        }
    }
    if errors.is_empty() { Ok(Arc::new(Command { program, args, env, cwd })) } else { Err(errors) }
}
