//! Webhook settings (ChatWork's webhooks): an account asks for a POST to a URL of its
//! own whenever an event of the kinds it chose happens that it may see — in every
//! room it is in, or in one of them. All settings live in one stream (`webhooks`),
//! whose aggregate enforces ChatWork's limit of five per account.

use crate::error::DomainError;
use crate::event::Event;
use crate::ids::{AccountId, RoomId};
use std::collections::BTreeMap;

/// Most webhook settings one account may have (ChatWork's limit).
pub const MAX_WEBHOOKS_PER_ACCOUNT: usize = 5;

/// Longest webhook URL, in bytes.
pub const MAX_URL_BYTES: usize = 2_048;

/// What a webhook is sent for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum WebhookEventType {
    /// A message was posted (in a room the owner is in).
    MessageCreated,
    /// A message was edited.
    MessageUpdated,
    /// The owner was mentioned (`[To:ID]`, or `[toall]`).
    MentionToMe,
}

impl WebhookEventType {
    /// Every type, in ChatWork's order.
    pub const ALL: [WebhookEventType; 3] = [
        WebhookEventType::MessageCreated,
        WebhookEventType::MessageUpdated,
        WebhookEventType::MentionToMe,
    ];

    /// ChatWork's name (`webhook_event_type`).
    pub fn as_str(self) -> &'static str {
        match self {
            WebhookEventType::MessageCreated => "message_created",
            WebhookEventType::MessageUpdated => "message_updated",
            WebhookEventType::MentionToMe => "mention_to_me",
        }
    }

    /// The type named `name`.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == name)
    }
}

/// One setting.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebhookSetting {
    /// Its id (`webhook_setting_id`).
    pub webhook_id: u64,
    /// Whose it is.
    pub account_id: AccountId,
    /// Where deliveries go.
    pub url: String,
    /// What it is sent for (not empty, no repeats).
    pub event_types: Vec<WebhookEventType>,
    /// Only this room's events, if set.
    pub room_id: Option<RoomId>,
    /// Position in the log where the setting was created: deliveries start after it.
    pub created_at_position: u64,
    /// Why deliveries stopped (the receiver answered 410 Gone), if they did.
    pub disabled: Option<String>,
}

/// Every webhook setting (the `webhooks` stream).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WebhookSettings {
    /// By id.
    pub settings: BTreeMap<u64, WebhookSetting>,
}

/// A command on the settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WebhookCommand {
    /// Create a setting (its URL, types and room checked by the caller).
    Create {
        /// A fresh id.
        webhook_id: u64,
        /// Where to send.
        url: String,
        /// What for.
        event_types: Vec<WebhookEventType>,
        /// Only this room.
        room_id: Option<RoomId>,
    },
    /// Delete one of the actor's settings.
    Delete {
        /// Which.
        webhook_id: u64,
    },
    /// Stop delivering (the receiver said 410 Gone); by the server.
    Disable {
        /// Which.
        webhook_id: u64,
        /// Why.
        reason: String,
    },
}

impl WebhookSettings {
    /// The settings of `account`, oldest first.
    pub fn of(&self, account: AccountId) -> impl Iterator<Item = &WebhookSetting> {
        self.settings
            .values()
            .filter(move |setting| setting.account_id == account)
    }

    /// Decides `actor`'s command at time `at`.
    pub fn decide(
        &self,
        actor: AccountId,
        command: WebhookCommand,
        at: i64,
    ) -> Result<Vec<Event>, DomainError> {
        match command {
            WebhookCommand::Create {
                webhook_id,
                url,
                event_types,
                room_id,
            } => {
                if self.settings.contains_key(&webhook_id) {
                    return Ok(Vec::new());
                }
                if self.of(actor).count() >= MAX_WEBHOOKS_PER_ACCOUNT {
                    return Err(DomainError::Invalid(format!(
                        "an account has at most {MAX_WEBHOOKS_PER_ACCOUNT} webhooks: delete \
                         one first"
                    )));
                }
                if event_types.is_empty() {
                    return Err(DomainError::Invalid(
                        "event_types must name at least one event type".into(),
                    ));
                }
                let mut names: Vec<String> = event_types
                    .iter()
                    .map(|kind| kind.as_str().to_owned())
                    .collect();
                names.sort();
                names.dedup();
                Ok(vec![Event::WebhookCreated {
                    webhook_id,
                    account_id: actor,
                    url,
                    event_types: names,
                    room_id,
                    at,
                }])
            }
            WebhookCommand::Delete { webhook_id } => match self.settings.get(&webhook_id) {
                Some(setting) if setting.account_id == actor => Ok(vec![Event::WebhookDeleted {
                    webhook_id,
                    account_id: actor,
                    at,
                }]),
                _ => Err(DomainError::NotFound("webhook")),
            },
            WebhookCommand::Disable { webhook_id, reason } => {
                match self.settings.get(&webhook_id) {
                    Some(setting) if setting.disabled.is_none() => {
                        Ok(vec![Event::WebhookDisabled {
                            webhook_id,
                            account_id: setting.account_id,
                            reason,
                            at,
                        }])
                    }
                    _ => Ok(Vec::new()),
                }
            }
        }
    }

