//! The account of a user who signs in through a provider: found or created
//! by (issuer, subject) — never by e-mail alone — with profile changes
//! followed, `valid_until` set and the refresh token stored encrypted.

use chrono::NaiveDateTime;

use super::flow::UsedState;
use super::{OidcError, Sso};
use crate::config::AuthSettings;
use crate::crypto::Vault;
use crate::db::audit_events::AuditRow;
use crate::db::identities::{self, IdentityRow};
use crate::db::users::{self, UserView};
use crate::db::{self, DbConnection, DbError};
use crate::identity::audit::{self, Event, Kind, Origin, Outcome};
use crate::identity::revocation::{Revocations, Revoked};
use crate::identity::sessions::{NewSession, ProviderLogin, SessionOrigin};
use crate::identity::users::{created_event, new_user_row, valid_email, Username};
use crate::identity::IdentityError;

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
    /// The user's groups (the provider's `groups_claim`).
    pub groups: Vec<String>,
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

/// How a sign-in through a provider ended.
pub enum SignedIn {
    /// The user and their new browser session.
    Session(Box<(UserView, NewSession)>),
    /// The user is stored but waits for an administrator (no session).
    Pending,
    /// The user is disabled (no session).
    Disabled,
}

/// What the provider's rules decided for this sign-in, and where new users go.
#[derive(Clone)]
pub struct Admission {
    /// `Some`: the admin flag the provider's `admin_groups` give.
    pub is_admin: Option<bool>,
    /// New users wait for approval.
    pub approval: bool,
    /// Channel of new users.
    pub channel: String,
}

/// Records a sign-in from `client` in one transaction: the user, created or
/// updated, their new browser session (none for a pending or disabled
/// user), and its audit events (the user's creation, the sign-in or its
/// refusal).
pub async fn sign_in(
    sso: &Sso,
    provider_id: &str,
    profile: ExternalProfile,
    admission: Admission,
    login: ProviderLogin,
    state: UsedState,
    client: &Origin,
) -> Result<SignedIn, OidcError> {
    let auth = &sso.settings.auth;
    let base_name = base_username(&profile).ok_or(OidcError::NoUsername)?;
    let valid_until = sso.clock.now_naive() + auth.external_validity.delta();
    let next_refresh = profile.refresh_token.as_ref().map(|_| next_refresh_at(auth, valid_until));
    let new_user = NewExternalUser {
        provider_id: provider_id.to_string(),
        base_name,
        admission,
        valid_until,
        next_refresh,
        now: sso.clock.now_naive(),
    };
    let origin = SessionOrigin::sso(provider_id, client);
    let mut session = sso.identity.sessions.new_session("", &origin, Some(login));
    let account = (profile.issuer.clone(), profile.subject.clone());
    for attempt in 0..3 {
        let known = sso.identity_ids.get(&account);
        let (vault, profile, new_user, used) = (sso.vault.clone(), profile.clone(), new_user.clone(), state.clone());
        let (audit, client, method) = (sso.identity.audit.clone(), client.clone(), origin.method.clone());
        let (mut row, hint) = (session.row.clone(), known.clone());
        let result = sso
            .db
            .run(move |conn| {
                db::write_transaction(conn, |conn| {
                    if !used.record(conn)? {
                        let replayed =
                            Recorded { stored: Stored::Replayed, events: Vec::new(), admin_changed: None, identity_id: None };
                        return Ok(Some(replayed));
                    }
                    let Some(Upserted { user, identity_id, created, admin_changed }) =
                        upsert(conn, &vault, &profile, &new_user, hint.as_deref())?
                    else {
                        return Ok(None);
                    };
                    let admin_changed = admin_changed.then(|| user.user.id.clone());
                    let by = client.by(&user.user.username);
                    let mut events = Vec::new();
                    if created {
                        let created = created_event(&user.user).origin(&by).detail("provider", new_user.provider_id.clone());
                        events.push(audit.row(created));
                    }
                    let signed_in = |outcome| {
                        Event::new(Kind::SignIn, outcome)
                            .username(&user.user.username)
                            .origin(&by)
                            .detail("method", method.clone())
                    };
                    let stored = match user.user.status.as_str() {
                        users::status::ACTIVE => {
                            row.user_id = user.user.id.clone();
                            db::sessions::insert(conn, &row)?;
                            events.push(audit.row(signed_in(Outcome::Success).detail("session_id", row.id.clone())));
                            Stored::Session(Box::new((user, row)))
                        }
                        status => {
                            let (reason, stored) = if status == users::status::PENDING {
                                ("approval_pending", Stored::Pending)
                            } else {
                                ("account_disabled", Stored::Disabled)
                            };
                            events.push(audit.row(signed_in(Outcome::Failure).detail("reason", reason)));
                            stored
                        }
                    };
                    db::audit_events::insert_all(conn, &events)?;
                    Ok(Some(Recorded { stored, events, admin_changed, identity_id: Some(identity_id) }))
                })
            })
            .await;
        if result.is_ok() {
            // Committed: the state is redeemed (or was already).
            sso.redeemed.insert(&state.hash);
        }
        match result {
            // Two first sign-ins of one user at once: the loser finds the winner's
            // row; two callbacks of one state at once: the loser finds it used.
            Err(err) if err.is_unique_violation() && attempt < 2 => continue,
            Err(err) => return Err(err.into()),
            Ok(Some(Recorded { stored, events, admin_changed, identity_id })) => {
                audit::log_stored(&events);
                if let Some(user_id) = admin_changed {
                    sso.identity.revocations.forget(&Revoked::User(user_id));
                }
                if let Some(id) = identity_id.filter(|id| known.as_ref() != Some(id)) {
                    sso.identity_ids.insert(account, id);
                }
                return Ok(match stored {
                    Stored::Session(stored) => {
                        let (user, row) = *stored;
                        session.row = row;
                        SignedIn::Session(Box::new((user, session)))
                    }
                    Stored::Pending => SignedIn::Pending,
                    Stored::Disabled => SignedIn::Disabled,
                    Stored::Replayed => return Err(OidcError::Replayed),
                });
            }
            Ok(None) => break,
        }
    }
    Err(OidcError::Db(DbError::Query(diesel::result::Error::NotFound)))
}

