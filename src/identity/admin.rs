//! User administration (`/users`): creating local users, reading, changing,
//! approving, disabling and deleting users. The last active administrator
//! is always kept; disabling or deleting a user ends every credential of
//! theirs at once (through [`super::end_credentials_in`], in the
//! transaction of the change). Each change is recorded as an audit event in
//! its own transaction.

use serde::{Deserialize, Deserializer};
use serde_json::Value;

use super::audit::{self, Event, Kind, Origin};
use super::revocation::{Revocations, Revoked};
use super::users::{created_event, new_local_user, store_local_user, valid_email, CreateUserError, Username};
use super::{end_credentials_in, EndWhich, Identity, IdentityError, Principal};
use crate::db::users::{self as db_users, status, ListFilter, UserChanges, UserRow, UserView};
use crate::db::{self, DbConnection};

/// Default and largest page of `GET /users`.
pub const DEFAULT_LIMIT: i64 = 100;
pub const MAX_LIMIT: i64 = 1000;
/// Longest channel name.
pub const MAX_CHANNEL: usize = 150;

/// `GET /users` query.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Only users with this status: `active`, `pending` or `disabled`.
    #[param(pattern = "^(active|pending|disabled)$")]
    pub status: Option<String>,
    /// Part of a username or e-mail.
    pub q: Option<String>,
    /// Page size: 1 to 1000 (`MAX_LIMIT`), default 100.
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<i64>,
    /// The last username of the previous page.
    pub after: Option<String>,
}

/// One page of users; `next` is the `after` of the next page, when there may be one.
pub struct UserPage {
    pub users: Vec<UserView>,
    pub next: Option<String>,
}

/// `POST /users` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    /// ASCII letters, digits and `. @ + - _`; 1 to 150 (`users::MAX_USERNAME`).
    #[schema(pattern = r"^[A-Za-z0-9.@+_-]{1,150}$", min_length = 1, max_length = 150)]
    pub username: String,
    /// 8 characters (`password::MIN_LENGTH`) to 1024 bytes.
    #[schema(min_length = 8, max_length = 1024)]
    pub password: String,
    #[schema(max_length = 254)]
    pub email: Option<String>,
    #[serde(default)]
    pub is_admin: bool,
    /// Default: `auth.default_channel`.
    #[schema(min_length = 1, max_length = 150)]
    pub channel: Option<String>,
}

/// `PATCH /users/{username}` body; a field left out is left alone.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserPatch {
    /// `null` removes the e-mail.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub email: Option<Option<String>>,
    pub is_admin: Option<bool>,
    #[schema(min_length = 1, max_length = 150)]
    pub channel: Option<String>,
    /// `active` or `disabled` (which ends every session and API token of the user).
    #[schema(pattern = "^(active|disabled)$")]
    pub status: Option<String>,
}

/// `POST /users/{username}/approve` body; every field may be left out.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Approval {
    #[schema(min_length = 1, max_length = 150)]
    pub channel: Option<String>,
    pub is_admin: Option<bool>,
}

/// Tells a field given as `null` from one left out.
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

fn not_found(name: &str) -> IdentityError {
    IdentityError::NotFound(format!("no user {name:?}"))
}

fn channel(text: &str) -> Result<String, IdentityError> {
    let text = text.trim();
    if text.is_empty() || text.len() > MAX_CHANNEL || text.chars().any(char::is_control) {
        return Err(IdentityError::InvalidInput(format!("channel must be 1 to {MAX_CHANNEL} printable characters")));
    }
    Ok(text.to_string())
}