    /// Applies a stored event (others are ignored); `position` is the event's.
    pub fn evolve(mut self, event: &Event, position: u64) -> Self {
        match event {
            Event::WebhookCreated {
                webhook_id,
                account_id,
                url,
                event_types,
                room_id,
                ..
            } => {
                self.settings.insert(
                    *webhook_id,
                    WebhookSetting {
                        webhook_id: *webhook_id,
                        account_id: *account_id,
                        url: url.clone(),
                        event_types: event_types
                            .iter()
                            .filter_map(|name| WebhookEventType::parse(name))
                            .collect(),
                        room_id: *room_id,
                        created_at_position: position,
                        disabled: None,
                    },
                );
            }
            Event::WebhookDeleted { webhook_id, .. } => {
                self.settings.remove(webhook_id);
            }
            Event::WebhookDisabled {
                webhook_id, reason, ..
            } => {
                if let Some(setting) = self.settings.get_mut(webhook_id) {
                    setting.disabled = Some(reason.clone());
                }
            }
            _ => {}
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn create(id: u64) -> WebhookCommand {
        WebhookCommand::Create {
            webhook_id: id,
            url: format!("https://hooks.example.com/{id}"),
            event_types: vec![
                WebhookEventType::MentionToMe,
                WebhookEventType::MessageCreated,
            ],
            room_id: None,
        }
    }

    fn run(
        settings: WebhookSettings,
        actor: u64,
        command: WebhookCommand,
    ) -> (WebhookSettings, Result<Vec<Event>, DomainError>) {
        let decided = settings.decide(AccountId(actor), command, 7);
        let mut next = settings;
        if let Ok(events) = &decided {
            for event in events {
                next = next.evolve(event, 100);
            }
        }
        (next, decided)
    }

    #[test]
    fn five_per_account_and_only_the_owner_deletes() {
        let mut settings = WebhookSettings::default();
        for id in 1..=5 {
            let (next, decided) = run(settings, 1, create(id));
            assert_eq!(decided.unwrap().len(), 1);
            settings = next;
        }
        let (same, refused) = run(settings.clone(), 1, create(6));
        assert!(matches!(refused, Err(DomainError::Invalid(_))));
        assert_eq!(same, settings);
        // Another account has its own five.
        let (settings, other) = run(settings, 2, create(6));
        assert!(other.is_ok());
        // A creation retried with the same id changes nothing.
        let (settings, again) = run(settings, 2, create(6));
        assert_eq!(again.unwrap(), Vec::new());
        let (settings, not_yours) = run(settings, 2, WebhookCommand::Delete { webhook_id: 1 });
        assert_eq!(not_yours, Err(DomainError::NotFound("webhook")));
        let (settings, deleted) = run(settings, 1, WebhookCommand::Delete { webhook_id: 1 });
        assert!(deleted.is_ok());
        assert_eq!(settings.of(AccountId(1)).count(), 4);
        assert_eq!(
            settings.settings[&2].event_types,
            vec![
                WebhookEventType::MentionToMe,
                WebhookEventType::MessageCreated
            ]
        );
        assert_eq!(settings.settings[&2].created_at_position, 100);
    }

    #[test]
    fn a_disabled_webhook_says_why_and_is_disabled_once() {
        let (settings, _) = run(WebhookSettings::default(), 1, create(1));
        let disable = || WebhookCommand::Disable {
            webhook_id: 1,
            reason: "410 Gone".into(),
        };
        let (settings, first) = run(settings, 0, disable());
        assert_eq!(first.unwrap().len(), 1);
        assert_eq!(settings.settings[&1].disabled.as_deref(), Some("410 Gone"));
        let (_, second) = run(settings, 0, disable());
        assert_eq!(second.unwrap(), Vec::new());
    }

    #[test]
    fn no_event_types_is_refused_and_names_round_trip() {
        let command = WebhookCommand::Create {
            webhook_id: 1,
            url: "https://x.example".into(),
            event_types: vec![],
            room_id: None,
        };
        assert!(
            WebhookSettings::default()
                .decide(AccountId(1), command, 0)
                .is_err()
        );
        for kind in WebhookEventType::ALL {
            assert_eq!(WebhookEventType::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(WebhookEventType::parse("mention"), None);
    }
}
