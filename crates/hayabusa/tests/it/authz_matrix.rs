//! The authorization matrix, generated from the router's own route table
//! (`hayabusa_http::routes()`, from which `router()` is built): a route added to the
//! server without a way to exercise it here fails this test.
//!
//! For every route: 7 kinds of bad token (401); the callers its access class refuses
//! (a non-member 404, a readonly member 403, a plain member 403 where only admins,
//! authors or task parties may act, non-administrators 403 for account creation);
//! other users' ids in the path (404; 403 for a download). Every refusal must be
//! `{"errors":[…]}` as JSON and change nothing: the event log head (`/healthz`) and
//! the blob files are compared before and after. Last, the least privileged caller
//! the class allows does it and must succeed, which proves the ids filled in are
//! the right ones (so the refusals are not 404s for a wrong id).

use crate::helpers::*;
use hayabusa_app::TokenSecret;
use hayabusa_domain::AccountId;
use hayabusa_http::{Access, RouteSpec, routes};
use reqwest::header::CONTENT_TYPE;
use reqwest::{Method, StatusCode};
use serde_json::Value;
use std::collections::BTreeMap;

/// A caller of the world.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Who {
    /// The server administrator.
    Admin,
    /// Room admin of every room of the world (author of its messages, its tasks).
    A,
    /// Plain member.
    M,
    /// Readonly member.
    R,
    /// Not a member of the world's rooms; admin of a room of their own.
    N,
    /// An account of no room of the world (joins by link).
    Joiner,
    /// An account of its own that rotates its token (the positive `POST /me/token`;
    /// rotating anyone else's would lock them out of the rest of the matrix).
    Rotator,
    /// No token at all (public routes, signed downloads).
    Anonymous,
    /// The web client's session of an account of its own (cookie and CSRF token).
    Session,
}

