//! Logout at the provider: the end-session URL for RP-initiated logout.

use crate::db::{sessions::SessionRow, users::UserView};
use crate::state::AppState;

/// After a doorman session ends: the provider's logout URL, when it has one.
pub async fn after_session_end(_state: &AppState, _session: &SessionRow, _user: &UserView) -> Option<String> {
    None
}
