//! `spawn_app()` and a small ChatWork-style client.

use hayabusa::{Config, RunningServer};
use reqwest::{Method, StatusCode};
use serde_json::Value;
use std::path::{Path, PathBuf};
use tempfile::TempDir;

/// A server on a free port with its own data directory (and, on the distributed
/// engines, its own database).
pub struct TestApp {
    pub server: Option<RunningServer>,
    pub base: String,
    pub admin: Client,
    pub dir: TempDir,
    pub backend: TestBackend,
}

/// The engines `spawn_app` runs on, from `HAYABUSA_TEST_BACKEND`: `sqlite` (the
/// default: the data directory's files), `postgres` (the read models in a fresh
/// PostgreSQL database of their own, from `HAYABUSA_TEST_POSTGRES`), or
/// `nats-postgres` (and the event log and uploaded files on a nats-server of its own,
/// JetStream with `sync_interval: always`).
pub struct TestBackend {
    pub backends: hayabusa::Backends,
    /// Kept for the app's life (dropped with the test process's leftovers).
    pub _database: Option<hayabusa_postgres::testkit::TestDatabase>,
    /// The app's nats-server (killed when dropped).
    pub nats: Option<hayabusa_nats::testkit::NatsServer>,
}

impl TestBackend {
    /// The data directory's files.
    pub fn embedded() -> TestBackend {
        TestBackend {
            backends: hayabusa::Backends::default(),
            _database: None,
            nats: None,
        }
    }

    pub async fn from_env() -> TestBackend {
        let chosen = std::env::var("HAYABUSA_TEST_BACKEND").unwrap_or_default();
        let (nats, postgres) = match chosen.as_str() {
            "" | "sqlite" => return TestBackend::embedded(),
            "postgres" => (false, true),
            "nats-postgres" => (true, true),
            other => panic!(
                "HAYABUSA_TEST_BACKEND={other:?}: expected sqlite, postgres or nats-postgres"
            ),
        };
        let mut backend = TestBackend::embedded();
        if postgres {
            let database = hayabusa_postgres::testkit::TestDatabase::create().await;
            backend.backends.read_store = hayabusa::backends::ReadStoreBackend::Postgres(
                hayabusa::backends::ServiceUrl::new(database.connection_string()),
            );
            backend._database = Some(database);
        }
        if nats {
            let server = hayabusa_nats::testkit::NatsServer::start();
            backend.backends.event_log = nats_backend(&server);
            // Uploaded files in the JetStream object store, as a cluster keeps them.
            backend.backends.blob_store = hayabusa::backends::BlobStoreBackend::Nats {
                bucket: hayabusa_nats::blobs::DEFAULT_BUCKET.into(),
            };
            backend.nats = Some(server);
        }
        backend
    }
}

/// The event log on the test's nats-server, in the default stream.
pub fn nats_backend(
    nats: &hayabusa_nats::testkit::NatsServer,
) -> hayabusa::backends::EventLogBackend {
    hayabusa::backends::EventLogBackend::Nats {
        servers: hayabusa::backends::ServiceUrl::new(nats.url()),
        stream: hayabusa::backends::DEFAULT_STREAM.into(),
        replicas: 1,
    }
}

pub async fn spawn_app() -> TestApp {
    let dir = tempfile::tempdir().expect("temp dir");
    let backend = TestBackend::from_env().await;
    let (server, base, admin) = start_with(dir.path(), &backend.backends).await;
    TestApp {
        server: Some(server),
        base,
        admin,
        dir,
        backend,
    }
}

/// A server on the data directory `dir` and the embedded stores.
pub async fn start_in(dir: &Path) -> (RunningServer, String, Client) {
    start_with(dir, &hayabusa::Backends::default()).await
}

/// A server on the data directory `dir` and `backends`.
/// A test app whose configuration `adjust` changes (on the backend of this run).
pub async fn spawn_app_configured(adjust: impl FnOnce(Config) -> Config) -> TestApp {
    let dir = tempfile::tempdir().expect("temp dir");
    let backend = TestBackend::from_env().await;
    let (server, base, admin) = start_configured(dir.path(), &backend.backends, adjust).await;
    TestApp {
        server: Some(server),
        base,
        admin,
        dir,
        backend,
    }
}

pub async fn start_with(
    dir: &Path,
    backends: &hayabusa::Backends,
) -> (RunningServer, String, Client) {
    start_configured(dir, backends, |config| config).await
}

/// A server on `dir` and `backends`, with the tests' defaults changed by `adjust`.
pub async fn start_configured(
    dir: &Path,
    backends: &hayabusa::Backends,
    adjust: impl FnOnce(Config) -> Config,
) -> (RunningServer, String, Client) {
    let server = hayabusa::start(adjust(Config {
        backends: backends.clone(),
        sync: hayabusa_http::SyncSettings {
            allowed_origins: vec!["https://chat.example.com".into()],
            ..Default::default()
        },
        // Off, so that tests posting a lot are not limited; `rate_limits.rs` sets its own.
        rate_limits: hayabusa_http::RateLimits::off(),
        ..Config::new(dir)
    }))
    .await
    .expect("server starts");
    let base = format!("http://{}", server.addr);
    let token = std::fs::read_to_string(dir.join("admin.token")).expect("admin.token written");
    let admin = Client::new(&base, token.trim());
    (server, base, admin)
}

