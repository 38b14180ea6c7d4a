//! `GET /openapi.json`: served, OpenAPI 3.1, naming this server; every
//! operation it describes is routed (the unit tests in
//! `http::routes::openapi` hold it to the route table, both ways).

use serde_json::Value;

use crate::helpers::{spawn_app, Backend};

#[tokio::test]
async fn the_description_is_served_and_every_operation_in_it_is_routed() {
    let app = spawn_app(Backend::Sqlite).await;
    let response = app.get("/openapi.json").await;
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"].to_str().unwrap().starts_with("application/json"));
    let doc: Value = response.json().await.unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(doc["servers"][0]["url"], app.address);
    assert_eq!(doc["info"]["version"], env!("CARGO_PKG_VERSION"));

    let plain = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let mut operations = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        let concrete = path.replace("{username}", "nobody").replace("{id}", "nothing");
        for method in item.as_object().unwrap().keys() {
            let method = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let response = plain.request(method.clone(), app.url(&concrete)).send().await.unwrap();
            let status = response.status().as_u16();
            let body = response.text().await.unwrap();
            assert_ne!(status, 405, "{method} {path} is described but not routed");
            assert!(!body.contains("no such endpoint"), "{method} {path} is described but not routed");
            operations += 1;
        }
    }
    assert!(operations >= 20, "only {operations} operations described");
}

#[tokio::test]
async fn a_known_path_with_another_method_is_405_in_the_error_shape() {
    let app = spawn_app(Backend::Sqlite).await;
    let response = app.client.patch(app.url("/api-token-tap")).send().await.unwrap();
    assert_eq!(response.status(), 405);
    assert_eq!(response.headers()["allow"], "GET, POST");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "method_not_allowed");
    let response = app.client.get(app.url("/oidc/backchannel-logout")).send().await.unwrap();
    assert_eq!(response.status(), 405);
    assert_eq!(response.headers()["allow"], "POST");
}