/// How a request carries (or fails to carry) a token.
#[derive(Clone, Debug)]
enum Credential {
    Token(String),
    Header(&'static str, String),
    /// A session cookie and its CSRF token.
    Session(String, String),
    None,
}

const BAD_TOKEN_KINDS: usize = 7;

/// The bad credentials every authenticated route must refuse with 401.
fn bad_credentials(member: &User) -> Vec<(&'static str, Credential)> {
    let real = member.client.token.clone();
    let other_server = TokenSecret::new(vec![42; 32]).token_for(AccountId(member.id));
    let kinds = vec![
        ("no token", Credential::None),
        ("empty token", Credential::Token(String::new())),
        ("garbage", Credential::Token("not a token; <script>".into())),
        (
            "well-formed unknown token",
            Credential::Token("0123456789abcdef".repeat(4)),
        ),
        (
            "the same account's token from another server's secret",
            Credential::Token(other_server),
        ),
        (
            "a real token under an unknown Authorization scheme",
            Credential::Header("authorization", format!("Token {real}")),
        ),
        (
            "a real token cut short by one character",
            Credential::Token(real[..real.len() - 1].to_string()),
        ),
    ];
    assert_eq!(kinds.len(), BAD_TOKEN_KINDS);
    kinds
}

/// A request body.
#[derive(Clone, Debug)]
enum Payload {
    Form(Vec<(&'static str, String)>),
    Upload,
}

/// How to exercise one route.
struct Plan {
    /// The path with the world's ids.
    path: String,
    payload: Payload,
    /// Who must succeed (the positive control, last).
    allowed: Who,
    /// Requests with other users' ids, made as `allowed`, and the refusal each gets.
    foreign: Vec<(String, Payload, StatusCode)>,
}

/// Everything the routes need: accounts, rooms and the things in them.
struct World {
    app: TestApp,
    a: User,
    m: User,
    r: User,
    n: User,
    /// The room for reads, posts, members, read cursors.
    x: u64,
    /// Deleted by the positive `DELETE /rooms/{id}`.
    x_delete: u64,
    /// Has a link with acceptance and two pending join requests.
    x_link: u64,
    /// Has a link, removed by the positive `DELETE …/link`.
    x_unlink: u64,
    msg: String,
    msg_edit: String,
    msg_delete: String,
    task: u64,
    file: u64,
    pending: Vec<u64>,
    link_code: String,
    /// N's room, its message, task and file, and a join request pending in it.
    y: u64,
    y_msg: String,
    y_task: u64,
    y_file: u64,
    y_pending: u64,
    /// Contact requests to A, one per route that resolves one.
    incoming: Vec<u64>,
    /// A contact request to N (someone else's).
    n_incoming: u64,
    /// A's contact, removed by the positive `DELETE /contacts/{id}`.
    contact: u64,
    /// A's webhook, deleted by the positive `DELETE /webhooks/{id}`, and N's.
    a_webhook: String,
    n_webhook: String,
    /// A forwarder, deleted by the positive `DELETE /admin/forwarders/{id}`.
    forwarder: String,
    /// A forwarder that stays (its dead letters, their replay).
    kept_forwarder: String,
    /// A session of an account that signs in with [`SESSION_MAIL`].
    session: Credential,
    /// Accounts the positive calls act on (a contact request target, a joiner).
    spare: Vec<User>,
}

async fn post_ok(client: &Client, path: &str, form: &[(&str, String)]) -> Value {
    let (status, body) = client.send(Method::POST, path, form).await;
    assert!(status.is_success(), "POST {path}: {status} {body}");
    body
}

async fn task_in(user: &User, room: u64) -> u64 {
    let body = post_ok(
        &user.client,
        &format!("/v2/rooms/{room}/tasks"),
        &[("body", "Do it".into()), ("to_ids", user.id.to_string())],
    )
    .await;
    body["task_ids"][0].as_u64().expect("task id")
}

async fn file_in(user: &User, room: u64) -> u64 {
    let part = reqwest::multipart::Part::bytes(b"hello".to_vec()).file_name("seed.txt");
    let response = user
        .client
        .request(Method::POST, &format!("/v2/rooms/{room}/files"))
        .multipart(reqwest::multipart::Form::new().part("file", part))
        .send()
        .await
        .expect("upload sent");
    let (status, body) = read(response).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["file_id"].as_u64().expect("file id")
}

async fn link(user: &User, room: u64, code: &str) {
    post_ok(
        &user.client,
        &format!("/v2/rooms/{room}/link"),
        &[("code", code.into()), ("need_acceptance", "1".into())],
    )
    .await;
}

async fn request_join(user: &User, code: &str) {
    let (status, body) = user
        .client
        .send(Method::POST, &format!("/v2/links/{code}/join"), &[])
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
}

async fn request_contact(from: &User, to: &User) -> u64 {
    let body = post_ok(
        &from.client,
        "/v2/contacts/requests",
        &[("account_id", to.id.to_string())],
    )
    .await;
    body["request_id"].as_u64().expect("request id")
}

/// The sign-in address and password of the world's account with a session.
const SESSION_MAIL: &str = "session@example.com";
const SESSION_PASSWORD: &str = "matrix password";

async fn world() -> World {
    let app = spawn_app().await;
    let (status, body) = app
        .admin
        .send(
            Method::POST,
            "/v2/accounts",
            &[
                ("name", "Sam Session".to_string()),
                ("login_mail", SESSION_MAIL.to_string()),
                ("password", SESSION_PASSWORD.to_string()),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let signed_in = reqwest::Client::new()
        .post(format!("{}/v2/session", app.base))
        .form(&[("login_mail", SESSION_MAIL), ("password", SESSION_PASSWORD)])
        .send()
        .await
        .unwrap();
    let cookie = signed_in.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .trim_start_matches("hayabusa_session=")
        .to_owned();
    let csrf = signed_in.json::<Value>().await.unwrap()["csrf_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let session = Credential::Session(cookie, csrf);
    let a = app.account("Ann Admin").await;
    let m = app.account("Max Member").await;
    let r = app.account("Rita Readonly").await;
    let n = app.account("Nora Nonmember").await;
    let x = app.room(&a, &[&m], &[&r]).await;
    let x_delete = app.room(&a, &[&m], &[&r]).await;
    let x_link = app.room(&a, &[&m], &[&r]).await;
    let x_unlink = app.room(&a, &[&m], &[&r]).await;
    let msg = a.post(x, "hello [To:1]").await;
    let msg_edit = a.post(x, "to be edited").await;
    let msg_delete = a.post(x, "to be deleted").await;
    let task = task_in(&a, x).await;
    let file = file_in(&a, x).await;
    let link_code = "matrix-link".to_string();
    link(&a, x_link, &link_code).await;
    link(&a, x_unlink, "matrix-unlink").await;
    let mut pending = Vec::new();
    for name in ["Pat Pending", "Pia Pending"] {
        let user = app.account(name).await;
        request_join(&user, &link_code).await;
        pending.push(user.id);
    }
    let y = app.room(&n, &[], &[]).await;
    let y_msg = n.post(y, "Nora's").await;
    let y_task = task_in(&n, y).await;
    let y_file = file_in(&n, y).await;
    link(&n, y, "nora-link").await;
    let knocker = app.account("Kim Knocker").await;
    request_join(&knocker, "nora-link").await;
    let mut incoming = Vec::new();
    for i in 0..5 {
        let user = app.account(&format!("Requester {i}")).await;
        incoming.push(request_contact(&user, &a).await);
    }
    let stranger = app.account("Stranger").await;
    let n_incoming = request_contact(&stranger, &n).await;
    let new_webhook = async |user: &User| {
        let form = [
            ("url", "https://93.184.216.34/matrix".to_string()),
            ("event_types", "mention_to_me".to_string()),
        ];
        post_ok(&user.client, "/v2/webhooks", &form).await["webhook_setting_id"]
            .as_str()
            .expect("a webhook id")
            .to_owned()
    };
    let (a_webhook, n_webhook) = (new_webhook(&a).await, new_webhook(&n).await);
    let forwarder = post_ok(
        &app.admin,
        "/v2/admin/forwarders",
        &[("url", "https://93.184.216.34/forward".to_string())],
    )
    .await["forwarder_id"]
        .as_str()
        .expect("a forwarder id")
        .to_owned();
    let kept_forwarder = post_ok(
        &app.admin,
        "/v2/admin/forwarders",
        &[("url", "https://93.184.216.34/forward-kept".to_string())],
    )
    .await["forwarder_id"]
        .as_str()
        .expect("a forwarder id")
        .to_owned();
    let friend = app.account("Fred Friend").await;
    let friendship = request_contact(&friend, &a).await;
    let (status, body) = a
        .client
        .send(
            Method::PUT,
            &format!("/v2/incoming_requests/{friendship}"),
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let spare = vec![
        app.account("Spare Contact").await,
        app.account("Spare Joiner").await,
        app.account("Spare Rotator").await,
        app.account("Spare Issued").await,
        app.account("Spare Revoked").await,
    ];
    World {
        x,
        x_delete,
        x_link,
        x_unlink,
        msg,
        msg_edit,
        msg_delete,
        task,
        file,
        pending,
        link_code,
        y,
        y_msg,
        y_task,
        y_file,
        y_pending: knocker.id,
        incoming,
        n_incoming,
        contact: friend.id,
        a_webhook,
        n_webhook,
        forwarder,
        kept_forwarder,
        session,
        spare,
        app,
        a,
        m,
        r,
        n,
    }
}

impl World {
    fn client(&self, who: Who) -> Option<&Client> {
        match who {
            Who::Admin => Some(&self.app.admin),
            Who::A => Some(&self.a.client),
            Who::M => Some(&self.m.client),
            Who::R => Some(&self.r.client),
            Who::N => Some(&self.n.client),
            Who::Joiner => Some(&self.spare[1].client),
            Who::Rotator => Some(&self.spare[2].client),
            Who::Anonymous | Who::Session => None,
        }
    }

    /// A signed download URL's path and query for `file` of `room`, as A gets it.
    async fn download(&self, room: u64, file: u64, who: &Client) -> String {
        let (status, body) = who
            .send(
                Method::GET,
                &format!("/v2/rooms/{room}/files/{file}"),
                &[("create_download_url", "1".into())],
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let url = body["download_url"].as_str().expect("download_url");
        url.split_once("/v2/")
            .map(|(_, rest)| format!("/v2/{rest}"))
            .expect("a URL with /v2/")
    }

    /// How to exercise `spec`, or None for a route this test does not know.
    async fn plan(&self, spec: &RouteSpec) -> Option<Plan> {
        let (x, y) = (self.x, self.y);
        let mut ids: BTreeMap<&str, String> = BTreeMap::new();
        ids.insert("room_id", x.to_string());
        let mut payload = Payload::Form(vec![]);
        let mut allowed = match spec.access {
            Access::Public | Access::SignedDownload => Who::Anonymous,
            Access::Administrator => Who::Admin,
            Access::RoomMember => Who::R,
            Access::RoomWriter => Who::M,
            Access::Authenticated
            | Access::RoomAdmin
            | Access::MessageAuthor
            | Access::TaskParty => Who::A,
        };
        // Paths with other users' ids: (template values, expected status).
        let mut foreign: Vec<(BTreeMap<&str, String>, StatusCode)> = Vec::new();
        // The plan's path with another payload naming other users' ids.
        let mut other_payloads: Vec<(String, Payload)> = Vec::new();
        let room_of_n = |extra: &[(&'static str, String)]| {
            let mut values: BTreeMap<&str, String> = extra.iter().cloned().collect();
            values.insert("room_id", y.to_string());
            (values, StatusCode::NOT_FOUND)
        };
        let in_x = |extra: &[(&'static str, String)]| {
            let mut values: BTreeMap<&str, String> = extra.iter().cloned().collect();
            values.insert("room_id", x.to_string());
            (values, StatusCode::NOT_FOUND)
        };
        let form = |pairs: &[(&'static str, &str)]| {
            Payload::Form(pairs.iter().map(|(k, v)| (*k, v.to_string())).collect())
        };
        let method = spec.method.as_str();
        match (method, spec.path) {
            ("GET", "/healthz" | "/readyz" | "/metrics" | "/v2/openapi.json") => {}
            ("POST", "/v2/session") => {
                payload = form(&[("login_mail", SESSION_MAIL), ("password", SESSION_PASSWORD)]);
            }
            // The session's own routes (in the table's order: the session is read
            // before it is ended, and everyone's sessions end last).
            ("GET" | "DELETE", "/v2/session") => allowed = Who::Session,
            ("DELETE", "/v2/sessions") => {}
            ("PUT", "/v2/admin/password") => {
                payload = form(&[("login_mail", SESSION_MAIL), ("password", SESSION_PASSWORD)]);
                // An address that is nobody's.
                other_payloads.push((
                    "/v2/admin/password".into(),
                    form(&[
                        ("login_mail", "nobody@example.com"),
                        ("password", SESSION_PASSWORD),
                    ]),
                ));
            }
            (
                "GET",
                "/v2/me"
                | "/v2/my/status"
                | "/v2/my/tasks"
                | "/v2/contacts"
                | "/v2/incoming_requests"
                | "/v2/rooms",
            ) => {}
            ("GET", "/v2/sync") => payload = form(&[("timeout", "0")]),
            ("GET", "/v2/webhooks") => {}
            ("POST", "/v2/webhooks") => {
                payload = form(&[
                    ("url", "https://93.184.216.34/matrix-2"),
                    ("event_types", "message_created"),
                ]);
                // Scoped to N's room, which A is not in.
                other_payloads.push((
                    fill_template(spec.path, &ids),
                    Payload::Form(vec![
                        ("url", "https://93.184.216.34/matrix-3".into()),
                        ("event_types", "message_created".into()),
                        ("room_id", y.to_string()),
                    ]),
                ));
            }
            ("DELETE", "/v2/webhooks/{webhook_setting_id}") => {
                ids.insert("webhook_setting_id", self.a_webhook.clone());
                foreign.push((
                    [("webhook_setting_id", self.n_webhook.clone())].into(),
                    StatusCode::NOT_FOUND,
                ));
            }
            ("GET", "/v2/sync/ws") => {}
            ("POST", "/v2/contacts/requests") => {
                payload = Payload::Form(vec![("account_id", self.spare[0].id.to_string())]);
            }
            ("DELETE", "/v2/contacts/{account_id}") => {
                ids.insert("account_id", self.contact.to_string());
                // N is not A's contact.
                foreign.push((
                    [("account_id", self.n.id.to_string())].into(),
                    StatusCode::NOT_FOUND,
                ));
            }
            ("PUT" | "DELETE", path) if path.starts_with("/v2/incoming_requests/{request_id}") => {
                let index = match (method, path) {
                    ("PUT", "/v2/incoming_requests/{request_id}") => 0,
                    ("DELETE", "/v2/incoming_requests/{request_id}") => 1,
                    ("PUT", "/v2/incoming_requests/{request_id}/accept") => 2,
                    ("PUT", "/v2/incoming_requests/{request_id}/reject") => 3,
                    ("DELETE", "/v2/incoming_requests/{request_id}/reject") => 4,
                    _ => return None,
                };
                ids.insert("request_id", self.incoming[index].to_string());
                foreign.push((
                    [("request_id", self.n_incoming.to_string())].into(),
                    StatusCode::NOT_FOUND,
                ));
            }
            ("GET", "/v2/rooms/{room_id}/tasks" | "/v2/rooms/{room_id}/files") => {
                foreign.push(room_of_n(&[]));
            }
            ("POST", "/v2/rooms/{room_id}/tasks") => {
                payload = Payload::Form(vec![
                    ("body", "Matrix task".into()),
                    ("to_ids", self.a.id.to_string()),
                ]);
                foreign.push(room_of_n(&[]));
            }
            ("GET", "/v2/rooms/{room_id}/tasks/{task_id}")
            | ("PUT", "/v2/rooms/{room_id}/tasks/{task_id}/status") => {
                if method == "PUT" {
                    payload = form(&[("body", "done")]);
                }
                ids.insert("task_id", self.task.to_string());
                foreign.push(room_of_n(&[("task_id", self.y_task.to_string())]));
                foreign.push(in_x(&[("task_id", self.y_task.to_string())]));
            }
            ("POST", "/v2/rooms/{room_id}/files") => {
                payload = Payload::Upload;
                foreign.push(room_of_n(&[]));
            }
            ("GET", "/v2/rooms/{room_id}/files/{file_id}") => {
                ids.insert("file_id", self.file.to_string());
                foreign.push(room_of_n(&[("file_id", self.y_file.to_string())]));
                foreign.push(in_x(&[("file_id", self.y_file.to_string())]));
            }
            ("GET", "/v2/files/download/{room_id}/{file_id}") => {
                // The signed URL is the credential: the plan's path carries it, and
                // the foreign paths are other files' or broken signatures.
                let url = self.download(x, self.file, &self.a.client).await;
                let other = self.download(y, self.y_file, &self.n.client).await;
                let signature = |u: &str| u.split_once('?').map(|(_, q)| q.to_string());
                let (sig_x, sig_y) = (signature(&url)?, signature(&other)?);
                let forbidden = StatusCode::FORBIDDEN;
                let bare = format!("/v2/files/download/{x}/{}", self.file);
                let y_bare = format!("/v2/files/download/{y}/{}", self.y_file);
                let extra = [
                    bare.clone(),
                    format!("{bare}?{sig_y}"),
                    format!("{y_bare}?{sig_x}"),
                    format!("/v2/files/download/{x}/{}?{sig_y}", self.y_file),
                    format!("{bare}?{}", sig_x.replace("signature=", "signature=00")),
                    format!("{bare}?expires=1&signature={}", "0".repeat(64)),
                ]
                .into_iter()
                .map(|path| (path, payload.clone(), forbidden))
                .collect();
                return Some(Plan {
                    path: url,
                    payload,
                    allowed,
                    foreign: extra,
                });
            }
            ("GET", "/v2/rooms/{room_id}/link") => {
                ids.insert("room_id", self.x_link.to_string());
                foreign.push(room_of_n(&[]));
            }
            ("POST", "/v2/rooms/{room_id}/link") => {
                payload = form(&[("code", "matrix-new"), ("need_acceptance", "0")]);
                foreign.push(room_of_n(&[]));
            }
            ("PUT", "/v2/rooms/{room_id}/link") => {
                ids.insert("room_id", self.x_link.to_string());
                payload = form(&[("description", "changed")]);
                foreign.push(room_of_n(&[]));
            }
            ("DELETE", "/v2/rooms/{room_id}/link") => {
                ids.insert("room_id", self.x_unlink.to_string());
                foreign.push(room_of_n(&[]));
            }
            ("GET", "/v2/rooms/{room_id}/join_requests") => {
                ids.insert("room_id", self.x_link.to_string());
                foreign.push(room_of_n(&[]));
            }
            ("PUT" | "DELETE", "/v2/rooms/{room_id}/join_requests/{account_id}") => {
                ids.insert("room_id", self.x_link.to_string());
                let who = self.pending[usize::from(method == "DELETE")];
                ids.insert("account_id", who.to_string());
                let y_pending = self.y_pending.to_string();
                foreign.push(room_of_n(&[("account_id", y_pending.clone())]));
                let mut in_link_room = in_x(&[("account_id", y_pending)]);
                in_link_room.0.insert("room_id", self.x_link.to_string());
                foreign.push(in_link_room);
            }
            ("POST", "/v2/links/{code}/join") => {
                ids.insert("code", self.link_code.clone());
                foreign.push((
                    [("code", "no-such-code".to_string())].into(),
                    StatusCode::NOT_FOUND,
                ));
                // A spare account asks; A (already a member) would be refused.
                allowed = Who::Joiner;
            }
            ("POST", "/v2/accounts") => payload = form(&[("name", "Matrix Made")]),
            ("GET", "/v2/admin/forwarders") => {}
            ("POST", "/v2/admin/forwarders") => {
                payload = form(&[("url", "https://93.184.216.34/forward-2")]);
            }
            ("DELETE", "/v2/admin/forwarders/{forwarder_id}") => {
                ids.insert("forwarder_id", self.forwarder.clone());
                foreign.push((
                    [("forwarder_id", "9007199254740991".to_string())].into(),
                    StatusCode::NOT_FOUND,
                ));
            }
            (
                "GET" | "POST",
                "/v2/admin/forwarders/{forwarder_id}/dead_letters"
                | "/v2/admin/forwarders/{forwarder_id}/replay",
            ) => {
                ids.insert("forwarder_id", self.kept_forwarder.clone());
                foreign.push((
                    [("forwarder_id", "9007199254740991".to_string())].into(),
                    StatusCode::NOT_FOUND,
                ));
            }
            ("POST", "/v2/me/token") => allowed = Who::Rotator,
            ("POST" | "DELETE", "/v2/accounts/{account_id}/token") => {
                let target = &self.spare[if method == "POST" { 3 } else { 4 }];
                ids.insert("account_id", target.id.to_string());
                // No such account (the largest id the API can show).
                foreign.push((
                    [("account_id", "9007199254740991".to_string())].into(),
                    StatusCode::NOT_FOUND,
                ));
            }
            ("POST", "/v2/rooms") => {
                payload = Payload::Form(vec![
                    ("name", "Matrix room".into()),
                    ("members_admin_ids", self.a.id.to_string()),
                ]);
            }
            ("GET", "/v2/rooms/{room_id}" | "/v2/rooms/{room_id}/members") => {
                foreign.push(room_of_n(&[]));
            }
            ("PUT", "/v2/rooms/{room_id}") => {
                payload = form(&[("name", "Renamed")]);
                foreign.push(room_of_n(&[]));
            }
            ("DELETE", "/v2/rooms/{room_id}") => {
                ids.insert("room_id", self.x_delete.to_string());
                payload = form(&[("action_type", "delete")]);
                foreign.push(room_of_n(&[]));
            }
            ("PUT", "/v2/rooms/{room_id}/members") => {
                payload = Payload::Form(vec![
                    ("members_admin_ids", self.a.id.to_string()),
                    ("members_member_ids", self.m.id.to_string()),
                    ("members_readonly_ids", self.r.id.to_string()),
                ]);
                foreign.push(room_of_n(&[]));
            }
            ("GET", "/v2/rooms/{room_id}/messages") => {
                payload = form(&[("force", "1")]);
                foreign.push(room_of_n(&[]));
            }
            ("POST", "/v2/rooms/{room_id}/messages") => {
                payload = form(&[("body", "matrix post")]);
                foreign.push(room_of_n(&[]));
            }
            (
                "PUT",
                "/v2/rooms/{room_id}/messages/read" | "/v2/rooms/{room_id}/messages/unread",
            ) => {
                payload = Payload::Form(vec![("message_id", self.msg.clone())]);
                foreign.push(room_of_n(&[]));
                // A message of N's room, in a room the caller is a member of.
                other_payloads.push((
                    fill_template(spec.path, &ids),
                    Payload::Form(vec![("message_id", self.y_msg.clone())]),
                ));
            }
            ("GET" | "PUT" | "DELETE", "/v2/rooms/{room_id}/messages/{message_id}") => {
                let message = match method {
                    "GET" => &self.msg,
                    "PUT" => {
                        payload = form(&[("body", "edited")]);
                        &self.msg_edit
                    }
                    _ => &self.msg_delete,
                };
                ids.insert("message_id", message.clone());
                foreign.push(room_of_n(&[("message_id", self.y_msg.clone())]));
                foreign.push(in_x(&[("message_id", self.y_msg.clone())]));
            }
            _ => return None,
        }
        let mut foreign: Vec<(String, Payload, StatusCode)> = foreign
            .into_iter()
            .map(|(values, status)| (fill_template(spec.path, &values), payload.clone(), status))
            .collect();
        foreign.extend(
            other_payloads
                .into_iter()
                .map(|(path, payload)| (path, payload, StatusCode::NOT_FOUND)),
        );
        Some(Plan {
            path: fill_template(spec.path, &ids),
            payload,
            allowed,
            foreign,
        })
    }
}

/// Fills `{name}` segments; a segment without a value fails the test.
fn fill_template(template: &str, values: &BTreeMap<&str, String>) -> String {
    template
        .split('/')
        .map(
            |segment| match segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                Some(name) => values
                    .get(name)
                    .unwrap_or_else(|| panic!("no value for {{{name}}} in {template}"))
                    .clone(),
                None => segment.to_string(),
            },
        )
        .collect::<Vec<_>>()
        .join("/")
}

/// Status, content type and body of one request.
async fn call(
    base: &str,
    credential: &Credential,
    method: &Method,
    path: &str,
    payload: &Payload,
) -> (StatusCode, String, Value) {
    let http = reqwest::Client::new();
    let mut request = http.request(method.clone(), format!("{base}{path}"));
    request = match credential {
        Credential::Token(token) => request.header("X-ChatWorkToken", token),
        Credential::Header(name, value) => request.header(*name, value),
        Credential::Session(cookie, csrf) => request
            .header("cookie", format!("hayabusa_session={cookie}"))
            .header("x-csrf-token", csrf),
        Credential::None => request,
    };
    request = match payload {
        Payload::Form(form) if *method == Method::GET || *method == Method::DELETE => {
            request.query(form)
        }
        Payload::Form(form) => request.form(form),
        Payload::Upload => {
            let part = reqwest::multipart::Part::bytes(b"matrix".to_vec()).file_name("m.txt");
            request.multipart(reqwest::multipart::Form::new().part("file", part))
        }
    };
    let response = request.send().await.expect("request sent");
    let content_type = response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let status = response.status();
    let bytes = response.bytes().await.expect("body");
    // Metrics and downloads are not JSON; refusals must be (checked by the caller).
    let body = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    (status, content_type, body)
}

/// A body cut to a readable length for failure messages.
fn short(body: &Value) -> String {
    let text = body.to_string();
    match text.char_indices().nth(300) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text,
    }
}

/// What a refusal must leave unchanged: the event log head and the blob files.
async fn snapshot(world: &World) -> (Value, usize) {
    let (status, health) = world.app.admin.get("/healthz").await;
    assert_eq!(status, StatusCode::OK);
    let blobs = world.app.data_dir().join(hayabusa::data_dir::BLOBS_DIR);
    let count = walk(&blobs);
    (health["log_head"].clone(), count)
}

fn walk(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| {
                    if e.path().is_dir() {
                        walk(&e.path())
                    } else {
                        1
                    }
                })
                .sum()
        })
        .unwrap_or(0)
}

/// The refusal a caller gets from a route of `access` (None: allowed).
fn refusal(access: Access, who: Who) -> Option<StatusCode> {
    use Access::*;
    match (access, who) {
        (RoomMember | RoomWriter | RoomAdmin | MessageAuthor | TaskParty, Who::N) => {
            Some(StatusCode::NOT_FOUND)
        }
        (RoomWriter | RoomAdmin | MessageAuthor | TaskParty, Who::R) => Some(StatusCode::FORBIDDEN),
        (RoomAdmin | MessageAuthor | TaskParty, Who::M) => Some(StatusCode::FORBIDDEN),
        (Administrator, Who::A | Who::M | Who::R | Who::N) => Some(StatusCode::FORBIDDEN),
        _ => None,
    }
}

#[tokio::test]
async fn every_route_refuses_whom_it_must_and_refusals_change_nothing() {
    let world = world().await;
    let base = world.app.base.clone();
    let mut failures: Vec<String> = Vec::new();
    let mut checked = 0usize;
    for spec in routes() {
        let Some(plan) = world.plan(spec).await else {
            failures.push(format!(
                "{spec:?}: the authorization matrix does not know this route; add it to World::plan"
            ));
            continue;
        };
        let method = spec.method.clone();
        let route = format!("{} {}", spec.method, spec.path);
        let refused = |who: String,
                       credential: Credential,
                       path: String,
                       payload: Payload,
                       expected: StatusCode| {
            let world = &world;
            let base = &base;
            let method = &method;
            let route = route.clone();
            async move {
                let before = snapshot(world).await;
                let (status, content_type, body) =
                    call(base, &credential, method, &path, &payload).await;
                let after = snapshot(world).await;
                let mut problems = Vec::new();
                let shown = short(&body);
                if status != expected {
                    problems.push(format!("{status} (expected {expected}) {shown}"));
                } else if !content_type.starts_with("application/json")
                    || body["errors"].as_array().is_none_or(|e| e.is_empty())
                {
                    problems.push(format!("not a JSON error: {content_type} {shown}"));
                }
                if before != after {
                    problems.push(format!("changed state: {before:?} -> {after:?}"));
                }
                problems
                    .into_iter()
                    .map(|p| format!("{route} as {who} at {path}: {p}"))
                    .collect::<Vec<_>>()
            }
        };
        // Bad tokens.
        if !matches!(spec.access, Access::Public | Access::SignedDownload) {
            for (kind, credential) in bad_credentials(&world.m) {
                failures.extend(
                    refused(
                        kind.to_string(),
                        credential,
                        plan.path.clone(),
                        plan.payload.clone(),
                        StatusCode::UNAUTHORIZED,
                    )
                    .await,
                );
                checked += 1;
            }
        }
        // Callers the access class refuses.
        for who in [Who::N, Who::R, Who::M, Who::A] {
            if let Some(expected) = refusal(spec.access, who) {
                let token = world
                    .client(who)
                    .map(|c| c.token.clone())
                    .unwrap_or_default();
                failures.extend(
                    refused(
                        format!("{who:?}"),
                        Credential::Token(token),
                        plan.path.clone(),
                        plan.payload.clone(),
                        expected,
                    )
                    .await,
                );
                checked += 1;
            }
        }
        // Other users' ids, as the allowed caller.
        let allowed_credential = match world.client(plan.allowed) {
            Some(client) => Credential::Token(client.token.clone()),
            None if plan.allowed == Who::Session => world.session.clone(),
            None => Credential::None,
        };
        for (path, payload, expected) in &plan.foreign {
            failures.extend(
                refused(
                    format!("{:?} with other users' ids", plan.allowed),
                    allowed_credential.clone(),
                    path.clone(),
                    payload.clone(),
                    *expected,
                )
                .await,
            );
            checked += 1;
        }
        // The positive control.
        let (status, _, body) = call(
            &base,
            &allowed_credential,
            &method,
            &plan.path,
            &plan.payload,
        )
        .await;
        let body = short(&body);
        let ok = status.is_success()
            // Without upgrade headers the WebSocket route answers 400 past its checks.
            || (spec.path == "/v2/sync/ws" && status == StatusCode::BAD_REQUEST);
        if !ok {
            failures.push(format!(
                "{route} as {:?} at {}: {status} {body} (the allowed caller must succeed)",
                plan.allowed, plan.path
            ));
        }
    }
    assert!(
        checked > routes().len() * BAD_TOKEN_KINDS / 2,
        "{checked} checks"
    );
    assert!(
        failures.is_empty(),
        "{} authorization failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn every_path_parameter_of_the_table_is_one_the_matrix_fills() {
    // Every template of the table is fillable from the world's id names, so a new
    // path parameter needs a new entry in World::plan.
    let known = [
        "room_id",
        "task_id",
        "file_id",
        "message_id",
        "account_id",
        "request_id",
        "code",
        "webhook_setting_id",
        "forwarder_id",
    ];
    for spec in routes() {
        for segment in spec.path.split('/') {
            if let Some(name) = segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                assert!(
                    known.contains(&name),
                    "{spec:?}: unknown path parameter {name}"
                );
            }
        }
    }
}
