//! A small ChatWork v2 client: form-encoded parameters, `X-ChatWorkToken`, JSON
//! answers; plus the sync WebSocket. Only what the scenarios need.
//!
//! Calls on the measured path (`post_message`, `read_messages`) return `Err(reason)`
//! strings so the load generator can count and show them; set-up calls return
//! `anyhow` errors with context.

use anyhow::{Context, bail};
use reqwest::{Client, Response, Url};
use serde_json::Value;
use std::net::SocketAddr;
use std::time::Duration;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// A sync WebSocket as the client holds it.
pub type Socket = WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>;

/// An account created for the benchmark.
#[derive(Clone, Debug)]
pub struct Account {
    /// Its id.
    pub id: u64,
    /// Its API token.
    pub token: String,
}

/// The server's `/healthz` answer.
#[derive(Clone, Copy, Debug)]
pub struct Health {
    /// Last durable log position.
    pub log_head: u64,
    /// Position the projector has reached.
    pub projected: u64,
}

/// An HTTP client bound to one server on a loopback address.
#[derive(Clone)]
pub struct Api {
    http: Client,
    addr: SocketAddr,
    base: String,
}

impl Api {
    /// A client for the server at `addr`, which must be a loopback address.
    pub fn new(addr: SocketAddr) -> anyhow::Result<Self> {
        if !addr.ip().is_loopback() {
            bail!("{addr} is not a loopback address: the benchmark only talks to loopback");
        }
        let http = Client::builder()
            .no_proxy()
            .tcp_nodelay(true)
            .pool_idle_timeout(Duration::from_secs(30))
            .connect_timeout(Duration::from_secs(5))
            .build()
            .context("building the HTTP client")?;
        Ok(Api {
            http,
            addr,
            base: format!("http://{addr}"),
        })
    }

    /// The server's Prometheus text (`/metrics`).
    pub async fn metrics_text(&self) -> anyhow::Result<String> {
        Ok(self
            .http
            .get(format!("{}/metrics", self.base))
            .send()
            .await?
            .error_for_status()?
            .text()
            .await?)
    }

    /// `GET /healthz`.
    pub async fn health(&self) -> anyhow::Result<Health> {
        let answer: Value = self
            .http
            .get(format!("{}/healthz", self.base))
            .timeout(Duration::from_secs(2))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        Ok(Health {
            log_head: answer["log_head"].as_u64().unwrap_or(0),
            projected: answer["projected"].as_u64().unwrap_or(0),
        })
    }

    /// `GET /healthz` answered 2xx (the baseline answers every path).
    pub async fn is_up(&self) -> bool {
        matches!(
            self.http
                .get(format!("{}/healthz", self.base))
                .timeout(Duration::from_millis(500))
                .send()
                .await,
            Ok(response) if response.status().is_success()
        )
    }

    /// `GET /v2/me`: the token owner's account id.
    pub async fn my_id(&self, token: &str) -> anyhow::Result<u64> {
        let answer = json_of(
            self.http
                .get(format!("{}/v2/me", self.base))
                .header("X-ChatWorkToken", token)
                .send()
                .await,
        )
        .await
        .context("GET /v2/me")?;
        answer["account_id"]
            .as_u64()
            .context("account_id in the answer")
    }

    /// `POST /v2/accounts` with an administrator's token.
    pub async fn create_account(&self, admin_token: &str, name: &str) -> anyhow::Result<Account> {
        let answer = json_of(
            self.http
                .post(format!("{}/v2/accounts", self.base))
                .header("X-ChatWorkToken", admin_token)
                .form(&[("name", name)])
                .send()
                .await,
        )
        .await
        .with_context(|| format!("creating account {name}"))?;
        Ok(Account {
            id: answer["account_id"]
                .as_u64()
                .context("account_id in the answer")?,
            token: answer["token"]
                .as_str()
                .context("token in the answer")?
                .to_string(),
        })
    }

    /// `POST /v2/rooms`: `token`'s owner creates a group room with these admins and members.
    pub async fn create_room(
        &self,
        token: &str,
        name: &str,
        admins: &[u64],
        members: &[u64],
    ) -> anyhow::Result<u64> {
        let join = |ids: &[u64]| ids.iter().map(u64::to_string).collect::<Vec<_>>().join(",");
        let mut form = vec![
            ("name", name.to_string()),
            ("members_admin_ids", join(admins)),
        ];
        if !members.is_empty() {
            form.push(("members_member_ids", join(members)));
        }
        let answer = json_of(
            self.http
                .post(format!("{}/v2/rooms", self.base))
                .header("X-ChatWorkToken", token)
                .form(&form)
                .send()
                .await,
        )
        .await
        .with_context(|| format!("creating room {name}"))?;
        answer["room_id"].as_u64().context("room_id in the answer")
    }

    /// `POST /v2/rooms/{room}/messages`.
    pub async fn post_message(&self, token: &str, room: u64, body: &str) -> Result<(), String> {
        let response = self
            .http
            .post(format!("{}/v2/rooms/{room}/messages", self.base))
            .header("X-ChatWorkToken", token)
            .form(&[("body", body)])
            .send()
            .await;
        drain(response).await
    }

    /// `GET /v2/rooms/{room}/messages?force=1` (the latest 100).
    pub async fn read_messages(&self, token: &str, room: u64) -> Result<(), String> {
        let response = self
            .http
            .get(format!("{}/v2/rooms/{room}/messages?force=1", self.base))
            .header("X-ChatWorkToken", token)
            .send()
            .await;
        drain(response).await
    }

