//! Signing in for the web client: passwords on accounts, the session cookie, CSRF
//! tokens on cookie-signed writes, signing out (here and everywhere), an
//! administrator's new password, and the limits on sign-in attempts.

use crate::helpers::*;
use reqwest::header::{COOKIE, SET_COOKIE};
use reqwest::{Method, StatusCode};
use serde_json::Value;

/// A browser-like client: no token, only what it is given.
struct Browser {
    base: String,
    http: reqwest::Client,
    cookie: Option<String>,
    csrf: Option<String>,
}

impl Browser {
    fn new(base: &str) -> Browser {
        Browser {
            base: base.to_owned(),
            http: reqwest::Client::new(),
            cookie: None,
            csrf: None,
        }
    }

    /// Signs in; the status, the answer and the raw Set-Cookie header.
    async fn sign_in(&mut self, mail: &str, password: &str) -> (StatusCode, Value, String) {
        let response = self
            .http
            .post(format!("{}/v2/session", self.base))
            .form(&[("login_mail", mail), ("password", password)])
            .send()
            .await
            .unwrap();
        let set_cookie = response
            .headers()
            .get(SET_COOKIE)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let (status, body) = read(response).await;
        if status == StatusCode::OK {
            let value = set_cookie
                .split(';')
                .next()
                .unwrap()
                .strip_prefix("hayabusa_session=")
                .unwrap()
                .to_owned();
            self.cookie = Some(value);
            self.csrf = body["csrf_token"].as_str().map(str::to_owned);
        }
        (status, body, set_cookie)
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        form: &[(&str, String)],
        with_csrf: bool,
    ) -> (StatusCode, Value) {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(cookie) = &self.cookie {
            request = request.header(COOKIE, format!("hayabusa_session={cookie}"));
        }
        if with_csrf && let Some(csrf) = &self.csrf {
            request = request.header("X-CSRF-Token", csrf);
        }
        read(request.form(form).send().await.unwrap()).await
    }

    async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.send(Method::GET, path, &[], false).await
    }
}

/// Creates an account that signs in with `mail` and `password`.
async fn account_with_password(app: &TestApp, name: &str, mail: &str, password: &str) -> u64 {
    let (status, body) = app
        .admin
        .send(
            Method::POST,
            "/v2/accounts",
            &[
                ("name", name.to_owned()),
                ("mail", mail.to_owned()),
                ("login_mail", mail.to_owned()),
                ("password", password.to_owned()),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["account_id"].as_u64().unwrap()
}

#[tokio::test]
async fn a_password_signs_in_to_a_cookie_session_whose_writes_need_the_csrf_token() {
    let app = spawn_app().await;
    let id = account_with_password(&app, "Alice", "alice@example.com", "correct horse").await;
    let mut browser = Browser::new(&app.base);

    // Wrong password and unknown address: the same 401, nothing set.
    for (mail, password) in [
        ("alice@example.com", "wrong horse"),
        ("nobody@example.com", "correct horse"),
    ] {
        let (status, body, set_cookie) = browser.sign_in(mail, password).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
        assert!(body["errors"].is_array());
        assert!(set_cookie.is_empty());
    }
    // The address is compared without case.
    let (status, body, set_cookie) = browser.sign_in("Alice@Example.COM", "correct horse").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["account_id"], id);
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=2592000"] {
        assert!(set_cookie.contains(attribute), "{set_cookie}");
    }
    assert!(
        !set_cookie.contains("Secure"),
        "plain http here: {set_cookie}"
    );

    // Reads need only the cookie.
    let (status, me) = browser.get("/v2/me").await;
    assert_eq!(status, StatusCode::OK, "{me}");
    assert_eq!(me["account_id"], id);
    let (status, session) = browser.get("/v2/session").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(session["csrf_token"], body["csrf_token"]);
    let room = me["room_id"].as_u64().unwrap();

    // Writes need the CSRF token too; without it nothing is written.
    let path = format!("/v2/rooms/{room}/messages");
    let (status, refused) = browser
        .send(Method::POST, &path, &[("body", "no token".into())], false)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{refused}");
    assert!(refused["errors"][0].as_str().unwrap().contains("CSRF"));
    let mut forged = Browser::new(&app.base);
    forged.cookie = browser.cookie.clone();
    forged.csrf = Some("0".repeat(64));
    let (status, _) = forged
        .send(Method::POST, &path, &[("body", "forged".into())], true)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, posted) = browser
        .send(Method::POST, &path, &[("body", "with token".into())], true)
        .await;
    assert_eq!(status, StatusCode::OK, "{posted}");
    let (_, messages) = browser.get(&format!("{path}?force=1")).await;
    let bodies: Vec<&str> = messages
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["body"].as_str().unwrap())
        .collect();
    assert_eq!(bodies, ["with token"]);

    // A made-up or malformed cookie is no one.
    let mut stranger = Browser::new(&app.base);
    for cookie in [format!("{id}.{}", "ab".repeat(32)), "garbage".to_owned()] {
        stranger.cookie = Some(cookie);
        let (status, _) = stranger.get("/v2/me").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
}

