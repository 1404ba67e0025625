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
    /// Kinds whose deliveries fail, with how many attempts, and whether for good.
    failing: Arc<Mutex<Vec<(NotificationKind, u32, bool)>>>,
}

impl FakeChannel {
    /// Deliveries of `kind` fail from now on in a way that may pass (every one of `attempts`
    /// attempts got HTTP 503).
    pub(crate) fn fail(&self, kind: NotificationKind, attempts: u32) {
        self.failing
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((kind, attempts, false));
    }

    /// Deliveries of `kind` are refused for good from now on (HTTP 400).
    pub(crate) fn refuse(&self, kind: NotificationKind) {
        self.failing
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((kind, 1, true));
    }

    /// Deliveries of every kind go through again.
    pub(crate) fn recover(&self) {
        self.failing
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
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
        match failing.iter().find(|(kind, _, _)| *kind == message.kind) {
            Some((_, attempts, false)) => Delivery::failed(
                *attempts,
                DeliveryError::Exhausted {
                    attempts: *attempts,
                    last: "HTTP 503".to_owned(),
                },
            ),
            Some((_, attempts, true)) => {
                Delivery::failed(*attempts, DeliveryError::Refused { status: 400 })
            }
            None => Delivery::delivered(1),
        }
    }
}
