//! `GET /openapi.json`: served, OpenAPI 3.1, naming this server; it
//! describes exactly the routes of the route table (`ENDPOINTS`), with the
//! same methods, and every one of those is served: none is the default 404.

use std::collections::BTreeSet;

use doorman::http::routes::ENDPOINTS;
use serde_json::Value;

use crate::helpers::{spawn_app, Backend};

const METHODS: [&str; 8] = ["get", "put", "post", "delete", "patch", "head", "options", "trace"];

/// (METHOD, path) of every operation the served description has.
fn described(doc: &Value) -> BTreeSet<(String, String)> {
    let mut found = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in item.as_object().expect("a path item").keys() {
            if METHODS.contains(&method.as_str()) {
                found.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    found
}

#[tokio::test]
async fn the_description_covers_every_route_of_the_table_and_nothing_else() {
    let app = spawn_app(Backend::Sqlite).await;
    let response = app.get("/openapi.json").await;
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"].to_str().unwrap().starts_with("application/json"));
    let doc: Value = response.json().await.unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(doc["servers"][0]["url"], app.address);
    assert_eq!(doc["info"]["version"], env!("CARGO_PKG_VERSION"));

    let table: BTreeSet<(String, String)> =
        ENDPOINTS.iter().map(|e| (e.method.as_str().to_string(), e.path.to_string())).collect();
    assert_eq!(table.len(), ENDPOINTS.len(), "a route is in the table twice");
    assert!(table.len() >= 40, "only {} routes in the table", table.len());
    let doc_ops = described(&doc);
    let missing: Vec<_> = table.difference(&doc_ops).collect();
    let extra: Vec<_> = doc_ops.difference(&table).collect();
    assert!(missing.is_empty(), "routes the description leaves out: {missing:?}");
    assert!(extra.is_empty(), "operations described that the table does not route: {extra:?}");
}

/// The table is what actix serves: each (method, path) reaches a handler
/// or its guard (never the default `no such endpoint` 404, nor the 405 of
/// a known path with another method), and a path of the table with a
/// method it does not list gets 405 naming the ones it does.
#[tokio::test]
async fn every_route_of_the_table_is_served_and_other_methods_are_405() {
    let app = spawn_app(Backend::Sqlite).await;
    let plain = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    for endpoint in ENDPOINTS {
        let concrete = endpoint.path.replace("{username}", "nobody").replace("{id}", "nothing");
        let method = reqwest::Method::from_bytes(endpoint.method.as_str().as_bytes()).unwrap();
        let response = plain.request(method, app.url(&concrete)).send().await.unwrap();
        let status = response.status().as_u16();
        let body = response.text().await.unwrap();
        let name = format!("{} {}", endpoint.method, endpoint.path);
        assert!(!body.contains("no such endpoint"), "{name} is in the table but not served: {status} {body}");
        assert_ne!(status, 405, "{name} is in the table but its method is not served: {body}");
        assert!(status < 500, "{name}: {status} {body}");
    }

    let response = plain.patch(app.url("/api-token-tap")).send().await.unwrap();
    assert_eq!(response.status(), 405);
    assert_eq!(response.headers()["allow"], "GET, POST");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "method_not_allowed");
    assert!(body["message"].as_str().is_some_and(|m| m.contains("GET, POST")), "{body}");
    let response = plain.get(app.url("/oidc/backchannel-logout")).send().await.unwrap();
    assert_eq!(response.status(), 405);
    assert_eq!(response.headers()["allow"], "POST");

    let response = plain.get(app.url("/no/such/thing")).send().await.unwrap();
    assert_eq!(response.status(), 404);
    assert!(response.text().await.unwrap().contains("no such endpoint"));
}