/// What the sign-in's transaction stored, and what to do once it committed.
struct Recorded {
    stored: Stored,
    /// Its audit events, to log.
    events: Vec<AuditRow>,
    /// The user whose admin flag the provider's groups changed.
    admin_changed: Option<String>,
    /// The identity signed in through (none if the `state` was used).
    identity_id: Option<String>,
}

/// What the sign-in's transaction did.
enum Stored {
    Session(Box<(UserView, crate::db::sessions::SessionRow)>),
    Pending,
    Disabled,
    /// The `state` was already used: nothing was written.
    Replayed,
}

/// Adds the provider identity of `profile` to user `user_id` (linking) from
/// `client`, recorded in the same transaction: no user is created and no
/// session opened. Refused when the identity belongs to someone else.
pub async fn link(
    sso: &Sso,
    provider_id: &str,
    profile: ExternalProfile,
    user_id: &str,
    state: UsedState,
    client: &Origin,
) -> Result<UserView, OidcError> {
    let auth = &sso.settings.auth;
    let now = sso.clock.now_naive();
    let valid_until = now + auth.external_validity.delta();
    let next_refresh = profile.refresh_token.as_ref().map(|_| next_refresh_at(auth, valid_until));
    let (vault, provider_id, user_id) = (sso.vault.clone(), provider_id.to_string(), user_id.to_string());
    let (audit, client) = (sso.identity.audit.clone(), client.clone());
    let hash = state.hash.clone();
    let linked = sso
        .db
        .run(move |conn| {
            db::write_transaction(conn, |conn| {
                if !state.record(conn)? {
                    return Ok(Err(OidcError::Replayed));
                }
                let Some(user) = users::find(conn, &user_id)? else {
                    return Ok(Err(OidcError::Identity(IdentityError::InvalidSession)));
                };
                if let Err(e) = crate::identity::check_status(&user) {
                    return Ok(Err(OidcError::Identity(e)));
                }
                let added = match identities::find_by_subject(conn, &profile.issuer, &profile.subject)? {
                    Some(identity) if identity.user_id != user_id => return Ok(Err(OidcError::IdentityTaken)),
                    Some(identity) => {
                        let sealed = profile.refresh_token.as_ref().map(|t| vault.seal(&refresh_token_context(&identity.id), t));
                        let named = identities::Named { id: &identity.id, issuer: &identity.issuer, subject: &identity.subject };
                        identities::record_login(conn, named, valid_until, sealed.as_deref(), next_refresh, now)?;
                        false
                    }
                    None => {
                        insert_identity(conn, &vault, &profile, &provider_id, &user_id, valid_until, next_refresh, now)?;
                        true
                    }
                };
                let event = audit.row(
                    Event::success(Kind::IdentityLinked)
                        .username(&user.username)
                        .origin(&client.by(&user.username))
                        .detail("provider", provider_id.clone())
                        .detail("subject", profile.subject.clone())
                        .detail("added", added),
                );
                db::audit_events::insert(conn, &event)?;
                Ok(users::view_by_id(conn, &user_id)?
                    .map(|view| (view, event))
                    .ok_or(OidcError::Identity(IdentityError::InvalidSession)))
            })
        })
        .await;
    if linked.is_ok() {
        // Committed: the state is redeemed (or was already).
        sso.redeemed.insert(&hash);
    }
    match linked {
        Err(err) if err.is_unique_violation() => Err(OidcError::IdentityTaken),
        Err(err) => Err(err.into()),
        Ok(result) => result.map(|(view, event)| {
            audit::log_stored(&[event]);
            view
        }),
    }
}

