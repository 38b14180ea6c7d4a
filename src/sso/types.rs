//! openidconnect's types, fitted with the extra claims doorman reads: `sid`,
//! the provider's session id (for back-channel logout), and the rest (where
//! a provider's groups claim is found); and with doorman's key type
//! ([`ProviderKey`]: signatures checked by *ring*).

use openidconnect::core::{
    CoreAuthDisplay, CoreAuthPrompt, CoreErrorResponseType, CoreGenderClaim, CoreJweContentEncryptionAlgorithm,
    CoreJwsSigningAlgorithm, CoreRevocableToken, CoreRevocationErrorResponse, CoreTokenIntrospectionResponse, CoreTokenType,
};
use openidconnect::{
    AdditionalClaims, EmptyExtraTokenFields, EndpointMaybeSet, EndpointNotSet, EndpointSet, StandardErrorResponse,
    StandardTokenResponse,
};
use serde::{Deserialize, Serialize};

use super::jwk::ProviderKey;

/// Claims beyond the standard ones.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ExtraClaims {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    /// Every other claim (the provider's groups claim among them).
    #[serde(flatten)]
    pub other: serde_json::Map<String, serde_json::Value>,
}

impl AdditionalClaims for ExtraClaims {}

pub type IdTokenFields = openidconnect::IdTokenFields<
    ExtraClaims,
    EmptyExtraTokenFields,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJwsSigningAlgorithm,
>;
pub type TokenResponse = StandardTokenResponse<IdTokenFields, CoreTokenType>;
pub type IdToken =
    openidconnect::IdToken<ExtraClaims, CoreGenderClaim, CoreJweContentEncryptionAlgorithm, CoreJwsSigningAlgorithm>;
pub type IdTokenClaims = openidconnect::IdTokenClaims<ExtraClaims, CoreGenderClaim>;
pub type IdTokenVerifier<'a> = openidconnect::IdTokenVerifier<'a, ProviderKey>;
/// A provider's discovery document, with its keys once fetched.
pub type ProviderMetadata = openidconnect::ProviderMetadata<
    openidconnect::EmptyAdditionalProviderMetadata,
    CoreAuthDisplay,
    openidconnect::core::CoreClientAuthMethod,
    openidconnect::core::CoreClaimName,
    openidconnect::core::CoreClaimType,
    openidconnect::core::CoreGrantType,
    CoreJweContentEncryptionAlgorithm,
    openidconnect::core::CoreJweKeyManagementAlgorithm,
    ProviderKey,
    openidconnect::core::CoreResponseMode,
    openidconnect::core::CoreResponseType,
    openidconnect::core::CoreSubjectIdentifierType,
>;
/// A provider's signing keys (its `jwks_uri` document).
pub type JsonWebKeySet = openidconnect::JsonWebKeySet<ProviderKey>;

/// A client for one provider, built from its discovery document.
pub type OidcClient = openidconnect::Client<
    ExtraClaims,
    CoreAuthDisplay,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    ProviderKey,
    CoreAuthPrompt,
    StandardErrorResponse<CoreErrorResponseType>,
    TokenResponse,
    CoreTokenIntrospectionResponse,
    CoreRevocableToken,
    CoreRevocationErrorResponse,
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;
