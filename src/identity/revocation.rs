//! Revocation everywhere: the one way a session, an API token or all of a
//! user's credentials stop working, on this instance at once and on every
//! instance sharing the PostgreSQL database within about a second.
//!
//! Every cause (logout, a session ended from the list, token revocation, a
//! password change, a user disabled, changed or deleted, an administrator's
//! sign-out, a back-channel logout) writes its change and calls
//! [`Revocations::announce`] inside the same transaction: a
//! `pg_notify('doorman_revocations', ...)` that PostgreSQL delivers to every
//! listening instance when, and only when, the transaction commits. After the
//! commit the cause calls [`Revocations::forget`] for this instance. What
//! ends sessions or tokens announces them through
//! `EndedCredentials::announce` (a user's credentials through
//! `identity::end_credentials_in`, inside the caller's transaction) and
//! forgets them through `Identity::forget_ended`.
//! Each instance keeps one dedicated connection that `LISTEN`s and forgets
//! the cache entries named; when that connection is lost the caches fall
//! back to `auth.cache_ttl`, the loss is logged and shown by `/readyz`, the
//! connection is made again with backoff, and on reconnecting every cached
//! view is forgotten (what was revoked meanwhile was not heard). On SQLite
//! doorman is a single instance: forgetting locally is all there is.
//! The hot path reads only the caches; it never waits on the channel.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use diesel::sql_types::Text;
use diesel::{QueryResult, RunQueryDsl};
use futures_util::StreamExt;
use moka::sync::Cache;
use serde::{Deserialize, Serialize};

use super::api_tokens::CachedToken;
use crate::db::DbConnection;

/// The PostgreSQL channel revocations travel on.
pub const CHANNEL: &str = "doorman_revocations";
/// `application_name` of the listening connection (operators can find it in `pg_stat_activity`).
pub const LISTENER_APPLICATION_NAME: &str = "doorman-revocations";
/// How many ids one notification carries (PostgreSQL caps a payload at 8000 bytes).
const IDS_PER_NOTIFICATION: usize = 100;
/// How often the listening connection is checked with a query.
const HEARTBEAT: Duration = Duration::from_secs(5);
/// The first and the longest wait before making a lost connection again.
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// What an instance remembers of a browser session for `auth.cache_ttl`.
#[derive(Debug, Clone)]
pub struct CachedSession {
    pub user_id: String,
    pub live: bool,
}

/// Session id -> what is known of it.
pub type SessionCache = Cache<String, CachedSession>;
/// API-token hash -> the token and its user.
pub type TokenCache = Cache<String, Arc<CachedToken>>;

/// What stopped working.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Revoked {
    /// Browser sessions, by id.
    Sessions(Vec<String>),
    /// API tokens, by the SHA-256 they are stored as (never their secret).
    Tokens(Vec<String>),
    /// Every session and API token of a user, by user id.
    User(String),
}

impl Revoked {
    /// The notification payloads, each small enough for `pg_notify`.
    fn payloads(&self) -> Vec<String> {
        let encode = |r: &Revoked| serde_json::to_string(r).unwrap_or_default();
        match self {
            Revoked::Sessions(ids) => ids.chunks(IDS_PER_NOTIFICATION).map(|c| encode(&Revoked::Sessions(c.to_vec()))).collect(),
            Revoked::Tokens(hashes) => {
                hashes.chunks(IDS_PER_NOTIFICATION).map(|c| encode(&Revoked::Tokens(c.to_vec()))).collect()
            }
            Revoked::User(_) => vec![encode(self)],
        }
    }

    /// Whether it names nothing.
    pub fn is_empty(&self) -> bool {
        match self {
            Revoked::Sessions(ids) | Revoked::Tokens(ids) => ids.is_empty(),
            Revoked::User(id) => id.is_empty(),
        }
    }
}

/// The state of an instance's notification channel, as `/readyz` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChannelState {
    /// SQLite: one instance, nothing to hear.
    SingleInstance,
    /// The first connection is being made.
    Connecting,
    /// Listening: revocations elsewhere arrive within about a second.
    Listening,
    /// The connection is lost: the caches fall back to `auth.cache_ttl`.
    Lost,
}

