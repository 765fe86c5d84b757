//! `baseline`: the same open-loop generator against a bare axum hello-world that
//! answers `{"hello":"world"}` on every path and method (`hayabusa-bench
//! baseline-server`, a child process like the real server, on the same default tokio
//! runtime). Its ladders show what this machine and this generator manage at all, so
//! that post and read can be stated as a fraction of it.

use super::Context;
use crate::load::{self, LadderOutcome, request_fn};
use crate::report::{Row, thousands};
use crate::server::ServerProcess;
use axum::Json;
use axum::body::Bytes;
use serde_json::{Value, json};
use std::net::SocketAddr;

/// Ladders of the post-shaped and read-shaped requests against the hello-world.
pub struct Baseline {
    /// Form POSTs (like a post).
    pub post: LadderOutcome,
    /// GETs (like a read).
    pub read: LadderOutcome,
}

impl Baseline {
    /// The baseline's own row of the table.
    pub fn row(&self, context: &Context) -> Row {
        let rate = |outcome: &LadderOutcome| match outcome.best_step() {
            Some(step) => format!(
                "{}/s (p99 {:.2} ms{})",
                thousands(step.rate),
                step.p99_ms(),
                super::cpu_note(step)
            ),
            None => "none".into(),
        };
        let topped_out = |outcome: &LadderOutcome| {
            if outcome.first_failure().is_none() && !context.args.quick {
                " (the ladder's top)"
            } else {
                ""
            }
        };
        Row::new(
            "baseline",
            "axum hello-world JSON, same generator: highest rate meeting the target",
            context.criterion(),
            format!(
                "POST form: {}{}; GET: {}{}",
                rate(&self.post),
                topped_out(&self.post),
                rate(&self.read),
                topped_out(&self.read)
            ),
            "= 100%",
            self.post.works() && self.read.works(),
        )
    }
}

/// Climbs both ladders against a freshly started baseline server.
pub async fn run(context: &Context) -> anyhow::Result<Baseline> {
    let server = ServerProcess::start_baseline(&context.log_path("baseline")).await?;
    let api = server.api()?;
    let post_api = api.clone();
    let post = load::climb(
        "baseline POST",
        &context.ladder(),
        request_fn(move |i, _| {
            let api = post_api.clone();
            Box::pin(async move {
                let body = format!("load message {i}: the quick brown fox jumps over the lazy dog");
                api.post_form("/v2/rooms/1/messages", "token", &body).await
            })
        }),
        server.cpu_probe(),
    )
    .await;
    let read = load::climb(
        "baseline GET",
        &context.ladder(),
        request_fn(move |_, _| {
            let api = api.clone();
            Box::pin(async move { api.get("/v2/rooms/1/messages?force=1", "token").await })
        }),
        server.cpu_probe(),
    )
    .await;
    server.stop().await?;
    Ok(Baseline { post, read })
}

/// `hayabusa-bench baseline-server`: serves the hello-world until killed.
pub async fn serve(listen: SocketAddr) -> anyhow::Result<()> {
    anyhow::ensure!(
        listen.ip().is_loopback(),
        "listen on a loopback address only"
    );
    let app = axum::Router::new().fallback(hello);
    let listener = tokio::net::TcpListener::bind(listen).await?;
    axum::serve(listener, app).await?;
    Ok(())
}

async fn hello(_body: Bytes) -> Json<Value> {
    Json(json!({ "hello": "world" }))
}
