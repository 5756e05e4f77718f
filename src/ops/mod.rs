//! The operations layer: every mutating action the web UI and the JSON API offer (trigger, clear,
//! mark, pause, backfills, users, tokens) is one function here. Each checks the actor's [`Role`],
//! writes one `audit_log` row (who, what, target, result, refusals included) and returns a typed
//! [`OpError`]; `web` and `daemon::api` only turn that into a page or a JSON body.

pub mod passwords;
pub mod runs;
pub mod users;

use std::fmt;
use std::str::FromStr;

use axum::http::StatusCode;

use crate::store::{Store, StoreError};

/// What a user may do. Ordered: each role can do what the ones before it can.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// Reads every page and GET API call.
    Viewer,
    /// Viewer + trigger, clear, mark, pause, backfills.
    Operator,
    /// Operator + users, tokens and the audit log.
    Admin,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Viewer, Role::Operator, Role::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> Result<Role, String> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s.trim())
            .ok_or_else(|| format!("role `{s}` is not one of viewer, operator, admin"))
    }
}

/// Who asks for an action: a user name (or `anonymous`) and the role they act with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    pub name: String,
    /// `None`: not logged in (anonymous read access); may do nothing that changes state.
    pub role: Option<Role>,
}

impl Actor {
    pub fn new(name: impl Into<String>, role: Role) -> Actor {
        Actor { name: name.into(), role: Some(role) }
    }

    /// Someone running `tmctl` on the machine with access to the state DB: an admin, named after
    /// the OS user so the audit log says who.
    pub fn local() -> Actor {
        let user = std::env::var("USER").or_else(|_| std::env::var("LOGNAME")).unwrap_or_else(|_| "unknown".into());
        Actor::new(format!("cli:{user}"), Role::Admin)
    }

    pub fn can(&self, role: Role) -> bool {
        self.role.is_some_and(|r| r >= role)
    }
}

/// Why an operation was refused or failed. [`OpError::status`] is the only mapping to HTTP.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpError {
    #[error("{0}")]
    NotFound(String),
    /// The target is in a state that does not allow it (a run in flight, a name taken).
    #[error("{0}")]
    Conflict(String),
    /// The actor's role does not allow it.
    #[error("{0}")]
    Forbidden(String),
    /// Bad input, named.
    #[error("{0}")]
    Invalid(String),
    /// The state DB failed (logged in full).
    #[error("{0}")]
    Internal(String),
}

impl OpError {
    pub fn status(&self) -> StatusCode {
        match self {
            OpError::NotFound(_) => StatusCode::NOT_FOUND,
            OpError::Conflict(_) => StatusCode::CONFLICT,
            OpError::Forbidden(_) => StatusCode::FORBIDDEN,
            OpError::Invalid(_) => StatusCode::BAD_REQUEST,
            OpError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            OpError::NotFound(_) => "not found",
            OpError::Conflict(_) => "conflict",
            OpError::Forbidden(_) => "forbidden",
            OpError::Invalid(_) => "invalid",
            OpError::Internal(_) => "error",
        }
    }
}

impl From<StoreError> for OpError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(m) => OpError::Conflict(m),
            StoreError::NotFound(m) => OpError::NotFound(m),
            other => {
                tracing::error!(error = %other, "state DB error in an operation");
                OpError::Internal(format!("state DB error: {other}"))
            }
        }
    }
}

impl From<crate::executor::ExecError> for OpError {
    fn from(e: crate::executor::ExecError) -> Self {
        match e {
            crate::executor::ExecError::InFlight(m) => OpError::Conflict(m),
            crate::executor::ExecError::Invalid(m) => OpError::Invalid(m),
            crate::executor::ExecError::Store(e) => e.into(),
        }
    }
}

/// Refuses (403) unless the actor has at least `role`.
pub fn require(actor: &Actor, role: Role, what: &str) -> Result<(), OpError> {
    if actor.can(role) {
        return Ok(());
    }
    Err(OpError::Forbidden(match actor.role {
        None => format!("log in to {what}"),
        Some(r) => format!("{what} needs the {role} role; `{}` is {r}", actor.name),
    }))
}

/// [`require`] for a handler that must refuse before it can even parse its input (the trigger
/// form, the API's trigger and backfill bodies); a refusal is audited like any other.
pub async fn require_audited(
    store: &Store,
    actor: &Actor,
    role: Role,
    what: &str,
    action: &str,
    target: &str,
) -> Result<(), OpError> {
    match require(actor, role, what) {
        Ok(()) => Ok(()),
        refused => audited(store, actor, action, target, refused).await,
    }
}

/// Writes the outcome of `action` on `target` to the audit log and hands it back. A failing
/// audit write is logged; it does not undo what was done.
pub async fn audited<T>(
    store: &Store,
    actor: &Actor,
    action: &str,
    target: &str,
    outcome: Result<T, OpError>,
) -> Result<T, OpError> {
    let result = match &outcome {
        Ok(_) => "ok".to_string(),
        Err(e) => format!("{}: {e}", e.kind()),
    };
    if let Err(e) = store.audit(&actor.name, action, target, &result).await {
        tracing::error!(error = %e, actor = %actor.name, action, target, "cannot write the audit log");
    }
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_are_ordered_and_parsed_by_name() {
        assert!(Role::Admin > Role::Operator && Role::Operator > Role::Viewer);
        assert_eq!("operator".parse::<Role>(), Ok(Role::Operator));
        assert_eq!("root".parse::<Role>().unwrap_err(), "role `root` is not one of viewer, operator, admin");
    }

    #[test]
    fn refusals_name_the_role_needed() {
        let viewer = Actor::new("vera", Role::Viewer);
        assert_eq!(
            require(&viewer, Role::Operator, "trigger a run").unwrap_err(),
            OpError::Forbidden("trigger a run needs the operator role; `vera` is viewer".into())
        );
        assert!(require(&Actor::new("otto", Role::Admin), Role::Operator, "x").is_ok());
        let anon = Actor { name: "anonymous".into(), role: None };
        assert_eq!(require(&anon, Role::Viewer, "x").unwrap_err().status(), StatusCode::FORBIDDEN);
    }
}
