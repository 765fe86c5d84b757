//! Invitation link codes are unique per server: a code is claimed for a room in its
//! own stream (`link-{code}`) before the room uses it, and released when the room
//! stops using it.

use crate::error::DomainError;
use crate::event::Event;
use crate::ids::RoomId;

/// Who holds a code.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LinkCode {
    /// The room holding it, if any.
    pub holder: Option<RoomId>,
}

impl LinkCode {
    /// Claims `code` for `room`: nothing to do if the room holds it already.
    pub fn claim(&self, code: &str, room: RoomId) -> Result<Vec<Event>, DomainError> {
        match self.holder {
            Some(holder) if holder == room => Ok(vec![]),
            Some(_) => Err(DomainError::Conflict(format!(
                "the link code {code} is taken"
            ))),
            None => Ok(vec![Event::LinkCodeClaimed {
                code: code.to_string(),
                room_id: room,
            }]),
        }
    }

    /// Releases `code` if `room` holds it.
    pub fn release(&self, code: &str, room: RoomId) -> Vec<Event> {
        if self.holder == Some(room) {
            vec![Event::LinkCodeReleased {
                code: code.to_string(),
                room_id: room,
            }]
        } else {
            vec![]
        }
    }

    /// Folds one event in.
    pub fn evolve(mut self, event: &Event) -> LinkCode {
        match event {
            Event::LinkCodeClaimed { room_id, .. } => self.holder = Some(*room_id),
            Event::LinkCodeReleased { .. } => self.holder = None,
            _ => {}
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_code_belongs_to_one_room_until_released() {
        let free = LinkCode::default();
        let claimed = free.claim("team", RoomId(1)).unwrap();
        let held = claimed.iter().fold(free, LinkCode::evolve);
        assert_eq!(held.claim("team", RoomId(1)), Ok(vec![]));
        assert!(matches!(
            held.claim("team", RoomId(2)),
            Err(DomainError::Conflict(_))
        ));
        assert!(held.release("team", RoomId(2)).is_empty());
        let released = held.release("team", RoomId(1));
        let free_again = released.iter().fold(held, LinkCode::evolve);
        assert!(free_again.claim("team", RoomId(2)).is_ok());
    }
}
