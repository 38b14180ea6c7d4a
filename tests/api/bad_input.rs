//! Bad input gets a clear 4xx in the SPEC's shape, never a 5xx, and loses nothing.

use serde_json::json;

use crate::both_backends;
use crate::helpers::{assert_error, spawn_app, Backend, TestApp};

async fn alice_still_signs_in(app: &TestApp) {
    let (client, _jar) = app.new_browser();
    let ok =
        client.post(app.url("/me/login")).json(&json!({"username": "alice", "password": "correct horse"})).send().await.unwrap();
    assert_eq!(ok.status(), 200);
}

async fn malformed_bodies_are_400(backend: Backend) {
    let app = spawn_app(backend).await;
    app.create_user("alice", "correct horse", false);
    let url = app.url("/me/login");
    let send = |body: &'static str| app.client.post(url.clone()).header("content-type", "application/json").body(body).send();
    assert_error(send("{\"username\": ").await.unwrap(), 400, "invalid_json").await;
    assert_error(send("[]").await.unwrap(), 400, "invalid_json").await;
    assert_error(send("{\"username\": 5, \"password\": \"x\"}").await.unwrap(), 400, "invalid_json").await;
    assert_error(
        send("{\"username\": \"alice\", \"password\": \"correct horse\", \"admin\": true}").await.unwrap(),
        400,
        "invalid_json",
    )
    .await;
    assert_error(send("{\"username\": \"alice\"}").await.unwrap(), 400, "invalid_json").await;
    let big = format!("{{\"username\": \"{}\", \"password\": \"x\"}}", "a".repeat(200_000));
    let response = app.client.post(url.clone()).header("content-type", "application/json").body(big).send().await.unwrap();
    assert_error(response, 413, "payload_too_large").await;
    let response = app.client.post(url.clone()).header("content-type", "text/plain").body("username=alice").send().await.unwrap();
    assert_error(response, 415, "unsupported_media_type").await;
    assert_eq!(app.user_count().await, 1);
    alice_still_signs_in(&app).await;
}
both_backends!(malformed_bodies_are_400);

async fn hostile_usernames_are_refused_cleanly(backend: Backend) {
    let app = spawn_app(backend).await;
    app.create_user("alice", "correct horse", false);
    for name in [
        "alice' OR '1'='1",
        "alice'; DROP TABLE users; --",
        "\" OR 1=1 --",
        "ålice",
        "アリス",
        "alice\u{0}",
        "🦀🦀🦀",
        "",
        &"x".repeat(10_000),
    ] {
        let response = app.login(name, "correct horse").await;
        assert_error(response, 401, "invalid_credentials").await;
    }
    for path in ["/users/alice'%20OR%201=1/password", "/users/%E3%82%A2%E3%83%AA%E3%82%B9/password", "/users/%00/password"] {
        let response = app.put_json(path, &json!({"password": "whatever password"})).await;
        assert!(response.status().is_client_error(), "{path}: {}", response.status());
    }
    assert_eq!(app.user_count().await, 1);
    alice_still_signs_in(&app).await;
}
both_backends!(hostile_usernames_are_refused_cleanly);

