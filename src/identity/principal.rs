//! The caller of an API request, however they proved who they are (the
//! HTTP layer finds them from a cookie or an `Authorization` header).

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::ScopeSet;
use crate::db::users::UserView;

/// How the caller proved who they are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Via {
    /// The browser's access cookie, in this browser session.
    Cookie { session_id: String },
    /// An API token.
    Bearer { token_id: String },
}

/// An authenticated caller.
#[derive(Debug, Clone)]
pub struct Principal {
    pub user_id: String,
    pub username: String,
    pub email: Option<String>,
    pub channel: String,
    pub is_admin: bool,
    pub is_external: bool,
    pub valid_until: Option<DateTime<Utc>>,
    pub scopes: ScopeSet,
    pub via: Via,
    /// Ids of the providers the user signs in with (as the credential carries them).
    pub providers: Vec<String>,
}

impl Principal {
    pub fn session_id(&self) -> Option<&str> {
        match &self.via {
            Via::Cookie { session_id } => Some(session_id),
            Via::Bearer { .. } => None,
        }
    }

    /// The caller behind API token `token_id`, holding at most `scopes` and
    /// never more than the user holds now.
    pub fn bearer(user: &UserView, token_id: &str, scopes: ScopeSet) -> Self {
        let row = &user.user;
        Self {
            user_id: row.id.clone(),
            username: row.username.clone(),
            email: row.email.clone(),
            channel: row.channel.clone(),
            is_admin: row.is_admin,
            is_external: row.is_external,
            valid_until: user.valid_until.map(|v| v.and_utc()),
            scopes: ScopeSet::from_iter(scopes.iter().filter(|s| ScopeSet::for_user(row.is_admin).contains(*s))),
            via: Via::Bearer { token_id: token_id.to_string() },
            providers: user.providers.clone(),
        }
    }
}

/// The caller as `GET /me` shows them: what their credential carries, so
/// the answer reads no database.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct MeJson {
    pub username: String,
    pub email: Option<String>,
    pub channel: String,
    pub is_admin: bool,
    pub is_external_user: bool,
    pub valid_until: Option<DateTime<Utc>>,
    /// Ids of the providers the user signs in with.
    pub providers: Vec<String>,
}

impl From<&Principal> for MeJson {
    fn from(p: &Principal) -> Self {
        Self {
            username: p.username.clone(),
            email: p.email.clone(),
            channel: p.channel.clone(),
            is_admin: p.is_admin,
            is_external_user: p.is_external,
            valid_until: p.valid_until,
            providers: p.providers.clone(),
        }
    }
}

/// A user as the `/users` endpoints show them: the one JSON
/// projection of a stored user.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct UserJson {
    pub username: String,
    pub email: Option<String>,
    pub channel: String,
    pub is_admin: bool,
    pub is_external_user: bool,
    /// `active`, `pending` or `disabled`.
    #[schema(examples("active"))]
    pub status: String,
    pub created_at: DateTime<Utc>,
    pub last_login_at: Option<DateTime<Utc>>,
    /// Ids of the providers the user signs in with.
    pub providers: Vec<String>,
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
            status: v.user.status.clone(),
            created_at: v.user.created_at.and_utc(),
            last_login_at: v.user.last_login_at.map(|t| t.and_utc()),
            providers: v.providers.clone(),
            valid_until: v.valid_until.map(|t| t.and_utc()),
        }
    }
}
