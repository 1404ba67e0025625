//! An in-memory channel for the handler's tests: records every delivery, and fails the ones it
//! is told to.

use std::sync::{Arc, Mutex, PoisonError};

use retail_events::notification::{NotificationChannel, NotificationKind};

use super::{Channel, Delivery, DeliveryError};
use crate::message::Message;

/// Records deliveries; clones share the record, so a test keeps one and gives one away.
#[derive(Debug, Clone, Default)]
pub(crate) struct FakeChannel {
    /// Every message delivered or attempted, in order.
    delivered: Arc<Mutex<Vec<Message>>>,
    /// Kinds whose deliveries fail, and with how many attempts.
    failing: Arc<Mutex<Vec<(NotificationKind, u32)>>>,
}

impl FakeChannel {
    /// Deliveries of `kind` fail from now on, reporting `attempts` attempts.
    pub(crate) fn fail(&self, kind: NotificationKind, attempts: u32) {
        self.failing
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((kind, attempts));
    }

    /// The messages handed to the channel so far.
    pub(crate) fn delivered(&self) -> Vec<Message> {
        self.delivered
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl Channel for FakeChannel {
    fn kind(&self) -> NotificationChannel {
        NotificationChannel::Webhook
    }

    fn deliver(&self, message: &Message) -> Delivery {
        self.delivered
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(message.clone());
        let failing = self.failing.lock().unwrap_or_else(PoisonError::into_inner);
        match failing.iter().find(|(kind, _)| *kind == message.kind) {
            Some((_, attempts)) => Delivery::failed(
                *attempts,
                DeliveryError::Exhausted {
                    attempts: *attempts,
                    last: "HTTP 503".to_owned(),
                },
            ),
            None => Delivery::delivered(1),
        }
    }
}