    /// `POST /v2/webhooks`: a webhook of `token`'s account to `url` for
    /// `event_types`; returns its id.
    pub async fn create_webhook(
        &self,
        token: &str,
        url: &str,
        event_types: &str,
    ) -> anyhow::Result<String> {
        self.create_subscription(
            "/v2/webhooks",
            "webhook_setting_id",
            token,
            url,
            event_types,
        )
        .await
    }

    /// `POST /v2/admin/forwarders` (an administrator's `token`), returning its id.
    pub async fn create_forwarder(
        &self,
        token: &str,
        url: &str,
        event_types: &str,
    ) -> anyhow::Result<String> {
        self.create_subscription(
            "/v2/admin/forwarders",
            "forwarder_id",
            token,
            url,
            event_types,
        )
        .await
    }

    /// POSTs `url` and `event_types` to `path` and returns the answer's `id_field`.
    async fn create_subscription(
        &self,
        path: &str,
        id_field: &str,
        token: &str,
        url: &str,
        event_types: &str,
    ) -> anyhow::Result<String> {
        let answer: Value = self
            .http
            .post(format!("{}{path}", self.base))
            .header("X-ChatWorkToken", token)
            .form(&[("url", url), ("event_types", event_types)])
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        answer[id_field]
            .as_str()
            .map(str::to_owned)
            .with_context(|| format!("a {id_field} in the answer"))
    }

    /// `POST /v2/rooms/{room}/messages`, returning the new message's id.
    pub async fn post_message_id(&self, token: &str, room: u64, body: &str) -> Result<u64, String> {
        let response = self
            .http
            .post(format!("{}/v2/rooms/{room}/messages", self.base))
            .header("X-ChatWorkToken", token)
            .form(&[("body", body)])
            .send()
            .await;
        let (_, body) = answer(response).await?;
        let answer: Value =
            serde_json::from_slice(&body).map_err(|error| format!("not JSON: {error}"))?;
        answer["message_id"]
            .as_str()
            .and_then(|id| id.parse().ok())
            .ok_or_else(|| format!("no message_id in {answer}"))
    }

    /// A GET on `path`, returning the status and body of any answer, 2xx or 4xx;
    /// transport failures and 5xx are errors.
    pub async fn get_answer(
        &self,
        path: &str,
        token: &str,
    ) -> Result<(reqwest::StatusCode, bytes::Bytes), String> {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .header("X-ChatWorkToken", token)
            .send()
            .await;
        let response = response.map_err(|error| format!("transport: {error}"))?;
        let status = response.status();
        let body = response
            .bytes()
            .await
            .map_err(|error| format!("reading the answer: {error}"))?;
        if status.is_server_error() {
            return Err(format!(
                "{status}: {}",
                String::from_utf8_lossy(&body[..body.len().min(200)])
            ));
        }
        Ok((status, body))
    }

    /// `GET /v2/sync` without `since`: the caller's current revision.
    pub async fn sync_revision(&self, token: &str) -> anyhow::Result<String> {
        let answer = json_of(
            self.http
                .get(format!("{}/v2/sync", self.base))
                .header("X-ChatWorkToken", token)
                .send()
                .await,
        )
        .await
        .context("GET /v2/sync")?;
        Ok(answer["revision"]
            .as_str()
            .context("revision in the answer")?
            .to_string())
    }

    /// Opens `GET /v2/sync/ws?since=REV&token=TOKEN`.
    pub async fn open_sync_socket(&self, token: &str, since: &str) -> anyhow::Result<Socket> {
        let mut url = Url::parse(&format!("ws://{}/v2/sync/ws", self.addr))?;
        url.query_pairs_mut()
            .append_pair("since", since)
            .append_pair("token", token);
        let (socket, _response) = tokio::time::timeout(
            Duration::from_secs(10),
            tokio_tungstenite::connect_async(url.as_str()),
        )
        .await
        .context("WebSocket handshake timed out")?
        .context("WebSocket handshake")?;
        Ok(socket)
    }

    /// A plain GET on `path` (for the baseline's read-shaped request).
    pub async fn get(&self, path: &str, token: &str) -> Result<(), String> {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .header("X-ChatWorkToken", token)
            .send()
            .await;
        drain(response).await
    }

    /// A form POST on `path` (for the baseline's post-shaped request).
    pub async fn post_form(&self, path: &str, token: &str, body: &str) -> Result<(), String> {
        let response = self
            .http
            .post(format!("{}{path}", self.base))
            .header("X-ChatWorkToken", token)
            .form(&[("body", body)])
            .send()
            .await;
        drain(response).await
    }
}

/// Reads a whole answer; Ok only for a 2xx.
async fn drain(response: reqwest::Result<Response>) -> Result<(), String> {
    answer(response).await.map(|_| ())
}

/// Reads a whole answer, returning its status and body; Ok only for a 2xx.
async fn answer(
    response: reqwest::Result<Response>,
) -> Result<(reqwest::StatusCode, bytes::Bytes), String> {
    let response = response.map_err(|error| format!("transport: {error}"))?;
    let status = response.status();
    let body = response
        .bytes()
        .await
        .map_err(|error| format!("reading the answer: {error}"))?;
    if status.is_success() {
        Ok((status, body))
    } else {
        Err(format!(
            "{status}: {}",
            String::from_utf8_lossy(&body[..body.len().min(200)])
        ))
    }
}

async fn json_of(response: reqwest::Result<Response>) -> anyhow::Result<Value> {
    let response = response?;
    let status = response.status();
    let body = response.bytes().await?;
    if !status.is_success() {
        bail!("{status}: {}", String::from_utf8_lossy(&body));
    }
    serde_json::from_slice(&body).context("the answer is not JSON")
}
