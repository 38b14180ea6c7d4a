//! Audit events: what happened to whom, by whom and from where, stored in
//! `audit_events` (in the same transaction as what they record, where there
//! is one), one line each on the `doorman::audit` log target, listed newest
//! first for administrators and deleted past `audit.retention`.
//!
//! Never a secret: an event holds names, ids, addresses, user agents,
//! outcomes and reasons, nothing a caller could present to get in.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, NaiveDateTime, Utc};
use serde::Serialize;
use serde_json::{Map, Value};

use super::IdentityError;
use crate::clock::Clock;
use crate::config::Ttl;
use crate::db::audit_events::{self, AuditRow, Filter};
use crate::db::{self, Db};

/// The log target every event is written to.
pub const LOG_TARGET: &str = "doorman::audit";
/// Events per page when `limit` is not given, and at most.
pub const DEFAULT_LIMIT: i64 = 100;
pub const MAX_LIMIT: i64 = 1000;
/// Events deleted per statement by the retention sweep.
const SWEEP_BATCH: i64 = 10_000;

/// Every kind of event; adding one is a line here, in `ALL` and in `as_str`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A sign-in, by password or through a provider (`detail.method`); a
    /// failure holds its `detail.reason` (a refusal by the provider's rules,
    /// a pending or disabled account, a wrong password, too many attempts...).
    SignIn,
    /// A user ended their own browser session (`POST /me/logout`).
    SignOut,
    /// A browser session ended from the session list (`DELETE /me/sessions/{id}`).
    SessionEnded,
    /// An administrator ended every session and API token of a user.
    UserSignedOut,
    /// A provider account linked to a signed-in user (or the attempt).
    IdentityLinked,
    /// A new user: by an administrator, from the command line, or at a first
    /// sign-in through a provider.
    UserCreated,
    /// An administrator changed a user (`detail.changes`).
    UserChanged,
    /// An administrator disabled a user: every credential of theirs ended.
    UserDisabled,
    /// An administrator deleted (or rejected) a user.
    UserDeleted,
    /// An administrator approved a pending user.
    UserApproved,
    PasswordChanged,
    ApiTokenCreated,
    ApiTokenRevoked,
    /// A signed-in user approved a command-line tool's request (RFC 8628).
    DeviceApproved,
    /// A signed-in user denied a command-line tool's request.
    DeviceDenied,
    /// `POST /token` with client credentials that were refused.
    ClientCredentialsFailed,
    /// A background or immediate refresh at a provider (`detail.result`).
    ProviderRefresh,
    /// A provider's back-channel logout token.
    BackchannelLogout,
    /// A new signing key (`doorman rotate-keys`).
    KeyRotated,
}

impl Kind {
    pub const ALL: [Kind; 19] = [
        Kind::SignIn,
        Kind::SignOut,
        Kind::SessionEnded,
        Kind::UserSignedOut,
        Kind::IdentityLinked,
        Kind::UserCreated,
        Kind::UserChanged,
        Kind::UserDisabled,
        Kind::UserDeleted,
        Kind::UserApproved,
        Kind::PasswordChanged,
        Kind::ApiTokenCreated,
        Kind::ApiTokenRevoked,
        Kind::DeviceApproved,
        Kind::DeviceDenied,
        Kind::ClientCredentialsFailed,
        Kind::ProviderRefresh,
        Kind::BackchannelLogout,
        Kind::KeyRotated,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::SignIn => "sign_in",
            Kind::SignOut => "sign_out",
            Kind::SessionEnded => "session_ended",
            Kind::UserSignedOut => "user_signed_out",
            Kind::IdentityLinked => "identity_linked",
            Kind::UserCreated => "user_created",
            Kind::UserChanged => "user_changed",
            Kind::UserDisabled => "user_disabled",
            Kind::UserDeleted => "user_deleted",
            Kind::UserApproved => "user_approved",
            Kind::PasswordChanged => "password_changed",
            Kind::ApiTokenCreated => "api_token_created",
            Kind::ApiTokenRevoked => "api_token_revoked",
            Kind::DeviceApproved => "device_approved",
            Kind::DeviceDenied => "device_denied",
            Kind::ClientCredentialsFailed => "client_credentials_failed",
            Kind::ProviderRefresh => "provider_refresh",
            Kind::BackchannelLogout => "backchannel_logout",
            Kind::KeyRotated => "key_rotated",
        }
    }

    pub fn parse(text: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == text)
    }
}

/// Whether what an event records succeeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    Failure,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Failure => "failure",
        }
    }
}

/// Who acted and from where, as the HTTP layer found them (plain values;
/// the address is the client's per `server.trusted_proxies`).
#[derive(Debug, Clone, Default)]
pub struct Origin {
    /// The username of the caller who acted, when signed in.
    pub actor: Option<String>,
    pub ip: Option<IpAddr>,
    pub user_agent: Option<String>,
}

