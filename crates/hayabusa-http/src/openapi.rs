//! `GET /v2/openapi.json`: the OpenAPI 3.1 document of the whole API — every ChatWork v2
//! endpoint and every Hayabusa extension of `api.md`, including those not built yet,
//! so that the document is the contract and not a reflection of the code.
//!
//! It is built with utoipa's builder API from one table, [`ENDPOINTS`], one row per
//! operation, rather than from annotations on handlers: the handlers stay free of
//! documentation macros and the whole contract can be read in one place. Parameters
//! are described the ChatWork way: query parameters for GET and DELETE, a
//! form-encoded body for POST and PUT (ChatWork clients may also send those in the
//! query string), `multipart/form-data` for file uploads.

use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use std::sync::LazyLock;
use utoipa::openapi::path::{
    HttpMethod, Operation, OperationBuilder, Parameter, ParameterBuilder, ParameterIn,
};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Schema, Type};
use utoipa::openapi::security::{
    ApiKey, ApiKeyValue, Http, HttpAuthScheme, SecurityRequirement, SecurityScheme,
};
use utoipa::openapi::{
    Components, ContentBuilder, HeaderBuilder, InfoBuilder, OpenApi, OpenApiBuilder, Paths, Ref,
    RefOr, Required, ResponseBuilder, Responses, ServerBuilder, Tag,
};

/// The type of a parameter, as ChatWork sends it.
#[derive(Clone, Copy)]
enum Kind {
    /// An integer id or number.
    Int,
    /// Free text.
    Text,
    /// Comma-separated integer ids (`"123,542,1001"`).
    Ids,
    /// Unix time in seconds.
    UnixTime,
    /// `0` or `1`.
    Flag,
    /// One of a fixed set of words.
    Choice(&'static [&'static str]),
    /// A file (multipart only).
    File,
}

/// One request parameter (not a path parameter: those come from the path).
struct Param {
    name: &'static str,
    kind: Kind,
    required: bool,
    about: &'static str,
}

const fn required(name: &'static str, kind: Kind, about: &'static str) -> Param {
    Param {
        name,
        kind,
        required: true,
        about,
    }
}

const fn optional(name: &'static str, kind: Kind, about: &'static str) -> Param {
    Param {
        name,
        kind,
        required: false,
        about,
    }
}

/// Who may call an endpoint.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Access {
    /// Anyone; no token.
    Public,
    /// Any account (`X-ChatWorkToken` or `Authorization: Bearer`).
    Token,
    /// Any account, and may be refused for lack of permission (403).
    Guarded,
}

