//! Users: usernames, local users with passwords (created, signing in,
//! changing their password), and the rows every new user starts from.

use std::net::IpAddr;

use chrono::NaiveDateTime;

use super::audit::{self, Event, Kind, Origin};
use super::{password, EndWhich, Identity, IdentityError, Principal, Scope};
use crate::db::{self, users::UserRow, users::UserView, DbConnection};

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
    /// At least one letter or digit must be left; room is kept for a
    /// `-` and 8 more characters that make a taken name unique.
    pub fn sanitize(text: &str) -> Option<Self> {
        let cleaned: String = text.chars().filter(|c| Self::allowed(*c)).take(MAX_USERNAME - 9).collect();
        if !cleaned.chars().any(|c| c.is_ascii_alphanumeric()) {
            return None;
        }
        Self::parse(&cleaned).ok()
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A new user row, made at `now`, with no password and no identity.
pub fn new_user_row(
    username: &Username,
    email: Option<String>,
    is_admin: bool,
    is_external: bool,
    channel: &str,
    now: NaiveDateTime,
) -> UserRow {
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
        status: db::users::status::ACTIVE.to_string(),
        last_login_at: None,
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
    now: NaiveDateTime,
) -> Result<UserRow, CreateUserError> {
    let row = new_local_user(name, password_text, email, is_admin, channel, now)?;
    store_local_user(conn, &row)?;
    Ok(row)
}

/// A new local user's row, checked and with its password hashed (slow:
/// off the async executor), not stored yet.
pub fn new_local_user(
    name: &str,
    password_text: &str,
    email: Option<&str>,
    is_admin: bool,
    channel: &str,
    now: NaiveDateTime,
) -> Result<UserRow, CreateUserError> {
    let username = Username::parse(name).map_err(CreateUserError::InvalidUsername)?;
    if let Some(e) = email {
        if !valid_email(e) {
            return Err(CreateUserError::InvalidEmail);
        }
    }
    password::check_policy(password_text).map_err(|e| CreateUserError::InvalidPassword(e.to_string()))?;
    let mut row = new_user_row(&username, email.map(str::to_string), is_admin, false, channel, now);
    row.password_hash = Some(password::hash(password_text).map_err(|e| CreateUserError::InvalidPassword(e.to_string()))?);
    Ok(row)
}

/// Stores a new local user's row unless the name is taken (whatever its case).
pub fn store_local_user(conn: &mut DbConnection, row: &UserRow) -> Result<(), CreateUserError> {
    if db::users::username_taken(conn, &row.username)? {
        return Err(CreateUserError::Exists(row.username.clone()));
    }
    db::users::insert(conn, row)?;
    Ok(())
}

/// The event of a new user `row` (never their password).
pub fn created_event(row: &UserRow) -> Event {
    Event::success(Kind::UserCreated)
        .username(&row.username)
        .detail("status", row.status.clone())
        .detail("is_admin", row.is_admin)
        .detail("channel", row.channel.clone())
        .detail("external", row.is_external)
}

/// A plausible e-mail address: something@domain, no spaces, at most 254 bytes.
pub fn valid_email(text: &str) -> bool {
    text.len() <= 254
        && !text.chars().any(|c| c.is_whitespace() || c.is_control())
        && text.split_once('@').is_some_and(|(local, domain)| !local.is_empty() && domain.contains('.') && !domain.contains('@'))
}

/// Checks a username and password from `client`; the user on success (the
/// caller opens the session, which records the sign-in). The attempt is
/// counted (per name and address, and per address, shared by every
/// instance) before anything is checked; past the limit it is refused
/// unchecked (429). A refusal is recorded with its reason (a flood past the
/// limit once a window); a fault of ours (the database, no free
/// password-check slot) is not a refusal.
pub async fn password_login(
    identity: &Identity,
    username: &str,
    password: &str,
    client: &Origin,
) -> Result<UserView, IdentityError> {
    if !identity.settings.password_login {
        return Err(IdentityError::PasswordLoginDisabled);
    }
    // A name no account can have is refused before any lookup (nor is it
    // recorded: it touches no account, and costs the sender nothing).
    if Username::parse(username).is_err() || password.is_empty() {
        return Err(IdentityError::BadCredentials);
    }
    let result = check_password(identity, username, password, client.ip_or_unspecified()).await;
    sign_in_counted(match &result {
        Ok(_) => "success",
        Err(Refused { reason: Some("too_many_attempts"), .. }) => "throttled",
        Err(Refused { reason: Some("account_disabled" | "approval_pending"), .. }) => "refused",
        Err(_) => "failure",
    });
    if let Err(refused) = &result {
        if let (Some(reason), false) = (refused.reason, refused.recorded) {
            let mut event = Event::failure(Kind::SignIn).origin(client).detail("method", "password").detail("reason", reason);
            // The account's name as stored, else the name as typed (a well-formed one, never free text).
            event = event.username(refused.username.as_deref().unwrap_or(username));
            identity.audit.record(event).await;
        }
    }
    result.map_err(|refused| refused.error)
}

/// A password sign-in that did not go through.
struct Refused {
    error: IdentityError,
    /// What the audit event says; `None`: no refusal, a fault of ours.
    reason: Option<&'static str>,
    /// The account's name as stored, when one was found.
    username: Option<String>,
    /// Whether an event for it is already there (a throttled attempt after
    /// the window's first refusal).
    recorded: bool,
}

impl<E: Into<IdentityError>> From<E> for Refused {
    fn from(err: E) -> Self {
        Self { error: err.into(), reason: None, username: None, recorded: false }
    }
}

async fn check_password(identity: &Identity, username: &str, password: &str, ip: IpAddr) -> Result<UserView, Refused> {
    let attempt = match identity.throttle.password(username, ip).await? {
        Ok(attempt) => attempt,
        // A flood past the limit is recorded once a window.
        Err(throttled) => {
            let error = IdentityError::TooManyAttempts(throttled.wait);
            return Err(Refused { error, reason: Some("too_many_attempts"), username: None, recorded: !throttled.first });
        }
    };
    let name = username.to_string();
    let view = identity
        .db
        .run(move |conn| match db::users::find_by_username(conn, &name)? {
            Some(user) => db::users::view_by_id(conn, &user.id),
            None => Ok(None),
        })
        .await?;
    let stored = view.as_ref().and_then(|v| v.user.password_hash.clone());
    let has_password = stored.is_some();
    let matches = identity.passwords.verify(stored, password.to_string()).await?;
    let refused = |reason, view: &Option<UserView>, error| Refused {
        error,
        reason: Some(reason),
        username: view.as_ref().map(|v| v.user.username.clone()),
        recorded: false,
    };
    if !matches {
        let reason = match &view {
            None => "unknown_user",
            Some(_) if !has_password => "no_password",
            Some(_) => "wrong_password",
        };
        return Err(refused(reason, &view, IdentityError::BadCredentials));
    }
    let Some(view) = view else { return Err(refused("unknown_user", &None, IdentityError::BadCredentials)) };
    identity.throttle.succeeded(attempt).await?;
    // Only someone who knows the password learns that the account is disabled.
    if let Err(err) = super::check_status(&view.user) {
        let reason = if matches!(err, IdentityError::ApprovalPending) { "approval_pending" } else { "account_disabled" };
        return Err(refused(reason, &Some(view), err));
    }
    let (id, now) = (view.user.id.clone(), identity.clock.now_naive());
    identity.db.run(move |conn| db::users::record_login(conn, &id, now)).await?;
    Ok(view)
}

/// Counts a password sign-in by outcome (`GET /metrics`).
fn sign_in_counted(outcome: &'static str) {
    metrics::counter!("doorman_sign_ins_total", "method" => "password", "outcome" => outcome).increment(1);
}

/// `PUT /users/{username}/password`: the user with their old password, or
/// an admin without. Ends the user's other browser sessions and revokes
/// their API tokens; a change of one's own password may keep the tokens
/// with `keep_api_tokens`.
pub async fn change_password(
    identity: &Identity,
    caller: &Principal,
    target: &str,
    new_password: String,
    old_password: Option<String>,
    keep_api_tokens: bool,
    client: &Origin,
) -> Result<(), IdentityError> {
    let is_self = caller.username.eq_ignore_ascii_case(target);
    let as_admin = caller.scopes.contains(Scope::UsersAdmin);
    if !is_self && !as_admin {
        return Err(IdentityError::InsufficientScope(Scope::UsersAdmin));
    }
    let not_found = || IdentityError::NotFound(format!("no user {target:?}"));
    Username::parse(target).map_err(|_| not_found())?;
    let name = target.to_string();
    let user = identity.db.run(move |conn| db::users::find_by_username(conn, &name)).await?.ok_or_else(not_found)?;
    if user.is_external {
        return Err(IdentityError::ExternalUser);
    }
    password::check_policy(&new_password)?;
    if is_self && !(as_admin && old_password.is_none()) {
        let old = old_password
            .ok_or_else(|| IdentityError::InvalidInput("old_password is required to change your own password".into()))?;
        if !identity.passwords.verify(user.password_hash.clone(), old).await? {
            let event = Event::failure(Kind::PasswordChanged)
                .username(&user.username)
                .origin(&client.by(&caller.username))
                .detail("reason", "wrong_old_password");
            identity.audit.record(event).await;
            return Err(IdentityError::Forbidden("old_password is wrong".into()));
        }
    }
    if keep_api_tokens && !is_self {
        return Err(IdentityError::InvalidInput("keep_api_tokens applies only to a change of your own password".into()));
    }
    let hash = identity.passwords.hash(new_password).await?;
    let keep = if is_self { caller.session_id().map(str::to_string) } else { None };
    let now = identity.clock.now_naive();
    let event = Event::success(Kind::PasswordChanged)
        .username(&user.username)
        .origin(&client.by(&caller.username))
        .detail("by_admin", !is_self)
        .detail("kept_api_tokens", keep_api_tokens);
    let audit = identity.audit.clone();
    let which_tokens = !keep_api_tokens;
    let (ended, row) = identity
        .db
        .run(move |conn| {
            db::write_transaction(conn, |conn| {
                db::users::set_password_hash(conn, &user.id, &hash, now)?;
                let which = EndWhich { sessions: true, keep_session: keep.as_deref(), api_tokens: which_tokens };
                let ended = super::end_credentials_in(conn, &user.id, which, now)?;
                let row = audit.row(ended.counted(event));
                db::audit_events::insert(conn, &row)?;
                Ok((ended, row))
            })
        })
        .await?;
    audit::log_stored(&[row]);
    identity.forget_ended(&ended);
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
        assert!(Username::sanitize("山田@例え.日本").is_none(), "punctuation alone is no name");
    }

    #[test]
    fn emails() {
        assert!(valid_email("a@b.c"));
        assert!(!valid_email("a@b"));
        assert!(!valid_email("@b.c"));
        assert!(!valid_email("a b@c.d"));
    }
}
