//! The route table: every route of the API as data (method, path template, who may
//! call it, body limit, handler). [`crate::router`] is built from it and nothing
//! else, so a test that walks [`routes()`] covers every route the server answers
//! (`tests/it/authz_matrix.rs` does, and fails for a route it cannot exercise).

use crate::routes::{
    accounts, contacts, files, forwarders, health, links, me, members, messages, rooms, session,
    sync, tasks, webhooks,
};
use crate::state::AppState;
use crate::{metrics, openapi};
use axum::http::Method;
use axum::routing::{MethodFilter, MethodRouter, on};
use std::sync::Arc;

/// Who may call a route, as the authorization matrix test checks it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Anyone, without a token (health, metrics, the OpenAPI document).
    Public,
    /// Any account with a valid token; path ids name the caller's own resources
    /// (contacts, incoming requests) or, for a link code, anything.
    Authenticated,
    /// A member of the room in the path, whatever their role; others get 404.
    RoomMember,
    /// A member who is not readonly (posting messages, tasks, files).
    RoomWriter,
    /// A room administrator (settings, members, links, join requests).
    RoomAdmin,
    /// The author of the message in the path.
    MessageAuthor,
    /// The assignee or the assigner of the task in the path.
    TaskParty,
    /// The server administrator.
    Administrator,
    /// No token: the URL's `expires` and HMAC `signature` are the credential.
    SignedDownload,
}

/// Which body limit a route gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyLimit {
    /// Form parameters ([`crate::params::MAX_FORM_BYTES`]).
    Form,
    /// A multipart upload (the configured file limit plus multipart overhead).
    Upload,
}

/// One route: a method on a path template.
pub struct RouteSpec {
    /// The HTTP method (after the `?method=` override).
    pub method: Method,
    /// The path template in axum's syntax (`/v2/rooms/{room_id}`).
    pub path: &'static str,
    /// Who may call it.
    pub access: Access,
    /// Its body limit.
    pub body: BodyLimit,
    /// Whether it counts against the room's posting limit (messages, tasks, files).
    pub room_post: bool,
    /// Builds the handler's method router for a method filter.
    pub handler: fn(MethodFilter) -> MethodRouter<Arc<AppState>>,
}

impl RouteSpec {
    /// The method filter of [`RouteSpec::method`].
    pub fn filter(&self) -> MethodFilter {
        MethodFilter::try_from(self.method.clone()).unwrap_or(MethodFilter::GET)
    }
}

impl RouteSpec {
    const fn with_body(mut self, body: BodyLimit) -> Self {
        self.body = body;
        self
    }

    const fn room_post(mut self) -> Self {
        self.room_post = true;
        self
    }
}

impl std::fmt::Debug for RouteSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {} ({:?})", self.method, self.path, self.access)
    }
}

const fn route(
    method: Method,
    path: &'static str,
    access: Access,
    handler: fn(MethodFilter) -> MethodRouter<Arc<AppState>>,
) -> RouteSpec {
    RouteSpec {
        method,
        path,
        access,
        body: BodyLimit::Form,
        room_post: false,
        handler,
    }
}

use Access::*;
const GET: Method = Method::GET;
const POST: Method = Method::POST;
const PUT: Method = Method::PUT;
const DELETE: Method = Method::DELETE;

