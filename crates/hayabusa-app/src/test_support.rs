//! Helpers the unit tests of several modules share.

use hayabusa_domain::{Event, OrganizationId};
use hayabusa_store::{
    AppendRequest, EventAppender, ExpectedVersion, MemoryEventLog, NewEvent, Position,
};

/// Appends one `organization_created` event (organization `n`) to a stream of its
/// own; returns its position.
pub(crate) async fn append_organization(log: &MemoryEventLog, n: u64) -> Position {
    let event = Event::OrganizationCreated {
        organization_id: OrganizationId(n),
        name: format!("org {n}"),
    };
    log.append(AppendRequest {
        stream: format!("organization-{n}"),
        expected: ExpectedVersion::NoStream,
        events: vec![NewEvent {
            event_type: event.event_type().to_string(),
            schema_version: hayabusa_domain::EVENT_SCHEMA_VERSION,
            data: event.encode(),
        }],
        idempotency: None,
    })
    .await
    .unwrap()
    .position
}