impl TestApp {
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }

    /// Stops the server and starts a new one on the same data directory.
    pub async fn restart(&mut self) {
        self.server
            .take()
            .unwrap()
            .stop()
            .await
            .expect("clean stop");
        let (server, base, admin) = start_with(self.dir.path(), &self.backend.backends).await;
        self.server = Some(server);
        self.base = base;
        self.admin = admin;
    }

    pub async fn stop(mut self) -> TempDir {
        self.server
            .take()
            .unwrap()
            .stop()
            .await
            .expect("clean stop");
        self.dir
    }

    /// Creates an account in the admin's organization (or `org`).
    pub async fn account(&self, name: &str) -> User {
        self.account_in(name, None).await
    }

    pub async fn account_in(&self, name: &str, org: Option<&str>) -> User {
        let mut form = vec![("name", name.to_string())];
        if let Some(org) = org {
            form.push(("organization_name", org.to_string()));
        }
        let (status, body) = self.admin.send(Method::POST, "/v2/accounts", &form).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        User {
            id: body["account_id"].as_u64().unwrap(),
            my_room: body["room_id"].as_u64().unwrap(),
            client: Client::new(&self.base, body["token"].as_str().unwrap()),
        }
    }

    /// A group room created by `admin` with `members` as members.
    pub async fn room(&self, admin: &User, members: &[&User], readonly: &[&User]) -> u64 {
        let ids = |users: &[&User]| {
            users
                .iter()
                .map(|u| u.id.to_string())
                .collect::<Vec<_>>()
                .join(",")
        };
        let (status, body) = admin
            .client
            .send(
                Method::POST,
                "/v2/rooms",
                &[
                    ("name", "Project".to_string()),
                    ("members_admin_ids", admin.id.to_string()),
                    ("members_member_ids", ids(members)),
                    ("members_readonly_ids", ids(readonly)),
                ],
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["room_id"].as_u64().unwrap()
    }
}

pub struct User {
    pub id: u64,
    pub my_room: u64,
    pub client: Client,
}

impl User {
    pub async fn post(&self, room: u64, body: &str) -> String {
        let (status, answer) = self
            .client
            .send(
                Method::POST,
                &format!("/v2/rooms/{room}/messages"),
                &[("body", body.to_string())],
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        answer["message_id"]
            .as_str()
            .expect("message_id is a string")
            .to_string()
    }
}

#[derive(Clone)]
pub struct Client {
    pub base: String,
    pub token: String,
    pub http: reqwest::Client,
}

impl Client {
    pub fn new(base: &str, token: &str) -> Self {
        Client {
            base: base.to_string(),
            token: token.to_string(),
            http: reqwest::Client::new(),
        }
    }

    pub fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{}", self.base, path))
            .header("X-ChatWorkToken", &self.token)
    }

    /// Sends form parameters (in the body for POST/PUT, in the query otherwise).
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        form: &[(&str, String)],
    ) -> (StatusCode, Value) {
        let request = self.request(method.clone(), path);
        let request = if method == Method::POST || method == Method::PUT {
            request.form(form)
        } else {
            request.query(form)
        };
        read(request.send().await.expect("request sent")).await
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.send(Method::GET, path, &[]).await
    }
}

/// Status and JSON body (Null for an empty body).
pub async fn read(response: reqwest::Response) -> (StatusCode, Value) {
    let status = response.status();
    let bytes = response.bytes().await.expect("body");
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(&bytes)))
    };
    (status, body)
}

/// Asserts a ChatWork error answer with `status` whose message contains `needle`.
#[track_caller]
pub fn assert_error(answer: &(StatusCode, Value), status: StatusCode, needle: &str) {
    assert_eq!(answer.0, status, "{}", answer.1);
    let errors = answer.1["errors"]
        .as_array()
        .unwrap_or_else(|| panic!("no errors array in {}", answer.1));
    assert!(
        errors
            .iter()
            .any(|e| e.as_str().unwrap_or("").contains(needle)),
        "expected an error containing {needle:?}, got {}",
        answer.1
    );
}

/// Polls `GET path` until `done(status, body)` holds (another account's write is
/// visible a moment after it was acknowledged), for at most ~3 s.
pub async fn eventually(
    client: &Client,
    path: &str,
    done: impl Fn(StatusCode, &Value) -> bool,
) -> (StatusCode, Value) {
    let mut last = client.get(path).await;
    for _ in 0..150 {
        if done(last.0, &last.1) {
            return last;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        last = client.get(path).await;
    }
    panic!(
        "{path} never reached the expected state: {} {}",
        last.0, last.1
    );
}

/// `POST /v2/rooms/{room}/files` as `user`: a file part, an optional `message`
/// text part and an optional `Idempotency-Key`.
pub async fn upload_file(
    user: &User,
    room: u64,
    name: &str,
    content: Vec<u8>,
    message: Option<String>,
    idempotency_key: Option<&str>,
) -> (StatusCode, Value) {
    let mut form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(content).file_name(name.to_string()),
    );
    if let Some(message) = message {
        form = form.text("message", message);
    }
    let mut request = user
        .client
        .request(Method::POST, &format!("/v2/rooms/{room}/files"))
        .multipart(form);
    if let Some(key) = idempotency_key {
        request = request.header("Idempotency-Key", key);
    }
    read(request.send().await.unwrap()).await
}