/// `GET /users`: users by username, filtered by `status` and `q`, a page at a time.
pub async fn list(identity: &Identity, query: ListQuery) -> Result<UserPage, IdentityError> {
    let limit = query.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(IdentityError::InvalidInput(format!("limit must be 1 to {MAX_LIMIT}")));
    }
    if let Some(s) = &query.status {
        if ![status::ACTIVE, status::PENDING, status::DISABLED].contains(&s.as_str()) {
            return Err(IdentityError::InvalidInput("status must be active, pending or disabled".into()));
        }
    }
    let q = query.q.map(|q| q.trim().to_string()).filter(|q| !q.is_empty());
    if q.as_ref().is_some_and(|q| q.len() > 254) {
        return Err(IdentityError::InvalidInput("q is at most 254 characters".into()));
    }
    // No stored name or address holds a control character, and PostgreSQL
    // refuses a NUL in any text: such a filter is bad input, not a query.
    for (key, value) in [("q", &q), ("after", &query.after)] {
        if value.as_deref().is_some_and(|v| v.chars().any(char::is_control)) {
            return Err(IdentityError::InvalidInput(format!("{key} must be printable characters")));
        }
    }
    let filter = ListFilter { status: query.status, q, after: query.after, limit };
    let users = identity.db.run(move |conn| db_users::list(conn, &filter)).await?;
    let next = (users.len() as i64 == limit).then(|| users.last().map(|u| u.user.username.clone())).flatten();
    Ok(UserPage { users, next })
}

/// `GET /users/{username}`.
pub async fn get(identity: &Identity, name: &str) -> Result<UserView, IdentityError> {
    Username::parse(name).map_err(|_| not_found(name))?;
    let key = name.to_string();
    identity
        .db
        .run(move |conn| match db_users::find_by_username(conn, &key)? {
            Some(user) => db_users::view_by_id(conn, &user.id),
            None => Ok(None),
        })
        .await?
        .ok_or_else(|| not_found(name))
}

/// `POST /users` by an administrator from `client`: a new local user with
/// a password.
pub async fn create(identity: &Identity, body: NewUser, client: &Origin) -> Result<UserView, IdentityError> {
    let channel = match body.channel.as_deref() {
        Some(c) => channel(c)?,
        None => identity.settings.default_channel.clone(),
    };
    let now = identity.clock.now_naive();
    let (audit, client) = (identity.audit.clone(), client.clone());
    let created = identity
        .db
        .run(move |conn| {
            let row = match new_local_user(&body.username, &body.password, body.email.as_deref(), body.is_admin, &channel, now) {
                Ok(row) => row,
                Err(CreateUserError::Db(e)) => return Err(e),
                Err(e) => return Ok(Err(e)),
            };
            db::write_transaction(conn, |conn| {
                match store_local_user(conn, &row) {
                    Ok(()) => {}
                    Err(CreateUserError::Db(e)) => return Err(e),
                    Err(e) => return Ok(Err(e)),
                }
                let event = audit.row(created_event(&row).origin(&client));
                db::audit_events::insert(conn, &event)?;
                Ok(Ok((db_users::view_by_id(conn, &row.id)?, event)))
            })
        })
        .await;
    let made = match created {
        Err(e) if e.is_unique_violation() => return Err(IdentityError::UsernameTaken(String::new())),
        other => other?,
    };
    match made {
        Ok((Some(view), event)) => {
            audit::log_stored(&[event]);
            Ok(view)
        }
        Ok((None, _)) => Err(IdentityError::Internal("the new user vanished".into())),
        Err(CreateUserError::Exists(name)) => Err(IdentityError::UsernameTaken(name)),
        Err(CreateUserError::InvalidUsername(m)) => Err(IdentityError::InvalidInput(format!("username: {m}"))),
        Err(CreateUserError::InvalidEmail) => Err(IdentityError::InvalidInput("email is not a valid e-mail address".into())),
        Err(CreateUserError::InvalidPassword(m)) => Err(IdentityError::InvalidInput(m)),
        Err(CreateUserError::Db(e)) => Err(IdentityError::Internal(Box::new(e))),
    }
}

/// Whether changing `user` so would leave no active administrator; called
/// inside the transaction that makes the change.
fn would_remove_last_admin(conn: &mut DbConnection, user: &UserRow, stays_active_admin: bool) -> diesel::QueryResult<bool> {
    if !(user.is_admin && user.is_active()) || stays_active_admin {
        return Ok(false);
    }
    Ok(db_users::other_active_admins(conn, &user.id)? == 0)
}

