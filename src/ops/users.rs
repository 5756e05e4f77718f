//! Users, roles and API tokens: `tmctl users …` / `tmctl tokens …` (a local admin) call these.
//! A role or password change ends the user's sessions (`store::users`). Tokens are 256 random
//! bits shown once; only their SHA-256 is stored.

use std::time::Duration;

use sha2::{Digest, Sha256};

use super::passwords::{Passwords, check_new};
use super::{Actor, OpError, Role, audited, require};
use crate::store::{Store, TokenRow, UserRow};

/// A user or token name: 1–64 of letters, digits, `.`, `_`, `-`, `@`.
pub fn check_name(what: &str, name: &str) -> Result<(), OpError> {
    let ok = (1..=64).contains(&name.len())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'));
    if ok {
        Ok(())
    } else {
        Err(OpError::Invalid(format!("{what} `{name}` must be 1-64 of letters, digits, '.', '_', '-', '@'")))
    }
}

/// The hex SHA-256 of a token, as stored.
pub fn token_hash(token: &str) -> String {
    crate::util::hex(&Sha256::digest(token.as_bytes()))
}

pub async fn list(store: &Store, actor: &Actor) -> Result<Vec<UserRow>, OpError> {
    require(actor, Role::Admin, "list users")?;
    Ok(store.list_users().await?)
}

pub async fn add(
    store: &Store,
    passwords: &Passwords,
    actor: &Actor,
    username: &str,
    password: &str,
    role: Role,
) -> Result<(), OpError> {
    let outcome = async {
        require(actor, Role::Admin, "add users")?;
        check_name("user name", username)?;
        check_new(password)?;
        let hash = passwords.hash(password.to_string()).await?;
        Ok(store.create_user(username, &hash, role.as_str()).await?)
    }
    .await;
    audited(store, actor, "users.add", &format!("user {username} ({role})"), outcome).await
}

fn no_user(username: &str) -> OpError {
    OpError::NotFound(format!("no user `{username}` (see `tmctl users list`)"))
}

pub async fn set_role(store: &Store, actor: &Actor, username: &str, role: Role) -> Result<(), OpError> {
    let outcome = async {
        require(actor, Role::Admin, "change roles")?;
        if store.set_user_role(username, role.as_str()).await? { Ok(()) } else { Err(no_user(username)) }
    }
    .await;
    audited(store, actor, "users.set-role", &format!("user {username} ({role})"), outcome).await
}

pub async fn set_password(
    store: &Store,
    passwords: &Passwords,
    actor: &Actor,
    username: &str,
    password: &str,
) -> Result<(), OpError> {
    let outcome = async {
        require(actor, Role::Admin, "set passwords")?;
        check_new(password)?;
        let hash = passwords.hash(password.to_string()).await?;
        if store.set_user_password(username, &hash).await? { Ok(()) } else { Err(no_user(username)) }
    }
    .await;
    audited(store, actor, "users.set-password", &format!("user {username}"), outcome).await
}

pub async fn remove(store: &Store, actor: &Actor, username: &str) -> Result<(), OpError> {
    let outcome = async {
        require(actor, Role::Admin, "remove users")?;
        if store.delete_user(username).await? { Ok(()) } else { Err(no_user(username)) }
    }
    .await;
    audited(store, actor, "users.remove", &format!("user {username}"), outcome).await
}

/// Creates a token for `username` named `name`, valid for `expires` (or forever); returns the
/// token itself, which is stored nowhere.
pub async fn create_token(
    store: &Store,
    actor: &Actor,
    username: &str,
    name: &str,
    expires: Option<Duration>,
) -> Result<String, OpError> {
    let outcome = async {
        require(actor, Role::Admin, "create tokens")?;
        check_name("token name", name)?;
        if store.get_user(username).await?.is_none() {
            return Err(OpError::NotFound(format!(
                "no user `{username}`: tokens belong to users of `tmctl users add` (the config user \
                 uses api.token or <home>/api-token)"
            )));
        }
        let expires_at = match expires {
            None => None,
            Some(d) => Some(
                chrono::Duration::from_std(d)
                    .ok()
                    .and_then(|d| chrono::Utc::now().checked_add_signed(d))
                    .ok_or_else(|| OpError::Invalid(format!("--expires {d:?} is too far away")))?,
            ),
        };
        let token = format!("tmu_{}", crate::web::auth::random_token());
        store.create_token(username, name, &token_hash(&token), expires_at).await?;
        Ok(token)
    }
    .await;
    audited(store, actor, "tokens.create", &format!("token {name} of {username}"), outcome).await
}

pub async fn list_tokens(store: &Store, actor: &Actor, username: Option<&str>) -> Result<Vec<TokenRow>, OpError> {
    require(actor, Role::Admin, "list tokens")?;
    Ok(store.list_tokens(username).await?)
}

pub async fn revoke_token(store: &Store, actor: &Actor, username: &str, name: &str) -> Result<(), OpError> {
    let outcome = async {
        require(actor, Role::Admin, "revoke tokens")?;
        if store.delete_token(username, name).await? {
            Ok(())
        } else {
            Err(OpError::NotFound(format!("user `{username}` has no token named `{name}` (see `tmctl tokens list`)")))
        }
    }
    .await;
    audited(store, actor, "tokens.revoke", &format!("token {name} of {username}"), outcome).await
}
