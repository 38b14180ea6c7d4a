//! The account of a user who signs in through a provider: found or created
//! by (issuer, subject) — never by e-mail alone — with profile changes
//! followed, `valid_until` set and the refresh token stored encrypted.

use chrono::NaiveDateTime;

use super::flow::UsedState;
use super::{OidcError, Sso};
use crate::config::AuthSettings;
use crate::crypto::Vault;
use crate::db::identities::{self, IdentityRow};
use crate::db::sessions::SessionRow;
use crate::db::users::{self, UserView};
use crate::db::{self, DbConnection, DbError};
use crate::identity::sessions::{NewSession, ProviderLogin};
use crate::identity::users::{new_user_row, valid_email, Username};

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
pub fn next_refresh_at(settings: &AuthSettings, valid_until: NaiveDateTime) -> NaiveDateTime {
    // Never earlier than halfway through the window, so short windows still refresh sensibly.
    valid_until - settings.refresh_ahead.delta().min(settings.external_validity.delta() / 2)
}

/// Records a sign-in in one transaction: its `state` as used (refused with
/// [`OidcError::Replayed`] if it already was), the user, created or updated,
/// and their new browser session.
pub async fn sign_in(
    sso: &Sso,
    provider_id: &str,
    profile: ExternalProfile,
    login: ProviderLogin,
    state: UsedState,
) -> Result<(UserView, NewSession), OidcError> {
    let auth = &sso.settings.auth;
    let base_name = base_username(&profile).ok_or(OidcError::NoUsername)?;
    let valid_until = sso.clock.now_naive() + auth.external_validity.delta();
    let next_refresh = profile.refresh_token.as_ref().map(|_| next_refresh_at(auth, valid_until));
    let new_user = NewExternalUser {
        provider_id: provider_id.to_string(),
        base_name,
        channel: auth.default_channel.clone(),
        valid_until,
        next_refresh,
        now: sso.clock.now_naive(),
    };
    let mut session = sso.identity.sessions.new_session("", Some(login));
    for attempt in 0..3 {
        let (vault, profile, new_user, state) = (sso.vault.clone(), profile.clone(), new_user.clone(), state.clone());
        let mut row = session.row.clone();
        let result = sso
            .db
            .run(move |conn| {
                db::write_transaction(conn, |conn| {
                    if let Some(now) = state.purge_before {
                        db::oidc_states::purge_expired(conn, now)?;
                    }
                    if !db::oidc_states::mark_used(conn, &state.hash, state.expires)? {
                        return Ok(Recorded::Replayed);
                    }
                    let Some(user) = upsert(conn, &vault, &profile, &new_user)? else {
                        return Ok(Recorded::NoUser);
                    };
                    row.user_id = user.user.id.clone();
                    db::sessions::insert(conn, &row)?;
                    Ok(Recorded::SignedIn(Box::new(user), row))
                })
            })
            .await;
        match result {
            // Two first sign-ins of one user at once: the loser finds the winner's
            // row; two callbacks of one state at once: the loser finds it used.
            Err(err) if err.is_unique_violation() && attempt < 2 => continue,
            Err(err) => return Err(err.into()),
            Ok(Recorded::SignedIn(user, row)) => {
                session.row = row;
                return Ok((*user, session));
            }
            Ok(Recorded::Replayed) => return Err(OidcError::Replayed),
            Ok(Recorded::NoUser) => break,
        }
    }
    Err(OidcError::Db(DbError::Query(diesel::result::Error::NotFound)))
}

/// What the sign-in's transaction did.
enum Recorded {
    SignedIn(Box<UserView>, SessionRow),
    /// The `state` was already used: nothing was written.
    Replayed,
    /// The user vanished between the upsert's writes and its read.
    NoUser,
}

/// What a first sign-in stores besides the profile.
#[derive(Clone)]
struct NewExternalUser {
    provider_id: String,
    base_name: Username,
    channel: String,
    valid_until: NaiveDateTime,
    next_refresh: Option<NaiveDateTime>,
    now: NaiveDateTime,
}

fn upsert(
    conn: &mut DbConnection,
    vault: &Vault,
    profile: &ExternalProfile,
    new: &NewExternalUser,
) -> diesel::QueryResult<Option<UserView>> {
    let email = profile.email.as_deref().filter(|e| valid_email(e));
    let name = profile.name.as_deref().map(|n| n.chars().filter(|c| !c.is_control()).take(200).collect::<String>());
    if let Some(identity) = identities::find_by_subject(conn, &profile.issuer, &profile.subject)? {
        users::update_profile(conn, &identity.user_id, email, name.as_deref(), new.now)?;
        let sealed = profile.refresh_token.as_ref().map(|t| vault.seal(&refresh_token_context(&identity.id), t));
        identities::record_login(conn, &identity.id, new.valid_until, sealed.as_deref(), new.next_refresh, new.now)?;
        return users::view_by_id(conn, &identity.user_id);
    }
    let username = unique_username(conn, &new.base_name)?;
    let mut user = new_user_row(&username, email.map(str::to_string), false, true, &new.channel, new.now);
    user.display_name = name;
    users::insert(conn, &user)?;
    let identity_id = db::new_id();
    let sealed = profile.refresh_token.as_ref().map(|t| vault.seal(&refresh_token_context(&identity_id), t));
    identities::insert(
        conn,
        &IdentityRow {
            id: identity_id,
            user_id: user.id.clone(),
            provider_id: new.provider_id.clone(),
            issuer: profile.issuer.clone(),
            subject: profile.subject.clone(),
            valid_until: new.valid_until,
            refresh_state: if sealed.is_some() { "active".into() } else { "none".into() },
            refresh_token_enc: sealed,
            refresh_failures: 0,
            next_refresh_at: new.next_refresh,
            lease_until: None,
            created_at: new.now,
            updated_at: new.now,
        },
    )?;
    users::view_by_id(conn, &user.id)
}

/// The name a new user is given: from `preferred_username`, else the
/// e-mail; `None` when the provider gives nothing usable.
fn base_username(profile: &ExternalProfile) -> Option<Username> {
    profile
        .preferred_username
        .as_deref()
        .and_then(Username::sanitize)
        .or_else(|| profile.email.as_deref().and_then(Username::sanitize))
}

/// `base`, or `base-2`, `base-3`... when taken, else a random suffix.
fn unique_username(conn: &mut DbConnection, base: &Username) -> diesel::QueryResult<Username> {
    if !users::username_taken(conn, base.as_str())? {
        return Ok(base.clone());
    }
    for n in 2..100 {
        if let Ok(candidate) = Username::parse(&format!("{}-{n}", base.as_str())) {
            if !users::username_taken(conn, candidate.as_str())? {
                return Ok(candidate);
            }
        }
    }
    // `sanitize` leaves room for this suffix, so the name is always valid.
    let random = crate::crypto::random_token(6).replace(['_', '-'], "x");
    Username::parse(&format!("{}-{random}", base.as_str())).map_err(|_| diesel::result::Error::NotFound)
}