/// Outcome of a change inside its transaction.
enum Changed {
    /// The user as changed, the credentials that ended, the event recorded.
    Done(Box<(UserView, super::EndedCredentials, db::audit_events::AuditRow)>),
    NotFound,
    LastAdmin,
}

/// `PATCH /users/{username}` by `caller` from `client`: e-mail, admin flag,
/// channel, status. Disabling ends every session and API token of the user
/// at once, in the same transaction.
pub async fn update(
    identity: &Identity,
    caller: &Principal,
    name: &str,
    patch: UserPatch,
    client: &Origin,
) -> Result<UserView, IdentityError> {
    Username::parse(name).map_err(|_| not_found(name))?;
    let is_self = caller.username.eq_ignore_ascii_case(name);
    if is_self && patch.is_admin == Some(true) && !caller.is_admin {
        return Err(IdentityError::Forbidden("you cannot raise your own rights".into()));
    }
    let email = match patch.email {
        Some(Some(e)) if !valid_email(e.trim()) => {
            return Err(IdentityError::InvalidInput("email is not a valid e-mail address".into()))
        }
        Some(Some(e)) => Some(Some(e.trim().to_string())),
        Some(None) => Some(None),
        None => None,
    };
    let channel = patch.channel.as_deref().map(channel).transpose()?;
    let new_status = match patch.status.as_deref() {
        None => None,
        Some(s @ (status::ACTIVE | status::DISABLED)) => Some(s.to_string()),
        Some(status::PENDING) => {
            return Err(IdentityError::InvalidInput("status cannot be set to pending; use active or disabled".into()))
        }
        Some(_) => return Err(IdentityError::InvalidInput("status must be active or disabled".into())),
    };
    let now = identity.clock.now_naive();
    let key = name.to_string();
    let disabling = new_status.as_deref() == Some(status::DISABLED);
    let changes = UserChanges { email, is_admin: patch.is_admin, channel, status: new_status, updated_at: Some(now) };
    let (audit, client) = (identity.audit.clone(), client.by(&caller.username));
    let outcome = identity
        .db
        .run(move |conn| {
            db::write_transaction(conn, |conn| {
                let Some(user) = db_users::find_by_username(conn, &key)? else { return Ok(Changed::NotFound) };
                let stays_admin = changes.is_admin.unwrap_or(user.is_admin);
                let stays_active = changes.status.as_deref().map_or(user.is_active(), |s| s == status::ACTIVE);
                if would_remove_last_admin(conn, &user, stays_admin && stays_active)? {
                    return Ok(Changed::LastAdmin);
                }
                db_users::update(conn, &user.id, &changes)?;
                let ended = if disabling { end_credentials_in(conn, &user.id, EndWhich::ALL, now)? } else { Default::default() };
                if !disabling {
                    // Every instance reads the user's bearer tokens again (their
                    // cached views hold the old admin flag and channel).
                    Revocations::announce(conn, &Revoked::User(user.id.clone()))?;
                }
                let kind = if disabling { Kind::UserDisabled } else { Kind::UserChanged };
                let mut event =
                    Event::success(kind).username(&user.username).origin(&client).detail("changes", described(&changes));
                if disabling {
                    event = ended.counted(event);
                }
                let event = audit.row(event);
                db::audit_events::insert(conn, &event)?;
                Ok(match db_users::view_by_id(conn, &user.id)? {
                    Some(view) => Changed::Done(Box::new((view, ended, event))),
                    None => Changed::NotFound,
                })
            })
        })
        .await?;
    let (view, ended, event) = match outcome {
        Changed::Done(done) => *done,
        Changed::NotFound => return Err(not_found(name)),
        Changed::LastAdmin => return Err(IdentityError::LastAdmin),
    };
    audit::log_stored(&[event]);
    if disabling {
        identity.forget_ended(&ended);
    } else {
        identity.revocations.forget(&Revoked::User(view.user.id.clone()));
    }
    Ok(view)
}

