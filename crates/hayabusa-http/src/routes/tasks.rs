//! `/v2/rooms/{room_id}/tasks…` and `/v2/my/tasks`.

use crate::auth::Caller;
use crate::dto;
use crate::error::{ApiError, ApiResult};
use crate::params::{Params, path_id, room_id};
use crate::routes::idempotency;
use crate::state::AppState;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, Uri};
use hayabusa_app::NewTasks;
use hayabusa_domain::{AccountId, TaskId};
use hayabusa_store::TaskFilter;
use std::sync::Arc;

fn task_id(raw: &str) -> ApiResult<TaskId> {
    path_id(raw, "task_id", "task")
}

fn filter_of(params: &Params) -> ApiResult<TaskFilter> {
    Ok(TaskFilter {
        account_id: params.optional_id::<AccountId>("account_id")?,
        assigned_by: params.optional_id::<AccountId>("assigned_by_account_id")?,
        status: params
            .one_of("status", &["open", "done"])?
            .map(str::to_string),
    })
}

/// Tasks of a room.
pub async fn list(
    State(state): State<Arc<AppState>>,
    Caller(caller): Caller,
    Path(room): Path<String>,
    params: Params,
) -> ApiResult<Json<Vec<dto::Task>>> {
    let room = room_id(&room)?;
    let tasks = state
        .app
        .queries
        .tasks(caller.account_id, room, &filter_of(&params)?)
        .await?;
    Ok(Json(
        tasks
            .iter()
            .map(|t| dto::Task::in_room(t, &state.public.base_url))
            .collect(),
    ))
}

/// Tasks assigned to the caller.
pub async fn mine(
    State(state): State<Arc<AppState>>,
    Caller(caller): Caller,
    params: Params,
) -> ApiResult<Json<Vec<dto::Task>>> {
    let filter = TaskFilter {
        account_id: None,
        ..filter_of(&params)?
    };
    let tasks = state
        .app
        .queries
        .my_tasks(caller.account_id, &filter)
        .await?;
    Ok(Json(
        tasks
            .iter()
            .map(|t| dto::Task::mine(t, &state.public.base_url))
            .collect(),
    ))
}

/// Assigns tasks.
pub async fn create(
    State(state): State<Arc<AppState>>,
    Caller(caller): Caller,
    Path(room): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    params: Params,
) -> ApiResult<Json<dto::TaskIds>> {
    let room = room_id(&room)?;
    let key = idempotency(&headers, caller.account_id, &method, &uri, &params)?;
    let body = params.required("body")?;
    if params.get("to_ids").is_none() {
        return Err(ApiError::bad_request("to_ids is required"));
    }
    let to_ids = params.id_list("to_ids")?;
    if to_ids.is_empty() {
        return Err(ApiError::bad_request(
            "to_ids must name at least one member",
        ));
    }
    let limit_time = match params.get("limit").filter(|s| !s.is_empty()) {
        None => 0,
        Some(raw) => raw
            .parse::<i64>()
            .ok()
            .filter(|t| *t >= 0)
            .ok_or_else(|| ApiError::bad_request("limit must be a Unix time in seconds"))?,
    };
    let limit_type = match params.one_of("limit_type", &["none", "date", "time"])? {
        Some(kind) => kind.to_string(),
        None if limit_time > 0 => "time".to_string(),
        None => "none".to_string(),
    };
    let input = NewTasks {
        body,
        to_ids,
        limit_time,
        limit_type,
    };
    let written = state
        .app
        .commands
        .add_tasks(caller.account_id, room, input, key)
        .await?;
    Ok(Json(dto::TaskIds {
        task_ids: written.value.iter().map(|id| id.0).collect(),
    }))
}

/// One task.
pub async fn get(
    State(state): State<Arc<AppState>>,
    Caller(caller): Caller,
    Path((room, task)): Path<(String, String)>,
    _params: Params,
) -> ApiResult<Json<dto::Task>> {
    let room = room_id(&room)?;
    let task = task_id(&task)?;
    let view = state
        .app
        .queries
        .task(caller.account_id, room, task)
        .await?;
    Ok(Json(dto::Task::in_room(&view, &state.public.base_url)))
}

/// Marks a task open or done.
pub async fn set_status(
    State(state): State<Arc<AppState>>,
    Caller(caller): Caller,
    Path((room, task)): Path<(String, String)>,
    params: Params,
) -> ApiResult<Json<dto::TaskId>> {
    let room = room_id(&room)?;
    let task = task_id(&task)?;
    let done = match params.one_of("body", &["open", "done"])? {
        Some(status) => status == "done",
        None => return Err(ApiError::bad_request("body is required (open or done)")),
    };
    state
        .app
        .commands
        .set_task_status(caller.account_id, room, task, done)
        .await?;
    Ok(Json(dto::TaskId { task_id: task.0 }))
}
