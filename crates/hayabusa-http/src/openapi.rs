//! `GET /v2/openapi.json`: the OpenAPI 3.1 document of the whole API — every ChatWork v2
//! endpoint and every Hayabusa extension of `api.md`, so that the document is the
//! contract.
//!
//! Response bodies are described by the schemas utoipa derives from the types in
//! [`crate::dto`] (`#[derive(ToSchema)]`), the same types the handlers serialize: no
//! schema is written by hand, so the document cannot drift from what the server sends.
//! The operations come from one table, [`ENDPOINTS`], one row per operation, built
//! with utoipa's builder: ChatWork's parameters are form fields read by hand (not
//! typed extractors), so the table describes them — query parameters for GET and
//! DELETE, a form-encoded body for POST and PUT (ChatWork clients may also send those
//! in the query string), `multipart/form-data` for file uploads — with the limits the
//! domain enforces, taken from its constants.

use crate::dto;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use hayabusa_app::idempotency::MAX_KEY_LEN;
use hayabusa_app::sync::{MAX_LIMIT, MAX_TIMEOUT_SECS};
use hayabusa_domain::contact::MAX_REQUEST_MESSAGE_CHARS;
use hayabusa_domain::room::{
    ICON_PRESETS, MAX_DESCRIPTION_CHARS, MAX_LINK_CODE_CHARS, MAX_MESSAGE_CHARS,
    MAX_ROOM_NAME_CHARS,
};
use std::borrow::Cow;
use std::collections::BTreeSet;
use std::sync::LazyLock;
use utoipa::ToSchema;
use utoipa::openapi::path::{
    HttpMethod, Operation, OperationBuilder, Parameter, ParameterBuilder, ParameterIn,
};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::schema::{
    AllOfBuilder, AnyOfBuilder, ArrayBuilder, ObjectBuilder, Schema, Type,
};
use utoipa::openapi::security::{
    ApiKey, ApiKeyValue, Http, HttpAuthScheme, SecurityRequirement, SecurityScheme,
};
use utoipa::openapi::{
    Components, ContentBuilder, HeaderBuilder, InfoBuilder, OpenApi, OpenApiBuilder, Paths, Ref,
    RefOr, Required, ResponseBuilder, Responses, ServerBuilder, Tag,
};

/// A positive number as a string of digits (a message id).
const DIGITS_NOT_ZERO: &str = "^[0-9]*[1-9][0-9]*$";
/// Comma-separated positive ids, at least one.
const ID_LIST: &str = "^[0-9]*[1-9][0-9]*(,[0-9]*[1-9][0-9]*)*$";
/// Comma-separated positive ids, or nothing.
const OPTIONAL_ID_LIST: &str = "^([0-9]*[1-9][0-9]*(,[0-9]*[1-9][0-9]*)*)?$";

/// Longest account and organization name (`POST /v2/accounts`).
const MAX_ACCOUNT_NAME_CHARS: usize = 255;
/// Longest description of an invitation link.
const MAX_LINK_DESCRIPTION_CHARS: usize = 1_000;