/// What a change sets, for its audit event.
fn described(changes: &UserChanges) -> Value {
    let mut map = serde_json::Map::new();
    if let Some(email) = &changes.email {
        map.insert("email".into(), email.clone().into());
    }
    if let Some(is_admin) = changes.is_admin {
        map.insert("is_admin".into(), is_admin.into());
    }
    if let Some(channel) = &changes.channel {
        map.insert("channel".into(), channel.clone().into());
    }
    if let Some(status) = &changes.status {
        map.insert("status".into(), status.clone().into());
    }
    Value::Object(map)
}

/// `DELETE /users/{username}` by an administrator from `client`: the user,
/// their sessions, API tokens and provider identities; a pending user is so
/// rejected. One transaction ends the credentials, deletes the rows and
/// records it; then this instance forgets the credentials.
pub async fn delete(identity: &Identity, name: &str, client: &Origin) -> Result<(), IdentityError> {
    Username::parse(name).map_err(|_| not_found(name))?;
    let key = name.to_string();
    let now = identity.clock.now_naive();
    let (audit, client) = (identity.audit.clone(), client.clone());
    let outcome = identity
        .db
        .run(move |conn| {
            db::write_transaction(conn, |conn| {
                let Some(user) = db_users::find_by_username(conn, &key)? else { return Ok(Changed::NotFound) };
                if would_remove_last_admin(conn, &user, false)? {
                    return Ok(Changed::LastAdmin);
                }
                let ended = end_credentials_in(conn, &user.id, EndWhich::ALL, now)?;
                db_users::delete(conn, &user.id)?;
                let event = audit.row(
                    ended.counted(
                        Event::success(Kind::UserDeleted)
                            .username(&user.username)
                            .origin(&client)
                            .detail("status", user.status.clone())
                            .detail("external", user.is_external),
                    ),
                );
                db::audit_events::insert(conn, &event)?;
                let view = UserView { user, valid_until: None, providers: Vec::new() };
                Ok(Changed::Done(Box::new((view, ended, event))))
            })
        })
        .await?;
    match outcome {
        Changed::Done(done) => {
            let (_, ended, event) = *done;
            audit::log_stored(&[event]);
            identity.forget_ended(&ended);
            Ok(())
        }
        Changed::NotFound => Err(not_found(name)),
        Changed::LastAdmin => Err(IdentityError::LastAdmin),
    }
}

/// `POST /users/{username}/approve` by an administrator from `client`: a
/// pending user becomes active, with the channel and admin flag given (else
/// those they have).
pub async fn approve(identity: &Identity, name: &str, body: Approval, client: &Origin) -> Result<UserView, IdentityError> {
    Username::parse(name).map_err(|_| not_found(name))?;
    let channel = body.channel.as_deref().map(channel).transpose()?;
    let now = identity.clock.now_naive();
    let key = name.to_string();
    let changes = UserChanges {
        email: None,
        is_admin: body.is_admin,
        channel,
        status: Some(status::ACTIVE.to_string()),
        updated_at: Some(now),
    };
    let (audit, client) = (identity.audit.clone(), client.clone());
    let outcome = identity
        .db
        .run(move |conn| {
            db::write_transaction(conn, |conn| {
                let Some(user) = db_users::find_by_username(conn, &key)? else { return Ok(None) };
                if user.status != status::PENDING {
                    return Ok(Some(Err(())));
                }
                db_users::update(conn, &user.id, &changes)?;
                let Some(view) = db_users::view_by_id(conn, &user.id)? else { return Ok(None) };
                let event = audit.row(
                    Event::success(Kind::UserApproved)
                        .username(&user.username)
                        .origin(&client)
                        .detail("channel", view.user.channel.clone())
                        .detail("is_admin", view.user.is_admin),
                );
                db::audit_events::insert(conn, &event)?;
                Ok(Some(Ok((view, event))))
            })
        })
        .await?;
    match outcome {
        None => Err(not_found(name)),
        Some(Err(())) => Err(IdentityError::NotPending),
        Some(Ok((view, event))) => {
            audit::log_stored(&[event]);
            Ok(view)
        }
    }
}