async fn garbage_credentials_are_401(backend: Backend) {
    let app = spawn_app(backend).await;
    app.create_user("alice", "correct horse", false);
    let plain = reqwest::Client::new();
    let me = app.url("/me");
    for header in ["Basic YWxpY2U6eA==", "Bearer", "Bearer ", "Bearer a b", "Bearer dmn_notatoken", "Token abc"] {
        let response = plain.get(&me).header("Authorization", header).send().await.unwrap();
        assert_eq!(response.status(), 401, "{header:?}");
        assert!(response.headers().contains_key("www-authenticate"));
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["error"], "invalid_token", "{header:?}");
    }
    let response = plain
        .get(&me)
        .header("Authorization", reqwest::header::HeaderValue::from_bytes(b"Bearer \xff\xfe").unwrap())
        .send()
        .await
        .unwrap();
    assert_error(response, 401, "invalid_token").await;
    for cookie in [
        "doorman_access=garbage",
        "doorman_access=eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.",
        "doorman_access=a.b.c",
        "doorman_access=; doorman_session=dms_x",
    ] {
        let response = plain.get(&me).header("Cookie", cookie).send().await.unwrap();
        assert_error(response, 401, "invalid_session").await;
    }
    let response = plain
        .post(app.url("/me/refresh"))
        .header("Cookie", "doorman_session=dms_garbage; csrftoken=t")
        .header("X-CSRFToken", "t")
        .send()
        .await
        .unwrap();
    assert_error(response, 401, "invalid_session").await;
    let response =
        plain.post(app.url("/me/logout")).header("Cookie", "csrftoken=t").header("X-CSRFToken", "t").send().await.unwrap();
    assert_error(response, 401, "not_authenticated").await;
    alice_still_signs_in(&app).await;
}
both_backends!(garbage_credentials_are_401);

#[tokio::test]
async fn forged_access_cookie_is_refused() {
    use jsonwebtoken::{encode, EncodingKey, Header};
    let app = spawn_app(Backend::Sqlite).await;
    app.create_user("alice", "correct horse", false);
    app.login("alice", "correct horse").await;
    let claims = json!({"sub": "x", "aud": "doorman-access", "sid": "x", "usr": "root", "email": null, "ch": "default",
                        "adm": true, "ext": false, "vu": null, "iat": 0, "exp": 9_999_999_999i64});
    let forged = encode(&Header::default(), &claims, &EncodingKey::from_secret(b"guessed key")).unwrap();
    let response =
        reqwest::Client::new().get(app.url("/users")).header("Cookie", format!("doorman_access={forged}")).send().await.unwrap();
    assert_error(response, 401, "invalid_session").await;
}

#[tokio::test]
async fn unknown_routes_and_methods_answer_json() {
    let app = spawn_app(Backend::Sqlite).await;
    assert_error(app.get("/nope").await, 404, "not_found").await;
    // A known path with a method it does not take: 405, naming the ones it does.
    let response = app.get("/me/login").await;
    assert_eq!(response.headers()["allow"], "POST");
    assert_error(response, 405, "method_not_allowed").await;
}

/// A NUL or another control character in a filter or a client id is bad
/// input (PostgreSQL refuses a NUL in any text): 400, or the client's 401,
/// never a 500.
async fn control_characters_in_filters_and_client_ids_are_refused(backend: Backend) {
    let app = spawn_app(backend).await;
    app.create_user("root", "correct horse", true);
    assert_eq!(app.login("root", "correct horse").await.status(), 200);
    for query in ["q=%00", "q=a%01b", "after=%00", "after=x%0A"] {
        let body = assert_error(app.get(&format!("/users?{query}")).await, 400, "invalid_input").await;
        assert!(body["message"].as_str().unwrap().contains("printable"), "{query}: {body}");
    }
    assert_eq!(app.get("/users?q=roo&after=a").await.status(), 200);
    for query in ["username=%00", "username=ro%00ot"] {
        assert_error(app.get(&format!("/audit-events?{query}")).await, 400, "invalid_input").await;
    }
    assert_eq!(app.get("/audit-events?username=root").await.status(), 200);

    let (id, secret) = app.create_client("ci", &["tokens"]);
    for bad_id in ["a\0b", "\0", "ci\x7f"] {
        let response = reqwest::Client::new()
            .post(app.url("/token"))
            .basic_auth(bad_id, Some(&secret))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .unwrap();
        assert_error(response, 401, "invalid_client").await;
    }
    let response = reqwest::Client::new()
        .post(app.url("/token"))
        .basic_auth(&id, Some(&secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}
both_backends!(control_characters_in_filters_and_client_ids_are_refused);