#[tokio::test]
async fn signing_out_ends_the_session_here_or_everywhere_and_api_tokens_keep_working() {
    let app = spawn_app().await;
    account_with_password(&app, "Bob", "bob@example.com", "hunter2hunter2").await;
    let mut laptop = Browser::new(&app.base);
    let mut phone = Browser::new(&app.base);
    let mut tablet = Browser::new(&app.base);
    for browser in [&mut laptop, &mut phone, &mut tablet] {
        let (status, _, _) = browser.sign_in("bob@example.com", "hunter2hunter2").await;
        assert_eq!(status, StatusCode::OK);
    }
    // Signing out needs the CSRF token (it is a write).
    let (status, _) = laptop.send(Method::DELETE, "/v2/session", &[], false).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = laptop.send(Method::DELETE, "/v2/session", &[], true).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(laptop.get("/v2/me").await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(phone.get("/v2/me").await.0, StatusCode::OK, "others stay");

    let (status, _) = phone.send(Method::DELETE, "/v2/sessions", &[], true).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(phone.get("/v2/me").await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(tablet.get("/v2/me").await.0, StatusCode::UNAUTHORIZED);
    // The session endpoints want a session.
    let (status, _) = app.admin.get("/v2/session").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // API tokens are not sessions: the admin's still works.
    assert_eq!(app.admin.get("/v2/me").await.0, StatusCode::OK);
}

#[tokio::test]
async fn bad_sign_in_addresses_and_passwords_are_refused_and_change_nothing() {
    let app = spawn_app().await;
    account_with_password(&app, "Carol", "carol@example.com", "long enough").await;
    for (extra, expected) in [
        (
            vec![
                ("login_mail", "carol@example.com"),
                ("password", "another one"),
            ],
            StatusCode::CONFLICT,
        ),
        (
            vec![
                ("login_mail", "CAROL@example.com"),
                ("password", "another one"),
            ],
            StatusCode::CONFLICT,
        ),
        (
            vec![("login_mail", "dave@example.com"), ("password", "short")],
            StatusCode::BAD_REQUEST,
        ),
        (
            vec![("login_mail", "dave@example.com")],
            StatusCode::BAD_REQUEST,
        ),
        (vec![("password", "long enough")], StatusCode::BAD_REQUEST),
        (
            vec![
                ("login_mail", "not an address"),
                ("password", "long enough"),
            ],
            StatusCode::BAD_REQUEST,
        ),
    ] {
        let mut form: Vec<(&str, String)> = vec![("name", "Dave".into())];
        form.extend(extra.iter().map(|(k, v)| (*k, (*v).to_owned())));
        let (status, body) = app.admin.send(Method::POST, "/v2/accounts", &form).await;
        assert_eq!(status, expected, "{extra:?}: {body}");
        assert!(body["errors"].is_array());
    }
    let mut browser = Browser::new(&app.base);
    assert_eq!(
        browser.sign_in("dave@example.com", "long enough").await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        browser.sign_in("carol@example.com", "another one").await.0,
        StatusCode::UNAUTHORIZED,
        "carol's password is unchanged"
    );
}

#[tokio::test]
async fn an_administrator_sets_a_password_and_the_cli_does_too() {
    let app = spawn_app().await;
    let erin = account_with_password(&app, "Erin", "erin@example.com", "first password").await;
    let (status, body) = app
        .admin
        .send(
            Method::PUT,
            "/v2/admin/password",
            &[
                ("login_mail", "erin@example.com".into()),
                ("password", "second password".into()),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let mut browser = Browser::new(&app.base);
    assert_eq!(
        browser
            .sign_in("erin@example.com", "first password")
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        browser
            .sign_in("erin@example.com", "second password")
            .await
            .0,
        StatusCode::OK
    );
    // Not for others, nor for addresses nobody has.
    let user = app.account("Frank").await;
    let (status, _) = user
        .client
        .send(
            Method::PUT,
            "/v2/admin/password",
            &[
                ("login_mail", "erin@example.com".into()),
                ("password", "frank's choice".into()),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = app
        .admin
        .send(
            Method::PUT,
            "/v2/admin/password",
            &[
                ("login_mail", "nobody@example.com".into()),
                ("password", "whatever you like".into()),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // The CLI: create with a password, then set another from standard input.
    let cli = async |args: Vec<String>, stdin: &'static str| {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_hayabusa"));
        command
            .arg("account")
            .args(args)
            .args(["--server", &app.base, "--token", &app.admin.token])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        tokio::task::spawn_blocking(move || {
            use std::io::Write;
            let mut child = command.spawn().unwrap();
            child
                .stdin
                .take()
                .unwrap()
                .write_all(stdin.as_bytes())
                .unwrap();
            child.wait_with_output().unwrap()
        })
        .await
        .unwrap()
    };
    let created = cli(
        [
            "create",
            "--name",
            "Grace",
            "--mail",
            "grace@example.com",
            "--password",
            "from the cli",
        ]
        .map(String::from)
        .to_vec(),
        "",
    )
    .await;
    assert!(created.status.success(), "{created:?}");
    assert_eq!(
        browser.sign_in("grace@example.com", "from the cli").await.0,
        StatusCode::OK
    );
    let set = cli(
        ["set-password", "--mail", "grace@example.com"]
            .map(String::from)
            .to_vec(),
        "typed on stdin\n",
    )
    .await;
    assert!(set.status.success(), "{set:?}");
    assert_eq!(
        browser
            .sign_in("grace@example.com", "typed on stdin")
            .await
            .0,
        StatusCode::OK
    );
    let _ = erin;
}

#[tokio::test]
async fn sign_in_attempts_are_limited_per_address_and_per_peer() {
    let app = spawn_app_configured(|config| hayabusa::Config {
        rate_limits: hayabusa_http::RateLimits {
            per_token: None,
            per_peer: None,
            room_posts: None,
            sign_in_address: Some(hayabusa_store::RateLimit {
                requests: 3,
                window: std::time::Duration::from_secs(60),
            }),
            sign_in_peer: Some(hayabusa_store::RateLimit {
                requests: 6,
                window: std::time::Duration::from_secs(60),
            }),
            ..hayabusa_http::RateLimits::default()
        },
        ..config
    })
    .await;
    account_with_password(&app, "Heidi", "heidi@example.com", "the right one").await;
    account_with_password(&app, "Ivan", "ivan@example.com", "the right one").await;
    let mut browser = Browser::new(&app.base);
    // A success does not count against the address.
    assert_eq!(
        browser
            .sign_in("heidi@example.com", "the right one")
            .await
            .0,
        StatusCode::OK
    );
    for _ in 0..3 {
        assert_eq!(
            browser.sign_in("heidi@example.com", "guess").await.0,
            StatusCode::UNAUTHORIZED
        );
    }
    // The address is locked, even for the right password.
    let (status, body, _) = browser.sign_in("heidi@example.com", "the right one").await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert!(body["errors"].is_array());
    // Another address still works from here…
    assert_eq!(
        browser.sign_in("ivan@example.com", "the right one").await.0,
        StatusCode::OK
    );
    // …until the peer's own limit (6 attempts) is reached.
    let (status, _, _) = browser.sign_in("ivan@example.com", "the right one").await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
}