/// The type of a parameter, as ChatWork sends it.
#[derive(Clone, Copy)]
enum Kind {
    /// A positive id. The ids the API shows are at most 2^53 − 1; a larger one names
    /// nothing (404, or 400 where it must name an account).
    Id,
    /// An integer.
    Int,
    /// An integer from the first bound to the second, inclusive.
    Range(u64, u64),
    /// Free text.
    Text,
    /// Text of 1 to the given number of characters, not only white space.
    Line(usize),
    /// Text of at most the given number of characters.
    Note(usize),
    /// Comma-separated ids (`"123,542,1001"`), at least one.
    Ids,
    /// Comma-separated ids, or nothing.
    IdsOrNone,
    /// A message id: a string of digits.
    MessageId,
    /// An invitation link's code.
    LinkCode,
    /// A sync revision (`"123"` or `"123:1"`).
    Revision,
    /// Unix time in seconds, 0 or more.
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

/// A response body type of [`crate::dto`]: the name of its derived schema, and how to
/// collect that schema with those it refers to.
#[derive(Clone, Copy)]
struct Body {
    name: fn() -> Cow<'static, str>,
    collect: fn(&mut Vec<(String, RefOr<Schema>)>),
}

/// The body `T` (a `dto` type the handler serializes).
const fn body<T: ToSchema>() -> Body {
    Body {
        name: T::name,
        collect: collect::<T>,
    }
}

/// Pushes `T`'s schema and, recursively, those it refers to.
fn collect<T: ToSchema>(schemas: &mut Vec<(String, RefOr<Schema>)>) {
    schemas.push((T::name().into_owned(), T::schema()));
    T::schemas(schemas);
}

/// What a successful call answers.
#[derive(Clone, Copy)]
enum Answer {
    /// 200 with one JSON object.
    Json(Body),
    /// 200 with a JSON array.
    List(Body),
    /// 200 with a JSON array, or 204 when nothing is new.
    ListOr204(Body),
    /// 200, or 202 when the request waits for someone's acceptance; the same body.
    JsonOr202(Body),
    /// 204 without a body.
    NoContent,
    /// 200 with bytes of the given media type.
    Text(&'static str),
    /// 200 with this document.
    Document,
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
    /// Error statuses beyond those every operation of its kind has (e.g. 409).
    extra_errors: &'static [u16],
}

/// The PUT operations that need at least one of their (optional) parameters.
const AT_LEAST_ONE: &[&str] = &["/v2/rooms/{room_id}"];

/// The operations that honour `Idempotency-Key`.
const IDEMPOTENT: &[&str] = &[
    "/v2/rooms",
    "/v2/rooms/{room_id}/messages",
    "/v2/rooms/{room_id}/tasks",
    "/v2/rooms/{room_id}/files",
    "/v2/accounts",
];

const TASK_STATUS: &[&str] = &["open", "done"];
const LIMIT_TYPES: &[&str] = &["none", "date", "time"];

const MEMBER_LISTS: &[Param] = &[
    required(
        "members_admin_ids",
        Kind::Ids,
        "Accounts that are admins of the room (at least one).",
    ),
    optional(
        "members_member_ids",
        Kind::IdsOrNone,
        "Accounts that are members.",
    ),
    optional(
        "members_readonly_ids",
        Kind::IdsOrNone,
        "Accounts that may only read.",
    ),
];

const LINK_SETTINGS: &[Param] = &[
    optional(
        "code",
        Kind::LinkCode,
        "The link's code: at most 50 characters of `[A-Za-z0-9_-]` (default: generated).",
    ),
    optional(
        "need_acceptance",
        Kind::Flag,
        "1: joining through the link needs an admin's acceptance.",
    ),
    optional(
        "description",
        Kind::Note(MAX_LINK_DESCRIPTION_CHARS),
        "Text shown on the invitation page, at most 1000 characters.",
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
        answer: Answer::Json(body::<dto::Me>()),
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
        answer: Answer::Json(body::<dto::MyStatus>()),
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
                Kind::Id,
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
        answer: Answer::List(body::<dto::Task>()),
        extra_errors: &[],
    },
    Endpoint {
        method: HttpMethod::Get,
        path: "/v2/admin/forwarders",
        tag: "forwarders",
        summary: "Every forwarder, without secrets (administrators)",
        params: &[],
        multipart: false,
        access: Access::Token,
        answer: Answer::List(body::<dto::ForwarderView>()),
        extra_errors: &[403],
    },
    Endpoint {
        method: HttpMethod::Post,
        path: "/v2/admin/forwarders",
        tag: "forwarders",
        summary: "Subscribe a URL to the domain events (administrators): each event, in log order, in a versioned JSON envelope, signed with the Standard Webhooks headers",
        params: &[
            required(
                "url",
                Kind::Line(hayabusa_domain::webhook::MAX_URL_BYTES),
                "An https URL (http where the server allows it); private, loopback and link-local addresses are refused unless the server allows them.",
            ),
            optional(
                "event_types",
                Kind::Text,
                "Only these stored event types, comma-separated (message_posted, room_created, …); all if absent.",
            ),
            optional(
                "room_ids",
                Kind::IdsOrNone,
                "Only these rooms' events, comma-separated; all if absent.",
            ),
        ],
        multipart: false,
        access: Access::Guarded,
        answer: Answer::Json(body::<dto::CreatedForwarder>()),
        extra_errors: &[403],
    },
    Endpoint {
        method: HttpMethod::Delete,
        path: "/v2/admin/forwarders/{forwarder_id}",
        tag: "forwarders",
        summary: "Remove a forwarder (administrators)",
        params: &[],
        multipart: false,
        access: Access::Token,
        answer: Answer::NoContent,
        extra_errors: &[403],
    },
    Endpoint {
        method: HttpMethod::Get,
        path: "/v2/admin/forwarders/{forwarder_id}/dead_letters",
        tag: "forwarders",
        summary: "A forwarder's dead letters: the events it gave up after its retry schedule, oldest first, at most 1,000 (administrators)",
        params: &[optional(
            "after",
            Kind::Range(0, 9_007_199_254_740_991),
            "Only dead letters after this log position (to page on).",
        )],
        multipart: false,
        access: Access::Token,
        answer: Answer::List(body::<dto::DeadLetterView>()),
        extra_errors: &[403],
    },
    Endpoint {
        method: HttpMethod::Post,
        path: "/v2/admin/forwarders/{forwarder_id}/replay",
        tag: "forwarders",
        summary: "Send a forwarder's dead letters again (administrators): each with its first webhook-id, before the forwarder's next new events; a delivered one leaves the list, one that fails through the schedule again stays",
        params: &[optional(
            "positions",
            Kind::IdsOrNone,
            "Only these dead letters (their positions, comma-separated); every one if absent.",
        )],
        multipart: false,
        access: Access::Guarded,
        answer: Answer::Json(body::<dto::ReplayRequested>()),
        extra_errors: &[403],
    },
    Endpoint {
        method: HttpMethod::Get,
        path: "/v2/webhooks",
        tag: "webhooks",
        summary: "The caller's webhooks (without their tokens)",
        params: &[],
        multipart: false,
        access: Access::Token,
        answer: Answer::List(body::<dto::Webhook>()),
        extra_errors: &[],
    },
    Endpoint {
        method: HttpMethod::Post,
        path: "/v2/webhooks",
        tag: "webhooks",
        summary: "Set up a webhook (at most 5 per account): a POST to url, signed, for every event of the chosen types the caller may see",
        params: &[
            required(
                "url",
                Kind::Line(hayabusa_domain::webhook::MAX_URL_BYTES),
                "An https URL (http where the server allows it); private, loopback and link-local addresses are refused unless the server allows them.",
            ),
            required(
                "event_types",
                Kind::Text,
                "Comma-separated: message_created, message_updated, mention_to_me.",
            ),
            optional(
                "room_id",
                Kind::Id,
                "Only this room's events (the caller must be a member).",
            ),
        ],
        multipart: false,
        access: Access::Guarded,
        answer: Answer::Json(body::<dto::CreatedWebhook>()),
        extra_errors: &[],
    },
    Endpoint {
        method: HttpMethod::Delete,
        path: "/v2/webhooks/{webhook_setting_id}",
        tag: "webhooks",
        summary: "Delete one of the caller's webhooks",
        params: &[],
        multipart: false,
        access: Access::Token,
        answer: Answer::NoContent,
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
        answer: Answer::List(body::<dto::Contact>()),
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
        answer: Answer::List(body::<dto::Room>()),
        extra_errors: &[],
    },
    Endpoint {
        method: HttpMethod::Post,
        path: "/v2/rooms",
        tag: "rooms",
        summary: "Create a group room",
        params: &[
            required(
                "name",
                Kind::Line(MAX_ROOM_NAME_CHARS),
                "Room name, 1–255 characters, not only white space.",
            ),
            required(
                "members_admin_ids",
                Kind::Ids,
                "Accounts that are admins of the room (at least one).",
            ),
            optional(
                "members_member_ids",
                Kind::IdsOrNone,
                "Accounts that are members.",
            ),
            optional(
                "members_readonly_ids",
                Kind::IdsOrNone,
                "Accounts that may only read.",
            ),
            optional(
                "description",
                Kind::Note(MAX_DESCRIPTION_CHARS),
                "Room description, at most 65,535 characters.",
            ),
            optional("icon_preset", Kind::Choice(ICON_PRESETS), "Room icon."),
            optional("link", Kind::Flag, "1: create an invitation link too."),
            optional(
                "link_code",
                Kind::LinkCode,
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
        answer: Answer::Json(body::<dto::RoomId>()),
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
        answer: Answer::Json(body::<dto::Room>()),
        extra_errors: &[],
    },
    Endpoint {
        method: HttpMethod::Put,
        path: "/v2/rooms/{room_id}",
        tag: "rooms",
        summary: "Change a room's name, description or icon (admins)",
        params: &[
            optional(
                "name",
                Kind::Line(MAX_ROOM_NAME_CHARS),
                "Room name, 1–255 characters, not only white space.",
            ),
            optional(
                "description",
                Kind::Note(MAX_DESCRIPTION_CHARS),
                "Room description, at most 65,535 characters.",
            ),
            optional("icon_preset", Kind::Choice(ICON_PRESETS), "Room icon."),
        ],
        multipart: false,
        access: Access::Guarded,
        answer: Answer::Json(body::<dto::RoomId>()),
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
        answer: Answer::List(body::<dto::Member>()),
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
        answer: Answer::Json(body::<dto::MemberIds>()),
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
        answer: Answer::ListOr204(body::<dto::Message>()),
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
                Kind::Line(MAX_MESSAGE_CHARS),
                "Message text, 1–65535 characters (not only white space), in ChatWork notation.",
            ),
            optional(
                "self_unread",
                Kind::Flag,
                "1: the message stays unread for its author.",
            ),
        ],
        multipart: false,
        access: Access::Guarded,
        answer: Answer::Json(body::<dto::MessageId>()),
        extra_errors: &[],
    },
    Endpoint {
        method: HttpMethod::Put,
        path: "/v2/rooms/{room_id}/messages/read",
        tag: "messages",
        summary: "Mark messages read",
        params: &[optional(
            "message_id",
            Kind::MessageId,
            "Read up to and including this message (default: the latest).",
        )],
        multipart: false,
        access: Access::Token,
        answer: Answer::Json(body::<dto::UnreadCounts>()),
        extra_errors: &[],
    },
    Endpoint {
        method: HttpMethod::Put,
        path: "/v2/rooms/{room_id}/messages/unread",
        tag: "messages",
        summary: "Mark messages unread",
        params: &[required(
            "message_id",
            Kind::MessageId,
            "Unread from this message on.",
        )],
        multipart: false,
        access: Access::Token,
        answer: Answer::Json(body::<dto::UnreadCounts>()),
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
        answer: Answer::Json(body::<dto::Message>()),
        extra_errors: &[],
    },
    Endpoint {
        method: HttpMethod::Put,
        path: "/v2/rooms/{room_id}/messages/{message_id}",
        tag: "messages",
        summary: "Edit one's own message",
        params: &[required(
            "body",
            Kind::Line(MAX_MESSAGE_CHARS),
            "The new text, 1–65535 characters, not only white space.",
        )],
        multipart: false,
        access: Access::Guarded,
        answer: Answer::Json(body::<dto::MessageId>()),
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
        answer: Answer::Json(body::<dto::MessageId>()),
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
                Kind::Id,
                "Only tasks assigned to this account.",
            ),
            optional(
                "assigned_by_account_id",
                Kind::Id,
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
        answer: Answer::List(body::<dto::Task>()),
        extra_errors: &[],
    },
    Endpoint {
        method: HttpMethod::Post,
        path: "/v2/rooms/{room_id}/tasks",
        tag: "tasks",
        summary: "Add a task for members (not readonly members; 10 posts per 10 s per room)",
        params: &[
            required(
                "body",
                Kind::Line(MAX_MESSAGE_CHARS),
                "What is to be done, 1–65535 characters.",
            ),
            required("to_ids", Kind::Ids, "The members the task is for."),
            optional(
                "limit",
                Kind::UnixTime,
                "Deadline (Unix seconds, 0 or more).",
            ),
            optional(
                "limit_type",
                Kind::Choice(LIMIT_TYPES),
                "Whether `limit` is a date, a time, or there is none.",
            ),
        ],
        multipart: false,
        access: Access::Guarded,
        answer: Answer::Json(body::<dto::TaskIds>()),
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
        answer: Answer::Json(body::<dto::Task>()),
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
        answer: Answer::Json(body::<dto::TaskId>()),
        extra_errors: &[],
    },
    Endpoint {
        method: HttpMethod::Get,
        path: "/v2/rooms/{room_id}/files",
        tag: "files",
        summary: "Files of a room (at most 100)",
        params: &[optional(
            "account_id",
            Kind::Id,
            "Only files uploaded by this account.",
        )],
        multipart: false,
        access: Access::Token,
        answer: Answer::List(body::<dto::File>()),
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
                Kind::Line(MAX_MESSAGE_CHARS),
                "Message posted with the file (read as text even if the part has a filename).",
            ),
        ],
        multipart: true,
        access: Access::Guarded,
        answer: Answer::Json(body::<dto::FileId>()),
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
        answer: Answer::Json(body::<dto::File>()),
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
        answer: Answer::Json(body::<dto::Link>()),
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
        answer: Answer::Json(body::<dto::Link>()),
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
        answer: Answer::Json(body::<dto::Link>()),
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
        answer: Answer::Json(body::<dto::Link>()),
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
        answer: Answer::List(body::<dto::IncomingRequest>()),
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
        answer: Answer::Json(body::<dto::Contact>()),
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
        answer: Answer::Json(body::<dto::Contact>()),
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
                Kind::Revision,
                "Revision to continue after; omitted: the current revision and no ops.",
            ),
            optional(
                "timeout",
                Kind::Range(0, MAX_TIMEOUT_SECS),
                "Seconds to wait when nothing is new (default 30, at most 60).",
            ),
            optional(
                "limit",
                Kind::Range(1, MAX_LIMIT as u64),
                "Most ops to return (default 100).",
            ),
        ],
        multipart: false,
        access: Access::Token,
        answer: Answer::Json(body::<dto::SyncBatch>()),
        extra_errors: &[410],
    },
    Endpoint {
        method: HttpMethod::Get,
        path: "/v2/sync/ws",
        tag: "sync",
        summary: "WebSocket: the backlog after `since`, then ops as they happen (one JSON text frame per op)",
        params: &[
            optional("since", Kind::Revision, "Revision to continue after."),
            optional(
                "token",
                Kind::Text,
                "The API token, for browsers that cannot set headers.",
            ),
        ],
        multipart: false,
        access: Access::Token,
        answer: Answer::WebSocket,
        extra_errors: &[403, 410],
    },
    Endpoint {
        method: HttpMethod::Post,
        path: "/v2/contacts/requests",
        tag: "contacts",
        summary: "Ask another account to become a contact",
        params: &[
            required("account_id", Kind::Id, "The account asked."),
            optional(
                "message",
                Kind::Note(MAX_REQUEST_MESSAGE_CHARS),
                "A note shown with the request, at most 1000 characters.",
            ),
        ],
        multipart: false,
        access: Access::Guarded,
        answer: Answer::Json(body::<dto::ContactRequestCreated>()),
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
        answer: Answer::JsonOr202(body::<dto::JoinResult>()),
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
        answer: Answer::List(body::<dto::JoinRequest>()),
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
            required(
                "expires",
                Kind::Int,
                "When the URL stops working (Unix seconds).",
            ),
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
            required(
                "name",
                Kind::Line(MAX_ACCOUNT_NAME_CHARS),
                "Display name, 1–255 characters, not only white space.",
            ),
            optional("admin", Kind::Flag, "1: a server administrator."),
            optional("mail", Kind::Text, "Mail address."),
            optional(
                "organization_name",
                Kind::Note(MAX_ACCOUNT_NAME_CHARS),
                "Organization (default: the caller's).",
            ),
            optional("department", Kind::Text, "Department."),
            optional("title", Kind::Text, "Title."),
            optional(
                "login_mail",
                Kind::Note(254),
                "Sign-in address for the web client (with password; extension): one account per address, compared without case (409 if taken).",
            ),
            optional(
                "password",
                Kind::Note(1024),
                "Web client password (with login_mail): at least 8 characters, at most 1,024 bytes; kept as an argon2id hash.",
            ),
        ],
        multipart: false,
        access: Access::Guarded,
        answer: Answer::Json(body::<dto::CreatedAccount>()),
        extra_errors: &[409],
    },
    Endpoint {
        method: HttpMethod::Post,
        path: "/v2/session",
        tag: "session",
        summary: "Sign in (extension, for the web client): sets the HttpOnly, SameSite=Strict session cookie `hayabusa_session` and answers the session's CSRF token, which every write signed in by the cookie sends in X-CSRF-Token; 401 for a wrong address or password alike; attempts are limited per address and per peer (429)",
        params: &[
            required("login_mail", Kind::Text, "Sign-in address."),
            required("password", Kind::Text, "Password."),
        ],
        multipart: false,
        access: Access::Public,
        answer: Answer::Json(body::<dto::Session>()),
        extra_errors: &[400, 401, 429],
    },
    Endpoint {
        method: HttpMethod::Get,
        path: "/v2/session",
        tag: "session",
        summary: "The session the cookie signs in, with its CSRF token (400 when signed in by API token)",
        params: &[],
        multipart: false,
        access: Access::Token,
        answer: Answer::Json(body::<dto::Session>()),
        extra_errors: &[],
    },
    Endpoint {
        method: HttpMethod::Delete,
        path: "/v2/session",
        tag: "session",
        summary: "Sign out: ends the cookie's session and removes the cookie (400 when signed in by API token)",
        params: &[],
        multipart: false,
        access: Access::Token,
        answer: Answer::NoContent,
        extra_errors: &[],
    },
    Endpoint {
        method: HttpMethod::Delete,
        path: "/v2/sessions",
        tag: "session",
        summary: "Sign out everywhere: ends every session of the caller (API tokens keep working)",
        params: &[],
        multipart: false,
        access: Access::Token,
        answer: Answer::NoContent,
        extra_errors: &[],
    },
    Endpoint {
        method: HttpMethod::Put,
        path: "/v2/admin/password",
        tag: "session",
        summary: "Set the password of the account that signs in with login_mail (server administrators, extension)",
        params: &[
            required(
                "login_mail",
                Kind::Text,
                "The account's sign-in address (404 if nobody's).",
            ),
            required(
                "password",
                Kind::Note(1024),
                "At least 8 characters, at most 1,024 bytes.",
            ),
        ],
        multipart: false,
        access: Access::Guarded,
        answer: Answer::NoContent,
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
        answer: Answer::Json(body::<dto::NewToken>()),
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
        answer: Answer::Json(body::<dto::NewToken>()),
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
        answer: Answer::Document,
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
        answer: Answer::Json(body::<dto::Health>()),
        extra_errors: &[],
    },
    Endpoint {
        method: HttpMethod::Get,
        path: "/readyz",
        tag: "meta",
        summary: "Readiness: the engines answer and the read models keep up (503 otherwise)",
        params: &[],
        multipart: false,
        access: Access::Public,
        answer: Answer::Json(body::<dto::Ready>()),
        extra_errors: &[503],
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

fn typed(schema_type: Type, description: &str) -> ObjectBuilder {
    let builder = ObjectBuilder::new().schema_type(schema_type);
    if description.is_empty() {
        builder
    } else {
        builder.description(Some(description))
    }
}

fn int() -> RefOr<Schema> {
    typed(Type::Integer, "").into()
}

fn text() -> RefOr<Schema> {
    typed(Type::String, "").into()
}

fn id() -> RefOr<Schema> {
    param_schema(Kind::Id).into()
}

fn message_id() -> RefOr<Schema> {
    typed(
        Type::String,
        "A message id: a string of digits (63-bit, beyond JavaScript's safe integers).",
    )
    .pattern(Some(DIGITS_NOT_ZERO))
    .into()
}

fn link_code() -> RefOr<Schema> {
    typed(Type::String, "")
        .min_length(Some(1))
        .max_length(Some(MAX_LINK_CODE_CHARS))
        .pattern(Some("^[A-Za-z0-9_-]+$"))
        .into()
}

fn array(items: RefOr<Schema>) -> RefOr<Schema> {
    ArrayBuilder::new().items(items).into()
}

fn schema_ref(name: &str) -> RefOr<Schema> {
    Ref::from_schema_name(name).into()
}

fn body_ref(body: Body) -> RefOr<Schema> {
    schema_ref(&(body.name)())
}

/// The response schemas: those derived from every body in [`ENDPOINTS`], the error
/// body, and the sync op (the WebSocket's frames), by name.
fn schemas() -> Vec<(String, RefOr<Schema>)> {
    let mut schemas = Vec::new();
    collect::<dto::Errors>(&mut schemas);
    collect::<dto::Op>(&mut schemas);
    for endpoint in ENDPOINTS {
        match endpoint.answer {
            Answer::Json(body)
            | Answer::List(body)
            | Answer::ListOr204(body)
            | Answer::JsonOr202(body) => (body.collect)(&mut schemas),
            Answer::NoContent | Answer::Text(_) | Answer::Document | Answer::WebSocket => {}
        }
    }
    schemas
}

// ---- operations ----------------------------------------------------------------

fn param_schema(kind: Kind) -> ObjectBuilder {
    match kind {
        Kind::Id => typed(Type::Integer, "").minimum(Some(1)),
        Kind::Int => typed(Type::Integer, ""),
        Kind::Range(low, high) => typed(Type::Integer, "")
            .minimum(Some(low))
            .maximum(Some(high)),
        Kind::Text => typed(Type::String, ""),
        Kind::Line(max) => typed(Type::String, "")
            .min_length(Some(1))
            .max_length(Some(max))
            .pattern(Some("\\S")),
        Kind::Note(max) => typed(Type::String, "").max_length(Some(max)),
        Kind::Ids => typed(Type::String, "").pattern(Some(ID_LIST)),
        Kind::IdsOrNone => typed(Type::String, "").pattern(Some(OPTIONAL_ID_LIST)),
        Kind::MessageId => typed(Type::String, "").pattern(Some(DIGITS_NOT_ZERO)),
        Kind::LinkCode => typed(Type::String, "")
            .min_length(Some(1))
            .max_length(Some(MAX_LINK_CODE_CHARS))
            .pattern(Some("^[A-Za-z0-9_-]+$")),
        Kind::Revision => typed(Type::String, "").pattern(Some("^[0-9]+(:[0-9]+)?$")),
        Kind::UnixTime => typed(Type::Integer, "").minimum(Some(0)),
        Kind::Flag => typed(Type::Integer, "").enum_values(Some([0, 1])),
        Kind::Choice(values) => typed(Type::String, "").enum_values(Some(values.iter().copied())),
        Kind::File => typed(Type::String, "").content_media_type("application/octet-stream"),
    }
}

fn path_parameter(name: &str) -> Parameter {
    let (schema, about) = match name {
        "message_id" => (message_id(), "The message."),
        "code" => (link_code(), "The invitation link's code."),
        "room_id" => (id(), "The room (404 unless the caller is a member)."),
        "task_id" => (id(), "The task."),
        "file_id" => (id(), "The file."),
        "request_id" => (id(), "The contact request."),
        "account_id" => (id(), "The account."),
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
                .schema(Some(typed(Type::Integer, "Unix time in seconds.")))
                .description(Some("Unix time (seconds) at which the window ends."))
                .build(),
        )
}

fn json_content(schema: RefOr<Schema>) -> utoipa::openapi::Content {
    ContentBuilder::new().schema(Some(schema)).build()
}

/// Error answers shared by the operations, by status: the component's name and
/// description.
fn error_response(status: u16) -> (&'static str, &'static str) {
    match status {
        400 => ("BadRequest", "A parameter is missing or invalid."),
        401 => ("Unauthorized", "No token, or an invalid one."),
        403 => ("Forbidden", "The caller may not do this."),
        404 => ("NotFound", "Unknown, or not visible to the caller."),
        409 => (
            "Conflict",
            "Conflicts with the current state (e.g. a code in use), or with a concurrent change.",
        ),
        410 => (
            "Gone",
            "The revision is older than the ops kept; start again without `since`.",
        ),
        413 => ("PayloadTooLarge", "The upload or body is too large."),
        415 => (
            "UnsupportedMediaType",
            "A body that is not application/x-www-form-urlencoded.",
        ),
        422 => (
            "IdempotencyKeyReused",
            "The Idempotency-Key was used for a different request.",
        ),
        429 => (
            "TooManyRequests",
            "Rate limited: per token, or posts per room.",
        ),
        503 => (
            "Unavailable",
            "Storage is unavailable or too busy; try again.",
        ),
        _ => ("Error", "An error."),
    }
}

const ALL_ERRORS: &[u16] = &[400, 401, 403, 404, 409, 410, 413, 415, 422, 429, 503];

/// The error statuses an operation can answer.
fn error_statuses(endpoint: &Endpoint) -> BTreeSet<u16> {
    let mut statuses: BTreeSet<u16> = endpoint.extra_errors.iter().copied().collect();
    if endpoint.access == Access::Public {
        return statuses;
    }
    // Any parameter, header or body may be invalid; any token may be rate limited;
    // any read or write may find the store unavailable.
    statuses.extend([400, 401, 429, 503]);
    if endpoint.access == Access::Guarded {
        statuses.insert(403);
    }
    if endpoint.path.contains('{') {
        statuses.insert(404);
    }
    // Form parameters may come in a body of any request (except the WebSocket's),
    // which must be a form and not too large.
    if endpoint.multipart {
        statuses.insert(413);
    } else if !matches!(endpoint.answer, Answer::WebSocket) {
        statuses.extend([413, 415]);
    }
    if IDEMPOTENT.contains(&endpoint.path) && endpoint.method == HttpMethod::Post {
        statuses.insert(422);
    }
    statuses
}

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
            form = form.property(
                param.name,
                param_schema(param.kind).description(Some(param.about)),
            );
            if param.required {
                form = form.required(param.name);
            }
        }
        let mut form: RefOr<Schema> = form.into();
        let at_least_one =
            endpoint.method == HttpMethod::Put && AT_LEAST_ONE.contains(&endpoint.path);
        if at_least_one {
            let one_of_them = endpoint.params.iter().fold(AnyOfBuilder::new(), |any, p| {
                any.item(ObjectBuilder::new().required(p.name))
            });
            form = AllOfBuilder::new()
                .item(form)
                .item(one_of_them)
                .description(Some("At least one of the parameters."))
                .into();
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
                    at_least_one || endpoint.params.iter().any(|p| p.required),
                )))
                .content(media_type, json_content(form))
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
    if IDEMPOTENT.contains(&endpoint.path) && endpoint.method == HttpMethod::Post {
        builder = builder.parameter(
            ParameterBuilder::new()
                .name("Idempotency-Key")
                .parameter_in(ParameterIn::Header)
                .required(Required::False)
                .description(Some(
                    "A retried request with the same key returns the first result and \
                     changes nothing (visible ASCII, at most 255 characters, kept for the account).",
                ))
                .schema(Some(
                    typed(Type::String, "")
                        .min_length(Some(1))
                        .max_length(Some(MAX_KEY_LEN))
                        .pattern(Some("^[!-~]+$")),
                )),
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
    let json = |description: &str, schema: RefOr<Schema>| {
        ok(description)
            .content("application/json", json_content(schema))
            .build()
            .into()
    };
    let insert = |responses: &mut Responses, status: &str, response| {
        responses.responses.insert(status.into(), response);
    };
    match endpoint.answer {
        Answer::Json(body) => insert(&mut responses, "200", json("OK", body_ref(body))),
        Answer::List(body) => insert(
            &mut responses,
            "200",
            json("OK (at most 100 items)", array(body_ref(body))),
        ),
        Answer::ListOr204(body) => {
            insert(
                &mut responses,
                "200",
                json("OK (at most 100 items)", array(body_ref(body))),
            );
            insert(&mut responses, "204", ok("Nothing new.").build().into());
        }
        Answer::JsonOr202(body) => {
            insert(&mut responses, "200", json("Done.", body_ref(body)));
            insert(
                &mut responses,
                "202",
                json("Waiting for acceptance.", body_ref(body)),
            );
        }
        Answer::NoContent => insert(&mut responses, "204", ok("Done.").build().into()),
        Answer::Text(media_type) => insert(
            &mut responses,
            "200",
            ok("OK")
                .content(media_type, json_content(text()))
                .build()
                .into(),
        ),
        Answer::Document => insert(
            &mut responses,
            "200",
            json(
                "This OpenAPI document.",
                typed(Type::Object, "An OpenAPI 3.1 document.").into(),
            ),
        ),
        Answer::WebSocket => insert(
            &mut responses,
            "101",
            ok("Switching to the WebSocket protocol; then one JSON text frame per `Op`.")
                .build()
                .into(),
        ),
    }
    for status in error_statuses(endpoint) {
        let (name, _) = error_response(status);
        responses
            .responses
            .insert(status.to_string(), Ref::from_response_name(name).into());
    }
    responses
}

fn components() -> Components {
    let mut components = Components::new();
    for (name, schema) in schemas() {
        components.schemas.insert(name, schema);
    }
    for &status in ALL_ERRORS {
        let (name, description) = error_response(status);
        let mut response = rate_limit_headers(ResponseBuilder::new().description(description));
        if status == 503 {
            response = response.header(
                "retry-after",
                HeaderBuilder::new()
                    .schema(Some(int()))
                    .description(Some("Seconds to wait before trying again."))
                    .build(),
            );
        }
        components.responses.insert(
            name.to_string(),
            response
                .content(
                    "application/json",
                    json_content(schema_ref(&dto::Errors::name())),
                )
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
        (
            "webhooks",
            "Webhooks: signed POSTs to the caller's URLs for the events it may see.",
        ),
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
        ("post", "/v2/session"),
        ("get", "/v2/session"),
        ("delete", "/v2/session"),
        ("delete", "/v2/sessions"),
        ("put", "/v2/admin/password"),
        ("get", "/v2/admin/forwarders/{forwarder_id}/dead_letters"),
        ("post", "/v2/admin/forwarders/{forwarder_id}/replay"),
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
        ("get", "/v2/webhooks"),
        ("post", "/v2/webhooks"),
        ("get", "/v2/admin/forwarders"),
        ("post", "/v2/admin/forwarders"),
        ("delete", "/v2/admin/forwarders/{forwarder_id}"),
        ("delete", "/v2/webhooks/{webhook_setting_id}"),
        ("post", "/v2/accounts"),
        ("post", "/v2/me/token"),
        ("post", "/v2/accounts/{account_id}/token"),
        ("delete", "/v2/accounts/{account_id}/token"),
        ("get", "/healthz"),
        ("get", "/readyz"),
        ("get", "/metrics"),
        ("get", "/v2/openapi.json"),
    ];

    fn parsed() -> Value {
        serde_json::from_str(&DOCUMENT_JSON).expect("the document is JSON")
    }

    #[test]
    fn the_documented_op_types_are_the_op_kinds_the_app_emits() {
        let doc = parsed();
        let documented: std::collections::BTreeSet<&str> =
            doc["components"]["schemas"]["OpType"]["enum"]
                .as_array()
                .expect("OpType is an enum")
                .iter()
                .map(|name| name.as_str().expect("a name"))
                .collect();
        let emitted: std::collections::BTreeSet<&str> = hayabusa_app::ops::OpKind::ALL
            .iter()
            .map(|kind| kind.as_str())
            .collect();
        assert_eq!(documented, emitted);
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
            let public = ["/healthz", "/readyz", "/metrics", "/v2/openapi.json"]
                .contains(&path.as_str())
                || path.starts_with("/v2/files/download/")
                || (path == "/v2/session" && method == "post");
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
    fn every_json_answer_refers_to_a_schema_derived_from_a_dto_type() {
        let doc = parsed();
        let derived: BTreeSet<String> = schemas().into_iter().map(|(name, _)| name).collect();
        assert!(derived.contains("Message") && derived.contains("Op"));
        for (method, path) in operations(&doc) {
            if path == "/v2/openapi.json" {
                continue;
            }
            let responses = doc["paths"][&path][&method]["responses"]
                .as_object()
                .unwrap();
            for (status, response) in responses {
                let Some(schema) = response.pointer("/content/application~1json/schema") else {
                    continue;
                };
                let reference = schema
                    .get("$ref")
                    .or_else(|| schema.pointer("/items/$ref"))
                    .and_then(Value::as_str)
                    .unwrap_or_else(|| panic!("{method} {path} {status}: {schema}"));
                let name = reference.trim_start_matches("#/components/schemas/");
                assert!(derived.contains(name), "{method} {path} {status}: {name}");
            }
        }
        assert_eq!(
            doc["components"]["schemas"]["Message"],
            serde_json::to_value(<dto::Message as utoipa::PartialSchema>::schema()).unwrap()
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