impl ChannelState {
    pub fn as_str(self) -> &'static str {
        match self {
            ChannelState::SingleInstance => "single_instance",
            ChannelState::Connecting => "connecting",
            ChannelState::Listening => "ok",
            ChannelState::Lost => "lost",
        }
    }

    fn from_u8(v: u8) -> Self {
        match v {
            0 => ChannelState::SingleInstance,
            1 => ChannelState::Connecting,
            2 => ChannelState::Listening,
            _ => ChannelState::Lost,
        }
    }

    fn to_u8(self) -> u8 {
        match self {
            ChannelState::SingleInstance => 0,
            ChannelState::Connecting => 1,
            ChannelState::Listening => 2,
            ChannelState::Lost => 3,
        }
    }
}

/// Revocation of one instance: the caches it forgets from and its channel.
pub struct Revocations {
    sessions: SessionCache,
    tokens: TokenCache,
    state: AtomicU8,
}

impl Revocations {
    /// Revocations over the caches that sessions and API tokens read.
    pub fn new(sessions: SessionCache, tokens: TokenCache, shared: bool) -> Self {
        let state = if shared { ChannelState::Connecting } else { ChannelState::SingleInstance };
        Self { sessions, tokens, state: AtomicU8::new(state.to_u8()) }
    }

    /// The channel's state now.
    pub fn state(&self) -> ChannelState {
        ChannelState::from_u8(self.state.load(Ordering::Relaxed))
    }

    fn set_state(&self, state: ChannelState) {
        self.state.store(state.to_u8(), Ordering::Relaxed);
        metrics::gauge!("doorman_revocation_channel_up").set(if state == ChannelState::Listening { 1.0 } else { 0.0 });
    }

    /// Tells every instance, inside the caller's transaction, that
    /// `revoked` stopped working; PostgreSQL sends it at commit (and never,
    /// if the transaction rolls back). Nothing to do on SQLite.
    pub fn announce(conn: &mut DbConnection, revoked: &Revoked) -> QueryResult<()> {
        let DbConnection::Postgresql(pg) = conn else { return Ok(()) };
        if revoked.is_empty() {
            return Ok(());
        }
        for payload in revoked.payloads() {
            diesel::sql_query("SELECT pg_notify($1, $2)").bind::<Text, _>(CHANNEL).bind::<Text, _>(payload).execute(pg)?;
        }
        Ok(())
    }

    /// Forgets `revoked` from this instance's caches, so it is refused here at once.
    pub fn forget(&self, revoked: &Revoked) {
        self.drop_entries(revoked);
        metrics::counter!("doorman_revocations_total", "kind" => kind(revoked), "source" => "local").increment(1);
    }

    fn drop_entries(&self, revoked: &Revoked) {
        match revoked {
            Revoked::Sessions(ids) => ids.iter().for_each(|id| self.sessions.invalidate(id)),
            Revoked::Tokens(hashes) => hashes.iter().for_each(|hash| self.tokens.invalidate(hash)),
            Revoked::User(user_id) => {
                let id = user_id.clone();
                // Both caches are built with invalidation closures (see `identity::Identity::new`).
                let _ = self.sessions.invalidate_entries_if(move |_, s| s.user_id == id);
                let id = user_id.clone();
                let _ = self.tokens.invalidate_entries_if(move |_, t| t.user.user.id == id);
            }
        }
    }

    /// Forgets every cached view: after the channel was lost, what was
    /// revoked meanwhile was not heard.
    pub fn forget_all(&self) {
        self.sessions.invalidate_all();
        self.tokens.invalidate_all();
    }

    /// One notification from another instance (or this one).
    fn heard(&self, payload: &str) {
        match serde_json::from_str::<Revoked>(payload) {
            Ok(revoked) => {
                self.drop_entries(&revoked);
                metrics::counter!("doorman_revocations_total", "kind" => kind(&revoked), "source" => "notification").increment(1);
            }
            Err(err) => log::warn!("revocation channel: an unreadable notification was ignored: {err}"),
        }
    }

    /// Starts listening on `database_url` (PostgreSQL), waiting at most a few
    /// seconds for the first connection; the task then keeps the channel
    /// open for the life of the process.
    pub async fn start_listener(self: &Arc<Self>, database_url: &str) {
        let config = match database_url.parse::<tokio_postgres::Config>() {
            Ok(mut config) => {
                config.application_name(LISTENER_APPLICATION_NAME);
                config.connect_timeout(Duration::from_secs(5));
                config
            }
            Err(err) => {
                log::error!("revocation channel: cannot read the database URL ({err}); falling back to auth.cache_ttl");
                self.set_state(ChannelState::Lost);
                return;
            }
        };
        let (first_tx, first_rx) = tokio::sync::oneshot::channel();
        let this = self.clone();
        tokio::spawn(async move { this.listen_forever(config, first_tx).await });
        let _ = tokio::time::timeout(Duration::from_secs(5), first_rx).await;
    }

