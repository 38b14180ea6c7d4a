//! The external user's lifecycle: `valid_until`, and what happens past it.

use crate::auth::AuthError;
use crate::db::users::UserView;
use crate::state::AppState;

/// `user` if the provider still vouches for them (always, for local users).
pub async fn ensure_valid(_state: &AppState, user: UserView) -> Result<UserView, AuthError> {
    if !user.user.is_external {
        return Ok(user);
    }
    match user.valid_until {
        Some(vu) if vu > crate::db::now() => Ok(user),
        _ => Err(AuthError::SignInAgain),
    }
}

/// Starts this instance's background refresh of external users.
pub fn start_refresh_task(_state: actix_web::web::Data<AppState>) {}
