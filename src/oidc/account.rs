//! The account of a user who signs in through a provider: found or created
//! by (issuer, subject) — never by e-mail alone — with profile changes
//! followed, `valid_until` set and the refresh token stored encrypted.

use chrono::{Duration as ChronoDuration, NaiveDateTime};

use super::OidcError;
use crate::accounts::{new_user_row, valid_email, Username};
use crate::auth::login::{NewSession, ProviderLogin};
use crate::crypto::{sha256_hex, Vault};
use crate::db::identities::{self, IdentityRow};
use crate::db::users::{self, UserView};
use crate::db::{self, DbConnection, DbError};
use crate::state::AppState;

/// What a provider says about a user at sign-in.
#[derive(Clone)]
pub struct ExternalProfile {
    pub issuer: String,
    pub subject: String,
    pub email: Option<String>,
    pub email_verified: Option<bool>,
    pub name: Option<String>,
    pub preferred_username: Option<String>,
    /// The provider's session id.
    pub sid: Option<String>,
    pub refresh_token: Option<String>,
    /// The raw ID token (for `id_token_hint` at logout).
    pub id_token: String,
}

impl std::fmt::Debug for ExternalProfile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExternalProfile")
            .field("issuer", &self.issuer)
            .field("subject", &self.subject)
            .field("email", &self.email)
            .field("refresh_token", &self.refresh_token.as_ref().map(|_| "[redacted]"))
            .finish_non_exhaustive()
    }
}

/// The context binding an identity's encrypted refresh token to it.
pub fn refresh_token_context(identity_id: &str) -> String {
    format!("refresh_token:{identity_id}")
}

/// When the background task should refresh a user valid until `valid_until`.
pub fn next_refresh_at(state: &AppState, valid_until: NaiveDateTime) -> NaiveDateTime {
    let ahead = ChronoDuration::from_std(state.settings.auth.refresh_ahead).unwrap_or(ChronoDuration::hours(1));
    let validity = ChronoDuration::from_std(state.settings.auth.external_validity).unwrap_or(ChronoDuration::hours(24));
    // Never earlier than halfway through the window, so short windows still refresh sensibly.
    valid_until - ahead.min(validity / 2)
}

/// Records a sign-in in one transaction: the user, created or updated, and
/// their new browser session.
pub async fn sign_in(
    state: &AppState,
    provider_id: &str,
    profile: ExternalProfile,
    login: ProviderLogin,
) -> Result<(UserView, NewSession), OidcError> {
    let validity = ChronoDuration::from_std(state.settings.auth.external_validity).unwrap_or(ChronoDuration::hours(24));
    let valid_until = db::now() + validity;
    let next_refresh = profile.refresh_token.as_ref().map(|_| next_refresh_at(state, valid_until));
    let channel = state.settings.auth.default_channel.clone();
    let provider_id = provider_id.to_string();
    let mut session = crate::auth::login::new_session(state, "", Some(login));
    for attempt in 0..3 {
        let (vault, profile, provider_id, channel) =
            (state.keys.vault.clone(), profile.clone(), provider_id.clone(), channel.clone());
        let mut row = session.row.clone();
        let result = state
            .db
            .run(move |conn| {
                db::write_transaction(conn, |conn| {
                    let Some(user) = upsert(conn, &vault, &provider_id, &profile, &channel, valid_until, next_refresh)? else {
                        return Ok(None);
                    };
                    row.user_id = user.user.id.clone();
                    db::sessions::insert(conn, &row)?;
                    Ok(Some((user, row)))
                })
            })
            .await;
        match result {
            // Two first sign-ins of one user at once: the loser finds the winner's row.
            Err(err) if err.is_unique_violation() && attempt < 2 => continue,
            Err(err) => return Err(err.into()),
            Ok(Some((user, row))) => {
                session.row = row;
                return Ok((user, session));
            }
            Ok(None) => break,
        }
    }
    Err(OidcError::Db(DbError::Query(diesel::result::Error::NotFound)))
}

fn upsert(
    conn: &mut DbConnection,
    vault: &Vault,
    provider_id: &str,
    profile: &ExternalProfile,
    channel: &str,
    valid_until: NaiveDateTime,
    next_refresh: Option<NaiveDateTime>,
) -> diesel::QueryResult<Option<UserView>> {
    let email = profile.email.as_deref().filter(|e| valid_email(e));
    let name = profile.name.as_deref().map(|n| n.chars().filter(|c| !c.is_control()).take(200).collect::<String>());
    if let Some(identity) = identities::find_by_subject(conn, &profile.issuer, &profile.subject)? {
        users::update_profile(conn, &identity.user_id, email, name.as_deref())?;
        let sealed = profile.refresh_token.as_ref().map(|t| vault.seal(&refresh_token_context(&identity.id), t));
        identities::record_login(conn, &identity.id, valid_until, sealed.as_deref(), next_refresh)?;
        return users::view_by_id(conn, &identity.user_id);
    }
    let username = unique_username(conn, profile)?;
    let mut user = new_user_row(&username, email.map(str::to_string), false, true, channel);
    user.display_name = name;
    users::insert(conn, &user)?;
    let now = db::now();
    let identity_id = db::new_id();
    let sealed = profile.refresh_token.as_ref().map(|t| vault.seal(&refresh_token_context(&identity_id), t));
    identities::insert(
        conn,
        &IdentityRow {
            id: identity_id,
            user_id: user.id.clone(),
            provider_id: provider_id.to_string(),
            issuer: profile.issuer.clone(),
            subject: profile.subject.clone(),
            valid_until,
            refresh_state: if sealed.is_some() { "active".into() } else { "none".into() },
            refresh_token_enc: sealed,
            refresh_failures: 0,
            next_refresh_at: next_refresh,
            lease_until: None,
            created_at: now,
            updated_at: now,
        },
    )?;
    users::view_by_id(conn, &user.id)
}

/// A free username from preferred_username, else the e-mail, else a name
/// derived from (issuer, subject); `-2`, `-3`... added when taken.
fn unique_username(conn: &mut DbConnection, profile: &ExternalProfile) -> diesel::QueryResult<Username> {
    let fallback = || {
        let digest = sha256_hex(&format!("{}\n{}", profile.issuer, profile.subject));
        Username::parse(&format!("user-{}", &digest[..12])).ok()
    };
    let base = profile
        .preferred_username
        .as_deref()
        .and_then(Username::sanitize)
        .or_else(|| profile.email.as_deref().and_then(Username::sanitize))
        .or_else(fallback)
        .ok_or(diesel::result::Error::NotFound)?;
    if !users::username_taken(conn, base.as_str())? {
        return Ok(base);
    }
    for n in 2..100 {
        if let Ok(candidate) = Username::parse(&format!("{}-{n}", base.as_str())) {
            if !users::username_taken(conn, candidate.as_str())? {
                return Ok(candidate);
            }
        }
    }
    let random = crate::crypto::random_token(6).replace(['_', '-'], "x");
    Username::parse(&format!("{}-{random}", base.as_str())).map_err(|_| diesel::result::Error::NotFound)
}
