//! Tasks: assigning (one task per assignee, announced by a message) and status.

use super::{CommandHandler, Written};
use crate::error::AppError;
use hayabusa_domain::{AccountId, Event, RoomCommand, RoomId, TaskId};
use hayabusa_store::IdempotencyKey;

/// Input for assigning tasks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewTasks {
    /// Task text.
    pub body: String,
    /// Assignees.
    pub to_ids: Vec<AccountId>,
    /// Deadline, Unix seconds (0 = none).
    pub limit_time: i64,
    /// none, date or time.
    pub limit_type: String,
}

impl CommandHandler {
    /// Assigns a task to each assignee; returns the new task ids in assignee order.
    pub async fn add_tasks(
        &self,
        caller: AccountId,
        room: RoomId,
        input: NewTasks,
        idempotency: Option<IdempotencyKey>,
    ) -> Result<Written<Vec<TaskId>>, AppError> {
        let clock = self.clock.as_ref();
        let command = RoomCommand::AddTasks {
            message_id: self.ids.message(clock),
            task_ids: input.to_ids.iter().map(|_| self.ids.task(clock)).collect(),
            body: input.body,
            to_ids: input.to_ids,
            limit_time: input.limit_time,
            limit_type: input.limit_type,
        };
        let written = self.execute(room, caller, command, idempotency).await?;
        let task_ids = written
            .value
            .iter()
            .find_map(|event| match event {
                Event::TasksAdded { tasks, .. } => Some(tasks.iter().map(|(id, _)| *id).collect()),
                _ => None,
            })
            .unwrap_or_default();
        Ok(Written {
            value: task_ids,
            position: written.position,
        })
    }

    /// Marks a task open or done.
    pub async fn set_task_status(
        &self,
        caller: AccountId,
        room: RoomId,
        task: TaskId,
        done: bool,
    ) -> Result<Written<()>, AppError> {
        let command = RoomCommand::SetTaskStatus {
            task_id: task,
            done,
        };
        let written = self.execute(room, caller, command, None).await?;
        Ok(Written {
            value: (),
            position: written.position,
        })
    }
}
