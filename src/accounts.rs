//! Accounts: usernames, creating local users, changing passwords, and the
//! JSON view of a user.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::auth::{password, AuthError, Principal, Scope};
use crate::db::{self, users::UserRow, users::UserView, DbConnection};
use crate::state::AppState;

/// Longest username.
pub const MAX_USERNAME: usize = 150;

/// A valid username: 1 to 150 of ASCII letters, digits and `. @ + - _`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Username(String);

impl Username {
    pub fn parse(text: &str) -> Result<Self, String> {
        if text.is_empty() || text.len() > MAX_USERNAME {
            return Err(format!("a username has 1 to {MAX_USERNAME} characters"));
        }
        if !text.chars().all(Self::allowed) {
            return Err("a username may hold only ASCII letters, digits and . @ + - _".into());
        }
        Ok(Self(text.to_string()))
    }

    fn allowed(c: char) -> bool {
        c.is_ascii_alphanumeric() || matches!(c, '.' | '@' | '+' | '-' | '_')
    }

    /// The closest valid username to `text` (for names from a provider),
    /// or `None` when nothing usable is left.
    pub fn sanitize(text: &str) -> Option<Self> {
        let cleaned: String = text.chars().filter(|c| Self::allowed(*c)).take(MAX_USERNAME - 8).collect();
        Self::parse(&cleaned).ok()
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A user as `GET /me` and `GET /users` show it.
#[derive(Debug, Serialize)]
pub struct UserJson {
    pub username: String,
    pub email: Option<String>,
    pub channel: String,
    pub is_admin: bool,
    pub is_external_user: bool,
    pub valid_until: Option<DateTime<Utc>>,
}

impl From<&UserView> for UserJson {
    fn from(v: &UserView) -> Self {
        Self {
            username: v.user.username.clone(),
            email: v.user.email.clone(),
            channel: v.user.channel.clone(),
            is_admin: v.user.is_admin,
            is_external_user: v.user.is_external,
            valid_until: v.valid_until.map(|t| t.and_utc()),
        }
    }
}

impl From<&Principal> for UserJson {
    fn from(p: &Principal) -> Self {
        Self {
            username: p.username.clone(),
            email: p.email.clone(),
            channel: p.channel.clone(),
            is_admin: p.is_admin,
            is_external_user: p.is_external,
            valid_until: p.valid_until,
        }
    }
}

/// A new user row with no password and no identity.
pub fn new_user_row(username: &Username, email: Option<String>, is_admin: bool, is_external: bool, channel: &str) -> UserRow {
    let now = db::now();
    UserRow {
        id: db::new_id(),
        username: username.as_str().to_string(),
        email,
        display_name: None,
        password_hash: None,
        is_admin,
        is_external,
        channel: channel.to_string(),
        created_at: now,
        updated_at: now,
    }
}

/// Why a local user could not be created.
#[derive(Debug, thiserror::Error)]
pub enum CreateUserError {
    #[error("invalid username: {0}")]
    InvalidUsername(String),
    #[error("invalid e-mail address")]
    InvalidEmail,
    #[error("{0}")]
    InvalidPassword(String),
    #[error("user {0:?} already exists")]
    Exists(String),
    #[error(transparent)]
    Db(#[from] diesel::result::Error),
}

/// Creates a local user with a password (synchronous: the command line).
pub fn create_local_user(
    conn: &mut DbConnection,
    name: &str,
    password_text: &str,
    email: Option<&str>,
    is_admin: bool,
    channel: &str,
) -> Result<UserRow, CreateUserError> {
    let username = Username::parse(name).map_err(CreateUserError::InvalidUsername)?;
    if let Some(e) = email {
        if !valid_email(e) {
            return Err(CreateUserError::InvalidEmail);
        }
    }
    password::check_policy(password_text).map_err(|e| CreateUserError::InvalidPassword(e.to_string()))?;
    if db::users::username_taken(conn, username.as_str())? {
        return Err(CreateUserError::Exists(username.as_str().to_string()));
    }
    let mut row = new_user_row(&username, email.map(str::to_string), is_admin, false, channel);
    row.password_hash = Some(password::hash(password_text).map_err(|e| CreateUserError::InvalidPassword(e.to_string()))?);
    db::users::insert(conn, &row)?;
    Ok(row)
}

/// A plausible e-mail address: something@domain, no spaces, at most 254 bytes.
pub fn valid_email(text: &str) -> bool {
    text.len() <= 254
        && !text.chars().any(|c| c.is_whitespace() || c.is_control())
        && text.split_once('@').is_some_and(|(local, domain)| !local.is_empty() && domain.contains('.') && !domain.contains('@'))
}

/// `PUT /users/{username}/password`: the user with their old password, or
/// an admin without. Ends the user's other browser sessions.
pub async fn change_password(
    state: &AppState,
    caller: &Principal,
    target: &str,
    new_password: String,
    old_password: Option<String>,
) -> Result<(), AuthError> {
    let is_self = caller.username == target;
    let as_admin = caller.scopes.contains(Scope::UsersAdmin);
    if !is_self && !as_admin {
        return Err(AuthError::InsufficientScope(Scope::UsersAdmin));
    }
    Username::parse(target).map_err(|_| AuthError::NotFound(format!("no user {target:?}")))?;
    let name = target.to_string();
    let user = state
        .db
        .run(move |conn| db::users::find_by_username(conn, &name))
        .await?
        .ok_or_else(|| AuthError::NotFound(format!("no user {target:?}")))?;
    if user.is_external {
        return Err(AuthError::ExternalUser);
    }
    password::check_policy(&new_password)?;
    if is_self && !(as_admin && old_password.is_none()) {
        let old =
            old_password.ok_or_else(|| AuthError::InvalidInput("old_password is required to change your own password".into()))?;
        if !password::verify_blocking(user.password_hash.clone(), old).await? {
            return Err(AuthError::Forbidden("old_password is wrong".into()));
        }
    }
    let hash = password::hash_blocking(new_password).await?;
    let keep = if is_self { caller.session_id().map(str::to_string) } else { None };
    let user_id = user.id.clone();
    let ended = state
        .db
        .run(move |conn| {
            db::write_transaction(conn, |conn| {
                db::users::set_password_hash(conn, &user_id, &hash)?;
                db::sessions::revoke_all_for_user(conn, &user_id, keep.as_deref())
            })
        })
        .await?;
    for id in ended {
        state.session_cache.invalidate(&id);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames() {
        assert!(Username::parse("alice").is_ok());
        assert!(Username::parse("a.b+c@d-e_f").is_ok());
        assert!(Username::parse("").is_err());
        assert!(Username::parse("robert'); DROP TABLE users;--").is_err());
        assert!(Username::parse("zoë").is_err());
        assert!(Username::parse(&"a".repeat(151)).is_err());
        assert_eq!(Username::sanitize("Zoë Smith").unwrap().as_str(), "ZoSmith");
        assert!(Username::sanitize("漢字").is_none());
    }

    #[test]
    fn emails() {
        assert!(valid_email("a@b.c"));
        assert!(!valid_email("a@b"));
        assert!(!valid_email("@b.c"));
        assert!(!valid_email("a b@c.d"));
    }
}