impl Origin {
    /// The same client, acting as `actor`.
    pub fn by(&self, actor: &str) -> Origin {
        Origin { actor: Some(actor.to_string()), ..self.clone() }
    }

    /// The client's address; the unspecified address when none is known
    /// (never from HTTP, where there always is one).
    pub fn ip_or_unspecified(&self) -> IpAddr {
        self.ip.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
    }
}

/// An event about to be recorded.
#[derive(Debug, Clone)]
pub struct Event {
    pub kind: Kind,
    pub outcome: Outcome,
    /// The user the event is about.
    pub username: Option<String>,
    pub origin: Origin,
    pub detail: Map<String, Value>,
}

impl Event {
    pub fn new(kind: Kind, outcome: Outcome) -> Self {
        Self { kind, outcome, username: None, origin: Origin::default(), detail: Map::new() }
    }

    pub fn success(kind: Kind) -> Self {
        Self::new(kind, Outcome::Success)
    }

    pub fn failure(kind: Kind) -> Self {
        Self::new(kind, Outcome::Failure)
    }

    pub fn username(mut self, name: impl Into<String>) -> Self {
        self.username = Some(name.into());
        self
    }

    pub fn origin(mut self, origin: &Origin) -> Self {
        self.origin = origin.clone();
        self
    }

    /// Adds `key: value` to the detail (never a secret).
    pub fn detail(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.detail.insert(key.to_string(), value.into());
        self
    }

    /// The row to store, stamped `at`.
    pub fn into_row(self, at: NaiveDateTime) -> AuditRow {
        AuditRow {
            id: db::new_id(),
            at,
            kind: self.kind.as_str().to_string(),
            outcome: self.outcome.as_str().to_string(),
            username: self.username,
            actor: self.origin.actor,
            ip: self.origin.ip.map(|ip| ip.to_string()),
            user_agent: self.origin.user_agent,
            detail: Value::Object(self.detail).to_string(),
        }
    }
}

/// An event as `GET /audit-events` and the log show it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct EventJson {
    pub id: String,
    pub at: DateTime<Utc>,
    pub kind: String,
    pub outcome: String,
    pub username: Option<String>,
    pub actor: Option<String>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    /// What happened, by kind; never a secret.
    #[schema(value_type = Object)]
    pub detail: Value,
}

impl From<&AuditRow> for EventJson {
    fn from(row: &AuditRow) -> Self {
        Self {
            id: row.id.clone(),
            at: row.at.and_utc(),
            kind: row.kind.clone(),
            outcome: row.outcome.clone(),
            username: row.username.clone(),
            actor: row.actor.clone(),
            ip: row.ip.clone(),
            user_agent: row.user_agent.clone(),
            detail: serde_json::from_str(&row.detail).unwrap_or(Value::Null),
        }
    }
}

/// Writes the log line of each stored event; called once they are committed.
/// Nothing is serialised when the log leaves such lines out.
pub fn log_stored(rows: &[AuditRow]) {
    if !log::log_enabled!(target: LOG_TARGET, log::Level::Info) {
        return;
    }
    for row in rows {
        let line = serde_json::to_string(&EventJson::from(row)).unwrap_or_default();
        log::info!(target: LOG_TARGET, "{line}");
    }
}

/// A page of `GET /audit-events`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = AuditPage)]
pub struct Page {
    pub events: Vec<EventJson>,
    /// Pass as `cursor` for the next page; `None` on the last.
    pub next: Option<String>,
}

/// What `GET /audit-events` asks, as text from the query string.
#[derive(Debug, Default, Clone)]
pub struct ListQuery {
    pub username: Option<String>,
    pub kind: Option<String>,
    pub since: Option<String>,
    pub before: Option<String>,
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

/// The audit trail of one instance; cheap to clone.
#[derive(Clone)]
pub struct Audit {
    db: Db,
    clock: Clock,
    retention: Ttl,
}

impl Audit {
    pub fn new(db: Db, clock: Clock, retention: Ttl) -> Self {
        Self { db, clock, retention }
    }

    /// The row of `event`, stamped now, for a caller's own transaction
    /// (then [`log_stored`] once it committed).
    pub fn row(&self, event: Event) -> AuditRow {
        event.into_row(self.clock.now_naive())
    }

    /// Records `event` on its own (nothing else to write with it). A
    /// failure to store it is logged, and the event still logged: the
    /// action it records has happened either way.
    pub async fn record(&self, event: Event) {
        let row = self.row(event);
        let stored = row.clone();
        if let Err(err) = self.db.run(move |conn| audit_events::insert(conn, &stored)).await {
            log::error!("cannot store an audit event: {}", crate::report::chain(&err));
        }
        log_stored(std::slice::from_ref(&row));
    }

