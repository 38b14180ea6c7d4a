//! What can go wrong in single sign-on; mapped to HTTP in `http/error.rs`.

#[derive(Debug, thiserror::Error)]
pub enum OidcError {
    #[error("unknown provider {0:?}")]
    UnknownProvider(String),
    #[error("no identity provider is configured")]
    NoProvider,
    #[error("several providers are configured: name one with ?provider=")]
    ProviderRequired,
    #[error("the provider {0:?} is unavailable")]
    Unavailable(String),
    #[error("invalid next target: {0}")]
    InvalidNext(&'static str),
    #[error("the provider answered {error}: {description}")]
    ProviderError { error: String, description: String },
    #[error("the sign-in flow cookie is missing or unreadable")]
    MissingFlow,
    #[error("the sign-in took too long")]
    FlowExpired,
    #[error("state does not match")]
    StateMismatch,
    #[error("this sign-in response was already used")]
    Replayed,
    #[error("the response comes from another issuer than the one the sign-in started at")]
    IssuerMismatch,
    #[error("the callback has no code")]
    MissingCode,
    #[error("token exchange failed")]
    Exchange(#[source] anyhow::Error),
    #[error("the provider could not be reached")]
    ProviderUnreachable(#[source] anyhow::Error),
    #[error("the token response has no ID token")]
    NoIdToken,
    #[error("the ID token is invalid: {0}")]
    InvalidIdToken(String),
    #[error("the access token does not match the ID token's at_hash")]
    AtHashMismatch,
    #[error("userinfo failed: {0}")]
    UserInfo(String),
    #[error("the provider gave no usable username or e-mail")]
    NoUsername,
    #[error("access denied: {0}")]
    AccessDenied(String),
    #[error("this provider account is already linked to another user")]
    IdentityTaken,
    #[error("the logout token is invalid: {0}")]
    InvalidLogoutToken(String),
    #[error(transparent)]
    Db(#[from] crate::db::DbError),
    #[error(transparent)]
    Identity(#[from] crate::identity::IdentityError),
}

impl OidcError {
    /// Whether the callback did not belong to this browser's pending sign-in
    /// (a bare or forged link): that sign-in, if any, is left as it was.
    pub fn is_foreign_callback(&self) -> bool {
        matches!(self, OidcError::MissingFlow | OidcError::StateMismatch)
    }

    /// The error code of the SPEC's JSON body.
    pub fn code(&self) -> &'static str {
        use OidcError::*;
        match self {
            UnknownProvider(_) | NoProvider => "unknown_provider",
            ProviderRequired => "provider_required",
            Unavailable(_) | ProviderUnreachable(_) => "provider_unavailable",
            InvalidNext(_) => "invalid_next",
            ProviderError { .. } => "provider_error",
            MissingFlow | FlowExpired | StateMismatch | Replayed => "invalid_state",
            IssuerMismatch => "issuer_mismatch",
            MissingCode => "invalid_request",
            Exchange(_) => "token_exchange_failed",
            NoIdToken | InvalidIdToken(_) | AtHashMismatch => "invalid_id_token",
            UserInfo(_) => "userinfo_failed",
            NoUsername => "invalid_profile",
            InvalidLogoutToken(_) => "invalid_logout_token",
            AccessDenied(_) => "access_denied",
            IdentityTaken => "identity_taken",
            Db(_) | Identity(_) => "internal_error",
        }
    }
}
