//! `tmctl users add|list|set-role|set-password|remove` and `tmctl tokens create|list|revoke`:
//! whoever can open the state DB acts as an admin (`ops::Actor::local`, named after the OS user
//! in the audit log). Passwords are read from stdin, tokens printed once.

use clap::Subcommand;

use super::{CliError, CliResult, open_store, print_json, table};
use crate::config::Settings;
use crate::ops::passwords::Passwords;
use crate::ops::{Actor, OpError, Role, users};
use crate::timefmt;

#[derive(Subcommand, Debug)]
pub enum UsersCmd {
    /// Add a user; the password is read from stdin (e.g. `read -s p; echo "$p" | tmctl users add ann --role operator`).
    Add {
        username: String,
        /// viewer, operator or admin.
        #[arg(long, default_value = "viewer")]
        role: String,
    },
    /// Every user with their role.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Change a user's role (ends their sessions).
    SetRole {
        username: String,
        #[arg(long)]
        role: String,
    },
    /// Set a user's password from stdin (ends their sessions).
    SetPassword { username: String },
    /// Remove a user with their tokens and sessions.
    Remove { username: String },
}

#[derive(Subcommand, Debug)]
pub enum TokensCmd {
    /// Create an API token for a user; printed once, only its hash is stored.
    Create {
        #[arg(long)]
        user: String,
        #[arg(long)]
        name: String,
        /// Valid for this long, e.g. 90d or 12h (default: until revoked).
        #[arg(long)]
        expires: Option<String>,
    },
    /// Tokens by user and name (never their values).
    List {
        #[arg(long)]
        user: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Revoke a user's token by name.
    Revoke {
        #[arg(long)]
        user: String,
        #[arg(long)]
        name: String,
    },
}

impl From<OpError> for CliError {
    fn from(e: OpError) -> Self {
        match e {
            OpError::Internal(m) => CliError::Failed(m),
            other => CliError::Usage(other.to_string()),
        }
    }
}

fn role_arg(text: &str) -> Result<Role, CliError> {
    text.parse::<Role>().map_err(|m| CliError::Usage(format!("--role: {m}")))
}

fn password_from_stdin() -> Result<String, CliError> {
    let mut password = String::new();
    std::io::stdin().read_line(&mut password).map_err(|e| CliError::Failed(format!("cannot read stdin: {e}")))?;
    let password = password.trim_end_matches(['\r', '\n']).to_string();
    if password.is_empty() {
        return Err(CliError::Usage(
            "give the password on stdin (e.g. `read -s p; echo \"$p\" | tmctl users ...`)".into(),
        ));
    }
    Ok(password)
}

pub async fn users_cmd(settings: &Settings, cmd: UsersCmd) -> CliResult {
    let actor = Actor::local();
    let passwords = Passwords::default();
    match cmd {
        UsersCmd::Add { username, role } => {
            let role = role_arg(&role)?;
            users::check_name("user name", &username)?;
            let password = password_from_stdin()?;
            let store = open_store(settings).await?;
            users::add(&store, &passwords, &actor, &username, &password, role).await?;
            println!("user {username} added ({role})");
        }
        UsersCmd::List { json } => {
            let store = open_store(settings).await?;
            let rows = users::list(&store, &actor).await?;
            if json {
                let rows: Vec<serde_json::Value> = rows
                    .iter()
                    .map(|u| {
                        serde_json::json!({
                            "username": u.username, "role": u.role,
                            "created_at": u.created_at.to_rfc3339(), "updated_at": u.updated_at.to_rfc3339(),
                            "last_login_at": u.last_login_at.map(|t| t.to_rfc3339()),
                        })
                    })
                    .collect();
                return print_json(&rows);
            }
            let mut t = table();
            t.set_header(["user", "role", "created (UTC)", "changed (UTC)", "last login (UTC)"]);
            for u in &rows {
                t.add_row([
                    u.username.clone(),
                    u.role.clone(),
                    timefmt::to_db(u.created_at),
                    timefmt::to_db(u.updated_at),
                    u.last_login_at.map(timefmt::to_db).unwrap_or_else(|| "never".into()),
                ]);
            }
            println!("{t}");
            println!("(and the config user `{}`, an admin: web.password_hash or the API token)", settings.web_user);
        }
        UsersCmd::SetRole { username, role } => {
            let role = role_arg(&role)?;
            let store = open_store(settings).await?;
            users::set_role(&store, &actor, &username, role).await?;
            println!("user {username} is {role} now; their sessions ended");
        }
        UsersCmd::SetPassword { username } => {
            let password = password_from_stdin()?;
            let store = open_store(settings).await?;
            users::set_password(&store, &passwords, &actor, &username, &password).await?;
            println!("password of {username} set; their sessions ended");
        }
        UsersCmd::Remove { username } => {
            let store = open_store(settings).await?;
            users::remove(&store, &actor, &username).await?;
            println!("user {username} removed with their tokens and sessions");
        }
    }
    Ok(())
}

pub async fn tokens_cmd(settings: &Settings, cmd: TokensCmd) -> CliResult {
    let actor = Actor::local();
    match cmd {
        TokensCmd::Create { user, name, expires } => {
            let expires = match expires.as_deref() {
                None => None,
                Some(text) => match crate::dag::parse_duration(text) {
                    Ok(d) if !d.is_zero() => Some(d),
                    Ok(_) => return Err(CliError::Usage(format!("--expires \"{text}\" must be longer than zero"))),
                    Err(e) => return Err(CliError::Usage(format!("--expires: {e}"))),
                },
            };
            let store = open_store(settings).await?;
            let token = users::create_token(&store, &actor, &user, &name, expires).await?;
            eprintln!("token `{name}` of {user}: shown once, keep it (send it as `Authorization: Bearer <token>`)");
            println!("{token}");
        }
        TokensCmd::List { user, json } => {
            let store = open_store(settings).await?;
            let rows = users::list_tokens(&store, &actor, user.as_deref()).await?;
            let opt = |t: Option<chrono::DateTime<chrono::Utc>>| t.map(|t| t.to_rfc3339());
            if json {
                let rows: Vec<serde_json::Value> = rows
                    .iter()
                    .map(|t| {
                        serde_json::json!({
                            "user": t.username, "name": t.name, "created_at": t.created_at.to_rfc3339(),
                            "expires_at": opt(t.expires_at), "last_used_at": opt(t.last_used_at),
                        })
                    })
                    .collect();
                return print_json(&rows);
            }
            let mut t = table();
            t.set_header(["user", "name", "created (UTC)", "expires (UTC)", "last used (UTC)"]);
            for r in &rows {
                t.add_row([
                    r.username.clone(),
                    r.name.clone(),
                    timefmt::to_db(r.created_at),
                    r.expires_at.map(timefmt::to_db).unwrap_or_else(|| "never".into()),
                    r.last_used_at.map(timefmt::to_db).unwrap_or_else(|| "-".into()),
                ]);
            }
            println!("{t}");
        }
        TokensCmd::Revoke { user, name } => {
            let store = open_store(settings).await?;
            users::revoke_token(&store, &actor, &user, &name).await?;
            println!("token `{name}` of {user} revoked");
        }
    }
    Ok(())
}