    /// A page of events, newest first.
    pub async fn list(&self, query: ListQuery) -> Result<Page, IdentityError> {
        let bad = |m: String| IdentityError::InvalidInput(m);
        let limit = query.limit.unwrap_or(DEFAULT_LIMIT);
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(bad(format!("limit must be 1 to {MAX_LIMIT}")));
        }
        // PostgreSQL refuses a NUL in any text, and no username holds a control character.
        if query.username.as_deref().is_some_and(|u| u.chars().any(char::is_control)) {
            return Err(bad("username must be printable characters".into()));
        }
        let kind = match query.kind.as_deref().filter(|k| !k.is_empty()) {
            Some(text) => Some(Kind::parse(text).ok_or_else(|| bad(format!("unknown kind {text:?}")))?.as_str().to_string()),
            None => None,
        };
        let filter = Filter {
            username: query.username.filter(|u| !u.is_empty()),
            kind,
            since: query.since.as_deref().filter(|t| !t.is_empty()).map(|t| parse_time("since", t)).transpose()?,
            before: query.before.as_deref().filter(|t| !t.is_empty()).map(|t| parse_time("before", t)).transpose()?,
            after: query.cursor.as_deref().filter(|c| !c.is_empty()).map(parse_cursor).transpose()?,
            limit: limit + 1,
        };
        let mut rows = self
            .db
            .run(move |conn| {
                let mut filter = filter;
                // Usernames are unique whatever their case: a user's events are under the name as stored.
                if let Some(name) = &filter.username {
                    if let Some(user) = db::users::find_by_username(conn, name)? {
                        filter.username = Some(user.username);
                    }
                }
                audit_events::list(conn, &filter)
            })
            .await?;
        let more = rows.len() as i64 > limit;
        rows.truncate(limit as usize);
        let next = if more { rows.last().map(cursor_of) } else { None };
        Ok(Page { events: rows.iter().map(EventJson::from).collect(), next })
    }

    /// Deletes the events older than `audit.retention`; how many went.
    pub async fn sweep(&self) -> Result<usize, IdentityError> {
        let cutoff = self.clock.now_naive() - self.retention.delta();
        let mut total = 0;
        loop {
            let deleted = self.db.run(move |conn| audit_events::delete_before(conn, cutoff, SWEEP_BATCH)).await?;
            total += deleted;
            if (deleted as i64) < SWEEP_BATCH {
                return Ok(total);
            }
        }
    }

    /// Runs [`Audit::sweep`] every `every`, for the life of the process.
    pub fn start_retention_task(self: Arc<Self>, every: Duration) {
        tokio::spawn(async move {
            loop {
                match self.sweep().await {
                    Ok(0) => {}
                    Ok(n) => log::info!("audit retention: {n} event(s) older than {}s deleted", self.retention.as_secs()),
                    Err(err) => log::warn!("audit retention sweep failed: {}", crate::report::chain(&err)),
                }
                tokio::time::sleep(every).await;
            }
        });
    }
}

fn parse_time(key: &str, text: &str) -> Result<NaiveDateTime, IdentityError> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.naive_utc())
        .map_err(|_| IdentityError::InvalidInput(format!("{key} must be an RFC 3339 time, e.g. 2026-11-30T12:00:00Z")))
}

/// The cursor after `row`: its time in microseconds and its id.
fn cursor_of(row: &AuditRow) -> String {
    format!("{}.{}", row.at.and_utc().timestamp_micros(), row.id)
}

fn parse_cursor(text: &str) -> Result<(NaiveDateTime, String), IdentityError> {
    let bad = || IdentityError::InvalidInput("cursor is not one this server gave".into());
    let (micros, id) = text.split_once('.').ok_or_else(bad)?;
    let micros: i64 = micros.parse().map_err(|_| bad())?;
    let at = DateTime::from_timestamp_micros(micros).ok_or_else(bad)?.naive_utc();
    uuid::Uuid::parse_str(id).map_err(|_| bad())?;
    Ok((at, id.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip() {
        for kind in Kind::ALL {
            assert_eq!(Kind::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(Kind::parse("nope"), None);
    }

    #[test]
    fn cursors_round_trip() {
        let row = Event::success(Kind::SignIn).into_row(Utc::now().naive_utc());
        let (at, id) = parse_cursor(&cursor_of(&row)).unwrap();
        assert_eq!(id, row.id);
        assert_eq!(at.and_utc().timestamp_micros(), row.at.and_utc().timestamp_micros());
        assert!(parse_cursor("x.y").is_err());
        assert!(parse_cursor("12.not-a-uuid").is_err());
    }
}
