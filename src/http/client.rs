//! Who is on the other end of a request: the client's address (the peer's,
//! or the one a trusted reverse proxy forwarded, per
//! `server.trusted_proxies`) and its user agent, for limits, sessions and
//! audit.

use std::future::{ready, Ready};
use std::net::IpAddr;

use actix_web::http::header;
use actix_web::{web, FromRequest, HttpRequest};

use super::error::ApiError;
use super::state::AppState;
use crate::identity::audit::Origin;

/// Longest user agent kept.
const MAX_USER_AGENT: usize = 256;
/// Most forwarding hops read from a header.
const MAX_HOPS: usize = 32;

/// The client of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientInfo {
    pub ip: IpAddr,
    pub user_agent: Option<String>,
}

impl ClientInfo {
    /// The client as the identity layer records it (no actor yet).
    pub fn origin(&self) -> Origin {
        Origin { actor: None, ip: Some(self.ip), user_agent: self.user_agent.clone() }
    }

    /// Reads the client of `req`; `trusted` are the proxies whose headers count.
    pub fn of(req: &HttpRequest, trusted: &[ipnet::IpNet]) -> Self {
        let peer = req.peer_addr().map(|a| a.ip()).unwrap_or(IpAddr::from([0, 0, 0, 0]));
        let user_agent = req
            .headers()
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|ua| ua.chars().filter(|c| !c.is_control()).take(MAX_USER_AGENT).collect());
        Self { ip: client_ip(peer, &forwarded_chain(req), trusted), user_agent }
    }
}

/// The client's address: walking the forwarding chain from the nearest hop,
/// the first address that is not a trusted proxy. With no trusted proxy
/// configured, or a peer that is not one, the peer itself.
pub fn client_ip(peer: IpAddr, chain: &[IpAddr], trusted: &[ipnet::IpNet]) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    let mut client = peer;
    if !is_trusted(&peer) {
        return client;
    }
    for hop in chain.iter().rev() {
        client = *hop;
        if !is_trusted(hop) {
            break;
        }
    }
    client
}

/// The addresses of `Forwarded` (`for=`, RFC 7239), else of
/// `X-Forwarded-For`, client first; an entry that is no address ends the
/// chain there (what lies before it cannot be believed).
fn forwarded_chain(req: &HttpRequest) -> Vec<IpAddr> {
    let values = |name: header::HeaderName| -> Vec<String> {
        req.headers().get_all(name).filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(',')).map(str::to_string).collect()
    };
    let forwarded: Vec<String> = values(header::FORWARDED)
        .iter()
        .filter_map(|element| {
            element.split(';').find_map(|pair| {
                let (key, value) = pair.trim().split_once('=')?;
                key.eq_ignore_ascii_case("for").then(|| value.trim().trim_matches('"').to_string())
            })
        })
        .collect();
    let entries = if forwarded.is_empty() { values(header::HeaderName::from_static("x-forwarded-for")) } else { forwarded };
    let mut chain = Vec::new();
    for entry in entries.iter().rev().take(MAX_HOPS) {
        match parse_hop(entry.trim()) {
            Some(ip) => chain.push(ip),
            None => break,
        }
    }
    chain.reverse();
    chain
}

/// `192.0.2.1`, `192.0.2.1:80`, `[2001:db8::1]` or `[2001:db8::1]:80`.
fn parse_hop(text: &str) -> Option<IpAddr> {
    if let Ok(ip) = text.parse() {
        return Some(ip);
    }
    if let Some(rest) = text.strip_prefix('[') {
        return rest.split_once(']').and_then(|(ip, _)| ip.parse().ok());
    }
    text.rsplit_once(':').and_then(|(ip, _)| ip.parse().ok())
}

impl FromRequest for ClientInfo {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        let trusted =
            req.app_data::<web::Data<AppState>>().map(|s| s.settings.server.trusted_proxies.clone()).unwrap_or_default();
        ready(Ok(ClientInfo::of(req, &trusted)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn only_trusted_proxies_are_believed() {
        let trusted: Vec<ipnet::IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let chain = [ip("203.0.113.9"), ip("10.0.0.7")];
        // A peer that is no proxy: its headers say nothing.
        assert_eq!(client_ip(ip("198.51.100.1"), &chain, &trusted), ip("198.51.100.1"));
        // Through two trusted hops: the first untrusted address from the right.
        assert_eq!(client_ip(ip("10.0.0.1"), &chain, &trusted), ip("203.0.113.9"));
        // A spoofed left part is ignored: the nearest untrusted hop wins.
        let spoofed = [ip("1.2.3.4"), ip("203.0.113.9"), ip("10.0.0.7")];
        assert_eq!(client_ip(ip("10.0.0.1"), &spoofed, &trusted), ip("203.0.113.9"));
        // Nothing configured: the peer.
        assert_eq!(client_ip(ip("10.0.0.1"), &chain, &[]), ip("10.0.0.1"));
    }

    #[test]
    fn hops_parse_with_ports_and_brackets() {
        assert_eq!(parse_hop("192.0.2.1:80"), Some(ip("192.0.2.1")));
        assert_eq!(parse_hop("[2001:db8::1]:443"), Some(ip("2001:db8::1")));
        assert_eq!(parse_hop("2001:db8::1"), Some(ip("2001:db8::1")));
        assert_eq!(parse_hop("unknown"), None);
        assert_eq!(parse_hop("_hidden"), None);
    }
}