/// What a successful call answers.
#[derive(Clone, Copy)]
enum Answer {
    /// 200 with one JSON object of the named component schema.
    Json(&'static str),
    /// 200 with a JSON array of the named component schema.
    List(&'static str),
    /// 200 with an array of messages, or 204 when nothing is new.
    ListOr204(&'static str),
    /// 200, or 202 when the request waits for someone's acceptance; the same schema.
    JsonOr202(&'static str),
    /// 204 without a body.
    NoContent,
    /// 200 with text of the given media type.
    Text(&'static str),
    /// 101 Switching Protocols: a WebSocket of JSON text frames (`Op`).
    WebSocket,
}

/// One operation of the API.
struct Endpoint {
    method: HttpMethod,
    path: &'static str,
    tag: &'static str,
    summary: &'static str,
    params: &'static [Param],
    multipart: bool,
    access: Access,
    answer: Answer,
    /// Extra error statuses beyond the common ones (e.g. 409, 413).
    extra_errors: &'static [u16],
}

const ICON_PRESETS: &[&str] = &[
    "group", "check", "document", "meeting", "event", "project", "business", "study", "security",
    "star", "idea", "heart", "magcup", "beer", "music", "sports", "travel",
];
const TASK_STATUS: &[&str] = &["open", "done"];
const LIMIT_TYPES: &[&str] = &["none", "date", "time"];
const ROOM_TYPES: &[&str] = &["my", "direct", "group"];
const ROLES: &[&str] = &["admin", "member", "readonly"];
const OP_TYPES: &[&str] = &[
    "message_created",
    "message_updated",
    "message_deleted",
    "room_created",
    "room_updated",
    "room_deleted",
    "member_added",
    "member_removed",
    "member_role_changed",
    "read_changed",
    "task_added",
    "task_status_changed",
    "file_uploaded",
    "contact_requested",
    "contact_approved",
    "contact_rejected",
    "contact_removed",
    "mention",
];

const MEMBER_LISTS: &[Param] = &[
    required(
        "members_admin_ids",
        Kind::Ids,
        "Accounts that are admins of the room (at least one).",
    ),
    optional(
        "members_member_ids",
        Kind::Ids,
        "Accounts that are members.",
    ),
    optional(
        "members_readonly_ids",
        Kind::Ids,
        "Accounts that may only read.",
    ),
];

const LINK_SETTINGS: &[Param] = &[
    optional(
        "code",
        Kind::Text,
        "The link's code: at most 50 characters of `[A-Za-z0-9_-]` (default: generated).",
    ),
    optional(
        "need_acceptance",
        Kind::Flag,
        "1: joining through the link needs an admin's acceptance.",
    ),
    optional(
        "description",
        Kind::Text,
        "Text shown on the invitation page.",
    ),
];

/// Every operation of `api.md`, Part 1 (ChatWork v2) then Part 2 (extensions).
const ENDPOINTS: &[Endpoint] = &[
    Endpoint {
        method: HttpMethod::Get,
        path: "/v2/me",
        tag: "me",
        summary: "The caller's own account",
        params: &[],
        multipart: false,
        access: Access::Token,
        answer: Answer::Json("Me"),
        extra_errors: &[],
    },
    Endpoint {
        method: HttpMethod::Get,
        path: "/v2/my/status",
        tag: "my",
        summary: "Unread, mention and task totals of the caller",
        params: &[],
        multipart: false,
        access: Access::Token,
        answer: Answer::Json("MyStatus"),
        extra_errors: &[],
    },
    Endpoint {
        method: HttpMethod::Get,
        path: "/v2/my/tasks",
        tag: "my",
        summary: "Tasks assigned to the caller (at most 100)",
        params: &[
            optional(
                "assigned_by_account_id",
                Kind::Int,
                "Only tasks assigned by this account.",
            ),
            optional(
                "status",
                Kind::Choice(TASK_STATUS),
                "Only tasks in this status.",
            ),
        ],
        multipart: false,
        access: Access::Token,
        answer: Answer::List("MyTask"),
        extra_errors: &[],
    },
    Endpoint {
        method: HttpMethod::Get,
        path: "/v2/contacts",
        tag: "contacts",
        summary: "The caller's contacts",
        params: &[],
        multipart: false,
        access: Access::Token,
        answer: Answer::List("Contact"),
        extra_errors: &[],
    },
    Endpoint {
        method: HttpMethod::Get,
        path: "/v2/rooms",
        tag: "rooms",
        summary: "The rooms the caller is a member of",
        params: &[],
        multipart: false,
        access: Access::Token,
        answer: Answer::List("Room"),
        extra_errors: &[],
    },
    Endpoint {
        method: HttpMethod::Post,
        path: "/v2/rooms",
        tag: "rooms",
        summary: "Create a group room",
        params: &[
            required("name", Kind::Text, "Room name, 1–255 characters."),
            required(
                "members_admin_ids",
                Kind::Ids,
                "Accounts that are admins of the room (at least one).",
            ),
            optional(
                "members_member_ids",
                Kind::Ids,
                "Accounts that are members.",
            ),
            optional(
                "members_readonly_ids",
                Kind::Ids,
                "Accounts that may only read.",
            ),
            optional("description", Kind::Text, "Room description."),
            optional("icon_preset", Kind::Choice(ICON_PRESETS), "Room icon."),
            optional("link", Kind::Flag, "1: create an invitation link too."),
            optional(
                "link_code",
                Kind::Text,
                "The invitation link's code (at most 50 characters of `[A-Za-z0-9_-]`).",
            ),
            optional(
                "link_need_acceptance",
                Kind::Flag,
                "1: joining through the link needs an admin's acceptance.",
            ),
        ],
        multipart: false,
        access: Access::Guarded,
        answer: Answer::Json("RoomId"),
        extra_errors: &[409],
    },
    Endpoint {
        method: HttpMethod::Get,
        path: "/v2/rooms/{room_id}",
        tag: "rooms",
        summary: "One room, with its description",
        params: &[],
        multipart: false,
        access: Access::Token,
        answer: Answer::Json("RoomDetail"),
        extra_errors: &[],
    },
    Endpoint {
        method: HttpMethod::Put,
        path: "/v2/rooms/{room_id}",
        tag: "rooms",
        summary: "Change a room's name, description or icon (admins)",
        params: &[
            optional("name", Kind::Text, "Room name, 1–255 characters."),
            optional("description", Kind::Text, "Room description."),
            optional("icon_preset", Kind::Choice(ICON_PRESETS), "Room icon."),
        ],
        multipart: false,
        access: Access::Guarded,
        answer: Answer::Json("RoomId"),
        extra_errors: &[],
    },
    Endpoint {
        method: HttpMethod::Delete,
        path: "/v2/rooms/{room_id}",
        tag: "rooms",
        summary: "Leave a room, or delete it (admins)",
        params: &[required(
            "action_type",
            Kind::Choice(&["leave", "delete"]),
            "`leave` the room or `delete` it for everyone.",
        )],
        multipart: false,
        access: Access::Guarded,
        answer: Answer::NoContent,
        extra_errors: &[],
    },
    Endpoint {
        method: HttpMethod::Get,
        path: "/v2/rooms/{room_id}/members",
        tag: "members",
        summary: "The members of a room",
        params: &[],
        multipart: false,
        access: Access::Token,
        answer: Answer::List("Member"),
        extra_errors: &[],
    },
    Endpoint {
        method: HttpMethod::Put,
        path: "/v2/rooms/{room_id}/members",
        tag: "members",
        summary: "Replace the member list of a room (admins; the complete new list)",
        params: MEMBER_LISTS,
        multipart: false,
        access: Access::Guarded,
        answer: Answer::Json("MemberIds"),
        extra_errors: &[],
    },
    Endpoint {
        method: HttpMethod::Get,
        path: "/v2/rooms/{room_id}/messages",
        tag: "messages",
        summary: "Messages of a room: new since the caller's previous fetch, or the latest 100",
        params: &[optional(
            "force",
            Kind::Flag,
            "0 (default): only messages new since this caller's previous fetch, 204 if \
             none; 1: the latest 100.",
        )],
        multipart: false,
        access: Access::Token,
        answer: Answer::ListOr204("Message"),
        extra_errors: &[],
    },
    Endpoint {
        method: HttpMethod::Post,
        path: "/v2/rooms/{room_id}/messages",
        tag: "messages",
        summary: "Post a message (not readonly members; 10 posts per 10 s per room)",
        params: &[
            required(
                "body",
                Kind::Text,
                "Message text, 1–65535 characters, in ChatWork notation.",
            ),
            optional(
                "self_unread",
                Kind::Flag,
                "1: the message stays unread for its author.",
            ),
        ],
        multipart: false,
        access: Access::Guarded,
        answer: Answer::Json("MessageId"),
        extra_errors: &[],
    },
    Endpoint {
        method: HttpMethod::Put,
        path: "/v2/rooms/{room_id}/messages/read",
        tag: "messages",
        summary: "Mark messages read",
        params: &[optional(
            "message_id",
            Kind::Text,
            "Read up to and including this message (default: the latest).",
        )],
        multipart: false,
        access: Access::Token,
        answer: Answer::Json("UnreadCounts"),
        extra_errors: &[],
    },
    Endpoint {
        method: HttpMethod::Put,
        path: "/v2/rooms/{room_id}/messages/unread",
        tag: "messages",
        summary: "Mark messages unread",
        params: &[required(
            "message_id",
            Kind::Text,
            "Unread from this message on.",
        )],
        multipart: false,
        access: Access::Token,
        answer: Answer::Json("UnreadCounts"),
        extra_errors: &[],
    },
    Endpoint {
        method: HttpMethod::Get,
        path: "/v2/rooms/{room_id}/messages/{message_id}",
        tag: "messages",
        summary: "One message",
        params: &[],
        multipart: false,
        access: Access::Token,
        answer: Answer::Json("Message"),
        extra_errors: &[],
    },
    Endpoint {
        method: HttpMethod::Put,
        path: "/v2/rooms/{room_id}/messages/{message_id}",
        tag: "messages",
        summary: "Edit one's own message",
        params: &[required(
            "body",
            Kind::Text,
            "The new text, 1–65535 characters.",
        )],
        multipart: false,
        access: Access::Guarded,
        answer: Answer::Json("MessageId"),
        extra_errors: &[],
    },
    Endpoint {
        method: HttpMethod::Delete,
        path: "/v2/rooms/{room_id}/messages/{message_id}",
        tag: "messages",
        summary: "Delete one's own message",
        params: &[],
        multipart: false,
        access: Access::Guarded,
        answer: Answer::Json("MessageId"),
        extra_errors: &[],
    },
    Endpoint {
        method: HttpMethod::Get,
        path: "/v2/rooms/{room_id}/tasks",
        tag: "tasks",
        summary: "Tasks of a room (at most 100)",
        params: &[
            optional(
                "account_id",
                Kind::Int,
                "Only tasks assigned to this account.",
            ),
            optional(
                "assigned_by_account_id",
                Kind::Int,
                "Only tasks assigned by this account.",
            ),
            optional(
                "status",
                Kind::Choice(TASK_STATUS),
                "Only tasks in this status.",
            ),
        ],
        multipart: false,
        access: Access::Token,
        answer: Answer::List("Task"),
        extra_errors: &[],
    },
    Endpoint {
        method: HttpMethod::Post,
        path: "/v2/rooms/{room_id}/tasks",
        tag: "tasks",
        summary: "Add a task for members (not readonly members; 10 posts per 10 s per room)",
        params: &[
            required("body", Kind::Text, "What is to be done."),
            required("to_ids", Kind::Ids, "The members the task is for."),
            optional("limit", Kind::UnixTime, "Deadline (Unix seconds)."),
            optional(
                "limit_type",
                Kind::Choice(LIMIT_TYPES),
                "Whether `limit` is a date, a time, or there is none.",
            ),
        ],
        multipart: false,
        access: Access::Guarded,
        answer: Answer::Json("TaskIds"),
        extra_errors: &[],
    },
    Endpoint {
        method: HttpMethod::Get,
        path: "/v2/rooms/{room_id}/tasks/{task_id}",
        tag: "tasks",
        summary: "One task",
        params: &[],
        multipart: false,
        access: Access::Token,
        answer: Answer::Json("Task"),
        extra_errors: &[],
    },
    Endpoint {
        method: HttpMethod::Put,
        path: "/v2/rooms/{room_id}/tasks/{task_id}/status",
        tag: "tasks",
        summary: "Mark a task done or open again",
        params: &[required(
            "body",
            Kind::Choice(TASK_STATUS),
            "The new status.",
        )],
        multipart: false,
        access: Access::Guarded,
        answer: Answer::Json("TaskId"),
        extra_errors: &[],
    },
    Endpoint {
        method: HttpMethod::Get,
        path: "/v2/rooms/{room_id}/files",
        tag: "files",
        summary: "Files of a room (at most 100)",
        params: &[optional(
            "account_id",
            Kind::Int,
            "Only files uploaded by this account.",
        )],
        multipart: false,
        access: Access::Token,
        answer: Answer::List("File"),
        extra_errors: &[],
    },
    Endpoint {
        method: HttpMethod::Post,
        path: "/v2/rooms/{room_id}/files",
        tag: "files",
        summary: "Upload a file (not readonly members; at most 5 MB)",
        params: &[
            required("file", Kind::File, "The file, at most 5 MB."),
            optional(
                "message",
                Kind::Text,
                "Message posted with the file (read as text even if the part has a filename).",
            ),
        ],
        multipart: true,
        access: Access::Guarded,
        answer: Answer::Json("FileId"),
        extra_errors: &[413],
    },
    Endpoint {
        method: HttpMethod::Get,
        path: "/v2/rooms/{room_id}/files/{file_id}",
        tag: "files",
        summary: "One file, optionally with a download URL",
        params: &[optional(
            "create_download_url",
            Kind::Flag,
            "1: include `download_url`, signed and valid for 30 seconds.",
        )],
        multipart: false,
        access: Access::Token,
        answer: Answer::Json("FileDetail"),
        extra_errors: &[],
    },
    Endpoint {
        method: HttpMethod::Get,
        path: "/v2/rooms/{room_id}/link",
        tag: "links",
        summary: "The room's invitation link",
        params: &[],
        multipart: false,
        access: Access::Token,
        answer: Answer::Json("Link"),
        extra_errors: &[],
    },
    Endpoint {
        method: HttpMethod::Post,
        path: "/v2/rooms/{room_id}/link",
        tag: "links",
        summary: "Create the room's invitation link (admins)",
        params: LINK_SETTINGS,
        multipart: false,
        access: Access::Guarded,
        answer: Answer::Json("Link"),
        extra_errors: &[409],
    },
    Endpoint {
        method: HttpMethod::Put,
        path: "/v2/rooms/{room_id}/link",
        tag: "links",
        summary: "Change the room's invitation link (admins)",
        params: LINK_SETTINGS,
        multipart: false,
        access: Access::Guarded,
        answer: Answer::Json("Link"),
        extra_errors: &[409],
    },
    Endpoint {
        method: HttpMethod::Delete,
        path: "/v2/rooms/{room_id}/link",
        tag: "links",
        summary: "Remove the room's invitation link (admins)",
        params: &[],
        multipart: false,
        access: Access::Guarded,
        answer: Answer::Json("LinkClosed"),
        extra_errors: &[],
    },
    Endpoint {
        method: HttpMethod::Get,
        path: "/v2/incoming_requests",
        tag: "contacts",
        summary: "Contact requests waiting for the caller's answer",
        params: &[],
        multipart: false,
        access: Access::Token,
        answer: Answer::List("IncomingRequest"),
        extra_errors: &[],
    },
    Endpoint {
        method: HttpMethod::Put,
        path: "/v2/incoming_requests/{request_id}",
        tag: "contacts",
        summary: "Approve a contact request",
        params: &[],
        multipart: false,
        access: Access::Guarded,
        answer: Answer::Json("Contact"),
        extra_errors: &[],
    },
    Endpoint {
        method: HttpMethod::Delete,
        path: "/v2/incoming_requests/{request_id}",
        tag: "contacts",
        summary: "Reject a contact request",
        params: &[],
        multipart: false,
        access: Access::Guarded,
        answer: Answer::NoContent,
        extra_errors: &[],
    },
    Endpoint {
        method: HttpMethod::Put,
        path: "/v2/incoming_requests/{request_id}/accept",
        tag: "contacts",
        summary: "Approve a contact request (the form the ChatWork MCP server uses)",
        params: &[],
        multipart: false,
        access: Access::Guarded,
        answer: Answer::Json("Contact"),
        extra_errors: &[],
    },
    Endpoint {
        method: HttpMethod::Put,
        path: "/v2/incoming_requests/{request_id}/reject",
        tag: "contacts",
        summary: "Reject a contact request (the form the ChatWork MCP server uses)",
        params: &[],
        multipart: false,
        access: Access::Guarded,
        answer: Answer::NoContent,
        extra_errors: &[],
    },
    Endpoint {
        method: HttpMethod::Delete,
        path: "/v2/incoming_requests/{request_id}/reject",
        tag: "contacts",
        summary: "Reject a contact request (the form the ChatWork MCP server uses)",
        params: &[],
        multipart: false,
        access: Access::Guarded,
        answer: Answer::NoContent,
        extra_errors: &[],
    },
    // Part 2: Hayabusa's extensions.
    Endpoint {
        method: HttpMethod::Get,
        path: "/v2/sync",
        tag: "sync",
        summary: "Ops concerning the caller after a revision (long-poll)",
        params: &[
            optional(
                "since",
                Kind::Text,
                "Revision to continue after; omitted: the current revision and no ops.",
            ),
            optional(
                "timeout",
                Kind::Int,
                "Seconds to wait when nothing is new (default 30, at most 60).",
            ),
            optional("limit", Kind::Int, "Most ops to return."),
        ],
        multipart: false,
        access: Access::Token,
        answer: Answer::Json("SyncBatch"),
        extra_errors: &[],
    },
    Endpoint {
        method: HttpMethod::Get,
        path: "/v2/sync/ws",
        tag: "sync",
        summary: "WebSocket: the backlog after `since`, then ops as they happen (one JSON text frame per op)",
        params: &[
            optional("since", Kind::Text, "Revision to continue after."),
            optional(
                "token",
                Kind::Text,
                "The API token, for browsers that cannot set headers.",
            ),
        ],
        multipart: false,
        access: Access::Token,
        answer: Answer::WebSocket,
        extra_errors: &[],
    },
    Endpoint {
        method: HttpMethod::Post,
        path: "/v2/contacts/requests",
        tag: "contacts",
        summary: "Ask another account to become a contact",
        params: &[
            required("account_id", Kind::Int, "The account asked."),
            optional("message", Kind::Text, "A note shown with the request."),
        ],
        multipart: false,
        access: Access::Guarded,
        answer: Answer::Json("ContactRequestCreated"),
        extra_errors: &[409],
    },
    Endpoint {
        method: HttpMethod::Delete,
        path: "/v2/contacts/{account_id}",
        tag: "contacts",
        summary: "Remove a contact",
        params: &[],
        multipart: false,
        access: Access::Token,
        answer: Answer::NoContent,
        extra_errors: &[],
    },
    Endpoint {
        method: HttpMethod::Post,
        path: "/v2/links/{code}/join",
        tag: "links",
        summary: "Join a room through its invitation link: 200 when joined, 202 when an admin must accept first",
        params: &[],
        multipart: false,
        access: Access::Guarded,
        answer: Answer::JsonOr202("JoinResult"),
        extra_errors: &[409],
    },
    Endpoint {
        method: HttpMethod::Get,
        path: "/v2/rooms/{room_id}/join_requests",
        tag: "links",
        summary: "Accounts waiting to join through the invitation link (admins)",
        params: &[],
        multipart: false,
        access: Access::Guarded,
        answer: Answer::List("JoinRequest"),
        extra_errors: &[],
    },
    Endpoint {
        method: HttpMethod::Put,
        path: "/v2/rooms/{room_id}/join_requests/{account_id}",
        tag: "links",
        summary: "Let a waiting account in (admins)",
        params: &[],
        multipart: false,
        access: Access::Guarded,
        answer: Answer::NoContent,
        extra_errors: &[],
    },
    Endpoint {
        method: HttpMethod::Delete,
        path: "/v2/rooms/{room_id}/join_requests/{account_id}",
        tag: "links",
        summary: "Turn a waiting account away (admins)",
        params: &[],
        multipart: false,
        access: Access::Guarded,
        answer: Answer::NoContent,
        extra_errors: &[],
    },
    Endpoint {
        method: HttpMethod::Get,
        path: "/v2/files/download/{room_id}/{file_id}",
        tag: "files",
        summary: "A file's content, through the signed URL `GET …/files/{file_id}?create_download_url=1` gives (no token)",
        params: &[
            required("expires", Kind::UnixTime, "When the URL stops working."),
            required("signature", Kind::Text, "The URL's signature."),
        ],
        multipart: false,
        access: Access::Public,
        answer: Answer::Text("application/octet-stream"),
        extra_errors: &[403, 404],
    },
    Endpoint {
        method: HttpMethod::Post,
        path: "/v2/accounts",
        tag: "accounts",
        summary: "Create an account (server administrators); the answer carries its API token, shown once",
        params: &[
            required("name", Kind::Text, "Display name."),
            optional("admin", Kind::Flag, "1: a server administrator."),
            optional("mail", Kind::Text, "Mail address."),
            optional(
                "organization_name",
                Kind::Text,
                "Organization (default: the caller's).",
            ),
            optional("department", Kind::Text, "Department."),
            optional("title", Kind::Text, "Title."),
        ],
        multipart: false,
        access: Access::Guarded,
        answer: Answer::Json("CreatedAccount"),
        extra_errors: &[],
    },
    Endpoint {
        method: HttpMethod::Post,
        path: "/v2/me/token",
        tag: "me",
        summary: "Replace the caller's API token with a new one (extension); the old token is refused from this answer on",
        params: &[],
        multipart: false,
        access: Access::Token,
        answer: Answer::Json("NewToken"),
        extra_errors: &[],
    },
    Endpoint {
        method: HttpMethod::Post,
        path: "/v2/accounts/{account_id}/token",
        tag: "accounts",
        summary: "Issue an account a new API token to hand over (server administrators, extension); its previous token is refused from this answer on",
        params: &[],
        multipart: false,
        access: Access::Guarded,
        answer: Answer::Json("NewToken"),
        extra_errors: &[404],
    },
    Endpoint {
        method: HttpMethod::Delete,
        path: "/v2/accounts/{account_id}/token",
        tag: "accounts",
        summary: "Revoke an account's API token (server administrators, extension); no new token is handed out",
        params: &[],
        multipart: false,
        access: Access::Guarded,
        answer: Answer::NoContent,
        extra_errors: &[404],
    },
    Endpoint {
        method: HttpMethod::Get,
        path: "/v2/openapi.json",
        tag: "meta",
        summary: "This document",
        params: &[],
        multipart: false,
        access: Access::Public,
        answer: Answer::Text("application/json"),
        extra_errors: &[],
    },
    Endpoint {
        method: HttpMethod::Get,
        path: "/healthz",
        tag: "meta",
        summary: "Liveness, with the log head and the projected position",
        params: &[],
        multipart: false,
        access: Access::Public,
        answer: Answer::Json("Health"),
        extra_errors: &[],
    },
    Endpoint {
        method: HttpMethod::Get,
        path: "/metrics",
        tag: "meta",
        summary: "Metrics in the Prometheus text format",
        params: &[],
        multipart: false,
        access: Access::Public,
        answer: Answer::Text("text/plain; version=0.0.4"),
        extra_errors: &[],
    },
];

// ---- schemas -------------------------------------------------------------------

fn typed(schema_type: Type, description: &str) -> RefOr<Schema> {
    let builder = ObjectBuilder::new().schema_type(schema_type);
    if description.is_empty() {
        builder.into()
    } else {
        builder.description(Some(description)).into()
    }
}

fn int() -> RefOr<Schema> {
    typed(Type::Integer, "")
}

fn text() -> RefOr<Schema> {
    typed(Type::String, "")
}

fn boolean() -> RefOr<Schema> {
    typed(Type::Boolean, "")
}

fn unix_time() -> RefOr<Schema> {
    typed(Type::Integer, "Unix time in seconds.")
}

fn choice(values: &[&str]) -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(values.iter().copied()))
        .into()
}

fn array(items: RefOr<Schema>) -> RefOr<Schema> {
    ArrayBuilder::new().items(items).into()
}

fn schema_ref(name: &str) -> RefOr<Schema> {
    Ref::from_schema_name(name).into()
}

/// An object whose listed fields are all present.
fn object(fields: Vec<(&str, RefOr<Schema>)>) -> RefOr<Schema> {
    object_with_optional(fields, &[])
}

/// An object whose fields are all present except those named in `optional`.
fn object_with_optional(fields: Vec<(&str, RefOr<Schema>)>, optional: &[&str]) -> RefOr<Schema> {
    let mut builder = ObjectBuilder::new();
    for (name, schema) in fields {
        if !optional.contains(&name) {
            builder = builder.required(name);
        }
        builder = builder.property(name, schema);
    }
    builder.into()
}

fn message_id() -> RefOr<Schema> {
    typed(
        Type::String,
        "A message id: a string of digits (63-bit, beyond JavaScript's safe integers).",
    )
}

fn profile_fields() -> Vec<(&'static str, RefOr<Schema>)> {
    vec![
        ("name", text()),
        ("chatwork_id", text()),
        ("organization_id", int()),
        ("organization_name", text()),
        ("department", text()),
        ("avatar_image_url", text()),
    ]
}

fn room_fields() -> Vec<(&'static str, RefOr<Schema>)> {
    vec![
        ("room_id", int()),
        ("name", text()),
        ("type", choice(ROOM_TYPES)),
        ("role", choice(ROLES)),
        ("sticky", boolean()),
        ("unread_num", int()),
        ("mention_num", int()),
        ("mytask_num", int()),
        ("message_num", int()),
        ("file_num", int()),
        ("task_num", int()),
        ("icon_path", text()),
        ("last_update_time", unix_time()),
    ]
}

fn task_fields() -> Vec<(&'static str, RefOr<Schema>)> {
    vec![
        ("task_id", int()),
        ("assigned_by_account", schema_ref("AccountRef")),
        ("message_id", message_id()),
        ("body", text()),
        ("limit_time", unix_time()),
        ("status", choice(TASK_STATUS)),
        ("limit_type", choice(LIMIT_TYPES)),
    ]
}

fn file_fields() -> Vec<(&'static str, RefOr<Schema>)> {
    vec![
        ("file_id", int()),
        ("account", schema_ref("AccountRef")),
        ("message_id", message_id()),
        ("filename", text()),
        ("filesize", int()),
        ("upload_time", unix_time()),
    ]
}

fn with<T>(mut fields: Vec<T>, more: impl IntoIterator<Item = T>) -> Vec<T> {
    fields.extend(more);
    fields
}

/// The component schemas, by name.
fn schemas() -> Vec<(&'static str, RefOr<Schema>)> {
    let me = [
        ("account_id", int()),
        ("room_id", int()),
        ("name", text()),
        ("chatwork_id", text()),
        ("organization_id", int()),
        ("organization_name", text()),
        ("department", text()),
        ("title", text()),
        ("url", text()),
        ("introduction", text()),
        ("mail", text()),
        ("tel_organization", text()),
        ("tel_extension", text()),
        ("tel_mobile", text()),
        ("skype", text()),
        ("facebook", text()),
        ("twitter", text()),
        ("avatar_image_url", text()),
        ("login_mail", text()),
    ];
    vec![
        (
            "Errors",
            object(vec![("errors", array(typed(Type::String, "A reason.")))]),
        ),
        ("Me", object(me.into())),
        (
            "MyStatus",
            object(
                [
                    "unread_room_num",
                    "mention_room_num",
                    "mytask_room_num",
                    "unread_num",
                    "mention_num",
                    "mytask_num",
                ]
                .into_iter()
                .map(|name| (name, int()))
                .collect(),
            ),
        ),
        (
            "AccountRef",
            object(vec![
                ("account_id", int()),
                ("name", text()),
                ("avatar_image_url", text()),
            ]),
        ),
        (
            "RoomRef",
            object(vec![
                ("room_id", int()),
                ("name", text()),
                ("icon_path", text()),
            ]),
        ),
        (
            "MyTask",
            object(with(task_fields(), [("room", schema_ref("RoomRef"))])),
        ),
        (
            "Task",
            object(with(task_fields(), [("account", schema_ref("AccountRef"))])),
        ),
        (
            "Contact",
            object(with(
                vec![("account_id", int()), ("room_id", int())],
                profile_fields(),
            )),
        ),
        ("Room", object(room_fields())),
        (
            "RoomDetail",
            object(with(room_fields(), [("description", text())])),
        ),
        ("RoomId", object(vec![("room_id", int())])),
        (
            "Member",
            object(with(
                vec![("account_id", int()), ("role", choice(ROLES))],
                profile_fields(),
            )),
        ),
        (
            "MemberIds",
            object(vec![
                ("admin", array(int())),
                ("member", array(int())),
                ("readonly", array(int())),
            ]),
        ),
        (
            "Message",
            object(vec![
                ("message_id", message_id()),
                ("account", schema_ref("AccountRef")),
                ("body", text()),
                ("send_time", unix_time()),
                (
                    "update_time",
                    typed(
                        Type::Integer,
                        "Unix time of the last edit; 0 if never edited.",
                    ),
                ),
            ]),
        ),
        ("MessageId", object(vec![("message_id", message_id())])),
        (
            "UnreadCounts",
            object(vec![("unread_num", int()), ("mention_num", int())]),
        ),
        ("TaskIds", object(vec![("task_ids", array(int()))])),
        ("TaskId", object(vec![("task_id", int())])),
        ("File", object(file_fields())),
        (
            "FileDetail",
            object_with_optional(
                with(
                    file_fields(),
                    [(
                        "download_url",
                        typed(
                            Type::String,
                            "Signed URL valid for 30 seconds (with create_download_url=1).",
                        ),
                    )],
                ),
                &["download_url"],
            ),
        ),
        ("FileId", object(vec![("file_id", int())])),
        (
            "Link",
            object_with_optional(
                vec![
                    (
                        "public",
                        typed(Type::Boolean, "Whether the room has a link."),
                    ),
                    (
                        "url",
                        typed(Type::String, "The invitation URL (when public)."),
                    ),
                    ("need_acceptance", boolean()),
                    ("description", text()),
                ],
                &["url", "need_acceptance", "description"],
            ),
        ),
        (
            "LinkClosed",
            object(vec![("public", typed(Type::Boolean, "Always false."))]),
        ),
        (
            "IncomingRequest",
            object(with(
                vec![
                    ("request_id", int()),
                    ("account_id", int()),
                    ("message", text()),
                ],
                profile_fields(),
            )),
        ),
        (
            "JoinResult",
            object(vec![
                ("room_id", int()),
                (
                    "status",
                    ObjectBuilder::new()
                        .schema_type(Type::String)
                        .enum_values(Some(["joined", "pending"]))
                        .description(Some(
                            "`joined`: a member now; `pending`: an admin must accept (202).",
                        ))
                        .into(),
                ),
            ]),
        ),
        (
            "JoinRequest",
            object(vec![
                ("account_id", int()),
                ("name", text()),
                ("requested_at", unix_time()),
            ]),
        ),
        (
            "ContactRequestCreated",
            object(vec![("request_id", int()), ("account_id", int())]),
        ),
        (
            "SyncBatch",
            object(vec![
                (
                    "revision",
                    typed(Type::String, "Continue after it with `since`."),
                ),
                ("ops", array(schema_ref("Op"))),
            ]),
        ),
        (
            "Op",
            ObjectBuilder::new()
                .description(Some(
                    "One change concerning the caller, with enough to update a view or to \
                     know what to re-fetch.",
                ))
                .required("revision")
                .required("type")
                .property("revision", typed(Type::String, "This op's own revision."))
                .property("type", choice(OP_TYPES))
                .property("room_id", int())
                .property("message_id", message_id())
                .property("account_id", int())
                .property("body", text())
                .into(),
        ),
        (
            "CreatedAccount",
            object(vec![
                ("account_id", int()),
                ("room_id", int()),
                ("name", text()),
                ("mail", text()),
                ("organization_id", int()),
                ("organization_name", text()),
                ("department", text()),
                ("title", text()),
                ("admin", boolean()),
                (
                    "token",
                    typed(Type::String, "The account's API token; shown only here."),
                ),
            ]),
        ),
        (
            "NewToken",
            object(vec![(
                "token",
                typed(
                    Type::String,
                    "The new API token; the previous one no longer works.",
                ),
            )]),
        ),
        (
            "Health",
            object(vec![
                ("status", text()),
                ("log_head", int()),
                ("projected", int()),
            ]),
        ),
    ]
}

// ---- operations ----------------------------------------------------------------

fn param_schema(kind: Kind) -> RefOr<Schema> {
    match kind {
        Kind::Int => int(),
        Kind::Text => text(),
        Kind::Ids => ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some("^[0-9]+(,[0-9]+)*$"))
            .description(Some("Comma-separated account ids."))
            .into(),
        Kind::UnixTime => unix_time(),
        Kind::Flag => ObjectBuilder::new()
            .schema_type(Type::Integer)
            .enum_values(Some([0, 1]))
            .into(),
        Kind::Choice(values) => choice(values),
        Kind::File => ObjectBuilder::new()
            .schema_type(Type::String)
            .content_media_type("application/octet-stream")
            .into(),
    }
}

fn path_parameter(name: &str) -> Parameter {
    let (schema, about) = match name {
        "message_id" => (message_id(), "The message."),
        "code" => (text(), "The invitation link's code."),
        "room_id" => (int(), "The room (404 unless the caller is a member)."),
        "task_id" => (int(), "The task."),
        "file_id" => (int(), "The file."),
        "request_id" => (int(), "The contact request."),
        "account_id" => (int(), "The account."),
        _ => (text(), ""),
    };
    ParameterBuilder::new()
        .name(name)
        .parameter_in(ParameterIn::Path)
        .required(Required::True)
        .description(Some(about))
        .schema(Some(schema))
        .build()
}

fn path_parameters(path: &str) -> Vec<Parameter> {
    path.split('/')
        .filter_map(|segment| segment.strip_prefix('{')?.strip_suffix('}'))
        .map(path_parameter)
        .collect()
}

fn required_flag(required: bool) -> Required {
    if required {
        Required::True
    } else {
        Required::False
    }
}

fn rate_limit_headers(response: ResponseBuilder) -> ResponseBuilder {
    response
        .header(
            "x-ratelimit-limit",
            HeaderBuilder::new()
                .schema(Some(int()))
                .description(Some("Requests allowed per window for this token."))
                .build(),
        )
        .header(
            "x-ratelimit-remaining",
            HeaderBuilder::new()
                .schema(Some(int()))
                .description(Some("Requests left in the current window."))
                .build(),
        )
        .header(
            "x-ratelimit-reset",
            HeaderBuilder::new()
                .schema(Some(unix_time()))
                .description(Some("Unix time (seconds) at which the window ends."))
                .build(),
        )
}

fn json_content(schema: RefOr<Schema>) -> utoipa::openapi::Content {
    ContentBuilder::new().schema(Some(schema)).build()
}

/// Error answers shared by the operations, by status.
fn error_response(status: u16) -> (&'static str, &'static str) {
    match status {
        400 => ("BadRequest", "A parameter is missing or invalid."),
        401 => ("Unauthorized", "No token, or an invalid one."),
        403 => ("Forbidden", "The caller may not do this."),
        404 => ("NotFound", "Unknown, or not visible to the caller."),
        409 => (
            "Conflict",
            "Conflicts with the current state (e.g. a code in use).",
        ),
        413 => ("PayloadTooLarge", "The upload or body is too large."),
        422 => (
            "IdempotencyKeyReused",
            "The Idempotency-Key was used for a different request.",
        ),
        429 => (
            "TooManyRequests",
            "Rate limited: per token, or posts per room.",
        ),
        _ => ("Error", "An error."),
    }
}

const ALL_ERRORS: &[u16] = &[400, 401, 403, 404, 409, 413, 422, 429];

fn operation(endpoint: &Endpoint) -> Operation {
    let authenticated = endpoint.access != Access::Public;
    let mut builder = OperationBuilder::new()
        .tag(endpoint.tag)
        .summary(Some(endpoint.summary))
        .operation_id(Some(operation_id(endpoint)));
    for parameter in path_parameters(endpoint.path) {
        builder = builder.parameter(parameter);
    }
    let in_body = matches!(endpoint.method, HttpMethod::Post | HttpMethod::Put);
    if in_body && !endpoint.params.is_empty() {
        let mut form = ObjectBuilder::new();
        for param in endpoint.params {
            let schema = match param_schema(param.kind) {
                RefOr::T(Schema::Object(object)) => {
                    let mut object = object;
                    object.description = Some(param.about.to_string());
                    RefOr::T(Schema::Object(object))
                }
                other => other,
            };
            form = form.property(param.name, schema);
            if param.required {
                form = form.required(param.name);
            }
        }
        let media_type = if endpoint.multipart {
            "multipart/form-data"
        } else {
            "application/x-www-form-urlencoded"
        };
        builder = builder.request_body(Some(
            RequestBodyBuilder::new()
                .description(Some(if endpoint.multipart {
                    "Multipart parts."
                } else {
                    "Form parameters; ChatWork clients may send them in the query string instead."
                }))
                .required(Some(required_flag(
                    endpoint.params.iter().any(|p| p.required),
                )))
                .content(media_type, json_content(form.into()))
                .build(),
        ));
    } else {
        for param in endpoint.params {
            builder = builder.parameter(
                ParameterBuilder::new()
                    .name(param.name)
                    .parameter_in(ParameterIn::Query)
                    .required(required_flag(param.required))
                    .description(Some(param.about))
                    .schema(Some(param_schema(param.kind))),
            );
        }
    }
    if endpoint.method == HttpMethod::Post && authenticated {
        builder = builder.parameter(
            ParameterBuilder::new()
                .name("Idempotency-Key")
                .parameter_in(ParameterIn::Header)
                .required(Required::False)
                .description(Some(
                    "A retried request with the same key returns the first result and \
                     changes nothing.",
                ))
                .schema(Some(text())),
        );
    }
    builder = builder.responses(responses(endpoint));
    if authenticated {
        builder.securities(Some(security_of(endpoint.path)))
    } else {
        builder.securities(Some(Vec::<SecurityRequirement>::new()))
    }
    .build()
}

fn operation_id(endpoint: &Endpoint) -> String {
    let method = match endpoint.method {
        HttpMethod::Get => "get",
        HttpMethod::Post => "post",
        HttpMethod::Put => "put",
        HttpMethod::Delete => "delete",
        _ => "other",
    };
    let path: Vec<&str> = endpoint
        .path
        .split('/')
        .filter(|s| !s.is_empty() && *s != "v2")
        .map(|s| s.trim_start_matches('{').trim_end_matches('}'))
        .collect();
    format!("{method}_{}", path.join("_").replace(['.', '-'], "_"))
}

fn security_of(path: &str) -> Vec<SecurityRequirement> {
    let mut schemes = vec![
        SecurityRequirement::new("chatworkToken", Vec::<String>::new()),
        SecurityRequirement::new("bearer", Vec::<String>::new()),
    ];
    if path == "/v2/sync/ws" {
        schemes.push(SecurityRequirement::new("tokenQuery", Vec::<String>::new()));
    }
    schemes
}

fn responses(endpoint: &Endpoint) -> Responses {
    let authenticated = endpoint.access != Access::Public;
    let decorate = |response: ResponseBuilder| {
        if authenticated {
            rate_limit_headers(response)
        } else {
            response
        }
    };
    let mut responses = Responses::new();
    let ok = |description: &str| decorate(ResponseBuilder::new().description(description));
    match endpoint.answer {
        Answer::Json(name) => {
            responses.responses.insert(
                "200".into(),
                ok("OK")
                    .content("application/json", json_content(schema_ref(name)))
                    .build()
                    .into(),
            );
        }
        Answer::List(name) => {
            responses.responses.insert(
                "200".into(),
                ok("OK (at most 100 items)")
                    .content("application/json", json_content(array(schema_ref(name))))
                    .build()
                    .into(),
            );
        }
        Answer::ListOr204(name) => {
            responses.responses.insert(
                "200".into(),
                ok("OK (at most 100 items)")
                    .content("application/json", json_content(array(schema_ref(name))))
                    .build()
                    .into(),
            );
            responses
                .responses
                .insert("204".into(), ok("Nothing new.").build().into());
        }
        Answer::JsonOr202(name) => {
            for (status, description) in [("200", "Done."), ("202", "Waiting for acceptance.")] {
                responses.responses.insert(
                    status.into(),
                    ok(description)
                        .content("application/json", json_content(schema_ref(name)))
                        .build()
                        .into(),
                );
            }
        }
        Answer::NoContent => {
            responses
                .responses
                .insert("204".into(), ok("Done.").build().into());
        }
        Answer::Text(media_type) => {
            responses.responses.insert(
                "200".into(),
                ok("OK")
                    .content(
                        media_type,
                        ContentBuilder::new().schema(Some(text())).build(),
                    )
                    .build()
                    .into(),
            );
        }
        Answer::WebSocket => {
            responses.responses.insert(
                "101".into(),
                ok("Switching to the WebSocket protocol; then one JSON text frame per `Op`.")
                    .build()
                    .into(),
            );
        }
    }
    let has_input = !endpoint.params.is_empty() || endpoint.path.contains('{');
    for &status in ALL_ERRORS {
        let applies = match status {
            _ if !authenticated => endpoint.extra_errors.contains(&status),
            401 | 429 => true,
            400 => has_input,
            403 => endpoint.access == Access::Guarded,
            404 => endpoint.path.contains('{'),
            422 => endpoint.method == HttpMethod::Post,
            other => endpoint.extra_errors.contains(&other),
        };
        if applies {
            let (name, _) = error_response(status);
            responses
                .responses
                .insert(status.to_string(), Ref::from_response_name(name).into());
        }
    }
    responses
}

fn components() -> Components {
    let mut components = Components::new();
    for (name, schema) in schemas() {
        components.schemas.insert(name.to_string(), schema);
    }
    for &status in ALL_ERRORS {
        let (name, description) = error_response(status);
        components.responses.insert(
            name.to_string(),
            rate_limit_headers(ResponseBuilder::new().description(description))
                .content("application/json", json_content(schema_ref("Errors")))
                .build()
                .into(),
        );
    }
    components.add_security_scheme(
        "chatworkToken",
        SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-ChatWorkToken"))),
    );
    components.add_security_scheme(
        "bearer",
        SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
    );
    components.add_security_scheme(
        "tokenQuery",
        SecurityScheme::ApiKey(ApiKey::Query(ApiKeyValue::new("token"))),
    );
    components
}

/// The OpenAPI document of the whole API.
pub fn document() -> OpenApi {
    let mut paths = Paths::new();
    for endpoint in ENDPOINTS {
        paths.add_path_operation(
            endpoint.path,
            vec![endpoint.method.clone()],
            operation(endpoint),
        );
    }
    let tags = [
        ("me", "The caller's account."),
        ("my", "The caller's totals and tasks."),
        ("contacts", "Contacts and contact requests."),
        ("rooms", "Rooms."),
        ("members", "Room members."),
        ("messages", "Messages and read state."),
        ("tasks", "Tasks."),
        ("files", "Files."),
        ("links", "Invitation links."),
        ("sync", "Realtime ops (Hayabusa extension)."),
        ("accounts", "Account administration (Hayabusa extension)."),
        ("meta", "Health, metrics and this document."),
    ]
    .into_iter()
    .map(|(name, description)| {
        let mut tag = Tag::new(name);
        tag.description = Some(description.to_string());
        tag
    });
    OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("Hayabusa API")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some(
                    "A ChatWork-API-v2-compatible chat backend. Point ChatWork clients at \
                     `http://HOST:PORT/v2/`. Authenticate with `X-ChatWorkToken` or \
                     `Authorization: Bearer`; errors are `{\"errors\":[…]}`; times are Unix \
                     seconds; `message_id` is a string. Every answer to a request with a \
                     token carries `x-ratelimit-limit`, `x-ratelimit-remaining` and \
                     `x-ratelimit-reset`. `POST …?method=PUT|DELETE` overrides the method.",
                )),
        )
        .servers(Some([ServerBuilder::new()
            .url("/")
            .description(Some("This server"))
            .build()]))
        .paths(paths)
        .components(Some(components()))
        .tags(Some(tags))
        .build()
}

