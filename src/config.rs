//! Settings: built-in defaults, then a TOML file, then `DOORMAN__SECTION__KEY`
//! environment variables; parsed once and validated into rich types.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};
use url::Url;

use crate::crypto::SecretString;

/// A configuration problem, printed as one line naming the key.
#[derive(Debug, thiserror::Error)]
#[error("config: {key}: {message}")]
pub struct ConfigError {
    pub key: String,
    pub message: String,
}

impl ConfigError {
    fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self { key: key.into(), message: message.into() }
    }
}

// ---------------------------------------------------------------------------
// The file format, as written by people.

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct RawSettings {
    server: RawServer,
    database: RawDatabase,
    auth: RawAuth,
    oidc: RawOidc,
    audit: RawAudit,
    metrics: RawMetrics,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawAudit {
    /// Audit events older than this are deleted by the background task.
    retention: String,
}

impl Default for RawAudit {
    fn default() -> Self {
        Self { retention: "90d".into() }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct RawMetrics {
    /// Address of the Prometheus listener (`GET /metrics`), e.g.
    /// `127.0.0.1:9100`; empty: no metrics.
    bind: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawServer {
    /// Address and port to listen on.
    bind: String,
    /// The origin users see; the OIDC redirect URI is `public_url + /oidc/callback`.
    public_url: String,
    /// Front ends served elsewhere: allowed as `next` targets and for CORS with credentials.
    frontend_origins: Vec<String>,
    /// Domain attribute of the cookies, e.g. `.example.com`; empty for host-only cookies.
    cookie_domain: String,
    /// Number of HTTP worker threads; 0 means one per core.
    workers: usize,
    /// Addresses or CIDRs of reverse proxies whose `X-Forwarded-For` /
    /// `Forwarded` header is believed for the client's address.
    trusted_proxies: Vec<String>,
    /// How long in-flight requests may finish after SIGTERM.
    shutdown_timeout: String,
    /// How long a failed guess waits before its answer ("0s": not at all).
    failure_delay: String,
}

impl Default for RawServer {
    fn default() -> Self {
        Self {
            bind: "127.0.0.1:8000".into(),
            public_url: String::new(),
            frontend_origins: Vec::new(),
            trusted_proxies: Vec::new(),
            cookie_domain: String::new(),
            workers: 0,
            shutdown_timeout: "30s".into(),
            failure_delay: "1s".into(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawDatabase {
    /// `sqlite://FILE` or `postgres://user:pass@host/db`.
    url: String,
    /// Largest number of pooled connections.
    pool_size: u32,
    /// Longest wait for a database connection before a request gets 503.
    timeout: String,
}

impl Default for RawDatabase {
    fn default() -> Self {
        Self { url: "sqlite://doorman.db".into(), pool_size: 8, timeout: "5s".into() }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawAuth {
    password_login: bool,
    access_ttl: String,
    session_ttl: String,
    api_token_ttl: String,
    external_validity: String,
    /// How long an instance trusts its cached view of a session or bearer
    /// token before reading the database again (the revocation delay
    /// across instances).
    cache_ttl: String,
    /// How long before `valid_until` the background task refreshes a user.
    refresh_ahead: String,
    /// How often the background refresh task looks for due users.
    refresh_interval: String,
    /// Lifetime of the JWTs that `POST /token` issues.
    service_token_ttl: String,
    default_channel: String,
    secret_key: Option<String>,
}

impl Default for RawAuth {
    fn default() -> Self {
        Self {
            password_login: true,
            access_ttl: "15m".into(),
            session_ttl: "7d".into(),
            api_token_ttl: "30d".into(),
            external_validity: "24h".into(),
            cache_ttl: "10s".into(),
            refresh_ahead: "1h".into(),
            refresh_interval: "30s".into(),
            service_token_ttl: "5m".into(),
            default_channel: "default".into(),
            secret_key: None,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct RawOidc {
    providers: Vec<RawProvider>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProvider {
    id: String,
    name: String,
    issuer: String,
    client_id: String,
    #[serde(default)]
    client_secret: Option<String>,
    #[serde(default = "default_scopes")]
    scopes: Vec<String>,
    /// A verified e-mail in one of these domains is required (empty: any).
    #[serde(default)]
    allowed_email_domains: Vec<String>,
    /// The claim (ID token or userinfo) listing the user's groups.
    #[serde(default = "default_groups_claim")]
    groups_claim: String,
    /// Non-empty: the user must be in one of these groups.
    #[serde(default)]
    allowed_groups: Vec<String>,
    /// Members are administrators, others are not.
    #[serde(default)]
    admin_groups: Vec<String>,
    /// `automatic`, or `admin`: new users wait for an administrator's approval.
    #[serde(default = "default_approval")]
    approval: String,
    /// Channel of new users from this provider (empty: `auth.default_channel`).
    #[serde(default)]
    channel: String,
    /// Oldest ID token accepted at sign-in (by its `iat`).
    #[serde(default = "default_max_id_token_age")]
    max_id_token_age: String,
}

fn default_groups_claim() -> String {
    "groups".into()
}

fn default_approval() -> String {
    "automatic".into()
}

fn default_max_id_token_age() -> String {
    "10m".into()
}

fn default_scopes() -> Vec<String> {
    ["openid", "email", "profile", "offline_access"].map(String::from).to_vec()
}

// ---------------------------------------------------------------------------
// The validated settings the program runs on.

/// Everything doorman is configured with, validated.
#[derive(Debug, Clone)]
pub struct Settings {
    pub server: ServerSettings,
    pub database: DatabaseSettings,
    pub auth: AuthSettings,
    pub providers: Vec<ProviderSettings>,
    pub audit: AuditSettings,
    pub metrics: MetricsSettings,
}

/// `[audit]`: how long audit events are kept.
#[derive(Debug, Clone)]
pub struct AuditSettings {
    /// Events older than this are deleted by the background task.
    pub retention: Ttl,
}

/// `[metrics]`: Prometheus metrics on their own listener.
#[derive(Debug, Clone, Default)]
pub struct MetricsSettings {
    /// Where `GET /metrics` is served; `None`: metrics are off.
    pub bind: Option<SocketAddr>,
}

#[derive(Debug, Clone)]
pub struct ServerSettings {
    pub bind: SocketAddr,
    /// Public origin, without a trailing slash.
    pub public_url: Url,
    pub frontend_origins: Vec<url::Origin>,
    /// Proxies whose forwarding headers are believed (see `http::client`).
    pub trusted_proxies: Vec<ipnet::IpNet>,
    pub cookie_domain: Option<String>,
    pub workers: usize,
    /// How long in-flight requests may finish after SIGTERM.
    pub shutdown_timeout: Ttl,
    /// How long an answer to a failed guess (a wrong password or client
    /// secret, an unknown token, a refused attempt, a compressed body) is
    /// held back: the caller's connection waits, doorman spends nothing.
    pub failure_delay: std::time::Duration,
}

impl ServerSettings {
    /// `public_url` joined with an absolute path.
    pub fn url_for(&self, path: &str) -> String {
        format!("{}{}", self.public_url.as_str().trim_end_matches('/'), path)
    }

    /// Whether cookies must carry the `Secure` attribute.
    pub fn secure_cookies(&self) -> bool {
        self.public_url.scheme() == "https"
    }
}

#[derive(Debug, Clone)]
pub struct DatabaseSettings {
    pub url: DatabaseUrl,
    pub pool_size: u32,
    /// Longest wait for a connection (and for connecting) before a request gets 503.
    pub timeout: Ttl,
}

/// Where the data lives; the URL's scheme picks the backend, parsed once here.
#[derive(Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    /// `sqlite://FILE`: the file's path.
    Sqlite(PathBuf),
    /// `postgres://...` or `postgresql://...`, as given.
    Postgres(String),
}

impl DatabaseUrl {
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if let Some(path) = text.strip_prefix("sqlite://") {
            if path.is_empty() {
                return Err("sqlite:// needs a file name".into());
            }
            return Ok(Self::Sqlite(PathBuf::from(path)));
        }
        if text.starts_with("postgres://") || text.starts_with("postgresql://") {
            return Ok(Self::Postgres(text.to_string()));
        }
        Err(format!("unsupported URL {text:?}: use sqlite://FILE or postgres://..."))
    }
}

/// Shown without the password a PostgreSQL URL may carry.
impl std::fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Sqlite(path) => write!(f, "sqlite://{}", path.display()),
            Self::Postgres(url) => match Url::parse(url) {
                Ok(mut parsed) if parsed.password().is_some() => {
                    let _ = parsed.set_password(Some("[redacted]"));
                    write!(f, "{parsed}")
                }
                _ => f.write_str(url),
            },
        }
    }
}

/// A configured duration: positive and at most [`Ttl::MAX_SECS`], so it
/// converts to either of std's and chrono's duration types without failing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Ttl(Duration);

impl Ttl {
    /// About a hundred years.
    pub const MAX_SECS: u64 = 100 * 365 * 86_400;

    pub const fn from_secs(secs: u64) -> Self {
        Self(Duration::from_secs(if secs > Self::MAX_SECS { Self::MAX_SECS } else { secs }))
    }

    pub fn std(self) -> Duration {
        self.0
    }

    pub fn delta(self) -> chrono::TimeDelta {
        // In range by construction (at most MAX_SECS).
        chrono::TimeDelta::from_std(self.0).unwrap_or(chrono::TimeDelta::MAX)
    }

    pub fn as_secs(self) -> u64 {
        self.0.as_secs()
    }
}

impl From<Duration> for Ttl {
    fn from(d: Duration) -> Self {
        if d.as_secs() >= Self::MAX_SECS {
            Self::from_secs(Self::MAX_SECS)
        } else {
            Self(d)
        }
    }
}

#[derive(Debug, Clone)]
pub struct AuthSettings {
    pub password_login: bool,
    pub access_ttl: Ttl,
    pub session_ttl: Ttl,
    pub api_token_ttl: Ttl,
    pub external_validity: Ttl,
    pub cache_ttl: Ttl,
    pub refresh_ahead: Ttl,
    pub refresh_interval: Ttl,
    pub service_token_ttl: Ttl,
    pub default_channel: String,
    pub secret_key: SecretString,
}

#[derive(Debug, Clone)]
pub struct ProviderSettings {
    pub id: String,
    pub name: String,
    /// The issuer as configured; discovery must announce the same.
    pub issuer: String,
    pub client_id: String,
    pub client_secret: Option<SecretString>,
    pub scopes: Vec<String>,
    /// Who may enter through this provider, and what they get.
    pub access: AccessRules,
    /// Oldest ID token accepted at sign-in, by its `iat` (`max_id_token_age`, default 10m).
    pub max_id_token_age: Ttl,
}

/// How a new user from a provider becomes active.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Approval {
    /// At once.
    #[default]
    Automatic,
    /// Stored as `pending` until an administrator approves them.
    Admin,
}

/// A provider's rules on who may enter (see README "Who may sign in").
#[derive(Debug, Clone)]
pub struct AccessRules {
    /// Lower-case domains; empty: any e-mail (or none).
    pub allowed_email_domains: Vec<String>,
    pub groups_claim: String,
    pub allowed_groups: Vec<String>,
    pub admin_groups: Vec<String>,
    pub approval: Approval,
    /// Channel of new users; `None`: `auth.default_channel`.
    pub channel: Option<String>,
}

impl Default for AccessRules {
    fn default() -> Self {
        Self {
            allowed_email_domains: Vec::new(),
            groups_claim: default_groups_claim(),
            allowed_groups: Vec::new(),
            admin_groups: Vec::new(),
            approval: Approval::Automatic,
            channel: None,
        }
    }
}

/// The default `max_id_token_age`: 10 minutes.
pub const DEFAULT_MAX_ID_TOKEN_AGE: Ttl = Ttl::from_secs(600);

impl Settings {
    /// Reads defaults, then `file` (when given), then the environment.
    pub fn load(file: Option<&Path>) -> Result<Settings, ConfigError> {
        Self::load_from(file, Env::prefixed("DOORMAN__").split("__"))
    }

    /// Like [`Settings::load`] from a TOML text, without the environment (for tests).
    pub fn from_toml(text: &str) -> Result<Settings, ConfigError> {
        let figment = Figment::from(Serialized::defaults(RawSettings::default())).merge(Toml::string(text));
        Self::from_figment(figment, None)
    }

    fn load_from(file: Option<&Path>, env: Env) -> Result<Settings, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(RawSettings::default()));
        if let Some(path) = file {
            if !path.is_file() {
                return Err(ConfigError::new("--config", format!("no such file {}", path.display())));
            }
            figment = figment.merge(Toml::file(path));
        }
        Self::from_figment(figment.merge(env), file)
    }

    fn from_figment(figment: Figment, _file: Option<&Path>) -> Result<Settings, ConfigError> {
        let raw: RawSettings = figment.extract().map_err(figment_error)?;
        raw.validate()
    }
}

fn figment_error(err: figment::Error) -> ConfigError {
    use figment::error::Kind;
    let mut key = err.path.join(".");
    let message = match &err.kind {
        Kind::UnknownField(field, _) => {
            push_field(&mut key, &err.path, field);
            "unknown key".to_string()
        }
        Kind::MissingField(field) => {
            push_field(&mut key, &err.path, field);
            "missing".to_string()
        }
        other => other.to_string(),
    };
    if key.is_empty() {
        key = "file".into();
    }
    ConfigError::new(key, message)
}

fn push_field(key: &mut String, path: &[String], field: &str) {
    if path.last().map(String::as_str) != Some(field) {
        if !key.is_empty() {
            key.push('.');
        }
        key.push_str(field);
    }
}

/// Parses `90s`, `15m`, `24h`, `7d` (at most [`Ttl::MAX_SECS`]).
pub fn parse_duration(text: &str) -> Result<Ttl, String> {
    let invalid = || format!("invalid duration {text:?} (write e.g. 90s, 15m, 24h, 7d)");
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).ok_or_else(invalid)?;
    let (digits, unit) = text.split_at(split);
    let n: u64 = digits.parse().map_err(|_| invalid())?;
    let seconds = match unit {
        "s" => n,
        "m" => n.checked_mul(60).ok_or_else(invalid)?,
        "h" => n.checked_mul(3600).ok_or_else(invalid)?,
        "d" => n.checked_mul(86_400).ok_or_else(invalid)?,
        _ => return Err(invalid()),
    };
    if seconds == 0 {
        return Err(format!("duration {text:?} must be more than zero"));
    }
    if seconds > Ttl::MAX_SECS {
        return Err(format!("duration {text:?} is too long (at most 100 years)"));
    }
    Ok(Ttl::from_secs(seconds))
}

fn duration(key: &str, text: &str) -> Result<Ttl, ConfigError> {
    parse_duration(text).map_err(|m| ConfigError::new(key, m))
}

fn http_url(key: &str, text: &str) -> Result<Url, ConfigError> {
    let url = Url::parse(text).map_err(|e| ConfigError::new(key, format!("invalid URL {text:?}: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(ConfigError::new(key, format!("invalid URL {text:?}: not an http(s) URL")));
    }
    Ok(url)
}

impl RawSettings {
    fn validate(self) -> Result<Settings, ConfigError> {
        let bind: SocketAddr = self
            .server
            .bind
            .parse()
            .map_err(|_| ConfigError::new("server.bind", format!("invalid address {:?}", self.server.bind)))?;
        let public_url = if self.server.public_url.is_empty() {
            let host = if bind.ip().is_unspecified() { "127.0.0.1".to_string() } else { bind.ip().to_string() };
            http_url("server.public_url", &format!("http://{host}:{}", bind.port()))?
        } else {
            http_url("server.public_url", &self.server.public_url)?
        };
        let frontend_origins = self
            .server
            .frontend_origins
            .iter()
            .map(|o| http_url("server.frontend_origins", o).map(|u| u.origin()))
            .collect::<Result<Vec<_>, _>>()?;
        let trusted_proxies = self
            .server
            .trusted_proxies
            .iter()
            .map(|text| {
                let text = text.trim();
                text.parse::<ipnet::IpNet>()
                    .or_else(|_| text.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                    .map_err(|_| ConfigError::new("server.trusted_proxies", format!("invalid address or CIDR {text:?}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let cookie_domain = Some(self.server.cookie_domain.trim().to_string()).filter(|d| !d.is_empty());
        let metrics_bind = match self.metrics.bind.trim() {
            "" => None,
            text => Some(
                text.parse::<SocketAddr>().map_err(|_| ConfigError::new("metrics.bind", format!("invalid address {text:?}")))?,
            ),
        };

        let db_url = DatabaseUrl::parse(&self.database.url).map_err(|m| ConfigError::new("database.url", m))?;
        if self.database.pool_size == 0 {
            return Err(ConfigError::new("database.pool_size", "must be at least 1"));
        }

        let a = &self.auth;
        if a.default_channel.trim().is_empty() {
            return Err(ConfigError::new("auth.default_channel", "must not be empty"));
        }
        let secret_key = match &a.secret_key {
            Some(key) if key.len() < 32 => return Err(ConfigError::new("auth.secret_key", "must be at least 32 characters")),
            Some(key) => SecretString::new(key.clone()),
            None => development_key(&db_url)?,
        };
        let auth = AuthSettings {
            password_login: a.password_login,
            access_ttl: duration("auth.access_ttl", &a.access_ttl)?,
            session_ttl: duration("auth.session_ttl", &a.session_ttl)?,
            api_token_ttl: duration("auth.api_token_ttl", &a.api_token_ttl)?,
            external_validity: duration("auth.external_validity", &a.external_validity)?,
            cache_ttl: duration("auth.cache_ttl", &a.cache_ttl)?,
            refresh_ahead: duration("auth.refresh_ahead", &a.refresh_ahead)?,
            refresh_interval: duration("auth.refresh_interval", &a.refresh_interval)?,
            service_token_ttl: duration("auth.service_token_ttl", &a.service_token_ttl)?,
            default_channel: a.default_channel.trim().to_string(),
            secret_key,
        };

        let audit = AuditSettings { retention: duration("audit.retention", &self.audit.retention)? };

        let mut providers: Vec<ProviderSettings> = Vec::new();
        for (i, p) in self.oidc.providers.into_iter().enumerate() {
            let key = |field: &str| format!("oidc.providers[{i}].{field}");
            if p.id.is_empty() || !p.id.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-') {
                return Err(ConfigError::new(key("id"), format!("invalid id {:?}: use [a-z0-9-]+", p.id)));
            }
            if providers.iter().any(|q| q.id == p.id) {
                return Err(ConfigError::new(key("id"), format!("duplicate id {:?}", p.id)));
            }
            if p.name.trim().is_empty() {
                return Err(ConfigError::new(key("name"), "must not be empty"));
            }
            if p.client_id.is_empty() {
                return Err(ConfigError::new(key("client_id"), "must not be empty"));
            }
            if !p.scopes.iter().any(|s| s == "openid") {
                return Err(ConfigError::new(key("scopes"), "must include \"openid\""));
            }
            let access = access_rules(&key, &p)?;
            providers.push(ProviderSettings {
                issuer: http_url(&key("issuer"), &p.issuer).map(|_| p.issuer.trim().to_string())?,
                max_id_token_age: duration(&key("max_id_token_age"), &p.max_id_token_age)?,
                id: p.id,
                name: p.name,
                client_id: p.client_id,
                client_secret: p.client_secret.filter(|s| !s.is_empty()).map(SecretString::new),
                scopes: p.scopes,
                access,
            });
        }

        Ok(Settings {
            server: ServerSettings {
                bind,
                public_url,
                frontend_origins,
                cookie_domain,
                workers: self.server.workers,
                trusted_proxies,
                shutdown_timeout: duration("server.shutdown_timeout", &self.server.shutdown_timeout)?,
                failure_delay: match self.server.failure_delay.trim() {
                    "0" | "0s" => std::time::Duration::ZERO,
                    text => duration("server.failure_delay", text)?.std(),
                },
            },
            database: DatabaseSettings {
                url: db_url,
                pool_size: self.database.pool_size,
                timeout: duration("database.timeout", &self.database.timeout)?,
            },
            auth,
            providers,
            audit,
            metrics: MetricsSettings { bind: metrics_bind },
        })
    }
}

/// A provider's access rules, each value checked; an error names its key.
fn access_rules(key: &dyn Fn(&str) -> String, p: &RawProvider) -> Result<AccessRules, ConfigError> {
    let mut domains = Vec::new();
    for domain in &p.allowed_email_domains {
        let d = domain.trim().to_ascii_lowercase();
        let label_ok = |l: &str| !l.is_empty() && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
        if !d.contains('.') || !d.split('.').all(label_ok) {
            return Err(ConfigError::new(
                key("allowed_email_domains"),
                format!("invalid domain {domain:?}: write e.g. \"example.com\" (no @, no wildcard)"),
            ));
        }
        domains.push(d);
    }
    let groups_claim = p.groups_claim.trim().to_string();
    if groups_claim.is_empty() {
        return Err(ConfigError::new(key("groups_claim"), "must not be empty"));
    }
    let groups = |field: &str, list: &[String]| -> Result<Vec<String>, ConfigError> {
        list.iter()
            .map(|g| {
                if g.trim().is_empty() {
                    Err(ConfigError::new(key(field), "a group name must not be empty"))
                } else {
                    Ok(g.trim().to_string())
                }
            })
            .collect()
    };
    let approval = match p.approval.trim() {
        "automatic" => Approval::Automatic,
        "admin" => Approval::Admin,
        other => {
            return Err(ConfigError::new(key("approval"), format!("invalid value {other:?}: use \"automatic\" or \"admin\"")))
        }
    };
    let channel = p.channel.trim();
    if channel.chars().any(char::is_control) || channel.len() > 150 {
        return Err(ConfigError::new(key("channel"), "at most 150 printable characters"));
    }
    Ok(AccessRules {
        allowed_email_domains: domains,
        groups_claim,
        allowed_groups: groups("allowed_groups", &p.allowed_groups)?,
        admin_groups: groups("admin_groups", &p.admin_groups)?,
        approval,
        channel: Some(channel.to_string()).filter(|c| !c.is_empty()),
    })
}

/// The key used when none is configured: made once and kept in a 0600 file
/// beside the SQLite database. PostgreSQL deployments share one database
/// between instances, so there the key must be configured.
fn development_key(db_url: &DatabaseUrl) -> Result<SecretString, ConfigError> {
    let DatabaseUrl::Sqlite(path) = db_url else {
        return Err(ConfigError::new("auth.secret_key", "required with a PostgreSQL database (every instance must share it)"));
    };
    let key_path = PathBuf::from(format!("{}.secret_key", path.display()));
    let fail =
        |e: std::io::Error| ConfigError::new("auth.secret_key", format!("development key file {}: {e}", key_path.display()));
    if let Ok(existing) = std::fs::read_to_string(&key_path) {
        let existing = existing.trim().to_string();
        if existing.len() >= 32 {
            log::warn!("auth.secret_key is not set: using the development key in {}", key_path.display());
            return Ok(SecretString::new(existing));
        }
    }
    // A database made earlier holds secrets sealed with the lost key: a new
    // key would only fail later on them, so say what is wrong now.
    if std::fs::metadata(path).is_ok_and(|m| m.len() > 0) {
        return Err(ConfigError::new(
            "auth.secret_key",
            format!(
                "not set, and the development key file {} is missing while the database {} already holds data: \
                 restore the key file or set auth.secret_key to the key the data was made with",
                key_path.display(),
                path.display()
            ),
        ));
    }
    let key = crate::crypto::random_token(48);
    write_private_file(&key_path, &key).map_err(fail)?;
    log::warn!("auth.secret_key is not set: made a development key in {}", key_path.display());
    Ok(SecretString::new(key))
}

fn write_private_file(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(contents.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90s"), Ok(Ttl::from_secs(90)));
        assert_eq!(parse_duration("15m"), Ok(Ttl::from_secs(900)));
        assert_eq!(parse_duration("24h"), Ok(Ttl::from_secs(86_400)));
        assert_eq!(parse_duration("7d"), Ok(Ttl::from_secs(604_800)));
        assert!(parse_duration("15 minutes").is_err());
        assert!(parse_duration("m").is_err());
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("99999999999999999999d").is_err());
        assert!(parse_duration("36501d").is_err());
        assert_eq!(parse_duration("36500d").unwrap().delta().num_days(), 36_500);
    }

    const KEY: &str = "secret_key = \"0123456789abcdef0123456789abcdef\"";

    #[test]
    fn bad_duration_names_the_key() {
        let err = Settings::from_toml(&format!("[auth]\n{KEY}\naccess_ttl = \"15 minutes\"")).unwrap_err();
        assert_eq!(err.to_string(), "config: auth.access_ttl: invalid duration \"15 minutes\" (write e.g. 90s, 15m, 24h, 7d)");
    }

    #[test]
    fn trusted_proxies_take_addresses_and_cidrs() {
        let s = Settings::from_toml(&format!("[server]\ntrusted_proxies = [\"10.0.0.0/8\", \"::1\"]\n[auth]\n{KEY}")).unwrap();
        assert_eq!(s.server.trusted_proxies.len(), 2);
        let err = Settings::from_toml(&format!("[server]\ntrusted_proxies = [\"nope\"]\n[auth]\n{KEY}")).unwrap_err();
        assert_eq!(err.to_string(), "config: server.trusted_proxies: invalid address or CIDR \"nope\"");
    }

    #[test]
    fn no_development_key_is_made_for_a_database_with_data() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("d.db");
        let url = DatabaseUrl::Sqlite(db.clone());
        // A new database: a key is made, in a file only the owner reads.
        let key = development_key(&url).unwrap();
        let key_file = dir.path().join("d.db.secret_key");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777, 0o600);
        }
        assert_eq!(development_key(&url).unwrap().expose(), key.expose());
        // The key file lost while the database holds data: a clear error, no new key.
        std::fs::write(&db, b"data").unwrap();
        std::fs::remove_file(&key_file).unwrap();
        let err = development_key(&url).unwrap_err();
        assert_eq!(err.key, "auth.secret_key");
        assert!(err.message.contains("already holds data"), "{err}");
        assert!(!key_file.exists());
    }

    #[test]
    fn metrics_are_off_unless_bound() {
        assert_eq!(Settings::from_toml(&format!("[auth]\n{KEY}")).unwrap().metrics.bind, None);
        let s = Settings::from_toml(&format!("[auth]\n{KEY}\n[metrics]\nbind = \"127.0.0.1:9100\"")).unwrap();
        assert_eq!(s.metrics.bind.unwrap().to_string(), "127.0.0.1:9100");
        let err = Settings::from_toml(&format!("[auth]\n{KEY}\n[metrics]\nbind = \"nowhere\"")).unwrap_err();
        assert_eq!(err.to_string(), "config: metrics.bind: invalid address \"nowhere\"");
    }

    #[test]
    fn unknown_key_is_named() {
        let err = Settings::from_toml(&format!("[auth]\n{KEY}\nbogus = 1")).unwrap_err();
        assert_eq!(err.to_string(), "config: auth.bogus: unknown key");
    }

    #[test]
    fn bad_issuer_url_is_named() {
        let text =
            format!("[auth]\n{KEY}\n[[oidc.providers]]\nid = \"a\"\nname = \"A\"\nissuer = \"not a url\"\nclient_id = \"c\"");
        let err = Settings::from_toml(&text).unwrap_err();
        assert!(err.to_string().starts_with("config: oidc.providers[0].issuer: invalid URL"), "{err}");
    }

    fn provider(extra: &str) -> String {
        format!(
            "[auth]\n{KEY}\n[[oidc.providers]]\nid = \"a\"\nname = \"A\"\nissuer = \"https://idp.example.com\"\nclient_id = \"c\"\n{extra}"
        )
    }

    #[test]
    fn access_rules_are_read_and_checked() {
        let s = Settings::from_toml(&provider(
            "allowed_email_domains = [\"Example.COM\"]\nallowed_groups = [\"staff\"]\nadmin_groups = [\"ops\"]\napproval = \"admin\"\nchannel = \"team\"\nmax_id_token_age = \"5m\"",
        ))
        .unwrap();
        let p = &s.providers[0];
        assert_eq!(p.access.allowed_email_domains, ["example.com"]);
        assert_eq!(p.access.groups_claim, "groups");
        assert_eq!(p.access.approval, Approval::Admin);
        assert_eq!(p.access.channel.as_deref(), Some("team"));
        assert_eq!(p.max_id_token_age, Ttl::from_secs(300));
        let d = Settings::from_toml(&provider("")).unwrap();
        assert_eq!(d.providers[0].max_id_token_age, DEFAULT_MAX_ID_TOKEN_AGE);
        assert_eq!(d.providers[0].access.approval, Approval::Automatic);

        let err = Settings::from_toml(&provider("approval = \"manual\"")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "config: oidc.providers[0].approval: invalid value \"manual\": use \"automatic\" or \"admin\""
        );
        let err = Settings::from_toml(&provider("allowed_email_domains = [\"*.example.com\"]")).unwrap_err();
        assert!(err.to_string().starts_with("config: oidc.providers[0].allowed_email_domains: invalid domain"), "{err}");
        let err = Settings::from_toml(&provider("allowed_email_domains = [\"@example.com\"]")).unwrap_err();
        assert!(err.to_string().starts_with("config: oidc.providers[0].allowed_email_domains:"), "{err}");
        let err = Settings::from_toml(&provider("groups_claim = \"\"")).unwrap_err();
        assert_eq!(err.to_string(), "config: oidc.providers[0].groups_claim: must not be empty");
        let err = Settings::from_toml(&provider("admin_groups = [\" \"]")).unwrap_err();
        assert_eq!(err.to_string(), "config: oidc.providers[0].admin_groups: a group name must not be empty");
        let err = Settings::from_toml(&provider("max_id_token_age = \"ten\"")).unwrap_err();
        assert!(err.to_string().starts_with("config: oidc.providers[0].max_id_token_age: invalid duration"), "{err}");
        let err = Settings::from_toml(&provider("allowed_groups = \"staff\"")).unwrap_err();
        assert!(err.to_string().starts_with("config: oidc.providers.0.allowed_groups: invalid type"), "{err}");
        let err = Settings::from_toml(&provider("admin_group = [\"x\"]")).unwrap_err();
        assert!(err.to_string().contains("admin_group: unknown key"), "{err}");
    }

    #[test]
    fn defaults_need_no_file() {
        let s = Settings::from_toml(&format!("[auth]\n{KEY}")).unwrap();
        assert_eq!(s.server.bind.to_string(), "127.0.0.1:8000");
        assert_eq!(s.server.public_url.as_str(), "http://127.0.0.1:8000/");
        assert_eq!(s.auth.access_ttl, Ttl::from_secs(900));
        assert!(s.auth.password_login);
        assert_eq!(s.database.url, DatabaseUrl::Sqlite("doorman.db".into()));
    }

    #[test]
    #[allow(clippy::result_large_err)]
    fn environment_wins_over_file() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("d.toml", &format!("[auth]\n{KEY}\naccess_ttl = \"5m\"\n[database]\nurl = \"sqlite://a.db\""))?;
            jail.set_env("DOORMAN__AUTH__ACCESS_TTL", "7m");
            let s = Settings::load(Some(Path::new("d.toml"))).map_err(|e| e.to_string())?;
            assert_eq!(s.auth.access_ttl, Ttl::from_secs(420));
            assert_eq!(s.database.url, DatabaseUrl::Sqlite("a.db".into()));
            Ok(())
        });
    }
}