static ROUTES: &[RouteSpec] = &[
    route(GET, "/healthz", Public, |m| on(m, health::healthz)),
    route(GET, "/readyz", Public, |m| on(m, health::readyz)),
    route(GET, "/metrics", Public, |m| on(m, metrics::serve)),
    route(GET, "/v2/openapi.json", Public, |m| on(m, openapi::serve)),
    route(POST, "/v2/session", Public, |m| on(m, session::sign_in)),
    route(GET, "/v2/session", Authenticated, |m| {
        on(m, session::current)
    }),
    route(DELETE, "/v2/session", Authenticated, |m| {
        on(m, session::sign_out)
    }),
    route(DELETE, "/v2/sessions", Authenticated, |m| {
        on(m, session::sign_out_everywhere)
    }),
    route(PUT, "/v2/admin/password", Administrator, |m| {
        on(m, session::set_password)
    }),
    route(GET, "/v2/me", Authenticated, |m| on(m, me::me)),
    route(POST, "/v2/me/token", Authenticated, |m| {
        on(m, me::rotate_token)
    }),
    route(GET, "/v2/my/status", Authenticated, |m| on(m, me::status)),
    route(GET, "/v2/my/tasks", Authenticated, |m| on(m, tasks::mine)),
    route(GET, "/v2/admin/forwarders", Administrator, |m| {
        on(m, forwarders::list)
    }),
    route(POST, "/v2/admin/forwarders", Administrator, |m| {
        on(m, forwarders::create)
    }),
    route(
        DELETE,
        "/v2/admin/forwarders/{forwarder_id}",
        Administrator,
        |m| on(m, forwarders::delete),
    ),
    route(
        GET,
        "/v2/admin/forwarders/{forwarder_id}/dead_letters",
        Administrator,
        |m| on(m, forwarders::dead_letters),
    ),
    route(
        POST,
        "/v2/admin/forwarders/{forwarder_id}/replay",
        Administrator,
        |m| on(m, forwarders::replay),
    ),
    route(GET, "/v2/webhooks", Authenticated, |m| {
        on(m, webhooks::list)
    }),
    route(POST, "/v2/webhooks", Authenticated, |m| {
        on(m, webhooks::create)
    }),
    route(
        DELETE,
        "/v2/webhooks/{webhook_setting_id}",
        Authenticated,
        |m| on(m, webhooks::delete),
    ),
    route(GET, "/v2/contacts", Authenticated, |m| {
        on(m, contacts::list)
    }),
    route(POST, "/v2/contacts/requests", Authenticated, |m| {
        on(m, contacts::request)
    }),
    route(DELETE, "/v2/contacts/{account_id}", Authenticated, |m| {
        on(m, contacts::remove)
    }),
    route(GET, "/v2/incoming_requests", Authenticated, |m| {
        on(m, contacts::incoming)
    }),
    route(
        PUT,
        "/v2/incoming_requests/{request_id}",
        Authenticated,
        |m| on(m, contacts::approve),
    ),
    route(
        DELETE,
        "/v2/incoming_requests/{request_id}",
        Authenticated,
        |m| on(m, contacts::reject),
    ),
    route(
        PUT,
        "/v2/incoming_requests/{request_id}/accept",
        Authenticated,
        |m| on(m, contacts::approve),
    ),
    route(
        PUT,
        "/v2/incoming_requests/{request_id}/reject",
        Authenticated,
        |m| on(m, contacts::reject),
    ),
    route(
        DELETE,
        "/v2/incoming_requests/{request_id}/reject",
        Authenticated,
        |m| on(m, contacts::reject),
    ),
    route(GET, "/v2/rooms/{room_id}/tasks", RoomMember, |m| {
        on(m, tasks::list)
    }),
    route(POST, "/v2/rooms/{room_id}/tasks", RoomWriter, |m| {
        on(m, tasks::create)
    })
    .room_post(),
    route(
        GET,
        "/v2/rooms/{room_id}/tasks/{task_id}",
        RoomMember,
        |m| on(m, tasks::get),
    ),
    route(
        PUT,
        "/v2/rooms/{room_id}/tasks/{task_id}/status",
        TaskParty,
        |m| on(m, tasks::set_status),
    ),
    route(GET, "/v2/rooms/{room_id}/files", RoomMember, |m| {
        on(m, files::list)
    }),
    route(POST, "/v2/rooms/{room_id}/files", RoomWriter, |m| {
        on(m, files::upload)
    })
    .with_body(BodyLimit::Upload)
    .room_post(),
    route(
        GET,
        "/v2/rooms/{room_id}/files/{file_id}",
        RoomMember,
        |m| on(m, files::get),
    ),
    route(
        GET,
        "/v2/files/download/{room_id}/{file_id}",
        SignedDownload,
        |m| on(m, files::download),
    ),
    route(GET, "/v2/rooms/{room_id}/link", RoomMember, |m| {
        on(m, links::get)
    }),
    route(POST, "/v2/rooms/{room_id}/link", RoomAdmin, |m| {
        on(m, links::create)
    }),
    route(PUT, "/v2/rooms/{room_id}/link", RoomAdmin, |m| {
        on(m, links::update)
    }),
    route(DELETE, "/v2/rooms/{room_id}/link", RoomAdmin, |m| {
        on(m, links::delete)
    }),
    route(GET, "/v2/rooms/{room_id}/join_requests", RoomAdmin, |m| {
        on(m, links::join_requests)
    }),
    route(
        PUT,
        "/v2/rooms/{room_id}/join_requests/{account_id}",
        RoomAdmin,
        |m| on(m, links::approve_join),
    ),
    route(
        DELETE,
        "/v2/rooms/{room_id}/join_requests/{account_id}",
        RoomAdmin,
        |m| on(m, links::reject_join),
    ),
    route(POST, "/v2/links/{code}/join", Authenticated, |m| {
        on(m, links::join)
    }),
    route(POST, "/v2/accounts", Administrator, |m| {
        on(m, accounts::create)
    }),
    route(
        POST,
        "/v2/accounts/{account_id}/token",
        Administrator,
        |m| on(m, accounts::issue_token),
    ),
    route(
        DELETE,
        "/v2/accounts/{account_id}/token",
        Administrator,
        |m| on(m, accounts::revoke_token),
    ),
    route(GET, "/v2/rooms", Authenticated, |m| on(m, rooms::list)),
    route(POST, "/v2/rooms", Authenticated, |m| on(m, rooms::create)),
    route(GET, "/v2/rooms/{room_id}", RoomMember, |m| {
        on(m, rooms::get)
    }),
    route(PUT, "/v2/rooms/{room_id}", RoomAdmin, |m| {
        on(m, rooms::update)
    }),
    // `action_type=leave` is open to every member; `delete` to admins (the matrix
    // test sends `delete`).
    route(DELETE, "/v2/rooms/{room_id}", RoomAdmin, |m| {
        on(m, rooms::delete)
    }),
    route(GET, "/v2/rooms/{room_id}/members", RoomMember, |m| {
        on(m, members::list)
    }),
    route(PUT, "/v2/rooms/{room_id}/members", RoomAdmin, |m| {
        on(m, members::replace)
    }),
    route(GET, "/v2/rooms/{room_id}/messages", RoomMember, |m| {
        on(m, messages::list)
    }),
    route(POST, "/v2/rooms/{room_id}/messages", RoomWriter, |m| {
        on(m, messages::post)
    })
    .room_post(),
    route(GET, "/v2/sync", Authenticated, |m| on(m, sync::long_poll)),
    route(GET, "/v2/sync/ws", Authenticated, |m| {
        on(m, sync::websocket)
    }),
    route(PUT, "/v2/rooms/{room_id}/messages/read", RoomMember, |m| {
        on(m, messages::read)
    }),
    route(
        PUT,
        "/v2/rooms/{room_id}/messages/unread",
        RoomMember,
        |m| on(m, messages::unread),
    ),
    route(
        GET,
        "/v2/rooms/{room_id}/messages/{message_id}",
        RoomMember,
        |m| on(m, messages::get),
    ),
    route(
        PUT,
        "/v2/rooms/{room_id}/messages/{message_id}",
        MessageAuthor,
        |m| on(m, messages::update),
    ),
    route(
        DELETE,
        "/v2/rooms/{room_id}/messages/{message_id}",
        MessageAuthor,
        |m| on(m, messages::delete),
    ),
];

/// Every route the API answers (the router is built from this table only).
pub fn routes() -> &'static [RouteSpec] {
    ROUTES
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_method_and_path_is_listed_twice() {
        let mut seen = std::collections::BTreeSet::new();
        for spec in routes() {
            assert!(
                seen.insert((spec.method.to_string(), spec.path)),
                "{spec:?} is listed twice"
            );
        }
    }

    #[test]
    fn only_the_upload_route_takes_a_large_body() {
        let uploads: Vec<_> = routes()
            .iter()
            .filter(|spec| spec.body == BodyLimit::Upload)
            .map(|spec| (spec.method.clone(), spec.path))
            .collect();
        assert_eq!(uploads, vec![(Method::POST, "/v2/rooms/{room_id}/files")]);
    }
}