static DOCUMENT_JSON: LazyLock<String> = LazyLock::new(|| {
    document()
        .to_json()
        .expect("the OpenAPI document serialises")
});

/// `GET /v2/openapi.json` (no token needed).
pub async fn serve() -> Response {
    ([(CONTENT_TYPE, "application/json")], DOCUMENT_JSON.as_str()).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;
    use std::collections::BTreeSet;

    /// Every operation of `api.md` Part 1 and Part 2 (and the invitation-link join).
    const EXPECTED: &[(&str, &str)] = &[
        ("get", "/v2/me"),
        ("get", "/v2/my/status"),
        ("get", "/v2/my/tasks"),
        ("get", "/v2/contacts"),
        ("get", "/v2/rooms"),
        ("post", "/v2/rooms"),
        ("get", "/v2/rooms/{room_id}"),
        ("put", "/v2/rooms/{room_id}"),
        ("delete", "/v2/rooms/{room_id}"),
        ("get", "/v2/rooms/{room_id}/members"),
        ("put", "/v2/rooms/{room_id}/members"),
        ("get", "/v2/rooms/{room_id}/messages"),
        ("post", "/v2/rooms/{room_id}/messages"),
        ("put", "/v2/rooms/{room_id}/messages/read"),
        ("put", "/v2/rooms/{room_id}/messages/unread"),
        ("get", "/v2/rooms/{room_id}/messages/{message_id}"),
        ("put", "/v2/rooms/{room_id}/messages/{message_id}"),
        ("delete", "/v2/rooms/{room_id}/messages/{message_id}"),
        ("get", "/v2/rooms/{room_id}/tasks"),
        ("post", "/v2/rooms/{room_id}/tasks"),
        ("get", "/v2/rooms/{room_id}/tasks/{task_id}"),
        ("put", "/v2/rooms/{room_id}/tasks/{task_id}/status"),
        ("get", "/v2/rooms/{room_id}/files"),
        ("post", "/v2/rooms/{room_id}/files"),
        ("get", "/v2/rooms/{room_id}/files/{file_id}"),
        ("get", "/v2/rooms/{room_id}/link"),
        ("post", "/v2/rooms/{room_id}/link"),
        ("put", "/v2/rooms/{room_id}/link"),
        ("delete", "/v2/rooms/{room_id}/link"),
        ("get", "/v2/incoming_requests"),
        ("put", "/v2/incoming_requests/{request_id}"),
        ("delete", "/v2/incoming_requests/{request_id}"),
        ("put", "/v2/incoming_requests/{request_id}/accept"),
        ("put", "/v2/incoming_requests/{request_id}/reject"),
        ("delete", "/v2/incoming_requests/{request_id}/reject"),
        ("get", "/v2/sync"),
        ("get", "/v2/sync/ws"),
        ("post", "/v2/contacts/requests"),
        ("delete", "/v2/contacts/{account_id}"),
        ("post", "/v2/links/{code}/join"),
        // Built beyond api.md: join requests of a link that needs acceptance, and the
        // signed download URL of a file.
        ("get", "/v2/rooms/{room_id}/join_requests"),
        ("put", "/v2/rooms/{room_id}/join_requests/{account_id}"),
        ("delete", "/v2/rooms/{room_id}/join_requests/{account_id}"),
        ("get", "/v2/files/download/{room_id}/{file_id}"),
        ("post", "/v2/accounts"),
        ("post", "/v2/me/token"),
        ("post", "/v2/accounts/{account_id}/token"),
        ("delete", "/v2/accounts/{account_id}/token"),
        ("get", "/healthz"),
        ("get", "/metrics"),
        ("get", "/v2/openapi.json"),
    ];

    fn parsed() -> Value {
        serde_json::from_str(&DOCUMENT_JSON).expect("the document is JSON")
    }

    fn operations(doc: &Value) -> BTreeSet<(String, String)> {
        let mut found = BTreeSet::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for method in ["get", "put", "post", "delete", "patch", "head", "options"] {
                if item.get(method).is_some() {
                    found.insert((method.to_string(), path.clone()));
                }
            }
        }
        found
    }

    #[test]
    fn the_document_is_openapi_3_and_has_every_operation_of_the_contract() {
        let doc = parsed();
        assert!(
            doc["openapi"].as_str().unwrap().starts_with("3."),
            "{}",
            doc["openapi"]
        );
        let expected: BTreeSet<(String, String)> = EXPECTED
            .iter()
            .map(|(m, p)| (m.to_string(), p.to_string()))
            .collect();
        assert_eq!(operations(&doc), expected);
    }

    #[test]
    fn every_reference_resolves() {
        let doc = parsed();
        fn walk(value: &Value, doc: &Value, seen: &mut usize) {
            match value {
                Value::Object(map) => {
                    if let Some(Value::String(reference)) = map.get("$ref") {
                        let pointer = reference.trim_start_matches('#');
                        assert!(doc.pointer(pointer).is_some(), "dangling {reference}");
                        *seen += 1;
                    }
                    map.values().for_each(|v| walk(v, doc, seen));
                }
                Value::Array(items) => items.iter().for_each(|v| walk(v, doc, seen)),
                _ => {}
            }
        }
        let mut seen = 0;
        walk(&doc, &doc, &mut seen);
        assert!(seen > 100, "only {seen} references");
    }

    #[test]
    fn authenticated_operations_document_errors_and_rate_limit_headers() {
        let doc = parsed();
        for (method, path) in operations(&doc) {
            let op = &doc["paths"][&path][&method];
            let responses = op["responses"].as_object().unwrap();
            let public = ["/healthz", "/metrics", "/v2/openapi.json"].contains(&path.as_str())
                || path.starts_with("/v2/files/download/");
            if public {
                assert_eq!(op["security"], serde_json::json!([]), "{method} {path}");
                continue;
            }
            for status in ["401", "429"] {
                assert!(
                    responses.contains_key(status),
                    "{method} {path} lacks {status}"
                );
            }
            if path.contains('{') {
                for status in ["400", "404"] {
                    assert!(
                        responses.contains_key(status),
                        "{method} {path} lacks {status}"
                    );
                }
            }
            let success = responses
                .iter()
                .find(|(status, _)| status.starts_with('2') || *status == "101")
                .unwrap_or_else(|| panic!("{method} {path} has no success answer"))
                .1;
            assert!(
                success["headers"].get("x-ratelimit-reset").is_some(),
                "{method} {path}"
            );
        }
        let errors = &doc["components"]["responses"]["TooManyRequests"];
        assert_eq!(
            errors["content"]["application/json"]["schema"]["$ref"],
            "#/components/schemas/Errors"
        );
    }

    #[test]
    fn parameters_are_described_the_chatwork_way() {
        let doc = parsed();
        let create_room = &doc["paths"]["/v2/rooms"]["post"];
        let form =
            &create_room["requestBody"]["content"]["application/x-www-form-urlencoded"]["schema"];
        assert_eq!(
            form["required"],
            serde_json::json!(["name", "members_admin_ids"])
        );
        assert!(
            form["properties"]["icon_preset"]["enum"]
                .as_array()
                .unwrap()
                .contains(&Value::from("beer"))
        );
        assert!(
            create_room["parameters"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p["name"] == "Idempotency-Key" && p["in"] == "header")
        );

        let messages = &doc["paths"]["/v2/rooms/{room_id}/messages"]["get"];
        let names: Vec<&str> = messages["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["room_id", "force"]);
        assert!(messages["responses"].get("204").is_some());

        let upload = &doc["paths"]["/v2/rooms/{room_id}/files"]["post"];
        assert!(
            upload["requestBody"]["content"]["multipart/form-data"]["schema"]["properties"]
                .get("file")
                .is_some()
        );
        assert!(upload["responses"].get("413").is_some());

        let message = &doc["components"]["schemas"]["Message"];
        assert_eq!(message["properties"]["message_id"]["type"], "string");
    }
}