    async fn listen_forever(self: Arc<Self>, config: tokio_postgres::Config, first: tokio::sync::oneshot::Sender<()>) {
        let mut first = Some(first);
        let mut backoff = FIRST_BACKOFF;
        let mut ever_connected = false;
        loop {
            let outcome = self.listen_once(&config, &mut first, &mut ever_connected, &mut backoff).await;
            if let Some(tx) = first.take() {
                let _ = tx.send(());
            }
            self.set_state(ChannelState::Lost);
            log::error!(
                "revocation channel lost ({outcome}); revocations on other instances now take up to auth.cache_ttl here; \
                 reconnecting in {}s",
                backoff.as_secs()
            );
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    /// Connects, listens and forgets what it hears until the connection
    /// fails; returns why it ended.
    async fn listen_once(
        &self,
        config: &tokio_postgres::Config,
        first: &mut Option<tokio::sync::oneshot::Sender<()>>,
        ever_connected: &mut bool,
        backoff: &mut Duration,
    ) -> String {
        let (client, mut connection) = match config.connect(tokio_postgres::NoTls).await {
            Ok(pair) => pair,
            Err(err) => return format!("cannot connect: {err}"),
        };
        // The connection object yields the notifications; drive it in its own task.
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Result<String, String>>();
        let driver = tokio::spawn(async move {
            let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
            while let Some(message) = messages.next().await {
                match message {
                    Ok(tokio_postgres::AsyncMessage::Notification(n)) => {
                        if tx.send(Ok(n.payload().to_string())).is_err() {
                            return;
                        }
                    }
                    Ok(_) => {}
                    Err(err) => {
                        let _ = tx.send(Err(err.to_string()));
                        return;
                    }
                }
            }
            let _ = tx.send(Err("the server closed the connection".into()));
        });
        let _abort_driver = AbortOnDrop(driver);
        if let Err(err) = client.batch_execute(&format!("LISTEN {CHANNEL}")).await {
            return format!("LISTEN failed: {err}");
        }
        // Whatever was revoked before this point is in the database; forget
        // every cached view so the next request reads it.
        self.forget_all();
        self.set_state(ChannelState::Listening);
        *backoff = FIRST_BACKOFF;
        if *ever_connected {
            log::warn!("revocation channel: listening again; cached sessions and tokens forgotten");
        } else {
            log::info!("revocation channel: listening on {CHANNEL}");
        }
        *ever_connected = true;
        if let Some(tx) = first.take() {
            let _ = tx.send(());
        }
        let mut heartbeat = tokio::time::interval(HEARTBEAT);
        heartbeat.tick().await;
        loop {
            tokio::select! {
                message = rx.recv() => match message {
                    Some(Ok(payload)) => self.heard(&payload),
                    Some(Err(err)) => return err,
                    None => return "the connection task ended".into(),
                },
                _ = heartbeat.tick() => {
                    match tokio::time::timeout(Duration::from_secs(3), client.simple_query("SELECT 1")).await {
                        Ok(Ok(_)) => {}
                        Ok(Err(err)) => return format!("heartbeat failed: {err}"),
                        Err(_) => return "heartbeat timed out".into(),
                    }
                }
            }
        }
    }
}

fn kind(revoked: &Revoked) -> &'static str {
    match revoked {
        Revoked::Sessions(_) => "sessions",
        Revoked::Tokens(_) => "tokens",
        Revoked::User(_) => "user",
    }
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_are_small_and_read_back() {
        let ids: Vec<String> = (0..250).map(|_| uuid::Uuid::new_v4().to_string()).collect();
        let payloads = Revoked::Sessions(ids.clone()).payloads();
        assert_eq!(payloads.len(), 3);
        assert!(payloads.iter().all(|p| p.len() < 8000));
        let back: Vec<String> = payloads
            .iter()
            .flat_map(|p| match serde_json::from_str::<Revoked>(p).unwrap() {
                Revoked::Sessions(ids) => ids,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(back, ids);
        assert_eq!(Revoked::User("u".into()).payloads(), vec![r#"{"user":"u"}"#.to_string()]);
    }
}
