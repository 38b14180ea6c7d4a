//! `AppState`: the services every request handler shares.

use std::sync::Arc;

use super::templates::Templates;
use crate::clock::Clock;
use crate::config::Settings;
use crate::crypto::DerivedKeys;
use crate::db::Db;
use crate::identity::audit::Audit;
use crate::identity::Identity;
use crate::service_tokens::ServiceTokens;
use crate::sso::Sso;

/// Shared state of one doorman instance: each service owns its own state.
pub struct AppState {
    pub settings: Arc<Settings>,
    pub db: Db,
    pub clock: Clock,
    pub keys: DerivedKeys,
    pub identity: Arc<Identity>,
    pub sso: Arc<Sso>,
    pub service_tokens: ServiceTokens,
    pub templates: Templates,
}

impl AppState {
    pub fn new(settings: Settings, db: Db, clock: Clock) -> anyhow::Result<Self> {
        let settings = Arc::new(settings);
        let keys = DerivedKeys::derive(&settings.auth.secret_key);
        let audit = Audit::new(db.clone(), clock.clone(), settings.audit.retention);
        let identity = Arc::new(Identity::new(&settings.auth, &keys, db.clone(), clock.clone(), audit.clone()));
        let sso = Arc::new(Sso::new(settings.clone(), identity.clone(), keys.vault.clone())?);
        let service_tokens = ServiceTokens::new(settings.clone(), db.clone(), clock.clone(), keys.vault.clone(), audit);
        Ok(Self { templates: Templates::new()?, settings, db, clock, keys, identity, sso, service_tokens })
    }
}