/// What a first sign-in stores besides the profile.
#[derive(Clone)]
struct NewExternalUser {
    provider_id: String,
    base_name: Username,
    admission: Admission,
    valid_until: NaiveDateTime,
    next_refresh: Option<NaiveDateTime>,
    now: NaiveDateTime,
}

fn upsert(
    conn: &mut DbConnection,
    vault: &Vault,
    profile: &ExternalProfile,
    new: &NewExternalUser,
    known: Option<&str>,
) -> diesel::QueryResult<Option<Upserted>> {
    let email = profile.email.as_deref().filter(|e| valid_email(e));
    let name = profile.name.as_deref().map(|n| n.chars().filter(|c| !c.is_control()).take(200).collect::<String>());
    if let Some((identity_id, user_id)) = record_identity_login(conn, vault, profile, new, known)? {
        let admin_changed = match new.admission.is_admin {
            Some(is_admin) => follow_admin_groups(conn, &user_id, is_admin)?,
            None => false,
        };
        let Some(row) = users::record_sso_sign_in(conn, &user_id, email, name.as_deref(), new.now)? else {
            return Ok(None);
        };
        return Ok(Some(Upserted { user: users::view_of(conn, row)?, identity_id, created: false, admin_changed }));
    }
    let username = unique_username(conn, &new.base_name)?;
    let is_admin = new.admission.is_admin.unwrap_or(false);
    let mut user = new_user_row(&username, email.map(str::to_string), is_admin, true, &new.admission.channel, new.now);
    user.display_name = name;
    if new.admission.approval {
        user.status = users::status::PENDING.to_string();
    } else {
        user.last_login_at = Some(new.now);
    }
    users::insert(conn, &user)?;
    let identity_id =
        insert_identity(conn, vault, profile, &new.provider_id, &user.id, new.valid_until, new.next_refresh, new.now)?;
    Ok(users::view_by_id(conn, &user.id)?.map(|user| Upserted { user, identity_id, created: true, admin_changed: false }))
}

/// Records the sign-in on the stored identity of `profile`, if there is
/// one: (its id, its user's id). `known` is the id this instance last saw
/// it under, tried first: the update checks that it is still the
/// provider's (issuer, subject), so an id since unlinked only costs the
/// lookup it was to save.
fn record_identity_login(
    conn: &mut DbConnection,
    vault: &Vault,
    profile: &ExternalProfile,
    new: &NewExternalUser,
    known: Option<&str>,
) -> diesel::QueryResult<Option<(String, String)>> {
    let record = |conn: &mut DbConnection, id: &str| {
        let sealed = profile.refresh_token.as_ref().map(|t| vault.seal(&refresh_token_context(id), t));
        let named = identities::Named { id, issuer: &profile.issuer, subject: &profile.subject };
        identities::record_login(conn, named, new.valid_until, sealed.as_deref(), new.next_refresh, new.now)
    };
    if let Some(id) = known {
        if let Some(user_id) = record(conn, id)? {
            return Ok(Some((id.to_string(), user_id)));
        }
    }
    match identities::find_by_subject(conn, &profile.issuer, &profile.subject)? {
        Some(identity) => Ok(record(conn, &identity.id)?.map(|user_id| (identity.id, user_id))),
        None => Ok(None),
    }
}

/// The user a sign-in found or created.
struct Upserted {
    user: UserView,
    /// Its identity at the provider.
    identity_id: String,
    created: bool,
    /// The provider's `admin_groups` changed the user's admin flag.
    admin_changed: bool,
}

/// Sets the admin flag a provider's `admin_groups` give now. When it
/// changed, every instance is told to read the user's credentials again
/// (their cached views hold the old flag); the caller forgets them here
/// after the commit. Whether it changed.
pub(super) fn follow_admin_groups(conn: &mut DbConnection, user_id: &str, is_admin: bool) -> diesel::QueryResult<bool> {
    let changed = users::set_admin(conn, user_id, is_admin)?;
    if changed {
        Revocations::announce(conn, &Revoked::User(user_id.to_string()))?;
    }
    Ok(changed)
}

#[allow(clippy::too_many_arguments)]
fn insert_identity(
    conn: &mut DbConnection,
    vault: &Vault,
    profile: &ExternalProfile,
    provider_id: &str,
    user_id: &str,
    valid_until: NaiveDateTime,
    next_refresh: Option<NaiveDateTime>,
    now: NaiveDateTime,
) -> diesel::QueryResult<String> {
    let identity_id = db::new_id();
    let sealed = profile.refresh_token.as_ref().map(|t| vault.seal(&refresh_token_context(&identity_id), t));
    identities::insert(
        conn,
        &IdentityRow {
            id: identity_id.clone(),
            user_id: user_id.to_string(),
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
    Ok(identity_id)
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
